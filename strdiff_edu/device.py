"""Device choice and seeding: one code path for a laptop, CI and a GPU."""
from __future__ import annotations

import os
import random
from typing import Optional

import numpy as np
import torch


def pick_device(prefer: Optional[str] = None, verbose: bool = True) -> torch.device:
    """The device to run on: ``prefer`` if given (e.g. ``"cpu"``, ``"cuda:1"``), else CUDA
    when present, else Apple's MPS, else the CPU. Says which one it picked (``verbose``).

    ``$STRDIFF_DEVICE`` plays the role of ``prefer`` when that is not given.
    """
    prefer = prefer or os.environ.get("STRDIFF_DEVICE")
    if prefer:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {prefer!r} was asked for but CUDA is not available; "
                               "use 'cpu' or unset STRDIFF_DEVICE")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    if verbose:
        print(f"strdiff_edu: using {describe_device(device)}")
    return device


def describe_device(device: torch.device) -> str:
    """A one-line human description, e.g. ``cuda:0 (NVIDIA H100 80GB HBM3)`` or ``cpu (2 threads)``."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads; no GPU found — sizes follow the profile)"
    return str(device)


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices) and return a fresh CPU ``torch.Generator``
    seeded with ``seed``, for code that takes an explicit generator."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


def make_generator(seed: int, device="cpu") -> torch.Generator:
    """A generator on ``device``: torch requires the generator to live where the noise is drawn."""
    return torch.Generator(device=torch.device(device)).manual_seed(seed)

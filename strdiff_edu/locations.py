"""Where the library finds its trained weights and, in a source checkout, the book.

The shipped weights are folders ``<root>/<profile>/`` (``manifest.json`` plus one ``.pt`` per
network). :func:`weights_root` is, in this order:

1. ``$STRDIFF_WEIGHTS``, when set: a folder holding ``<profile>/`` folders (for example a copy of
   a checkout's ``weights/``, or the ``--out`` parent of your own ``strdiff train --export`` runs);
2. the ``weights/`` folder of the source checkout the package runs from (``pip install -e .``);
3. the copy installed with the package (``strdiff_edu/_weights``): a plain ``pip install .``
   installs the ``cpu`` profile's weights (about 20 MB) there, so ``strdiff inpaint`` works from
   any folder. Only ``cpu`` is installed; other weights folders (``cpu-cheap``) come with a
   checkout or through ``$STRDIFF_WEIGHTS``.

Some helpers read the book's own files (its pages, scripts, data-preparation scripts): they need
the source checkout, and :func:`require_checkout` says so in one line when there is none.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

#: The environment variable naming a folder of ``<profile>/`` weights folders.
WEIGHTS_ENV = "STRDIFF_WEIGHTS"
#: Where ``pip install .`` puts the shipped weights, inside the package.
PACKAGE_WEIGHTS = Path(__file__).resolve().parent / "_weights"


def checkout_root() -> Optional[Path]:
    """The source checkout the package runs from (the folder with ``pyproject.toml`` and
    ``book/`` above ``strdiff_edu/``), or ``None`` for an installed package."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "book").is_dir() else None


def weights_root() -> Path:
    """The folder holding the weights folders ``<profile>/`` (module docstring for the order)."""
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return Path(env).expanduser()
    root = checkout_root()
    if root is not None and (root / "weights").is_dir():
        return root / "weights"
    return PACKAGE_WEIGHTS


def require_checkout(what: str) -> Path:
    """The source checkout's root, or a one-line ``FileNotFoundError`` saying that ``what``
    needs one (an installed package has no book, scripts or data-preparation scripts)."""
    root = checkout_root()
    if root is None:
        raise FileNotFoundError(f"{what} needs a source checkout of strdiff_edu (git clone, then "
                                "pip install -e . and run from it); this installed package has no book/")
    return root


__all__ = ["WEIGHTS_ENV", "PACKAGE_WEIGHTS", "checkout_root", "weights_root", "require_checkout"]

"""Plotting helpers shared by the book's chapters (one style, image grids)."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def use_book_style() -> None:
    """The book's matplotlib style: small figures, light grid, one palette."""
    import matplotlib as mpl

    mpl.rcParams.update({
        "figure.figsize": (6.0, 3.2),
        "figure.dpi": 100,
        "savefig.dpi": 100,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.prop_cycle": mpl.cycler(color=PALETTE),
        "font.size": 10,
        "legend.frameon": False,
    })


def to_image(x: torch.Tensor) -> np.ndarray:
    """A (C, H, W) tensor in [0, 1] (values outside are clipped) as an (H, W[, 3]) array."""
    x = x.detach().to("cpu", torch.float32).clamp(0, 1)
    if x.ndim == 3 and x.shape[0] == 1:
        return x[0].numpy()
    if x.ndim == 3:
        return x.permute(1, 2, 0).numpy()
    return x.numpy()


def show_images(images: Sequence[torch.Tensor], titles: Optional[Sequence[str]] = None,
                ncols: Optional[int] = None, size: float = 1.8, suptitle: Optional[str] = None):
    """Show a row (or grid) of (C, H, W) images; gray for one channel. Returns the figure."""
    import matplotlib.pyplot as plt

    n = len(images)
    ncols = ncols or n
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.3 if suptitle else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(to_image(images[i]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig

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


def save_grid(rows: Sequence[Sequence[torch.Tensor]], path, scale: int = 2) -> None:
    """Save a grid of (C, H, W) images in [0, 1] (one list per row) as a PNG with Pillow."""
    from pathlib import Path

    from PIL import Image

    tiles = [[to_image(x) for x in row] for row in rows]
    h, w = tiles[0][0].shape[:2]
    ncols = max(len(r) for r in tiles)
    canvas = np.ones(((h + 2) * len(tiles), (w + 2) * ncols, 3), dtype=np.float32)
    for i, row in enumerate(tiles):
        for j, tile in enumerate(row):
            tile = np.repeat(tile[..., None], 3, axis=2) if tile.ndim == 2 else tile
            canvas[i * (h + 2) + 1:i * (h + 2) + 1 + h, j * (w + 2) + 1:j * (w + 2) + 1 + w] = tile
    img = Image.fromarray((canvas * 255).round().astype(np.uint8))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def trace_unet(net, *inputs):
    """Run ``net`` once and record each top-level stage's output shape, in execution order.

    Returns a list of (name, kind, channels, height, width) with kind in init / encoder / middle /
    decoder / head — the data behind :func:`plot_unet`, read from the module tree itself.
    """
    records, hooks = [], []
    stages = [("init_conv", "init", net.init_conv)]
    stages += [(f"encoder[{i}]", "encoder", m) for i, m in enumerate(net.encoder)]
    stages += [("mid_block2", "middle", net.mid_block2)]
    stages += [(f"decoder[{i}]", "decoder", m) for i, m in enumerate(net.decoder)]
    stages += [("head_conv", "head", net.head_conv)]
    for name, kind, module in stages:
        hooks.append(module.register_forward_hook(
            lambda mod, args, out, name=name, kind=kind: records.append((name, kind, *out.shape[1:]))))
    try:
        with torch.no_grad():
            net(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return records


def plot_unet(net, *inputs, title: Optional[str] = None):
    """Draw the U-Net's stages as bars (height = channels, label = C@HxW), SPADE injections
    marked, from a traced forward pass. Returns the figure."""
    import matplotlib.pyplot as plt

    records = trace_unet(net, *inputs)
    colors = {"init": "0.6", "encoder": PALETTE[0], "middle": PALETTE[3], "decoder": PALETTE[2], "head": "0.3"}
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for i, (name, kind, c, h, w) in enumerate(records):
        ax.bar(i, c, color=colors[kind], width=0.7)
        ax.text(i, c, f"{c}@{h}×{w}", ha="center", va="bottom", fontsize=7, rotation=90)
        spade = kind == "encoder" and getattr(net.encoder[int(name[8:-1])], "spade", None) is not None
        if spade:
            ax.annotate("SPADE", (i, 0), xytext=(i, -0.18 * max(r[2] for r in records)),
                        ha="center", fontsize=7, color=PALETTE[1],
                        arrowprops=dict(arrowstyle="->", color=PALETTE[1]))
    ax.set_xticks(range(len(records)), [r[0] for r in records], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("channels")
    ax.set_ylim(-0.25 * max(r[2] for r in records), 1.35 * max(r[2] for r in records))
    ax.set_title(title or f"{type(net).__name__}: output of each stage")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- tables and code
class _Markdown:
    """A Markdown string that notebooks display as Markdown (and print as itself)."""

    def __init__(self, text: str):
        self.text = text

    def _repr_markdown_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


def markdown_table(header: Sequence[str], rows: Sequence[Sequence], align: Optional[str] = None) -> _Markdown:
    """A pipe table of ``rows`` under ``header``, displayed as a table in a notebook.

    ``align`` holds one letter per column: ``l`` (left), ``r`` (right) or ``c`` (centre); by
    default the first column is left-aligned and the others right-aligned (numbers). Cells are
    formatted with ``str``; a ``|`` inside a cell is escaped.
    """
    align = align or "l" + "r" * (len(header) - 1)
    if len(align) != len(header) or any(len(r) != len(header) for r in rows):
        raise ValueError("markdown_table: header, align and every row need the same number of columns")
    rule = {"l": ":---", "r": "---:", "c": ":---:"}

    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return _Markdown("\n".join([line(header), "|" + "|".join(rule[a] for a in align) + "|"]
                               + [line(r) for r in rows]))


class _Source(_Markdown):
    """Python source shown as a highlighted code block, headed by where it lives."""

    def __init__(self, code: str, where: str):
        super().__init__(f'```python title="{where}"\n{code.rstrip()}\n```')
        self.code, self.where = code, where

    def __repr__(self) -> str:
        return f"# {self.where}\n{self.code.rstrip()}"

    __str__ = __repr__


def show_source(obj, start: Optional[str] = None, stop: Optional[str] = None) -> _Source:
    """The source of a library function, method or class, displayed as a code block.

    ``start`` and ``stop`` cut an excerpt: from the first line containing ``start`` up to and
    including the first later line containing ``stop`` (at the excerpt's own indentation, dedented).
    The heading names the file (relative to the package's parent folder) and the line numbers.
    """
    import inspect
    import textwrap
    from pathlib import Path

    target = inspect.unwrap(obj)
    lines, first = inspect.getsourcelines(target)
    lo, hi = 0, len(lines)
    if start is not None:
        lo = next((i for i, l in enumerate(lines) if start in l), None)
        if lo is None:
            raise ValueError(f"show_source: {start!r} not found in {target.__qualname__}")
    if stop is not None:
        end = next((i for i in range(lo + 1 if start is not None else 0, len(lines)) if stop in lines[i]), None)
        if end is None:
            raise ValueError(f"show_source: {stop!r} not found in {target.__qualname__}")
        hi = end + 1
    code = textwrap.dedent("".join(lines[lo:hi]))
    path = Path(inspect.getsourcefile(target)).resolve()
    root = Path(__file__).resolve().parents[1]
    rel = path.relative_to(root) if path.is_relative_to(root) else path.name
    where = f"{rel}, lines {first + lo}–{first + hi - 1}: {target.__qualname__}"
    return _Source(code, where)

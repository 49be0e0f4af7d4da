"""Teaching diagrams of the book, drawn with matplotlib: the StrDiffusion pipeline (the
structure branch guiding the texture branch over time), the texture U-Net with its SPADE
blocks, and one iteration of adaptive resampling.

Each function returns a new :class:`matplotlib.figure.Figure`; the labels use the book's
notation (``Notation`` page). The U-Net diagram reads its widths and resolutions from a
network configuration (:func:`strdiff_edu.models.config.model_config`), so it shows the
preset it is given.
"""
from __future__ import annotations

from typing import Optional, Tuple

#: Colours of the diagrams: structure, texture, SPADE/guidance, discriminator, neutral.
STRUCTURE, TEXTURE, GUIDE, CRITIC, NEUTRAL = "#2ca02c", "#1f77b4", "#d62728", "#9467bd", "#59636e"
_EARLY_BG, _LATE_BG = "#eef6ee", "#fdf3e7"


def _box(ax, xy: Tuple[float, float], w: float, h: float, text: str, color: str,
         fill: Optional[str] = None, fontsize: float = 9.5, weight: str = "normal", lw: float = 1.3,
         ls: str = "-", textcolor: str = "#1f2328"):
    """A rounded box centred at ``xy`` with ``text``; returns its (left, right, bottom, top)."""
    from matplotlib.patches import FancyBboxPatch

    x, y = xy
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                linewidth=lw, edgecolor=color, facecolor=fill or "white", linestyle=ls,
                                zorder=3))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, weight=weight, color=textcolor,
            zorder=4)
    return x - w / 2, x + w / 2, y - h / 2, y + h / 2


def _arrow(ax, start, end, color: str = NEUTRAL, lw: float = 1.4, ls: str = "-", rad: float = 0.0,
           style: str = "-|>", shrink: float = 2.0, zorder: int = 2):
    from matplotlib.patches import FancyArrowPatch

    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=11, color=color, lw=lw,
                                 linestyle=ls, connectionstyle=f"arc3,rad={rad}", shrinkA=shrink,
                                 shrinkB=shrink, zorder=zorder))


def _canvas(width: float, height: float, xlim, ylim):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.subplots_adjust(left=0.01, right=0.99, top=0.99, bottom=0.01)
    return fig, ax


def pipeline_figure(T: int = 100, switch: float = 0.4):
    """The StrDiffusion sampler over time: the structure branch (top) denoises the edge map and
    guides every texture step (bottom) through the SPADE blocks during the early stage
    ``t >= floor(switch * T)``; the discriminator scores each new pair and can send the
    structure back for resampling; in the late stage the texture is guided by its own gray map;
    the result is merged with the known pixels."""
    fig, ax = _canvas(9.6, 4.3, (-0.3, 15.3), (-0.35, 6.55))
    t_switch = int(switch * T)
    # stages
    ax.add_patch(_rect((1.6, 0.2), 7.9, 6.0, _EARLY_BG))
    ax.add_patch(_rect((9.5, 0.2), 3.55, 6.0, _LATE_BG))
    ax.text(5.55, 6.0, f"early stage: $t \\geq \\lfloor {switch:g}\\,T \\rfloor = {t_switch}$ — the structure guides",
            ha="center", va="center", fontsize=9.5, color=STRUCTURE, weight="bold")
    ax.text(11.275, 6.0, "late stage: $t < \\lfloor %g\\,T \\rfloor$\nself-guided" % switch,
            ha="center", va="center", fontsize=9, color="#b35900", weight="bold")
    # inputs
    _box(ax, (0.55, 4.3), 1.5, 0.95, "edge map\n$\\mu_x$ of the\nknown pixels", STRUCTURE, fontsize=8.5)
    _box(ax, (0.55, 1.5), 1.5, 0.95, "masked image\n$\\mu = y \\odot m$", TEXTURE, fontsize=8.5)
    # structure row
    ys, yt = 4.3, 1.5
    xs = [2.5, 4.7, 6.9, 8.7]
    labels_s = ["$x_T$", "$x_t$", "$x_{t-1}$", "$x_{%d}$" % t_switch]
    for x, lab in zip(xs, labels_s):
        _box(ax, (x, ys), 1.0, 0.62, lab, STRUCTURE, fill="#f4fbf4", fontsize=11)
    _arrow(ax, (1.3, ys), (2.0, ys), STRUCTURE)
    ax.text(1.65, ys + 0.42, "$+\\lambda z'$", ha="center", fontsize=8.5, color=STRUCTURE)
    _arrow(ax, (3.0, ys), (4.2, ys), STRUCTURE, ls=(0, (3, 2)))
    _arrow(ax, (5.2, ys), (6.4, ys), STRUCTURE, lw=2.2)
    ax.text(5.8, ys + 0.5, "structure step\n$\\epsilon_\\varphi$", ha="center", va="bottom", fontsize=8.5,
            color=STRUCTURE)
    _arrow(ax, (7.4, ys), (8.2, ys), STRUCTURE, ls=(0, (3, 2)))
    ax.text(10.6, ys, "structure network\nno longer used", ha="center", va="center", fontsize=8.5,
            color=NEUTRAL, style="italic")
    # texture row
    xt = [2.5, 4.7, 6.9, 8.7, 10.5, 12.3]
    labels_t = ["$y_T$", "$y_t$", "$y_{t-1}$", "$y_{%d}$" % t_switch, "$y_t$", "$y_0$"]
    for x, lab in zip(xt, labels_t):
        _box(ax, (x, yt), 1.0, 0.62, lab, TEXTURE, fill="#f2f7fc", fontsize=11)
    _arrow(ax, (1.3, yt), (2.0, yt), TEXTURE)
    ax.text(1.65, yt - 0.6, "$+\\lambda z$", ha="center", fontsize=8.5, color=TEXTURE)
    _arrow(ax, (3.0, yt), (4.2, yt), TEXTURE, ls=(0, (3, 2)))
    _arrow(ax, (5.2, yt), (6.4, yt), TEXTURE, lw=2.2)
    ax.text(5.8, yt - 0.42, "texture step $\\tilde\\epsilon_\\phi$", ha="center", va="top", fontsize=8.5,
            color=TEXTURE)
    _arrow(ax, (7.4, yt), (8.2, yt), TEXTURE, ls=(0, (3, 2)))
    _arrow(ax, (9.2, yt), (10.0, yt), TEXTURE, ls=(0, (3, 2)))
    _arrow(ax, (11.0, yt), (11.8, yt), TEXTURE, ls=(0, (3, 2)))
    # guidance: the structure just denoised conditions the texture step (SPADE)
    _arrow(ax, (6.9, ys - 0.33), (5.85, yt + 0.12), GUIDE, lw=2.0)
    ax.text(6.75, 2.95, "SPADE:\n$S_t = x_{t-1}$", ha="left", va="center", fontsize=8.5, color=GUIDE)
    # late stage: self-guidance by the gray map
    _arrow(ax, (10.3, yt + 0.33), (10.75, yt + 0.33), GUIDE, rad=-1.6, lw=1.6)
    ax.text(10.5, yt + 1.05, "$S_t = G(y_t)$", ha="center", va="bottom", fontsize=8.5, color=GUIDE)
    # discriminator and resampling
    _box(ax, (4.2, 2.95), 1.5, 0.55, "$D(y_{t-1}, x_{t-1}, t)$", CRITIC, fill="#f6f1fb", fontsize=8.5)
    _arrow(ax, (6.5, yt + 0.3), (4.75, 2.62), CRITIC, lw=1.0, shrink=0)
    _arrow(ax, (3.75, 3.2), (4.4, ys - 0.33), CRITIC, lw=1.0, ls=(0, (2, 2)), rad=-0.25)
    ax.text(2.05, 3.0, "score low:\nresample the\nstructure", ha="center", va="center", fontsize=8,
            color=CRITIC)
    # merge
    _box(ax, (14.25, 1.5), 1.75, 1.05, "merge\n$\\hat y = m \\odot y$\n$+\\,(1-m) \\odot y_0$", NEUTRAL, fontsize=8.5)
    _arrow(ax, (12.8, yt), (13.5, yt), NEUTRAL)
    # time axis
    _arrow(ax, (2.0, -0.05), (13.0, -0.05), NEUTRAL, lw=1.0)
    ax.text(2.0, 0.0, "$t = T$", ha="left", va="bottom", fontsize=8.5, color=NEUTRAL)
    ax.text(13.0, 0.0, "$t = 0$", ha="right", va="bottom", fontsize=8.5, color=NEUTRAL)
    ax.text(7.5, 0.0, "reverse time", ha="center", va="bottom", fontsize=8.5, color=NEUTRAL)
    return fig


def _rect(xy, w, h, color):
    from matplotlib.patches import Rectangle

    return Rectangle(xy, w, h, facecolor=color, edgecolor="none", zorder=0)


def unet_figure(config=None, preset: str = "cpu"):
    """The texture network as a U-Net block diagram: per encoder level two time-conditioned
    residual blocks and attention, a downsampling convolution and a SPADE block fed by the
    structure map resized to the level's resolution; the mirror-image decoder with skip
    connections; and, on the right, what one SPADE layer computes (Eq. 12). ``config`` is a
    :class:`~strdiff_edu.models.config.UNetConfig` (default: the texture network of ``preset``)."""
    from .models.config import model_config

    cfg = config if config is not None else model_config(preset, "texture")
    widths = [cfg.nf * m for m in cfg.channel_mults]
    size = cfg.image_size
    depth = cfg.depth
    fig, ax = _canvas(9.6, 4.9, (-0.9, 18.6), (0.75, 9.3))
    dy = 1.75
    top = 8.0
    enc_x, spade_x, dec_x = 3.2, 6.1, 10.6

    def res(i):
        return size // 2 ** min(i, depth - 1)

    _box(ax, (enc_x, top + 0.85), 3.2, 0.5, f"input $[y_t - \\mu,\\ \\mu]$, {size}×{size}", TEXTURE,
         fontsize=8)
    _box(ax, (dec_x, top + 0.85), 3.2, 0.5, "predicted noise, 3 ch", TEXTURE, fontsize=8)
    for i in range(depth):
        y = top - i * dy
        _box(ax, (enc_x, y), 3.2, 0.72, f"2 ResBlocks(t), attention\n{widths[i]} ch, {res(i)}×{res(i)}",
             TEXTURE, fill="#f2f7fc", fontsize=8)
        down = "stride-2 conv" if i < depth - 1 else "3×3 conv (widen)"
        y_spade = y - dy / 2
        _arrow(ax, (enc_x, y - 0.36), (enc_x, y_spade + 0.3), TEXTURE)
        ax.text(enc_x - 1.75, y - dy / 4 - 0.05, down, ha="right", va="center", fontsize=7.5, color=NEUTRAL)
        _box(ax, (enc_x, y_spade), 2.2, 0.55,
             f"SPADE ResBlock\n{widths[i + 1]} ch, {res(i + 1)}×{res(i + 1)}", GUIDE, fill="#fdf0f0",
             fontsize=7.5)
        # structure map resized to this resolution
        _arrow(ax, (spade_x, y_spade), (enc_x + 1.1, y_spade), GUIDE, lw=1.2)
        ax.text(spade_x + 0.1, y_spade, f"$S_\\downarrow$ {res(i + 1)}×{res(i + 1)}", ha="left", va="center",
                fontsize=8, color=GUIDE)
        if i < depth - 1:
            _arrow(ax, (enc_x, y_spade - 0.28), (enc_x, y - dy + 0.36), TEXTURE)
        # decoder level and skip connection
        _box(ax, (dec_x, y), 3.2, 0.72, f"2 ResBlocks(t), attention\n{widths[i + 1]}→{widths[i]} ch, "
             f"{res(i)}×{res(i)}", TEXTURE, fill="#f2f7fc", fontsize=8)
        _arrow(ax, (enc_x + 1.6, y + 0.12), (dec_x - 1.6, y + 0.12), NEUTRAL, lw=1.0, ls=(0, (4, 2)))
        if i == 0:
            ax.text((enc_x + dec_x) / 2 + 0.9, y + 0.22, "skip connections", ha="center", va="bottom", fontsize=7.5,
                    color=NEUTRAL)
        if i > 0:
            _arrow(ax, (dec_x, y + 0.36), (dec_x, y + dy - 0.36), TEXTURE)
    _arrow(ax, (enc_x, top + 0.6), (enc_x, top + 0.36), TEXTURE)
    _arrow(ax, (dec_x, top + 0.36), (dec_x, top + 0.6), TEXTURE)
    # middle
    y_mid = top - depth * dy + 0.35
    _box(ax, (6.9, y_mid), 4.2, 0.6, f"middle: ResBlock, attention, ResBlock\n{widths[depth]} ch, "
         f"{res(depth)}×{res(depth)}", TEXTURE, fill="#f2f7fc", fontsize=7.5)
    _arrow(ax, (enc_x, y_mid + dy / 2 - 0.28 + 0.05), (4.8, y_mid), TEXTURE, rad=0.25)
    _arrow(ax, (9.0, y_mid), (dec_x, top - (depth - 1) * dy - 0.36), TEXTURE, rad=0.25)
    # structure input
    _box(ax, (spade_x + 0.45, top + 0.85), 2.4, 0.5, "structure $S$, 1 ch", GUIDE, fontsize=8)
    ax.plot([spade_x, spade_x], [top + 0.6, top - (depth - 1) * dy - dy / 2], color=GUIDE, lw=1.2, zorder=1)
    # SPADE layer detail
    ax.add_patch(_rect((13.25, 0.85), 5.25, 8.3, "#fbf6f6"))
    cx, lx, rx = 15.875, 14.5, 17.3
    ax.text(cx, 8.8, "one SPADE layer (Eq. 12)", ha="center", va="center", fontsize=9, weight="bold",
            color=GUIDE)
    _box(ax, (lx, 7.9), 1.9, 0.5, "features $F$", TEXTURE, fontsize=8)
    _box(ax, (rx, 7.9), 1.9, 0.5, "structure $S_\\downarrow$", GUIDE, fontsize=8)
    _box(ax, (lx, 6.4), 2.3, 0.9, "normalise each\npixel across channels\n(no learned affine)", TEXTURE,
         fontsize=7.5)
    _box(ax, (rx, 6.5), 1.9, 0.6, "conv 3×3, ReLU\n(%d hidden)" % cfg.spade_hidden, GUIDE, fontsize=7.5)
    _box(ax, (rx - 0.6, 5.2), 1.0, 0.5, "$\\gamma$: conv", GUIDE, fontsize=8)
    _box(ax, (rx + 0.6, 5.2), 1.0, 0.5, "$\\beta$: conv", GUIDE, fontsize=8)
    _box(ax, (lx, 3.9), 2.3, 0.7, "$\\hat F \\odot (1 + \\gamma) + \\beta$", GUIDE, fill="#fdf0f0", fontsize=9)
    _arrow(ax, (lx, 7.65), (lx, 6.85), TEXTURE)
    _arrow(ax, (rx, 7.65), (rx, 6.8), GUIDE)
    _arrow(ax, (rx, 6.2), (rx - 0.6, 5.45), GUIDE)
    _arrow(ax, (rx, 6.2), (rx + 0.6, 5.45), GUIDE)
    _arrow(ax, (lx, 5.95), (lx, 4.25), TEXTURE)
    _arrow(ax, (rx - 0.6, 4.95), (lx + 1.15, 4.05), GUIDE)
    _arrow(ax, (rx + 0.6, 4.95), (lx + 1.15, 3.8), GUIDE, rad=-0.2)
    ax.text(cx, 2.45, "SPADE ResBlock:\n$F + \\mathrm{conv}(\\mathrm{LReLU}(\\mathrm{SPADE}($\n"
            "$\\mathrm{conv}(\\mathrm{LReLU}(\\mathrm{SPADE}(F, S))), S)))$", ha="center", va="center",
            fontsize=8, color="#1f2328")
    ax.text(cx, 1.2, f"widths of this preset: {', '.join(str(w) for w in widths)}", ha="center",
            va="center", fontsize=7.5, color=NEUTRAL)
    return fig


def resampling_figure(jump: int = 3):
    """One iteration of adaptive resampling at step ``t`` (Eq. 17 of the paper, the book's
    ``eq-adaptive-resampling``): re-noise the structure ``jump`` levels with the forward SDE,
    denoise it back with structure steps, redo the texture step from the same ``y_t`` guided
    by the new structure, score the new pair with the discriminator and keep, average or stop."""
    r = jump
    fig, ax = _canvas(9.6, 4.5, (-1.4, 16.4), (-0.95, 7.0))
    level_y = {k: 0.6 + 1.3 * k for k in range(r + 1)}  # k = 0: level t-1, k = r: level t+r-1

    def level_name(k):
        return "t-1" if k == 0 else ("t" if k == 1 else f"t+{k - 1}")

    for k, y in level_y.items():
        ax.plot([0.2, 8.2], [y, y], color="#d8dee4", lw=0.8, zorder=0)
        ax.text(0.1, y, f"level ${level_name(k)}$", ha="right", va="center", fontsize=8, color=NEUTRAL)
    # start: current pair's structure
    x0, x1, x2 = 1.6, 4.2, 6.8
    _box(ax, (x0, level_y[0]), 1.4, 0.62, "$x^{(i-1)}_{t-1}$", STRUCTURE, fill="#f4fbf4", fontsize=10.5)
    # re-noise
    _box(ax, (x1, level_y[r]), 1.4, 0.62, "$x^{(i)}_{t+%d}$" % (r - 1) if r > 1 else "$x^{(i)}_{t}$",
         STRUCTURE, fill="#f4fbf4", fontsize=10.5)
    prev = (x0, level_y[0])
    for k in range(1, r + 1):
        pt = (x0 + (x1 - x0) * k / r, level_y[k])
        if k < r:
            ax.plot(*pt, "o", color=STRUCTURE, ms=4, zorder=3)
        _arrow(ax, prev, pt, STRUCTURE, lw=1.6, shrink=6 if k in (1, r) else 3)
        prev = pt
    ax.text((x0 + x1) / 2 - 0.35, level_y[r // 2 + 1] + 0.2, "re-noise: $r = %d$\nforward steps\n$\\mathcal{F}_k$" % r,
            ha="right", va="center", fontsize=8.5, color=STRUCTURE)
    # denoise back
    prev = (x1, level_y[r])
    for k in range(r - 1, -1, -1):
        pt = (x1 + (x2 - x1) * (r - k) / r, level_y[k])
        if k > 0:
            ax.plot(*pt, "o", color=STRUCTURE, ms=4, zorder=3)
        _arrow(ax, prev, pt, STRUCTURE, lw=1.6, shrink=6 if k in (0, r - 1) else 3)
        prev = pt
    ax.text((x1 + x2) / 2 + 0.35, level_y[r // 2 + 1] + 0.2, "denoise: $r$ structure\nsteps $\\mathcal{S}_k$",
            ha="left", va="center", fontsize=8.5, color=STRUCTURE)
    _box(ax, (x2, level_y[0]), 1.4, 0.62, "$x^{(i)}_{t-1}$", STRUCTURE, fill="#f4fbf4", fontsize=10.5)
    # texture step redone from the same y_t
    yt_row = -0.35
    _box(ax, (x0, yt_row), 1.2, 0.55, "$y_t$ (kept)", TEXTURE, fill="#f2f7fc", fontsize=9.5)
    _box(ax, (9.4, yt_row), 1.4, 0.62, "$y^{(i)}_{t-1}$", TEXTURE, fill="#f2f7fc", fontsize=10.5)
    _arrow(ax, (x0 + 0.6, yt_row), (8.7, yt_row), TEXTURE, lw=1.6)
    ax.text(4.9, yt_row - 0.1, "texture step, SPADE guided by $x^{(i)}_{t-1}$", ha="center", va="top",
            fontsize=8.5, color=TEXTURE)
    _arrow(ax, (x2, level_y[0] - 0.31), (7.4, yt_row + 0.05), GUIDE, lw=1.6)
    # discriminator
    _box(ax, (11.1, 1.95), 2.3, 0.75, "score\n$d^{(i)} = D(y^{(i)}_{t-1}, x^{(i)}_{t-1}, t)$", CRITIC,
         fill="#f6f1fb", fontsize=8)
    _arrow(ax, (x2 + 0.7, level_y[0] + 0.1), (9.95, 1.85), CRITIC, lw=1.1)
    _arrow(ax, (10.1, yt_row + 0.31), (10.6, 1.57), CRITIC, lw=1.1)
    # decisions (official rule)
    _box(ax, (14.6, 4.9), 3.4, 0.8, "$d^{(i)} < D_n$: accept —\nthe candidate replaces the pair", "#1a7f37",
         fontsize=7.6)
    _box(ax, (14.6, 3.35), 3.4, 0.8, "else, while $i < u_{\\min}$: average\nit into the pair, rescore ($D_n$)",
         "#9a6700", fontsize=8)
    _box(ax, (14.6, 1.8), 3.4, 0.8, "else stop (or after $u_{\\max}-1$\niterations); go on to $t-1$", NEUTRAL,
         fontsize=8)
    for y in (4.9, 3.35, 1.8):
        _arrow(ax, (12.25, 1.95), (12.9, y), CRITIC, lw=1.0)
    ax.text(14.6, 5.75, "official rule", ha="center", va="bottom", fontsize=8.5, color=CRITIC, weight="bold")
    # loop back
    loop_y, loop_x = 6.35, x0 - 0.45
    ax.plot([13.0, 13.0, loop_x, loop_x], [4.9, loop_y, loop_y, level_y[0] + 1.0], color=NEUTRAL, lw=1.0,
            ls=(0, (4, 2)), zorder=1)
    ax.plot([13.0, 13.0], [3.35, 4.9], color=NEUTRAL, lw=1.0, ls=(0, (4, 2)), zorder=1)
    _arrow(ax, (loop_x, level_y[0] + 1.0), (loop_x, level_y[0] + 0.31), NEUTRAL, lw=1.0, shrink=0)
    ax.text(7.0, loop_y + 0.1, "next iteration $i + 1$ starts from the current pair", ha="center",
            va="bottom", fontsize=8.5, color=NEUTRAL)
    return fig

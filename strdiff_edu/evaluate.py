"""Evaluation over images x mask bins x methods, the paper's tables, figure grids, and file inpainting.

* :func:`evaluate` runs methods on ``images`` with one mask per image and bin, and returns a
  JSON-ready dict with per-image PSNR/SSIM (the convention of :mod:`strdiff_edu.metrics`: RGB in
  [0, 1], whole merged image, no border crop), optional FID/KID, seconds and network calls
  per image.
* :func:`write_report` writes ``results.json``, ``table1.md`` (paper Table 1 layout: PSNR / SSIM
  (/ FID) per mask bin), ``table2.md`` (the resampling ablation, cases A-D, when those methods
  ran), ``cost.md`` (seconds and network calls per image) and one figure grid per bin
  (masked input | structure | result | ground truth, one row per method and image).
* :func:`inpaint_file` is ``strdiff inpaint``: any size, RGB / gray / RGBA, mask file with
  **white = hole**.

Every method comes from :func:`strdiff_edu.methods.build` and its networks from a
:class:`strdiff_edu.weights.Weights` folder. Table 2's cases are :data:`TABLE2_CASES`.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from . import metrics as M
from .masks import Bin, bin_name
from .methods import DEFAULT_METHOD, METHODS, SAMPLERS, build, get_method, needed_networks
from .resampling import expected_nfe, paper_rule_times, resampled_times, resampling_schedule
from .sampling import SampleResult
from .sde import MeanRevertingSDE
from .weights import Weights

#: ``{method: label}``, a view of :data:`strdiff_edu.methods.METHODS` for tables and figures.
LABELS = {n: m.label for n, m in METHODS.items()}
#: ``fid="auto"`` computes FID/KID only from this many images on.
FID_AUTO_MIN_IMAGES = 100
#: Paper Table 2, lettered as the paper's text defines the cases (Sec. 3.4): A = IR-SDE + RePaint,
#: B = resampling without the discriminator, C = no resampling, D = the full method.
TABLE2_CASES = {"A": "irsde-repaint", "B": "strdiff-always", "C": "strdiff", "D": "strdiff-resample"}
#: The legend under ``table2.md``, in the same letters.
TABLE2_LEGEND = ("A: IR-SDE + RePaint resampling; B: StrDiffusion, resampling always accepted (no "
                 "discriminator); C: StrDiffusion, no resampling; D: adaptive resampling.")


def sample_in_batches(sampler, images: torch.Tensor, known: torch.Tensor, batch_size: int,
                      generator=None, progress: bool = False) -> SampleResult:
    """Run ``sampler`` over many images, ``batch_size`` at a time, and concatenate the results
    (``image``, ``raw``, ``structure``, ``nfe``; ``calls`` and ``seconds`` are summed; the
    resampling logs are concatenated in batch order).

    ``generator``: one ``torch.Generator`` serving all batches (the result depends on
    ``batch_size`` but is deterministic for a given seed and batch size), or a function of the
    batch's first index returning that batch's generator (e.g. ``lambda i: make_generator(seed +
    i)``: a batch's result then depends only on its own images and index)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if known.shape[0] == 1 and images.shape[0] > 1:
        known = known.expand(images.shape[0], *known.shape[1:])
    parts = []
    for start in range(0, images.shape[0], batch_size):
        sl = slice(start, start + batch_size)
        gen = generator(start) if callable(generator) else generator
        parts.append(sampler.sample(images[sl], known[sl], generator=gen, progress=progress))
    cat = lambda xs: torch.cat(xs) if xs and xs[0] is not None else None  # noqa: E731
    calls: Dict[str, int] = {}
    for p in parts:
        for k, v in p.calls.items():
            calls[k] = calls.get(k, 0) + v
    return SampleResult(image=cat([p.image for p in parts]), raw=cat([p.raw for p in parts]),
                        structure=cat([p.structure for p in parts]),
                        nfe={k: torch.cat([p.nfe[k] for p in parts]) for k in parts[0].nfe},
                        calls=calls, resampling=[e for p in parts for e in p.resampling],
                        seconds=sum(p.seconds for p in parts))


# ----------------------------------------------------------------------------- evaluation
def evaluate(methods: Sequence[str], images: torch.Tensor, masks: Dict[Bin, torch.Tensor],
             checkpoint=None, sde: Optional[MeanRevertingSDE] = None, device="cpu", seed: int = 0,
             batch_size: int = 16, mode: str = "corrected", fid: Union[bool, str] = "auto",
             fid_weights=None, keep: int = 2, progress: bool = True, schedule=None, fast: bool = True,
             on_method_done=None) -> dict:
    """Run every method on every bin; ``masks[bin]`` is (N, 1, H, W) paired with ``images`` (N, 3, H, W).

    ``checkpoint``: a weights folder or :class:`~strdiff_edu.weights.Weights` (needed by the
    diffusion methods). ``schedule``: the resampling constants, a
    :class:`~strdiff_edu.resampling.ResamplingSchedule` (default
    :func:`~strdiff_edu.resampling.resampling_schedule` (T)). Each method runs through
    :func:`sample_in_batches`, batch ``i0`` with the generator of seed ``seed + i0``.
    ``fid``: ``True`` (needs the local Inception weights), ``False``, or ``"auto"`` (when the
    weights are present and there are at least :data:`FID_AUTO_MIN_IMAGES` images: with fewer,
    the 2048 x 2048 covariances are singular and FID means little). ``keep``: images per bin kept for the
    figure grids. The same seed is used for every method (common random numbers).

    ``on_method_done(partial)``: called after each method with the results so far (same layout,
    ``meta`` included), so a caller can write them before the next method starts. A method whose
    output holds non-finite pixels is listed in ``res["non_finite"]`` (with a warning); its
    metrics are then NaN, written as ``null`` by :func:`write_report`."""
    from tqdm.auto import tqdm

    from .device import make_generator

    methods = list(methods)
    nets, configs = {}, {}
    if needed_networks(methods):
        if checkpoint is None:
            raise ValueError("diffusion methods need --checkpoint (a folder such as weights/cpu)")
        weights = checkpoint if isinstance(checkpoint, Weights) else Weights(checkpoint)
        checkpoint, sde = weights.folder, sde or weights.sde
        nets, configs = weights.load(needed_networks(methods), device)
    use_fid = fid is True or (fid == "auto" and images.shape[0] >= FID_AUTO_MIN_IMAGES and M.fid_available(fid_weights))
    inception = M.load_inception(fid_weights, device) if use_fid else None
    images = images.to(device)
    real_feats = {}
    res: dict = {"methods": {}, "figures": {}}

    def _meta():
        return _evaluate_meta(images, masks, seed, mode, sde, checkpoint, device, inception, schedule)

    total = len(methods) * len(masks)
    bar = tqdm(total=total, desc="evaluate", disable=not progress)
    for method in methods:
        sampler = build(method, nets=nets, sde=sde, configs=configs, mode=mode, fast=fast, schedule=schedule)
        entry = {"label": get_method(method).label, "description": get_method(method).description, "bins": {}}
        for b, known_all in masks.items():
            name = bin_name(b)
            known_all = known_all.to(device)
            r = sample_in_batches(sampler, images, known_all, batch_size,
                                  generator=lambda i0: make_generator(seed + i0, device), progress=progress)
            out, structure, secs, nfe = r.image, r.structure, r.seconds, r.nfe
            if not bool(torch.isfinite(out).all()):
                import warnings

                bad = int((~torch.isfinite(out)).sum())
                warnings.warn(f"{method} produced {bad} non-finite pixel values in bin {name}; its metrics are "
                              "recorded as null", stacklevel=2)
                if method not in res.setdefault("non_finite", []):
                    res["non_finite"].append(method)
            p, s = M.psnr(out, images), M.ssim(out, images)
            colour = M.hole_colour_error(out, images, known_all)
            row = {"n": int(out.shape[0]), "psnr": float(p.mean()), "ssim": float(s.mean()),
                   "psnr_all": [round(float(v), 4) for v in p], "ssim_all": [round(float(v), 5) for v in s],
                   "hole_colour_error_all": [round(float(v), 5) for v in colour],
                   "seconds_per_image": secs / out.shape[0],
                   "nfe_per_image": {k: float(v.float().mean()) for k, v in nfe.items()}}
            if inception is not None:
                if name not in real_feats:
                    real_feats[name] = M.inception_features(images, inception)
                fake = M.inception_features(out, inception)
                row["fid"] = M.fid_from_features(real_feats[name], fake)
                row["kid"] = M.kid(real_feats[name], fake, subset_size=min(100, out.shape[0]))[0]
            entry["bins"][name] = row
            fig = res["figures"].setdefault(name, {"masked": None, "truth": images[:keep].cpu(), "rows": {}})
            fig["masked"] = (images[:keep] * known_all[:keep]).cpu()
            fig["known"] = known_all[:keep].cpu()
            st = structure[:keep].cpu() if structure is not None else None
            fig["rows"][method] = (out[:keep].cpu(), st)
            bar.update()
        res["methods"][method] = entry
        if on_method_done is not None:
            res["meta"] = _meta()
            on_method_done(res)
    bar.close()
    res["meta"] = _meta()
    return res


def _shown_path(path) -> str:
    """``path`` relative to the source checkout when it lies inside it (results files then read
    the same on every machine), else as given."""
    from .locations import checkout_root

    root, p = checkout_root(), Path(path).resolve()
    if root is not None and p.is_relative_to(root):
        return str(p.relative_to(root))
    return str(path)


def _evaluate_meta(images, masks, seed, mode, sde, checkpoint, device, inception, schedule) -> dict:
    return {"n_images": int(images.shape[0]), "bins": [bin_name(b) for b in masks],
                   "image_size": list(images.shape[-2:]), "seed": seed, "mode": mode,
                   "T": sde.T if sde is not None else None, "checkpoint": _shown_path(checkpoint) if checkpoint else None,
                   "device": str(device), "fid": bool(inception is not None),
                   "convention": "RGB in [0, 1], whole merged image, no border crop; SSIM: Gaussian window "
                                 "sigma 1.5 (11x11), population covariance, mean over channels",
                   # the key keeps its former name: stored results.json files use it
                   "resampling_preset": (dict((schedule or resampling_schedule(sde.T)).__dict__)
                                         if sde is not None and (schedule or sde.T in (100, 400)) else None)}


# ----------------------------------------------------------------------------- reports
def _fmt(v, digits):
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def table1_markdown(res: dict) -> str:
    """Paper Table 1 layout: one row per method, PSNR / SSIM (/ FID) per mask bin."""
    bins = res["meta"]["bins"]
    has_fid = res["meta"].get("fid")
    metrics = ["PSNR↑", "SSIM↑"] + (["FID↓"] if has_fid else [])
    head = "| method | " + " | ".join(f"{b} % {m}" for b in bins for m in metrics) + " |"
    lines = [head, "|---|" + "---:|" * (len(bins) * len(metrics))]
    for entry in res["methods"].values():
        cells = []
        for b in bins:
            row = entry["bins"][b]
            cells += [_fmt(row["psnr"], 2), _fmt(row["ssim"], 3)] + ([_fmt(row.get("fid"), 1)] if has_fid else [])
        lines.append(f"| {entry['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table2_markdown(res: dict) -> Optional[str]:
    """The resampling ablation (cases A-D) for the cases that ran; ``None`` when none did."""
    present = {c: m for c, m in TABLE2_CASES.items() if m in res["methods"]}
    if not present:
        return None
    bins = res["meta"]["bins"]
    lines = ["| case | method | " + " | ".join(f"{b} % PSNR↑ | {b} % SSIM↑" for b in bins) + " |",
             "|---|---|" + "---:|" * (2 * len(bins))]
    for c, m in present.items():
        e = res["methods"][m]
        cells = [x for b in bins for x in (_fmt(e["bins"][b]["psnr"], 2), _fmt(e["bins"][b]["ssim"], 3))]
        lines.append(f"| {c} | {e['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cost_markdown(res: dict) -> str:
    """Seconds and network calls per image, averaged over bins."""
    lines = ["| method | s / image | structure calls | texture calls | IR-SDE calls | discriminator calls |",
             "|---|---:|---:|---:|---:|---:|"]
    for e in res["methods"].values():
        rows = list(e["bins"].values())
        sec = np.mean([r["seconds_per_image"] for r in rows])
        nfe = {k: np.mean([r["nfe_per_image"].get(k, 0) for r in rows])
               for k in ("structure", "texture", "irsde", "discriminator")}
        lines.append(f"| {e['label']} | {sec:.2f} | " + " | ".join(f"{nfe[k]:.0f}" for k in nfe) + " |")
    return "\n".join(lines)


def save_figure_grid(fig_data: dict, labels: Dict[str, str], path, title: str = "") -> Path:
    """Rows = (method, image); columns = masked input | structure | result | ground truth."""
    # A pyplot-free Figure: saving it touches no global backend (notebooks keep inline plots).
    from matplotlib.figure import Figure

    from .viz import to_image

    rows = []
    for method, (out, st) in fig_data["rows"].items():
        for i in range(out.shape[0]):
            masked = fig_data["masked"][i] + (1 - fig_data["known"][i])  # holes shown white
            rows.append((f"{labels.get(method, method)}", masked, st[i] if st is not None else None, out[i],
                         fig_data["truth"][i]))
    n = len(rows)
    f = Figure(figsize=(4 * 1.6, n * 1.6 + 0.4))
    axes = f.subplots(n, 4, squeeze=False)
    for r, (label, masked, st, out, truth) in enumerate(rows):
        for c, img in enumerate((masked, st, out, truth)):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if img is not None:
                ax.imshow(to_image(img), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.text(0.5, 0.5, "—", ha="center", va="center", transform=ax.transAxes)
            if r == 0:
                ax.set_title(("masked input", "structure", "result", "ground truth")[c], fontsize=8)
        axes[r, 0].set_ylabel(label, fontsize=6, rotation=0, ha="right", va="center")
    if title:
        f.suptitle(title, fontsize=9)
    f.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    f.savefig(path, dpi=110)
    return path


def finite_json(value, _warned=None):
    """``value`` with every NaN / infinite float replaced by ``None`` (JSON has no NaN; a bare
    ``NaN`` makes the file unreadable to strict parsers), warning once when it replaced any."""
    top = _warned is None
    _warned = [] if top else _warned
    if isinstance(value, float) and not math.isfinite(value):
        _warned.append(value)
        out = None
    elif isinstance(value, dict):
        out = {k: finite_json(v, _warned) for k, v in value.items()}
    elif isinstance(value, (list, tuple)):
        out = [finite_json(v, _warned) for v in value]
    else:
        out = value
    if top and _warned:
        import warnings

        warnings.warn(f"{len(_warned)} non-finite result value(s) written as null", stacklevel=3)
    return out


def write_report(res: dict, out) -> Dict[str, Path]:
    """results.json, table1.md, table2.md (if any case ran), cost.md and grid_<bin>.png under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    js = {k: v for k, v in res.items() if k != "figures"}
    paths["json"] = out / "results.json"
    from .checkpoint import atomic_write_bytes

    atomic_write_bytes(paths["json"], (json.dumps(finite_json(js), indent=1, allow_nan=False) + "\n").encode())
    meta = res["meta"]
    note = (f"\n\n{meta['n_images']} images per bin, {meta['image_size'][0]}x{meta['image_size'][1]} px, "
            f"T={meta['T']}, seed {meta['seed']}, mode {meta['mode']}. Metrics: {meta['convention']}."
            + ("" if meta.get("fid") else " FID omitted (needs local Inception weights and far more images)."))
    paths["table1"] = out / "table1.md"
    paths["table1"].write_text("# Inpainting quality per mask bin (paper Table 1 layout)\n\n" + table1_markdown(res) + note + "\n")
    t2 = table2_markdown(res)
    if t2:
        paths["table2"] = out / "table2.md"
        paths["table2"].write_text("# Resampling ablation (paper Table 2 cases)\n\n" + t2 + "\n\n"
                                   + TABLE2_LEGEND + note + "\n")
    paths["cost"] = out / "cost.md"
    paths["cost"].write_text("# Cost per image\n\n" + cost_markdown(res) + note + "\n")
    labels = {m: e["label"] for m, e in res["methods"].items()}
    for name, fig in res["figures"].items():
        paths[f"grid_{name}"] = save_figure_grid(fig, labels, out / f"grid_{name}.png", title=f"hole ratio {name} %")
    return paths


# ----------------------------------------------------------------------------- files
def read_image_file(path) -> Tuple[torch.Tensor, str, Optional[np.ndarray]]:
    """An image file as ``(rgb (1, 3, H, W) in [0, 1], kind, alpha)``: ``kind`` is ``"rgb"``,
    ``"gray"`` or ``"rgba"``; gray is repeated to 3 channels; ``alpha`` (H, W) uint8 or ``None``."""
    from .images import open_image_file

    im = open_image_file(path, "image")
    alpha = None
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        alpha = np.asarray(im.getchannel("A"))
        kind = "rgba"
    else:
        kind = "gray" if im.mode in ("1", "L", "I", "I;16", "F") else "rgb"
    if im.mode in ("I", "I;16", "F"):
        arr = np.asarray(im, dtype=np.float64)
        arr = arr / (65535.0 if arr.max() > 255 else 255.0)
        rgb = np.repeat(arr[..., None], 3, axis=2)
    else:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / np.float32(255.0)
    t = torch.from_numpy(rgb).float().permute(2, 0, 1)[None].clamp(0, 1)
    return t, kind, alpha


def write_image_file(image: torch.Tensor, path, kind: str = "rgb", alpha: Optional[np.ndarray] = None) -> Path:
    """Write (1, 3, H, W) in [0, 1] as 8-bit: RGB, gray (rgb2gray weights) or RGBA (the input's alpha)."""
    from PIL import Image

    from .structure import grayscale

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "gray":
        arr = (grayscale(image)[0, 0].clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        img = Image.fromarray(arr, "L")
    else:
        arr = (image[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        img = Image.fromarray(arr, "RGB")
        if kind == "rgba" and alpha is not None:
            if path.suffix.lower() in (".jpg", ".jpeg"):
                import warnings

                warnings.warn(f"{path.name}: JPEG has no transparency; the alpha channel is dropped (write a "
                              ".png to keep it)", stacklevel=2)
            else:
                img.putalpha(Image.fromarray(alpha, "L"))
    import io

    from .checkpoint import atomic_write_bytes

    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        from .errors import UsageError

        raise UsageError(f"{path}: unknown image extension {path.suffix!r}; use .png, .jpg, .bmp, .tif or .webp")
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    atomic_write_bytes(path, buf.getvalue())   # never a half-written output file
    return path


def working_size(height: int, width: int, train_size: int) -> Tuple[int, int]:
    """The size an image is inpainted at: unchanged when its shorter side is at most 1.5 x the
    networks' training size, else scaled (aspect kept) so that its shorter side equals it. The
    networks learned hole shapes and textures at ``train_size``; a 256 px photo given to 64 px
    networks is inpainted at 64 px and the hole pasted back at 256 px."""
    short = min(height, width)
    if short <= 1.5 * train_size:
        return height, width
    f = train_size / short
    return max(1, round(height * f)), max(1, round(width * f))


#: The largest working image (pixels) ``strdiff inpaint`` runs the sampler at unless
#: ``--max-pixels`` raises it: 512 x 512. Memory and time grow with the pixel count (see
#: :func:`estimate_cost`); the default policy (:func:`working_size`) stays far below it for
#: photos of any size, so this bites only with ``--full-resolution`` or extreme aspect ratios.
MAX_WORKING_PIXELS = 512 * 512


def check_working_size(H: int, W: int, h: int, w: int, full_resolution: bool,
                       max_pixels: Optional[int] = None) -> None:
    """Refuse a working size above ``max_pixels`` (default :data:`MAX_WORKING_PIXELS`), naming
    the flag that allows it."""
    from .errors import UsageError

    limit = max_pixels or MAX_WORKING_PIXELS
    if h * w <= limit:
        return
    if full_resolution:
        raise UsageError(f"--full-resolution: the image is {W}x{H} = {W * H:,} pixels, above the {limit:,} "
                         f"the sampler runs at (--max-pixels); pass --max-pixels {W * H} to allow it (memory "
                         "and time grow with the pixel count), or leave --full-resolution off to inpaint at the "
                         "networks' resolution and paste the hole back at full size")
    raise UsageError(f"the image is {W}x{H}: even at the networks' resolution it is {w}x{h} = {w * h:,} pixels, "
                     f"above the {limit:,} the sampler runs at (--max-pixels); crop it around the hole, or pass "
                     f"--max-pixels {w * h} to allow it")


def calls_per_image(method: str, T: int) -> Dict[str, Tuple[int, int]]:
    """``{network: (fewest, most)}`` network calls one image costs with ``method`` (the formula
    of :mod:`strdiff_edu.resampling`: the adaptive resampling's count depends on the
    discriminator's decisions, hence a range)."""
    if method not in SAMPLERS:
        return {}
    if method.startswith("irsde"):
        extra = 0
        if method == "irsde-repaint":
            pre = resampling_schedule(T)
            extra = pre.u_min * sum(r for _, r in resampled_times(T, pre))
        return {"irsde": (T + extra, T + extra)}
    pre = resampling_schedule(T)
    if method in ("strdiff", "strdiff-ode", "strdiff-cheap"):
        n = expected_nfe(T, pre, {})
        return {"structure": (n["structure"],) * 2, "texture": (n["texture"],) * 2}
    times = [t for t, _ in resampled_times(T, pre)]
    rule = {"strdiff-always": "always", "strdiff-paper-rule": "paper"}.get(method, "official")
    lo_k = pre.u_max - 1 if rule == "always" else (0 if rule == "paper" else pre.u_min)
    if rule == "paper":
        times = [t for t, _ in paper_rule_times(T, pre.switch_step(T))]
    lo = expected_nfe(T, pre, {t: lo_k for t in times}, rule=rule)
    hi = expected_nfe(T, pre, {t: pre.u_max - 1 for t in times}, rule=rule)
    out = {k: (lo[k], hi[k]) for k in lo}
    if "discriminator" not in get_method(method).networks:
        out.pop("discriminator", None)
    return out


@torch.inference_mode()
def estimate_cost(method: str, nets: dict, sde: MeanRevertingSDE, h: int, w: int, device="cpu") -> dict:
    """Seconds one image of ``h`` x ``w`` will take: one timed call of each network at that
    size times :func:`calls_per_image`. Returns ``{"calls": (lo, hi), "seconds": (lo, hi)}``."""
    import time

    calls = calls_per_image(method, sde.T)
    if not calls:
        return {"calls": (0, 0), "seconds": (0.0, 0.0)}
    per_call = {}
    y = torch.rand(1, 3, h, w, device=device)
    x = torch.rand(1, 1, h, w, device=device)
    t = torch.full((1,), sde.T, device=device, dtype=torch.long)
    for name in calls:
        net = nets[name]
        args = {"irsde": (y, y, t), "structure": (x, x, t), "texture": (y, y, t, x), "discriminator": (y, x, t)}[name]
        net(*args)                     # the first call pays one-off set-up costs
        start = time.perf_counter()
        net(*args)
        per_call[name] = time.perf_counter() - start
    lo = sum(c[0] * per_call[n] for n, c in calls.items())
    hi = sum(c[1] * per_call[n] for n, c in calls.items())
    return {"calls": (sum(c[0] for c in calls.values()), sum(c[1] for c in calls.values())), "seconds": (lo, hi)}


def inpaint_image(sampler, image: torch.Tensor, known: torch.Tensor, train_size: Optional[int], multiple: int = 1,
                  generator: Optional[torch.Generator] = None, progress: bool = False, full_resolution: bool = False):
    """Inpaint ``image`` (1, 3, H, W) with ``known`` (1, 1, H, W) at :func:`working_size` (or at
    full resolution), pasting the result's hole back into the full-resolution known pixels.

    Downscaling uses area averaging; a working pixel counts as known only if every full-resolution
    pixel under it is known. The result is upsampled bicubically. Returns ``(result, structure,
    sample_result)``: ``result`` (1, 3, H, W) has the known pixels of ``image`` exactly;
    ``structure`` is the sampled structure map at (H, W) (bilinear) or ``None``."""
    import torch.nn.functional as F

    from .models.layers import pad_to_multiple

    H, W = image.shape[-2:]
    h, w = (H, W) if full_resolution or not train_size else working_size(H, W, train_size)
    small, small_known = image, known
    if (h, w) != (H, W):
        small = F.interpolate(image, size=(h, w), mode="area")
        small_known = (F.interpolate(known.float(), size=(h, w), mode="area") > 1 - 1e-6).float()
    padded = pad_to_multiple(small, multiple)
    known_p = pad_to_multiple(small_known, multiple)
    r = sampler.sample(padded, known_p, generator=generator, progress=progress)
    out = r.image[..., :h, :w]
    if (h, w) != (H, W):
        out = F.interpolate(out, size=(H, W), mode="bicubic", align_corners=False).clamp(0, 1)
    out = torch.where(known.to(out.device) > 0.5, image.to(out.device), out)
    structure = None
    if r.structure is not None:
        structure = r.structure[..., :h, :w]
        if (h, w) != (H, W):
            structure = F.interpolate(structure, size=(H, W), mode="bilinear", align_corners=False)
    return out, structure, r


def inpaint_file(image_path, mask_path, out_path, weights: Optional[Weights], method: str = DEFAULT_METHOD,
                 sde: Optional[MeanRevertingSDE] = None,
                 black_hole: bool = False, seed: int = 0, device="cpu", mode: str = "corrected",
                 progress: bool = True, structure_out=None, fast: bool = True, full_resolution: bool = False,
                 reimpose: Optional[bool] = None, noise_scale: Optional[float] = None,
                 max_pixels: Optional[int] = None, announce=None) -> dict:
    """``strdiff inpaint``: inpaint one file with a mask file (**white = hole**, or ``black_hole``),
    with ``method``'s networks from ``weights`` (a :class:`~strdiff_edu.weights.Weights`; ``None``
    for a baseline), checked against ``sde`` when given (the caller's profile).

    Any size: a photo much larger than the networks' training size is inpainted at
    :func:`working_size` and its hole pasted back at full resolution (``full_resolution``: inpaint
    at the file's size); the image and mask are reflect-padded to the networks' multiple (padding
    counts as known) and cropped back. A working size above ``max_pixels`` (default
    :data:`MAX_WORKING_PIXELS`) is refused (:func:`check_working_size`). ``announce(line)``
    receives one line with the working size and the estimated calls and seconds before the
    sampler starts. Output with non-finite pixels raises :class:`~strdiff_edu.errors.RunFailed`
    and writes nothing. Returns a summary dict."""
    import warnings

    from .device import make_generator
    from .masks import load_mask

    image, kind, alpha = read_image_file(image_path)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        known = load_mask(mask_path, black_hole=black_hole)[None]
    H, W = image.shape[-2:]
    if tuple(known.shape[-2:]) != (H, W):
        from .errors import UsageError

        mh, mw = known.shape[-2:]
        if (mh, mw) == (W, H):
            raise UsageError(f"the mask is {mw}x{mh} pixels but the image is {W}x{H}: one of them is rotated "
                             "(both are read upright, as a viewer shows them, EXIF orientation applied); "
                             "rotate the mask to match the image as displayed (resizing would not fix it)")
        raise UsageError(f"the mask is {mw}x{mh} pixels but the image is {W}x{H}; resize the mask to the "
                         "image (nearest neighbour) first")
    nets, configs = {}, {}
    if needed_networks([method]):
        nets, configs = weights.load(needed_networks([method]), device, sde=sde)
        sde = sde or weights.sde
    train_size = weights.image_size if nets else None
    h, w = (H, W) if full_resolution or not train_size else working_size(H, W, train_size)
    check_working_size(H, W, h, w, full_resolution, max_pixels)
    if announce is not None:
        where = ("the file's size" if (h, w) == (H, W) else
                 f"{w}x{h}, the networks' resolution (--full-resolution: the file's size)")
        est = estimate_cost(method, nets, sde, h, w, device) if nets else None
        cost = ""
        if est:
            (c0, c1), (s0, s1) = est["calls"], est["seconds"]
            cost = (f"; about {c0} network calls, {s0:.0f} s" if c0 == c1 else
                    f"; {c0}-{c1} network calls, about {s0:.0f}-{s1:.0f} s")
        announce(f"strdiff: inpainting {W}x{H} at {where} with {method}{cost}")
    sampler = build(method, nets=nets, sde=sde, configs=configs, mode=mode, fast=fast, reimpose=reimpose,
                    noise_scale=noise_scale)
    multiple = weights.multiple if nets else 1
    result, structure, r = inpaint_image(sampler, image.to(device), known.to(device), train_size, multiple,
                              generator=make_generator(seed, device), progress=progress,
                              full_resolution=full_resolution)
    result = result.cpu()
    if not bool(torch.isfinite(result).all()):
        from .errors import RunFailed

        raise RunFailed(f"{method} produced non-finite pixels; nothing was written to {out_path}. Check the "
                        "networks' weights (a diverged training?) or try --method fill")
    write_image_file(result, out_path, kind, alpha)
    if structure_out and structure is not None:
        write_image_file(structure.cpu().repeat(1, 3, 1, 1), structure_out, "gray")
    work = list(result.shape[-2:]) if full_resolution or not train_size else list(working_size(H, W, train_size))
    return {"out": str(out_path), "size": [W, H], "working_size": work[::-1], "kind": kind, "method": method,
            "seconds": round(r.seconds, 2), "hole_ratio": round(float(1 - known.mean()), 4),
            "nfe": {k: int(v[0]) for k, v in r.nfe.items()}}

"""Prepare the real datasets of the paper at 256 x 256, and the NVIDIA irregular masks.

    strdiff data prepare places2 --out data/            # download (when reachable)
    strdiff data prepare celeba  --from ~/Downloads/celeba --out data/
    strdiff data prepare paris   --from ~/Downloads/paris_streetview --out data/
    strdiff data prepare nvidia_masks --from ~/Downloads --out data/
    strdiff data prepare folder  --from my_photos/ --out data/ --name mine
    strdiff data prepare verify  --out data/places2

(``python -m strdiff_edu.tools.prepare ...`` is the same). Each dataset is written to
``OUT/NAME/{train,eval}/*.png`` (masks: ``OUT/nvidia_masks/{train,eval}/<bin>/*.png``, white =
hole) with ``OUT/NAME/manifest.sha256`` (``sha256sum -c`` format). Re-running skips what is
done (resumable); downloads resume from ``.part`` files. ``--from DIR`` takes the archives or
the extracted folders you downloaded by hand (any layout below DIR; see each dataset's notes).

Licences: the datasets are NOT redistributable by this project and are never committed; each
has its own terms (see data_scripts/README.md).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import masks as M
from ..checkpoint import sha256_file
from ..images import list_image_files
from . import datasets as D

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


@dataclass
class Spec:
    name: str
    title: str
    page: str                    # where to get it by hand
    licence: str
    urls: Dict[str, str] = field(default_factory=dict)   # archive file name -> URL (may be empty)
    notes: str = ""


SPECS: Dict[str, Spec] = {
    "paris": Spec(
        "paris", "Paris StreetView (Pathak et al. 2016, from Doersch et al. 2012)",
        "https://github.com/pathak22/context-encoder (the images are sent by the authors on request)",
        "research use only, on request from the authors",
        notes="Layout: paris_train_original/*.png (14,900 training images) and paris_eval_gt/*.png "
              "(100 eval images). Files under a folder whose name contains 'eval' or 'test' go to "
              "the eval split."),
    "celeba": Spec(
        "celeba", "CelebA, aligned and cropped (Liu et al. 2015)",
        "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Google Drive: img_align_celeba.zip, "
        "Eval/list_eval_partition.txt)",
        "non-commercial research use only (CelebA agreement)",
        notes="img_align_celeba/*.jpg (202,599 images of 178x218). With list_eval_partition.txt "
              "(0 train, 1 val, 2 test) test images go to eval and the rest to train; without it, "
              "every 10th image goes to eval. Images are centre-cropped to a square, then resized."),
    "places2": Spec(
        "places2", "Places365-Standard, 256x256 (Zhou et al. 2017)",
        "http://places2.csail.mit.edu/download.html",
        "research and non-commercial use (Places terms of use)",
        urls={"val_256.tar": "http://data.csail.mit.edu/places/places365/val_256.tar",
              "train_256_places365standard.tar":
                  "http://data.csail.mit.edu/places/places365/train_256_places365standard.tar"},
        notes="val_256/ (36,500 images) is the eval split; data_256/ (1.8 M images) the training "
              "split. Only val_256.tar (~0.5 GB) is downloaded unless --with-train is given."),
    "nvidia_masks": Spec(
        "nvidia_masks", "NVIDIA irregular masks (Liu et al. 2018, partial convolutions)",
        "https://nv-adlr.github.io/publication/partialconv-inpainting",
        "CC BY-NC 4.0 (non-commercial)",
        urls={"test_mask.zip": "https://www.dropbox.com/s/01dfayns9s0kevy/test_mask.zip?dl=1"},
        notes="test_mask.zip holds mask/testing_mask_dataset/*.png (12,000 masks: 6 hole-ratio bins "
              "x 2,000). The training masks (irregular_mask.zip) are taken from --from when present. "
              "Masks are re-binned by their measured hole ratio after resizing to --size."),
}


def manual_hint(spec: Spec, out: Path) -> str:
    return (f"Download {spec.title} by hand from {spec.page} and run: "
            f"strdiff data prepare {spec.name} --from DIR --out {out}")


def gather(spec: Spec, src: Optional[Path], work: Path, with_train: bool, progress: bool) -> List[Path]:
    """The folders holding the dataset's files: ``src`` itself, plus one folder per archive
    found in ``src`` (or downloaded), extracted under ``work/extracted/``."""
    roots: List[Path] = []
    if src is not None:
        src = Path(src)
        if not src.exists():
            raise SystemExit(f"--from {src}: no such file or folder")
        if src.is_dir():
            roots.append(src)
            archives = sorted(p for p in src.rglob("*")
                              if p.is_file() and p.name.lower().endswith(ARCHIVE_SUFFIXES))
        else:
            archives = [src]
    else:
        if not spec.urls:
            raise SystemExit(f"{spec.title} has no public download URL. " + manual_hint(spec, work.parent))
        archives = []
        for fname, url in spec.urls.items():
            if "train" in fname and spec.name == "places2" and not with_train:
                continue
            try:
                archives.append(D.download(url, work / "downloads" / fname, progress=progress,
                                           manual_hint=manual_hint(spec, work.parent)))
            except D.NetworkUnavailable as exc:
                raise SystemExit(f"error: {exc}") from None
    for arc in archives:
        roots.append(D.extract_archive(arc, work / "extracted" / arc.name.split(".")[0]))
    return roots


def _is_eval_path(rel: Path) -> bool:
    return any(("eval" in part.lower() or "test" in part.lower() or part.lower().startswith("val"))
               for part in rel.parts[:-1])


def _files(roots: Sequence[Path], lister: Callable[[Path], List[Path]]) -> List[Tuple[Path, Path]]:
    """(file, path relative to its root) for every root; files inside another root (an
    extraction folder below ``--from``) are listed once, under the innermost root."""
    out = []
    for root in roots:
        others = [r for r in roots if r != root and r.resolve().is_relative_to(root.resolve())]
        try:
            files = lister(root)
        except FileNotFoundError:
            continue
        for f in files:
            if any(f.resolve().is_relative_to(o.resolve()) for o in others):
                continue
            out.append((f, f.relative_to(root)))
    return out


def split_items(spec: Spec, roots: Sequence[Path]) -> List[Tuple[Path, str]]:
    """(source image, output relative path) pairs, split by the dataset's conventions."""
    files = _files(roots, list_image_files)
    if not files:
        raise SystemExit(f"no images found under {', '.join(map(str, roots))}")
    items = []
    if spec.name == "celeba":
        parts: Dict[str, int] = {}
        for root in roots:
            for lst in root.rglob("list_eval_partition.txt"):
                for line in lst.read_text().splitlines():
                    if line.strip():
                        fname, p = line.split()[:2]
                        parts[fname] = int(p)
        for k, (f, _) in enumerate(sorted(files, key=lambda t: t[0].name)):
            split = ("eval" if parts.get(f.name) == 2 else "train") if parts else \
                ("eval" if k % 10 == 9 else "train")
            items.append((f, f"{split}/{f.stem}.png"))
        return items
    for f, rel in files:
        split = "eval" if _is_eval_path(rel) else "train"
        items.append((f, f"{split}/{'_'.join(rel.with_suffix('').parts[-2:])}.png"))
    return items


def prepare_images(spec: Spec, src: Optional[Path], out: Path, size: int, with_train: bool,
                   progress: bool) -> Dict[str, int]:
    target = out / spec.name
    work = out / f".{spec.name}_work"
    items = split_items(spec, gather(spec, src, work, with_train, progress))
    counts = D.prepare_images(items, target, size, progress=progress)
    print(f"{spec.name}: {counts['written']} written, {counts['skipped']} already done, "
          f"{counts['failed']} unreadable -> {target}")
    return counts


def prepare_masks(spec: Spec, src: Optional[Path], out: Path, size: int, black_hole: bool,
                  progress: bool) -> Dict[str, int]:
    """Resize masks (nearest) to ``size``, re-bin them by hole ratio (NVIDIA bins) and write
    them as white = hole PNGs under ``OUT/nvidia_masks/{train,eval}/<bin>/``."""
    import warnings

    target = out / spec.name
    roots = gather(spec, src, out / f".{spec.name}_work", False, progress)
    files = _files(roots, lambda r: list_image_files(r, what="mask", extensions=M.MASK_EXTENSIONS))
    if not files:
        raise SystemExit(f"no mask images found under {', '.join(map(str, roots))}")
    items = []
    for f, rel in files:
        split = "eval" if _is_eval_path(rel) else "train"
        items.append((f, split, "_".join(rel.with_suffix("").parts[-2:])))
    ratios = []

    def convert_one(f: Path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = M.load_mask(f, size, black_hole=black_hole, allow_empty=True)
        return m

    done = D.read_sha256_manifest(target)
    counts = {"written": 0, "skipped": 0, "failed": 0, "out_of_bins": 0}
    from tqdm.auto import tqdm
    for f, split, stem in tqdm(items, desc="masks", disable=not progress):
        prior = [rel for rel in done if rel.startswith(f"{split}/") and rel.endswith(f"/{stem}.png")]
        if prior and (target / prior[0]).is_file():
            counts["skipped"] += 1
            continue
        try:
            m = convert_one(f)
        except ValueError as exc:
            warnings.warn(str(exc))
            counts["failed"] += 1
            continue
        r = float(M.hole_ratio(m))
        ratios.append(r)
        b = next((b for b in M.NVIDIA_BINS if M.in_bin(r, b)), None)
        if b is None:
            counts["out_of_bins"] += 1
            continue
        rel = f"{split}/{M.bin_name(b)}/{stem}.png"
        M.save_mask(m, target / rel)
        done[rel] = sha256_file(target / rel)
        counts["written"] += 1
    D.write_sha256_manifest(target, done)
    if ratios and float(np.median(ratios)) > M.INVERTED_WARNING_RATIO:
        print(f"warning: the median hole ratio is {np.median(ratios):.0%}: are these masks inverted? "
              f"re-run with{'out' if black_hole else ''} --black-hole", file=sys.stderr)
    print(f"{spec.name}: {counts} -> {target}")
    return counts


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="strdiff data prepare", description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", choices=[*SPECS, "folder", "verify", "list"])
    p.add_argument("--from", dest="src", type=Path, default=None,
                   help="a folder (or archive) you downloaded by hand; default: download")
    p.add_argument("--out", type=Path, default=Path("data"), help="output root (default: data/)")
    p.add_argument("--size", type=int, default=256, help="output side in pixels (default 256)")
    p.add_argument("--name", default=None, help="output name for 'folder' (default: the folder's name)")
    p.add_argument("--with-train", action="store_true", help="places2: also download the 1.8 M training images")
    p.add_argument("--black-hole", action="store_true", help="masks: kept pixels are white in the files")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    progress = not a.no_progress
    if a.dataset == "list":
        for s in SPECS.values():
            print(f"{s.name:14s} {s.title}\n{'':14s} get it: {s.page}\n{'':14s} licence: {s.licence}\n"
                  f"{'':14s} {s.notes}\n")
        return 0
    if a.dataset == "verify":
        bad = D.verify_sha256_manifest(a.out, progress=progress)
        print("OK: every file matches the manifest" if not bad else f"{len(bad)} file(s) missing or changed: {bad[:10]}")
        return 0 if not bad else 1
    if a.dataset == "folder":
        if a.src is None:
            raise SystemExit("folder: pass --from DIR (any folder of images, searched recursively)")
        spec = Spec(a.name or Path(a.src).name, f"image folder {a.src}", str(a.src), "yours")
        prepare_images(spec, a.src, a.out, a.size, False, progress)
        return 0
    spec = SPECS[a.dataset]
    if a.dataset == "nvidia_masks":
        prepare_masks(spec, a.src, a.out, a.size, a.black_hole, progress)
    else:
        prepare_images(spec, a.src, a.out, a.size, a.with_train, progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())

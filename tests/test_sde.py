"""The mean-reverting SDE: schedule constants, closed forms against simulation, Eq. 4."""
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from strdiff_edu.sde import MeanRevertingSDE, theta_schedule

LAM = 30 / 255


def test_dt_matches_published_values():
    # Values from the reference notes (computed from the official code's formulas).
    assert MeanRevertingSDE(T=100).dt == pytest.approx(0.10409, abs=5e-6)
    assert MeanRevertingSDE(T=400).dt == pytest.approx(0.026219, abs=5e-7)


def test_cosine_schedule_against_its_definition():
    T, s = 100, 0.008
    n = T + 2
    ab = lambda k: math.cos(((k / n) + s) / (1 + s) * math.pi / 2) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2
    expected = np.array([1 - ab(i + 1) for i in range(T + 1)])
    sde = MeanRevertingSDE(T=T)
    np.testing.assert_allclose(sde.thetas.numpy(), expected, rtol=1e-12)
    assert sde.thetas.dtype == torch.float64 and len(sde.thetas_cumsum) == T + 1
    assert sde.thetas_cumsum[0] == 0
    assert bool((torch.diff(sde.thetas) > 0).all())
    assert float(sde.thetas_cumsum[-1]) == pytest.approx(expected[1:].sum(), rel=1e-12)


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant"])
@pytest.mark.parametrize("T", [10, 100, 400])
def test_mean_reverts_to_eps_and_std_to_lambda(schedule, T):
    sde = MeanRevertingSDE(T=T, eps=0.005, schedule=schedule)
    assert math.exp(-float(sde.thetas_cumsum[-1]) * sde.dt) == pytest.approx(0.005, rel=1e-12)
    assert float(sde.marginal_stds[-1]) == pytest.approx(LAM * math.sqrt(1 - 0.005 ** 2), rel=1e-12)
    assert float(sde.marginal_stds[0]) == 0.0


def test_linear_and_constant_schedules():
    lin = theta_schedule("linear", 99)
    assert lin[0].item() == pytest.approx(1e-4 * 10) and lin[-1].item() == pytest.approx(0.02 * 10)
    assert bool((theta_schedule("constant", 5) == 1).all())


def test_custom_thetas_and_bad_arguments():
    sde = MeanRevertingSDE(T=3, thetas=[0.0, 1.0, 2.0, 3.0])
    assert sde.thetas_cumsum.tolist() == [0.0, 1.0, 3.0, 6.0]
    assert sde.schedule == "custom"
    with pytest.raises(ValueError, match="T\\+1 = 4"):
        MeanRevertingSDE(T=3, thetas=[1.0, 2.0])
    with pytest.raises(ValueError, match="unknown schedule"):
        MeanRevertingSDE(T=3, schedule="cosin")
    with pytest.raises(ValueError, match="eps"):
        MeanRevertingSDE(T=3, eps=0)
    with pytest.raises(ValueError, match="positive integer"):
        MeanRevertingSDE(T=0)


def _chain(sde, x0, mu, step, n_steps, gen):
    x, states = x0.clone(), [x0.clone()]
    for t in range(1, n_steps + 1):
        x = step(x, mu, t, gen)
        states.append(x)
    return states


def test_exact_transitions_reproduce_the_closed_form_marginal():
    sde = MeanRevertingSDE(T=100)
    gen = torch.Generator().manual_seed(0)
    n = 200_000
    x0 = torch.full((n,), 0.8, dtype=torch.float64)
    mu = torch.full((n,), 0.1, dtype=torch.float64)

    def exact(x, mu, t, g):
        mean, std = sde.transition(x, mu, t)
        return mean + std * torch.randn(x.shape, generator=g, dtype=x.dtype)

    states = _chain(sde, x0, mu, exact, sde.T, gen)
    for t in (1, 10, 40, 70, 100):
        mean, std = sde.marginal(x0[:1], mu[:1], t)
        se = float(std) / math.sqrt(n) + 1e-12
        assert abs(states[t].mean().item() - mean.item()) < 5 * se + 1e-9
        assert states[t].std().item() == pytest.approx(float(std), rel=0.01, abs=1e-9)


def _em_moments(sde, x0, mu):
    """Mean and variance of the Euler–Maruyama chain by exact recursion (no sampling)."""
    m, v, out = x0 - mu, 0.0, [(x0, 0.0)]
    for t in range(1, sde.T + 1):
        k = 1 - float(sde.thetas[t]) * sde.dt
        m, v = k * m, k * k * v + float(sde.sigmas[t]) ** 2 * sde.dt
        out.append((mu + m, v))
    return out


def test_euler_maruyama_simulation_matches_its_moments_and_converges_to_closed_form():
    sde = MeanRevertingSDE(T=100)
    gen = torch.Generator().manual_seed(1)
    n = 100_000
    x0 = torch.full((n,), 0.9, dtype=torch.float64)
    mu = torch.zeros(n, dtype=torch.float64)
    states = _chain(sde, x0, mu, lambda x, m, t, g: sde.forward_step(x, m, t, generator=g), sde.T, gen)
    moments = _em_moments(sde, 0.9, 0.0)
    for t in (5, 50, 100):
        m, v = moments[t]
        assert states[t].mean().item() == pytest.approx(m, abs=5 * math.sqrt(v / n))
        assert states[t].var().item() == pytest.approx(v, rel=0.02)
    # Euler–Maruyama is only first-order accurate: its error against the closed form shrinks
    # as the grid is refined (T = 100 -> 1000).
    def worst_error(T):
        s = MeanRevertingSDE(T=T)
        mom = _em_moments(s, 0.9, 0.0)
        return max(abs(mom[t][0] - (0.9 * float(s.mean_weights[t]))) for t in range(T + 1))
    coarse, fine = worst_error(100), worst_error(1000)
    assert fine < coarse / 5 and fine < 5e-3


def test_eq4_at_t1_returns_x0():
    sde = MeanRevertingSDE(T=100)
    g = torch.Generator().manual_seed(2)
    x0, mu, xt = (torch.rand(2, 3, 8, 8, generator=g) for _ in range(3))
    assert torch.allclose(sde.ideal_reverse_state(xt, x0, mu, 1), x0, atol=1e-6)
    assert float(sde.ideal_reverse_variance(1, x0)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("T", [100, 400])
def test_eq4_equals_gaussian_product_posterior(T):
    sde = MeanRevertingSDE(T=T)
    lam2, mu, x0, xt = LAM ** 2, 0.2, 0.7, 0.45
    for t in (2, 3, T // 4, T // 2, T):
        a = math.exp(-float(sde.thetas[t]) * sde.dt)
        c = math.exp(-float(sde.thetas_cumsum[t - 1]) * sde.dt)
        # prior x_{t-1} | x0 and likelihood x_t | x_{t-1}, both Gaussian
        m1, v1 = mu + (x0 - mu) * c, lam2 * (1 - c * c)
        v2 = lam2 * (1 - a * a)
        prec = 1 / v1 + a * a / v2
        post_mean = (m1 / v1 + a * (xt - mu + a * mu) / v2) / prec
        got = sde.ideal_reverse_state(torch.tensor([xt], dtype=torch.float64),
                                      torch.tensor([x0], dtype=torch.float64),
                                      torch.tensor([mu], dtype=torch.float64), t)
        assert got.item() == pytest.approx(post_mean, rel=1e-10)
        var = sde.ideal_reverse_variance(t, torch.zeros(1, dtype=torch.float64)).item()
        assert var == pytest.approx(1 / prec, rel=1e-10)


def test_eq4_equals_monte_carlo_posterior_mean():
    """Sample (x_{t-1}, x_t) jointly; the regression of x_{t-1} on x_t is E[x_{t-1} | x_t, x0]."""
    sde = MeanRevertingSDE(T=100)
    g = torch.Generator().manual_seed(3)
    n, t, x0v, muv = 400_000, 30, 0.8, 0.1
    x0 = torch.full((n,), x0v, dtype=torch.float64)
    mu = torch.full((n,), muv, dtype=torch.float64)
    prev = sde.sample_marginal(x0, mu, t - 1, generator=g)
    mean, std = sde.transition(prev, mu, t)
    xt = mean + std * torch.randn(n, generator=g, dtype=torch.float64)
    slope, intercept = np.polyfit(xt.numpy(), prev.numpy(), 1)
    probe = torch.tensor([0.3, 0.5, 0.7], dtype=torch.float64)
    want = sde.ideal_reverse_state(probe, torch.full((3,), x0v, dtype=torch.float64),
                                   torch.full((3,), muv, dtype=torch.float64), t)
    np.testing.assert_allclose(slope * probe.numpy() + intercept, want.numpy(), atol=2e-3)
    resid = prev.numpy() - (slope * xt.numpy() + intercept)
    assert resid.var() == pytest.approx(sde.ideal_reverse_variance(t, prev).item(), rel=0.02)


def test_score_from_noise_is_the_gaussian_score():
    sde = MeanRevertingSDE(T=100)
    g = torch.Generator().manual_seed(4)
    x0, mu = torch.rand(4, 3, 5, 5, generator=g), torch.rand(4, 3, 5, 5, generator=g)
    noise = torch.randn(4, 3, 5, 5, generator=g)
    t = 37
    xt = sde.add_noise(x0, mu, t, noise)
    mean, std = sde.marginal(x0, mu, t)
    true_score = -(xt - mean) / std ** 2
    assert torch.allclose(sde.score_from_noise(noise, t), true_score, rtol=1e-4, atol=1e-3)
    assert torch.allclose(sde.noise_from_state(xt, x0, mu, t), noise, atol=1e-4)


def test_reverse_step_formula_and_determinism():
    sde = MeanRevertingSDE(T=100)
    g = torch.Generator().manual_seed(5)
    xt, mu, eps = (torch.rand(2, 1, 4, 4, generator=g, dtype=torch.float64) for _ in range(3))
    t = 60
    th, sg, sb, dt = (float(sde.thetas[t]), float(sde.sigmas[t]), float(sde.marginal_stds[t]), sde.dt)
    want = xt - (th * (mu - xt) + sg ** 2 / sb * eps) * dt
    assert torch.allclose(sde.reverse_step(xt, eps, mu, t, stochastic=False), want)
    a = sde.reverse_step(xt, eps, mu, t, generator=torch.Generator().manual_seed(9))
    b = sde.reverse_step(xt, eps, mu, t, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b) and not torch.allclose(a, want)
    assert ((a - want).std() / (sg * math.sqrt(dt))).item() == pytest.approx(1.0, rel=0.5)
    ode = sde.reverse_ode_step(xt, eps, mu, t)
    assert torch.allclose(ode, xt - (th * (mu - xt) + 0.5 * sg ** 2 / sb * eps) * dt)


def test_per_sample_time_indices_match_scalar_calls():
    sde = MeanRevertingSDE(T=100)
    g = torch.Generator().manual_seed(6)
    x0, mu, xt = (torch.rand(3, 3, 4, 4, generator=g) for _ in range(3))
    ts = torch.tensor([1, 50, 100])
    batched = sde.ideal_reverse_state(xt, x0, mu, ts)
    mean_b, std_b = sde.marginal(x0, mu, ts)
    for i, t in enumerate(ts.tolist()):
        assert torch.allclose(batched[i], sde.ideal_reverse_state(xt[i:i + 1], x0[i:i + 1], mu[i:i + 1], t)[0])
        mean, std = sde.marginal(x0[i:i + 1], mu[i:i + 1], t)
        assert torch.allclose(mean_b[i], mean[0]) and torch.allclose(std_b[i], std)
    assert batched.dtype == torch.float32


def test_clear_errors_for_bad_inputs():
    sde = MeanRevertingSDE(T=10)
    x = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match="out of range"):
        sde.marginal(x, x, 11)
    with pytest.raises(ValueError, match="out of range"):
        sde.ideal_reverse_state(x, x, x, 0)  # Eq. 4 needs t >= 1
    with pytest.raises(ValueError, match="shape mismatch"):
        sde.marginal(x, torch.zeros(2, 1, 4, 4), 3)
    with pytest.raises(ValueError, match="shape \\(B,\\)"):
        sde.marginal(x, x, torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match="integer"):
        sde.marginal(x, x, torch.tensor([1.0, 2.0]))


def test_numeric_code_does_not_import_sympy():
    code = "import sys, strdiff_edu, strdiff_edu.sde; assert 'sympy' not in sys.modules, 'sympy imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_brownian_motion_moments_and_quadratic_variation():
    from strdiff_edu.sde import brownian_motion
    g = torch.Generator().manual_seed(7)
    times, paths = brownian_motion(20_000, 100, t_end=2.0, generator=g)
    assert paths.shape == (20_000, 101) and bool((paths[:, 0] == 0).all())
    assert paths[:, -1].var().item() == pytest.approx(2.0, rel=0.05)
    assert abs(paths[:, -1].mean().item()) < 5 * math.sqrt(2.0 / 20_000)
    # Covariance of Brownian motion: Cov(W_s, W_t) = min(s, t).
    cov = (paths[:, 25] * paths[:, 75]).mean().item()
    assert cov == pytest.approx(times[25].item(), rel=0.1)


def test_euler_maruyama_on_brownian_motion_with_drift():
    from strdiff_edu.sde import euler_maruyama
    g = torch.Generator().manual_seed(8)
    x0 = torch.zeros(50_000, dtype=torch.float64)
    times = torch.linspace(0, 1, 51, dtype=torch.float64)
    xs = euler_maruyama(lambda x, s: torch.full_like(x, 0.5), lambda x, s: 2.0, x0, times, generator=g)
    assert xs.shape == (51, 50_000)
    # dx = a dt + b dw has x_1 ~ N(a, b^2) exactly, even under Euler–Maruyama.
    assert xs[-1].mean().item() == pytest.approx(0.5, abs=5 * 2 / math.sqrt(50_000))
    assert xs[-1].var().item() == pytest.approx(4.0, rel=0.03)

"""SymPy derivations of the book's closed forms (Part II).

Every function returns SymPy objects built from first principles — ODEs solved with ``dsolve``,
negative log-likelihoods differentiated and solved — never copied from the numeric code.
The tests compare the ``lambdify``-ed results with :mod:`strdiff_edu.sde`, which is written by
hand and never imports SymPy, so the two are independent derivations of the same formulas.

Conventions (book: Part II). Per pixel, with ``A = exp(-theta'_t)``, ``B = exp(-theta_bar_t)``,
``C = exp(-theta_bar_{t-1})`` and ``B = A C``:

* texture transition  ``y_t | y_{t-1} ~ N(mu + A (y_{t-1} - mu), lambda^2 (1 - A^2))``;
* texture marginal    ``y_{t-1} | y_0 ~ N(mu + C (y_0 - mu), lambda^2 (1 - C^2))``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Sequence, Tuple

import sympy as sp

# ----------------------------------------------------------------------------- symbols
t = sp.Symbol("t", nonnegative=True)
lam = sp.Symbol("lambda", positive=True)
theta_prime = sp.Symbol("theta'_t", positive=True)       # theta_t * Delta
A, B, C = sp.symbols("A B C", positive=True)
x0, mu, x_t = sp.symbols("x_0 mu x_t", real=True)
y_prev = sp.Symbol("y_{t-1}", real=True)
y_t, y0 = sp.symbols("y_t y_0", real=True)
omega = sp.Symbol("omega", nonnegative=True)
mu_x, x_prev = sp.symbols("mu_x x_{t-1}", real=True)
eps_hat = sp.Symbol(r"\hat{\epsilon}", real=True)

thetabar = sp.Function(r"\bar{\theta}")                   # theta_bar(t), with theta_bar(0) = 0
theta = sp.Function(r"\theta")


# ----------------------------------------------------------------------------- Part II.1
@dataclass(frozen=True)
class MarginalDerivation:
    mean_ode: sp.Eq
    variance_ode: sp.Eq
    mean: sp.Expr            # m_t as a function of theta_bar(t)
    variance: sp.Expr        # v_t
    stationary_variance: sp.Expr
    sigma_squared: sp.Expr   # sigma_t^2 that makes the stationary variance lambda^2


def derive_marginal() -> MarginalDerivation:
    """Solve the mean and variance ODEs of ``dx = theta (mu - x) dt + sigma dw`` (book: {ref}`eq-marginal`).

    theta(t) is written as the derivative of its integral theta_bar(t) (theta_bar(0) = 0), so
    ``dsolve`` returns the closed form in theta_bar for *any* positive schedule. The variance
    ODE is solved for a general sigma^2 = 2 kappa theta, and the stationary variance then
    fixes kappa = lambda^2, i.e. sigma_t^2 = 2 lambda^2 theta_t ({ref}`eq-sigma-theta`).
    """
    m, v = sp.Function("m"), sp.Function("v")
    rate = thetabar(t).diff(t)
    kappa = sp.Symbol("kappa", positive=True)
    mean_ode = sp.Eq(m(t).diff(t), rate * (mu - m(t)))
    var_ode = sp.Eq(v(t).diff(t), -2 * rate * v(t) + 2 * kappa * rate)
    # The constants are fixed by m(0) = x0, v(0) = 0 and theta_bar(0) = 0.
    m_gen = sp.dsolve(mean_ode, m(t)).rhs
    v_gen = sp.dsolve(var_ode, v(t)).rhs
    c1 = sp.Symbol("C1")
    m_sol = m_gen.subs(c1, sp.solve(sp.Eq(m_gen.subs(thetabar(t), 0), x0), c1)[0])
    v_sol = v_gen.subs(c1, sp.solve(sp.Eq(v_gen.subs(thetabar(t), 0), 0), c1)[0])
    # Stationary variance: theta_bar -> infinity.
    z = sp.Symbol("z", positive=True)
    stationary = sp.limit(v_sol.subs(thetabar(t), z), z, sp.oo)
    kappa_value = sp.solve(sp.Eq(stationary, lam ** 2), kappa)[0]
    v_sol = v_sol.subs(kappa, kappa_value)
    return MarginalDerivation(
        mean_ode=mean_ode,
        variance_ode=var_ode.subs(kappa, kappa_value),
        mean=sp.collect(sp.expand(m_sol), sp.exp(-thetabar(t))),
        variance=sp.collect(sp.expand(v_sol), lam ** 2),
        stationary_variance=stationary.subs(kappa, kappa_value),
        sigma_squared=2 * kappa_value * theta(t),
    )


def check_marginal_solves_odes(deriv: MarginalDerivation) -> bool:
    """Substitute the solution back into both ODEs with a generic theta_bar(t)."""
    ok_mean = sp.simplify(deriv.mean.diff(t) - thetabar(t).diff(t) * (mu - deriv.mean)) == 0
    ok_var = sp.simplify(deriv.variance.diff(t)
                         - (-2 * thetabar(t).diff(t) * deriv.variance + 2 * lam ** 2 * thetabar(t).diff(t))) == 0
    at_zero = (sp.simplify(deriv.mean.subs(thetabar(t), 0) - x0) == 0
               and sp.simplify(deriv.variance.subs(thetabar(t), 0)) == 0)
    return bool(ok_mean and ok_var and at_zero)


def transition(state_prev=y_prev, center=mu) -> Tuple[sp.Expr, sp.Expr]:
    """(mean, variance) of ``state_t | state_{t-1}``: the marginal over one step (book: {ref}`eq-transition`)."""
    return center + A * (state_prev - center), lam ** 2 * (1 - A ** 2)


def marginal_prev(start=y0, center=mu) -> Tuple[sp.Expr, sp.Expr]:
    """(mean, variance) of ``state_{t-1} | state_0`` (the marginal at t-1, weight C)."""
    return center + C * (start - center), lam ** 2 * (1 - C ** 2)


def check_transitions_compose() -> bool:
    """Chaining ``t-1 | 0`` with ``t | t-1`` gives the marginal ``t | 0`` with weight B = AC."""
    m1, v1 = marginal_prev()
    mean = mu + A * (m1 - mu)
    var = A ** 2 * v1 + lam ** 2 * (1 - A ** 2)
    return bool(sp.simplify(mean - (mu + A * C * (y0 - mu))) == 0
                and sp.simplify(var - lam ** 2 * (1 - (A * C) ** 2)) == 0)


# ----------------------------------------------------------------------------- Eq. 3 and Eq. 4
def nll_eq3() -> sp.Expr:
    """Negative log-likelihood of y_{t-1} given (y_t, y_0), constants dropped (book: {ref}`eq-nll`).

    -log p(y_t | y_{t-1}) - log p(y_{t-1} | y_0).
    """
    mt, vt = transition()
    mp, vp = marginal_prev()
    return (y_t - mt) ** 2 / (2 * vt) + (y_prev - mp) ** 2 / (2 * vp)


@dataclass(frozen=True)
class ReverseStateDerivation:
    nll: sp.Expr
    gradient: sp.Expr
    solution: sp.Expr          # as returned by solve()
    abc_form: sp.Expr          # mu + a (y_t - mu) + b (y_0 - mu)
    coef_state: sp.Expr        # a = A (1 - C^2) / (1 - A^2 C^2)
    coef_start: sp.Expr        # b = C (1 - A^2) / (1 - A^2 C^2)
    variance: sp.Expr          # 1 / (d^2 nll / dy^2)


def derive_eq4() -> ReverseStateDerivation:
    """Paper Eq. 4 from the gradient of Eq. 3 set to zero (book: {ref}`eq-ideal-reverse`)."""
    nll = nll_eq3()
    grad = sp.diff(nll, y_prev)
    solution = sp.solve(sp.Eq(grad, 0), y_prev)[0]
    # Collect the solution as mu + a (y_t - mu) + b (y_0 - mu).
    u, z = sp.symbols("u z", real=True)
    shifted = sp.expand(solution.subs({y_t: u + mu, y0: z + mu}) - mu)
    a = sp.factor(shifted.coeff(u))
    b = sp.factor(shifted.coeff(z))
    rest = sp.simplify(shifted - a * u - b * z)
    if rest != 0:
        raise AssertionError(f"Eq. 4 is not affine in (y_t - mu, y_0 - mu): remainder {rest}")
    abc = mu + a * (y_t - mu) + b * (y0 - mu)
    variance = sp.factor(sp.simplify(1 / sp.diff(nll, y_prev, 2)))
    return ReverseStateDerivation(nll, grad, solution, abc, a, b, variance)


def eq4_textbook_form() -> sp.Expr:
    """Eq. 4 as printed in IR-SDE / StrDiffusion: A (1-C^2)/(1-B^2) ... with B = A C."""
    return (mu + A * (1 - C ** 2) / (1 - B ** 2) * (y_t - mu)
            + C * (1 - A ** 2) / (1 - B ** 2) * (y0 - mu)).subs(B, A * C)


def posterior_by_gaussian_product() -> Tuple[sp.Expr, sp.Expr]:
    """Mean and variance of p(y_{t-1} | y_t, y_0) by multiplying the two Gaussian factors:
    precisions add, and the mean is the precision-weighted average of the two estimates
    of y_{t-1} (the transition read backwards, (y_t - mu)/A + mu, has variance v_t / A^2)."""
    mp, vp = marginal_prev()
    _, vt = transition()
    est_from_yt, var_from_yt = mu + (y_t - mu) / A, vt / A ** 2
    precision = 1 / vp + 1 / var_from_yt
    mean = (mp / vp + est_from_yt / var_from_yt) / precision
    return sp.simplify(mean), sp.simplify(1 / precision)


def derive_eq10() -> sp.Expr:
    """Eq. 10: the structure's ideal reverse state, Eq. 4 with y -> x, mu -> mu_x (book: {ref}`eq-ideal-structure`)."""
    return derive_eq4().abc_form.subs({y_t: x_t, y0: x0, mu: mu_x}, simultaneous=True)


# ----------------------------------------------------------------------------- Eq. 11
@dataclass(frozen=True)
class StructureGuidedDerivation:
    """Eq. 11 derived for an RGB texture and a one-channel structure."""

    nll: sp.Expr
    unknowns: Tuple[sp.Symbol, ...]
    solution: Tuple[sp.Expr, ...]       # y*_{t-1} per channel, from solve()
    closed_form: Tuple[sp.Expr, ...]    # Eq. 4 + gamma g (mismatch)
    terms: Dict[str, Tuple[sp.Expr, ...]]  # the Remark 3 split, per channel
    gamma: sp.Expr
    symbols: Dict[str, Tuple[sp.Symbol, ...]]


def coupling_mean(gray_of_y, gray_of_mu) -> sp.Expr:
    """E[x_{t-1} | y_{t-1}] of the coupling likelihood (book: {ref}`eq-coupling`): the texture's
    gray projection plus the structure's own mean shift (1 - C)(mu_x - G mu)."""
    return gray_of_y + (1 - C) * (mu_x - gray_of_mu)


def derive_eq11(gray_weights: Sequence = None) -> StructureGuidedDerivation:
    """Structure-guided texture ideal state (our Eq. 11; book: {ref}`eq-structure-guided`): the
    posterior mean of an *assumed* coupling model, a modelling choice. (Under the true forward
    process the posterior given y_0 is Eq. 4: :func:`true_posterior_given_y0`.)

    NLL = -log p(y_t | y_{t-1}) - log p(y_{t-1} | y_0) - log p(x_{t-1} | y_{t-1}) (the
    factorisation {ref}`eq-structure-bayes`; the NLL {ref}`eq-nll-structure`), summed over three
    channels, with the coupling ``x_{t-1} | y_{t-1} ~ N(coupling_mean, lambda^2/omega)``. The
    gradient in the three unknowns ({ref}`eq-gradient-structure`) is linear; ``solve`` gives the
    minimiser, which is then shown equal to the closed form "Eq. 4 + gamma_t g (mismatch)" and
    split into Remark 3's terms.
    ``gray_weights`` default to symbols g_r, g_g, g_b.
    """
    g = tuple(gray_weights) if gray_weights is not None else sp.symbols("g_r g_g g_b", positive=True)
    names = ("r", "g", "b")
    # Built one by one: sp.symbols() would split these LaTeX names at their commas.
    yt = tuple(sp.Symbol(f"y_{{t,{c}}}", real=True) for c in names)
    ys = tuple(sp.Symbol(f"y_{{0,{c}}}", real=True) for c in names)
    ms = tuple(sp.Symbol(f"mu_{c}", real=True) for c in names)
    yp = tuple(sp.Symbol(f"y_{{t-1,{c}}}", real=True) for c in names)
    gray = lambda v: sum(gi * vi for gi, vi in zip(g, v))

    vt, vp = lam ** 2 * (1 - A ** 2), lam ** 2 * (1 - C ** 2)
    nll = (sum((a - m - A * (p - m)) ** 2 for a, p, m in zip(yt, yp, ms)) / (2 * vt)
           + sum((p - m - C * (z - m)) ** 2 for p, z, m in zip(yp, ys, ms)) / (2 * vp)
           + omega * (x_prev - coupling_mean(gray(yp), gray(ms))) ** 2 / (2 * lam ** 2))
    sol = sp.solve([sp.diff(nll, p) for p in yp], yp, dict=True)[0]
    solution = tuple(sol[p] for p in yp)

    a = A * (1 - C ** 2) / (1 - (A * C) ** 2)
    b = C * (1 - A ** 2) / (1 - (A * C) ** 2)
    eq4 = tuple(m + a * (p - m) + b * (z - m) for p, z, m in zip(yt, ys, ms))
    k = (1 - (A * C) ** 2) / (1 - A ** 2)
    omega_t = omega * (1 - C ** 2)
    gamma = omega_t / (k + omega_t * sum(gi ** 2 for gi in g))
    mismatch = x_prev - mu_x + C * (mu_x - gray(ms)) - gray([e - m for e, m in zip(eq4, ms)])
    closed = tuple(e + gamma * gi * mismatch for e, gi in zip(eq4, g))

    # One grouping that matches Remark 3's names: (1) structure consistency, (2) texture
    # semantics, (3) negative balance, (4) unmasked texture; plus a fifth, the ground-truth
    # texture term that Eq. 4 already has. Other groupings are as valid.
    gty = gray([p - m for p, m in zip(yt, ms)])
    gy0 = gray([z - m for z, m in zip(ys, ms)])
    terms = {
        "structure consistency": tuple(gamma * gi * x_prev for gi in g),
        "texture semantics": tuple(a * (p - m) for p, m in zip(yt, ms)),
        "negative balance": tuple(-gamma * gi * ((1 - C) * mu_x + C * gray(ms) + a * gty + b * gy0) for gi in g),
        "unmasked texture": tuple(ms),
        "ground-truth texture (as in Eq. 4)": tuple(b * (z - m) for z, m in zip(ys, ms)),
    }
    return StructureGuidedDerivation(
        nll=nll, unknowns=yp, solution=solution, closed_form=closed, terms=terms, gamma=gamma,
        symbols={"y_t": yt, "y_0": ys, "mu": ms, "g": g},
    )


def eq11_naive_candidate() -> sp.Expr:
    """A flawed single-channel candidate for Eq. 11 (a natural first guess): the texture marginal replaced by
    ``y_{t-1} | x_{t-1} ~ N(mu + (x_{t-1} - mu_x), lambda^2 (1 - C^2))``. Kept as a cautionary
    example: at t = 1 it returns mu + x_0 - mu_x, not y_0."""
    vt, vp = lam ** 2 * (1 - A ** 2), lam ** 2 * (1 - C ** 2)
    nll = (y_t - mu - A * (y_prev - mu)) ** 2 / (2 * vt) + (y_prev - mu - (x_prev - mu_x)) ** 2 / (2 * vp)
    return sp.solve(sp.Eq(sp.diff(nll, y_prev), 0), y_prev)[0]


def _condition_gaussian(mean: sp.Matrix, cov: sp.Matrix, n_query: int, observed: Sequence) -> Tuple[sp.Matrix, sp.Matrix]:
    """Mean and covariance of the first ``n_query`` entries of a Gaussian vector given the rest
    equal to ``observed`` (Schur complement)."""
    q = slice(0, n_query)
    o = slice(n_query, mean.rows)
    s_qo, s_oo = cov[q, o], cov[o, o]
    gain = s_qo * s_oo.inv()
    cond_mean = mean[q, :] + gain * (sp.Matrix(observed) - mean[o, :])
    cond_cov = cov[q, q] - gain * s_qo.T
    return cond_mean.applyfunc(sp.simplify), cond_cov.applyfunc(sp.simplify)


def true_posterior_given_y0(gray_weights: Sequence = None) -> Tuple[sp.Expr, sp.Expr]:
    """The exact ``p(y_{t-1,r} | y_t, y_0, x_{t-1})`` under the joint forward process (book:
    {ref}`eq-true-posterior`): (mean, variance) of the red channel.

    Three texture channels and the structure diffuse with independent noises, the structure from
    ``x_0 = G y_0``. Written as linear maps of independent standard normals, (y_{t-1}, y_t,
    x_{t-1}) is Gaussian given y_0; conditioning on (y_t, x_{t-1}) gives Eq. 4's mean and
    variance, with no x_{t-1} term: given y_0 the structure carries no information.
    """
    g = tuple(gray_weights) if gray_weights is not None else sp.symbols("g_r g_g g_b", positive=True)
    names = ("r", "g", "b")
    ys = [sp.Symbol(f"y_{{0,{c}}}", real=True) for c in names]
    ms = [sp.Symbol(f"mu_{c}", real=True) for c in names]
    yt = [sp.Symbol(f"y_{{t,{c}}}", real=True) for c in names]
    x0_ = sum(gi * z for gi, z in zip(g, ys))
    sC, sA = lam * sp.sqrt(1 - C ** 2), lam * sp.sqrt(1 - A ** 2)
    # independent standard normals: e1 (y_{t-1}, 3), e2 (y_t given y_{t-1}, 3), e3 (x_{t-1}, 1)
    rows_mean, rows_map = [], []
    zero = [0] * 7
    for c in range(3):                       # y_{t-1,c} = mu + C (y0 - mu) + sC e1_c
        row = list(zero); row[c] = sC
        rows_mean.append(ms[c] + C * (ys[c] - ms[c])); rows_map.append(row)
    for c in range(3):                       # y_{t,c} = mu + A (y_{t-1,c} - mu) + sA e2_c
        row = list(zero); row[c] = A * sC; row[3 + c] = sA
        rows_mean.append(ms[c] + A * C * (ys[c] - ms[c])); rows_map.append(row)
    row = list(zero); row[6] = sC            # x_{t-1} = mu_x + C (x_0 - mu_x) + sC e3
    rows_mean.append(mu_x + C * (x0_ - mu_x)); rows_map.append(row)
    mean, L = sp.Matrix(rows_mean), sp.Matrix(rows_map)
    cov = L * L.T
    order = [0, 3, 4, 5, 6, 1, 2]            # query y_{t-1,r}; observe y_t (3) and x_{t-1}; drop y_{t-1,g,b}
    mean, cov = mean.extract(order, [0]), cov.extract(order, order)
    mean, cov = mean[:5, :], cov[:5, :5]
    m, v = _condition_gaussian(mean, cov, 1, [*yt, x_prev])
    subs = {yt[0]: y_t, ys[0]: y0, ms[0]: mu}
    return sp.simplify(m[0].subs(subs, simultaneous=True)), sp.simplify(v[0])


def coupling_structure_moments(gray_weights: Sequence = None) -> Tuple[sp.Expr, sp.Expr]:
    """(mean, variance) of ``x_{t-1} | y_0`` implied by the coupling model (book: {ref}`eq-coupling`):
    ``y_{t-1} | y_0`` from the forward marginal, then ``x_{t-1} | y_{t-1}`` from the coupling.
    The mean equals the structure's forward marginal mean; the variance,
    ``lambda^2 (|g|^2 (1 - C^2) + 1/omega)``, does not equal the forward ``lambda^2 (1 - C^2)``."""
    g = tuple(gray_weights) if gray_weights is not None else sp.symbols("g_r g_g g_b", positive=True)
    ys = [sp.Symbol(f"y_{{0,{c}}}", real=True) for c in ("r", "g", "b")]
    ms = [sp.Symbol(f"mu_{c}", real=True) for c in ("r", "g", "b")]
    gray = lambda v: sum(gi * vi for gi, vi in zip(g, v))
    mean_prev = [m + C * (z - m) for z, m in zip(ys, ms)]
    mean = coupling_mean(gray(mean_prev), gray(ms))
    # x_{t-1} = G y_{t-1} + shift + (lambda / sqrt(omega)) xi with y_{t-1,c} = mean_c + sC e_c:
    # a linear map of the independent standard normals (e_r, e_g, e_b, xi)
    row = sp.Matrix([[*[gi * lam * sp.sqrt(1 - C ** 2) for gi in g], lam / sp.sqrt(omega)]])
    var = (row * row.T)[0]
    structure_mean = mu_x + C * (gray(ys) - mu_x)
    if sp.simplify(mean - structure_mean) != 0:
        raise AssertionError("the coupling mean is not the structure's marginal mean")
    return sp.simplify(mean), sp.factor(var)


def stationary_coupling_weight(gray_weights: Sequence = None) -> Dict[str, sp.Expr]:
    """The weight omega that the coupling's variance lambda^2/omega implies at the stationary
    noise level (book: {ref}`eq-coupling-weight`).

    Model the structure as the texture's gray plus its own noise, ``x = G m + lambda xi`` and
    ``y_c = m_c + lambda eta_c`` with ``xi, eta`` independent standard normals. Then
    ``Var(x - G y) = lambda^2 (1 + |g|^2)`` (both noises, an *unconditional* variance), whereas
    the coupling ``p(x | y)`` conditions on ``y``: ``Var(x | y) = lambda^2``, so ``omega = 1``.
    Returns ``{"unconditional": Var(x - G y), "conditional": Var(x | y), "omega": lambda^2 / Var(x | y)}``.
    """
    g = tuple(gray_weights) if gray_weights is not None else sp.symbols("g_r g_g g_b", positive=True)
    # (x, y_r, y_g, y_b) as a linear map of (xi, eta_r, eta_g, eta_b)
    L = sp.diag(lam, lam, lam, lam)
    cov = L * L.T
    diff = sp.Matrix([[1, *[-gi for gi in g]]])
    unconditional = sp.simplify((diff * cov * diff.T)[0])
    means = sp.Matrix(sp.symbols("m_x m_r m_g m_b", real=True))
    observed = sp.symbols("y_r y_g y_b", real=True)
    _, cond = _condition_gaussian(means, cov, 1, observed)
    conditional = sp.simplify(cond[0])
    return {"unconditional": unconditional, "conditional": conditional,
            "omega": sp.simplify(lam ** 2 / conditional)}


# ----------------------------------------------------------------------------- Eq. 5 / 13
def predicted_reverse_mean(noise=eps_hat) -> sp.Expr:
    """One noise-free Euler step of the reverse SDE from a noise prediction (book: {ref}`eq-predicted-mean`):

    y_hat_{t-1} = y_t - [theta_t (mu - y_t) + sigma_t^2 / sigma_bar_t * noise] Delta,
    written with theta' = theta_t Delta, sigma_t^2 Delta = 2 lambda^2 theta' and
    sigma_bar_t = lambda sqrt(1 - B^2).
    """
    sigma_bar = lam * sp.sqrt(1 - B ** 2)
    return y_t - theta_prime * (mu - y_t) - 2 * lam ** 2 * theta_prime / sigma_bar * noise


def true_noise() -> sp.Expr:
    """The noise that produced y_t from y_0: (y_t - m_t) / sigma_bar_t."""
    return (y_t - mu - B * (y0 - mu)) / (lam * sp.sqrt(1 - B ** 2))


@dataclass(frozen=True)
class DiscretisationGap:
    gap: sp.Expr              # y_hat(true noise) - Eq. 4, exact, in theta' and C
    series_fixed_b: sp.Expr   # expansion in theta' at fixed B (interior steps)
    leading_term: sp.Expr
    gap_at_t1: sp.Expr        # exact gap at t = 1 (C = 1)
    series_at_t1: sp.Expr


def derive_training_gap(order: int = 3) -> DiscretisationGap:
    """Compare the predicted mean with the *true* noise to the ideal state of Eq. 4.

    Substitutes A = exp(-theta') and C = B exp(theta'), so theta' -> 0 at fixed B is a refinement
    of the grid at a fixed noise level. Also returns the exact gap at t = 1 (C = 1, B = A).
    """
    eq4 = eq4_textbook_form().subs({A: sp.exp(-theta_prime), C: B * sp.exp(theta_prime)})
    gap = sp.simplify(predicted_reverse_mean(true_noise()) - eq4)
    series = sp.series(gap, theta_prime, 0, order).removeO()
    series = sp.collect(sp.simplify(sp.expand(series)), theta_prime, sp.factor)
    leading = sp.factor(sp.simplify(sp.expand(series).coeff(theta_prime, 2))) * theta_prime ** 2
    first = sp.simplify(sp.expand(series).coeff(theta_prime, 1))
    if first != 0:
        leading = first * theta_prime
    gap_t1 = sp.simplify(gap.subs(B, sp.exp(-theta_prime)))
    series_t1 = sp.series(gap_t1, theta_prime, 0, order).removeO()
    return DiscretisationGap(gap, series, leading, gap_t1, sp.collect(sp.expand(series_t1), theta_prime))


def l1_objective(predicted, target) -> sp.Expr:
    """The per-pixel L1 loss |y_hat_{t-1} - y*_{t-1}| (book: {ref}`eq-training-loss`)."""
    return sp.Abs(predicted - target)


# ----------------------------------------------------------------------------- lambdify helpers
def lambdify(expr, args: Sequence[sp.Symbol], modules="numpy") -> Callable:
    """Turn a SymPy expression into a function of NumPy arrays or torch tensors.

    The generated code uses only arithmetic and ``exp``/``sqrt`` from NumPy, so passing
    torch tensors works for the rational expressions of Eqs. 4, 10, 11 (A, B, C are inputs).
    ``modules="mpmath"`` gives an arbitrary-precision scalar function instead.
    """
    return sp.lambdify(tuple(args), expr, modules=modules)


def eq4_function() -> Callable:
    """f(x_t, x0, mu, A, B, C) from the *solved* gradient equation (not the textbook form)."""
    sol = derive_eq4().solution.subs({y_t: x_t, y0: x0})
    # B does not appear in the solution (it is A*C); accept it for a uniform signature.
    return lambdify(sol, (x_t, x0, mu, A, B, C))


def eq4_variance_function() -> Callable:
    """f(lambda, A, C) -> Var[y_{t-1} | y_t, y_0]."""
    return lambdify(derive_eq4().variance, (lam, A, C))


def eq11_function(gray_weights: Sequence[float], digits: int = 0) -> Callable:
    """f(y_t[3], y0[3], mu[3], x_prev, mu_x, A, C, omega) -> tuple of 3 channels, from solve().

    The raw ``solve()`` output suffers from cancellation when 1 - A^2 and 1 - C^2 are tiny
    (the first steps of the cosine schedule: 1 - A^2 ~ 3e-4 at t = 1 for T = 100), so in float64
    it is only good to ~1e-8 there. ``digits > 0`` evaluates it with mpmath at that many
    significant digits instead (scalar inputs, returns floats).
    """
    d = derive_eq11([sp.nsimplify(w) for w in gray_weights])
    s = d.symbols
    args = (*s["y_t"], *s["y_0"], *s["mu"], x_prev, mu_x, A, C, omega)
    funcs = [lambdify(expr, args, modules="mpmath" if digits else "numpy") for expr in d.solution]

    def f(y_t3, y03, mu3, xp, mx, a, c, w):
        flat = (*y_t3, *y03, *mu3, xp, mx, a, c, w)
        if not digits:
            return tuple(fn(*flat) for fn in funcs)
        import mpmath

        with mpmath.workdps(digits):
            flat = [mpmath.mpf(float(v)) for v in flat]
            return tuple(float(fn(*flat)) for fn in funcs)
    return f

"""The mean-reverting SDE of IR-SDE / StrDiffusion, discretised exactly as the official code does.

The forward process (book: {ref}`eq-mr-sde`) is

    dy = theta_t (mu - y) dt + sigma_t dw,   sigma_t^2 = 2 lambda^2 theta_t,

which drives an image ``y`` towards a Gaussian centred on the degraded image ``mu``
(for inpainting: the masked image) with stationary standard deviation ``lambda``.

Time is discrete, ``t = 0..T`` (0 = clean image). The schedule gives one ``theta_t`` per
index; the integral of theta over ``[0, t]`` is ``theta_bar_t = Delta * Theta_t`` with
``Theta_t = theta_1 + ... + theta_t`` and the global step ``Delta`` chosen so that
``exp(-theta_bar_T) = eps``.

Everything here is plain torch: no SymPy (the symbolic checks in ``strdiff_edu.symbolic``
and the tests must stay independent of this module), no hidden state, no device moves
other than the one the caller asks for through the inputs.
"""
from __future__ import annotations

import math
from typing import Optional, Union

import torch

TimeIndex = Union[int, torch.Tensor]

SCHEDULES = ("cosine", "linear", "constant")

# ITU-R BT.709 luma weights as used by scikit-image's rgb2gray (the paper's grayscale structure).
RGB_TO_GRAY = (0.2125, 0.7154, 0.0721)
# Coupling weight omega of Eq. 11 (book: {ref}`eq-coupling-weight`): the coupling's variance
# lambda^2 / omega is a variance *given* the texture; with the structure's own noise at the
# stationary level, Var(x | y) = lambda^2, so omega = 1. (The unconditional Var(x - G y) =
# lambda^2 (1 + |g|^2) would give 1 / (1 + |g|^2) = 0.64, but it counts the texture's noise,
# which the coupling conditions on.)
DEFAULT_STRUCTURE_WEIGHT = 1.0


# --------------------------------------------------------------------------- schedules
def cosine_theta_schedule(T: int, s: float = 0.008) -> torch.Tensor:
    """theta_i, i = 0..T, of the official code's "cosine" schedule (book: {ref}`eq-theta-cosine`).

    With ``N = T + 2`` and ``alpha_bar(k) = cos^2(((k/N) + s)/(1 + s) * pi/2) / alpha_bar(0)``
    for ``k = 0..N``, the schedule is ``theta_i = 1 - alpha_bar(i + 1)``. Note that this is the
    *cumulative* ``1 - alpha_bar`` of improved DDPM used directly as theta, not a per-step beta,
    so theta rises from ~1e-4 to ~1.
    """
    n = T + 2
    k = torch.arange(n + 1, dtype=torch.float64)
    alpha_bar = torch.cos(((k / n) + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = alpha_bar / alpha_bar[0]
    return 1.0 - alpha_bar[1:-1]


def linear_theta_schedule(T: int) -> torch.Tensor:
    """theta_i, i = 0..T, linear from DDPM's beta endpoints rescaled from 1000 steps to T."""
    scale = 1000.0 / (T + 1)
    return torch.linspace(1e-4 * scale, 0.02 * scale, T + 1, dtype=torch.float64)


def constant_theta_schedule(T: int) -> torch.Tensor:
    """theta_i = 1 for i = 0..T (the Ornstein–Uhlenbeck process with a constant rate)."""
    return torch.ones(T + 1, dtype=torch.float64)


def theta_schedule(name: str, T: int) -> torch.Tensor:
    """The named theta schedule (``"cosine"``, ``"linear"`` or ``"constant"``) of length T+1."""
    builders = {
        "cosine": cosine_theta_schedule,
        "linear": linear_theta_schedule,
        "constant": constant_theta_schedule,
    }
    if name not in builders:
        raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)} "
                         "or pass a custom array with thetas=")
    return builders[name](T)


# --------------------------------------------------------------------------- the SDE
class MeanRevertingSDE:
    """IR-SDE's mean-reverting SDE on a discrete grid ``t = 0..T`` (book: {ref}`eq-mr-sde`).

    Parameters
    ----------
    T:
        Number of diffusion steps. A checkpoint trained with one T must be sampled with the
        same T (the official code gives "white holes" otherwise).
    max_sigma:
        The stationary standard deviation lambda, in image units (images live in [0, 1]).
        The official YAML's ``max_sigma: 30`` means ``30/255``.
    eps:
        How close the mean gets to ``mu`` at ``t = T``: ``exp(-theta_bar_T) = eps``.
    schedule:
        ``"cosine"`` (the official default), ``"linear"`` or ``"constant"``.
    thetas:
        A custom array of T+1 positive values; overrides ``schedule``.

    Attributes
    ----------
    T, lam, dt, thetas (float64, length T+1), thetas_cumsum (Theta, float64, length T+1, Theta_0 = 0),
    sigmas (sigma_t), mean_weights (exp(-theta_bar_t)), marginal_stds (sigma_bar_t).

    Every method taking ``t`` accepts an ``int`` or an integer tensor of shape ``(B,)`` that
    gives one step per sample; coefficients are looked up in float64 and cast to the dtype
    and device of the data.
    """

    def __init__(self, T: int = 100, max_sigma: float = 30 / 255, eps: float = 0.005,
                 schedule: str = "cosine", thetas=None):
        if not isinstance(T, int) or T < 1:
            raise ValueError(f"T must be a positive integer, got {T!r}")
        if not max_sigma > 0:
            raise ValueError(f"max_sigma (lambda) must be positive, got {max_sigma!r}")
        if not 0 < eps < 1:
            raise ValueError(f"eps must lie in (0, 1), got {eps!r}: it is the fraction of "
                             "(x0 - mu) left at t = T")
        if thetas is None:
            thetas = theta_schedule(schedule, T)
        else:
            thetas = torch.as_tensor(thetas, dtype=torch.float64).flatten()
            schedule = "custom"
            if thetas.numel() != T + 1:
                raise ValueError(f"thetas must hold T+1 = {T + 1} values (theta_0..theta_T), "
                                 f"got {thetas.numel()}")
            if not bool((thetas[1:] > 0).all()):
                raise ValueError("thetas[1:] must be positive: theta is a mean-reversion rate")
        self.T = T
        self.lam = float(max_sigma)
        self.eps = float(eps)
        self.schedule = schedule
        self.thetas = thetas
        # Theta_t = sum_{i=1}^t theta_i; theta_0 only pads the array (it is never integrated).
        self.thetas_cumsum = torch.cumsum(thetas, 0) - thetas[0]
        self.dt = -math.log(eps) / float(self.thetas_cumsum[-1])
        self.sigmas = torch.sqrt(2 * self.lam ** 2 * thetas)
        self.mean_weights = torch.exp(-self.thetas_cumsum * self.dt)
        self.marginal_stds = self.lam * torch.sqrt(1 - torch.exp(-2 * self.thetas_cumsum * self.dt))
        # Eq. 4's coefficients, tabulated in float64 once: 1 - B^2 is ~1e-4 at t = 1, so
        # computing them in float32 per call would lose digits. Index 0 is undefined (nan).
        a = torch.exp(-self.thetas * self.dt)
        self.step_weights = a.clone()  # A_t = exp(-theta_t Delta), the one-step mean weight
        b = self.mean_weights
        c = torch.cat([torch.full((1,), math.nan, dtype=torch.float64), b[:-1]])
        a[0] = math.nan
        self.reverse_coef_xt = a * (1 - c ** 2) / (1 - b ** 2)
        self.reverse_coef_x0 = c * (1 - a ** 2) / (1 - b ** 2)
        self.prev_mean_weights = c  # C_t = exp(-theta_bar_{t-1})
        self.posterior_precision_ratio = (1 - b ** 2) / (1 - a ** 2)  # k_t in Eq. 11
        self.reverse_vars = self.lam ** 2 * (1 - a ** 2) * (1 - c ** 2) / (1 - b ** 2)
        self._cache: dict = {}

    def __repr__(self) -> str:
        return (f"MeanRevertingSDE(T={self.T}, max_sigma={self.lam:.6g}, eps={self.eps:g}, "
                f"schedule={self.schedule!r}, dt={self.dt:.6g})")

    def config(self) -> dict:
        """The constructor arguments, to be stored in checkpoints and compared on load."""
        return {"T": self.T, "max_sigma": self.lam, "eps": self.eps, "schedule": self.schedule}

    # ----------------------------------------------------------------- coefficient lookup
    def _coef(self, values: torch.Tensor, t: TimeIndex, like: torch.Tensor,
              lo: int = 0) -> torch.Tensor:
        """values[t] as a tensor broadcastable against ``like`` (same dtype and device)."""
        if isinstance(t, torch.Tensor) and t.ndim > 0:
            if t.dtype.is_floating_point:
                raise TypeError("t must hold integer step indices, got a floating tensor")
            if t.ndim != 1 or (like.ndim > 0 and t.shape[0] not in (1, like.shape[0])):
                raise ValueError(f"a per-sample t must have shape (B,) with B = batch size "
                                 f"{like.shape[0] if like.ndim else 1}, got {tuple(t.shape)}")
            t_min, t_max = int(t.min()), int(t.max())
        else:
            t_min = t_max = int(t)
        if t_min < lo or t_max > self.T:
            raise ValueError(f"time index out of range: got t in [{t_min}, {t_max}], "
                             f"this SDE allows {lo}..{self.T} (T={self.T})")
        key = (id(values), like.device)
        table = self._cache.get(key)
        if table is None:
            table = values.to(like.device)
            self._cache[key] = table
        if isinstance(t, torch.Tensor) and t.ndim > 0:
            c = table[t.to(like.device)]
            c = c.reshape(-1, *([1] * (like.ndim - 1)))
        else:
            c = table[int(t)]
        return c.to(like.dtype)

    # ----------------------------------------------------------------- SDE coefficients
    def theta(self, t: TimeIndex, like: torch.Tensor) -> torch.Tensor:
        """theta_t, the mean-reversion rate at step t."""
        return self._coef(self.thetas, t, like)

    def sigma(self, t: TimeIndex, like: torch.Tensor) -> torch.Tensor:
        """sigma_t = sqrt(2 lambda^2 theta_t) (book: {ref}`eq-sigma-theta`)."""
        return self._coef(self.sigmas, t, like)

    def drift(self, x: torch.Tensor, mu: torch.Tensor, t: TimeIndex) -> torch.Tensor:
        """Forward drift theta_t (mu - x) (book: {ref}`eq-mr-sde`)."""
        return self.theta(t, x) * (mu - x)

    def mean_weight(self, t: TimeIndex, like: torch.Tensor) -> torch.Tensor:
        """exp(-theta_bar_t), the fraction of (x0 - mu) left at step t."""
        return self._coef(self.mean_weights, t, like)

    def marginal_std(self, t: TimeIndex, like: torch.Tensor) -> torch.Tensor:
        """sigma_bar_t = lambda sqrt(1 - exp(-2 theta_bar_t)) (book: {ref}`eq-marginal`)."""
        return self._coef(self.marginal_stds, t, like)

    # ----------------------------------------------------------------- closed forms
    def marginal(self, x0: torch.Tensor, mu: torch.Tensor, t: TimeIndex):
        """Mean and std of ``x_t | x_0`` (book: {ref}`eq-marginal`).

        mean = mu + (x0 - mu) exp(-theta_bar_t),  std = lambda sqrt(1 - exp(-2 theta_bar_t)).
        Returns ``(mean, std)`` where ``std`` broadcasts against ``mean``.
        """
        _check_same_shape(x0=x0, mu=mu)
        mean = mu + (x0 - mu) * self.mean_weight(t, x0)
        return mean, self.marginal_std(t, x0)

    def transition(self, x_prev: torch.Tensor, mu: torch.Tensor, t: TimeIndex):
        """Exact one-step law of ``x_t | x_{t-1}`` (book: {ref}`eq-transition`), t = 1..T.

        mean = mu + (x_prev - mu) A,  std = lambda sqrt(1 - A^2),  A = exp(-theta_t Delta).
        Chaining it from x0 reproduces :meth:`marginal` exactly (no discretisation error),
        unlike the Euler–Maruyama :meth:`forward_step`.
        """
        _check_same_shape(x_prev=x_prev, mu=mu)
        a = self._coef(self.step_weights, t, x_prev, lo=1)
        return mu + (x_prev - mu) * a, self.lam * torch.sqrt(1 - a ** 2)

    def sample_transition(self, x_prev: torch.Tensor, mu: torch.Tensor, t: TimeIndex,
                          generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Draw ``x_t`` from the exact one-step law ``x_t | x_{t-1}`` (book: {ref}`eq-transition`), t = 1..T.

        Chained over levels t-1 -> t+r-1 it gives exactly the r-step law of the SDE (mean weight
        exp(-theta_bar_{t+r-1}) / exp(-theta_bar_{t-1})), unlike :meth:`forward_step`.
        """
        mean, std = self.transition(x_prev, mu, t)
        return mean + std * _randn_like(x_prev, generator)

    def add_noise(self, x0: torch.Tensor, mu: torch.Tensor, t: TimeIndex,
                  noise: torch.Tensor) -> torch.Tensor:
        """x_t = mean_t + sigma_bar_t * noise, for a given standard-normal ``noise``."""
        _check_same_shape(x0=x0, noise=noise)
        mean, std = self.marginal(x0, mu, t)
        return mean + std * noise

    def sample_marginal(self, x0: torch.Tensor, mu: torch.Tensor, t: TimeIndex,
                        generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Draw ``x_t ~ N(mean_t, sigma_bar_t^2)`` in one shot (book: {ref}`eq-marginal`)."""
        return self.add_noise(x0, mu, t, _randn_like(x0, generator))

    def noise_from_state(self, x_t: torch.Tensor, x0: torch.Tensor, mu: torch.Tensor,
                         t: TimeIndex) -> torch.Tensor:
        """The standard-normal noise that turns x0 into x_t: (x_t - mean_t) / sigma_bar_t (t >= 1)."""
        mean, _ = self.marginal(x0, mu, t)
        return (x_t - mean) / self._coef(self.marginal_stds, t, x_t, lo=1)

    def prior_sample(self, mu: torch.Tensor,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """The sampler's start, x_T = mu + lambda z (the stationary law around mu)."""
        return mu + self.lam * _randn_like(mu, generator)

    def ideal_reverse_state(self, x_t: torch.Tensor, x0: torch.Tensor, mu: torch.Tensor,
                            t: TimeIndex) -> torch.Tensor:
        """The ideal (maximum-likelihood) reverse state x*_{t-1} of paper Eq. 4 (book: {ref}`eq-ideal-reverse`).

        With A = exp(-theta'_t), B = exp(-theta_bar_t), C = exp(-theta_bar_{t-1}):

            x*_{t-1} = mu + A (1 - C^2)/(1 - B^2) (x_t - mu) + C (1 - A^2)/(1 - B^2) (x0 - mu).

        It is the mean of the Gaussian ``p(x_{t-1} | x_t, x_0)``; at t = 1 it returns x0.
        Defined for t = 1..T.
        """
        _check_same_shape(x_t=x_t, x0=x0, mu=mu)
        w_t = self._coef(self.reverse_coef_xt, t, x_t, lo=1)
        w_0 = self._coef(self.reverse_coef_x0, t, x_t, lo=1)
        return mu + w_t * (x_t - mu) + w_0 * (x0 - mu)

    def ideal_reverse_variance(self, t: TimeIndex, like: torch.Tensor) -> torch.Tensor:
        """Var[x_{t-1} | x_t, x_0] = lambda^2 (1 - A^2)(1 - C^2)/(1 - B^2) (book: {ref}`eq-ideal-reverse`)."""
        return self._coef(self.reverse_vars, t, like, lo=1)

    def structure_guided_reverse_state(self, y_t: torch.Tensor, y0: torch.Tensor, mu: torch.Tensor,
                                       x_prev: torch.Tensor, mu_x: torch.Tensor, t: TimeIndex,
                                       structure_weight: float = DEFAULT_STRUCTURE_WEIGHT,
                                       gray_weights=RGB_TO_GRAY) -> torch.Tensor:
        """Structure-guided ideal texture state y*_{t-1} (our derivation of paper Eq. 11; book: {ref}`eq-structure-guided`).

        The posterior mean of y_{t-1} under an *assumed coupling model* (a modelling choice, not
        the forward process): three factors, the texture transition y_t | y_{t-1}, the texture
        marginal y_{t-1} | y_0, and a coupling likelihood that ties the structure to the
        texture's gray projection G y = sum_c g_c y_c (book: {ref}`eq-coupling`):

            x_{t-1} | y_{t-1} ~ N(G y_{t-1} + (1 - C)(mu_x - G mu), lambda^2 / omega).

        Under the true joint forward process the structure's noise is independent of the
        texture's, so given y_0 the exact posterior mean is Eq. 4 (:meth:`ideal_reverse_state`;
        book: {ref}`eq-true-posterior`) and the structure adds nothing.

        The result is Eq. 4 plus a correction along the gray direction g:

            y* = y*_Eq4 + gamma_t g [x_{t-1} - mu_x + C (mu_x - G mu) - G (y*_Eq4 - mu)],
            gamma_t = omega_t / (k_t + omega_t |g|^2),  omega_t = omega (1 - C^2),
            k_t = (1 - B^2) / (1 - A^2).

        ``omega = structure_weight = 0`` gives Eq. 4 exactly; at t = 1 the result is y0 for any
        structure; because the coupling variance is constant in t, gamma_t fades with t -> 1, so
        the structure guides early and the texture late. The default omega = 1 is derived in
        :func:`strdiff_edu.symbolic.stationary_coupling_weight`.
        Shapes: texture tensors (B, 3, H, W); structure tensors (B, 1, H, W).
        """
        _check_same_shape(y_t=y_t, y0=y0, mu=mu)
        _check_same_shape(x_prev=x_prev, mu_x=mu_x)
        if structure_weight < 0:
            raise ValueError(f"structure_weight must be >= 0, got {structure_weight}")
        if y_t.ndim < 2 or x_prev.ndim != y_t.ndim or x_prev.shape[1] != 1:
            raise ValueError(f"expected texture (B, C, H, W) and a one-channel structure (B, 1, H, W); "
                             f"got texture {list(y_t.shape)} and structure {list(x_prev.shape)}")
        g = torch.as_tensor(gray_weights, dtype=y_t.dtype, device=y_t.device)
        if g.numel() != y_t.shape[1]:
            raise ValueError(f"gray_weights has {g.numel()} entries but the texture has "
                             f"{y_t.shape[1]} channels")
        g = g.view(1, -1, *([1] * (y_t.ndim - 2)))
        gray = lambda v: (g * v).sum(1, keepdim=True)
        eq4 = self.ideal_reverse_state(y_t, y0, mu, t)
        c = self._coef(self.prev_mean_weights, t, y_t, lo=1)
        k = self._coef(self.posterior_precision_ratio, t, y_t, lo=1)
        omega_t = structure_weight * (1 - c ** 2)
        gamma = omega_t / (k + omega_t * float((g ** 2).sum()))
        mismatch = x_prev - mu_x + c * (mu_x - gray(mu)) - gray(eq4 - mu)
        return eq4 + gamma * g * mismatch

    # ----------------------------------------------------------------- scores and steps
    def score_from_noise(self, noise: torch.Tensor, t: TimeIndex) -> torch.Tensor:
        """Score grad log p_t(x) = -noise / sigma_bar_t (book: {ref}`eq-score-from-noise`), t >= 1."""
        return -noise / self._coef(self.marginal_stds, t, noise, lo=1)

    def forward_step(self, x: torch.Tensor, mu: torch.Tensor, t: TimeIndex,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """One Euler–Maruyama step of the forward SDE from t-1 to t (book: {ref}`eq-forward-em`).

        x_t = x_{t-1} + theta_t (mu - x_{t-1}) Delta + sigma_t sqrt(Delta) z.
        """
        _check_same_shape(x=x, mu=mu)
        z = _randn_like(x, generator)
        return x + self.drift(x, mu, t) * self.dt + self.sigma(t, x) * math.sqrt(self.dt) * z

    def reverse_step(self, x_t: torch.Tensor, noise: torch.Tensor, mu: torch.Tensor,
                     t: TimeIndex, generator: Optional[torch.Generator] = None,
                     stochastic: bool = True, noise_scale: float = 1.0) -> torch.Tensor:
        """One Euler–Maruyama step of the reverse-time SDE (book: {ref}`eq-reverse-sde`) from t to
        t-1 (book: {ref}`eq-reverse-em`).

        x_{t-1} = x_t - [theta_t (mu - x_t) - sigma_t^2 score] Delta + sigma_t sqrt(Delta) z,
        with score = -noise / sigma_bar_t. ``stochastic=False`` drops the ``z`` term: that is the
        "reverse mean" the official code compares with Eq. 4 during training. ``noise_scale``
        multiplies the ``z`` term (a sampling temperature; 1 is the reverse SDE).
        """
        _check_same_shape(x_t=x_t, noise=noise, mu=mu)
        score = self.score_from_noise(noise, t)
        sigma = self.sigma(t, x_t)
        mean = x_t - (self.drift(x_t, mu, t) - sigma ** 2 * score) * self.dt
        if not stochastic or noise_scale == 0:
            return mean
        return mean + noise_scale * sigma * math.sqrt(self.dt) * _randn_like(x_t, generator)

    def reverse_ode_step(self, x_t: torch.Tensor, noise: torch.Tensor, mu: torch.Tensor,
                         t: TimeIndex) -> torch.Tensor:
        """One Euler step of the probability-flow ODE (half the score term, no noise)."""
        score = self.score_from_noise(noise, t)
        sigma = self.sigma(t, x_t)
        return x_t - (self.drift(x_t, mu, t) - 0.5 * sigma ** 2 * score) * self.dt


def _randn_like(x: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """Standard normal noise shaped like x; the generator (if any) must live on x's device."""
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def _check_same_shape(**tensors: torch.Tensor) -> None:
    shapes = {name: tuple(v.shape) for name, v in tensors.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{k}{list(s)}" for k, s in shapes.items())
        raise ValueError(f"shape mismatch: {listed}; these tensors must have the same shape "
                         "(an image batch (B, C, H, W) and its degraded mean mu)")


# --------------------------------------------------------------------------- generic SDE tools
def brownian_motion(n_paths: int, n_steps: int, t_end: float = 1.0,
                    generator: Optional[torch.Generator] = None,
                    dtype: torch.dtype = torch.float64, device=None):
    """Paths of standard Brownian motion on ``[0, t_end]`` (book: {ref}`eq-brownian`).

    Returns ``(times, paths)`` with ``paths`` of shape ``(n_paths, n_steps + 1)`` and
    ``paths[:, 0] = 0``; increments are independent ``N(0, dt)`` with ``dt = t_end / n_steps``.
    """
    dt = t_end / n_steps
    steps = torch.randn(n_paths, n_steps, generator=generator, dtype=dtype, device=device) * math.sqrt(dt)
    paths = torch.cat([torch.zeros(n_paths, 1, dtype=dtype, device=device), steps.cumsum(1)], 1)
    times = torch.linspace(0, t_end, n_steps + 1, dtype=dtype, device=device)
    return times, paths


def euler_maruyama(drift, diffusion, x0: torch.Tensor, times: torch.Tensor,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Integrate ``dx = drift(x, s) ds + diffusion(x, s) dw`` on the grid ``times`` (book: {ref}`eq-euler-maruyama`).

    ``drift`` and ``diffusion`` are callables ``(x, s) -> tensor`` (``s`` a float time);
    returns the states at every grid time, shape ``(len(times), *x0.shape)``.
    """
    xs = [x0]
    x = x0
    for s0, s1 in zip(times[:-1].tolist(), times[1:].tolist()):
        h = s1 - s0
        z = _randn_like(x, generator)
        x = x + drift(x, s0) * h + diffusion(x, s0) * math.sqrt(h) * z
        xs.append(x)
    return torch.stack(xs)

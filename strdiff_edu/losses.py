"""Training objectives: the reverse-mean matching loss (paper Eqs. 5 / 13) and the
discriminator's adversarial + triplet loss (paper Eqs. 14-16).

The denoisers output *noise*, but they are trained on *states*: the predicted noise is turned
into a reverse mean by one noise-free Euler step, which is compared in L1 with the ideal reverse
state — Eq. 4 (the official code's target, the default) or the structure-guided Eq. 11 of
Part II (an option).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .sde import DEFAULT_STRUCTURE_WEIGHT, MeanRevertingSDE, TimeIndex

TARGETS = ("eq4", "eq11")


def masked_l1(predicted: torch.Tensor, target: torch.Tensor, known: torch.Tensor,
              hole_weight: float = 10.0) -> torch.Tensor:
    """L1 with the hole up-weighted, as the official ``MatchingLoss``.

    Both parts are averaged over *all* C*H*W pixels (not over the area of each region), then over
    the batch: mean|m (p - t)| + hole_weight * mean|(1 - m)(p - t)|. ``known`` is 1 on known pixels.
    """
    if predicted.shape != target.shape:
        raise ValueError(f"prediction {list(predicted.shape)} and target {list(target.shape)} differ")
    err = (predicted - target).abs()
    known = known.to(err.dtype)
    return (err * known).mean() + hole_weight * (err * (1 - known)).mean()


def ideal_target(sde: MeanRevertingSDE, x_t: torch.Tensor, x0: torch.Tensor, mu: torch.Tensor,
                 t: TimeIndex, target: str = "eq4", structure_prev: Optional[torch.Tensor] = None,
                 structure_mean: Optional[torch.Tensor] = None,
                 structure_weight: float = DEFAULT_STRUCTURE_WEIGHT) -> torch.Tensor:
    """The ideal reverse state the network is trained to reach (the target of
    {ref}`eq-training-loss`, paper Eqs. 5 / 13): Eq. 4, or Eq. 11 (needs the structure x_{t-1} and
    its terminal mean mu_x)."""
    if target == "eq4":
        return sde.ideal_reverse_state(x_t, x0, mu, t)
    if target == "eq11":
        if structure_prev is None or structure_mean is None:
            raise ValueError("target='eq11' needs structure_prev (x_{t-1}) and structure_mean (mu_x)")
        return sde.structure_guided_reverse_state(x_t, x0, mu, structure_prev, structure_mean, t,
                                                  structure_weight=structure_weight)
    raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")


def reverse_matching_loss(sde: MeanRevertingSDE, predicted_noise: torch.Tensor, x_t: torch.Tensor,
                          mu: torch.Tensor, t: TimeIndex, ideal: torch.Tensor, known: torch.Tensor,
                          hole_weight: float = 10.0) -> torch.Tensor:
    """Paper Eq. 5 / 13 (book: {ref}`eq-training-loss`): L1 between the predicted reverse mean
    (book: {ref}`eq-predicted-mean`) and the ideal state ``ideal``.

    The reverse step is computed in float32 even under bf16 autocast: its coefficients span
    four orders of magnitude.
    """
    predicted_mean = sde.reverse_step(x_t.float(), predicted_noise.float(), mu.float(), t, stochastic=False)
    return masked_l1(predicted_mean, ideal.float(), known, hole_weight)


def clean_matching_loss(predicted_clean: torch.Tensor, clean: torch.Tensor, known: torch.Tensor,
                        hole_weight: float = 10.0, colour_weight: float = 0.0) -> torch.Tensor:
    """Eq. 5 with the time weight gamma_t = 1 / (x0 coefficient of Eq. 4) (book:
    {ref}`eq-clean-loss`): the hole-weighted L1 between the network's clean-state prediction
    ``x0_hat`` and the clean state ``x0``.

    The reverse mean of Eq. 4 depends on x0 through ``C_t (1 - A_t^2) / (1 - B_t^2) (x0 - mu)``,
    so an error in the hole's content reaches the official loss scaled by that coefficient
    (1 at t = 1, ~1e-3 at t = T for the cpu preset); dividing it out gives every t the same
    say in what the hole should contain. Computed in float32.

    ``colour_weight`` > 0 adds that weight times :func:`hole_colour_l1`, the error of the hole's
    mean colour (an option; the per-pixel L1 leaves the hole's mean to a median of pixels)."""
    loss = masked_l1(predicted_clean.float(), clean.float(), known, hole_weight)
    if colour_weight:
        loss = loss + colour_weight * hole_colour_l1(predicted_clean.float(), clean.float(), known)
    return loss


def hole_colour_l1(predicted: torch.Tensor, target: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Mean over images and channels of |mean_hole(predicted) - mean_hole(target)| (images
    without a hole add 0)."""
    from .metrics import hole_mean_colour

    return hole_mean_colour(predicted - target, known).abs().mean()


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor, anchor: torch.Tensor,
                       margin: float = 1.0, triplet_weight: float = 1.0):
    """The discriminator objective of the official code (paper Eqs. 14-16; book:
    {ref}`eq-disc-adversarial`, {ref}`eq-disc-triplet`, {ref}`eq-disc-total`).

    softplus(-D_real) + softplus(D_fake) push real pairs up and fake pairs down; the triplet term
    max(|D_a - D_r| - |D_a - D_f| + margin, 0) asks the anchor (known region denoised, hole still
    noisy) to score closer to the real pair than to the fake one. The official weights are 1:1:1
    (``triplet_weight`` is the paper's balance parameter). Returns (total, parts dict).
    """
    real, fake, anchor = (v.float().flatten() for v in (real, fake, anchor))
    adv_real = F.softplus(-real).mean()
    adv_fake = F.softplus(fake).mean()
    # PyTorch's TripletMarginLoss on scalars: p = 2 distance with eps = 1e-6 added to the difference.
    d_pos = (anchor - real + 1e-6).abs()
    d_neg = (anchor - fake + 1e-6).abs()
    triplet = torch.clamp(d_pos - d_neg + margin, min=0).mean()
    total = adv_real + adv_fake + triplet_weight * triplet
    return total, {"adv_real": adv_real.detach(), "adv_fake": adv_fake.detach(), "triplet": triplet.detach()}

"""Train a discriminator alone between two fixed distributions: what a GAN's D loss estimates.

With G frozen, the best D of the minimax loss reaches ``log 4 - 2 JSD(p_r || p_g)`` (Goodfellow
et al. 2014), and the best 1-Lipschitz critic of the Wasserstein loss reaches ``-W1`` (Arjovsky et
al. 2017). :func:`fit_discriminator` is that inner maximisation, used to show D* in 1-D, the
saturation of JS on disjoint supports and the critic's W1 estimate (notebooks 08, 09 and 13).
:func:`optimal_discriminator` gives the target itself for two known 1-D densities: D* and V(D*)
on a grid.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..checks import check_int, check_number
from .losses import get_loss


def fit_discriminator(D: nn.Module, real: Callable, fake: Callable, *, steps: int,
                      loss="minimax", penalty: Callable | None = None, batch_size: int = 256,
                      lr: float = 1e-3, betas=(0.5, 0.999),
                      generator: torch.Generator | None = None,
                      callback: Callable[[int, nn.Module], None] | None = None) -> torch.Tensor:
    """Train ``D`` for ``steps`` Adam steps on ``loss.d_loss(D(real), D(fake))`` (+ ``penalty``).

    ``real`` and ``fake`` are samplers ``f(n, generator) -> (n, ...)`` (e.g. a frozen G's samples
    or :func:`advlab.data.toy_curve`); ``penalty(D, real, fake, generator=generator)`` is added
    to the loss (e.g. :func:`advlab.gan.losses.gradient_penalty`, or a
    ``functools.partial`` of it with another ``weight``), so every random number of the run
    comes from ``generator``; ``callback(step, D)`` runs before each step and once after the
    last (step = ``steps``). Returns the D loss of every step ``(steps,)``.
    """
    if not isinstance(D, nn.Module):
        raise TypeError(f"D must be a torch.nn.Module, got {type(D).__name__}")
    if not callable(real) or not callable(fake):
        raise TypeError("real and fake must be samplers f(n, generator)")
    if penalty is not None and not callable(penalty):
        raise TypeError(f"penalty must be callable(D, real, fake, generator=...), got "
                        f"{type(penalty).__name__}")
    steps, batch_size = check_int(steps, "steps"), check_int(batch_size, "batch_size")
    lr = check_number(lr, "lr", low=0, strict=True)
    loss = get_loss(loss)
    opt = torch.optim.Adam(D.parameters(), lr=lr, betas=tuple(betas))
    history = torch.empty(steps)
    D.train()
    for step in range(steps):
        if callback is not None:
            callback(step, D)
        x_real, x_fake = real(batch_size, generator), fake(batch_size, generator)
        value = loss.d_loss(D(x_real), D(x_fake))
        if penalty is not None:
            value = value + penalty(D, x_real, x_fake, generator=generator)
        opt.zero_grad()
        value.backward()
        opt.step()
        history[step] = value.detach()
    if callback is not None:
        callback(steps, D)
    return history


def optimal_discriminator(p_r, p_g, x: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The best discriminator between two known 1-D densities, and the game's value there.

    ``p_r`` and ``p_g`` have ``log_prob`` (e.g. ``torch.distributions.Normal``); ``x`` is an
    evenly spaced grid ``(N,)`` that covers both. Returns ``D*`` on the grid ``(N,)`` and

        V(D*, G) = integral of p_r log D* + p_g log(1 - D*) dx   (= -log 4 + 2 JSD(p_r || p_g)),

    the integral by the rectangle rule (sum over the grid times its spacing). D* =
    p_r / (p_r + p_g) is computed as ``sigmoid(log p_r - log p_g)``: its logit is the log density
    ratio, so it stays defined where both densities underflow to 0, and a density that is 0
    contributes 0 to the integral.
    """
    for p, name in ((p_r, "p_r"), (p_g, "p_g")):
        if not callable(getattr(p, "log_prob", None)):
            raise TypeError(f"{name} must be a distribution with log_prob, got {type(p).__name__}")
    if not isinstance(x, torch.Tensor) or x.dim() != 1 or not x.is_floating_point():
        raise TypeError("x must be a 1-D floating-point tensor (an evenly spaced grid)")
    if len(x) < 2:
        raise ValueError(f"x must hold at least 2 grid points, got {len(x)}")
    step = x[1:] - x[:-1]
    dx = float(step[0])
    if dx <= 0 or not torch.allclose(step, step[0].expand_as(step), rtol=1e-3, atol=0):
        raise ValueError("x must be an increasing, evenly spaced grid")
    log_r, log_g = p_r.log_prob(x), p_g.log_prob(x)
    logit = log_r - log_g
    d_star = torch.sigmoid(logit)
    dens_r, dens_g = log_r.exp(), log_g.exp()
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    term_r = torch.where(dens_r > 0, dens_r * torch.nn.functional.logsigmoid(logit), zero)
    term_g = torch.where(dens_g > 0, dens_g * torch.nn.functional.logsigmoid(-logit), zero)
    return d_star, float((term_r + term_g).sum() * dx)

"""Train a discriminator alone between two fixed distributions: what a GAN's D loss estimates.

With G frozen, the best D of the minimax loss reaches ``log 4 - 2 JSD(p_r || p_g)`` (Goodfellow
et al. 2014), and the best 1-Lipschitz critic of the Wasserstein loss reaches ``-W1`` (Arjovsky et
al. 2017). :func:`fit_discriminator` is that inner maximisation, used to show D* in 1-D, the
saturation of JS on disjoint supports and the critic's W1 estimate (notebooks 08, 09 and 13).
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

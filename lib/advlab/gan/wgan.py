"""Wasserstein GAN pieces beyond the loss: weight clipping, the paper settings, the estimate.

The loss pair lives in :mod:`advlab.gan.losses` (``"wasserstein"``, and ``"wgan-gp"``, which adds
:func:`~advlab.gan.losses.gradient_penalty`). Weight clipping (Arjovsky et al. 2017, Algorithm 1)
is a trick: after every critic step, clamp every critic parameter into [-c, c], so the critic
stays in a compact set of K-Lipschitz functions for some K.

    trainer = GANTrainer(G, Critic(), data, **clip_settings())     # WGAN, paper settings
    trainer = GANTrainer(G, Critic(), data, **gp_settings())       # WGAN-GP, paper settings
"""

from __future__ import annotations

import torch

from ..checks import batched, check_number, module_device
from .tricks import Trick


class WeightClipping(Trick):
    """``after_d_step``: clamp every parameter of D into ``[-clip, clip]`` (paper: 0.01)."""

    def __init__(self, clip: float = 0.01):
        self.clip = check_number(clip, "clip", low=0, strict=True)

    @torch.no_grad()
    def after_d_step(self, ctx) -> None:
        for p in ctx.D.parameters():
            p.clamp_(-self.clip, self.clip)


def clip_settings(clip: float = 0.01) -> dict:
    """GANTrainer settings of WGAN (Arjovsky et al. 2017, Algorithm 1): RMSprop at 5e-5, five
    critic steps per generator step, weights clipped to 0.01 after each critic step."""
    return {"loss": "wasserstein", "optimizer": "rmsprop", "lr_g": 5e-5, "lr_d": 5e-5,
            "n_critic": 5, "batch_size": 64, "tricks": [WeightClipping(clip)]}


def gp_settings() -> dict:
    """GANTrainer settings of WGAN-GP (Gulrajani et al. 2017, Algorithm 1): Adam at 1e-4 with
    betas (0, 0.9), five critic steps per generator step, lambda = 10 (inside the loss)."""
    return {"loss": "wgan-gp", "optimizer": "adam", "lr_g": 1e-4, "lr_d": 1e-4,
            "betas": (0.0, 0.9), "n_critic": 5, "batch_size": 64}


def wasserstein_estimate(critic, real: torch.Tensor, fake: torch.Tensor,
                         batch_size: int = 500) -> float:
    """The critic's estimate of W1 (up to its Lipschitz constant): mean f(real) - mean f(fake).

    Both sets are in the critic's input range ([-1, 1]); the critic runs in eval mode and is
    put back in the mode it was in.
    """
    if not isinstance(real, torch.Tensor) or not isinstance(fake, torch.Tensor):
        raise TypeError("real and fake must be tensors")
    def mean_score(x):
        return batched(critic, x, batch_size=batch_size, models=[critic],
                       device=module_device(critic)).double().mean()

    return float(mean_score(real) - mean_score(fake))

"""Wasserstein GAN pieces beyond the loss: the two Lipschitz constraints as tricks, the paper
settings and the critic's estimate.

The loss pair is ``"wasserstein"`` in :mod:`advlab.gan.losses`; the constraint comes from a
trick of :class:`advlab.gan.GANTrainer`:

* :class:`WeightClipping` (Arjovsky et al. 2017, Algorithm 1): after every critic step, clamp
  every critic parameter into [-c, c], so the critic stays in a compact set of K-Lipschitz
  functions for some K;
* :class:`GradientPenalty` (Gulrajani et al. 2017, Algorithm 1): add
  :func:`~advlab.gan.losses.gradient_penalty` to the critic's loss, with the interpolation
  weights drawn from the trainer's generator.

    trainer = GANTrainer(G, Critic(), data, **clip_settings())     # WGAN, paper settings
    trainer = GANTrainer(G, Critic(), data, **gp_settings())       # WGAN-GP, paper settings
"""

from __future__ import annotations

import torch

from ..checks import batched, check_number, module_device
from .losses import GP_WEIGHT, gradient_penalty
from .tricks import Trick


class WeightClipping(Trick):
    """``after_d_step``: clamp every parameter of D into ``[-clip, clip]`` (paper: 0.01)."""

    def __init__(self, clip: float = 0.01):
        self.clip = check_number(clip, "clip", low=0, strict=True)

    @torch.no_grad()
    def after_d_step(self, ctx) -> None:
        for p in ctx.D.parameters():
            p.clamp_(-self.clip, self.clip)


class GradientPenalty(Trick):
    """``d_loss``: add ``weight * E[(||grad f(x_hat)||_2 - 1)^2]`` (paper: lambda = 10).

    x_hat interpolates the step's real batch and its fake batch (detached), one weight
    eps ~ U[0, 1] per sample drawn from the loop's generator, so a run's random numbers all come
    from the trainer's seed and a resumed run repeats them. A critic with batch norm is refused
    with a ``ValueError`` the first time the hook runs, before D's first step.
    """

    def __init__(self, weight: float = GP_WEIGHT):
        self.weight = check_number(weight, "weight", low=0)

    def d_loss(self, loss, ctx):
        return loss + gradient_penalty(ctx.D, ctx.real, ctx.fake.detach(), weight=self.weight,
                                       generator=ctx.generator)


def clip_settings(clip: float = 0.01) -> dict:
    """GANTrainer settings of WGAN (Arjovsky et al. 2017, Algorithm 1): RMSprop at 5e-5, five
    critic steps per generator step, weights clipped to 0.01 after each critic step."""
    return {"loss": "wasserstein", "optimizer": "rmsprop", "lr_g": 5e-5, "lr_d": 5e-5,
            "n_critic": 5, "batch_size": 64, "tricks": [WeightClipping(clip)]}


def gp_settings(weight: float = GP_WEIGHT) -> dict:
    """GANTrainer settings of WGAN-GP (Gulrajani et al. 2017, Algorithm 1): Adam at 1e-4 with
    betas (0, 0.9), five critic steps per generator step, a gradient penalty of weight
    lambda = 10 on every critic step."""
    return {"loss": "wasserstein", "optimizer": "adam", "lr_g": 1e-4, "lr_d": 1e-4,
            "betas": (0.0, 0.9), "n_critic": 5, "batch_size": 64,
            "tricks": [GradientPenalty(weight)]}


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

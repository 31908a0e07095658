"""GAN losses as a registry of named (discriminator loss, generator loss) pairs.

Every loss works on the discriminator's raw outputs (logits), never on probabilities:
D(x) = sigmoid(l), so log D(x) = -softplus(-l) and log(1 - D(x)) = -softplus(l), which is exact
and stable where log(sigmoid(l)) would underflow.

The game of Goodfellow et al. (2014) is

    min_G max_D  V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))].

D maximises V, i.e. minimises ``-V`` (binary cross-entropy with targets 1 for real and 0 for
fake). At D = 1/2 everywhere V = -log 4, so the discriminator loss is log 4 = 2 log 2.

* ``"minimax"`` (alias ``"saturating"``): G minimises E_z[log(1 - D(G(z)))], the game itself.
  Its gradient vanishes when D confidently rejects the fakes (D(G(z)) -> 0), early in training.
* ``"non-saturating"``: G minimises -E_z[log D(G(z))] instead: the same fixed point, strong
  gradients exactly where the minimax loss saturates (Goodfellow et al. 2014, section 3).

One-sided label smoothing (Salimans et al. 2016) is ``real_label < 1``: the real targets become
e.g. 0.9 while fake targets stay 0. Add a loss with :func:`register_loss`. A term that needs D
itself (the gradient penalty of WGAN-GP) is not a loss but a trick on the ``d_loss`` hook:
:class:`advlab.gan.wgan.GradientPenalty` adds :func:`gradient_penalty` to D's loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..checks import check_number


@dataclass(frozen=True)
class GANLoss:
    """A named pair of losses on logits: ``d_loss(real_out, fake_out, real_label=1.0)`` for D
    and ``g_loss(fake_out)`` for G."""

    name: str
    d_loss: Callable[..., torch.Tensor]
    g_loss: Callable[[torch.Tensor], torch.Tensor]
    smoothable: bool = True  # whether real_label (one-sided label smoothing) means anything


LOSSES: dict[str, GANLoss] = {}


def register_loss(name: str, d_loss, g_loss, *, smoothable: bool = True,
                  aliases=()) -> GANLoss:
    """Add a loss to :data:`LOSSES` under ``name`` (and ``aliases``); return it.

    ``d_loss(real_out, fake_out, real_label)`` (the trainer always passes ``real_label``) and
    ``g_loss(fake_out)`` take D's raw outputs and return scalars to minimise.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if not callable(d_loss) or not callable(g_loss):
        raise TypeError("d_loss and g_loss must be callable")
    loss = GANLoss(name, d_loss, g_loss, smoothable)
    for key in (name, *aliases):
        if key in LOSSES:
            raise ValueError(f"a GAN loss named {key!r} is already registered")
        LOSSES[key] = loss
    return loss


def get_loss(loss) -> GANLoss:
    """A :class:`GANLoss` from its registered name (or the object itself)."""
    if isinstance(loss, GANLoss):
        return loss
    if not isinstance(loss, str):
        raise TypeError(f"loss must be a loss name or a GANLoss, got {type(loss).__name__}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    return LOSSES[loss]


def bce_d_loss(real_out: torch.Tensor, fake_out: torch.Tensor,
               real_label: float = 1.0) -> torch.Tensor:
    """-V with soft real targets: BCE(real, real_label) + BCE(fake, 0), each a batch mean.

    With ``real_label = t``: t softplus(-l) + (1 - t) softplus(l) on real logits l. Only the
    real targets change; the fake targets stay exactly 0 (one-sided smoothing).
    """
    real_term = F.softplus(-real_out).mean()
    if real_label != 1.0:
        real_term = F.binary_cross_entropy_with_logits(
            real_out, torch.full_like(real_out, real_label))
    return real_term + F.softplus(fake_out).mean()


def saturating_g_loss(fake_out: torch.Tensor) -> torch.Tensor:
    """E_z[log(1 - D(G(z)))] = -E[softplus(l)]: G minimises the game's value directly."""
    return -F.softplus(fake_out).mean()


def non_saturating_g_loss(fake_out: torch.Tensor) -> torch.Tensor:
    """-E_z[log D(G(z))] = E[softplus(-l)]."""
    return F.softplus(-fake_out).mean()


MINIMAX = register_loss("minimax", bce_d_loss, saturating_g_loss, aliases=("saturating",))
NON_SATURATING = register_loss("non-saturating", bce_d_loss, non_saturating_g_loss)


# --- Wasserstein losses (Arjovsky et al. 2017; Gulrajani et al. 2017) ---------------------------
# The critic f is not a classifier: its outputs are unbounded scores, not logits of a probability.
# For f in the 1-Lipschitz functions, E_x[f(x)] - E_z[f(G(z))] is (at its maximum) the
# Wasserstein-1 distance between the data and G's distribution, so the critic minimises its
# negative. The Lipschitz constraint comes from outside the loss, as a trick: weight clipping after
# every critic step (:class:`advlab.gan.wgan.WeightClipping`) or the gradient penalty below added
# to the critic's loss (:class:`advlab.gan.wgan.GradientPenalty`).


def wasserstein_d_loss(real_out: torch.Tensor, fake_out: torch.Tensor,
                       real_label: float = 1.0) -> torch.Tensor:
    """E[f(G(z))] - E[f(x)]: minus the critic's estimate of W1 (``real_label`` is unused)."""
    return fake_out.mean() - real_out.mean()


def wasserstein_g_loss(fake_out: torch.Tensor) -> torch.Tensor:
    """-E[f(G(z))]: G moves its samples up the critic's slope."""
    return -fake_out.mean()


GP_WEIGHT = 10.0  # lambda of Gulrajani et al. (2017), used for every experiment in the paper


def gradient_penalty(D, real: torch.Tensor, fake: torch.Tensor, *, weight: float = GP_WEIGHT,
                     eps: torch.Tensor | None = None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP's penalty: ``weight * E[(||grad_x f(x_hat)||_2 - 1)^2]`` at random interpolates.

    x_hat = eps x + (1 - eps) G(z) with one eps ~ U[0, 1] per sample, shape (N,): given, or drawn
    from ``generator`` (the global RNG when None). The norm is over each sample's flattened
    gradient. The graph is kept (``create_graph=True``) so the penalty's own gradient reaches
    the critic's weights. A critic with batch norm is refused: it mixes the samples of a batch,
    so a sample's "gradient" would depend on the others and the penalty would constrain the
    wrong function.
    """
    from .nets import has_batch_norm

    weight = check_number(weight, "weight", low=0)
    if has_batch_norm(D):
        raise ValueError("D must not use batch norm with a gradient penalty (WGAN-GP): the "
                         "penalty is per sample and batch norm couples the samples; use "
                         "advlab.gan.nets.Critic (norm='none') or norm='layer'")
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape, got {tuple(real.shape)} "
                         f"and {tuple(fake.shape)}")
    n = len(real)
    if eps is None:
        eps = torch.rand(n, generator=generator, device=real.device, dtype=real.dtype)
    if eps.shape != (n,):
        raise ValueError(f"eps must have shape ({n},), got {tuple(eps.shape)}")
    eps = eps.view(n, *([1] * (real.dim() - 1)))
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    out = D(x_hat)
    out = out[0] if isinstance(out, tuple) else out
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return weight * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


WASSERSTEIN = register_loss("wasserstein", wasserstein_d_loss, wasserstein_g_loss,
                            smoothable=False)

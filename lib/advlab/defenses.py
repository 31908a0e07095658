"""Defences against adversarial examples, and how to tell a real one from a masked gradient.

* Defensive distillation (Papernot et al. 2016, arXiv:1511.04508): :func:`distill`,
  :func:`softened`, :func:`tempered_cross_entropy`, :class:`Temperature`, and
  :func:`input_gradient_norm` to see what it does.
* Adversarial training (Goodfellow et al. 2015; Madry et al. 2018; "fast" FGSM training with a
  random start, Wong et al. 2020): :func:`adversarial_training`, with the attack passed in.
* Augmentation on whole batches: :func:`random_shift`, :func:`gaussian_noise`, :func:`cutout`,
  :func:`augmentation`.
* Uncertainty (Gal & Ghahramani 2016; Lakshminarayanan et al. 2017; Smith & Gal 2018):
  :func:`mc_dropout_predict`, :func:`ensemble_predict`, :class:`Ensemble` (their detection
  AUROC is :func:`advlab.metrics.auroc`).

Training goes through :func:`advlab.train.fit` (its ``loss_fn`` and ``batch_transform`` hooks),
so there is one training loop in the course. Attacks come in as callables, e.g.
``functools.partial(advlab.attacks.pgd, steps=7)``; this module does not import them.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .checks import batched, check_images, check_int, check_number, eval_mode, module_device
from .models import split_at_dropout
from .train import _as_tensors, fit, predict

# --- helpers ----------------------------------------------------------------------------------


def _randn(shape, like: torch.Tensor, generator) -> torch.Tensor:
    where = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=where).to(like.device, like.dtype)


# --- defensive distillation -------------------------------------------------------------------


class Temperature(nn.Module):
    """``model`` with its logits divided by ``temperature``: ``z(x) / T``.

    Training through this wrapper at ``T`` and deploying the bare model is distillation's
    "test at T = 1". Wrapping a distilled model again is also how an attacker undoes the
    scaling (Carlini & Wagner 2016): the gradient of the loss on ``z / T`` no longer vanishes.
    """

    def __init__(self, model: nn.Module, temperature: float):
        super().__init__()
        self.model = model
        self.temperature = check_number(temperature, "temperature", low=0, strict=True)

    def forward(self, x):
        return self.model(x) / self.temperature


def softened(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The softened distribution ``softmax(z / T)``; uniform as ``T`` grows, one-hot as it shrinks."""
    temperature = check_number(temperature, "temperature", low=0, strict=True)
    return F.softmax(logits / temperature, dim=-1)


def tempered_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                           temperature: float) -> torch.Tensor:
    """Distillation's loss ``CE(softmax(z / T), y)``, the mean over the batch.

    ``targets`` are class indices ``(N,)`` (int64) or probability rows ``(N, K)`` such as the
    teacher's :func:`softened` predictions, for which the loss is
    ``-sum_k q_k log softmax(z / T)_k``. It is computed from ``log_softmax(z / T)``, so it stays
    finite where ``softmax(z / T)`` itself underflows to 0.
    """
    temperature = check_number(temperature, "temperature", low=0, strict=True)
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got "
                        f"{getattr(logits, 'dtype', type(logits).__name__)}")
    if logits.dim() != 2:
        raise ValueError(f"logits must be 2-D (N, K), got shape {tuple(logits.shape)}")
    if not isinstance(targets, torch.Tensor):
        raise TypeError(f"targets must be a tensor, got {type(targets).__name__}")
    hard = targets.dtype == torch.long and targets.shape == logits.shape[:1]
    if not hard and not (targets.is_floating_point() and targets.shape == logits.shape):
        raise ValueError(f"targets must be class indices (int64, shape ({len(logits)},)) or "
                         f"probability rows (float, shape {tuple(logits.shape)}), got "
                         f"{targets.dtype} {tuple(targets.shape)}")
    return F.cross_entropy(logits / temperature, targets)


def _fresh_copy(model: nn.Module, seed: int) -> nn.Module:
    """A copy of ``model``'s architecture with newly initialised weights (same seed, same weights)."""
    clone = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in clone.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    return clone


def distill(teacher: nn.Module, data, *, temperature: float, epochs: int,
            student: nn.Module | None = None, teacher_epochs: int | None = None,
            seed: int = 0, **fit_kwargs) -> nn.Module:
    """Defensive distillation (Papernot, McDaniel, Wu, Jha & Swami 2016, arXiv:1511.04508).

    1. Train ``teacher`` in place on the hard labels with the loss ``CE(softmax(z / T), y)``.
    2. Label the training images with the teacher's soft predictions ``softmax(z_teacher / T)``.
    3. Train ``student`` (default: the teacher's architecture, freshly initialised) on those soft
       labels with the same loss at the same ``T``.

    Return the student, to be used as it is, i.e. at ``T = 1``: its logits are not divided by
    anything, so they come out about ``T`` times larger than a normal network's and the softmax
    saturates. ``fit_kwargs`` (``lr``, ``batch_size``, ``device``, ``progress``, ...) go to
    :func:`advlab.train.fit` for both models. ``teacher_epochs`` defaults to ``epochs``.
    """
    temperature = check_number(temperature, "temperature", low=0, strict=True)
    epochs = check_int(epochs, "epochs")
    teacher_epochs = epochs if teacher_epochs is None else check_int(teacher_epochs, "teacher_epochs")
    images, labels = _as_tensors(data)
    if student is None:
        student = _fresh_copy(teacher, seed + 1)

    def tempered_ce(logits, targets):
        return tempered_cross_entropy(logits, targets, temperature)

    fit(teacher, (images, labels), teacher_epochs, loss_fn=tempered_ce, seed=seed, **fit_kwargs)
    soft_labels = softened(predict(teacher, images), temperature)
    fit(student, (images, soft_labels), epochs, loss_fn=tempered_ce, seed=seed + 1, **fit_kwargs)
    return student.eval()


def input_gradient_norm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                        p: float = 1.0) -> torch.Tensor:
    """Per-image ``||grad_x CE(model(x), y)||_p``: the signal FGSM follows (one value per image).

    Distillation at high ``T`` makes this exactly 0 for most inputs (float32 softmax saturates
    to one-hot), so FGSM's ``sign(0) = 0`` moves nothing: the gradient is masked, not removed.
    The model's ``training`` flags are restored and no parameter gradient is written.
    """
    check_images(images)
    with eval_mode(model), torch.enable_grad():
        x = images.detach().requires_grad_(True)
        loss = F.cross_entropy(model(x), labels, reduction="sum")
        grad = torch.autograd.grad(loss, x)[0]
    return grad.flatten(1).norm(p=p, dim=1)


# --- augmentation -----------------------------------------------------------------------------


def random_shift(images: torch.Tensor, max_shift: int, *,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift every image by its own random ``(dy, dx)`` in ``[-max_shift, max_shift]``, filling
    with zeros: the "pad by ``max_shift`` and take a random crop of the original size" augmentation.

    Vectorised with one gather (no per-image loop); shape and [0, 1] range are kept.
    """
    check_images(images)
    check_int(max_shift, "max_shift", low=0)
    if max_shift == 0:
        return images.clone()
    n, _, h, w = images.shape
    where = generator.device if generator is not None else "cpu"
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator, device=where)
    offsets = offsets.to(images.device)
    padded = F.pad(images, (max_shift,) * 4)
    rows = torch.arange(h, device=images.device) + offsets[:, :1]  # (n, h) rows of the crop
    cols = torch.arange(w, device=images.device) + offsets[:, 1:]  # (n, w)
    index = torch.arange(n, device=images.device)[:, None, None]
    # Advanced indices around a slice put their dimensions first: (n, h, w, C) -> (n, C, h, w).
    return padded[index, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def gaussian_noise(images: torch.Tensor, std: float, *,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """``clip(x + N(0, std^2), 0, 1)``, fresh noise for every pixel."""
    check_images(images)
    std = check_number(std, "std", low=0)
    return (images + std * _randn(images.shape, images, generator)).clamp(0, 1)


def cutout(images: torch.Tensor, size: int, *,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Black out one ``size`` x ``size`` square per image, at its own uniformly random place fully
    inside the image: Cutout (DeVries & Taylor 2017), random erasing with a fixed square and
    zeros (Zhong et al. 2020). The occluder has the shape of notebook 04's patches."""
    check_images(images)
    n, _, h, w = images.shape
    size = check_int(size, "size", low=1)
    if size > min(h, w):
        raise ValueError(f"size must fit inside the {h}x{w} images, got {size}")
    where = generator.device if generator is not None else "cpu"
    top = torch.randint(0, h - size + 1, (n,), generator=generator, device=where).to(images.device)
    left = torch.randint(0, w - size + 1, (n,), generator=generator, device=where).to(images.device)
    rows = torch.arange(h, device=images.device)[None, :] - top[:, None]    # (n, h)
    cols = torch.arange(w, device=images.device)[None, :] - left[:, None]   # (n, w)
    inside = ((rows >= 0) & (rows < size))[:, :, None] & ((cols >= 0) & (cols < size))[:, None, :]
    return images.masked_fill(inside[:, None], 0.0)


def augmentation(augment: Callable, **kwargs) -> Callable:
    """A ``batch_transform`` for :func:`advlab.train.fit` that trains on ``augment(x, **kwargs)``.

    Example: ``fit(model, data, 10, batch_transform=augmentation(random_shift, max_shift=2,
    generator=torch.Generator().manual_seed(0)))``.
    """
    if not callable(augment):
        raise TypeError(f"augment must be callable(images, ...), got {type(augment).__name__}")

    def transform(x, y, model):
        return augment(x, **kwargs), y

    return transform


# --- adversarial training ---------------------------------------------------------------------


def adversarial_training(model: nn.Module, data, *, attack: Callable, eps: float, epochs: int,
                         **fit_kwargs) -> dict:
    """Train ``model`` in place on adversarial examples made from each batch; return fit's history.

    Solves Madry et al.'s min-max problem ``min_theta E max_{|d|_inf <= eps} L(theta, x + d, y)``
    approximately: ``attack(model, x, y, eps)`` plays the inner max on every batch (through
    fit's ``batch_transform``), the optimiser the outer min. With
    ``partial(advlab.attacks.pgd, steps=k)`` this is PGD training (Madry et al. 2018); with
    ``partial(advlab.attacks.pgd, steps=1, alpha=1.25 * eps)`` (one FGSM step from a random
    start) it is "fast" adversarial training (Wong, Rice & Kolter 2020). Whatever the attack
    returns is projected back into the eps-ball around the batch and into [0, 1], so a step
    never trains on an image farther than ``eps`` from a real one.
    """
    if not callable(attack):
        raise TypeError(f"attack must be callable(model, images, labels, eps), "
                        f"got {type(attack).__name__}")
    eps = check_number(eps, "eps", low=0)
    epochs = check_int(epochs, "epochs")

    def transform(x, y, net):
        x_adv = attack(net, x, y, eps).detach()
        return (x + (x_adv - x).clamp(-eps, eps)).clamp(0, 1), y

    return fit(model, data, epochs, batch_transform=transform, **fit_kwargs)


# --- uncertainty ------------------------------------------------------------------------------


class Uncertainty(NamedTuple):
    """Predictive distribution and two uncertainty scores (nats), one value per image."""

    probs: torch.Tensor               # (N, C) mean of the members' softmax outputs
    entropy: torch.Tensor             # (N,) H[mean p]: total predictive uncertainty
    mutual_information: torch.Tensor  # (N,) H[mean p] - mean H[p_s]: disagreement of members


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy ``-sum_c p_c log p_c`` over the last dimension, with ``0 log 0 = 0``."""
    return -torch.special.xlogy(probs, probs).sum(-1)


def uncertainty(member_probs: torch.Tensor) -> Uncertainty:
    """Scores from ``(S, N, C)`` class probabilities of ``S`` members (or dropout samples).

    Mutual information ``I = H[E_s p_s] - E_s H[p_s]`` (Smith & Gal 2018) is zero when all
    members agree and is rounded up to 0 where float error makes it slightly negative. With one
    member (``S = 1``) the entropy is the plain softmax entropy, the baseline.
    """
    if not isinstance(member_probs, torch.Tensor) or member_probs.dim() != 3:
        raise ValueError("member_probs must be a tensor (S, N, C), got "
                         f"{getattr(member_probs, 'shape', type(member_probs).__name__)}")
    mean = member_probs.mean(0)
    total = entropy(mean)
    info = (total - entropy(member_probs).mean(0)).clamp_min(0)
    return Uncertainty(mean, total, info)


def _is_dropout(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.dropout._DropoutNd)


def _dropouts(model: nn.Module) -> list[nn.Module]:
    """The dropout layers of ``model``; a ValueError when none has p > 0 (MC dropout needs one)."""
    dropouts = [m for m in model.modules() if _is_dropout(m)]
    if not any(m.p > 0 for m in dropouts):
        raise ValueError("model has no dropout layer with p > 0: MC dropout needs one")
    return dropouts


@contextmanager
def _dropout_on(dropouts: list[nn.Module]):
    """Dropout layers in training mode inside the block (nothing else changes), flags restored."""
    flags = [m.training for m in dropouts]
    try:
        for m in dropouts:
            m.train()
        yield
    finally:
        for m, flag in zip(dropouts, flags, strict=True):
            m.train(flag)


@torch.no_grad()
def mc_dropout_predict(model: nn.Module, images: torch.Tensor, *, samples: int, seed: int = 0,
                       batch_size: int = 1000) -> Uncertainty:
    """Monte Carlo dropout (Gal & Ghahramani 2016): ``samples`` forward passes with dropout on.

    Only the dropout layers are switched to training mode (batch norm keeps its running
    statistics); every module's flag is restored afterwards. The dropout masks come from
    ``seed``, so a call is repeatable and leaves the global random state untouched.
    """
    samples = check_int(samples, "samples")
    check_images(images)
    dropouts = _dropouts(model)
    dev = module_device(model)
    devices = [dev.index or 0] if dev.type == "cuda" else []
    # dropout on, everything else (batch norm) in eval mode
    split = split_at_dropout(model)
    with eval_mode(model), _dropout_on(dropouts), torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        if split is None:
            probs = torch.stack([
                batched(lambda x: F.softmax(model(x), -1), images, batch_size=batch_size,
                        device=dev)
                for _ in range(samples)])
        else:  # the part before the first dropout layer once; the masks as whole passes draw them
            before, after = split
            hidden = batched(before, images, batch_size=batch_size, device=dev)
            probs = torch.stack([batched(lambda h: F.softmax(after(h), -1), hidden,
                                         batch_size=batch_size)
                                 for _ in range(samples)])
    return uncertainty(probs)


class MCDropout(nn.Module):
    """MC dropout as one model, for attacks that average over the masks (EOT, Athalye et al. 2018).

    ``forward`` returns ``log mean_s softmax(model(x))`` over ``samples`` passes with the dropout
    layers on, whatever mode the wrapper is in (the attacks switch to eval mode; batch norm stays
    in eval mode here too). Its softmax is the prediction :func:`mc_dropout_predict` scores, so a
    margin attack on it makes that averaged prediction confident. The masks come from the global
    random state (seed it first for a repeatable run).
    """

    def __init__(self, model: nn.Module, samples: int):
        super().__init__()
        self.dropouts = _dropouts(model)
        self.model, self.samples = model, check_int(samples, "samples")

    def forward(self, x):
        split = split_at_dropout(self.model)
        with _dropout_on(self.dropouts):
            if split is None:
                logp = torch.stack([F.log_softmax(self.model(x), -1) for _ in range(self.samples)])
            else:  # the deterministic part once, the rest once per mask (models.split_at_dropout)
                before, after = split
                hidden = before(x)
                logp = torch.stack([F.log_softmax(after(hidden), -1) for _ in range(self.samples)])
        return torch.logsumexp(logp, 0) - math.log(self.samples)


class Ensemble(nn.Module):
    """A deep ensemble as one model (Lakshminarayanan et al. 2017).

    ``forward`` returns ``log mean_s softmax(z_s)``, valid logits whose softmax is the ensemble's
    averaged prediction, so every attack in :mod:`advlab.attacks` can target the whole ensemble.
    """

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if isinstance(members, nn.Module) or not members:
            raise TypeError("members must be a non-empty sequence of models")
        self.members = nn.ModuleList(members)

    def forward(self, x):
        logp = torch.stack([F.log_softmax(m(x), -1) for m in self.members])
        return torch.logsumexp(logp, 0) - math.log(len(self.members))


def ensemble_predict(members, images: torch.Tensor, *, batch_size: int = 1000) -> Uncertainty:
    """Average the members' softmax outputs (a sequence of models or an :class:`Ensemble`)."""
    if isinstance(members, Ensemble):
        members = list(members.members)
    if isinstance(members, nn.Module) or not members:
        raise TypeError("members must be a non-empty sequence of models or an Ensemble")
    check_images(images)
    probs = torch.stack([F.softmax(predict(m, images, batch_size=batch_size), -1)
                         for m in members])
    return uncertainty(probs)

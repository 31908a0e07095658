"""Adversarial attacks: FGSM, PGD, DeepFool, transfer between models, SimBA (query-only) and patches,
and the course's one definition of attack success (:func:`success_rate`).

All functions work on batches of images ``(N, C, H, W)`` in ``[0, 1]`` and classifiers that
return logits. Every attack runs the model in evaluation mode, restores each module's
``training`` flag afterwards, takes gradients with :func:`torch.autograd.grad` only with respect
to the input (no parameter ``.grad`` is ever written) and works on the device of its inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .checks import (
    check_choice,
    check_images,
    check_int,
    check_labels,
    check_number,
    eval_mode,
)

LOSSES = ("ce", "margin")
BASES = ("dct", "pixel")


# --- shared helpers ---------------------------------------------------------------------------

def _check_inputs(images, labels, eps) -> float:
    check_images(images)
    check_labels(labels, len(images))
    return check_number(eps, "eps", low=0)


def attack_loss(logits: torch.Tensor, labels: torch.Tensor, loss: str = "ce", *,
                reduction: str = "sum") -> torch.Tensor:
    """The quantity an untargeted attack increases (a targeted one decreases it for its target).

    ``"ce"``: cross-entropy ``-log softmax(z)_y``. ``"margin"`` (Carlini & Wagner 2017, on the
    logits): ``max_{j != y} z_j - z_y``, positive exactly when ``y`` is not the top class.
    ``loss`` may also be a function ``(logits, labels) -> one value per image`` (an attack's own
    objective, e.g. one that also lowers a detector's score).
    The default sum over the batch keeps each image's gradient independent of the batch size.
    """
    if callable(loss):
        value = loss(logits, labels)
        if not isinstance(value, torch.Tensor) or value.shape != labels.shape:
            raise ValueError(f"a loss function must return one value per image, shape "
                             f"{tuple(labels.shape)}, got {getattr(value, 'shape', type(value).__name__)}")
        return value.sum() if reduction == "sum" else value
    if loss == "ce":
        return F.cross_entropy(logits, labels, reduction=reduction)
    if loss == "margin":
        true = logits.gather(1, labels[:, None]).squeeze(1)
        others = logits.scatter(1, labels[:, None], float("-inf")).amax(1)
        value = others - true
        return value.sum() if reduction == "sum" else value
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def _input_grad(model, x, labels, loss: str) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        value = attack_loss(model(x), labels, loss)
        return torch.autograd.grad(value, x)[0]


def input_gradient(model, images, labels, *, loss: str = "ce") -> torch.Tensor:
    """``grad_x L``: the gradient of the attack loss with respect to the input images.

    What a white-box attacker gets and FGSM follows: one number per pixel, the same shape as
    ``images``. ``L`` is :func:`attack_loss` summed over the batch, so each image's gradient is
    its own loss's gradient, whatever the batch size (a mean would divide it by N). The model
    runs in evaluation mode with every module's ``training`` flag restored afterwards, and the
    gradient is taken with :func:`torch.autograd.grad` with respect to the input only: no
    parameter ``.grad`` is written.
    """
    _check_inputs(images, labels, 0.0)
    check_choice(loss, "loss", LOSSES)
    with eval_mode(model):
        return _input_grad(model, images, labels, loss)


@torch.no_grad()
def _predict(model, images, batch_size: int = 1000) -> torch.Tensor:
    with eval_mode(model):
        return torch.cat([model(images[i:i + batch_size]).argmax(1)
                          for i in range(0, len(images), batch_size)])


class AttackSuccess(NamedTuple):
    rate: float    # fooled / correct (NaN when no digit qualifies)
    fooled: int    # digits the attack succeeded on
    correct: int   # the denominator: digits the model got right when clean (and not of the target)


def success_rate(model, clean, adversarial, labels, *, target: int | None = None) -> AttackSuccess:
    """The course's one definition of attack success (notebook 02), over correctly classified digits.

    Only digits the model classifies correctly when ``clean`` count: a digit it already gets
    wrong is no success of the attack. Untargeted, the attack succeeds on such a digit when the
    prediction on its ``adversarial`` version differs from its label. With ``target``, the
    digits of the target class are left out too, and success means the prediction is
    ``target``. Returns the rate, the number of successes and the number of digits counted.
    """
    check_images(clean, "clean")
    check_images(adversarial, "adversarial")
    if adversarial.shape != clean.shape:
        raise ValueError(f"adversarial must have the shape of clean, {tuple(clean.shape)}, "
                         f"got {tuple(adversarial.shape)}")
    check_labels(labels, len(clean))
    if target is not None:
        check_int(target, "target", low=0)
    counted = _predict(model, clean) == labels
    if target is not None:
        counted &= labels != target
    n = int(counted.sum())
    if n == 0:
        return AttackSuccess(float("nan"), 0, 0)
    predicted = _predict(model, adversarial[counted])
    fooled = predicted != labels[counted] if target is None else predicted == target
    return AttackSuccess(fooled.float().mean().item(), int(fooled.sum()), n)


# --- gradient attacks -------------------------------------------------------------------------

def fgsm(model, images, labels, eps: float, *, targeted: bool = False) -> torch.Tensor:
    """Fast Gradient Sign Method (Goodfellow, Shlens & Szegedy 2015, arXiv:1412.6572).

    ``x_adv = clip(x + eps * sign(grad_x CE(f(x), y)), 0, 1)``. With ``targeted=True``,
    ``labels`` are the targets and the step goes down the loss:
    ``x_adv = clip(x - eps * sign(grad_x CE(f(x), t)), 0, 1)``.
    """
    eps = _check_inputs(images, labels, eps)
    if eps == 0:
        return images.detach().clone()
    with eval_mode(model):
        grad = _input_grad(model, images, labels, "ce")
    step = -eps if targeted else eps
    return (images.detach() + step * grad.sign()).clamp_(0, 1)


def pgd(model, images, labels, eps: float, *, alpha: float | None = None, steps: int = 10,
        random_start: bool = True, targeted: bool = False, loss: str = "ce", restarts: int = 1,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected gradient descent in the L-infinity ball (Madry et al. 2018, arXiv:1706.06083).

    From ``x_0 = x`` (or ``x + U(-eps, eps)`` with ``random_start``), repeat ``steps`` times
    ``x_{k+1} = clip(Proj_{|d| <= eps}(x_k + alpha * sign(grad L(x_k)) - x) + x, 0, 1)``,
    with ``L`` = ``attack_loss(.., loss)`` (descended for ``targeted``; ``loss`` may be a function,
    see :func:`attack_loss`). Default
    ``alpha = 2.5 * eps / steps``. With ``restarts > 1`` the attack is run again from new random
    starts and each image keeps its worst case: a successful result first, then the higher loss.
    One step with ``alpha = eps`` and no random start is FGSM.
    """
    eps = _check_inputs(images, labels, eps)
    steps = check_int(steps, "steps")
    restarts = check_int(restarts, "restarts")
    if not callable(loss):
        check_choice(loss, "loss", LOSSES)
    alpha = 2.5 * eps / steps if alpha is None else check_number(alpha, "alpha", low=0, strict=True)
    if eps == 0:
        return images.detach().clone()
    x0 = images.detach()
    step = -alpha if targeted else alpha
    best = best_success = best_value = None
    with eval_mode(model):
        for _ in range(restarts):
            x = x0
            if random_start:
                where = generator.device if generator is not None else x0.device
                noise = torch.rand(x0.shape, generator=generator, device=where).to(x0.device)
                x = (x0 + (2 * noise - 1) * eps).clamp(0, 1)
            for _ in range(steps):
                x = x + step * _input_grad(model, x, labels, loss).sign()
                x = (x0 + (x - x0).clamp(-eps, eps)).clamp(0, 1)
            if restarts == 1:
                return x
            with torch.no_grad():
                logits = model(x)
                value = attack_loss(logits, labels, loss, reduction="none")
                value = -value if targeted else value
                success = (logits.argmax(1) == labels) if targeted else (logits.argmax(1) != labels)
            if best is None:
                best, best_success, best_value = x, success, value
                continue
            better = (success & ~best_success) | ((success == best_success) & (value > best_value))
            best = torch.where(better[:, None, None, None], x, best)
            best_success, best_value = best_success | success, torch.where(better, value, best_value)
    return best


def _jacobian(model, x) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N, K)`` and their input gradients ``(N, K, C, H, W)``, one backward per class."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        grads = [torch.autograd.grad(logits[:, k].sum(), x, retain_graph=k + 1 < logits.shape[1])[0]
                 for k in range(logits.shape[1])]
    return logits.detach(), torch.stack(grads, 1)


def deepfool(model, images, labels, *, steps: int = 50, overshoot: float = 0.02,
             box_aware: bool = True) -> torch.Tensor:
    """DeepFool, a minimum-L2 attack (Moosavi-Dezfooli, Fawzi & Frossard 2016, arXiv:1511.04599).

    It treats the classifier as linear around the current point: with ``f'_k = z_k - z_y`` and
    ``w'_k = grad z_k - grad z_y``, the nearest boundary is class
    ``l = argmin_k |f'_k| / ||w'_k||``, reached by the step ``r = |f'_l| w'_l / ||w'_l||^2``.
    Each still-correct image moves by ``(1 + overshoot) r`` (clipped to ``[0, 1]``) until the
    model no longer predicts ``labels`` or ``steps`` steps have run; images the model already
    gets wrong are returned unchanged. The size of the perturbation, ``||x_adv - x||_2``, is an
    estimate (an upper bound) of the distance to the decision boundary. The step uses only
    logit differences and their gradients, so scaling the logits (a temperature) leaves it
    unchanged.

    ``box_aware=False`` is the method as published (and as torchattacks' ``DeepFool`` does it,
    step by step): a step the clip to ``[0, 1]`` cancels is taken again and again, so digits with
    many black pixels can stall short of the boundary. ``box_aware=True`` (default) leaves out of
    ``w'_k`` the pixels that sit at 0 and would go down, or sit at 1 and would go up, before
    choosing the class and the step: the linear model then only uses moves the box allows.
    """
    check_images(images)
    check_labels(labels, len(images))
    steps = check_int(steps, "steps")
    overshoot = check_number(overshoot, "overshoot", low=0)
    if not isinstance(box_aware, bool):
        raise TypeError(f"box_aware must be True or False, got {type(box_aware).__name__}")
    x = images.detach().clone()
    with eval_mode(model):
        for _ in range(steps):
            with torch.no_grad():
                active = torch.nonzero(model(x).argmax(1) == labels).flatten()
            if len(active) == 0:
                break
            xa, ya = x[active], labels[active]
            logits, jac = _jacobian(model, xa)
            rows = torch.arange(len(active), device=x.device)
            f = logits - logits[rows, ya][:, None]                   # f'_k, zero at k = y
            w = (jac - jac[rows, ya][:, None]).flatten(2)            # w'_k
            if box_aware:
                at = xa.flatten(1)[:, None, :]
                w = torch.where(((at <= 0) & (w < 0)) | ((at >= 1) & (w > 0)), 0.0, w)
            norms = w.norm(dim=2)
            ratio = torch.where(norms > 0, f.abs() / norms, torch.full_like(f, float("inf")))
            ratio[rows, ya] = float("inf")
            nearest = ratio.argmin(1)
            w_l, n_l = w[rows, nearest], norms[rows, nearest]
            scale = torch.where(n_l > 0, f[rows, nearest].abs() / n_l.clamp_min(1e-300) ** 2, 0.0)
            r = scale[:, None] * w_l  # no gradient at all (a flat region): the image stays
            x[active] = (xa + (1 + overshoot) * r.view_as(xa)).clamp(0, 1)
    return x


# --- transfer ---------------------------------------------------------------------------------

def transfer_matrix(models: dict, images, labels,
                    attack: Callable) -> dict[str, dict[str, float]]:
    """Success rate of examples crafted on each source model against every target model.

    ``attack(model, images, labels)`` returns adversarial images. ``result[source][target]`` is
    the fraction of the images that ``target`` classifies correctly when clean which it
    misclassifies after the attack crafted on ``source`` (the diagonal is white-box success):
    :func:`success_rate`'s definition, with each victim's correct digits found once.
    """
    if not isinstance(models, dict) or not models:
        raise TypeError("models must be a non-empty dict of name -> model")
    if not callable(attack):
        raise TypeError(f"attack must be callable(model, images, labels), got {type(attack).__name__}")
    _check_inputs(images, labels, 0.0)
    correct = {name: _predict(m, images) == labels for name, m in models.items()}
    result: dict[str, dict[str, float]] = {}
    for source, model in models.items():
        adv = attack(model, images, labels)
        result[source] = {}
        for target, victim in models.items():
            mask = correct[target]
            fooled = _predict(victim, adv[mask]) != labels[mask]
            result[source][target] = fooled.float().mean().item() if mask.any() else float("nan")
    return result


# --- query-only attack ------------------------------------------------------------------------

class CountingModel(torch.nn.Module):
    """``model`` behind a meter: every image passed through it adds one to ``images_seen``.

    A query-only attack is judged by its number of model calls per image; wrapping the model
    counts them independently of the attack's own bookkeeping. ``forward`` returns the wrapped
    model's logits unchanged (gradients flow through), and the model is a submodule, so
    :func:`advlab.checks.eval_mode` reaches its layers.
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model, self.images_seen = model, 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.images_seen += len(images)
        return self.model(images)


class SimBAResult(NamedTuple):
    images: torch.Tensor   # adversarial images (N, C, H, W) in [0, 1]
    queries: torch.Tensor  # model calls per image (int64), the first clean query included
    success: torch.Tensor  # bool, the final prediction differs from the label


def dct_matrix(n: int, device=None) -> torch.Tensor:
    """Orthonormal DCT-II matrix: row ``u`` is the ``u``-th cosine basis vector of length ``n``."""
    k = torch.arange(n, dtype=torch.float32, device=device)
    m = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m


def _simba_directions(shape, basis: str, generator, device):
    """Order of the basis directions: random for pixels, low frequencies first for the DCT."""
    c, h, w = shape
    n = c * h * w
    perm = torch.randperm(n, generator=generator, device=generator.device if generator else "cpu")
    if basis == "pixel":
        return perm.to(device)
    ch, u, v = perm // (h * w), (perm % (h * w)) // w, perm % w
    # Low frequencies first (Guo et al.'s SimBA-DCT): sort by the larger of the two relative
    # frequencies u / h, v / w; a stable sort keeps the random order within each ring.
    ring = torch.maximum(u * w, v * h)
    order = torch.sort(ring, stable=True).indices
    return torch.stack([ch, u, v], 1)[order].to(device)


def simba(model, images, labels, *, eps: float, max_queries: int, basis: str = "dct",
          generator: torch.Generator | None = None) -> SimBAResult:
    """Simple Black-box Attack (Guo et al. 2019, arXiv:1905.07121), untargeted.

    The attacker only sees the predicted probabilities ``p = softmax(f(x))``. For orthonormal
    directions ``q`` taken one at a time, try ``x - eps q``, then ``x + eps q``, and keep the
    first that lowers ``p_y``; stop an image as soon as its prediction is not ``y`` or its
    ``max_queries`` are spent. ``eps`` is the L2 length of each step (so the total perturbation
    has L2 norm at most ``eps * sqrt(accepted steps)`` before clipping to [0, 1]).
    ``basis="pixel"`` uses single pixels, ``"dct"`` the 2-D cosine basis, low frequencies first.
    Every model call is counted, the first (clean) one included.
    """
    eps = _check_inputs(images, labels, eps)
    max_queries = check_int(max_queries, "max_queries")
    check_choice(basis, "basis", BASES)
    x = images.detach().clone()
    n, c, h, w = x.shape
    queries = torch.zeros(n, dtype=torch.long, device=x.device)

    @torch.no_grad()
    def query(idx, candidates):  # the only door to the model: probabilities, counted per image
        queries[idx] += 1
        return F.softmax(model(candidates), dim=1)

    if n == 0:
        return SimBAResult(x, queries, torch.zeros(0, dtype=torch.bool, device=x.device))
    with eval_mode(model):
        all_idx = torch.arange(n, device=x.device)
        probs = query(all_idx, x)
        p_true = probs.gather(1, labels[:, None]).squeeze(1)
        done = probs.argmax(1) != labels
        if eps == 0:
            return SimBAResult(x, queries, done)
        dirs = _simba_directions((c, h, w), basis, generator, x.device)
        dct_h, dct_w = dct_matrix(h, x.device), dct_matrix(w, x.device)
        for d in dirs:
            q = torch.zeros(c, h, w, device=x.device)
            if basis == "pixel":
                q.view(-1)[d] = 1.0
            else:
                q[d[0]] = torch.outer(dct_h[d[1]], dct_w[d[2]])
            improved = torch.zeros(n, dtype=torch.bool, device=x.device)
            for sign in (-1.0, 1.0):
                idx = all_idx[~done & ~improved & (queries < max_queries)]
                if len(idx) == 0:
                    continue
                cand = (x[idx] + sign * eps * q).clamp_(0, 1)
                p = query(idx, cand)
                p_y = p.gather(1, labels[idx, None]).squeeze(1)
                keep = p_y < p_true[idx]
                kept = idx[keep]
                x[kept], p_true[kept] = cand[keep], p_y[keep]
                improved[kept] = True
                done[kept] = p[keep].argmax(1) != labels[kept]
            if bool((done | (queries >= max_queries)).all()):
                break
    return SimBAResult(x, queries, done)


# --- patches ----------------------------------------------------------------------------------

def _check_patch(patch, images) -> None:
    if not isinstance(patch, torch.Tensor) or patch.dim() != 3:
        raise ValueError("patch must be a 3-D tensor (C, h, w), got "
                         f"{tuple(patch.shape) if isinstance(patch, torch.Tensor) else type(patch).__name__}")
    c, h, w = patch.shape
    if patch.numel() and not (0 <= patch.detach().min() and patch.detach().max() <= 1):
        raise ValueError("patch pixels must lie in [0, 1]")
    if c != images.shape[1]:
        raise ValueError(f"patch must have {images.shape[1]} channels like the images, got {c}")
    if h > images.shape[2] or w > images.shape[3] or h < 1 or w < 1:
        raise ValueError(f"patch must fit inside the {images.shape[2]}x{images.shape[3]} images, "
                         f"got {h}x{w}")


def random_positions(n: int, image_hw, patch_hw, generator=None) -> torch.Tensor:
    """``(n, 2)`` top-left corners, uniform over all places where the patch fits entirely."""
    (H, W), (h, w) = image_hw, patch_hw
    where = generator.device if generator is not None else "cpu"
    top = torch.randint(0, H - h + 1, (n,), generator=generator, device=where)
    left = torch.randint(0, W - w + 1, (n,), generator=generator, device=where)
    return torch.stack([top, left], 1)


def _fixed_positions(positions, n: int | None, image_hw, patch_hw) -> torch.Tensor:
    """Check fixed corners: one integer ``(top, left)`` pair, or (when ``n`` is given) an
    ``(n, 2)`` integer tensor, each keeping the patch fully inside; return them as int64."""
    shapes = [(2,)] + ([(n, 2)] if n is not None else [])
    try:
        pos = torch.as_tensor(positions)
    except (TypeError, ValueError, RuntimeError):
        pos = None
    if pos is None or pos.is_floating_point() or pos.dtype == torch.bool or pos.shape not in shapes:
        wanted = "an integer (top, left) pair" + (f" or an ({n}, 2) integer tensor" if n else "")
        raise ValueError(f"positions must be {wanted}, got {positions!r}")
    (H, W), (h, w) = image_hw, patch_hw
    top, left = pos.reshape(-1, 2).long().unbind(1)
    if bool((top < 0).any() | (left < 0).any() | (top > H - h).any() | (left > W - w).any()):
        raise ValueError(f"positions must keep the {h}x{w} patch inside the {H}x{W} images, "
                         f"got {positions!r}")
    return pos.long()


def apply_patch(images, patch, *, positions=None, generator=None) -> torch.Tensor:
    """Paste ``patch`` ``(C, h, w)`` into each image, fully inside, differentiable in the patch.

    ``positions``: ``(top, left)`` for every image, or an ``(N, 2)`` tensor of corners; default
    uniformly random per image (from ``generator``). Vectorised with one-hot placement matrices:
    image row r shows patch row r - top (R, ``(N, H, h)``) and likewise for columns (C), so the
    canvas is ``R @ patch @ C^T`` (exact: one nonzero term per pixel) and a mask selects it. The
    patch's gradient is then a sum of matrix products, the same bits on every run, where a
    scatter-add (the backward of an index gather) would sum in thread order.
    """
    check_images(images)
    _check_patch(patch, images)
    n, _, H, W = images.shape
    h, w = patch.shape[1:]
    if positions is None:
        positions = random_positions(n, (H, W), (h, w), generator)
    else:
        positions = _fixed_positions(positions, n, (H, W), (h, w)).expand(n, 2)
    dev = images.device
    positions = positions.to(dev)
    patch = patch.to(dev, images.dtype)

    def placement(size, offset, length):  # (n, size, length): 1 where image index - offset = k
        shifted = torch.arange(size, device=dev)[None, :, None] - offset[:, None, None]
        return (shifted == torch.arange(length, device=dev)[None, None, :]).to(images.dtype)

    rows, cols = placement(H, positions[:, 0], h), placement(W, positions[:, 1], w)
    canvas = rows[:, None] @ patch[None] @ cols[:, None].transpose(-1, -2)   # (n, C, H, W)
    inside = (rows.sum(2)[:, :, None] * cols.sum(2)[:, None, :]) > 0      # (n, H, W)
    return torch.where(inside[:, None], canvas, images)


def train_patch(model, images, target: int, *, size, steps: int, batch_size: int = 64,
                lr: float = 0.1, positions=None, generator: torch.Generator | None = None,
                objective: Callable | None = None) -> torch.Tensor:
    """Learn one universal patch that makes ``model`` predict ``target`` (Brown et al. 2017).

    The patch is ``sigmoid(theta)`` (so pixels stay in [0, 1]); each of ``steps`` Adam steps
    pastes it at random positions on a random batch of ``images`` and lowers the
    cross-entropy toward ``target``. ``size`` is ``s`` (square) or ``(h, w)``. Returns the patch.
    ``positions``: one fixed ``(top, left)`` corner for every image (a fixed-position patch,
    for contrast with the universal one); default uniformly random per image.
    ``objective(outputs, targets)``: the scalar to lower instead of the cross-entropy, given the
    model's outputs on the patched batch and the ``(batch_size,)`` targets; e.g. ``-outputs[:, 1]
    .mean()`` raises an output without the cross-entropy's saturation (its gradient vanishes once
    the target wins by a wide margin, a linear objective's never does).
    """
    check_images(images)
    check_int(target, "target", low=0)
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    check_int(h, "size")
    check_int(w, "size")
    steps, batch_size = check_int(steps, "steps"), check_int(batch_size, "batch_size")
    lr = check_number(lr, "lr", low=0, strict=True)
    _check_patch(torch.zeros(images.shape[1], h, w), images)
    if objective is None:
        objective = F.cross_entropy
    elif not callable(objective):
        raise TypeError(f"objective must be callable(outputs, targets), got {type(objective).__name__}")
    if positions is not None:  # one corner for all: batches are random, so no per-image list
        positions = _fixed_positions(positions, None, images.shape[2:], (h, w))
    theta = torch.zeros(images.shape[1], h, w, device=images.device, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=lr)
    where = generator.device if generator is not None else "cpu"
    with eval_mode(model), torch.enable_grad():
        for _ in range(steps):
            pick = torch.randint(0, len(images), (batch_size,), generator=generator, device=where)
            batch = apply_patch(images[pick.to(images.device)], torch.sigmoid(theta),
                                positions=positions, generator=generator)
            targets = torch.full((batch_size,), target, device=images.device)
            loss = objective(model(batch), targets)
            theta.grad = torch.autograd.grad(loss, theta)[0]
            opt.step()
    return torch.sigmoid(theta).detach()


def patch_success(model, patch, images, labels, target: int, *, placements: int = 4,
                  positions=None, generator: torch.Generator | None = None) -> float:
    """Fraction of (image, placement) pairs predicted as ``target``, over images not of it.

    Each image gets ``placements`` random positions (or the fixed ``positions``, once).
    """
    check_images(images)
    check_labels(labels, len(images))
    _check_patch(patch, images)
    placements = check_int(placements, "placements")
    keep = labels != target
    if not keep.any():
        raise ValueError(f"images must include some not of the target class {target}")
    images = images[keep]
    rounds = 1 if positions is not None else placements
    hits = [(_predict(model, apply_patch(images, patch, positions=positions,
                                         generator=generator)) == target).float().mean()
            for _ in range(rounds)]
    return torch.stack(hits).mean().item()


# --- the linear view --------------------------------------------------------------------------

def logits_along_fgsm(model, images, labels, eps_values) -> torch.Tensor:
    """The logits along FGSM's direction, ``model(x + eps * sign(grad_x CE(f(x), y)))`` for every
    ``eps`` in ``eps_values``: a tensor ``(E, N, K)`` (Goodfellow, Shlens & Szegedy 2015, Fig. 4).

    The direction is computed once, at the clean images; negative ``eps`` walks the other way. The
    points are **not** clipped to ``[0, 1]``, so the curves show the model itself along a straight
    line through input space: for a linear model they are straight lines. Runs in evaluation mode
    (modes restored), writes no parameter gradient and returns logits without a graph.
    """
    check_images(images)
    check_labels(labels, len(images))
    if isinstance(eps_values, torch.Tensor):
        if eps_values.dim() > 1:
            raise ValueError(f"eps_values must be 1-D, got shape {tuple(eps_values.shape)}")
        eps_values = eps_values.tolist()
    if isinstance(eps_values, (str, bytes)) or not hasattr(eps_values, "__iter__"):
        raise TypeError(f"eps_values must be a sequence of numbers, got {type(eps_values).__name__}")
    values = [check_number(e, "eps_values") for e in eps_values]
    if not values:
        raise ValueError("eps_values must hold at least one value")
    with eval_mode(model):
        direction = _input_grad(model, images, labels, "ce").sign()
        with torch.no_grad():
            x = images.detach()
            return torch.stack([model(x + e * direction) for e in values])


# --- why transfer works: gradient alignment and a label-only substitute ----------------------

def gradient_cosine(model_a, model_b, images, labels, *, loss: str = "ce") -> torch.Tensor:
    """Per image, the cosine between the two models' input gradients ``grad_x L(f(x), y)``.

    ``L`` is :func:`attack_loss` (cross-entropy by default) at ``labels``; each gradient is that of
    :func:`input_gradient`, flattened, and the cosine is computed in float64. Returns a float64
    tensor ``(N,)`` in ``[-1, 1]``: 1 where the gradients point the same way (FGSM would then take
    the same step on both models up to the pixels whose signs differ), 0 where they are
    orthogonal or either gradient is exactly zero.
    """
    for model, name in ((model_a, "model_a"), (model_b, "model_b")):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    _check_inputs(images, labels, 0.0)
    check_choice(loss, "loss", LOSSES)
    grad_a = input_gradient(model_a, images, labels, loss=loss).flatten(1).double()
    grad_b = input_gradient(model_b, images, labels, loss=loss).flatten(1).double()
    norms = grad_a.norm(dim=1) * grad_b.norm(dim=1)
    dots = (grad_a * grad_b).sum(1)
    return torch.where(norms > 0, dots / norms.clamp_min(torch.finfo(torch.float64).tiny),
                       torch.zeros_like(dots))


def jacobian_augmentation(substitute, images, labels, lam: float) -> torch.Tensor:
    """One step of Jacobian-based dataset augmentation (Papernot et al. 2017, arXiv:1602.02697).

    Returns the new points ``clip(x + lam * sign(grad_x z_y(x)), 0, 1)``, where ``z_y`` is the
    **substitute's** logit for ``y`` = ``labels``, the label the target (the oracle) gave ``x``.
    The step moves each image where the substitute's output for the oracle's label changes
    most, so the next query to the oracle is informative about its decision boundary; the
    substitute is then trained on the old and the new points together, labelled by the oracle.
    Runs in evaluation mode (modes restored) and writes no parameter gradient.
    """
    if not isinstance(substitute, torch.nn.Module):
        raise TypeError(f"substitute must be a torch.nn.Module, got {type(substitute).__name__}")
    _check_inputs(images, labels, 0.0)
    lam = check_number(lam, "lam")
    x = images.detach().requires_grad_(True)
    with eval_mode(substitute), torch.enable_grad():
        logits = substitute(x)
        if labels.numel() and int(labels.max()) >= logits.shape[1]:
            raise ValueError(f"labels must be below the number of classes, {logits.shape[1]}, "
                             f"got {int(labels.max())}")
        chosen = logits.gather(1, labels[:, None]).sum()
        grad = torch.autograd.grad(chosen, x)[0]
    return (images.detach() + lam * grad.sign()).clamp_(0, 1)

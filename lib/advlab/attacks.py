"""Adversarial attacks: FGSM, PGD, transfer between models, SimBA (query-only) and patches.

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
    The default sum over the batch keeps each image's gradient independent of the batch size.
    """
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


@torch.no_grad()
def _predict(model, images, batch_size: int = 1000) -> torch.Tensor:
    with eval_mode(model):
        return torch.cat([model(images[i:i + batch_size]).argmax(1)
                          for i in range(0, len(images), batch_size)])


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
    with ``L`` = ``attack_loss(.., loss)`` (descended for ``targeted``). Default
    ``alpha = 2.5 * eps / steps``. With ``restarts > 1`` the attack is run again from new random
    starts and each image keeps its worst case: a successful result first, then the higher loss.
    One step with ``alpha = eps`` and no random start is FGSM.
    """
    eps = _check_inputs(images, labels, eps)
    steps = check_int(steps, "steps")
    restarts = check_int(restarts, "restarts")
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


# --- transfer ---------------------------------------------------------------------------------

def transfer_matrix(models: dict, images, labels,
                    attack: Callable) -> dict[str, dict[str, float]]:
    """Success rate of examples crafted on each source model against every target model.

    ``attack(model, images, labels)`` returns adversarial images. ``result[source][target]`` is
    the fraction of the images that ``target`` classifies correctly when clean which it
    misclassifies after the attack crafted on ``source`` (the diagonal is white-box success).
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
                lr: float = 0.1, positions=None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Learn one universal patch that makes ``model`` predict ``target`` (Brown et al. 2017).

    The patch is ``sigmoid(theta)`` (so pixels stay in [0, 1]); each of ``steps`` Adam steps
    pastes it at random positions on a random batch of ``images`` and lowers the
    cross-entropy toward ``target``. ``size`` is ``s`` (square) or ``(h, w)``. Returns the patch.
    ``positions``: one fixed ``(top, left)`` corner for every image (a fixed-position patch,
    for contrast with the universal one); default uniformly random per image.
    """
    check_images(images)
    check_int(target, "target", low=0)
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    check_int(h, "size")
    check_int(w, "size")
    steps, batch_size = check_int(steps, "steps"), check_int(batch_size, "batch_size")
    lr = check_number(lr, "lr", low=0, strict=True)
    _check_patch(torch.zeros(images.shape[1], h, w), images)
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
            loss = F.cross_entropy(model(batch), targets)
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

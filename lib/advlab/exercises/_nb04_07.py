"""Exercise checks for notebooks 04–07: pasting and training a patch (04), evidence shares and the
logits along FGSM's direction (05), the tempered loss and FGSM on z / T (06), fast adversarial
training's batch, mutual information and the detection AUROC (07)."""

from __future__ import annotations

import functools
import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .. import attacks, defenses, metrics
from ..checks import eval_mode
from ..train import fit
from ._core import ExerciseError, _name, call, close, compare, passed
from ._core import seeded as _gen
from ._core import tensor_answer as _tensor

__all__ = [
    "check_apply_patch",
    "check_train_patch",
    "check_evidence_shares",
    "check_logits_along_fgsm",
    "check_tempered_cross_entropy",
    "check_fgsm_over_T",
    "check_fast_adversarial_batch",
    "check_mutual_information",
    "check_detection_auroc",
]


# --- shared helpers ---------------------------------------------------------------------------

def _one_thread(check):
    """Run a check on one CPU thread (restored after): its models are tiny, and on a busy machine
    a second thread costs far more than it saves."""
    @functools.wraps(check)
    def run(*args, **kwargs):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return check(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)
    return run


def _tiny_cnn(seed: int, *, channels: int = 1, side: int = 8, classes: int = 3) -> nn.Module:
    """A small conv net with batch norm, its weights and running statistics drawn from ``seed``
    without touching the global random state; batch norm makes training mode visible."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                            nn.Flatten(), nn.Linear(4 * side * side, classes))
        bn = net[1]
        bn.running_mean.uniform_(-0.3, 0.3)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    return net


def _snapshot(model: nn.Module) -> dict:
    return {"flags": [m.training for m in model.modules()],
            "buffers": {k: v.clone() for k, v in model.named_buffers()},
            "params": {k: v.detach().clone() for k, v in model.named_parameters()}}


def _model_untouched(model: nn.Module, before: dict, who: str) -> None:
    """The properties every attack here promises: no parameter gradient written, no weight or
    batch-norm statistic changed, each module's training flag as it was."""
    if any(p.grad is not None for p in model.parameters()):
        raise ExerciseError(f"`{who}` left gradients in the model's parameters (p.grad): take the "
                            "gradient with torch.autograd.grad(loss, inputs) instead of "
                            "loss.backward(), or set them back to None")
    for k, v in model.named_parameters():
        if not torch.equal(v.detach(), before["params"][k]):
            raise ExerciseError(f"`{who}` changed the model's weights ({k}): only the input "
                                "(or the patch) may change")
    for k, v in model.named_buffers():
        if not torch.equal(v, before["buffers"][k]):
            raise ExerciseError(f"`{who}` changed the model's batch-norm statistics ({k}): run the "
                                "model in evaluation mode (with advlab.checks.eval_mode(model): "
                                "...), which also restores its mode afterwards")
    if [m.training for m in model.modules()] != before["flags"]:
        raise ExerciseError(f"`{who}` did not restore the model's mode (train / eval): use "
                            "`with advlab.checks.eval_mode(model):`, which restores it")


def _compare(got, expected, what: str, hint: str = "", **kw) -> None:
    """:func:`compare`, with a hint appended to its message."""
    try:
        compare(got, expected, what, **kw)
    except ExerciseError as err:
        raise ExerciseError(f"{err}{'. ' + hint if hint else ''}") from None


def _same(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-6) -> bool:
    return close(a, b, atol=atol, rtol=0)


# --- 04 · adversarial patches -----------------------------------------------------------------

@_one_thread
def check_apply_patch(answer, *, seed: int = 0) -> None:
    """``answer(images, patch, positions)`` pastes ``patch`` (C, h, w) into a copy of each image
    with its top-left corner at ``positions[i] = (top, left)``, like
    :func:`advlab.attacks.apply_patch`, bit for bit, and lets the gradient reach the patch."""
    name = _name(answer)
    g = _gen(seed)
    n, c, height, width, h, w = 6, 3, 9, 11, 3, 4
    images = torch.rand(n, c, height, width, generator=g)
    patch = torch.rand(c, h, w, generator=g)
    positions = torch.stack([torch.randint(0, height - h + 1, (n,), generator=g),
                             torch.randint(0, width - w + 1, (n,), generator=g)], 1)
    positions[0] = torch.tensor([0, 0])
    positions[-1] = torch.tensor([height - h, width - w])  # the last place the patch fits
    images_before, positions_before = images.clone(), positions.clone()
    mine = patch.clone().requires_grad_(True)
    got = _tensor(call(answer, images, mine, positions), name)
    what = f"{name}(images, patch, positions) with {n} images {c}x{height}x{width}, a {h}x{w} patch"
    if not torch.equal(images, images_before):
        raise ExerciseError(f"`{name}` changed `images` in place: paste into a copy "
                            "(images.clone()) and return that")
    if not torch.equal(positions, positions_before):
        raise ExerciseError(f"`{name}` changed `positions` in place")
    expected = attacks.apply_patch(images, patch, positions=positions)
    _compare(got.detach(), expected, what, "positions[i] is (top, left): the patch covers rows "
             "top .. top + h - 1 and columns left .. left + w - 1 of image i", exact=True)
    if not got.requires_grad:
        raise ExerciseError(f"the result of `{name}` does not depend on the patch through "
                            "autograd, so no gradient could train it: build it from `patch` "
                            "itself (no .detach(), .data, .item() or .tolist() of the patch)")
    weights = torch.rand(got.shape, generator=g)
    (grad,) = torch.autograd.grad((got * weights).sum(), mine)
    ref_patch = patch.clone().requires_grad_(True)
    (ref_grad,) = torch.autograd.grad((attacks.apply_patch(images, ref_patch, positions=positions)
                                       * weights).sum(), ref_patch)
    _compare(grad, ref_grad, f"the gradient that reaches the patch through `{name}`", atol=1e-5)
    passed(answer, f"{name} pastes like attacks.apply_patch (bit for bit, corners at the edges "
                   "included) and passes the gradient to the patch")


@_one_thread
def check_train_patch(answer, *, seed: int = 0) -> None:
    """``answer(model, images, target, size=, steps=, batch_size=, lr=, generator=)`` trains a
    universal patch like :func:`advlab.attacks.train_patch` (random places): the same patch from
    the same generator seed, on a small batch-norm CNN."""
    name = _name(answer)
    g = _gen(seed)
    side, target, size, batch_size, lr = 10, 2, 4, 8, 0.3
    images = torch.rand(40, 1, side, side, generator=g)
    hint = ("Every step: draw the batch with torch.randint(0, len(images), (batch_size,), "
            "generator=generator), paste torch.sigmoid(theta) at random places with "
            "attacks.apply_patch(batch, patch, generator=generator) (it draws the places from the "
            "same generator), take F.cross_entropy toward the target and one Adam step on theta, "
            "which starts at zeros and has one optimiser for all steps")
    for steps in (1, 6):
        model = _tiny_cnn(seed, side=side)
        reference = attacks.train_patch(model, images, target, size=size, steps=steps,
                                        batch_size=batch_size, lr=lr, generator=_gen(seed + 1))
        model.train()
        before = _snapshot(model)
        got = _tensor(call(answer, model, images, target, size=size, steps=steps,
                           batch_size=batch_size, lr=lr, generator=_gen(seed + 1)), name)
        _model_untouched(model, before, name)
        if got.requires_grad:
            raise ExerciseError(f"`{name}` returns a patch that is still part of a graph: return "
                                "torch.sigmoid(theta).detach()")
        what = (f"the patch of {name}(model, images, target={target}, size={size}, steps={steps}, "
                f"batch_size={batch_size}, lr={lr})")
        _compare(got, reference, what, hint, atol=1e-5, rtol=1e-4)
    passed(answer, f"{name} trains the same patch as attacks.train_patch (1 and 6 Adam steps, "
                   "same generator), in evaluation mode, without touching the model")


# --- 05 · why models break --------------------------------------------------------------------

def _shares(W, h, k):
    parts = (W[k] * h).clamp(min=0)
    return parts / parts.sum(1, keepdim=True)


@_one_thread
def check_evidence_shares(answer, *, seed: int = 0) -> None:
    """``answer(W, h, k)`` returns every neuron's share of the positive evidence for logit ``k``,
    ``max(W[k, j] h_j, 0) / sum_i max(W[k, i] h_i, 0)``, shape ``(N, J)``; the check computes the
    formula itself."""
    name = _name(answer)
    g = _gen(seed)
    classes, neurons, n = 4, 7, 5
    W = torch.randn(classes, neurons, generator=g)
    h = torch.rand(n, neurons, generator=g) * (torch.rand(n, neurons, generator=g) > 0.3)
    for k in (2, 0):
        j = int(W[k].argmax())
        W[k, j] = W[k, j].abs() + 0.1       # every image has some positive evidence for logit k
        h[:, j] = h[:, j] + 0.2
        W_before, h_before = W.clone(), h.clone()
        got = _tensor(call(answer, W, h, k), name)
        if not (torch.equal(W, W_before) and torch.equal(h, h_before)):
            raise ExerciseError(f"`{name}` changed W or h in place (clamp_? use clamp)")
        expected = _shares(W, h, k)
        hint = ""
        if got.shape == expected.shape:
            if _same(got, (W[k] * h).abs() / (W[k] * h).abs().sum(1, keepdim=True)):
                hint = "negative contributions W[k, j] h_j count as 0 (clamp(min=0)), not by size"
            elif _same(got, W[k] * h / (W[k] * h).sum(1, keepdim=True)):
                hint = "only positive evidence counts: clamp W[k] * h at 0 before dividing"
        _compare(got, expected, f"{name}(W, h, k={k}) with W {tuple(W.shape)}, h {tuple(h.shape)}",
                 hint, atol=1e-6)
    passed(answer, f"{name} gives each neuron's share of the positive evidence (two logits, "
                   "negative contributions left out, rows summing to 1)")


@_one_thread
def check_logits_along_fgsm(answer, *, seed: int = 0) -> None:
    """``answer(model, images, labels, eps_values)`` returns ``(E, N, K)`` logits of
    ``model(x + eps sign(grad_x CE))``, unclipped, like :func:`advlab.attacks.logits_along_fgsm`."""
    name = _name(answer)
    g = _gen(seed)
    model = _tiny_cnn(seed, side=8)
    images = torch.rand(6, 1, 8, 8, generator=g)
    labels = torch.randint(0, 3, (6,), generator=g)
    eps_values = [-0.3, -0.1, 0.0, 0.2, 0.5]
    expected = attacks.logits_along_fgsm(model, images, labels, eps_values)
    model.train()
    before = _snapshot(model)
    images_before = images.clone()
    got = _tensor(call(answer, model, images, labels, eps_values), name)
    _model_untouched(model, before, name)
    if not torch.equal(images, images_before):
        raise ExerciseError(f"`{name}` changed `images` in place")
    if got.requires_grad:
        raise ExerciseError(f"`{name}` returns logits that still carry a graph: compute them "
                            "under torch.no_grad() (or .detach() them)")
    hint = ""
    if got.shape == expected.shape:
        with eval_mode(model), torch.enable_grad():
            x = images.clone().requires_grad_(True)
            grad = torch.autograd.grad(F.cross_entropy(model(x), labels, reduction="sum"), x)[0]
            with torch.no_grad():
                clipped = torch.stack([model((images + e * grad.sign()).clamp(0, 1))
                                       for e in eps_values])
                raw = torch.stack([model(images + e * grad) for e in eps_values])
        if _same(got, clipped, 1e-5):
            hint = "do not clip to [0, 1] here: the curves follow the model along a straight line"
        elif _same(got, raw, 1e-5):
            hint = "step along the sign of the gradient, not the gradient itself"
    _compare(got, expected, f"{name}(model, images, labels, eps_values={eps_values})", hint,
             atol=1e-5, rtol=1e-5)
    passed(answer, f"{name} traces the logits along FGSM's direction like "
                   "attacks.logits_along_fgsm (eval mode, unclipped, mode restored)")


# --- 06 · defensive distillation --------------------------------------------------------------

@_one_thread
def check_tempered_cross_entropy(answer, *, seed: int = 0) -> None:
    """``answer(logits, targets, T)`` is ``CE(softmax(z / T), targets)`` averaged over the batch,
    for class indices and for probability rows, like
    :func:`advlab.defenses.tempered_cross_entropy`, and differentiable in the logits."""
    name = _name(answer)
    g = _gen(seed)
    n, k = 6, 4
    logits = 5 * torch.randn(n, k, generator=g)
    labels = torch.randint(0, k, (n,), generator=g)
    teacher = 5 * torch.randn(n, k, generator=g)
    # logits far apart, the label not on top: softmax(z / T) underflows to exactly 0 there
    huge = 300 * torch.randn(n, k, generator=g)
    wrong = (huge.argmax(1) + 1) % k
    cases = [(logits, labels, 1.0, "class-index targets at T = 1"),
             (logits, labels, 10.0, "class-index targets at T = 10"),
             (logits, defenses.softened(teacher, 10.0), 10.0,
              "soft targets (probability rows) at T = 10"),
             (huge, wrong, 2.0, "class-index targets at T = 2, logits hundreds apart")]
    for z, targets, T, where in cases:
        mine = z.clone().requires_grad_(True)
        got = call(answer, mine, targets.clone(), T)
        what = f"{name}(logits, targets, T) with {where}"
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            raise ExerciseError(f"{what} should be one number in a tensor (the mean over the "
                                f"batch), got {type(got).__name__} "
                                f"{tuple(got.shape) if isinstance(got, torch.Tensor) else ''}")
        ref_z = z.clone().requires_grad_(True)
        expected = defenses.tempered_cross_entropy(ref_z, targets, T)
        value = got.detach().double().item()
        hint = ""
        if not math.isfinite(value):
            hint = ("softmax(z / T) is exactly 0 here in float32, so log(softmax) is -inf: use "
                    "F.log_softmax(z / T, dim=1) or F.cross_entropy, which never take log 0")
        elif abs(value - n * expected.item()) <= 1e-4 * abs(n * expected.item()):
            hint = "average over the batch (mean), do not sum"
        elif abs(value - defenses.tempered_cross_entropy(z * T * T, targets, T).item()) <= 1e-4 * (
                1 + abs(value)):
            hint = "divide the logits by T, do not multiply"
        _compare(value, expected.item(), what, hint, atol=1e-6, rtol=1e-5)
        if not got.requires_grad:
            raise ExerciseError(f"{what}: the loss is not differentiable in the logits (no "
                                "graph): compute it with torch operations, without .item() or "
                                ".detach()")
        (grad,) = torch.autograd.grad(got.sum(), mine)
        (ref_grad,) = torch.autograd.grad(expected, ref_z)
        _compare(grad, ref_grad, f"the gradient of {what} with respect to the logits",
                 atol=1e-6, rtol=1e-4)
    passed(answer, f"{name} matches defenses.tempered_cross_entropy (hard and soft targets, "
                   "T = 1, 2, 10, logits far apart) and its gradient")


def _saturated_cnn(seed: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A tiny CNN whose logits are hundreds apart, like a student distilled at a high T, and 8
    images it classifies with a gap of 200 to 5,000 between its top two logits (their labels are
    its predictions): the float32 softmax is exactly one-hot there, while at T = 100 it is not."""
    model = _tiny_cnn(seed, side=8).eval()
    with torch.no_grad():
        model[-1].weight.mul_(10_000)
        model[-1].bias.mul_(10_000)
        pool = torch.rand(256, 1, 8, 8, generator=_gen(seed))
        top2 = model(pool).topk(2, dim=1)
    gap = top2.values[:, 0] - top2.values[:, 1]
    keep = ((gap >= 200) & (gap <= 5000)).nonzero().flatten()[:8]
    return model, pool[keep], top2.indices[keep, 0]


@_one_thread
def check_fgsm_over_T(answer, *, seed: int = 0) -> None:
    """``answer(model, images, labels, eps, T)`` is FGSM on the logits divided by ``T``, like
    ``advlab.attacks.fgsm(advlab.defenses.Temperature(model, T), images, labels, eps)``, on a
    tiny model whose softmax saturates (where plain FGSM does not move at all)."""
    name = _name(answer)
    model, images, labels = _saturated_cnn(seed)
    eps, T = 0.2, 100.0
    expected = attacks.fgsm(defenses.Temperature(model, T), images, labels, eps)
    model.train()
    before = _snapshot(model)
    images_before = images.clone()
    got = _tensor(call(answer, model, images, labels, eps, T), name)
    _model_untouched(model, before, name)
    if not torch.equal(images, images_before):
        raise ExerciseError(f"`{name}` changed `images` in place")
    if got.requires_grad:
        raise ExerciseError(f"`{name}` returns images that still carry a graph: .detach() them")
    hint = ""
    if torch.equal(got.detach(), images):
        hint = ("your images did not move: the softmax of these huge logits is exactly one-hot, "
                "so the gradient of CE(z, y) is 0; take the cross-entropy of model(x) / T")
    elif got.shape == images.shape and bool((got < 0).any() or (got > 1).any()):
        hint = "clip the result to [0, 1]"
    elif _same(got.detach(), attacks.fgsm(defenses.Temperature(model, T), images, labels, eps,
                                          targeted=True)):
        hint = "FGSM climbs the loss of the true label: x + eps * sign(gradient), not minus"
    _compare(got, expected, f"{name}(model, images, labels, eps={eps}, T={T:g})", hint,
             atol=1e-6)
    passed(answer, f"{name} matches attacks.fgsm on defenses.Temperature(model, T) where plain "
                   "FGSM is stuck (eval mode, mode restored, no parameter gradients)")


# --- 07 · robustness in practice --------------------------------------------------------------

@_one_thread
def check_fast_adversarial_batch(answer, *, seed: int = 0) -> None:
    """``answer(x, y, model, eps=, alpha=, generator=)`` returns ``(x_adv, y)``: one FGSM step of
    ``alpha`` from a uniform random start in the eps-ball, projected back, as
    ``attacks.pgd(..., steps=1, random_start=True)`` makes it; used as ``train.fit``'s
    ``batch_transform`` it trains the same weights as :func:`advlab.defenses.adversarial_training`."""
    name = _name(answer)
    g = _gen(seed)
    eps, alpha = 0.25, 0.3125
    images = torch.rand(48, 1, 8, 8, generator=g)
    labels = torch.randint(0, 3, (48,), generator=g)
    hint = ("Start from x + eps * (2 * torch.rand(x.shape, generator=generator) - 1) clipped to "
            "[0, 1], step alpha * sign(gradient of the cross-entropy) from there, then project "
            "back: (x + (x_adv - x).clamp(-eps, eps)).clamp(0, 1)")

    # one batch, the model in training mode as train.fit calls the transform
    model = _tiny_cnn(seed, side=8)
    model.train()
    x, y = images[:16], labels[:16]
    x_before, y_before = x.clone(), y.clone()
    before = _snapshot(model)
    out = call(answer, x, y, model, eps=eps, alpha=alpha, generator=_gen(seed + 1))
    if not isinstance(out, tuple) or len(out) != 2:
        raise ExerciseError(f"`{name}` should return the pair (x_adv, y), as a batch_transform "
                            f"does, got {type(out).__name__}")
    _model_untouched(model, before, name)
    if not (torch.equal(x, x_before) and torch.equal(y, y_before)):
        raise ExerciseError(f"`{name}` changed the batch x or y in place")
    x_adv, y_out = _tensor(out[0], name), out[1]
    if not (isinstance(y_out, torch.Tensor) and torch.equal(y_out, y)):
        raise ExerciseError(f"`{name}` should return the labels y unchanged as the second item")
    if x_adv.requires_grad:
        raise ExerciseError(f"`{name}` returns images that still carry a graph: .detach() them")
    start = attacks.pgd(model, x, y, eps, steps=1, alpha=alpha, random_start=True,
                        generator=_gen(seed + 1))
    expected = (x + (start - x).clamp(-eps, eps)).clamp(0, 1)
    if x_adv.shape == x.shape and (x_adv - x).abs().max() > eps + 1e-6:
        raise ExerciseError(f"`{name}` moved a pixel by {(x_adv - x).abs().max():.3g}, more than "
                            f"eps = {eps}: project back into the eps-ball")
    _compare(x_adv, expected, f"x_adv of {name}(x, y, model, eps={eps}, alpha={alpha})", hint,
             atol=1e-6)

    # a short training run: the same weights as defenses.adversarial_training
    kw = {"batch_size": 16, "lr": 1e-2, "seed": seed, "device": "cpu", "progress": False}
    mine, ref = _tiny_cnn(seed, side=8), _tiny_cnn(seed, side=8)
    gen = _gen(seed + 2)

    def transform(xb, yb, net):
        return call(answer, xb, yb, net, eps=eps, alpha=alpha, generator=gen)

    fit(mine, (images, labels), 1, batch_transform=transform, **kw)
    defenses.adversarial_training(
        ref, (images, labels), eps=eps, epochs=1,
        attack=partial(attacks.pgd, steps=1, alpha=alpha, random_start=True,
                       generator=_gen(seed + 2)), **kw)
    mine_state, ref_state = mine.state_dict(), ref.state_dict()
    for key, value in ref_state.items():
        _compare(mine_state[key], value, f"after 3 training steps with `{name}` as "
                 f"batch_transform, the weights {key}", hint, atol=1e-5, rtol=1e-4)
    passed(answer, f"{name} makes the batch of attacks.pgd(steps=1, random_start=True) and trains "
                   "the weights of defenses.adversarial_training (eval mode for the attack)")


@_one_thread
def check_mutual_information(answer, *, seed: int = 0) -> None:
    """``answer(member_probs)`` maps ``(S, N, C)`` probabilities to the mutual information
    ``H[mean_s p_s] - mean_s H[p_s]`` per input, ``(N,)``, like
    ``advlab.defenses.uncertainty(member_probs).mutual_information``."""
    name = _name(answer)
    g = _gen(seed)
    members, classes = 5, 5
    random = F.softmax(3 * torch.randn(members, 3, classes, generator=g), dim=-1)
    # members that agree exactly: no disagreement, though float error can make H[mean] - mean H
    # come out a hair below 0 (three such rows are picked where the plain formula does)
    pool = F.softmax(3 * torch.randn(64, classes, generator=g), dim=-1).expand(members, 64, classes)
    plain = defenses.entropy(pool.mean(0)) - defenses.entropy(pool).mean(0)
    order = torch.cat([(plain < 0).nonzero().flatten(), (plain >= 0).nonzero().flatten()])
    agree = pool[:, order[:3]]
    one_hot = torch.randint(0, classes, (members,), generator=g)
    confident = torch.stack([F.one_hot(one_hot, classes).float(),       # disagreeing one-hots
                             F.one_hot(one_hot[:1].expand(members), classes).float()], 1)
    probs = torch.cat([random, agree, confident], 1).contiguous()
    n = probs.shape[1]
    probs_before = probs.clone()
    got = _tensor(call(answer, probs), name)
    if not torch.equal(probs, probs_before):
        raise ExerciseError(f"`{name}` changed member_probs in place")
    expected = defenses.uncertainty(probs).mutual_information
    hint = ""
    if got.shape == expected.shape:
        if torch.isnan(got).any():
            hint = ("some probabilities are exactly 0 and 0 * log 0 gives NaN: use "
                    "torch.special.xlogy(p, p), which takes 0 log 0 = 0")
        elif (got < 0).any():
            hint = ("where the members agree, float error can make the difference slightly "
                    "negative: clamp it at 0 (mutual information is never negative)")
    elif got.shape == (members,):
        hint = "average over the members (dimension 0), one value per input"
    _compare(got, expected, f"{name}(member_probs) with {members} members, {n} inputs, "
             f"{classes} classes (some members one-hot, some all equal)", hint, atol=1e-6)
    if (got < 0).any():
        raise ExerciseError(f"`{name}` gives a negative mutual information "
                            f"({float(got.min()):.3g}) where the members agree: float error; "
                            "clamp it at 0 (mutual information is never negative)")
    passed(answer, f"{name} matches defenses.uncertainty(...).mutual_information (0 log 0 = 0, "
                   "no negative values)")


@_one_thread
def check_detection_auroc(answer, *, seed: int = 0) -> None:
    """``answer(negatives, positives)`` is the probability that a random positive scores above a
    random negative, ties counting one half, like :func:`advlab.metrics.auroc`."""
    name = _name(answer)
    g = _gen(seed)
    neg = (torch.rand(9, generator=g) * 5).round() / 5          # many ties, within and across
    pos = (torch.rand(6, generator=g) * 5 + 0.6).round() / 5
    cases = [(neg, pos, "scores with ties"),
             (torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0.5, 0.9]), "perfectly separated"),
             (pos, neg, "the score pointing the wrong way"),
             (torch.full((4,), 0.5), torch.full((3,), 0.5), "every score equal")]
    for negatives, positives, where in cases:
        got = call(answer, negatives.clone(), positives.clone())
        expected = metrics.auroc(negatives, positives)
        hint = ""
        if isinstance(got, (float, int, torch.Tensor)) and not isinstance(got, bool):
            value = float(got)
            diff = positives[None, :] - negatives[:, None]
            if abs(value - (diff > 0).double().mean().item()) < 1e-9 and (diff == 0).any():
                hint = "a tie (positive == negative) counts one half, not 0"
            elif abs(value - (diff >= 0).double().mean().item()) < 1e-9 and (diff == 0).any():
                hint = "a tie (positive == negative) counts one half, not 1"
            elif abs(value - (1 - expected)) < 1e-9 and expected != 0.5:
                hint = "the positives should score higher: count positive > negative"
        _compare(got, expected, f"{name}(negatives, positives), {where}", hint, atol=1e-9,
                 rtol=0)
    passed(answer, f"{name} matches metrics.auroc (ties count one half; separated, reversed and "
                   "all-equal scores)")

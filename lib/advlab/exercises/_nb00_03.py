"""Exercise checks for notebooks 00–03."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from .. import attacks, metrics, train
from ._core import ExerciseError, call, compare, passed
from ._core import close as _close
from ._core import tensor_answer as _tensor

__all__: list[str] = [
    "check_per_class_accuracy", "check_confusion_matrix",          # 00
    "check_input_gradient", "check_label_only",                   # 01
    "check_fgsm", "check_pgd",                                    # 02
    "check_transfer_rate", "check_counting_model",                # 03
]


# --- seeded inputs -------------------------------------------------------------------------------

def _generator(seed: int, stream: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(1000 * int(seed) + stream)


def _model(seed: int, *, shape=(1, 6, 6), hidden: int = 16, classes: int = 10,
           dropout: float = 0.0, scale: float = 1.0) -> nn.Module:
    """A tiny tanh network with seeded weights, in evaluation mode; the global RNG is untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        layers: list[nn.Module] = [nn.Flatten(), nn.Linear(math.prod(shape), hidden), nn.Tanh()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(hidden, classes))
        model = nn.Sequential(*layers)
        with torch.no_grad():
            model[-1].weight.mul_(scale)
    return model.eval()


def _related(model: nn.Module, seed: int, noise: float = 1.0) -> nn.Module:
    """A copy of ``model`` with seeded noise on every weight: a model that agrees with it on
    part of the inputs, as two networks trained on the same data do."""
    other = copy.deepcopy(model)
    gen = _generator(seed, 6)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(noise * p.abs().mean() * torch.randn(p.shape, generator=gen))
    return other


def _images(seed: int, n: int, shape=(1, 6, 6), stream: int = 1) -> torch.Tensor:
    """Images in [0, 1] with some pixels exactly 0 and 1, so that clipping matters."""
    gen = _generator(seed, stream)
    x = torch.rand(n, *shape, generator=gen)
    edge = torch.rand(n, *shape, generator=gen)
    x[edge < 0.15] = 0.0
    x[edge > 0.9] = 1.0
    return x


def _labels_near(model, images, seed: int, *, agree: float = 0.6, classes: int = 10,
                 stream: int = 2) -> torch.Tensor:
    """Labels equal to the model's prediction for about ``agree`` of the images, random for the
    rest; the first ``classes`` images get labels 0, 1, ..., so every class occurs."""
    gen = _generator(seed, stream)
    with torch.no_grad():
        pred = model(images).argmax(1)
    random = torch.randint(0, classes, (len(images),), generator=gen)
    keep = torch.rand(len(images), generator=gen) < agree
    labels = torch.where(keep, pred, random)
    first = min(classes, len(images))
    labels[:first] = torch.arange(first)
    return labels


def _other_labels(labels, seed: int, classes: int = 10, stream: int = 3) -> torch.Tensor:
    """A target class for each image, never its own label."""
    shift = torch.randint(1, classes, (len(labels),), generator=_generator(seed, stream))
    return (labels + shift) % classes


# --- shared property checks ----------------------------------------------------------------------

def _no_parameter_grads(model, what: str) -> None:
    for name, p in model.named_parameters():
        if p.grad is not None:
            raise ExerciseError(
                f"{what} left a gradient in the model's parameter `{name}.grad`: take the "
                "gradient with torch.autograd.grad(loss, images), which touches no parameter, "
                "instead of loss.backward()")


def _caller_images_untouched(images, before, what: str) -> None:
    if images.requires_grad:
        raise ExerciseError(
            f"{what} switched on requires_grad of the caller's images tensor: work on a copy, "
            "e.g. images.clone().requires_grad_(True)")
    if not torch.equal(images, before):
        raise ExerciseError(f"{what} changed the caller's images in place: work on a copy")


def _detached(got, what: str) -> None:
    if got.requires_grad:
        raise ExerciseError(f"{what} returns a tensor that is still part of the autograd graph: "
                            "return it .detach()-ed")


def _adversarial_images(got, images, eps: float, what: str) -> torch.Tensor:
    """An attack's output: a detached float tensor of the images' shape, in [0, 1], within eps."""
    got = _tensor(got, what)
    if tuple(got.shape) != tuple(images.shape):
        raise ExerciseError(f"{what} has shape {tuple(got.shape)}, expected "
                            f"{tuple(images.shape)} (one adversarial image per input image)")
    _detached(got, what)
    lo, hi = float(got.min()), float(got.max())
    if lo < 0 or hi > 1:
        raise ExerciseError(f"{what} has pixels outside [0, 1] (from {lo:.3g} to {hi:.3g}): "
                            "clamp the adversarial images to the valid range, .clamp(0, 1)")
    moved = float((got.detach() - images).abs().max())
    if moved > eps + 1e-5:
        raise ExerciseError(f"{what} moves a pixel by {moved:.4g}, more than eps = {eps:g}")
    return got


# --- 00: per-class accuracy and the confusion matrix -----------------------------------------------

def check_per_class_accuracy(answer, *, seed: int = 0) -> None:
    """``answer(model, images, labels)``: the accuracy on each of the 10 classes, compared with
    :func:`advlab.metrics.per_class_accuracy` on a tiny seeded model."""
    model = _model(seed, scale=3.0)
    images = _images(seed, 300)
    labels = _labels_near(model, images, seed)
    what = "per_class_accuracy(model, images, labels)"
    expected = metrics.per_class_accuracy(model, images, labels)
    got = _tensor(call(answer, model, images, labels), what)
    if tuple(got.shape) != (10,):
        raise ExerciseError(f"{what} has shape {tuple(got.shape)}, expected (10,): one accuracy "
                            "per class")
    if not got.is_floating_point():
        raise ExerciseError(f"{what} has dtype {got.dtype}: return accuracies (fractions in "
                            "[0, 1]) as a float tensor, not counts")
    got = got.detach().cpu()
    if not _close(got, expected):
        matrix = metrics.confusion_matrix(train.predict(model, images).argmax(1), labels, 10)
        precision = matrix.diag().float() / matrix.sum(0).clamp(min=1).float()
        if _close(got, precision):
            raise ExerciseError(
                f"{what} divides by how often each class was *predicted* (that is the precision "
                "of each class): divide the correct predictions of class c by the number of "
                "images whose label is c")
        overall = (matrix.diag().sum() / matrix.sum()).float()
        if _close(got, overall.expand(10)):
            raise ExerciseError(f"{what} gives the overall accuracy for every class: keep only "
                                "the images of class c (labels == c) for entry c")
    compare(got, expected, what, check_dtype=False)
    passed(answer, "per_class_accuracy matches advlab.metrics.per_class_accuracy (10 classes, "
           "300 images)")


def check_confusion_matrix(answer, *, seed: int = 0) -> None:
    """``answer(predictions, labels, classes)``: a ``(classes, classes)`` int64 matrix of counts,
    rows the true labels, compared with :func:`advlab.metrics.confusion_matrix`."""
    gen = _generator(seed, 4)
    cases = []
    labels = torch.randint(0, 10, (500,), generator=gen)
    right = torch.rand(500, generator=gen) < 0.7
    predictions = torch.where(right, labels, torch.randint(0, 10, (500,), generator=gen))
    cases.append((predictions, labels, 10))
    # four classes, the last one neither a label nor a prediction: its row and column are zero
    labels = torch.randint(0, 3, (60,), generator=gen)
    predictions = torch.randint(0, 3, (60,), generator=gen)
    cases.append((predictions, labels, 4))
    for predictions, labels, classes in cases:
        what = f"confusion_matrix(predictions, labels, classes={classes}) on {len(labels)} images"
        expected = metrics.confusion_matrix(predictions, labels, classes)
        got = _tensor(call(answer, predictions.clone(), labels.clone(), classes), what)
        if tuple(got.shape) != (classes, classes):
            raise ExerciseError(f"{what} has shape {tuple(got.shape)}, expected "
                                f"({classes}, {classes}): use `classes`, not the largest label "
                                "seen")
        got = got.detach().cpu()
        if not torch.equal(got.double(), expected.double()) and torch.equal(
                got.double(), expected.T.double()):
            raise ExerciseError(f"{what} is transposed: rows are the true labels and columns "
                                "the predictions, entry [i, j] counts images of class i "
                                "predicted as j")
        compare(got, expected, what, exact=True)
    passed(answer, "confusion_matrix matches advlab.metrics.confusion_matrix (10 and 4 classes)")


# --- 01: the white-box gradient and a label-only door ----------------------------------------------

def check_input_gradient(answer, *, seed: int = 0) -> None:
    """``answer(model, images, labels)``: the summed cross-entropy's gradient with respect to the
    images, compared with :func:`advlab.attacks.input_gradient`; no parameter gradient left
    behind, evaluation mode used and every module's mode restored."""
    model = _model(seed, dropout=0.5)
    images = _images(seed, 12)
    labels = _labels_near(model, images, seed)
    expected = attacks.input_gradient(model, images, labels)
    what = "input_gradient(model, images, labels)"
    before = images.clone()
    got = _tensor(call(answer, model, images, labels), what)
    _no_parameter_grads(model, what)
    _caller_images_untouched(images, before, what)
    if tuple(got.shape) != tuple(images.shape):
        raise ExerciseError(f"{what} has shape {tuple(got.shape)}, expected "
                            f"{tuple(images.shape)}: one gradient entry per pixel")
    _detached(got, what)
    got = got.detach().cpu()
    if not _close(got, expected, atol=1e-7):
        if _close(got * len(images), expected, atol=1e-7):
            raise ExerciseError(
                f"{what} is the reference divided by the batch size {len(images)}: sum the loss "
                "over the batch (F.cross_entropy(..., reduction='sum')), so that each image's "
                "gradient does not depend on how many images come with it")
        if _close(-got, expected, atol=1e-7):
            raise ExerciseError(f"{what} has the wrong sign: differentiate the loss itself, "
                                "not its negative")
    compare(got, expected, what, atol=1e-7, rtol=1e-4)

    model.train()
    what_train = what + " with the model in training mode"
    with torch.random.fork_rng(devices=[]):  # a wrong answer's dropout draws stay in here
        torch.manual_seed(int(seed))
        got = _tensor(call(answer, model, images, labels), what_train)
    changed = [name or "the model" for name, m in model.named_modules() if not m.training]
    if changed:
        raise ExerciseError(f"{what_train} left {changed[0]!r} in evaluation mode: restore "
                            "every module's training flag afterwards (advlab.checks.eval_mode "
                            "does this)")
    _no_parameter_grads(model, what_train)
    if tuple(got.shape) == tuple(images.shape) and not _close(got.detach().cpu(), expected,
                                                               atol=1e-7):
        raise ExerciseError(f"{what_train} differs from the gradient in evaluation mode "
                            "(dropout was on): switch the model to evaluation mode while you "
                            "take the gradient, then restore its mode")
    compare(got, expected, what_train, atol=1e-7, rtol=1e-4)
    passed(answer, "input_gradient matches advlab.attacks.input_gradient, leaves no parameter "
           "gradients and restores the model's mode")


def check_label_only(answer, *, seed: int = 0) -> None:
    """``answer(model)`` makes a door; ``door(images)`` returns only the predicted classes (int64),
    compared with ``advlab.train.predict(model, images).argmax(1)``, and ``door.queries`` counts
    every image asked about."""
    model = _model(seed, scale=3.0)
    door = call(answer, model)
    other = call(answer, _model(seed + 1))
    name = type(door).__name__
    if getattr(door, "queries", None) != 0:
        raise ExerciseError(f"a new {name}(model) should start with queries = 0, has "
                            f"{getattr(door, 'queries', 'no queries attribute')!r}")
    seen = 0
    for calls, n in enumerate((5, 9, 1), start=1):
        images = _images(seed, n, stream=calls)
        what = f"{name}(model)(images) on {n} image{'s' if n > 1 else ''}"
        got = _tensor(call(door, images), what)
        seen += n
        if got.is_floating_point() or tuple(got.shape) != (n,):
            raise ExerciseError(f"{what} returns a {got.dtype} tensor of shape "
                                f"{tuple(got.shape)}: a label-only door returns just the "
                                f"predicted class of each image, shape ({n},), dtype int64 "
                                "(argmax of the logits)")
        compare(got.cpu(), train.predict(model, images).argmax(1), what, exact=True)
        if door.queries != seen:
            raise ExerciseError(f"after {seen} images asked in {calls} call(s), door.queries "
                                f"is {door.queries!r}: count every image, not every call "
                                "(add len(images))")
    call(other, _images(seed, 3, stream=4))
    if other.queries != 3 or door.queries != seen:
        raise ExerciseError(f"two doors share one count: after {seen} images asked of one and 3 "
                            f"of another, their queries are {door.queries!r} and "
                            f"{other.queries!r}: keep each door's count on self.queries")
    passed(answer, "the label-only door returns advlab.train.predict's classes and counts every "
           "image")


# --- 02: FGSM and PGD -------------------------------------------------------------------------------

def _gradient_sign_step(model, images, labels, eps: float) -> torch.Tensor:
    """clip(x + eps * sign(grad)) for any eps sign: a wrong answer's likely output."""
    return (images + eps * attacks.input_gradient(model, images, labels).sign()).clamp(0, 1)


def check_fgsm(answer, *, seed: int = 0) -> None:
    """``answer(model, images, labels, eps, targeted=False)``: compared with
    :func:`advlab.attacks.fgsm`, untargeted and targeted; the result in [0, 1], within eps of the
    images and detached, and no parameter gradient left behind."""
    model = _model(seed)
    images = _images(seed, 16)
    labels = _labels_near(model, images, seed)
    targets = _other_labels(labels, seed)
    eps = 0.15
    before = images.clone()
    untargeted = attacks.fgsm(model, images, labels, eps)
    for targeted, y in ((False, labels), (True, targets)):
        what = (f"my_fgsm(model, images, {'targets' if targeted else 'labels'}, eps={eps}"
                f"{', targeted=True' if targeted else ''})")
        expected = attacks.fgsm(model, images, y, eps, targeted=targeted)
        got = call(answer, model, images, y, eps, targeted=targeted)
        _no_parameter_grads(model, what)
        _caller_images_untouched(images, before, what)
        got = _adversarial_images(got, images, eps, what).detach().cpu()
        if not _close(got, expected):
            if targeted and _close(got, _gradient_sign_step(model, images, y, eps)):
                raise ExerciseError(
                    f"{what} steps up the loss of the target class: a targeted attack goes "
                    "down it, x - eps * sign(grad of the loss at the target labels)")
            if targeted and _close(got, untargeted):
                raise ExerciseError(f"{what} ignores targeted=True: it returns the untargeted "
                                    "FGSM image")
            if not targeted and _close(got, _gradient_sign_step(model, images, y, -eps)):
                raise ExerciseError(f"{what} steps down the loss: untargeted FGSM raises it, "
                                    "x + eps * sign(grad)")
        compare(got, expected, what)
    passed(answer, "my_fgsm matches advlab.attacks.fgsm, untargeted and targeted")


def _pgd_clean_gradient(model, images, labels, eps, alpha, steps):
    """PGD that keeps using the clean image's gradient: a typical wrong answer."""
    direction = attacks.input_gradient(model, images, labels).sign()
    x = images
    for _ in range(steps):
        x = (images + (x + alpha * direction - images).clamp(-eps, eps)).clamp(0, 1)
    return x


def check_pgd(answer, *, seed: int = 0) -> None:
    """``answer(model, images, labels, eps, alpha, steps)``: PGD from the clean images (no random
    start), compared with :func:`advlab.attacks.pgd` with ``random_start=False``."""
    model = _model(seed, scale=3.0)
    images = _images(seed, 16)
    labels = _labels_near(model, images, seed)
    before = images.clone()
    for eps, alpha, steps in ((0.1, 0.03, 6), (0.2, 0.2, 1), (0.05, 0.02, 4)):
        what = f"my_pgd(model, images, labels, eps={eps}, alpha={alpha}, steps={steps})"
        expected = attacks.pgd(model, images, labels, eps, alpha=alpha, steps=steps,
                               random_start=False)
        got = call(answer, model, images, labels, eps, alpha, steps)
        _no_parameter_grads(model, what)
        _caller_images_untouched(images, before, what)
        if isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(images.shape):
            moved = float((got.detach().cpu() - images).abs().max())
            if moved > eps + 1e-5:
                raise ExerciseError(
                    f"{what} moves a pixel by {moved:.4g}, more than eps = {eps}: after each "
                    "step project back into the eps-box around the *clean* images, "
                    "images + (x - images).clamp(-eps, eps)")
        got = _adversarial_images(got, images, eps, what).detach().cpu()
        if not _close(got, expected, atol=1e-5):
            for n in (steps - 1, steps + 1):
                if n >= 1 and _close(got, attacks.pgd(model, images, labels, eps, alpha=alpha,
                                                     steps=n, random_start=False), atol=1e-5):
                    raise ExerciseError(f"{what} takes {n} steps instead of {steps}")
            if steps > 1 and _close(got, _pgd_clean_gradient(model, images, labels, eps, alpha,
                                                             steps), atol=1e-5):
                raise ExerciseError(f"{what} reuses the clean images' gradient at every step: "
                                    "take the gradient at the current x_k each time")
        compare(got, expected, what, atol=1e-5)
    passed(answer, "my_pgd matches advlab.attacks.pgd without a random start (3 settings)")


# --- 03: transfer and a query counter -------------------------------------------------------------

def check_transfer_rate(answer, *, seed: int = 0) -> None:
    """``answer(source, victim, images, labels, attack)``: the fraction of the digits the victim
    gets right when clean that it gets wrong on examples crafted on the source, compared with
    the entry [source][victim] of :func:`advlab.attacks.transfer_matrix`."""
    victim = _model(seed, scale=3.0)
    source = _related(victim, seed)
    images = _images(seed, 120)
    labels = _labels_near(victim, images, seed, agree=0.7)
    eps = 0.05
    crafted_on = []

    def attack(model, x, y):
        crafted_on.append(model)
        return attacks.fgsm(model, x, y, eps)

    def fooled(model, adv, mask):
        return (train.predict(model, adv[mask]).argmax(1) != labels[mask]).float().mean().item()

    for a, b, pair in ((source, victim, "source -> victim"), (victim, source, "victim -> source")):
        what = f"transfer_rate(source, victim, images, labels, attack) for {pair}"
        expected = attacks.transfer_matrix({"a": a, "b": b}, images, labels, attack)["a"]["b"]
        crafted_on.clear()
        got = call(answer, a, b, images, labels, attack)
        if any(m is b for m in crafted_on):
            raise ExerciseError(f"{what} crafts the examples on the victim: a transfer attack "
                                "never touches the victim's weights, call attack(source, ...)")
        if not crafted_on:
            raise ExerciseError(f"{what} never calls attack(source, images, labels)")
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, (int, float)) and not isinstance(got, bool) and \
                abs(got - expected) > 1e-6:
            adv = attacks.fgsm(a, images, labels, eps)
            everything = torch.ones(len(labels), dtype=torch.bool)
            right_b = train.predict(b, images).argmax(1) == labels
            right_a = train.predict(a, images).argmax(1) == labels
            if abs(got - fooled(b, adv, everything)) <= 1e-6:
                raise ExerciseError(
                    f"{what} is {got:.4f}, expected {expected:.4f}: it counts every digit the "
                    "victim gets wrong after the attack; count only the digits the victim "
                    "classifies correctly when clean")
            if abs(got - (1 - expected)) <= 1e-6:
                raise ExerciseError(f"{what} is {got:.4f}, expected {expected:.4f}: that is the "
                                    "fraction the victim still gets right, not the fraction "
                                    "fooled")
            if abs(got - fooled(a, adv, right_a)) <= 1e-6 or abs(
                    got - fooled(a, adv, right_b)) <= 1e-6:
                raise ExerciseError(f"{what} is {got:.4f}, expected {expected:.4f}: it asks the "
                                    "source whether it is fooled; ask the victim")
        compare(got, expected, what, atol=1e-6, rtol=0)
    passed(answer, "transfer_rate matches advlab.attacks.transfer_matrix in both directions")


def _attack_through(attack, what: str, *args, **kwargs):
    try:
        return attack(*args, **kwargs)
    except ExerciseError:
        raise
    except NotImplementedError as err:
        raise ExerciseError(f"{what}: forward is not written yet") from err
    except Exception as err:
        raise ExerciseError(f"{what} failed with {type(err).__name__}: {err} (forward must "
                            "return the model's logits and let gradients flow: no "
                            "torch.no_grad() inside)") from err


def check_counting_model(answer, *, seed: int = 0) -> None:
    """``answer(model)``: a module that returns ``model``'s logits and counts every image in
    ``images_seen``; its count must equal the queries :func:`advlab.attacks.simba` reports, and
    gradient attacks through it must give what they give on the model itself."""
    model = _model(seed, shape=(1, 4, 4), scale=3.0)
    counted = call(answer, model)
    name = type(counted).__name__
    if not isinstance(counted, nn.Module):
        raise ExerciseError(f"{name} should be a torch.nn.Module (attacks switch its mode with "
                            "eval_mode)")
    if getattr(counted, "images_seen", None) != 0:
        raise ExerciseError(f"a new {name}(model) should start with images_seen = 0, has "
                            f"{getattr(counted, 'images_seen', 'no images_seen attribute')!r}")
    images = _images(seed, 6, shape=(1, 4, 4))
    with torch.no_grad():
        labels = model(images).argmax(1)  # all classified correctly: SimBA has work to do
    what = f"{name}(model)(images) on {len(images)} images"
    got = _tensor(call(counted, images), what)
    with torch.no_grad():
        compare(got.detach(), model(images), what + " (the logits)")
    if counted.images_seen != len(images):
        raise ExerciseError(f"after one call on {len(images)} images, images_seen is "
                            f"{counted.images_seen!r}, expected {len(images)}: count images "
                            "(len(x)), not calls")
    counted = call(answer, model)
    what = f"attacks.fgsm through {name}(model)"
    got = _attack_through(attacks.fgsm, what, counted, images, labels, 0.1)
    compare(got, attacks.fgsm(model, images, labels, 0.1), what + ", against fgsm on the model "
            "itself")
    counted = call(answer, model)
    result = _attack_through(attacks.simba, f"attacks.simba through {name}(model)", counted,
                             images, labels, eps=0.5, max_queries=12, basis="pixel",
                             generator=_generator(seed, 5))
    reported = int(result.queries.sum())
    if counted.images_seen != reported:
        raise ExerciseError(f"during attacks.simba(..., max_queries=12) on {len(images)} images "
                            f"{name} counted {counted.images_seen!r} images, SimBA reports "
                            f"{reported} queries")
    passed(answer, f"{name} counts every image: {reported} during SimBA, as SimBA reports")

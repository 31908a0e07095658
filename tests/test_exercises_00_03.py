"""The exercise checks of notebooks 00-03 (a correct answer passes, typical mistakes are named,
an unsolved stub asks for code) and the library functions they compare with:
metrics.confusion_matrix, metrics.per_class_accuracy, attacks.input_gradient and
attacks.CountingModel."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from torch import nn

from advlab import attacks, exercises, metrics, train
from advlab.checks import eval_mode
from advlab.exercises import ExerciseError

SEEDS = [0, 1]


def stub(*args, **kwargs):
    raise NotImplementedError()


class StubClass:
    """A student copy's class: __init__ given, the method still to write."""

    def __init__(self, model):
        self.model, self.queries, self.images_seen = model, 0, 0

    def __call__(self, images):
        raise NotImplementedError()


class StubModule(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.images_seen = model, 0

    def forward(self, x):
        raise NotImplementedError()


# --- correct answers, as a student might write them ----------------------------------------------

def per_class_accuracy(model, images, labels):
    predictions = train.predict(model, images).argmax(1).cpu()
    correct = (predictions == labels).float()
    return torch.stack([correct[labels == c].mean() for c in range(10)])


def confusion_matrix(predictions, labels, classes):
    matrix = torch.zeros(classes, classes, dtype=torch.long)
    for p, t in zip(predictions.tolist(), labels.tolist(), strict=True):
        matrix[t, p] += 1
    return matrix


def input_gradient(model, images, labels):
    with eval_mode(model):
        x = images.clone().requires_grad_(True)
        loss = F.cross_entropy(model(x), labels, reduction="sum")
        return torch.autograd.grad(loss, x)[0]


class LabelOnly:
    def __init__(self, model):
        self.model = model
        self.queries = 0

    def __call__(self, images):
        self.queries += len(images)
        with torch.no_grad():
            return self.model(images).argmax(1)


def my_fgsm(model, images, labels, eps, targeted=False):
    images = images.clone().requires_grad_(True)
    loss = F.cross_entropy(model(images), labels)  # the mean: same signs as the library's sum
    (grad,) = torch.autograd.grad(loss, images)
    step = -eps if targeted else eps
    return (images + step * grad.sign()).clamp(0, 1).detach()


def my_pgd(model, images, labels, eps, alpha, steps):
    x = images.clone()
    for _ in range(steps):
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x), labels), x)
        x = x.detach() + alpha * grad.sign()
        x = torch.min(torch.max(x, images - eps), images + eps).clamp(0, 1)
    return x


def transfer_rate(source, victim, images, labels, attack):
    with torch.no_grad():
        right = victim(images).argmax(1) == labels
    adv = attack(source, images, labels)
    with torch.no_grad():
        return (victim(adv[right]).argmax(1) != labels[right]).float().mean().item()


class CountingModel(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.images_seen = model, 0

    def forward(self, x):
        self.images_seen += len(x)
        return self.model(x)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("check, answer", [
    (exercises.check_per_class_accuracy, per_class_accuracy),
    (exercises.check_per_class_accuracy, metrics.per_class_accuracy),
    (exercises.check_confusion_matrix, confusion_matrix),
    (exercises.check_confusion_matrix, metrics.confusion_matrix),
    (exercises.check_input_gradient, input_gradient),
    (exercises.check_input_gradient, attacks.input_gradient),
    (exercises.check_label_only, LabelOnly),
    (exercises.check_fgsm, my_fgsm),
    (exercises.check_fgsm, attacks.fgsm),
    (exercises.check_pgd, my_pgd),
    (exercises.check_pgd, lambda model, x, y, eps, alpha, steps: attacks.pgd(
        model, x, y, eps, alpha=alpha, steps=steps, random_start=False)),
    (exercises.check_transfer_rate, transfer_rate),
    (exercises.check_counting_model, CountingModel),
    (exercises.check_counting_model, attacks.CountingModel),
], ids=lambda v: getattr(v, "__name__", "")[:30])
def test_a_correct_answer_passes_and_is_recorded(check, answer, seed, capsys):
    check(answer, seed=seed)
    assert capsys.readouterr().out.startswith("✓ ")
    assert exercises.has_passed(answer)


@pytest.mark.parametrize("check, answer", [
    (exercises.check_per_class_accuracy, stub),
    (exercises.check_confusion_matrix, stub),
    (exercises.check_input_gradient, stub),
    (exercises.check_label_only, StubClass),
    (exercises.check_fgsm, stub),
    (exercises.check_pgd, stub),
    (exercises.check_transfer_rate, stub),
    (exercises.check_counting_model, StubModule),
])
def test_an_unsolved_stub_is_not_written_yet(check, answer, capsys):
    with pytest.raises(ExerciseError, match="not written yet"):
        check(answer)
    assert capsys.readouterr().out == ""  # a failing check prints nothing


def test_checks_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    for check, answer in ((exercises.check_input_gradient, input_gradient),
                          (exercises.check_fgsm, my_fgsm),
                          (exercises.check_counting_model, CountingModel)):
        check(answer)
    assert torch.equal(torch.rand(3), expected)


# --- 00: wrong answers ------------------------------------------------------------------------------

def per_class_precision(model, images, labels):
    pred = train.predict(model, images).argmax(1)
    return torch.stack([(labels[pred == c] == c).float().mean() if (pred == c).any()
                        else torch.tensor(0.0) for c in range(10)])


@pytest.mark.parametrize("answer, message", [
    (per_class_precision, "precision"),
    (lambda m, x, y: torch.full((10,), train.evaluate(m, (x, y))), "overall accuracy"),
    (lambda m, x, y: per_class_accuracy(m, x, y)[:9], r"shape \(9,\)"),
    (lambda m, x, y: metrics.confusion_matrix(train.predict(m, x).argmax(1), y, 10).diag(),
     "not counts"),
    (lambda m, x, y: per_class_accuracy(m, x, y).tolist(), "should return a tensor"),
    (lambda m, x, y: per_class_accuracy(m, x, (y + 1) % 10), "differs at element"),
])
def test_per_class_accuracy_mistakes_are_named(answer, message):
    with pytest.raises(ExerciseError, match=message):
        exercises.check_per_class_accuracy(answer)


@pytest.mark.parametrize("answer, message", [
    (lambda p, t, k: confusion_matrix(t, p, k), "transposed"),
    (lambda p, t, k: confusion_matrix(p, t, k).float(), "dtype torch.float32"),
    (lambda p, t, k: confusion_matrix(p, t, int(max(p.max(), t.max())) + 1),
     "use `classes`"),
    (lambda p, t, k: confusion_matrix(p, t, k) + torch.eye(k, dtype=torch.long),
     r"differs at element \(0, 0\)"),
])
def test_confusion_matrix_mistakes_are_named(answer, message):
    with pytest.raises(ExerciseError, match=message):
        exercises.check_confusion_matrix(answer)


# --- 01: wrong answers ------------------------------------------------------------------------------

def gradient_with_backward(model, images, labels):
    with eval_mode(model):
        x = images.clone().requires_grad_(True)
        F.cross_entropy(model(x), labels, reduction="sum").backward()
        return x.grad


def gradient_of_mean(model, images, labels):
    with eval_mode(model):
        x = images.clone().requires_grad_(True)
        return torch.autograd.grad(F.cross_entropy(model(x), labels), x)[0]


def gradient_in_train_mode(model, images, labels):
    x = images.clone().requires_grad_(True)
    return torch.autograd.grad(F.cross_entropy(model(x), labels, reduction="sum"), x)[0]


def gradient_eval_not_restored(model, images, labels):
    model.eval()
    return gradient_in_train_mode(model, images, labels)


def gradient_on_callers_images(model, images, labels):
    with eval_mode(model):
        images.requires_grad_(True)
        return torch.autograd.grad(F.cross_entropy(model(images), labels, reduction="sum"),
                                   images)[0]


def gradient_still_attached(model, images, labels):
    with eval_mode(model):
        x = images.clone().requires_grad_(True)
        loss = F.cross_entropy(model(x), labels, reduction="sum")
        return torch.autograd.grad(loss, x, create_graph=True)[0]


@pytest.mark.parametrize("answer, message", [
    (gradient_with_backward, r"parameter `1\.weight\.grad`"),
    (gradient_of_mean, "divided by the batch size 12"),
    (lambda m, x, y: -input_gradient(m, x, y), "wrong sign"),
    (gradient_in_train_mode, "dropout was on"),
    (gradient_eval_not_restored, "left '' in evaluation mode|left 'the model'"),
    (gradient_on_callers_images, "requires_grad of the caller's images"),
    (gradient_still_attached, "autograd graph"),
    (lambda m, x, y: input_gradient(m, x, y)[:, 0], r"shape \(12, 6, 6\)"),
])
def test_input_gradient_mistakes_are_named(answer, message):
    with pytest.raises(ExerciseError, match=message):
        exercises.check_input_gradient(answer)


class ProbabilityDoor(LabelOnly):
    def __call__(self, images):
        self.queries += len(images)
        with torch.no_grad():
            return F.softmax(self.model(images), dim=1)


class CallCounter(LabelOnly):
    def __call__(self, images):
        self.queries += 1
        return self.model(images).argmax(1)


class SharedCounter(LabelOnly):
    total = 0

    def __call__(self, images):
        SharedCounter.total += len(images)
        self.queries = SharedCounter.total
        return self.model(images).argmax(1)


class LeastLikely(LabelOnly):
    def __call__(self, images):
        self.queries += len(images)
        return self.model(images).argmin(1)


@pytest.mark.parametrize("answer, message", [
    (ProbabilityDoor, r"returns a torch.float32 tensor of shape \(5, 10\)"),
    (CallCounter, "count every image, not every call"),
    (SharedCounter, "two doors share one count"),
    (LeastLikely, "differs at element"),
])
def test_label_only_mistakes_are_named(answer, message):
    SharedCounter.total = 0
    with pytest.raises(ExerciseError, match=message):
        exercises.check_label_only(answer)


# --- 02: wrong answers ------------------------------------------------------------------------------

def fgsm_no_clamp(model, images, labels, eps, targeted=False):
    x = images.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), labels), x)
    return (images + (-eps if targeted else eps) * grad.sign()).detach()


def fgsm_targeted_up(model, images, labels, eps, targeted=False):
    return my_fgsm(model, images, labels, eps)


def fgsm_with_backward(model, images, labels, eps, targeted=False):
    x = images.clone().requires_grad_(True)
    F.cross_entropy(model(x), labels).backward()
    return (images + (-eps if targeted else eps) * x.grad.sign()).clamp(0, 1)


def fgsm_attached(model, images, labels, eps, targeted=False):
    x = images.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), labels), x)
    return (x + (-eps if targeted else eps) * grad.sign()).clamp(0, 1)


@pytest.mark.parametrize("answer, message", [
    (fgsm_no_clamp, r"outside \[0, 1\]"),
    (fgsm_targeted_up, "steps up the loss of the target class"),
    (lambda m, x, y, eps, targeted=False: my_fgsm(m, x, y, eps, targeted=not targeted),
     "steps down the loss"),
    (lambda m, x, y, eps, targeted=False: my_fgsm(m, x, y, 2 * eps, targeted), "more than eps"),
    (fgsm_with_backward, r"parameter `1\.weight\.grad`"),
    (fgsm_attached, "autograd graph"),
    (lambda m, x, y, eps: my_fgsm(m, x, y, eps), "unexpected keyword argument 'targeted'"),
])
def test_fgsm_mistakes_are_named(answer, message):
    with pytest.raises(ExerciseError, match=message):
        exercises.check_fgsm(answer)


def test_fgsm_that_ignores_targeted_is_named():
    seen = {}

    def ignores(model, images, labels, eps, targeted=False):
        if not targeted:
            seen["labels"] = labels
            return my_fgsm(model, images, labels, eps)
        return my_fgsm(model, images, seen["labels"], eps)  # the untargeted image again

    with pytest.raises(ExerciseError, match="ignores targeted=True"):
        exercises.check_fgsm(ignores)


def pgd_without_projection(model, images, labels, eps, alpha, steps):
    x = images.clone()
    for _ in range(steps):
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x), labels), x)
        x = (x.detach() + alpha * grad.sign()).clamp(0, 1)
    return x


def pgd_projected_around_the_last_step(model, images, labels, eps, alpha, steps):
    x = images.clone()
    for _ in range(steps):
        prev = x.detach()
        x = prev.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x), labels), x)
        x = (prev + (alpha * grad.sign()).clamp(-eps, eps)).clamp(0, 1)
    return x


def pgd_clean_gradient(model, images, labels, eps, alpha, steps):
    direction = attacks.input_gradient(model, images, labels).sign()
    x = images.clone()
    for _ in range(steps):
        x = (images + (x + alpha * direction - images).clamp(-eps, eps)).clamp(0, 1)
    return x


@pytest.mark.parametrize("answer, message", [
    (pgd_without_projection, r"project back into the eps-box around the \*clean\* images"),
    (pgd_projected_around_the_last_step, "project back into the eps-box"),
    (pgd_clean_gradient, "reuses the clean images' gradient"),
    (lambda m, x, y, eps, alpha, steps: my_pgd(m, x, y, eps, alpha, steps - 1) if steps > 1
     else my_pgd(m, x, y, eps, alpha, steps), "takes 5 steps instead of 6"),
    (lambda m, x, y, eps, alpha, steps: attacks.pgd(m, x, y, eps, alpha=alpha, steps=steps,
                                                   generator=torch.Generator().manual_seed(0)),
     "differs at element"),
    (lambda m, x, y, eps, alpha, steps: my_pgd(m, x, y, eps, -alpha, steps), "differs"),
])
def test_pgd_mistakes_are_named(answer, message):
    with pytest.raises(ExerciseError, match=message):
        exercises.check_pgd(answer)


# --- 03: wrong answers ------------------------------------------------------------------------------

def transfer_over_all_digits(source, victim, images, labels, attack):
    adv = attack(source, images, labels)
    return (train.predict(victim, adv).argmax(1) != labels).float().mean().item()


def transfer_crafted_on_victim(source, victim, images, labels, attack):
    return transfer_rate(victim, victim, images, labels, attack)


def transfer_still_right(source, victim, images, labels, attack):
    return 1 - transfer_rate(source, victim, images, labels, attack)


def transfer_asks_the_source(source, victim, images, labels, attack):
    return transfer_rate(source, source, images, labels, attack)


def transfer_without_attack(source, victim, images, labels, attack):
    return 0.5


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("answer, message", [
    (transfer_over_all_digits, "count only the digits the victim classifies correctly"),
    (transfer_crafted_on_victim, "crafts the examples on the victim"),
    (transfer_still_right, "still gets right"),
    (transfer_asks_the_source, "ask the victim"),
    (transfer_without_attack, r"never calls attack\(source"),
    (lambda s, v, x, y, attack: str(transfer_rate(s, v, x, y, attack)), "should be a number"),
])
def test_transfer_rate_mistakes_are_named(answer, message, seed):
    with pytest.raises(ExerciseError, match=message):
        exercises.check_transfer_rate(answer, seed=seed)


class CountsCalls(CountingModel):
    def forward(self, x):
        self.images_seen += 1
        return self.model(x)


class ReturnsProbabilities(CountingModel):
    def forward(self, x):
        self.images_seen += len(x)
        return F.softmax(self.model(x), dim=1)


class BlocksGradients(CountingModel):
    def forward(self, x):
        self.images_seen += len(x)
        with torch.no_grad():
            return self.model(x)


class NotAModule:
    def __init__(self, model):
        self.model, self.images_seen = model, 0

    def __call__(self, x):
        self.images_seen += len(x)
        return self.model(x)


class CountsOnlyOnce(CountingModel):
    def forward(self, x):
        if self.images_seen == 0:
            self.images_seen += len(x)
        return self.model(x)


@pytest.mark.parametrize("answer, message", [
    (CountsCalls, r"count images \(len\(x\)\), not calls"),
    (ReturnsProbabilities, r"\(the logits\) differs"),
    (BlocksGradients, "let gradients flow"),
    (NotAModule, "should be a torch.nn.Module"),
    (CountsOnlyOnce, "SimBA reports"),
])
def test_counting_model_mistakes_are_named(answer, message):
    with pytest.raises(ExerciseError, match=message):
        exercises.check_counting_model(answer)


def test_choose_falls_back_to_the_library_until_the_check_passes(capsys):
    def fresh(model, images, labels):
        return per_class_accuracy(model, images, labels)

    assert exercises.choose(fresh, metrics.per_class_accuracy) is metrics.per_class_accuracy
    assert "advlab.metrics.per_class_accuracy" in capsys.readouterr().out
    exercises.check_per_class_accuracy(fresh)
    assert exercises.choose(fresh, metrics.per_class_accuracy) is fresh


# --- the library functions the checks compare with ----------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_confusion_matrix_agrees_with_sklearn(seed):
    g = torch.Generator().manual_seed(seed)
    classes = 2 + seed * 2
    labels = torch.randint(0, classes, (200,), generator=g)
    predictions = torch.where(torch.rand(200, generator=g) < 0.6, labels,
                              torch.randint(0, classes, (200,), generator=g))
    got = metrics.confusion_matrix(predictions, labels, classes)
    expected = sk_confusion_matrix(labels.numpy(), predictions.numpy(), labels=range(classes))
    assert got.dtype == torch.int64 and got.shape == (classes, classes)
    np.testing.assert_array_equal(got.numpy(), expected)


def test_confusion_matrix_rows_are_labels_and_inputs_may_be_arrays():
    got = metrics.confusion_matrix(np.array([1, 1, 2]), [0, 1, 1], 3)
    assert got.tolist() == [[0, 1, 0], [0, 1, 1], [0, 0, 0]]
    assert metrics.confusion_matrix(torch.zeros(0, dtype=torch.long),
                                    torch.zeros(0, dtype=torch.long), 2).tolist() == [[0, 0],
                                                                                       [0, 0]]


@pytest.mark.parametrize("args, error, message", [
    ((torch.tensor([0, 1]), torch.tensor([0]), 2), ValueError, "same length"),
    ((torch.tensor([0, 2]), torch.tensor([0, 1]), 2), ValueError, r"predictions must lie in \[0, 2\)"),
    ((torch.tensor([0, 1]), torch.tensor([-1, 1]), 2), ValueError, "labels must lie"),
    ((torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), 2), TypeError, "predictions must hold integer"),
    ((torch.tensor([[0, 1]]), torch.tensor([0, 1]), 2), ValueError, "predictions must be 1-D"),
    ((torch.tensor([0, 1]), torch.tensor([0, 1]), 0), ValueError, "classes"),
    ((torch.tensor([0, 1]), torch.tensor([0, 1]), 2.0), TypeError, "classes must be an int"),
    ((torch.tensor([0, 1]), "01", 2), TypeError, "labels must be a tensor"),
])
def test_confusion_matrix_rejects_bad_arguments(args, error, message):
    with pytest.raises(error, match=message):
        metrics.confusion_matrix(*args)


def _tiny(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(8, 3))


def test_per_class_accuracy_is_the_confusion_diagonal_and_averages_to_evaluate():
    model = _tiny(dropout=0.5).train()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(90, 1, 4, 4, generator=g)
    y = torch.randint(0, 3, (90,), generator=g)
    got = metrics.per_class_accuracy(model, x, y)
    assert model.training and all(m.training for m in model.modules())  # mode restored
    model.eval()
    pred = model(x).argmax(1)
    expected = torch.stack([(pred[y == c] == c).float().mean() for c in range(3)])
    torch.testing.assert_close(got, expected)
    counts = torch.bincount(y, minlength=3).float()
    assert abs(float((got * counts).sum() / counts.sum()) - train.evaluate(model, (x, y))) < 1e-6
    # a class without images has no accuracy
    only = y != 2
    assert torch.isnan(metrics.per_class_accuracy(model, x[only], y[only])[2])


def test_per_class_accuracy_rejects_bad_arguments():
    model = _tiny()
    with pytest.raises(ValueError, match="images must be 4-D"):
        metrics.per_class_accuracy(model, torch.rand(4, 16), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="same length"):
        metrics.per_class_accuracy(model, torch.rand(4, 1, 4, 4), torch.zeros(3, dtype=torch.long))


def test_input_gradient_is_the_summed_loss_gradient_without_side_effects():
    model = _tiny(dropout=0.5).train()
    model[1].train(False)  # mixed flags: each one comes back as it was
    flags = [m.training for m in model.modules()]
    g = torch.Generator().manual_seed(1)
    x = torch.rand(5, 1, 4, 4, generator=g)
    y = torch.randint(0, 3, (5,), generator=g)
    grad = attacks.input_gradient(model, x, y)
    assert [m.training for m in model.modules()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert not x.requires_grad and not grad.requires_grad and grad.shape == x.shape
    model.eval()
    xr = x.clone().requires_grad_(True)
    F.cross_entropy(model(xr), y, reduction="sum").backward()
    torch.testing.assert_close(grad, xr.grad)
    # each image's gradient is its own: the same alone as in the batch
    torch.testing.assert_close(attacks.input_gradient(model, x[:1], y[:1]), grad[:1])
    # FGSM is one signed step along it
    torch.testing.assert_close(attacks.fgsm(model, x, y, 0.1),
                               (x + 0.1 * grad.sign()).clamp(0, 1))
    margin = attacks.input_gradient(model, x, y, loss="margin")
    xr = x.clone().requires_grad_(True)
    attacks.attack_loss(model(xr), y, "margin").backward()
    torch.testing.assert_close(margin, xr.grad)


@pytest.mark.parametrize("args, kwargs, error, message", [
    ((torch.rand(2, 16), torch.zeros(2, dtype=torch.long)), {}, ValueError, "4-D"),
    ((torch.rand(2, 1, 4, 4), torch.zeros(2)), {}, TypeError, "labels must have dtype"),
    ((torch.rand(2, 1, 4, 4), torch.zeros(2, dtype=torch.long)), {"loss": "l2"}, ValueError,
     "loss must be one of"),
])
def test_input_gradient_rejects_bad_arguments(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        attacks.input_gradient(_tiny(), *args, **kwargs)


def test_counting_model_counts_images_and_is_transparent():
    model = _tiny(dropout=0.5)
    counted = attacks.CountingModel(model)
    assert counted.images_seen == 0 and counted.model is model
    x = torch.rand(4, 1, 4, 4)
    y = torch.tensor([0, 1, 2, 0])
    with eval_mode(counted):
        assert not model[3].training  # the wrapped model's layers switch with the wrapper
        torch.testing.assert_close(counted(x), model(x))
    assert counted.images_seen == 4 and model[3].training
    torch.testing.assert_close(attacks.fgsm(counted, x, y, 0.1), attacks.fgsm(model, x, y, 0.1))
    assert counted.images_seen == 8
    result = attacks.simba(counted, x, y, eps=0.5, max_queries=10, basis="dct",
                           generator=torch.Generator().manual_seed(0))
    assert counted.images_seen == 8 + int(result.queries.sum())
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        attacks.CountingModel(lambda x: x)

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _support import blobs
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from advlab import defenses, metrics, models, train


def _fgsm(model, images, labels, eps):
    """A tiny local FGSM, so these tests do not depend on advlab.attacks (eval mode, as attacks
    promise to run; the caller's mode is restored)."""
    was_training = model.training
    model.eval()
    x = images.detach().requires_grad_(True)
    grad = torch.autograd.grad(F.cross_entropy(model(x), labels), x)[0]
    model.train(was_training)
    return (images + eps * grad.sign()).clamp(0, 1)


def _tiny(dropout=0.0):
    torch.manual_seed(0)
    return models.MLP(in_features=16, hidden=(16,), classes=3, dropout=dropout)


# --- distillation -----------------------------------------------------------------------------

def test_softened_targets_sum_to_one_and_flatten_as_t_grows():
    logits = torch.tensor([[4.0, 1.0, -2.0], [0.0, 10.0, 3.0]])
    gaps = []
    for t in (1, 10, 100, 1e4):
        p = defenses.softened(logits, t)
        assert torch.allclose(p.sum(-1), torch.ones(2))
        gaps.append(float((p - 1 / 3).abs().max()))
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-3
    assert torch.allclose(defenses.softened(logits, 1), F.softmax(logits, -1))


def test_temperature_wrapper_divides_logits_and_is_identity_at_one():
    model = _tiny()
    x = torch.rand(5, 1, 4, 4)
    assert torch.equal(defenses.Temperature(model, 1)(x), model(x))
    torch.testing.assert_close(defenses.Temperature(model, 20)(x) * 20, model(x))  # float32 tolerances


def test_distill_returns_the_bare_student_trained_on_soft_labels():
    x, y = blobs()
    teacher, student = _tiny(), _tiny()
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.1)
    out = defenses.distill(teacher, (x, y), temperature=20, epochs=15, student=student, lr=3e-2,
                           batch_size=32, progress=False)
    # deployed at T = 1: the returned model is the student itself, its logits unchanged
    assert out is student and not out.training
    assert not isinstance(out, defenses.Temperature)
    # trained at T = 20 on the teacher's softened labels, its raw logits grow about T-fold,
    # so its T = 1 softmax is far more confident than its softmax at T = 20
    with torch.no_grad():
        logits = out(x)
        soft_teacher = defenses.softened(teacher(x), 20)
    assert train.evaluate(out, (x, y)) > 0.95
    assert (logits.max(1).values - logits.min(1).values).mean() > 20
    confidence_t1 = F.softmax(logits, -1).max(1).values.mean()
    confidence_t20 = defenses.softened(logits, 20).max(1).values.mean()
    assert confidence_t1 > 0.99 and confidence_t1 > confidence_t20 + 0.1
    # and at T = 20 it reproduces the teacher's soft labels rather than the hard ones
    student_t20 = defenses.softened(logits, 20)
    to_soft = (student_t20 - soft_teacher).abs().mean()
    to_hard = (student_t20 - F.one_hot(y, 3)).abs().mean()
    assert to_soft < 0.1 and to_soft < to_hard, (to_soft, to_hard)


def test_distill_default_student_is_a_fresh_copy_of_the_teacher():
    x, y = blobs(64)
    teacher = _tiny()
    before = [p.clone() for p in teacher.parameters()]
    student = defenses.distill(teacher, (x, y), temperature=5, epochs=1, teacher_epochs=2,
                               progress=False)
    assert type(student) is type(teacher) and student is not teacher
    assert any(not torch.equal(a, b) for a, b in zip(before, teacher.parameters(), strict=True))


def test_input_gradient_vanishes_when_softmax_saturates():
    model = _tiny()
    x, y = blobs(32)
    normal = defenses.input_gradient_norm(model, x, y)
    assert normal.shape == (32,) and (normal > 0).all()
    with torch.no_grad():
        model.head.weight.mul_(1e4)  # what a T = 10^4 student would look like
    pred = model(x).argmax(1)
    masked = defenses.input_gradient_norm(model, x, pred)
    assert (masked == 0).float().mean() > 0.9
    assert all(p.grad is None for p in model.parameters())


# --- adversarial training ---------------------------------------------------------------------

def test_adversarial_training_steps_only_see_images_within_eps():
    x, y = blobs(96)
    eps = 0.1
    model = _tiny()
    seen = []

    def spy(module, inputs):  # every batch a training step takes goes through here
        if module.training:
            seen.append(inputs[0].detach().clone())

    def reckless(net, images, labels, eps_):  # an attack that overshoots the budget
        return (_fgsm(net, images, labels, eps_) + 0.5 * torch.rand_like(images)).clamp(0, 1)

    model.register_forward_pre_hook(spy)
    defenses.adversarial_training(model, (x, y), attack=reckless, eps=eps, epochs=2,
                                  batch_size=32, progress=False)
    assert sum(len(b) for b in seen) == 2 * len(x)
    flat = x.flatten(1)
    moved = 0.0
    for batch in seen:  # match each training image to its source by L-inf distance
        dist = (batch.flatten(1)[:, None] - flat[None]).abs().amax(-1)
        nearest = dist.min(1).values
        assert (nearest <= eps + 1e-6).all(), f"trained on an image {nearest.max():.3f} away"
        assert batch.min() >= 0 and batch.max() <= 1
        moved = max(moved, float(nearest.max()))
    assert moved > eps / 2, "the attack's examples should be used, not the clean batch"


def test_adversarial_training_with_fgsm_makes_fgsm_weaker():
    x, y = blobs(512, seed=1)
    eps = 0.25
    plain, robust = _tiny(), _tiny()
    train.fit(plain, (x, y), 20, lr=1e-2, batch_size=32, progress=False)
    defenses.adversarial_training(robust, (x, y), attack=_fgsm, eps=eps, epochs=20, lr=1e-2,
                                  batch_size=32, progress=False)
    acc = {name: train.evaluate(m, (_fgsm(m, x, y, eps), y))
           for name, m in (("plain", plain), ("robust", robust))}
    assert acc["robust"] > acc["plain"] + 0.2, acc


# --- augmentation -----------------------------------------------------------------------------

def test_random_shift_moves_content_and_keeps_shape_and_range():
    x = torch.rand(64, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    out = defenses.random_shift(x, 2, generator=g)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, x)
    # each image is an exact integer translation of its own source, zero-filled at the border
    pad = F.pad(x, (2, 2, 2, 2))
    for i in range(8):
        hits = [(dy, dx) for dy in range(5) for dx in range(5)
                if torch.equal(pad[i, :, dy:dy + 8, dx:dx + 8], out[i])]
        assert hits, f"image {i} is not a shift of its input"
    # same generator seed, same shifts
    again = defenses.random_shift(x, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert torch.equal(defenses.random_shift(x, 0), x)


def test_gaussian_noise_keeps_shape_range_and_scale():
    x = torch.full((16, 1, 28, 28), 0.5)
    out = defenses.gaussian_noise(x, 0.1, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, x)
    assert abs(float((out - x).std()) - 0.1) < 0.01
    assert torch.equal(defenses.gaussian_noise(x, 0.0), x)


def test_augmentation_plugs_into_fit():
    x, y = blobs(64)
    seen = []
    transform = defenses.augmentation(defenses.gaussian_noise, std=0.2,
                                      generator=torch.Generator().manual_seed(0))

    def spy(xb, yb, model):
        out = transform(xb, yb, model)
        seen.append((xb, out[0]))
        return out

    train.fit(_tiny(), (x, y), 1, batch_size=32, batch_transform=spy, progress=False)
    assert len(seen) == 2 and all(not torch.equal(a, b) for a, b in seen)


# --- uncertainty ------------------------------------------------------------------------------

def test_entropy_and_mutual_information_closed_forms():
    uniform = torch.full((1, 4), 0.25)
    onehot = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    assert torch.allclose(defenses.entropy(uniform), torch.tensor([math.log(4)]))
    assert torch.equal(defenses.entropy(onehot), torch.tensor([0.0]))
    # identical members: no disagreement, MI = 0, entropy = the member's entropy
    p = F.softmax(torch.randn(5, 4), -1)
    same = defenses.uncertainty(p.expand(7, 5, 4))
    assert torch.allclose(same.probs, p)
    assert torch.allclose(same.mutual_information, torch.zeros(5), atol=1e-6)
    assert torch.allclose(same.entropy, defenses.entropy(p))
    # two confident members that disagree: mean is uniform over 2 classes, MI = log 2
    split = defenses.uncertainty(torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]]))
    assert torch.allclose(split.entropy, torch.tensor([math.log(2)]))
    assert torch.allclose(split.mutual_information, torch.tensor([math.log(2)]))


def test_mc_dropout_varies_restores_flags_and_is_repeatable():
    model = _tiny(dropout=0.5)
    model.eval()
    x = torch.rand(20, 1, 4, 4)
    a = defenses.mc_dropout_predict(model, x, samples=16, seed=1)
    b = defenses.mc_dropout_predict(model, x, samples=16, seed=1)
    assert torch.equal(a.probs, b.probs)
    assert a.probs.shape == (20, 3) and torch.allclose(a.probs.sum(-1), torch.ones(20))
    assert (a.mutual_information > 0).all() and (a.mutual_information <= a.entropy + 1e-6).all()
    assert not any(m.training for m in model.modules())
    with pytest.raises(ValueError, match="dropout"):
        defenses.mc_dropout_predict(_tiny(), x, samples=4)


def test_mc_dropout_module_is_the_mean_prediction_and_keeps_flags():
    model = _tiny(dropout=0.5).eval()
    x = torch.rand(6, 1, 4, 4)
    wrapper = defenses.MCDropout(model, samples=8).eval()
    torch.manual_seed(3)
    with torch.no_grad():
        probs = F.softmax(wrapper(x), -1)
    reference = defenses.mc_dropout_predict(model, x, samples=8, seed=3).probs
    torch.testing.assert_close(probs, reference, rtol=1e-5, atol=1e-6)
    assert not any(m.training for m in model.modules())
    x.requires_grad_(True)
    wrapper(x)[:, 0].sum().backward()  # differentiable through every mask: an attack can use it
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="dropout"):
        defenses.MCDropout(_tiny(), samples=4)
    with pytest.raises(ValueError, match="samples"):
        defenses.MCDropout(model, samples=0)


class _CNNSubclass(models.CNN):
    """A subclass may compute its forward otherwise: no split is offered for it."""


@pytest.mark.parametrize("make", [lambda: models.CNN(dropout=0.5),
                                  lambda: models.MLP(hidden=(32, 16), dropout=0.3)],
                         ids=["cnn", "mlp"])
def test_split_at_dropout_gives_whole_passes_masks_values_and_gradients(make):
    torch.manual_seed(0)
    model = make().eval()
    x = torch.rand(12, 1, 28, 28)
    before, after = models.split_at_dropout(model)
    assert torch.equal(after(before(x)), model(x))
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout) and m.p > 0]

    def whole_passes(inputs, samples, batch_size=None):  # the reference: every pass from the input
        for m in dropouts:
            m.train()
        try:
            chunks = [inputs] if batch_size is None else inputs.split(batch_size)
            return torch.stack([torch.cat([model(c) for c in chunks]) for _ in range(samples)])
        finally:
            for m in dropouts:
                m.eval()

    torch.manual_seed(5)
    xg = x.clone().requires_grad_(True)
    wrapped = defenses.MCDropout(model, samples=4)(xg)
    torch.manual_seed(5)
    xr = x.clone().requires_grad_(True)
    reference = torch.logsumexp(F.log_softmax(whole_passes(xr, 4), -1), 0) - math.log(4)
    torch.testing.assert_close(wrapped, reference, rtol=1e-6, atol=1e-7)  # the same masks
    (g,) = torch.autograd.grad(wrapped[:, 3].sum(), xg)
    (g_ref,) = torch.autograd.grad(reference[:, 3].sum(), xr)
    torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-7)
    # mc_dropout_predict draws its masks pass by pass, batch by batch, as whole passes do
    u = defenses.mc_dropout_predict(model, x, samples=3, seed=7, batch_size=5)
    torch.manual_seed(7)
    with torch.no_grad():
        probs = F.softmax(whole_passes(x, 3, batch_size=5), -1)
    torch.testing.assert_close(u.probs, probs.mean(0), rtol=1e-6, atol=1e-7)
    assert not any(m.training for m in model.modules())


def test_split_at_dropout_declines_models_it_cannot_split():
    assert models.split_at_dropout(models.CNN()) is None  # no dropout
    assert models.split_at_dropout(models.MLP(dropout=0.0)) is None
    assert models.split_at_dropout(models.Linear()) is None
    assert models.split_at_dropout(_CNNSubclass(dropout=0.5)) is None
    # the cut is at the first dropout layer with p > 0: the hidden layer of the CNN
    before, _ = models.split_at_dropout(models.CNN(dropout=0.5))
    assert before(torch.rand(2, 1, 28, 28)).shape == (2, 100)


def test_ensemble_of_copies_has_no_mutual_information_and_module_matches():
    model = _tiny()
    x = torch.rand(10, 1, 4, 4)
    out = defenses.ensemble_predict([model, model, model], x)
    assert torch.allclose(out.mutual_information, torch.zeros(10), atol=1e-6)
    members = [_tiny(), models.MLP(in_features=16, hidden=(8,), classes=3)]
    ens = defenses.Ensemble(members)
    with torch.no_grad():
        assert torch.allclose(F.softmax(ens(x), -1), defenses.ensemble_predict(ens, x).probs,
                              atol=1e-6)


def test_detection_auroc_closed_forms():
    assert metrics.auroc([0.3] * 5, [0.3] * 5) == 0.5
    assert metrics.auroc([0.0, 0.1, 0.2], [0.5, 0.6, 0.7]) == 1.0
    assert metrics.auroc([0.5, 0.6, 0.7], [0.0, 0.1, 0.2]) == 0.0
    assert metrics.auroc(torch.tensor([0.0, 1.0]), torch.tensor([0.5, 2.0])) == 0.75


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=40))
def test_detection_auroc_matches_sklearn_with_ties(pairs):
    clean = np.array([a for a, _ in pairs], dtype=float)
    adv = np.array([b for _, b in pairs], dtype=float)
    ours = metrics.auroc(clean, adv)
    truth = np.r_[np.zeros(len(clean)), np.ones(len(adv))]
    assert ours == pytest.approx(roc_auc_score(truth, np.r_[clean, adv]), abs=1e-12)


# --- bad input --------------------------------------------------------------------------------

@pytest.mark.parametrize("call,error,match", [
    (lambda: defenses.softened(torch.zeros(1, 3), 0), ValueError, "temperature"),
    (lambda: defenses.softened(torch.zeros(1, 3), -2.0), ValueError, "temperature"),
    (lambda: defenses.softened(torch.zeros(1, 3), "hot"), TypeError, "temperature"),
    (lambda: defenses.Temperature(_tiny(), float("inf")), ValueError, "temperature"),
    (lambda: defenses.distill(_tiny(), blobs(8), temperature=0, epochs=1), ValueError,
     "temperature"),
    (lambda: defenses.distill(_tiny(), blobs(8), temperature=2, epochs=0), ValueError,
     "epochs"),
    (lambda: defenses.mc_dropout_predict(_tiny(0.5), torch.rand(2, 1, 4, 4), samples=0),
     ValueError, "samples"),
    (lambda: defenses.mc_dropout_predict(_tiny(0.5), torch.rand(2, 1, 4, 4), samples=2.0),
     TypeError, "samples"),
    (lambda: metrics.auroc([0.1, 0.2], [0.3], paired=True), ValueError, "same length"),
    (lambda: metrics.auroc([], []), ValueError, "negatives"),
    (lambda: metrics.auroc([[0.1]], [[0.2]]), ValueError, "1-D"),
    (lambda: metrics.auroc([0.1], [float("nan")]), ValueError, "positives"),
    (lambda: defenses.adversarial_training(_tiny(), blobs(8), attack=_fgsm, eps=-0.1,
                                           epochs=1), ValueError, "eps"),
    (lambda: defenses.adversarial_training(_tiny(), blobs(8), attack="fgsm", eps=0.1,
                                           epochs=1), TypeError, "attack"),
    (lambda: defenses.random_shift(torch.rand(2, 1, 4, 4), -1), ValueError, "max_shift"),
    (lambda: defenses.random_shift(torch.rand(4, 4), 1), ValueError, "images"),
    (lambda: defenses.gaussian_noise(torch.rand(2, 1, 4, 4), -0.1), ValueError, "std"),
    (lambda: defenses.augmentation(None), TypeError, "augment"),
    (lambda: defenses.uncertainty(torch.rand(3, 4)), ValueError, "member_probs"),
    (lambda: defenses.ensemble_predict([], torch.rand(2, 1, 4, 4)), TypeError, "members"),
])
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()

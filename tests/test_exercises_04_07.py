"""The exercise checks of notebooks 04-07 (and the library functions they compare with): a correct
answer passes, typical mistakes fail with a message that names them, an unsolved stub asks for
code, and no check touches the global random state."""

import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advlab import attacks, defenses, exercises, metrics
from advlab.checks import eval_mode
from advlab.exercises import ExerciseError

# --- correct answers (what the notebooks' solutions do) ----------------------------------------


def paste(images, patch, positions):
    out = images.clone()
    h, w = patch.shape[1:]
    for i, (top, left) in enumerate(positions.tolist()):
        out[i, :, top:top + h, left:left + w] = patch
    return out


def train_patch(model, images, target, *, size, steps, batch_size, lr, generator):
    theta = torch.zeros(images.shape[1], size, size, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=lr)
    with eval_mode(model):
        for _ in range(steps):
            pick = torch.randint(0, len(images), (batch_size,), generator=generator)
            batch = attacks.apply_patch(images[pick], torch.sigmoid(theta), generator=generator)
            loss = F.cross_entropy(model(batch), torch.full((batch_size,), target))
            theta.grad = torch.autograd.grad(loss, theta)[0]
            opt.step()
    return torch.sigmoid(theta).detach()


def train_patch_own_paste(model, images, target, *, size, steps, batch_size, lr, generator):
    # places drawn by hand, pasted by slicing: the same draws, a different backward
    theta = torch.zeros(images.shape[1], size, size, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=lr)
    H, W = images.shape[2:]
    with eval_mode(model):
        for _ in range(steps):
            pick = torch.randint(0, len(images), (batch_size,), generator=generator)
            places = attacks.random_positions(batch_size, (H, W), (size, size), generator)
            batch = paste(images[pick], torch.sigmoid(theta), places)
            loss = F.cross_entropy(model(batch), torch.full((batch_size,), target))
            (theta.grad,) = torch.autograd.grad(loss, [theta])
            opt.step()
    return torch.sigmoid(theta).detach()


def evidence_shares(W, h, k):
    parts = (W[k] * h).clamp(min=0)
    return parts / parts.sum(1, keepdim=True)


def logits_along_fgsm(model, images, labels, eps_values):
    with eval_mode(model):
        x = images.clone().requires_grad_(True)
        loss = F.cross_entropy(model(x), labels)
        direction = torch.autograd.grad(loss, x)[0].sign()
        with torch.no_grad():
            return torch.stack([model(images + eps * direction) for eps in eps_values])


def tempered_cross_entropy(logits, targets, T):
    return F.cross_entropy(logits / T, targets)


def fgsm_over_T(model, images, labels, eps, T):
    with eval_mode(model):
        x = images.clone().requires_grad_(True)
        loss = F.cross_entropy(model(x) / T, labels)
        grad = torch.autograd.grad(loss, x)[0]
    return (images + eps * grad.sign()).clamp(0, 1)


def fast_adversarial_batch(x, y, model, *, eps, alpha, generator):
    start = (x + eps * (2 * torch.rand(x.shape, generator=generator) - 1)).clamp(0, 1)
    with eval_mode(model):
        x_adv = start.clone().requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        grad = torch.autograd.grad(loss, x_adv)[0]
    x_adv = start + alpha * grad.sign()
    return (x + (x_adv - x).clamp(-eps, eps)).clamp(0, 1), y


def mutual_information(member_probs):
    def entropy(p):
        return -torch.special.xlogy(p, p).sum(-1)
    return (entropy(member_probs.mean(0)) - entropy(member_probs).mean(0)).clamp(min=0)


def detection_auroc(negatives, positives):
    diff = positives[None, :] - negatives[:, None]
    return ((diff > 0).double() + 0.5 * (diff == 0).double()).mean().item()


def stub(*args, **kwargs):
    raise NotImplementedError()


CORRECT = {
    "check_apply_patch": [paste],
    "check_train_patch": [train_patch, train_patch_own_paste],
    "check_evidence_shares": [evidence_shares],
    "check_logits_along_fgsm": [logits_along_fgsm],
    "check_tempered_cross_entropy": [tempered_cross_entropy, defenses.tempered_cross_entropy],
    "check_fgsm_over_T": [fgsm_over_T,
                          lambda m, x, y, e, T: attacks.fgsm(defenses.Temperature(m, T), x, y, e)],
    "check_fast_adversarial_batch": [fast_adversarial_batch],
    "check_mutual_information": [mutual_information,
                                 lambda p: defenses.uncertainty(p).mutual_information],
    "check_detection_auroc": [detection_auroc, metrics.auroc],
}


@pytest.mark.parametrize("check, answer", [(c, a) for c, answers in CORRECT.items()
                                           for a in answers])
@pytest.mark.parametrize("seed", [0, 1])
def test_correct_answers_pass_fast_and_leave_the_global_rng_alone(check, answer, seed, capsys):
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # a one-time import, not the check's
    state = torch.random.get_rng_state()
    start = time.perf_counter()
    getattr(exercises, check)(answer, seed=seed)
    assert time.perf_counter() - start < 2.0
    assert torch.equal(torch.random.get_rng_state(), state), f"{check} used the global RNG"
    assert capsys.readouterr().out.startswith("✓ ")
    assert exercises.has_passed(answer)


@pytest.mark.parametrize("check", list(CORRECT))
def test_an_unsolved_stub_is_not_written_yet(check, capsys):
    with pytest.raises(ExerciseError, match="not written yet"):
        getattr(exercises, check)(stub)
    assert capsys.readouterr().out == ""


def test_every_check_is_exported():
    from advlab.exercises import _nb04_07
    assert set(_nb04_07.__all__) == set(CORRECT)
    assert all(name in exercises.__all__ for name in CORRECT)


# --- typical mistakes ---------------------------------------------------------------------------


def paste_in_place(images, patch, positions):
    h, w = patch.shape[1:]
    for i, (top, left) in enumerate(positions.tolist()):
        images[i, :, top:top + h, left:left + w] = patch
    return images


def paste_swapped(images, patch, positions):
    return paste(images, patch, positions.flip(1))


def paste_detached(images, patch, positions):
    return paste(images, patch.detach(), positions)


def paste_off_by_one(images, patch, positions):
    out = images.clone()
    h, w = patch.shape[1:]
    for i, (top, left) in enumerate(positions.tolist()):
        out[i, :, top:top + h - 1, left:left + w] = patch[:, :h - 1]
    return out


@pytest.mark.parametrize("answer, message", [
    (paste_in_place, "in place"),
    (paste_swapped, "raised|differs"),
    (paste_detached, "does not depend on the patch"),
    (paste_off_by_one, "differs at element"),
])
def test_apply_patch_mistakes(answer, message):
    with pytest.raises(ExerciseError, match=message):
        exercises.check_apply_patch(answer)


def patch_train_mode(model, images, target, **kw):
    model.train()
    return train_patch(model, images, target, **kw)  # eval_mode inside restores train mode ...


def patch_no_eval(model, images, target, *, size, steps, batch_size, lr, generator):
    theta = torch.zeros(images.shape[1], size, size, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=lr)
    for _ in range(steps):
        pick = torch.randint(0, len(images), (batch_size,), generator=generator)
        batch = attacks.apply_patch(images[pick], torch.sigmoid(theta), generator=generator)
        loss = F.cross_entropy(model(batch), torch.full((batch_size,), target))
        theta.grad = torch.autograd.grad(loss, theta)[0]
        opt.step()
    return torch.sigmoid(theta).detach()


def patch_backward(model, images, target, *, size, steps, batch_size, lr, generator):
    theta = torch.zeros(images.shape[1], size, size, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=lr)
    with eval_mode(model):
        for _ in range(steps):
            pick = torch.randint(0, len(images), (batch_size,), generator=generator)
            batch = attacks.apply_patch(images[pick], torch.sigmoid(theta), generator=generator)
            opt.zero_grad()
            F.cross_entropy(model(batch), torch.full((batch_size,), target)).backward()
            opt.step()
    return torch.sigmoid(theta).detach()


def patch_new_optimiser(model, images, target, *, size, steps, batch_size, lr, generator):
    theta = torch.zeros(images.shape[1], size, size, requires_grad=True)
    with eval_mode(model):
        for _ in range(steps):
            opt = torch.optim.Adam([theta], lr=lr)  # Adam's moments start over every step
            pick = torch.randint(0, len(images), (batch_size,), generator=generator)
            batch = attacks.apply_patch(images[pick], torch.sigmoid(theta), generator=generator)
            loss = F.cross_entropy(model(batch), torch.full((batch_size,), target))
            theta.grad = torch.autograd.grad(loss, theta)[0]
            opt.step()
    return torch.sigmoid(theta).detach()


def patch_places_first(model, images, target, *, size, steps, batch_size, lr, generator):
    theta = torch.zeros(images.shape[1], size, size, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=lr)
    H, W = images.shape[2:]
    with eval_mode(model):
        for _ in range(steps):
            places = attacks.random_positions(batch_size, (H, W), (size, size), generator)
            pick = torch.randint(0, len(images), (batch_size,), generator=generator)
            batch = attacks.apply_patch(images[pick], torch.sigmoid(theta), positions=places)
            loss = F.cross_entropy(model(batch), torch.full((batch_size,), target))
            theta.grad = torch.autograd.grad(loss, theta)[0]
            opt.step()
    return torch.sigmoid(theta).detach()


def patch_toward_wrong_sign(model, images, target, *, size, steps, batch_size, lr, generator):
    theta = torch.zeros(images.shape[1], size, size, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=lr, maximize=True)
    with eval_mode(model):
        for _ in range(steps):
            pick = torch.randint(0, len(images), (batch_size,), generator=generator)
            batch = attacks.apply_patch(images[pick], torch.sigmoid(theta), generator=generator)
            loss = F.cross_entropy(model(batch), torch.full((batch_size,), target))
            theta.grad = torch.autograd.grad(loss, theta)[0]
            opt.step()
    return torch.sigmoid(theta).detach()


@pytest.mark.parametrize("answer, message", [
    (patch_no_eval, "batch-norm statistics"),
    (patch_backward, r"gradients in the model's parameters"),
    (patch_new_optimiser, "steps=6.*one optimiser for all steps"),
    (patch_places_first, "steps=1.*draw the batch"),
    (patch_toward_wrong_sign, "differs at element"),
])
def test_train_patch_mistakes(answer, message):
    with pytest.raises(ExerciseError, match=message):
        exercises.check_train_patch(answer)


@pytest.mark.parametrize("answer, message", [
    (lambda W, h, k: (W[k] * h).abs() / (W[k] * h).abs().sum(1, keepdim=True), "clamp"),
    (lambda W, h, k: W[k] * h / (W[k] * h).sum(1, keepdim=True), "only positive evidence"),
    (lambda W, h, k: evidence_shares(W.T, h, k), "raised|shape"),
    (lambda W, h, k: (W[k] * h).clamp(min=0) / (W[k] * h).clamp(min=0).sum(), "differs"),
    (lambda W, h, k: h.clamp_(min=0.5), "in place"),
])
def test_evidence_shares_mistakes(answer, message):
    with pytest.raises(ExerciseError, match=message):
        exercises.check_evidence_shares(answer)


def along_clipped(model, images, labels, eps_values):
    with eval_mode(model):
        x = images.clone().requires_grad_(True)
        d = torch.autograd.grad(F.cross_entropy(model(x), labels), x)[0].sign()
        with torch.no_grad():
            return torch.stack([model((images + e * d).clamp(0, 1)) for e in eps_values])


def along_gradient(model, images, labels, eps_values):
    with eval_mode(model):
        x = images.clone().requires_grad_(True)
        d = torch.autograd.grad(F.cross_entropy(model(x), labels, reduction="sum"), x)[0]
        with torch.no_grad():
            return torch.stack([model(images + e * d) for e in eps_values])


def along_train_mode(model, images, labels, eps_values):
    x = images.clone().requires_grad_(True)
    d = torch.autograd.grad(F.cross_entropy(model(x), labels), x)[0].sign()
    with torch.no_grad():
        return torch.stack([model(images + e * d) for e in eps_values])


def along_with_graph(model, images, labels, eps_values):
    with eval_mode(model):
        x = images.clone().requires_grad_(True)
        d = torch.autograd.grad(F.cross_entropy(model(x), labels), x)[0].sign()
        return torch.stack([model(images + e * d) for e in eps_values])


def along_transposed(model, images, labels, eps_values):
    return logits_along_fgsm(model, images, labels, eps_values).transpose(0, 1)


@pytest.mark.parametrize("answer, message", [
    (along_clipped, "do not clip"),
    (along_gradient, "sign of the gradient"),
    (along_train_mode, "batch-norm statistics"),
    (along_with_graph, "graph"),
    (along_transposed, r"shape \(6, 5, 3\), expected \(5, 6, 3\)"),
])
def test_logits_along_fgsm_mistakes(answer, message):
    with pytest.raises(ExerciseError, match=message):
        exercises.check_logits_along_fgsm(answer)


@pytest.mark.parametrize("answer, message", [
    (lambda z, t, T: F.cross_entropy(z * T, t), "divide the logits by T"),
    (lambda z, t, T: F.cross_entropy(z / T, t, reduction="sum"), "mean"),
    (lambda z, t, T: F.nll_loss(torch.log(F.softmax(z / T, 1)), t) if t.dtype == torch.long
     else -(t * torch.log(F.softmax(z / T, 1))).sum(1).mean(), "log_softmax"),
    (lambda z, t, T: F.nll_loss(F.log_softmax(z / T, 1), t), "raised"),
    (lambda z, t, T: F.cross_entropy(z / T, t).item(), "one number in a tensor"),
    (lambda z, t, T: F.cross_entropy(z.detach() / T, t), "not differentiable"),
    (lambda z, t, T: F.cross_entropy(z, t), "differs|is "),
])
def test_tempered_cross_entropy_mistakes(answer, message):
    with pytest.raises(ExerciseError, match=message):
        exercises.check_tempered_cross_entropy(answer)


def fgsm_plain(model, images, labels, eps, T):
    return attacks.fgsm(model, images, labels, eps)


def fgsm_unclipped(model, images, labels, eps, T):
    with eval_mode(model):
        x = images.clone().requires_grad_(True)
        grad = torch.autograd.grad(F.cross_entropy(model(x) / T, labels), x)[0]
    return images + eps * grad.sign()


def fgsm_backward(model, images, labels, eps, T):
    with eval_mode(model):
        x = images.clone().requires_grad_(True)
        F.cross_entropy(model(x) / T, labels).backward()
    return (images + eps * x.grad.sign()).clamp(0, 1)


def fgsm_descends(model, images, labels, eps, T):
    return fgsm_over_T(model, images, labels, -eps, T)


@pytest.mark.parametrize("answer, message", [
    (fgsm_plain, "did not move"),
    (fgsm_unclipped, r"clip the result to \[0, 1\]"),
    (fgsm_backward, "gradients in the model's parameters"),
    (fgsm_descends, "climbs the loss"),
])
def test_fgsm_over_T_mistakes(answer, message):
    with pytest.raises(ExerciseError, match=message):
        exercises.check_fgsm_over_T(answer)


def fast_no_eval(x, y, model, *, eps, alpha, generator):
    start = (x + eps * (2 * torch.rand(x.shape, generator=generator) - 1)).clamp(0, 1)
    x_adv = start.clone().requires_grad_(True)
    grad = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)[0]
    return (x + (start + alpha * grad.sign() - x).clamp(-eps, eps)).clamp(0, 1), y


def fast_no_projection(x, y, model, *, eps, alpha, generator):
    start = (x + eps * (2 * torch.rand(x.shape, generator=generator) - 1)).clamp(0, 1)
    with eval_mode(model):
        x_adv = start.clone().requires_grad_(True)
        grad = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)[0]
    return (start + alpha * grad.sign()).clamp(0, 1), y


def fast_no_random_start(x, y, model, *, eps, alpha, generator):
    return fast_adversarial_batch(x, y, model, eps=0.0, alpha=alpha, generator=generator)[0].clamp(
        0, 1), y


def fast_global_rng(x, y, model, *, eps, alpha, generator):
    return fast_adversarial_batch(x, y, model, eps=eps, alpha=alpha, generator=None)


def fast_only_images(x, y, model, *, eps, alpha, generator):
    return fast_adversarial_batch(x, y, model, eps=eps, alpha=alpha, generator=generator)[0]


@pytest.mark.parametrize("answer, message", [
    (fast_no_eval, "batch-norm statistics"),
    (fast_no_projection, "more than eps"),
    (fast_no_random_start, "differs at element.*Start from"),
    (fast_global_rng, "differs at element"),
    (fast_only_images, r"the pair \(x_adv, y\)"),
])
def test_fast_adversarial_batch_mistakes(answer, message):
    with pytest.raises(ExerciseError, match=message):
        exercises.check_fast_adversarial_batch(answer)


def _entropy_naive(p):
    return -(p * p.log()).sum(-1)


@pytest.mark.parametrize("answer, message", [
    (lambda p: _entropy_naive(p.mean(0)) - _entropy_naive(p).mean(0), "xlogy"),
    (lambda p: -torch.special.xlogy(p.mean(0), p.mean(0)).sum(-1)
     + torch.special.xlogy(p, p).sum(-1).mean(0), "clamp it at 0"),
    (lambda p: -torch.special.xlogy(p.mean(0), p.mean(0)).sum(-1), "differs"),
    (lambda p: mutual_information(p.transpose(0, 1)), "dimension 0|shape"),
])
def test_mutual_information_mistakes(answer, message):
    with pytest.raises(ExerciseError, match=message):
        exercises.check_mutual_information(answer)


@pytest.mark.parametrize("answer, message", [
    (lambda n, p: (p[None, :] > n[:, None]).double().mean().item(), "counts one half, not 0"),
    (lambda n, p: (p[None, :] >= n[:, None]).double().mean().item(), "counts one half, not 1"),
    (lambda n, p: detection_auroc(p, n), "positives should score higher"),
    (lambda n, p: True, "should be a number"),
])
def test_detection_auroc_mistakes(answer, message):
    with pytest.raises(ExerciseError, match=message):
        exercises.check_detection_auroc(answer)


def test_a_failed_check_prints_nothing(capsys):
    with pytest.raises(ExerciseError):
        exercises.check_fgsm_over_T(fgsm_plain)
    assert capsys.readouterr().out == ""


# --- the library functions the checks compare with -----------------------------------------------


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(8, 3))


def test_logits_along_fgsm_starts_at_the_clean_logits_and_is_straight_for_a_linear_model():
    torch.manual_seed(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).double()
    x = torch.rand(5, 1, 4, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (5,))
    eps = torch.linspace(-0.5, 0.5, 11, dtype=torch.float64)
    z = attacks.logits_along_fgsm(linear, x, y, eps)
    assert z.shape == (11, 5, 3) and not z.requires_grad
    torch.testing.assert_close(z[5], linear(x).detach())
    # a linear model's logits move by eps * W sign(g): straight lines, second differences zero
    torch.testing.assert_close(z[2:] - 2 * z[1:-1] + z[:-2], torch.zeros(9, 5, 3, dtype=z.dtype))
    # FGSM's own point (eps > 0) raises the loss of the true class
    loss = F.cross_entropy(z.transpose(1, 2), y[None].expand(11, 5), reduction="none").mean(1)
    assert loss[-1] > loss[5] > loss[0]


def test_logits_along_fgsm_runs_in_eval_mode_and_leaves_the_model_alone():
    model = _net().train()
    x, y = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0])
    z = attacks.logits_along_fgsm(model, x, y, [0.0, 0.1])
    assert model.training and all(p.grad is None for p in model.parameters())
    with eval_mode(model):
        torch.testing.assert_close(z[0], model(x).detach())
        grad_dir = torch.autograd.grad(
            F.cross_entropy(model(x.requires_grad_(True)), y, reduction="sum"), x)[0].sign()
        torch.testing.assert_close(z[1], model(x.detach() + 0.1 * grad_dir).detach())


@pytest.mark.parametrize("bad, error", [
    (0.1, TypeError), ("0.1", TypeError), ([], ValueError), ([0.1, float("nan")], ValueError),
    (torch.zeros(2, 2), ValueError), ([0.1, "a"], TypeError),
])
def test_logits_along_fgsm_checks_eps_values(bad, error):
    with pytest.raises(error, match="eps_values"):
        attacks.logits_along_fgsm(_net(), torch.rand(2, 1, 4, 4), torch.tensor([0, 1]), bad)


def test_logits_along_fgsm_checks_images_and_labels():
    with pytest.raises(ValueError, match="images"):
        attacks.logits_along_fgsm(_net(), 2 * torch.ones(2, 1, 4, 4), torch.tensor([0, 1]), [0.1])
    with pytest.raises(TypeError, match="labels"):
        attacks.logits_along_fgsm(_net(), torch.rand(2, 1, 4, 4), torch.tensor([0.0, 1.0]), [0.1])


def test_tempered_cross_entropy_is_cross_entropy_of_softened_logits():
    torch.manual_seed(0)
    z, y = 4 * torch.randn(6, 5), torch.randint(0, 5, (6,))
    q = defenses.softened(torch.randn(6, 5), 3.0)
    for T in (1.0, 3.0, 50.0):
        hard = defenses.tempered_cross_entropy(z, y, T)
        torch.testing.assert_close(hard, -defenses.softened(z, T).log()[torch.arange(6), y].mean())
        soft = defenses.tempered_cross_entropy(z, q, T)
        torch.testing.assert_close(soft, -(q * defenses.softened(z, T).log()).sum(1).mean())
    torch.testing.assert_close(defenses.tempered_cross_entropy(z, y, 1), F.cross_entropy(z, y))
    # finite where the softmax underflows: a gap of 1000 at T = 1
    far = torch.tensor([[1000.0, 0.0]])
    assert defenses.softened(far, 1)[0, 1] == 0
    assert defenses.tempered_cross_entropy(far, torch.tensor([1]), 1).item() == pytest.approx(1000)


@pytest.mark.parametrize("args, error, name", [
    ((torch.zeros(2, 3), torch.tensor([0, 1]), 0.0), ValueError, "temperature"),
    ((torch.zeros(2, 3), torch.tensor([0, 1]), "2"), TypeError, "temperature"),
    ((torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 1]), 2.0), TypeError, "logits"),
    ((torch.zeros(3), torch.tensor([0, 1]), 2.0), ValueError, "logits"),
    ((torch.zeros(2, 3), [0, 1], 2.0), TypeError, "targets"),
    ((torch.zeros(2, 3), torch.tensor([0, 1, 2]), 2.0), ValueError, "targets"),
    ((torch.zeros(2, 3), torch.zeros(2, 4), 2.0), ValueError, "targets"),
])
def test_tempered_cross_entropy_checks_its_arguments(args, error, name):
    with pytest.raises(error, match=name):
        defenses.tempered_cross_entropy(*args)

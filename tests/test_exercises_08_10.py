"""The exercise checks of notebooks 08-10 (and the library references they compare with): a
correct answer passes, typical mistakes fail with a message that names them, a stub is "not
written yet"."""

from __future__ import annotations

import math
import time

import pytest
import torch
import torch.nn.functional as F

from advlab import exercises
from advlab.exercises import ExerciseError
from advlab.gan import get_loss
from advlab.gan.divergence import optimal_discriminator
from advlab.gan.layers import MinibatchDiscrimination
from advlab.gan.tricks import FeatureMatching, bilinear_play, feature_matching_loss
from advlab.models import MLPDiscriminator, MLPGenerator

pytestmark = pytest.mark.usefixtures("one_thread")


def stub(*args, **kwargs):
    raise NotImplementedError()


# --- 08 · the training loop --------------------------------------------------------------------

def gan_loop(G, D, sample_real, steps, *, batch_size, lr, seed, variant=None):
    gen = torch.Generator().manual_seed(seed)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    loss = get_loss("non-saturating")
    for _ in range(steps):
        if variant == "new optimisers":
            opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
            opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
        if variant == "z first":
            z = torch.randn(batch_size, G.z_dim, generator=gen)
            real = sample_real(batch_size, gen)
        else:
            real = sample_real(batch_size, gen)
            z = torch.randn(batch_size, G.z_dim, generator=gen)
        fake = G(z)
        d_loss = loss.d_loss(D(real), D(fake.detach()))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        if variant == "new fake":
            fake = G(torch.randn(batch_size, G.z_dim, generator=gen))
        g_loss = loss.g_loss(D(fake))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()


def gan_loop_old_d(G, D, sample_real, steps, *, batch_size, lr, seed):
    """G's step first, against D before D's step."""
    gen = torch.Generator().manual_seed(seed)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    loss = get_loss("non-saturating")
    for _ in range(steps):
        real = sample_real(batch_size, gen)
        fake = G(torch.randn(batch_size, G.z_dim, generator=gen))
        g_loss = loss.g_loss(D(fake))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        d_loss = loss.d_loss(D(real), D(fake.detach()))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_gan_loop_check_passes_a_correct_loop(seed, capsys):
    exercises.check_gan_loop(gan_loop, seed=seed)
    assert capsys.readouterr().out.startswith("✓")


def test_gan_loop_check_is_fast_and_leaves_the_global_rng_alone():
    exercises.check_gan_loop(gan_loop)  # warm up
    state = torch.get_rng_state()
    start = time.perf_counter()
    exercises.check_gan_loop(gan_loop, seed=5)
    assert time.perf_counter() - start < 2
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("variant, message", [
    ("z first", r"after 1 step, D's parameter .*the real batch sample_real\(batch_size, gen\)"),
    ("new fake", r"after 1 step, G's parameter .*the same fake batch"),
    ("new optimisers", r"after 50 steps, .*create the torch.Generator and both optimisers once"),
])
def test_gan_loop_check_names_the_mistake(variant, message):
    def loop(*args, **kwargs):
        return gan_loop(*args, **kwargs, variant=variant)
    with pytest.raises(ExerciseError, match=message):
        exercises.check_gan_loop(loop)


def test_gan_loop_check_catches_g_judged_by_the_old_d_and_untrained_models():
    with pytest.raises(ExerciseError, match=r"G's parameter .*judged by D after D's step"):
        exercises.check_gan_loop(gan_loop_old_d)
    with pytest.raises(ExerciseError, match="left G and D unchanged"):
        exercises.check_gan_loop(lambda G, D, *args, **kwargs: None)
    with pytest.raises(ExerciseError, match="not written yet"):
        exercises.check_gan_loop(stub)


# --- 08 · the optimal discriminator ------------------------------------------------------------

def optimal_d(p_r, p_g, x):
    logit = p_r.log_prob(x) - p_g.log_prob(x)
    dx = x[1] - x[0]
    value = (p_r.log_prob(x).exp() * F.logsigmoid(logit)
             + p_g.log_prob(x).exp() * F.logsigmoid(-logit)).sum() * dx
    return torch.sigmoid(logit), value


def naive_d(p_r, p_g, x):
    pr, pg = p_r.log_prob(x).exp(), p_g.log_prob(x).exp()
    d = pr / (pr + pg)
    return d, float((pr * d.log() + pg * (1 - d).log()).sum() * (x[1] - x[0]))


def half_stable_d(p_r, p_g, x):
    """D* from the log-densities, V with log of D* (nan where a density underflows)."""
    d, _ = optimal_d(p_r, p_g, x)
    pr, pg = p_r.log_prob(x).exp(), p_g.log_prob(x).exp()
    return d, (pr * d.log() + pg * (1 - d).log()).sum() * (x[1] - x[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_optimal_discriminator_check_passes_a_correct_answer(seed, capsys):
    exercises.check_optimal_discriminator(optimal_d, seed=seed)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("answer, message", [
    (lambda p_r, p_g, x: (optimal_d(p_g, p_r, x)[0], optimal_d(p_r, p_g, x)[1]),
     r"D\* \(two normal densities\) differs"),
    (lambda p_r, p_g, x: (optimal_d(p_r, p_g, x)[0], optimal_d(p_r, p_g, x)[1] / (x[1] - x[0])),
     r"V\(D\*\) \(two normal densities\) .*times the grid spacing"),
    (naive_d, r"D\* is nan at x = -40 .*sigmoid\(log p_r - log p_g\)"),
    (half_stable_d, r"V\(D\*\) is nan .*logsigmoid"),
    (lambda p_r, p_g, x: optimal_d(p_r, p_g, x)[0], r"should return 2 values"),
    (stub, "not written yet"),
])
def test_optimal_discriminator_check_names_the_mistake(answer, message):
    with pytest.raises(ExerciseError, match=message):
        exercises.check_optimal_discriminator(answer)


def test_optimal_discriminator_is_the_formula_and_the_jsd_identity():
    normal = torch.distributions.Normal
    x = torch.linspace(-12.0, 12.0, 4801, dtype=torch.float64)
    p_r, p_g = normal(torch.tensor(0.0, dtype=torch.float64), 1.0), normal(1.5, 0.5)
    d, v = optimal_discriminator(p_r, p_g, x)
    pr, pg = p_r.log_prob(x).exp(), p_g.log_prob(x).exp()
    assert torch.allclose(d, pr / (pr + pg), atol=1e-12)
    m = (pr + pg) / 2
    jsd = 0.5 * float(((pr * (pr / m).log()).nansum() + (pg * (pg / m).log()).nansum()) * 0.005)
    assert v == pytest.approx(-math.log(4) + 2 * jsd, abs=1e-8)
    d, v = optimal_discriminator(p_r, p_r, x)
    assert torch.equal(d, torch.full_like(d, 0.5)) and v == pytest.approx(-math.log(4), abs=1e-9)
    far = optimal_discriminator(p_r, normal(torch.tensor(30.0, dtype=torch.float64), 0.5),
                                torch.linspace(-60.0, 60.0, 1201, dtype=torch.float64))
    assert torch.isfinite(far[0]).all() and far[1] == pytest.approx(0.0, abs=1e-9)  # JSD = log 2


def test_optimal_discriminator_refuses_bad_arguments():
    p = torch.distributions.Normal(0.0, 1.0)
    with pytest.raises(TypeError, match="p_g"):
        optimal_discriminator(p, "normal", torch.linspace(0, 1, 5))
    with pytest.raises(TypeError, match="x must be"):
        optimal_discriminator(p, p, torch.arange(5))
    with pytest.raises(ValueError, match="at least 2"):
        optimal_discriminator(p, p, torch.zeros(1))
    with pytest.raises(ValueError, match="evenly spaced"):
        optimal_discriminator(p, p, torch.tensor([0.0, 1.0, 3.0]))
    with pytest.raises(ValueError, match="evenly spaced"):
        optimal_discriminator(p, p, torch.linspace(1, 0, 5))


# --- 08 · the losses on logits -----------------------------------------------------------------

def gan_losses(real_out, fake_out):
    d = F.softplus(-real_out).mean() + F.softplus(fake_out).mean()
    return d, -F.softplus(fake_out).mean(), F.softplus(-fake_out).mean()


def naive_losses(real_out, fake_out):
    dr, df = torch.sigmoid(real_out), torch.sigmoid(fake_out)
    return (-(dr.log().mean() + (1 - df).log().mean()), (1 - df).log().mean(),
            -df.log().mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gan_losses_check_passes_correct_losses(seed, capsys):
    exercises.check_gan_losses(gan_losses, seed=seed)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("answer, message", [
    (naive_losses, r"is inf with logits of ±100: log\(sigmoid\(l\)\) underflows"),
    (lambda r, f: (gan_losses(r, f)[0], -gan_losses(r, f)[1], gan_losses(r, f)[2]),
     r"the saturating G loss \(moderate logits\) differs .*: [0-9.]+ instead of -"),
    (lambda r, f: (F.softplus(-r).sum() + F.softplus(f).sum(), *gan_losses(r, f)[1:]),
     r"the D loss \(moderate logits\) .*a mean over the batch"),
    (lambda r, f: (gan_losses(r, f)[0], gan_losses(r, f)[1], F.softplus(-f)),
     r"non-saturating G loss \(moderate logits\) has shape \(64,\)"),
    (lambda r, f: tuple(torch.tensor(v.item()) for v in gan_losses(r, f)),
     "does not depend on the logits through autograd"),
    (lambda r, f: gan_losses(r, f)[:2], "should return 3 values"),
    (stub, "not written yet"),
])
def test_gan_losses_check_names_the_mistake(answer, message):
    with pytest.raises(ExerciseError, match=message):
        exercises.check_gan_losses(answer)


# --- 09 · mode coverage and the reverse KL ------------------------------------------------------

def mode_coverage(samples, centers, std):
    dist, nearest = torch.cdist(samples, centers).min(1)
    good = dist <= 3 * std
    counts = torch.bincount(nearest[good], minlength=len(centers))
    return int((counts > 0).sum()), good.float().mean().item(), counts


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_mode_coverage_check_passes_a_correct_answer(seed, capsys):
    exercises.check_mode_coverage(mode_coverage, seed=seed)
    assert "✓" in capsys.readouterr().out


def all_counted(samples, centers, std):
    nearest = torch.cdist(samples, centers).min(1).indices
    counts = torch.bincount(nearest, minlength=len(centers))
    _, hq, _ = mode_coverage(samples, centers, std)
    return int((counts > 0).sum()), hq, counts


@pytest.mark.parametrize("answer, message", [
    (all_counted, r"holds all \d+ samples: count only the high-quality ones"),
    (lambda s, c, std: mode_coverage(s, c, std / 3), r"counts, the high-quality samples per mode"),
    (lambda s, c, std: (*mode_coverage(s, c, std)[:2], mode_coverage(s, c, std)[2].float()),
     "should be integers"),
    (lambda s, c, std: (mode_coverage(s, c, std)[0], int(mode_coverage(s, c, std)[2].sum()),
                        mode_coverage(s, c, std)[2]), "fraction of all samples"),
    (lambda s, c, std: (len(c), *mode_coverage(s, c, std)[1:]), r"modes_covered .* is 25"),
    (stub, "not written yet"),
])
def test_mode_coverage_check_names_the_mistake(answer, message):
    with pytest.raises(ExerciseError, match=message):
        exercises.check_mode_coverage(answer)


def reverse_kl(counts):
    q = counts[counts > 0].double() / counts.sum()
    return float((q * (q * len(counts)).log()).sum())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reverse_kl_check_passes_a_correct_answer(seed, capsys):
    exercises.check_reverse_kl(reverse_kl, seed=seed)
    assert "✓" in capsys.readouterr().out


def kl_with_empty_modes(counts):
    q = counts.double() / counts.sum()
    return float((q * (q * len(counts)).log()).sum())


def forward_kl(counts):
    q = counts.double() / counts.sum()
    u = torch.full_like(q, 1 / len(q))
    return float((u * (u / q).log()).sum())


@pytest.mark.parametrize("answer, message", [
    (kl_with_empty_modes, r"is nan for a histogram over 25 modes with 8 empty ones: empty modes"),
    (forward_kl, r"the reverse KL of a histogram over 25 modes without empty modes is"),
    (lambda c: reverse_kl(c) / math.log(2), "differen"),
    (stub, "not written yet"),
])
def test_reverse_kl_check_names_the_mistake(answer, message):
    with pytest.raises(ExerciseError, match=message):
        exercises.check_reverse_kl(answer)


# --- 10 · feature matching ----------------------------------------------------------------------

def fm_loss(D, real, fake):
    return (D.features(real).detach().mean(0) - D.features(fake).mean(0)).pow(2).sum()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_feature_matching_check_passes_a_correct_answer(seed, capsys):
    exercises.check_feature_matching(fm_loss, seed=seed)
    assert "✓" in capsys.readouterr().out


def fm_backward(D, real, fake):
    loss = fm_loss(D, real, fake)
    loss.backward(retain_graph=True)
    return loss


@pytest.mark.parametrize("answer, message", [
    (lambda D, r, f: (D.features(r).mean(0) - D.features(f).mean(0)).pow(2).sum(),
     r"gradient with respect to D's .*detach them"),
    (lambda D, r, f: (D.features(r).detach().mean(0) - D.features(f).mean(0)).pow(2).mean(),
     r"the feature matching loss .*a sum over features, not a mean"),
    (lambda D, r, f: (D.features(r).detach().mean(0) - D.features(f).mean(0)).norm(),
     r"the feature matching loss \(real and fake batches of 64\) differs"),
    (lambda D, r, f: (D.features(r).detach() - D.features(f)).pow(2).sum(1).mean(),
     r"the feature matching loss \(real and fake batches of 64\) differs"),
    (fm_backward, r"return the loss without calling backward"),
    (stub, "not written yet"),
])
def test_feature_matching_check_names_the_mistake(answer, message):
    with pytest.raises(ExerciseError, match=message):
        exercises.check_feature_matching(answer)


def test_feature_matching_loss_is_what_the_trick_gives_g():
    from types import SimpleNamespace

    torch.manual_seed(0)
    D = MLPDiscriminator((2,), (8, 8))
    real, fake = torch.randn(32, 2), torch.randn(32, 2, requires_grad=True)
    ctx = SimpleNamespace(D=D, real=real, fake=fake, trainer=SimpleNamespace(tricks=[]))
    assert torch.equal(FeatureMatching().g_loss(torch.tensor(0.0), ctx),
                       feature_matching_loss(D, real, fake))
    assert feature_matching_loss(D, real, real[torch.randperm(32)]) < 1e-10
    with pytest.raises(TypeError, match="features"):
        feature_matching_loss(torch.nn.Linear(2, 1), real, fake)
    with pytest.raises(TypeError, match="tensors"):
        feature_matching_loss(D, real.tolist(), fake)


# --- 10 · minibatch discrimination --------------------------------------------------------------

def batch_features(f, T, include_self=False, distance="l1"):
    M = torch.einsum("na,abc->nbc", f, T)
    diff = M[:, None] - M[None, :]                    # (N, N, B, C)
    d = diff.abs().sum(-1) if distance == "l1" else diff.pow(2).sum(-1).sqrt()
    c = torch.exp(-d)
    if not include_self:
        c = c * (1 - torch.eye(len(f)))[:, :, None]
    return c.sum(1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_features_check_passes_a_correct_answer(seed, capsys):
    exercises.check_batch_features(batch_features, seed=seed)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("answer, message", [
    (lambda f, T: batch_features(f, T, include_self=True), "1 too large.*leave out the sample"),
    (lambda f, T: batch_features(f, T, distance="l2"), r"o\(f\) \(20 different feature rows\)"),
    (lambda f, T: batch_features(f, T).t(), r"shape \(5, 20\), expected \(20, 5\)"),
    (lambda f, T: batch_features(f, T).detach(), "through autograd"),
    (stub, "not written yet"),
])
def test_batch_features_check_names_the_mistake(answer, message):
    with pytest.raises(ExerciseError, match=message):
        exercises.check_batch_features(answer)


def test_batch_features_view_of_t_is_the_layers():
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(4, kernels=3, kernel_dim=2)
    f = torch.randn(10, 4)
    assert torch.allclose(batch_features(f, layer.T.detach().view(4, 3, 2)),
                          layer.batch_features(f).detach(), atol=1e-6)


# --- 10 · historical averaging on the bilinear game ---------------------------------------------

def averaged_play(x, y, *, eta, weight, steps, variant=None):
    xs, ys, path = [x], [y], [(x, y)]
    for _ in range(steps):
        mean_x = sum(xs) / len(xs) if variant != "past only" else sum(xs[:-1] or xs) / max(
            len(xs) - 1, 1)
        if variant == "simultaneous":
            x, y = (x - eta * (y + 2 * weight * (x - mean_x)),
                    y + eta * (x - 2 * weight * (y - sum(ys) / len(ys))))
        else:
            x = x - eta * (y + 2 * weight * (x - mean_x))
            y = y + eta * (x - 2 * weight * (y - sum(ys) / len(ys)))
        xs.append(x)
        ys.append(y)
        path.append((x, y))
    return torch.tensor(path)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_averaged_play_check_passes_a_correct_answer(seed, capsys):
    exercises.check_averaged_play(averaged_play, seed=seed)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("variant, message", [
    ("simultaneous", r"weight=0.0, .*then y answers the new x"),
    ("past only", r"weight=0.1, .*the current one included"),
])
def test_averaged_play_check_names_the_mistake(variant, message):
    def play(*args, **kwargs):
        return averaged_play(*args, **kwargs, variant=variant)
    with pytest.raises(ExerciseError, match=message):
        exercises.check_averaged_play(play)
    with pytest.raises(ExerciseError, match="not written yet"):
        exercises.check_averaged_play(stub)
    with pytest.raises(ExerciseError, match="should hold floats"):
        exercises.check_averaged_play(lambda *a, **k: averaged_play(*a, **k).long())


def test_bilinear_play_circles_without_averaging_and_is_damped_with_it():
    plain = bilinear_play(1.0, 1.0, eta=0.1, steps=200)
    r = plain.norm(dim=1)
    assert plain.shape == (201, 2) and plain.dtype == torch.float64
    assert 1.3 < float(r.min()) and float(r.max()) <= math.sqrt(2) + 1e-12
    damped = bilinear_play(1.0, 1.0, eta=0.1, steps=200, weight=0.1)
    assert float(damped[-1].norm()) < 0.02
    assert torch.equal(bilinear_play(0.5, -0.2, steps=0), torch.tensor([[0.5, -0.2]],
                                                                       dtype=torch.float64))


def test_bilinear_play_uses_historical_averagings_running_mean():
    """A 1-parameter GANTrainer-free replay: the x update with the explicit mean of the past."""
    path = bilinear_play(0.3, -0.7, eta=0.15, steps=30, weight=0.4)
    assert torch.allclose(path, averaged_play(0.3, -0.7, eta=0.15, weight=0.4, steps=30)
                          .double(), atol=1e-6)


def test_bilinear_play_refuses_bad_arguments():
    with pytest.raises(ValueError, match="eta"):
        bilinear_play(1.0, 1.0, eta=0.0)
    with pytest.raises(ValueError, match="weight"):
        bilinear_play(1.0, 1.0, weight=-1.0)
    with pytest.raises(TypeError, match="steps"):
        bilinear_play(1.0, 1.0, steps=2.5)
    with pytest.raises(TypeError, match="x"):
        bilinear_play("1", 1.0)


def test_checks_of_08_10_are_exported():
    names = {"check_gan_loop", "check_optimal_discriminator", "check_gan_losses",
             "check_mode_coverage", "check_reverse_kl", "check_feature_matching",
             "check_batch_features", "check_averaged_play"}
    assert names <= set(exercises.__all__)
    assert all(callable(getattr(exercises, n)) for n in names)


def test_tiny_models_are_built_from_the_seed_only():
    """The loop check's models do not depend on (or change) the global RNG."""
    from advlab.exercises._nb08_10 import _tiny_gan

    torch.manual_seed(123)
    a = [p.clone() for m in _tiny_gan(4) for p in m.parameters()]
    state = torch.get_rng_state()
    assert isinstance(_tiny_gan(4)[0], MLPGenerator)
    torch.manual_seed(321)
    b = [p.clone() for m in _tiny_gan(4) for p in m.parameters()]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    torch.manual_seed(123)
    assert torch.equal(torch.get_rng_state(), state)

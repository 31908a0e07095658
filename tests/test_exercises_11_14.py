"""Exercise checks of notebooks 11-14 and the library functions they compare with: slerp and
DCGAN's initialisation (advlab.gan.nets), the Inception score (advlab.metrics)."""

import copy
import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn

from advlab import exercises, metrics
from advlab.exercises import ExerciseError
from advlab.gan.acgan import ACGANClassLoss, class_loss, nll_on_softmax
from advlab.gan.losses import gradient_penalty, wasserstein_d_loss, wasserstein_g_loss
from advlab.gan.nets import (
    ACGANDiscriminator,
    ACGANGenerator,
    DCGANDiscriminator,
    DCGANGenerator,
    dcgan_init_,
    slerp,
)
from advlab.gan.tricks import Trick

pytestmark = pytest.mark.usefixtures("one_thread")

SEEDS = [0, 1]


def stub(*args, **kwargs):
    raise NotImplementedError()


# --- library: advlab.gan.nets.slerp ------------------------------------------------------------

def test_slerp_ends_norms_and_angles():
    gen = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(64, generator=gen, dtype=torch.float64), \
        torch.randn(64, generator=gen, dtype=torch.float64)
    z1 = z1 * z0.norm() / z1.norm()
    t = torch.linspace(0, 1, 11)[:, None]
    path = slerp(z0, z1, t)
    assert path.shape == (11, 64) and path.dtype == torch.float64
    torch.testing.assert_close(path[0], z0)
    torch.testing.assert_close(path[-1], z1)
    torch.testing.assert_close(path.norm(dim=1), torch.full((11,), float(z0.norm()),
                                                            dtype=torch.float64))
    omega = torch.arccos(z0 @ z1 / (z0.norm() * z1.norm()))
    cos_to_z0 = path @ z0 / (path.norm(dim=1) * z0.norm())
    torch.testing.assert_close(cos_to_z0, torch.cos(t[:, 0].double() * omega))


def test_slerp_accepts_a_number_and_1d_t_and_matches_the_formula():
    z0, z1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    mid = slerp(z0, z1, 0.5)
    assert mid.shape == (2,)
    torch.testing.assert_close(mid, (z0 + z1) * math.sin(math.pi / 4) / math.sin(math.pi / 2))
    torch.testing.assert_close(slerp(z0, z1, torch.tensor([0.0, 0.5, 1.0])),
                               slerp(z0, z1, torch.tensor([[0.0], [0.5], [1.0]])))


def test_slerp_falls_back_to_the_line_for_parallel_vectors():
    z = torch.tensor([1.0, 2.0, 3.0])
    out = slerp(z, 2 * z, torch.tensor([0.0, 0.5, 1.0]))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.stack([z, 1.5 * z, 2 * z]))


@pytest.mark.parametrize("args, error", [
    ((torch.ones(3), torch.ones(4), 0.5), ValueError),
    ((torch.ones(2, 3), torch.ones(2, 3), 0.5), ValueError),
    ((torch.zeros(3), torch.ones(3), 0.5), ValueError),
    ((torch.ones(3), torch.ones(3), torch.ones(2, 2)), ValueError),
    ((torch.ones(3), torch.ones(3), "half"), TypeError),
    (([1.0, 2.0], torch.ones(2), 0.5), TypeError),
    ((torch.ones(3, dtype=torch.long), torch.ones(3), 0.5), TypeError),
])
def test_slerp_rejects_bad_arguments(args, error):
    with pytest.raises(error):
        slerp(*args)


def test_slerp_reproduces_notebook_11s_formula_exactly():
    gen = torch.Generator().manual_seed(3)
    z0, z1 = torch.randn(64, generator=gen), torch.randn(64, generator=gen)
    t = torch.linspace(0, 1, 10)[:, None]
    omega = torch.arccos((z0 / z0.norm()) @ (z1 / z1.norm()))
    old = (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)
    assert torch.equal(slerp(z0, z1, t), old)


# --- library: advlab.gan.nets.dcgan_init_ ------------------------------------------------------

def test_dcgan_init_draws_the_papers_distributions_and_leaves_the_rest():
    torch.manual_seed(0)
    net = nn.ModuleDict({"G": DCGANGenerator(64, (1, 28, 28), 32, init="default"),
                         "D": ACGANDiscriminator((1, 28, 28), 32, init="default"),
                         "emb": nn.Embedding(10, 8),
                         "ln": nn.LayerNorm(8)})
    emb, ln = net["emb"].weight.detach().clone(), net["ln"].weight.detach().clone()
    rng = torch.get_rng_state()
    out = dcgan_init_(net, torch.Generator().manual_seed(0))
    assert out is net and torch.equal(torch.get_rng_state(), rng)
    assert all(p.requires_grad for p in net.parameters())
    first = net["G"].net[0].weight.detach()  # 200,704 draws
    assert abs(float(first.mean())) < 5 * 0.02 / math.sqrt(first.numel())
    assert abs(float(first.std()) - 0.02) < 5 * 0.02 / math.sqrt(2 * first.numel())
    for m in net.modules():
        m.requires_grad_(False)
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            assert abs(float(m.weight.std()) - 0.02) < 0.005
            assert m.bias is None or not m.bias.any()
        if isinstance(m, nn.BatchNorm2d):
            assert abs(float(m.weight.mean()) - 1) < 0.02 and 0.005 < float(m.weight.std()) < 0.04
            assert not m.bias.any() and not m.running_mean.any()
    assert torch.equal(net["emb"].weight, emb) and torch.equal(net["ln"].weight, ln)


def test_dcgan_init_repeats_with_its_seed_and_uses_the_global_rng_without_one():
    G = DCGANDiscriminator((1, 28, 28), 8)
    a = dcgan_init_(copy.deepcopy(G), torch.Generator().manual_seed(5))
    b = dcgan_init_(copy.deepcopy(G), torch.Generator().manual_seed(5))
    c = dcgan_init_(copy.deepcopy(G), torch.Generator().manual_seed(6))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.body[0].weight, c.body[0].weight)
    torch.manual_seed(1)
    d = dcgan_init_(copy.deepcopy(G))
    torch.manual_seed(1)
    e = dcgan_init_(copy.deepcopy(G))
    assert torch.equal(d.body[0].weight, e.body[0].weight)


def test_dcgan_init_rejects_bad_arguments():
    with pytest.raises(TypeError, match="module"):
        dcgan_init_(torch.ones(3))
    with pytest.raises(TypeError, match="generator"):
        dcgan_init_(nn.Linear(2, 2), generator=0)


def test_the_course_networks_start_from_dcgan_init_unless_asked_not_to():
    torch.manual_seed(0)
    G = DCGANGenerator(64, (1, 28, 28), 32)
    torch.manual_seed(0)
    H = DCGANGenerator(64, (1, 28, 28), 32)
    assert all(torch.equal(p, q) for p, q in zip(G.parameters(), H.parameters(), strict=True))
    # 512 weights of N(0, 0.02^2): the sample std is within 0.02 * (1 +- 5 / sqrt(2 * 512))
    assert abs(float(G.net[-2].weight.detach().std()) - 0.02) < 0.02 * 5 / (2 * 512) ** 0.5
    assert float(G.net[-2].bias.detach().abs().max()) == 0.0
    default = DCGANGenerator(64, (1, 28, 28), 32, init="default")
    # PyTorch's default: uniform within +-1/sqrt(fan_in), fan_in = 1 * 4 * 4 here: std ~ 0.144
    assert float(default.net[-2].weight.detach().std()) > 0.1


# --- library: advlab.metrics.inception_score / classifier_inception_score ---------------------

def test_inception_score_closed_forms():
    eye = torch.eye(10, dtype=torch.float64)
    assert metrics.inception_score(torch.full((7, 10), 0.1)) == pytest.approx(1.0)
    assert metrics.inception_score(eye.repeat(30, 1)) == pytest.approx(10.0)
    assert metrics.inception_score(eye[[4] * 9]) == pytest.approx(1.0)
    # confident but unbalanced (3 : 1): exp(H(q)) for the class frequencies q
    q = np.array([0.75, 0.25])
    assert metrics.inception_score(torch.eye(2)[[0, 0, 0, 1]]) == \
        pytest.approx(math.exp(-(q * np.log(q)).sum()))


def test_inception_score_matches_a_numpy_formula_and_takes_arrays():
    gen = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(200, 10, generator=gen, dtype=torch.float64) * 2, 1).numpy()
    marginal = p.mean(0, keepdims=True)
    expected = math.exp(float((p * (np.log(p) - np.log(marginal))).sum(1).mean()))
    assert metrics.inception_score(p) == pytest.approx(expected, rel=1e-12)
    assert metrics.inception_score(torch.from_numpy(p).float()) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("probs, error", [
    ([[0.5, 0.5]], TypeError),
    (torch.ones(10), ValueError),
    (torch.ones(0, 10), ValueError),
    (torch.ones(3, 1), ValueError),
    (torch.full((3, 4), 0.5), ValueError),
    (torch.tensor([[1.5, -0.5]]), ValueError),
    (torch.tensor([[float("nan"), 1.0]]), ValueError),
])
def test_inception_score_rejects_what_are_not_probabilities(probs, error):
    with pytest.raises(error):
        metrics.inception_score(probs)


class TinyClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Dropout(0.5), nn.Linear(8, 3))

    def forward(self, x):
        return self.net(x)


def test_classifier_inception_score_is_the_score_of_the_softmax_in_eval_mode():
    model = TinyClassifier().train()
    images = torch.rand(50, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    value = metrics.classifier_inception_score(images, model, batch_size=7)
    assert model.training, "the mode must be restored"
    with torch.no_grad():
        expected = metrics.inception_score(model.eval()(images).double().softmax(1))
    assert value == pytest.approx(expected, rel=1e-6)  # float32 sums over other batch sizes
    assert 1 <= value <= 3


def test_classifier_inception_score_rejects_bad_arguments():
    model = TinyClassifier()
    with pytest.raises(TypeError, match="model"):
        metrics.classifier_inception_score(torch.rand(2, 1, 4, 4), lambda x: x)
    with pytest.raises(ValueError, match="images"):
        metrics.classifier_inception_score(torch.rand(2, 1, 4, 4) + 1, model)
    with pytest.raises(ValueError, match="at least one"):
        metrics.classifier_inception_score(torch.rand(0, 1, 4, 4), model)
    with pytest.raises(TypeError, match="batch_size"):
        metrics.classifier_inception_score(torch.rand(2, 1, 4, 4), model, batch_size=1.5)


# --- notebook 11: DCGAN's initialisation -------------------------------------------------------

def init_with(weight=(0.0, 0.02), scale=(1.0, 0.02), *, linear=True, batch_norm=True,
              zero_bias=True, use_generator=True, running=False, touch_all=False, ret=True):
    def my_dcgan_init_(module, generator=None):
        gen = generator if use_generator else None
        kinds = (nn.Conv2d, nn.ConvTranspose2d) + ((nn.Linear,) if linear else ())
        with torch.no_grad():
            for m in module.modules():
                if isinstance(m, kinds):
                    m.weight.normal_(*weight, generator=gen)
                    if m.bias is not None and zero_bias:
                        m.bias.zero_()
                elif isinstance(m, nn.BatchNorm2d) and batch_norm:
                    m.weight.normal_(*scale, generator=gen)
                    m.bias.zero_()
                    if running:
                        m.reset_running_stats()
                elif touch_all:
                    for p in m.parameters(recurse=False):
                        p.normal_(0, 0.02, generator=gen)
        return module if ret else None
    return my_dcgan_init_


@pytest.mark.parametrize("seed", SEEDS)
def test_dcgan_init_check_passes_the_reference_and_a_student_version(seed, capsys):
    exercises.check_dcgan_init(dcgan_init_, seed=seed)
    exercises.check_dcgan_init(init_with(), seed=seed)
    assert capsys.readouterr().out.count("✓") == 2


@pytest.mark.parametrize("answer, match", [
    (init_with(weight=(0.0, 0.02 ** 2)), "not the variance"),
    (init_with(weight=(0.0, 0.2)), "standard deviation 0.2"),
    (init_with(scale=(0.0, 0.02)), "mean 0.0.*expected 1.0"),
    (init_with(batch_norm=False), "scale \\(weight\\) of BatchNorm2d .* unchanged"),
    (init_with(linear=False), "weights of Linear D.class_head unchanged"),
    (init_with(zero_bias=False), "bias of .* should be 0"),
    (init_with(use_generator=False), "global random number generator"),
    (init_with(running=True), "running statistics"),
    (init_with(touch_all=True), "changed other.0.weight of Embedding"),
    (init_with(ret=False), "should return the module"),
])
def test_dcgan_init_check_names_typical_mistakes(answer, match):
    with pytest.raises(ExerciseError, match=match):
        exercises.check_dcgan_init(answer)


def test_dcgan_init_check_notices_a_fixed_seed_inside():
    def fixed_seed(module, generator=None):
        return dcgan_init_(module, torch.Generator().manual_seed(0))
    with pytest.raises(ExerciseError, match="different seeds"):
        exercises.check_dcgan_init(fixed_seed, seed=3)


def test_dcgan_init_check_reports_an_in_place_op_on_a_leaf_as_a_crash():
    def no_no_grad(module, generator=None):
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.normal_(0, 0.02, generator=generator)
        return module
    with pytest.raises(ExerciseError, match="raised RuntimeError"):
        exercises.check_dcgan_init(no_no_grad)


def test_dcgan_init_check_stub():
    with pytest.raises(ExerciseError, match="not written yet"):
        exercises.check_dcgan_init(stub)


# --- notebook 11: slerp ------------------------------------------------------------------------

def my_slerp(z0, z1, t):
    omega = torch.arccos((z0 / z0.norm()) @ (z1 / z1.norm()))
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


@pytest.mark.parametrize("seed", SEEDS)
def test_slerp_check_passes(seed, capsys):
    exercises.check_slerp(slerp, seed=seed)
    exercises.check_slerp(my_slerp, seed=seed)
    assert capsys.readouterr().out.count("✓") == 2


def test_slerp_check_names_typical_mistakes():
    def lerp(z0, z1, t):
        return (1 - t) * z0 + t * z1

    def swapped(z0, z1, t):
        return my_slerp(z0, z1, 1 - t)

    def unit(z0, z1, t):
        out = my_slerp(z0, z1, t)
        return out / out.norm(dim=1, keepdim=True)

    def flat(z0, z1, t):
        return my_slerp(z0, z1, t).flatten()

    def no_division(z0, z1, t):
        omega = torch.arccos((z0 / z0.norm()) @ (z1 / z1.norm()))
        return torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1

    with pytest.raises(ExerciseError, match="constant angular speed \\(a straight line does not"):
        exercises.check_slerp(lerp)
    with pytest.raises(ExerciseError, match="at t = 0 \\(it should be z0\\)"):
        exercises.check_slerp(swapped)
    with pytest.raises(ExerciseError, match="at t = 0"):
        exercises.check_slerp(unit)
    with pytest.raises(ExerciseError, match="shape \\(144,\\), expected \\(9, 16\\)"):
        exercises.check_slerp(flat)
    with pytest.raises(ExerciseError, match="at t = 0"):
        exercises.check_slerp(no_division)


def test_slerp_check_stub():
    with pytest.raises(ExerciseError, match="not written yet"):
        exercises.check_slerp(stub)


# --- notebook 12: the class loss as a trick ----------------------------------------------------

def trick_class(*, global_rng=False, ignore_d_on_fake=False, g_on_d_fake=False,
                fixed_loss=False, no_weight=False, detach=False, drop_loss=False):
    class MyACGANClassLoss(Trick):
        def __init__(self, classes=10, *, weight=1.0, d_on_fake=False, loss=class_loss):
            self.classes, self.weight, self.d_on_fake, self.loss = classes, weight, d_on_fake, loss

        def latent(self, z, ctx):
            gen = None if global_rng else ctx.generator
            return z, torch.randint(self.classes, (len(z),), generator=gen, device=z.device)

        def _loss(self, logits, labels):
            logits = logits.detach() if detach else logits
            return (F.cross_entropy if fixed_loss else self.loss)(logits, labels)

        def d_loss(self, loss, ctx):
            extra = self._loss(ctx.d_real[1], ctx.real_labels)
            if self.d_on_fake and not ignore_d_on_fake:
                extra = extra + self._loss(ctx.d_fake[1], ctx.z[1])
            return (0 if drop_loss else loss) + (1.0 if no_weight else self.weight) * extra

        def g_loss(self, loss, ctx):
            out = ctx.d_fake if g_on_d_fake else ctx.d_fake_g
            return loss + (1.0 if no_weight else self.weight) * self._loss(out[1], ctx.z[1])
    return MyACGANClassLoss


@pytest.mark.parametrize("seed", SEEDS)
def test_acgan_trick_check_passes(seed, capsys):
    exercises.check_acgan_class_loss(ACGANClassLoss, seed=seed)
    exercises.check_acgan_class_loss(trick_class(), seed=seed)
    assert capsys.readouterr().out.count("✓") == 2


@pytest.mark.parametrize("kwargs, match", [
    ({"global_rng": True}, "global random number generator"),
    ({"ignore_d_on_fake": True}, "with d_on_fake=True add the class loss"),
    ({"g_on_d_fake": True}, "ctx.d_fake_g, not ctx.d_fake"),
    ({"fixed_loss": True}, "use self.loss"),
    ({"no_weight": True}, "multiply the class terms by self.weight"),
    ({"drop_loss": True}, "return the loss you were given"),
    ({"detach": True}, "carries no gradient"),
])
def test_acgan_trick_check_names_typical_mistakes(kwargs, match):
    with pytest.raises(ExerciseError, match=match):
        exercises.check_acgan_class_loss(trick_class(**kwargs))


def test_acgan_trick_check_wants_uniform_labels_and_the_pair():
    class OneLabel(trick_class()):
        def latent(self, z, ctx):
            return z, torch.zeros(len(z), dtype=torch.long)

    class LabelsOnly(trick_class()):
        def latent(self, z, ctx):
            return torch.randint(self.classes, (len(z),), generator=ctx.generator)

    class TenClasses(trick_class()):
        def latent(self, z, ctx):
            return z, torch.randint(10, (len(z),), generator=ctx.generator)

    with pytest.raises(ExerciseError, match="uniform over the 10 classes"):
        exercises.check_acgan_class_loss(OneLabel)
    with pytest.raises(ExerciseError, match="the pair \\(z, labels\\)"):
        exercises.check_acgan_class_loss(LabelsOnly)
    with pytest.raises(ExerciseError, match="should lie in \\[0, 3\\)"):
        exercises.check_acgan_class_loss(TenClasses)


def test_acgan_trick_check_stub():
    class Stub(Trick):
        def __init__(self, classes=10, *, weight=1.0, d_on_fake=False, loss=class_loss):
            self.classes = classes

        def latent(self, z, ctx):
            raise NotImplementedError()

    with pytest.raises(ExerciseError, match="`latent` is not written yet"):
        exercises.check_acgan_class_loss(Stub)


def test_the_trained_acgan_trick_runs_in_the_loop():
    """A class that passed the check trains an AC-GAN exactly like the library's trick."""
    from advlab.gan import GANTrainer

    data = (torch.rand(64, 1, 8, 8) * 2 - 1, torch.randint(10, (64,)))
    results = []
    for cls in (ACGANClassLoss, trick_class()):
        torch.manual_seed(0)
        trainer = GANTrainer(ACGANGenerator(8, (1, 8, 8), 4), ACGANDiscriminator((1, 8, 8), 4),
                             data, tricks=[cls(10)], batch_size=16, seed=0)
        trainer.train(2)
        results.append(torch.cat([p.detach().flatten() for p in trainer.G.parameters()]))
    assert torch.equal(*results)


# --- notebook 12: the class loss on logits -----------------------------------------------------

def my_class_loss(logits, labels):
    picked = logits.gather(1, labels[:, None]).squeeze(1)
    return -(picked - logits.logsumexp(1)).mean()


@pytest.mark.parametrize("seed", SEEDS)
def test_class_loss_check_passes(seed, capsys):
    exercises.check_class_loss(class_loss, seed=seed)
    exercises.check_class_loss(my_class_loss, seed=seed)
    exercises.check_class_loss(lambda x, y: F.nll_loss(F.log_softmax(x, 1), y), seed=seed)
    assert capsys.readouterr().out.count("✓") == 3


def test_class_loss_check_names_typical_mistakes():
    def log_of_softmax(x, y):
        return F.nll_loss(torch.log(F.softmax(x, 1)), y)

    def by_hand(x, y):
        p = x.exp() / x.exp().sum(1, keepdim=True)
        return -p.log().gather(1, y[:, None]).mean()

    def summed(x, y):
        return F.cross_entropy(x, y, reduction="sum")

    def per_sample(x, y):
        return F.cross_entropy(x, y, reduction="none")

    def flipped(x, y):
        return -F.cross_entropy(x, y)

    def detached(x, y):
        return F.cross_entropy(x.detach(), y)

    with pytest.raises(ExerciseError, match="overflows"):
        exercises.check_class_loss(log_of_softmax)
    with pytest.raises(ExerciseError, match="overflows"):
        exercises.check_class_loss(by_hand)
    with pytest.raises(ExerciseError, match="NLLLoss on probabilities"):
        exercises.check_class_loss(nll_on_softmax)
    with pytest.raises(ExerciseError, match="sum over the batch"):
        exercises.check_class_loss(summed)
    with pytest.raises(ExerciseError, match="0-dim tensor"):
        exercises.check_class_loss(per_sample)
    with pytest.raises(ExerciseError, match="sign is flipped"):
        exercises.check_class_loss(flipped)
    with pytest.raises(ExerciseError, match="no gradient"):
        exercises.check_class_loss(detached)


def test_class_loss_check_stub():
    with pytest.raises(ExerciseError, match="not written yet"):
        exercises.check_class_loss(stub)


# --- notebook 13: the Wasserstein losses -------------------------------------------------------

def my_wasserstein_losses(real_scores, fake_scores):
    return fake_scores.mean() - real_scores.mean(), -fake_scores.mean()


@pytest.mark.parametrize("seed", SEEDS)
def test_wasserstein_check_passes(seed, capsys):
    exercises.check_wasserstein_losses(my_wasserstein_losses, seed=seed)
    exercises.check_wasserstein_losses(lambda r, f: (wasserstein_d_loss(r, f),
                                                     wasserstein_g_loss(f)), seed=seed)
    assert capsys.readouterr().out.count("✓") == 2


def test_wasserstein_check_names_typical_mistakes():
    from advlab.gan.losses import bce_d_loss, non_saturating_g_loss

    with pytest.raises(ExerciseError, match="critic loss .* sign is flipped"):
        exercises.check_wasserstein_losses(lambda r, f: (r.mean() - f.mean(), -f.mean()))
    with pytest.raises(ExerciseError, match="generator loss .* sign is flipped"):
        exercises.check_wasserstein_losses(lambda r, f: (f.mean() - r.mean(), f.mean()))
    with pytest.raises(ExerciseError, match="binary cross-entropy"):
        exercises.check_wasserstein_losses(lambda r, f: (bce_d_loss(r, f),
                                                         non_saturating_g_loss(f)))
    with pytest.raises(ExerciseError, match="pair"):
        exercises.check_wasserstein_losses(lambda r, f: f.mean() - r.mean())
    with pytest.raises(ExerciseError, match="raised RuntimeError"):  # one mean over both
        exercises.check_wasserstein_losses(lambda r, f: ((f - r).mean(), -f.mean()))
    with pytest.raises(ExerciseError, match="no gradient"):
        exercises.check_wasserstein_losses(
            lambda r, f: (f.detach().mean() - r.detach().mean(), -f.mean()))


def test_wasserstein_check_stub():
    with pytest.raises(ExerciseError, match="not written yet"):
        exercises.check_wasserstein_losses(stub)


# --- notebook 13: the gradient penalty ---------------------------------------------------------

def gp_with(*, swap=False, batch_norm_of_all=False, minus_one=True, create_graph=True,
            backward=False, use_weight=True, reduce="mean"):
    def my_gradient_penalty(D, real, fake, eps, weight=10.0):
        e = eps.view(-1, *([1] * (real.dim() - 1)))
        a, b = (fake, real) if swap else (real, fake)
        x_hat = (e * a.detach() + (1 - e) * b.detach()).requires_grad_(True)
        scores = D(x_hat)
        if backward:
            scores.sum().backward(create_graph=True)
            grad = x_hat.grad
        else:
            (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=create_graph)
        norms = grad.norm() if batch_norm_of_all else grad.flatten(1).norm(dim=1)
        terms = (norms - 1) ** 2 if minus_one else norms ** 2
        value = terms.mean() if reduce == "mean" else terms.sum()
        return (weight if use_weight else 1.0) * value
    return my_gradient_penalty


@pytest.mark.parametrize("seed", SEEDS)
def test_gradient_penalty_check_passes(seed, capsys):
    exercises.check_gradient_penalty(gp_with(), seed=seed)
    exercises.check_gradient_penalty(
        lambda D, r, f, e, weight=10.0: gradient_penalty(D, r, f, eps=e, weight=weight), seed=seed)
    assert capsys.readouterr().out.count("✓") == 2


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph")
@pytest.mark.parametrize("kwargs, match", [
    ({"swap": True}, "real and fake swapped"),
    ({"batch_norm_of_all": True}, "each sample's gradient"),
    ({"minus_one": False}, "pulls the norm to 1"),
    ({"create_graph": False}, "create_graph=True"),
    ({"backward": True}, "\\.backward\\(\\)"),
    ({"use_weight": False}, "multiply by weight"),
    ({"reduce": "sum"}, "average over the samples"),
])
def test_gradient_penalty_check_names_typical_mistakes(kwargs, match):
    with pytest.raises(ExerciseError, match=match):
        exercises.check_gradient_penalty(gp_with(**kwargs))


def test_the_finite_difference_reference_agrees_with_autograd():
    from advlab.exercises._nb11_14 import _penalty_by_finite_differences, _test_critic

    D = _test_critic(4)
    x = torch.randn(5, 2, 3, 3, dtype=torch.float64)
    eps = torch.zeros(5, dtype=torch.float64)
    exact = float(gradient_penalty(D, x, x, eps=eps, weight=3.0).detach())
    assert _penalty_by_finite_differences(D, x, 3.0) == pytest.approx(exact, rel=1e-8, abs=1e-9)


def test_gradient_penalty_check_stub():
    with pytest.raises(ExerciseError, match="not written yet"):
        exercises.check_gradient_penalty(stub)


# --- notebook 14: the Frechet distance ---------------------------------------------------------

def my_frechet_distance(real, fake):
    s1, s2 = torch.cov(real.T), torch.cov(fake.T)
    vals, vecs = torch.linalg.eigh(s1)
    root = vecs @ torch.diag(vals.clamp(min=0).sqrt()) @ vecs.T
    cross = torch.linalg.eigvalsh(root @ s2 @ root).clamp(min=0).sqrt().sum()
    return (real.mean(0) - fake.mean(0)).square().sum() + s1.trace() + s2.trace() - 2 * cross


def scipy_frechet(real, fake, *, biased=False):
    a, b = real.numpy(), fake.numpy()
    s1, s2 = np.cov(a, rowvar=False, bias=biased), np.cov(b, rowvar=False, bias=biased)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * root)


@pytest.mark.parametrize("seed", SEEDS)
def test_frechet_check_passes(seed, capsys):
    exercises.check_frechet_distance(metrics.frechet_distance, seed=seed)
    exercises.check_frechet_distance(my_frechet_distance, seed=seed)
    exercises.check_frechet_distance(scipy_frechet, seed=seed)
    assert capsys.readouterr().out.count("✓") == 3


def test_frechet_check_names_typical_mistakes():
    def product_of_roots(real, fake):
        s1, s2 = np.cov(real.numpy(), rowvar=False), np.cov(fake.numpy(), rowvar=False)
        mu = ((real.mean(0) - fake.mean(0)) ** 2).sum().item()
        return mu + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1) @ scipy.linalg.sqrtm(s2)).real

    def one_cross(real, fake):
        s1, s2 = np.cov(real.numpy(), rowvar=False), np.cov(fake.numpy(), rowvar=False)
        mu = ((real.mean(0) - fake.mean(0)) ** 2).sum().item()
        return mu + np.trace(s1 + s2) - np.trace(scipy.linalg.sqrtm(s1 @ s2).real)

    def means_only(real, fake):
        return (real.mean(0) - fake.mean(0)).square().sum()

    with pytest.raises(ExerciseError, match="unbiased covariances"):
        exercises.check_frechet_distance(lambda r, f: scipy_frechet(r, f, biased=True))
    with pytest.raises(ExerciseError, match="unless the two commute"):
        exercises.check_frechet_distance(product_of_roots)
    with pytest.raises(ExerciseError, match="-2 tr"):
        exercises.check_frechet_distance(one_cross)
    with pytest.raises(ExerciseError, match="covariance term .* is missing"):
        exercises.check_frechet_distance(means_only)
    with pytest.raises(ExerciseError, match="is complex"):
        exercises.check_frechet_distance(lambda r, f: complex(scipy_frechet(r, f)))
    with pytest.raises(ExerciseError, match="is complex"):
        exercises.check_frechet_distance(
            lambda r, f: torch.tensor(scipy_frechet(r, f), dtype=torch.complex128))
    with pytest.raises(ExerciseError, match="one number"):
        exercises.check_frechet_distance(lambda r, f: (r.mean(0) - f.mean(0)).square())


def test_frechet_check_stub():
    with pytest.raises(ExerciseError, match="not written yet"):
        exercises.check_frechet_distance(stub)


# --- notebook 14: the Inception score ----------------------------------------------------------

def my_inception_score(probs):
    p_y = probs.mean(0, keepdim=True)
    kl = (torch.xlogy(probs, probs) - torch.xlogy(probs, p_y)).sum(1)
    return kl.mean().exp()


@pytest.mark.parametrize("seed", SEEDS)
def test_inception_check_passes(seed, capsys):
    exercises.check_inception_score(metrics.inception_score, seed=seed)
    exercises.check_inception_score(my_inception_score, seed=seed)
    exercises.check_inception_score(lambda p: float(my_inception_score(p)), seed=seed)
    assert capsys.readouterr().out.count("✓") == 3


def test_inception_check_names_typical_mistakes():
    def no_exp(p):
        return my_inception_score(p).log()

    def uniform_marginal(p):
        return (p * (p.clamp(min=1e-300).log() + math.log(p.shape[1]))).sum(1).mean().exp()

    def exp_then_mean(p):
        p_y = p.mean(0, keepdim=True)
        return (torch.xlogy(p, p) - torch.xlogy(p, p_y)).sum(1).exp().mean()

    def plain_log(p):
        return (p * (p / p.mean(0, keepdim=True)).log()).sum(1).mean().exp()

    def reversed_kl(p):
        p_y = p.mean(0, keepdim=True).expand_as(p)
        return (torch.xlogy(p_y, p_y) - p_y * p.log()).sum(1).mean().exp()

    with pytest.raises(ExerciseError, match="take its exp"):
        exercises.check_inception_score(no_exp)
    with pytest.raises(ExerciseError, match="not the uniform"):
        exercises.check_inception_score(uniform_marginal)
    with pytest.raises(ExerciseError, match="average the KL divergences first"):
        exercises.check_inception_score(exp_then_mean)
    with pytest.raises(ExerciseError, match="0 log 0 = 0"):
        exercises.check_inception_score(plain_log)
    with pytest.raises(ExerciseError, match="uniform predictions|one-hot|random"):
        exercises.check_inception_score(reversed_kl)


def test_inception_check_stub():
    with pytest.raises(ExerciseError, match="not written yet"):
        exercises.check_inception_score(stub)


def test_every_check_is_exported_and_documented():
    from advlab.exercises import _nb11_14

    for name in _nb11_14.__all__:
        fn = getattr(exercises, name)
        assert fn.__doc__ and callable(fn)

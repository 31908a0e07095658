"""Wasserstein losses, the gradient penalty and weight clipping."""

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from _support import Crash, clone_params, ring, same
from torch import nn

from advlab import checkpoints
from advlab.gan import GANTrainer, Trick, get_loss
from advlab.gan.losses import GP_WEIGHT, gradient_penalty
from advlab.gan.nets import Critic, DCGANDiscriminator, DCGANGenerator
from advlab.gan.wgan import (
    GradientPenalty,
    WeightClipping,
    clip_settings,
    gp_settings,
    wasserstein_estimate,
)
from advlab.models import MLPDiscriminator, MLPGenerator

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_critic():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 1),
                         nn.Flatten(0)).double()


def test_wasserstein_losses():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-2.0, 0.0])
    loss = get_loss("wasserstein")
    assert loss.d_loss(real, fake, 1.0).item() == pytest.approx(-1 - 2)
    assert loss.d_loss(real, fake).item() == pytest.approx(-1 - 2)
    assert loss.g_loss(fake).item() == pytest.approx(1.0)
    assert not loss.smoothable
    with pytest.raises(ValueError, match="loss must be one of"):
        get_loss("wgan-gp")  # the penalty is the GradientPenalty trick, not a loss


def finite_difference_penalty(D, real, fake, eps, weight=10.0, h=1e-6):
    """``weight * mean (|grad D(x_hat)| - 1)^2`` with the gradient by central differences."""
    n = len(real)
    shape = eps.view(n, *([1] * (real.dim() - 1)))
    x_hat = shape * real + (1 - shape) * fake
    size = real[0].numel()
    grads = torch.zeros(n, size, dtype=torch.double)
    with torch.no_grad():
        for j in range(size):
            step = torch.zeros(size, dtype=torch.double)
            step[j] = h
            step = step.view(real.shape[1:])
            grads[:, j] = (D(x_hat + step) - D(x_hat - step)) / (2 * h)
    return weight * ((grads.norm(dim=1) - 1) ** 2).mean()


def test_gradient_penalty_against_finite_differences():
    D = tiny_critic()
    real, fake = torch.randn(4, 2, 3, dtype=torch.double), torch.randn(4, 2, 3, dtype=torch.double)
    eps = torch.tensor([0.0, 0.3, 0.7, 1.0], dtype=torch.double)
    got = gradient_penalty(D, real, fake, eps=eps)
    expected = finite_difference_penalty(D, real, fake, eps)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    h = 1e-6

    # create_graph: the penalty's own gradient reaches the critic's weights (checked numerically)
    weight = D[1].weight
    (analytic,) = torch.autograd.grad(gradient_penalty(D, real, fake, eps=eps), weight)
    with torch.no_grad():
        w0 = weight[2, 4].item()
        values = []
        for sign in (1, -1):
            weight[2, 4] = w0 + sign * h
            with torch.enable_grad():
                values.append(gradient_penalty(D, real, fake, eps=eps).item())
        weight[2, 4] = w0
    assert analytic[2, 4].item() == pytest.approx((values[0] - values[1]) / (2 * h), rel=1e-5)


def linear_critic(slope):
    """f(x) = slope * <u, x> for a unit vector u: |grad f| = slope everywhere."""
    w = torch.randn(6, dtype=torch.double)
    D = nn.Sequential(nn.Flatten(), nn.Linear(6, 1, bias=False), nn.Flatten(0)).double()
    with torch.no_grad():
        D[1].weight.copy_(slope * w / w.norm())
    return D


def test_gradient_penalty_of_a_unit_slope_critic_is_zero():
    real, fake = torch.randn(5, 6, dtype=torch.double), torch.randn(5, 6, dtype=torch.double)
    assert gradient_penalty(linear_critic(1.0), real, fake).item() == pytest.approx(0, abs=1e-20)
    # slope 3: penalty 10 * (3 - 1)^2 = 40 at every interpolate
    assert gradient_penalty(linear_critic(3.0), real, fake).item() == pytest.approx(40)


def gp_ctx(D, real, fake, seed):
    return SimpleNamespace(D=D, real=real, fake=fake.requires_grad_(True),
                           generator=torch.Generator().manual_seed(seed))


def test_gradient_penalty_trick_adds_the_closed_form():
    real, fake = torch.randn(5, 6, dtype=torch.double), torch.randn(5, 6, dtype=torch.double)
    loss = torch.tensor(1.5, dtype=torch.double)
    # slope 3: weight * (3 - 1)^2 at every interpolate, whatever eps is
    ctx = gp_ctx(linear_critic(3.0), real, fake, seed=0)
    assert GradientPenalty().d_loss(loss, ctx).item() == pytest.approx(1.5 + 40)
    assert GradientPenalty(weight=2.5).d_loss(loss, ctx).item() == pytest.approx(1.5 + 10)
    assert GradientPenalty().weight == GP_WEIGHT == 10.0


def test_gradient_penalty_trick_against_finite_differences():
    D = tiny_critic()
    real, fake = torch.randn(4, 2, 3, dtype=torch.double), torch.randn(4, 2, 3, dtype=torch.double)
    ctx = gp_ctx(D, real, fake, seed=7)
    got = GradientPenalty(weight=3.0).d_loss(torch.zeros((), dtype=torch.double), ctx)
    # eps: the first 4 uniform numbers of the generator the trick was handed
    eps = torch.rand(4, generator=torch.Generator().manual_seed(7), dtype=torch.double)
    assert not torch.equal(ctx.generator.get_state(),
                           torch.Generator().manual_seed(7).get_state()), "eps from ctx.generator"
    expected = finite_difference_penalty(D, real, fake, eps, weight=3.0)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    (grad_fake,) = torch.autograd.grad(got, ctx.fake, allow_unused=True)
    assert grad_fake is None, "the penalty must not reach G through the fake batch"


def test_gradient_penalty_refuses_a_batch_norm_critic():
    G, D = DCGANGenerator(8, (1, 28, 28), 4), DCGANDiscriminator((1, 28, 28), 4)
    before = [p.detach().clone() for p in D.parameters()]
    trainer = GANTrainer(G, D, torch.rand(16, 1, 28, 28), device="cpu",
                         **{**gp_settings(), "batch_size": 4})
    with pytest.raises(ValueError, match="batch norm"):
        trainer.train(1)
    assert all(torch.equal(a, b) for a, b in zip(before, D.parameters(), strict=True)), \
        "the critic must not have been updated"
    with pytest.raises(ValueError, match="eps"):
        gradient_penalty(tiny_critic(), torch.randn(3, 6).double(), torch.randn(3, 6).double(),
                         eps=torch.rand(4).double())
    with pytest.raises(ValueError, match="same shape"):
        gradient_penalty(tiny_critic(), torch.randn(3, 6), torch.randn(2, 6))


class CheckClipped(Trick):
    """Runs after the clipping trick's after_d_step: every critic weight must be in [-c, c]."""

    def __init__(self, clip):
        self.clip, self.checked = clip, 0

    def after_d_step(self, ctx):
        bound = torch.tensor(self.clip)  # float32, like the weights
        assert all(p.abs().max() <= bound for p in ctx.D.parameters())
        self.checked += 1


def test_clipping_bounds_every_critic_weight_after_each_step():
    torch.manual_seed(0)
    G, D = MLPGenerator(4, (3,), (8,)), MLPDiscriminator((3,), (8, 8))
    settings = clip_settings(clip=0.05)
    spy = CheckClipped(0.05)
    settings["tricks"] = settings["tricks"] + [spy]
    assert max(p.abs().max().item() for p in D.parameters()) > 0.05, "init must need clipping"
    trainer = GANTrainer(G, D, torch.randn(64, 3), device="cpu", **{**settings, "lr_d": 0.5})
    trainer.train(3)
    assert spy.checked == 3 * 5, "five critic steps per generator step, each checked"
    with pytest.raises(ValueError, match="clip"):
        WeightClipping(0)


def test_paper_settings():
    clip = clip_settings()
    assert (clip["optimizer"], clip["lr_d"], clip["n_critic"], clip["tricks"][0].clip) == \
        ("rmsprop", 5e-5, 5, 0.01)
    gp = gp_settings()
    assert (gp["lr_d"], gp["betas"], gp["n_critic"], gp["loss"]) == \
        (1e-4, (0.0, 0.9), 5, "wasserstein")
    assert [type(t) for t in gp["tricks"]] == [GradientPenalty] and gp["tricks"][0].weight == 10
    assert gp_settings(weight=5.0)["tricks"][0].weight == 5.0


def test_wasserstein_estimate_and_real_label():
    C = Critic((1, 28, 28), 4).train()
    real, fake = torch.rand(7, 1, 28, 28), -torch.rand(5, 1, 28, 28)
    est = wasserstein_estimate(C, real, fake, batch_size=3)
    with torch.no_grad():
        assert est == pytest.approx((C(real).mean() - C(fake).mean()).item(), rel=1e-5)
    assert C.training, "mode restored"
    with pytest.raises(ValueError, match="real_label"):
        GANTrainer(DCGANGenerator(8, (1, 28, 28), 4), C, real, loss="wasserstein",
                   real_label=0.9, device="cpu")


class Around(Trick):
    """Records D's loss as it reaches the next tricks, and the loop generator's state then."""

    def __init__(self):
        self.seen = []

    def d_loss(self, loss, ctx):
        self.seen.append((loss.detach().clone(), ctx.generator.get_state(), ctx.real.clone(),
                          ctx.fake.detach().clone()))
        return loss


def gp_trainer(seed=0, tricks=(), **kw):
    torch.manual_seed(seed)
    G, D = MLPGenerator(2, (2,), (16, 16)), MLPDiscriminator((2,), (16, 16), negative_slope=0.2)
    settings = {**gp_settings(weight=5.0), "batch_size": 8, "lr_g": 1e-3, "lr_d": 1e-3,
                "device": "cpu", **kw}
    settings["tricks"] = [*tricks[:1], *settings["tricks"], *tricks[1:]]
    return GANTrainer(G, D, ring, **settings)


def test_gradient_penalty_trick_adds_the_penalty_in_the_trainer():
    before, after = Around(), Around()
    trainer = gp_trainer(tricks=[before, after], n_critic=2)
    D = trainer.D
    d0 = clone_params(D)  # the critic of the first critic step
    trainer.train(1)
    assert len(before.seen) == len(after.seen) == 2
    (loss0, state, real, fake), (loss1, *_) = before.seen[0], after.seen[0]
    with torch.no_grad():
        for p, v in zip(D.parameters(), d0, strict=True):
            p.copy_(v)
        assert torch.allclose(loss0, get_loss("wasserstein").d_loss(D(real), D(fake)))
    gen = torch.Generator()
    gen.set_state(state)  # the loop's generator as the penalty found it
    penalty = gradient_penalty(D, real, fake, weight=5.0, generator=gen)
    assert penalty > 0
    assert torch.allclose(loss1 - loss0, penalty.detach(), rtol=1e-5, atol=1e-7)


def test_a_wgan_gp_run_draws_only_from_the_trainers_generator():
    runs = []
    for reseed in (1, 2):
        trainer = gp_trainer(seed=0)
        torch.manual_seed(reseed)  # the global RNG differs between the runs
        rng = torch.get_rng_state()
        trainer.train(6)
        assert torch.equal(torch.get_rng_state(), rng), "the run drew from the global RNG"
        runs.append(trainer)
    first, second = runs
    assert same(clone_params(first.G), clone_params(second.G))
    assert same(clone_params(first.D), clone_params(second.D))
    assert torch.equal(first.history["d_loss"], second.history["d_loss"])


def test_a_resumed_wgan_gp_run_equals_the_uninterrupted_run(tmp_path):
    path = tmp_path / "wgan_gp.pt"
    full = gp_trainer()
    full.train(12, check_every=5)

    def crash_at_9(ctx):
        if ctx.step == 9:
            raise Crash

    first = gp_trainer()
    with pytest.raises(Crash):
        first.train(12, snapshot_every=4, snapshot_path=path, callback=crash_at_9)
    assert checkpoints.load(path)["step"] == 8
    torch.manual_seed(999)
    resumed = gp_trainer(seed=5)
    resumed.train(12, snapshot_path=path, resume=True, check_every=5)
    assert same(clone_params(resumed.G), clone_params(full.G))
    assert same(clone_params(resumed.D), clone_params(full.D))
    assert torch.equal(resumed.history["d_loss"], full.history["d_loss"])


@pytest.mark.parametrize("weight,exc", [(-1.0, ValueError), (float("nan"), ValueError),
                                        (float("inf"), ValueError), ("10", TypeError)])
def test_bad_penalty_weight_names_the_argument(weight, exc):
    with pytest.raises(exc, match="weight"):
        GradientPenalty(weight)
    with pytest.raises(exc, match="weight"):
        gradient_penalty(tiny_critic(), torch.randn(3, 6).double(), torch.randn(3, 6).double(),
                         weight=weight)
    with pytest.raises(exc, match="weight"):
        gp_settings(weight=weight)


def test_the_shipped_wgan_gp_recipe_trains_with_the_gradient_penalty():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import pretrain_gans

    settings, tricks = pretrain_gans.trainer_settings(pretrain_gans.RUNS["wgan_gp"])
    assert pretrain_gans.RUNS["wgan_gp"]["trainer"]["loss"] == "wgan-gp"  # as the record says
    assert settings["loss"] == "wasserstein" and settings["betas"] == (0.0, 0.9)
    assert [type(t) for t in tricks] == [GradientPenalty] and tricks[0].weight == GP_WEIGHT
    settings, tricks = pretrain_gans.trainer_settings(pretrain_gans.RUNS["wgan_clip"])
    assert settings["loss"] == "wasserstein" and [type(t) for t in tricks] == [WeightClipping]

"""Wasserstein losses, the gradient penalty and weight clipping."""

import pytest
import torch
from torch import nn

from advlab.gan import GANTrainer, Trick, get_loss
from advlab.gan.losses import gradient_penalty
from advlab.gan.nets import Critic, DCGANDiscriminator, DCGANGenerator
from advlab.gan.wgan import WeightClipping, clip_settings, gp_settings, wasserstein_estimate
from advlab.models import MLPDiscriminator, MLPGenerator

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_critic():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 1),
                         nn.Flatten(0)).double()


def test_wasserstein_losses():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-2.0, 0.0])
    for name in ("wasserstein", "wgan-gp"):
        loss = get_loss(name)
        assert loss.d(real, fake, 1.0).item() == pytest.approx(-1 - 2)
        assert loss.g(fake).item() == pytest.approx(1.0)
        assert not loss.smoothable
    assert get_loss("wasserstein").penalty is None
    assert get_loss("wgan-gp").penalty is gradient_penalty


def test_gradient_penalty_against_finite_differences():
    D = tiny_critic()
    real, fake = torch.randn(4, 2, 3, dtype=torch.double), torch.randn(4, 2, 3, dtype=torch.double)
    eps = torch.tensor([0.0, 0.3, 0.7, 1.0], dtype=torch.double)
    got = gradient_penalty(D, real, fake, eps=eps)

    x_hat = eps.view(4, 1, 1) * real + (1 - eps.view(4, 1, 1)) * fake
    h = 1e-6
    grads = torch.zeros(4, 6, dtype=torch.double)
    with torch.no_grad():
        for j in range(6):
            step = torch.zeros(6, dtype=torch.double)
            step[j] = h
            step = step.view(2, 3)
            grads[:, j] = (D(x_hat + step) - D(x_hat - step)) / (2 * h)
    expected = 10 * ((grads.norm(dim=1) - 1) ** 2).mean()
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)

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


def test_gradient_penalty_of_a_unit_slope_critic_is_zero():
    w = torch.randn(6, dtype=torch.double)
    D = nn.Sequential(nn.Flatten(), nn.Linear(6, 1, bias=False), nn.Flatten(0)).double()
    with torch.no_grad():
        D[1].weight.copy_(w / w.norm())
    real, fake = torch.randn(5, 6, dtype=torch.double), torch.randn(5, 6, dtype=torch.double)
    assert gradient_penalty(D, real, fake).item() == pytest.approx(0, abs=1e-20)
    with torch.no_grad():
        D[1].weight.mul_(3)  # slope 3: penalty 10 * (3 - 1)^2 = 40 at every interpolate
    assert gradient_penalty(D, real, fake).item() == pytest.approx(40)


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
    assert (gp["lr_d"], gp["betas"], gp["n_critic"], gp["loss"]) == (1e-4, (0.0, 0.9), 5, "wgan-gp")


def test_wasserstein_estimate_and_real_label():
    C = Critic((1, 28, 28), 4).train()
    real, fake = torch.rand(7, 1, 28, 28), -torch.rand(5, 1, 28, 28)
    est = wasserstein_estimate(C, real, fake, batch_size=3)
    with torch.no_grad():
        assert est == pytest.approx((C(real).mean() - C(fake).mean()).item(), rel=1e-5)
    assert C.training, "mode restored"
    with pytest.raises(ValueError, match="real_label"):
        GANTrainer(DCGANGenerator(8, (1, 28, 28), 4), C, real, loss="wgan-gp", real_label=0.9,
                   device="cpu")

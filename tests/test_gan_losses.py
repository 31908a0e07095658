import math

import pytest
import torch

from advlab.gan import LOSSES, GANLoss, get_loss, register_loss
from advlab.gan.losses import bce_d_loss, non_saturating_g_loss, saturating_g_loss


def test_d_half_everywhere_gives_log_4():
    zeros = torch.zeros(7)  # logit 0 is D = 1/2
    for name in ("minimax", "non-saturating"):
        loss = get_loss(name)
        # -V(D, G) = -(log 1/2 + log 1/2) = log 4 = 2 log 2
        assert loss.d_loss(zeros, zeros).item() == pytest.approx(math.log(4))
    assert get_loss("minimax").g_loss(zeros).item() == pytest.approx(-math.log(2))
    assert get_loss("non-saturating").g_loss(zeros).item() == pytest.approx(math.log(2))


def test_losses_match_closed_forms_with_probabilities():
    gen = torch.Generator().manual_seed(0)
    lr, lf = 3 * torch.randn(50, generator=gen).double(), 3 * torch.randn(60, generator=gen).double()
    dr, df = torch.sigmoid(lr), torch.sigmoid(lf)
    value = dr.log().mean() + (1 - df).log().mean()  # V(D, G)
    assert torch.allclose(bce_d_loss(lr, lf), -value)
    assert torch.allclose(saturating_g_loss(lf), (1 - df).log().mean())
    assert torch.allclose(non_saturating_g_loss(lf), -df.log().mean())


def test_losses_are_stable_for_confident_logits():
    big = torch.tensor([-200.0, 200.0])
    for fn in (saturating_g_loss, non_saturating_g_loss):
        assert torch.isfinite(fn(big))
    assert torch.isfinite(bce_d_loss(big, big))


def test_saturating_gradient_vanishes_where_non_saturating_does_not():
    # D confidently rejects the fake (D(G(z)) = sigmoid(-10) ~ 4.5e-5)
    logit = torch.tensor([-10.0], requires_grad=True)
    (g_sat,) = torch.autograd.grad(saturating_g_loss(logit), logit)
    (g_ns,) = torch.autograd.grad(non_saturating_g_loss(logit), logit)
    assert abs(g_sat.item()) == pytest.approx(torch.sigmoid(torch.tensor(-10.0)).item(), rel=1e-4)
    assert abs(g_ns.item()) == pytest.approx(1.0, abs=1e-4)


def test_label_smoothing_changes_only_real_targets():
    gen = torch.Generator().manual_seed(1)
    lr = torch.randn(20, generator=gen, requires_grad=True)
    lf = torch.randn(20, generator=gen, requires_grad=True)
    plain, smooth = bce_d_loss(lr, lf), bce_d_loss(lr, lf, 0.9)
    fake_part = torch.nn.functional.softplus(lf).mean()
    real_part = (0.9 * torch.nn.functional.softplus(-lr)
                 + 0.1 * torch.nn.functional.softplus(lr)).mean()
    assert torch.allclose(smooth, real_part + fake_part)
    # the fake term and its gradient are the same with and without smoothing
    g_plain = torch.autograd.grad(plain, (lr, lf))
    g_smooth = torch.autograd.grad(smooth, (lr, lf))
    assert torch.equal(g_plain[1], g_smooth[1])
    assert not torch.allclose(g_plain[0], g_smooth[0])
    # smoothed: the optimal real logit is log(0.9 / 0.1), not +infinity
    logit = torch.tensor([math.log(9.0)], requires_grad=True)
    (grad,) = torch.autograd.grad(bce_d_loss(logit, torch.zeros(1), 0.9), logit)
    assert abs(grad.item()) < 1e-6


def test_registry():
    assert get_loss("saturating") is get_loss("minimax") is LOSSES["minimax"]
    assert isinstance(get_loss("non-saturating"), GANLoss)
    assert get_loss(LOSSES["minimax"]) is LOSSES["minimax"]
    with pytest.raises(ValueError, match="loss must be one of .*non-saturating"):
        get_loss("wassersteen")
    with pytest.raises(TypeError, match="loss"):
        get_loss(3)
    with pytest.raises(ValueError, match="already registered"):
        register_loss("minimax", bce_d_loss, saturating_g_loss)
    with pytest.raises(ValueError, match="name"):
        register_loss("", bce_d_loss, saturating_g_loss)


def test_register_a_new_loss(monkeypatch):
    monkeypatch.setattr("advlab.gan.losses.LOSSES", dict(LOSSES))
    from advlab.gan import losses

    critic = losses.register_loss("toy-wasserstein", lambda r, f, t=1.0: f.mean() - r.mean(),
                                  lambda f: -f.mean(), smoothable=False)
    assert losses.get_loss("toy-wasserstein") is critic
    assert critic.d_loss(torch.ones(3), torch.zeros(3)).item() == -1.0
    assert critic.g_loss(torch.ones(3)).item() == -1.0
    with pytest.raises(TypeError, match="callable"):
        losses.register_loss("broken", "not a loss", lambda f: f.mean())


def test_a_loss_has_one_spelling_per_callable():
    from dataclasses import fields

    assert [f.name for f in fields(GANLoss)] == ["name", "d_loss", "g_loss", "smoothable"]
    for loss in LOSSES.values():
        for old in ("d", "g", "penalty"):
            assert not hasattr(loss, old), f"{loss.name} still has .{old}"
    loss = get_loss("minimax")
    assert loss.d_loss is bce_d_loss and loss.g_loss is saturating_g_loss
    zeros = torch.zeros(3)
    assert loss.d_loss(zeros, zeros, 0.9).item() == pytest.approx(bce_d_loss(zeros, zeros, 0.9).item())
    with pytest.raises(TypeError):
        register_loss("with-penalty", bce_d_loss, saturating_g_loss, penalty=lambda *a: 0)

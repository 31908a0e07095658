"""success_rate: the course's one definition of attack success, and train_patch(objective=...)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advlab import attacks


def _threshold_model():
    """Class 1 when the mean pixel exceeds 0.5, else class 0: predictions are easy to steer."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[0.0] * 4, [1.0] * 4]))
        model[1].bias.copy_(torch.tensor([0.0, -2.0]))
    return model


def _images(*means):
    return torch.tensor(means).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()


def test_success_counts_only_digits_right_when_clean():
    model = _threshold_model().train()
    clean = _images(0.2, 0.2, 0.8, 0.8, 0.2)
    labels = torch.tensor([0, 0, 1, 1, 1])  # the last one the model already gets wrong
    adversarial = _images(0.8, 0.2, 0.2, 0.8, 0.2)  # flips digits 0 and 2; digit 4 stays wrong
    result = attacks.success_rate(model, clean, adversarial, labels)
    assert result == (0.5, 2, 4)
    assert model.training and all(p.grad is None for p in model.parameters())
    # counted over all digits, the wrong-from-the-start digit would add a third "success"
    wrong_after = (model(adversarial).argmax(1) != labels).sum().item()
    assert wrong_after == 3


def test_targeted_success_leaves_out_the_target_class_and_wrong_digits():
    model = _threshold_model()
    clean = _images(0.2, 0.8, 0.8, 0.2)
    labels = torch.tensor([0, 1, 0, 0])  # digit 1 is of the target class, digit 2 already reads 1
    adversarial = _images(0.8, 0.8, 0.8, 0.2)
    rate, fooled, counted = attacks.success_rate(model, clean, adversarial, labels, target=1)
    assert (rate, fooled, counted) == (0.5, 1, 2)


def test_success_rate_matches_transfer_matrix_diagonal():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    x = torch.rand(50, 1, 8, 8)
    y = torch.randint(0, 10, (50,))
    y[:25] = model(x[:25]).argmax(1).detach()  # half of them right when clean
    attack = lambda m, xs, ys: attacks.fgsm(m, xs, ys, 0.2)  # noqa: E731
    diagonal = attacks.transfer_matrix({"m": model}, x, y, attack)["m"]["m"]
    result = attacks.success_rate(model, x, attack(model, x, y), y)
    assert result.rate == pytest.approx(diagonal) and result.correct >= 25


def test_success_rate_with_no_qualifying_digit_is_nan():
    model = _threshold_model()
    clean = _images(0.2, 0.2)
    result = attacks.success_rate(model, clean, clean, torch.tensor([1, 1]))
    assert math.isnan(result.rate) and result.fooled == 0 and result.correct == 0


@pytest.mark.parametrize("kw,exc,match", [
    ({"adversarial": torch.rand(3, 1, 2, 2)}, ValueError, "adversarial"),
    ({"adversarial": 2 * torch.ones(2, 1, 2, 2)}, ValueError, "adversarial"),
    ({"clean": torch.rand(2, 2, 2)}, ValueError, "clean"),
    ({"labels": torch.tensor([0.0, 1.0])}, TypeError, "labels"),
    ({"target": -1}, ValueError, "target"),
])
def test_success_rate_refuses_bad_input(kw, exc, match):
    args = {"clean": torch.rand(2, 1, 2, 2), "adversarial": torch.rand(2, 1, 2, 2),
            "labels": torch.tensor([0, 1])}
    target = kw.pop("target", None)
    args.update(kw)
    with pytest.raises(exc, match=match):
        attacks.success_rate(_threshold_model(), args["clean"], args["adversarial"],
                             args["labels"], target=target)


# --- train_patch(objective=...) ------------------------------------------------------------------

def _unit_model():
    """Two outputs (0, u) with u a linear unit of the pixels: class 1 wins as soon as u > 0."""
    lin = nn.Linear(64, 1)
    with torch.no_grad():
        lin.weight.fill_(1.0)
        lin.bias.fill_(-8.0)

    class Unit(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, x):
            u = self.lin(x.flatten(1))[:, 0]
            return torch.stack([torch.zeros_like(u), u], 1)

    return Unit()


def test_train_patch_default_objective_is_the_cross_entropy():
    x = 0.1 * torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    kw = {"size": 3, "steps": 5, "batch_size": 8, "lr": 0.3}
    a = attacks.train_patch(_unit_model(), x, 1, generator=torch.Generator().manual_seed(1), **kw)
    b = attacks.train_patch(_unit_model(), x, 1, generator=torch.Generator().manual_seed(1),
                            objective=F.cross_entropy, **kw)
    assert torch.equal(a, b)


def test_linear_objective_keeps_pushing_where_the_cross_entropy_stops():
    # The unit saturates the cross-entropy once u is large; plain gradient steps on the patch's
    # logits stop there, while the linear objective -u keeps raising every pixel toward 1.
    x = torch.zeros(16, 1, 8, 8)
    kw = {"size": 4, "steps": 60, "batch_size": 8, "lr": 0.5}
    ce = attacks.train_patch(_unit_model(), x, 1, generator=torch.Generator().manual_seed(0), **kw)
    linear = attacks.train_patch(_unit_model(), x, 1, generator=torch.Generator().manual_seed(0),
                                 objective=lambda out, t: -out[:, 1].mean(), **kw)
    assert linear.min() > 0.99 and linear.sum() > ce.sum()
    with pytest.raises(TypeError, match="objective"):
        attacks.train_patch(_unit_model(), x, 1, objective="linear", **kw)

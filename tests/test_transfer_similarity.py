"""attacks.gradient_cosine and attacks.jacobian_augmentation (notebook 03, which similarity makes
transfer work): exact values on tiny linear models, modes and gradients left alone, argument errors."""

import math

import pytest
import torch
from torch import nn

from advlab import attacks


def _linear(weight, bias=None):
    """``x -> W x.flatten() + b`` with the given rows."""
    weight = torch.as_tensor(weight, dtype=torch.float32)
    model = nn.Sequential(nn.Flatten(), nn.Linear(weight.shape[1], weight.shape[0]))
    with torch.no_grad():
        model[1].weight.copy_(weight)
        model[1].bias.copy_(torch.zeros(weight.shape[0]) if bias is None else torch.as_tensor(bias))
    return model


def _images(n=5, hw=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, hw, hw, generator=g)


class _Constant(nn.Module):
    """Ignores its input: every input gradient is exactly zero."""

    def __init__(self):
        super().__init__()
        self.logits = nn.Parameter(torch.tensor([1.0, -1.0]))

    def forward(self, x):
        return self.logits.expand(len(x), 2) + 0 * x.flatten(1).sum(1, keepdim=True)


# --- gradient_cosine -----------------------------------------------------------------------------

def test_cosine_of_a_model_with_itself_is_one():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(48, 10))
    x = _images(6, hw=4)
    y = torch.tensor([0, 1, 2, 3, 4, 9])
    cos = attacks.gradient_cosine(model, model, x, y)
    assert cos.shape == (6,) and cos.dtype == torch.float64
    torch.testing.assert_close(cos, torch.ones(6, dtype=torch.float64), rtol=0, atol=1e-12)


def test_two_class_linear_models_give_the_cosine_of_their_weight_differences():
    # For two classes, grad_x CE = (p_1 - [y = 1]) (w_1 - w_0): always along w_1 - w_0, with a sign
    # that depends on y only. Two such models' gradients therefore have the cosine of their
    # weight differences, on every image and for either label.
    a = _linear([[0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 0.0, -1.0]], bias=[0.3, -0.2])
    b = _linear([[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 3.0, 1.0]], bias=[0.0, 0.5])
    d_a, d_b = torch.tensor([1.0, 2.0, 0.0, -1.0]), torch.tensor([0.0, 0.0, 3.0, 1.0])
    expected = (d_a @ d_b / (d_a.norm() * d_b.norm())).item()  # -1 / (sqrt(6) sqrt(10))
    x, y = _images(4), torch.tensor([0, 1, 0, 1])
    cos = attacks.gradient_cosine(a, b, x, y)
    torch.testing.assert_close(cos, torch.full((4,), expected, dtype=torch.float64), rtol=0, atol=1e-6)
    assert math.isclose(expected, -1 / math.sqrt(60), rel_tol=1e-6)


def test_swapped_classes_point_the_other_way_and_orthogonal_ones_give_zero():
    a = _linear([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    swapped = _linear([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    orthogonal = _linear([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    x, y = _images(3), torch.tensor([0, 1, 1])
    torch.testing.assert_close(attacks.gradient_cosine(a, swapped, x, y),
                               torch.full((3,), -1.0, dtype=torch.float64), rtol=0, atol=1e-6)
    torch.testing.assert_close(attacks.gradient_cosine(a, orthogonal, x, y),
                               torch.zeros(3, dtype=torch.float64), rtol=0, atol=1e-6)


def test_a_zero_gradient_gives_cosine_zero_not_nan():
    a = _linear([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    cos = attacks.gradient_cosine(a, _Constant(), _images(3), torch.tensor([0, 1, 0]))
    assert torch.equal(cos, torch.zeros(3, dtype=torch.float64))


def test_cosine_is_per_image_symmetric_and_leaves_modes_and_weights_alone():
    torch.manual_seed(1)
    a = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Dropout(0.5), nn.ReLU(), nn.Linear(8, 3))
    b = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    a.train()
    x, y = _images(5, hw=4), torch.tensor([0, 1, 2, 0, 1])
    cos = attacks.gradient_cosine(a, b, x, y)
    assert all(m.training for m in a.modules())
    assert all(p.grad is None for p in list(a.parameters()) + list(b.parameters()))
    torch.testing.assert_close(attacks.gradient_cosine(b, a, x, y), cos, rtol=0, atol=1e-12)
    one = torch.stack([attacks.gradient_cosine(a, b, x[i:i + 1], y[i:i + 1])[0] for i in range(5)])
    torch.testing.assert_close(one, cos, rtol=0, atol=1e-6)
    assert bool((cos.abs() <= 1).all())


def test_cosine_margin_loss_on_two_classes_matches_the_weight_differences():
    # margin = z_other - z_y: its gradient is -(w_1 - w_0) for y = 1 and +(w_1 - w_0) for y = 0.
    a = _linear([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    b = _linear([[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    cos = attacks.gradient_cosine(a, b, _images(2), torch.tensor([0, 1]), loss="margin")
    torch.testing.assert_close(cos, torch.full((2,), 1 / math.sqrt(2), dtype=torch.float64),
                               rtol=0, atol=1e-6)


def test_cosine_argument_errors_name_the_argument():
    a = _linear([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    x, y = _images(2), torch.tensor([0, 1])
    with pytest.raises(TypeError, match="model_a"):
        attacks.gradient_cosine(lambda t: t, a, x, y)
    with pytest.raises(TypeError, match="model_b"):
        attacks.gradient_cosine(a, "model", x, y)
    with pytest.raises(ValueError, match="loss"):
        attacks.gradient_cosine(a, a, x, y, loss="hinge")
    with pytest.raises(TypeError, match="labels"):
        attacks.gradient_cosine(a, a, x, y.float())
    with pytest.raises(ValueError, match="labels"):
        attacks.gradient_cosine(a, a, x, y[:1])
    with pytest.raises(ValueError, match="images"):
        attacks.gradient_cosine(a, a, x * 3, y)


# --- jacobian_augmentation -------------------------------------------------------------------

def test_augmentation_steps_lambda_along_the_sign_of_the_label_logits_gradient():
    # For z = W x + b, grad_x z_y = W[y]: the new image is clip(x + lam * sign(W[y]), 0, 1),
    # each image with the row of its own label; a zero weight leaves its pixel unchanged.
    weight = [[1.0, -2.0, 0.0, 0.5], [-1.0, 0.0, 3.0, 2.0], [0.0, 0.0, -1.0, -1.0]]
    model = _linear(weight, bias=[0.1, 0.2, 0.3])
    x = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.95, 0.02, 0.5, 0.0],
                      [0.5, 0.5, 0.05, 1.0]]).view(3, 1, 2, 2)
    y = torch.tensor([0, 1, 2])
    new = attacks.jacobian_augmentation(model, x, y, 0.1)
    expected = torch.tensor([[0.6, 0.4, 0.5, 0.6], [0.85, 0.02, 0.6, 0.1],
                             [0.5, 0.5, 0.0, 0.9]]).view(3, 1, 2, 2)
    torch.testing.assert_close(new, expected, rtol=0, atol=1e-6)
    sign = torch.tensor(weight)[y].sign().view(3, 1, 2, 2)
    assert torch.equal(new, (x + 0.1 * sign).clamp(0, 1))


def test_augmentation_lambda_zero_keeps_the_images_and_negative_lambda_steps_back():
    model = _linear([[1.0, -1.0, 1.0, -1.0], [0.0, 1.0, 0.0, 0.0]])
    x, y = torch.full((2, 1, 2, 2), 0.5), torch.tensor([0, 0])
    assert torch.equal(attacks.jacobian_augmentation(model, x, y, 0.0), x)
    back = attacks.jacobian_augmentation(model, x, y, -0.25)
    torch.testing.assert_close(back, torch.tensor([0.25, 0.75, 0.25, 0.75]).view(1, 1, 2, 2).expand(2, 1, 2, 2))


def test_augmentation_leaves_inputs_modes_and_weights_alone():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.Dropout(0.5),
                          nn.Flatten(), nn.Linear(32, 10))
    model.train()
    x = _images(4, hw=4)
    before = x.clone()
    y = torch.tensor([1, 3, 5, 7])
    new = attacks.jacobian_augmentation(model, x, y, 0.1)
    assert torch.equal(x, before) and not new.requires_grad
    assert all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert new.shape == x.shape and float((new - x).abs().max()) <= 0.1 + 1e-7
    assert new.min() >= 0 and new.max() <= 1
    one = torch.cat([attacks.jacobian_augmentation(model, x[i:i + 1], y[i:i + 1], 0.1) for i in range(4)])
    assert torch.equal(one, new)


def test_augmentation_argument_errors_name_the_argument():
    model = _linear([[1.0, -1.0, 1.0, -1.0], [0.0, 1.0, 0.0, 0.0]])
    x, y = _images(2), torch.tensor([0, 1])
    with pytest.raises(TypeError, match="substitute"):
        attacks.jacobian_augmentation(lambda t: t, x, y, 0.1)
    with pytest.raises(TypeError, match="lam"):
        attacks.jacobian_augmentation(model, x, y, "0.1")
    with pytest.raises(ValueError, match="lam"):
        attacks.jacobian_augmentation(model, x, y, float("nan"))
    with pytest.raises(ValueError, match="labels"):
        attacks.jacobian_augmentation(model, x, torch.tensor([0, 2]), 0.1)
    with pytest.raises(TypeError, match="labels"):
        attacks.jacobian_augmentation(model, x, y.float(), 0.1)
    with pytest.raises(ValueError, match="images"):
        attacks.jacobian_augmentation(model, x[0], y, 0.1)

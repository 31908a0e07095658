"""DeepFool: against torchattacks (test oracle), the closed form on an affine model, and the
attack contracts (mode, gradients, range, bad arguments)."""

import pytest
import torch
from torch import nn

from advlab import attacks


def small_cnn(seed: int, dtype=torch.float64) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 16),
                          nn.ReLU(), nn.Linear(16, 10)).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=dtype) * 0.5)
    return model.eval()


def batch(seed: int, n: int = 24, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g, dtype=dtype)
    return x


@pytest.mark.parametrize("seed", [0, 1])
def test_deepfool_matches_torchattacks(seed):
    torchattacks = pytest.importorskip("torchattacks")
    model = small_cnn(seed)
    x = batch(seed, 10)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:3] = (y[:3] + 1) % 10  # three digits already misclassified: left as they are
    ours = attacks.deepfool(model, x, y, steps=15, overshoot=0.02, box_aware=False)
    theirs = torchattacks.DeepFool(model, steps=15, overshoot=0.02)(x, y)
    assert torch.allclose(ours, theirs, atol=1e-10, rtol=0)
    assert torch.equal(ours[:3], x[:3])
    with torch.no_grad():
        assert (model(ours).argmax(1) != y).float().mean() > 0.5


def test_box_aware_deepfool_is_the_published_step_inside_the_box_and_gets_past_the_clip():
    torchattacks = pytest.importorskip("torchattacks")
    model = small_cnn(6)
    inside = 0.2 + 0.6 * batch(6)  # no pixel at 0 or 1: the published step exactly
    with torch.no_grad():
        y = model(inside).argmax(1)
    one = attacks.deepfool(model, inside, y, steps=1)
    assert torch.allclose(one, torchattacks.DeepFool(model, steps=1)(inside, y), atol=1e-10)
    digits = (batch(7, 48) - 0.5).clamp(0, 1) * 2  # a third of the pixels black, some white
    with torch.no_grad():
        y = model(digits).argmax(1)
    fooled = {}
    for aware in (False, True):
        adv = attacks.deepfool(model, digits, y, steps=50, box_aware=aware)
        with torch.no_grad():
            fooled[aware] = (model(adv).argmax(1) != y).float().mean().item()
    assert fooled[True] == 1.0 and fooled[True] > fooled[False]


def test_deepfool_on_an_affine_model_steps_to_the_nearest_boundary_in_one_step():
    g = torch.Generator().manual_seed(3)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(16, 4)).double()
    with torch.no_grad():
        lin[1].weight.copy_(torch.randn(4, 16, generator=g, dtype=torch.float64) * 0.1)
        lin[1].bias.zero_()
    x = 0.4 + 0.2 * torch.rand(5, 1, 4, 4, generator=g, dtype=torch.float64)
    with torch.no_grad():
        z = lin(x)
    y = z.argmax(1)
    W = lin[1].weight
    expected = []
    for i in range(len(x)):
        d = [(z[i, y[i]] - z[i, k]).abs() / (W[k] - W[y[i]]).norm() for k in range(4) if k != y[i]]
        expected.append(min(d))
    expected = torch.stack(expected)
    adv = attacks.deepfool(lin, x, y, steps=1, overshoot=0.0)
    dist = (adv - x).flatten(1).norm(dim=1)
    assert torch.allclose(dist, expected, rtol=1e-10)  # exactly onto the nearest boundary
    adv = attacks.deepfool(lin, x, y, steps=1, overshoot=0.02)
    assert torch.allclose((adv - x).flatten(1).norm(dim=1), 1.02 * expected, rtol=1e-10)
    with torch.no_grad():
        assert (lin(adv).argmax(1) != y).all()


def test_deepfool_ignores_the_scale_of_the_logits():
    model = small_cnn(4)
    hot = nn.Sequential(model, type("Scale", (nn.Module,), {"forward": lambda self, z: 100 * z})())
    x = batch(4, 12)
    with torch.no_grad():
        y = model(x).argmax(1)
    assert torch.allclose(attacks.deepfool(model, x, y), attacks.deepfool(hot, x, y), atol=1e-9)


def test_deepfool_keeps_the_contracts():
    model = small_cnn(5, torch.float32).train()
    x = batch(5, 8, torch.float32)
    y = torch.zeros(8, dtype=torch.long)
    adv = attacks.deepfool(model, x, y, steps=3)
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert adv.min() >= 0 and adv.max() <= 1 and adv.shape == x.shape
    with pytest.raises(ValueError, match="steps"):
        attacks.deepfool(model, x, y, steps=0)
    with pytest.raises(ValueError, match="overshoot"):
        attacks.deepfool(model, x, y, overshoot=-0.1)
    with pytest.raises(TypeError, match="box_aware"):
        attacks.deepfool(model, x, y, box_aware=1)
    with pytest.raises((TypeError, ValueError), match="labels"):
        attacks.deepfool(model, x, y[:3])

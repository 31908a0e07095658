import math

import pytest
import torch
from torch import nn

from advlab import checks


@pytest.mark.parametrize("value", [1.0, "3", True, None])
def test_check_int_wrong_type_is_a_type_error(value):
    with pytest.raises(TypeError, match="steps must be an int"):
        checks.check_int(value, "steps")


def test_check_int_bounds():
    assert checks.check_int(3, "k") == 3
    assert checks.check_int(0, "k", low=0) == 0
    with pytest.raises(ValueError, match=r"k must be an int >= 1, got 0"):
        checks.check_int(0, "k")
    with pytest.raises(ValueError, match=r"k must be an int in \[0, 5\], got 6"):
        checks.check_int(6, "k", low=0, high=5)


@pytest.mark.parametrize("value", ["0.1", True, None, torch.tensor([1.0, 2.0])])
def test_check_number_wrong_type_is_a_type_error(value):
    with pytest.raises(TypeError, match="lr must be a number"):
        checks.check_number(value, "lr")


@pytest.mark.parametrize("value", [math.nan, math.inf, -0.1, 0.0])
def test_check_number_bad_values(value):
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        checks.check_number(value, "lr", low=0, strict=True)


def test_check_number_accepts_ints_and_ranges():
    assert checks.check_number(2, "x") == 2.0 and isinstance(checks.check_number(2, "x"), float)
    assert checks.check_number(1.0, "p", low=0, high=1, strict=True) == 1.0
    with pytest.raises(ValueError, match=r"p must be a finite number in \(0, 1\]"):
        checks.check_number(1.5, "p", low=0, high=1, strict=True)


def test_check_choice_and_tensor():
    assert checks.check_choice("ce", "loss", ("ce", "margin")) == "ce"
    with pytest.raises(ValueError, match="loss must be one of 'ce', 'margin', got 'l2'"):
        checks.check_choice("l2", "loss", ("ce", "margin"))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        checks.check_tensor([1.0], "x")
    with pytest.raises(ValueError, match="x must be 2-D"):
        checks.check_tensor(torch.zeros(3), "x", dim=2)


def test_check_images_rules():
    ok = torch.rand(2, 1, 4, 4)
    assert checks.check_images(ok) is ok
    with pytest.raises(TypeError, match="images must be a torch.Tensor"):
        checks.check_images(ok.numpy())
    with pytest.raises(TypeError, match="floating-point"):
        checks.check_images((ok * 255).to(torch.uint8))
    with pytest.raises(ValueError, match=r"4-D \(N, C, H, W\)"):
        checks.check_images(ok[0])
    for bad in (ok * 2 - 1, torch.full((1, 1, 2, 2), math.nan)):
        with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
            checks.check_images(bad, "x")
    assert checks.check_images(ok * 2 - 1, unit_range=False) is not None


def test_check_labels():
    with pytest.raises(TypeError, match="int64"):
        checks.check_labels(torch.zeros(3), 3)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        checks.check_labels(torch.zeros(3, dtype=torch.long), 4)


def _net():
    return nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.BatchNorm1d(4))


def test_eval_mode_restores_every_flag_even_on_error():
    net = _net()
    net.train()
    net[1].eval()  # a mixed state: the top in training, one submodule not
    before = [m.training for m in net.modules()]
    with pytest.raises(RuntimeError, match="boom"), checks.eval_mode(net):
        assert not any(m.training for m in net.modules())
        raise RuntimeError("boom")
    assert [m.training for m in net.modules()] == before


def test_batched_equals_one_pass_without_grad_and_restores_modes():
    torch.manual_seed(0)
    net = _net()
    net.train()
    x = torch.randn(23, 3)
    whole = checks.batched(net, x, batch_size=5, models=[net])
    assert net.training and not whole.requires_grad
    net.eval()
    torch.testing.assert_close(whole, net(x).detach())
    pairs = checks.batched(lambda a, b: a + b, x, 2 * x, batch_size=4)
    torch.testing.assert_close(pairs, 3 * x)
    with pytest.raises(ValueError, match="same length"):
        checks.batched(lambda a, b: a, x, x[:3])
    with pytest.raises(TypeError, match="batch_size"):
        checks.batched(net, x, batch_size=2.0)


def test_batched_empty_input_keeps_the_output_shape():
    """No rows (e.g. no digit that two models both classify correctly) gives (0, classes) logits."""
    from advlab.models import make_classifier
    from advlab.train import predict

    net = _net()
    assert checks.batched(net, torch.randn(0, 3), models=[net]).shape == (0, 4)
    logits = predict(make_classifier("cnn"), torch.rand(0, 1, 28, 28))
    assert logits.shape == (0, 10) and logits.argmax(1).shape == (0,)


def test_module_device():
    assert checks.module_device(nn.Linear(2, 2)) == torch.device("cpu")
    assert checks.module_device(nn.Identity()) == torch.device("cpu")

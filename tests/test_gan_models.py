import pytest
import torch

from advlab.models import MLPDiscriminator, MLPGenerator, to_signed, to_unit


def test_generator_shapes_and_range():
    g = MLPGenerator(16, (1, 28, 28), (32, 32), tanh=True)
    x = g(torch.randn(5, 16) * 100)
    assert x.shape == (5, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    toy = MLPGenerator()  # 2-D data: no tanh, can leave [-1, 1]
    assert toy.z_dim == 2 and toy(torch.randn(4, 2)).shape == (4, 2)
    assert not any(isinstance(m, torch.nn.Tanh) for m in toy.modules())
    bn = MLPGenerator(batch_norm=True)
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in bn.modules()) == 3


def test_range_conversion_is_one_named_place():
    x = torch.rand(3, 1, 4, 4)
    assert torch.allclose(to_unit(to_signed(x)), x)
    assert to_signed(torch.tensor(0.0)) == -1 and to_unit(torch.tensor(1.0)) == 1


def test_discriminator_logits_features_and_packing():
    d = MLPDiscriminator((1, 28, 28), (64, 32), negative_slope=0.2)
    x = torch.rand(6, 1, 28, 28)
    assert d(x).shape == (6,) and d.features(x).shape == (6, 32)
    packed = MLPDiscriminator((2,), (16,), pack=2)
    assert packed.body[0].in_features == 4 and packed(torch.randn(8, 2)).shape == (4,)
    with pytest.raises(ValueError, match="pack"):
        packed(torch.randn(5, 2))
    with pytest.raises(ValueError, match="pack"):
        MLPDiscriminator(pack=0)

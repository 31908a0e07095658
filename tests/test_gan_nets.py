"""DCGAN / AC-GAN / critic networks, and the AC-GAN class loss."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advlab.data import load_images
from advlab.gan import GANTrainer
from advlab.gan.acgan import ACGANClassLoss, class_loss, nll_on_softmax
from advlab.gan.nets import (
    ACGANDiscriminator,
    ACGANGenerator,
    Critic,
    DCGANDiscriminator,
    DCGANGenerator,
    has_batch_norm,
    start_size,
)
from advlab.models import to_signed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import fixtures  # noqa: E402  (tools/fixtures.py: torchvision-format writers)

SHAPES = [(1, 28, 28), (3, 32, 32)]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_start_sizes():
    assert start_size(28) == (7, 2) and start_size(32) == (4, 3) and start_size(64) == (4, 4)


@pytest.mark.parametrize("shape", SHAPES)
def test_dcgan_shapes_and_the_architecture_rules(shape):
    G, D = DCGANGenerator(16, shape, width=8), DCGANDiscriminator(shape, width=8)
    x = G(torch.randn(5, 16))
    assert x.shape == (5, *shape) and x.min() >= -1 and x.max() <= 1
    assert D(x).shape == (5,) and D.features(x).shape == (5, D.feature_dim)
    for net in (G, D):  # strided convolutions, no pooling, no fully connected hidden layer
        kinds = {type(m) for m in net.modules()}
        assert not kinds & {nn.MaxPool2d, nn.AvgPool2d, nn.Linear}
        assert nn.BatchNorm2d in kinds
    assert isinstance(G.net[-1], nn.Tanh) and any(isinstance(m, nn.ReLU) for m in G.modules())
    assert any(isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.2 for m in D.modules())
    assert not isinstance(D.body[1], nn.BatchNorm2d), "no batch norm on D's input layer"
    strides = [m.stride[0] for m in D.modules() if isinstance(m, nn.Conv2d)][:-1]
    assert strides == [2] * len(strides)


def test_course_sized_generators_are_small():
    for G in (DCGANGenerator(64, (1, 28, 28), 32), ACGANGenerator(64, (1, 28, 28), 32),
              DCGANGenerator(100, (3, 32, 32), 64)):
        assert sum(p.numel() for p in G.parameters()) * 4 < 5e6


@pytest.mark.parametrize("shape", SHAPES)
def test_critic_has_no_batch_norm_and_no_sigmoid(shape):
    C = Critic(shape, width=8)
    assert not has_batch_norm(C) and has_batch_norm(DCGANDiscriminator(shape, 8))
    assert not any(isinstance(m, nn.Sigmoid) for m in C.modules())
    out = C(torch.randn(3, *shape) * 50)
    assert out.shape == (3,)
    layer = Critic(shape, 8, norm="layer")
    assert any(isinstance(m, nn.LayerNorm) for m in layer.modules()) and not has_batch_norm(layer)


@pytest.mark.parametrize("shape", SHAPES)
def test_acgan_networks(shape):
    G, D = ACGANGenerator(16, shape, 8, classes=10), ACGANDiscriminator(shape, 8, classes=10)
    z = torch.randn(12, 16)
    x = G(z, torch.arange(12) % 10)
    assert torch.equal(G.eval()(z), G(z, torch.arange(12) % 10)), "labels=None cycles classes"
    adv, cls = D(x)
    assert adv.shape == (12,) and cls.shape == (12, 10)
    # the adversarial head is the plain DCGAN discriminator on the shared trunk
    assert torch.allclose(adv, D.trunk(x))
    a, b = G(z[:2], torch.tensor([3, 3])), G(z[:2], torch.tensor([4, 4]))
    assert not torch.allclose(a, b), "the label must change the image"


@pytest.mark.parametrize("make, kwargs, exc, match", [
    (DCGANGenerator, {"image_shape": (1, 28)}, ValueError, "image_shape"),
    (DCGANGenerator, {"image_shape": (1, 28, 30)}, ValueError, "image_shape"),
    (DCGANGenerator, {"z_dim": 0}, ValueError, "z_dim"),
    (DCGANGenerator, {"width": -1}, ValueError, "width"),
    (DCGANDiscriminator, {"norm": "group"}, ValueError, "norm"),
    (ACGANGenerator, {"classes": 0}, ValueError, "classes"),
])
def test_bad_settings(make, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        make(**kwargs)


def test_bad_inputs():
    G, D = ACGANGenerator(8, (1, 28, 28), 4), DCGANDiscriminator((1, 28, 28), 4)
    with pytest.raises(ValueError, match="z must have shape"):
        G.body(torch.randn(2, 9))
    with pytest.raises(ValueError, match="labels must lie"):
        G(torch.randn(2, 8), torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="labels must be int64"):
        G(torch.randn(2, 8), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="x must have shape"):
        D(torch.randn(2, 3, 32, 32))


# --- the AC-GAN class loss --------------------------------------------------------------------

def test_class_loss_is_cross_entropy_on_logits():
    logits, labels = torch.randn(16, 10) * 3, torch.randint(10, (16,))
    assert torch.allclose(class_loss(logits, labels), F.cross_entropy(logits, labels))
    manual = -(logits.log_softmax(1)[torch.arange(16), labels]).mean()
    assert torch.allclose(class_loss(logits, labels), manual)
    with pytest.raises(ValueError, match="logits"):
        class_loss(logits[0], labels)


def test_nll_on_softmax_is_the_negative_probability_bug():
    logits = torch.randn(16, 10, requires_grad=True)
    labels = torch.randint(10, (16,))
    bug = nll_on_softmax(logits, labels)
    p = logits.softmax(1)[torch.arange(16), labels]
    assert torch.allclose(bug, -p.mean()) and -1 <= bug.item() <= 0
    # a confidently wrong prediction: cross-entropy pushes hard, the bug barely at all
    wrong = torch.zeros(1, 10)
    wrong[0, 1] = 12.0
    wrong.requires_grad_(True)
    (g_bug,) = torch.autograd.grad(nll_on_softmax(wrong, torch.tensor([0])), wrong)
    (g_ce,) = torch.autograd.grad(class_loss(wrong, torch.tensor([0])), wrong)
    assert g_bug.abs().max() < 1e-4 < 0.5 < g_ce.abs().max()


def _acgan_trainer(data, **kw):
    torch.manual_seed(0)
    G, D = ACGANGenerator(8, (1, 28, 28), 4), ACGANDiscriminator((1, 28, 28), 4)
    return GANTrainer(G, D, data, batch_size=6, device="cpu", tricks=[ACGANClassLoss(**kw)])


@pytest.mark.parametrize("d_on_fake", [False, True])
def test_acgan_trick_adds_the_class_losses(d_on_fake):
    x = torch.rand(20, 1, 28, 28) * 2 - 1
    y = torch.arange(20) % 10
    seen = {}
    trainer = _acgan_trainer((x, y), d_on_fake=d_on_fake)
    trainer.train(1, callback=lambda ctx: seen.update(ctx=ctx))
    ctx = seen["ctx"]
    z, labels = ctx.z
    assert labels.shape == (6,) and labels.dtype == torch.long
    expected_d = F.softplus(-ctx.d_real[0]).mean() + F.softplus(ctx.d_fake[0]).mean() \
        + F.cross_entropy(ctx.d_real[1], ctx.real_labels)
    if d_on_fake:
        expected_d = expected_d + F.cross_entropy(ctx.d_fake[1], labels)
    assert torch.allclose(ctx.d_loss, expected_d)
    expected_g = F.softplus(-ctx.d_fake_g[0]).mean() + F.cross_entropy(ctx.d_fake_g[1], labels)
    assert torch.allclose(ctx.g_loss, expected_g)


def test_acgan_trick_refuses_unlabelled_data_and_single_head_d():
    with pytest.raises(ValueError, match="labelled"):
        _acgan_trainer(torch.rand(20, 1, 28, 28)).train(1)
    torch.manual_seed(0)
    trainer = GANTrainer(ACGANGenerator(8, (1, 28, 28), 4), DCGANDiscriminator((1, 28, 28), 4),
                         (torch.rand(20, 1, 28, 28), torch.arange(20) % 10), batch_size=4,
                         device="cpu", tricks=[ACGANClassLoss()])
    with pytest.raises(TypeError, match="class logits"):
        trainer.train(1)
    with pytest.raises(ValueError, match="classes"):
        ACGANClassLoss(classes=1)
    with pytest.raises(TypeError, match="loss"):
        ACGANClassLoss(loss="ce")


# --- full profile: CIFAR-10-shaped data from fixture files, no network ------------------------

@pytest.fixture
def cifar_files(tmp_data):
    rng = np.random.default_rng(0)
    split = [(rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n))
             for n in (40, 8)]
    return fixtures.write_cifar10(tmp_data, *split)


def test_cifar10_step_through_the_loop(cifar_files, no_network):
    train = load_images("cifar10", "train", profile="full")
    assert train.images.shape == (40, 3, 32, 32)
    torch.manual_seed(0)
    G, D = ACGANGenerator(16, (3, 32, 32), 8), ACGANDiscriminator((3, 32, 32), 8)
    trainer = GANTrainer(G, D, (to_signed(train.images), train.labels), batch_size=4,
                         device="cpu", tricks=[ACGANClassLoss()])
    history = trainer.train(2)
    assert torch.isfinite(history["d_loss"]).all() and trainer.sample(3).shape == (3, 3, 32, 32)


@pytest.mark.parametrize("shape", SHAPES)
def test_every_dcgan_family_network_starts_from_dcgan_init(shape):
    torch.manual_seed(0)
    nets = [DCGANGenerator(16, shape, 8), DCGANDiscriminator(shape, 8), Critic(shape, 8),
            Critic(shape, 8, norm="layer"), ACGANGenerator(16, shape, 8),
            ACGANDiscriminator(shape, 8)]
    for net in nets:
        for m in net.modules():
            if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
                w = m.weight.detach()
                # N(0, 0.02^2): the sample std of n draws is within 0.02 * (1 +- 6 / sqrt(2n))
                assert abs(float(w.std()) - 0.02) < 0.02 * 6 / (2 * w.numel()) ** 0.5, \
                    (type(net).__name__, m)
                assert m.bias is None or float(m.bias.detach().abs().max()) == 0.0
            elif isinstance(m, nn.BatchNorm2d):
                assert abs(float(m.weight.detach().mean()) - 1) < 6 * 0.02 / m.weight.numel() ** 0.5
                assert float(m.bias.detach().abs().max()) == 0.0
    # PyTorch's own initialisation on request: the first layer's fan-in is C * 16, so its bound
    # 1 / sqrt(16 C) (0.25 or 0.144) is far above DCGAN's 0.02
    D = DCGANDiscriminator(shape, 8, init="default")
    bound = 1 / (16 * shape[0]) ** 0.5
    assert float(D.body[0].weight.detach().abs().max()) > 0.5 * bound
    assert float(D.body[0].weight.detach().abs().max()) <= bound
    for cls in (DCGANGenerator, DCGANDiscriminator, Critic, ACGANGenerator, ACGANDiscriminator):
        with pytest.raises(ValueError, match="init"):
            cls(init="paper")


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_pooling_discriminator_has_the_same_maps_and_weights(shape, norm):
    strided = DCGANDiscriminator(shape, 8, norm=norm)
    pooled = DCGANDiscriminator(shape, 8, norm=norm, downsample="pool")
    kinds = {type(m) for m in pooled.modules()}
    assert nn.MaxPool2d in kinds and nn.MaxPool2d not in {type(m) for m in strided.modules()}
    assert all(m.stride == (1, 1) for m in pooled.body.modules() if isinstance(m, nn.Conv2d))
    convs = [[tuple(m.weight.shape) for m in net.modules() if isinstance(m, nn.Conv2d)]
             for net in (strided, pooled)]
    assert convs[0] == convs[1]  # same kernels and channels: only the downsampling differs
    x = torch.randn(5, *shape)
    assert pooled(x).shape == (5,) and pooled.features(x).shape == strided.features(x).shape
    # max pooling passes the gradient to one input of each 2x2 window
    single = torch.zeros(1, *shape, requires_grad=True)
    pooled.eval()(single).sum().backward()
    assert torch.isfinite(single.grad).all()
    with pytest.raises(ValueError, match="downsample"):
        DCGANDiscriminator(shape, 8, downsample="avg")

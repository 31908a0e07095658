"""The published CIFAR-10 AC-GAN setting of notebook 12's full profile (advlab.gan.acgan)."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advlab.gan import GANTrainer
from advlab.gan.acgan import (
    ACGANClassLoss,
    AuthorACGANDiscriminator,
    AuthorACGANGenerator,
    DiscriminatorClassifier,
    UniformActivationNoise,
    author_setting,
    class_loss,
    nll_on_softmax,
)
from advlab.gan.losses import get_loss
from advlab.models import to_signed

pytestmark = pytest.mark.usefixtures("one_thread")


def test_generator_reads_z_and_a_one_hot_label_and_draws_32x32_colour_images():
    G = AuthorACGANGenerator()
    assert (G.z_dim, G.classes) == (100, 10)
    linear = G.net[0]
    assert isinstance(linear, nn.Linear) and (linear.in_features, linear.out_features) == (110, 384)
    convs = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0])
            for m in convs] == [(384, 192, 6, 2, 0), (192, 96, 5, 2, 0), (96, 3, 4, 2, 0)]
    sides = []
    hooks = [m.register_forward_hook(lambda m, i, o: sides.append(o.shape[-1])) for m in convs]
    x = G(torch.randn(4, 100), torch.tensor([0, 3, 9, 3]))
    for h in hooks:
        h.remove()
    assert sides == [6, 15, 32] and x.shape == (4, 3, 32, 32)
    assert -1 <= x.min() and x.max() <= 1 and isinstance(G.net[-1], nn.Tanh)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in G.modules()) == 2


def test_generator_input_is_z_concatenated_with_the_one_hot_label():
    G = AuthorACGANGenerator(z_dim=4, classes=3)
    seen = []
    G.net[0].register_forward_hook(lambda m, i, o: seen.append(i[0]))
    z = torch.randn(3, 4)
    G(z, torch.tensor([2, 0, 1]))
    assert torch.equal(seen[0], torch.cat([z, torch.eye(3)[[2, 0, 1]]], 1))
    G(z)  # no labels: the classes in turn
    assert torch.equal(seen[1][:, 4:], torch.eye(3))


def test_discriminator_layers_noise_and_dropout_follow_the_published_network():
    D = AuthorACGANDiscriminator()
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0])
            for m in convs] == [(3, 16, 3, 2, 1), (16, 32, 3, 1, 1), (32, 64, 3, 2, 1),
                                (64, 128, 3, 1, 1), (128, 256, 3, 2, 1), (256, 512, 3, 1, 1)]
    kinds = [type(m) for m in D.body]
    blocks, block = [], []
    for kind in kinds:  # split the body at each convolution
        if kind is nn.Conv2d and block:
            blocks.append(block)
            block = []
        block.append(kind)
    blocks.append(block)
    tail = [nn.LeakyReLU, UniformActivationNoise, nn.Dropout]
    assert blocks[0] == [nn.Conv2d, *tail], "no batch norm on the first block"
    assert all(b == [nn.Conv2d, nn.BatchNorm2d, *tail] for b in blocks[1:]) and len(blocks) == 6
    assert all(m.negative_slope == 0.2 for m in D.modules() if isinstance(m, nn.LeakyReLU))
    assert [m.scale for m in D.modules() if isinstance(m, UniformActivationNoise)] == [0.1] * 6
    assert [m.p for m in D.modules() if isinstance(m, nn.Dropout)] == [0.5] * 6
    assert (D.head.in_features, D.head.out_features) == (512 * 4 * 4, 11)
    adversarial, logits = D(torch.rand(5, 3, 32, 32) * 2 - 1)
    assert adversarial.shape == (5,) and logits.shape == (5, 10)


def test_both_networks_start_from_n_0_001_with_zero_bias_and_unit_batch_norm():
    torch.manual_seed(0)
    for net in (AuthorACGANGenerator(), AuthorACGANDiscriminator()):
        weights = torch.cat([m.weight.detach().flatten() for m in net.modules()
                             if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))])
        assert abs(float(weights.std()) - 0.01) < 2e-4 and abs(float(weights.mean())) < 2e-4
        for m in net.modules():
            if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
                assert not m.bias.any()
            if isinstance(m, nn.BatchNorm2d):
                assert (m.weight == 1).all() and not m.bias.any()


@pytest.mark.parametrize("training", [True, False])
def test_activation_noise_is_uniform_on_0_to_scale_with_mean_scale_over_2(training):
    noise = UniformActivationNoise(0.1).train(training)
    x = torch.full((400_000,), 3.0)
    added = noise(x) - x
    assert 0 <= float(added.min()) and float(added.max()) < 0.1 + 1e-6
    assert abs(float(added.mean()) - 0.05) < 5e-4, "mean 0.05: a shift, not zero-mean noise"
    assert abs(float(added.var()) - 0.1 ** 2 / 12) < 5e-5
    assert (added > 0.09).float().mean() > 0.09  # spread over the whole interval
    assert not torch.equal(noise(x), noise(x)), "drawn afresh at every call"


def test_activation_noise_is_never_annealed_and_zero_scale_is_the_identity():
    noise = UniformActivationNoise(0.1)
    assert not list(noise.parameters()) and not list(noise.buffers())
    x = torch.zeros(100_000)
    means = [float(noise(x).mean()) for _ in range(50)]
    assert max(means) - min(means) < 2e-3 and abs(means[-1] - 0.05) < 2e-3
    assert UniformActivationNoise(0.0)(x) is x
    assert "scale=0.1" in repr(noise)


def test_in_eval_mode_dropout_is_off_and_the_noise_stays_on_as_published():
    torch.manual_seed(1)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    quiet = AuthorACGANDiscriminator(noise=0.0).eval()
    assert torch.equal(quiet(x)[1], quiet(x)[1]), "eval mode without noise is deterministic"
    assert not torch.equal(quiet.train()(x)[1], quiet(x)[1]), "dropout acts in training mode"
    D = AuthorACGANDiscriminator().eval()
    seen = []
    for m in D.modules():
        if isinstance(m, UniformActivationNoise):
            m.register_forward_hook(lambda m, i, o: seen.append((o - i[0]).detach()))
    a, b = D(x)[1], D(x)[1]
    assert not torch.equal(a, b), "the noise is added in eval mode too"
    assert len(seen) == 12 and all(0 <= float(s.min()) and float(s.max()) < 0.1 for s in seen)


def test_author_setting_matches_the_published_run():
    setting = author_setting(nll_on_softmax)
    G, D, trainer = setting["G"], setting["D"], setting["trainer"]
    assert isinstance(G, AuthorACGANGenerator) and (G.z_dim, G.classes) == (100, 10)
    assert isinstance(D, AuthorACGANDiscriminator) and (D.noise, D.dropout) == (0.1, 0.5)
    assert setting["steps"] == 50_000  # 100 epochs x 500 batches of 100
    assert {k: v for k, v in trainer.items() if k != "tricks"} == {
        "loss": "non-saturating", "optimizer": "adam", "batch_size": 100, "lr_g": 2e-4,
        "lr_d": 2e-4, "betas": (0.5, 0.999)}
    (trick,) = trainer["tricks"]
    assert isinstance(trick, ACGANClassLoss) and trick.classes == 10
    assert trick.d_on_fake and trick.real_weight == 2.0 and trick.weight == 1.0
    assert trick.loss is nll_on_softmax
    assert author_setting(class_loss)["trainer"]["tricks"][0].loss is class_loss
    assert author_setting(class_loss, epochs=2, train_size=600)["steps"] == 12
    assert author_setting(class_loss, epochs=1, train_size=650)["steps"] == 7  # last batch short


def test_the_loop_minimises_twice_the_published_losses():
    """Published: D minimises (BCE_r + 2 NLL_r) / 2 + (BCE_f + NLL_f) / 2 on sigmoid / softmax
    outputs, G minimises BCE_g + NLL_g; the loop's D loss is twice that (Adam ignores it)."""
    gen = torch.Generator().manual_seed(2)
    n = 16
    out = {k: (torch.randn(n, generator=gen), torch.randn(n, 10, generator=gen))
           for k in ("real", "fake", "fake_g")}
    y_real, y_fake = torch.randint(10, (n,), generator=gen), torch.randint(10, (n,), generator=gen)
    ctx = SimpleNamespace(d_real=out["real"], d_fake=out["fake"], d_fake_g=out["fake_g"],
                          real_labels=y_real, z=(torch.randn(n, 100), y_fake))
    setting = author_setting(nll_on_softmax)
    loss, (trick,) = get_loss(setting["trainer"]["loss"]), setting["trainer"]["tricks"]
    bce, nll = nn.BCELoss(), nn.NLLLoss()

    def published(adv, target, logits, labels, class_weight=1.0):
        return bce(torch.sigmoid(adv), torch.full_like(adv, target)) + \
            class_weight * nll(torch.softmax(logits, 1), labels)

    d_published = (published(out["real"][0], 1.0, out["real"][1], y_real, 2.0) / 2
                   + published(out["fake"][0], 0.0, out["fake"][1], y_fake) / 2)
    g_published = published(out["fake_g"][0], 1.0, out["fake_g"][1], y_fake)
    d_ours = trick.d_loss(loss.d_loss(out["real"][0], out["fake"][0], 1.0), ctx)
    g_ours = trick.g_loss(loss.g_loss(out["fake_g"][0]), ctx)
    torch.testing.assert_close(d_ours, 2 * d_published)
    torch.testing.assert_close(g_ours, g_published)


def test_default_real_weight_keeps_the_class_loss_as_it_was():
    gen = torch.Generator().manual_seed(3)
    logits = [torch.randn(8, 10, generator=gen) for _ in range(3)]
    labels = [torch.randint(10, (8,), generator=gen) for _ in range(2)]
    ctx = SimpleNamespace(d_real=(None, logits[0]), d_fake=(None, logits[1]),
                          d_fake_g=(None, logits[2]), real_labels=labels[0], z=(None, labels[1]))
    base = torch.tensor(0.5)
    for d_on_fake in (False, True):
        trick = ACGANClassLoss(10, d_on_fake=d_on_fake)
        assert trick.real_weight == 1.0
        expected = base + class_loss(logits[0], labels[0]) + \
            (class_loss(logits[1], labels[1]) if d_on_fake else 0)
        assert torch.equal(trick.d_loss(base, ctx), expected)
    doubled = ACGANClassLoss(10, real_weight=2.0, weight=0.5).d_loss(base, ctx)
    torch.testing.assert_close(doubled, base + class_loss(logits[0], labels[0]))


def test_two_steps_of_the_author_setting_train_on_the_cpu():
    torch.manual_seed(4)
    setting = author_setting(nll_on_softmax, epochs=1, train_size=16)
    images = torch.rand(16, 3, 32, 32)
    labels = torch.arange(16) % 10
    trainer = GANTrainer(setting["G"], setting["D"], (to_signed(images), labels), device="cpu",
                         seed=5, **{**setting["trainer"], "batch_size": 8})
    history = trainer.train(2)
    assert history["steps"] == 2 and torch.isfinite(history["d_loss"]).all()
    assert trainer.sample(4, labels=torch.tensor([0, 1, 2, 3])).shape == (4, 3, 32, 32)


def test_discriminator_classifier_scores_d_class_head_on_unit_images():
    torch.manual_seed(6)
    D = AuthorACGANDiscriminator(noise=0.0, dropout=0.0).eval()
    x = torch.rand(3, 3, 32, 32)
    head = DiscriminatorClassifier(D)
    assert torch.equal(head(x), D(to_signed(x))[1])
    assert list(head.modules())[1] is D, "D is a submodule: eval mode reaches it"
    with pytest.raises(TypeError, match="D must"):
        DiscriminatorClassifier(lambda x: x)
    with pytest.raises(TypeError, match="adversarial logits, class logits"):
        DiscriminatorClassifier(nn.Flatten())(x)


@pytest.mark.parametrize("make,error,match", [
    (lambda: AuthorACGANGenerator(z_dim=0), ValueError, "z_dim"),
    (lambda: AuthorACGANGenerator(classes=1), ValueError, "classes"),
    (lambda: AuthorACGANGenerator(z_dim=2.5), TypeError, "z_dim"),
    (lambda: AuthorACGANDiscriminator(classes=1), ValueError, "classes"),
    (lambda: AuthorACGANDiscriminator(noise=-0.1), ValueError, "noise"),
    (lambda: AuthorACGANDiscriminator(noise="0.1"), TypeError, "noise"),
    (lambda: AuthorACGANDiscriminator(dropout=1.0), ValueError, "dropout"),
    (lambda: AuthorACGANDiscriminator(dropout=-0.5), ValueError, "dropout"),
    (lambda: UniformActivationNoise(-1), ValueError, "scale"),
    (lambda: UniformActivationNoise(None), TypeError, "scale"),
    (lambda: ACGANClassLoss(10, real_weight=-1), ValueError, "real_weight"),
    (lambda: author_setting("bug"), TypeError, "loss"),
    (lambda: author_setting(class_loss, epochs=0), ValueError, "epochs"),
    (lambda: author_setting(class_loss, train_size=1.5), TypeError, "train_size"),
])
def test_bad_settings_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_inputs_are_refused():
    G, D = AuthorACGANGenerator(z_dim=8), AuthorACGANDiscriminator()
    z = torch.randn(2, 8)
    with pytest.raises(ValueError, match="z must have shape"):
        G(torch.randn(2, 9))
    with pytest.raises(TypeError, match="z must be"):
        G(torch.zeros(2, 8, dtype=torch.long))
    with pytest.raises(TypeError, match="labels"):
        G(z, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="labels"):
        G(z, torch.tensor([0]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        G(z, torch.tensor([0, 10]))
    with pytest.raises(ValueError, match=r"x must have shape \(N, 3, 32, 32\)"):
        D(torch.zeros(2, 1, 28, 28))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        D([[0.0]])


def test_class_losses_on_the_author_head_keep_their_meaning():
    """On D's class logits the bug is -mean p_y (in [-1, 0]), the fix the cross-entropy."""
    torch.manual_seed(7)
    _, logits = AuthorACGANDiscriminator()(torch.rand(6, 3, 32, 32) * 2 - 1)
    y = torch.arange(6)
    p = F.softmax(logits, 1)[torch.arange(6), y]
    torch.testing.assert_close(nll_on_softmax(logits, y), -p.mean())
    torch.testing.assert_close(class_loss(logits, y), -p.log().mean())

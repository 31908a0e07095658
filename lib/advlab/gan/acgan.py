"""AC-GAN (Odena et al. 2017): both networks see class labels; D also classifies.

G gets ``(z, c)`` with c drawn uniformly; D returns ``(adversarial logits, class logits)``. On top
of the adversarial loss, with ``L_C = cross-entropy(class logits, c)``:

* D minimises L_C on real images (their true labels) and, in the paper, on fakes (their
  conditioning labels) too;
* G minimises L_C on its fakes: it must make images that D's class head files under ``c``.

:class:`ACGANClassLoss` is that, as a trick of :class:`advlab.gan.GANTrainer`. With
``d_on_fake=False`` D's class head learns from real images only: early fakes are noise, and
learning to classify them lets D and G agree on any labelling at all (a permutation of the
digits, or one image per class), which is what the paper's version did in our runs.

:func:`nll_on_softmax` is a bug from a published AC-GAN implementation (EricTay1997/AC-GAN_CIFAR10,
the one the course notes cite), kept for notebook 12:
``NLLLoss`` expects log-probabilities, so on softmax probabilities it returns ``-p_c`` (negative,
bounded in [-1, 0]) and its gradient vanishes exactly where the prediction is confidently wrong.

That implementation's CIFAR-10 run (``original.ipynb``), for notebook 12's full profile:
:class:`AuthorACGANGenerator` and :class:`AuthorACGANDiscriminator` (with its
:class:`UniformActivationNoise` and dropout), and :func:`author_setting`, its optimiser, batch,
length and class-loss weights as :class:`~advlab.gan.GANTrainer` arguments.
:class:`DiscriminatorClassifier` lets the course's accuracy helpers score D's class head.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_int, check_labels, check_number
from ..models import to_signed
from .tricks import Trick


def class_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``-mean log softmax(logits)[label]``: cross-entropy on logits (the correct class loss)."""
    if logits.dim() != 2 or labels.shape != (len(logits),):
        raise ValueError(f"logits must be (N, classes) and labels (N,), got "
                         f"{tuple(logits.shape)} and {tuple(labels.shape)}")
    return F.cross_entropy(logits, labels)


def nll_on_softmax(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The bug: ``NLLLoss(softmax(logits), labels) = -mean p_label``. Do not train with it."""
    return F.nll_loss(F.softmax(logits, dim=1), labels)


class ACGANClassLoss(Trick):
    """Conditional latent and the auxiliary class loss, added to D's and G's losses.

    ``latent`` draws one label per sample from the loop's generator and calls G(z, labels);
    ``d_loss`` adds ``weight * L_C`` on real images (and on fakes with ``d_on_fake=True``);
    ``g_loss`` adds ``weight * L_C`` on the fakes. ``real_weight`` multiplies the real-image
    term of D's class loss only (the published implementation doubles it: ``real_weight=2``).
    ``loss`` swaps the class loss (notebook 12 passes :func:`nll_on_softmax` to show the bug).
    """

    def __init__(self, classes: int = 10, *, weight: float = 1.0, d_on_fake: bool = False,
                 real_weight: float = 1.0, loss=class_loss):
        check_int(classes, "classes", low=2)
        check_number(weight, "weight", low=0)
        check_number(real_weight, "real_weight", low=0)
        if not callable(loss):
            raise TypeError(f"loss must be callable(logits, labels), got {type(loss).__name__}")
        self.classes, self.weight, self.d_on_fake, self.loss = classes, float(weight), \
            bool(d_on_fake), loss
        self.real_weight = float(real_weight)

    def latent(self, z, ctx):
        labels = torch.randint(self.classes, (len(z),), generator=ctx.generator, device=z.device)
        return z, labels

    @staticmethod
    def _class_logits(out):
        if not isinstance(out, tuple) or len(out) != 2:
            raise TypeError("D must return (adversarial logits, class logits) for the AC-GAN "
                            "class loss, e.g. advlab.gan.nets.ACGANDiscriminator")
        return out[1]

    def d_loss(self, loss, ctx):
        if ctx.real_labels is None:
            raise ValueError("data must be labelled for the AC-GAN class loss: pass an ImageSet "
                             "or an (images, labels) pair")
        extra = self.real_weight * self.loss(self._class_logits(ctx.d_real), ctx.real_labels)
        if self.d_on_fake:
            extra = extra + self.loss(self._class_logits(ctx.d_fake), ctx.z[1])
        return loss + self.weight * extra

    def g_loss(self, loss, ctx):
        return loss + self.weight * self.loss(self._class_logits(ctx.d_fake_g), ctx.z[1])


class DiscriminatorClassifier(nn.Module):
    """An AC-GAN discriminator's class head as a classifier of [0, 1] images:
    ``x -> class logits of D(to_signed(x))``, so :func:`advlab.train.evaluate` and
    :func:`advlab.metrics.label_accuracy` can score D itself (they run it in eval mode)."""

    def __init__(self, D: nn.Module):
        super().__init__()
        if not isinstance(D, nn.Module):
            raise TypeError(f"D must be a torch.nn.Module, got {type(D).__name__}")
        self.D = D

    def forward(self, x):
        return ACGANClassLoss._class_logits(self.D(to_signed(x)))


# --- the published CIFAR-10 setting (EricTay1997/AC-GAN_CIFAR10, original.ipynb) ---------------

AUTHOR_BATCH_SIZE = 100      # its DataLoader
AUTHOR_EPOCHS = 100          # its training loop
AUTHOR_TRAIN_SIZE = 50_000   # CIFAR-10's training set: 500 batches an epoch
AUTHOR_INIT_STD = 0.01       # N(0, 0.01^2) weights in both networks
AUTHOR_D_CHANNELS = (16, 32, 64, 128, 256, 512)
AUTHOR_D_STRIDES = (2, 1, 2, 1, 2, 1)   # 32 -> 16 -> 8 -> 4


def _author_init_(module: nn.Module) -> None:
    """Convolutions and linear layers N(0, 0.01^2) with zero bias; batch norm scale 1, shift 0."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
                m.weight.normal_(0.0, AUTHOR_INIT_STD)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.fill_(1.0)
                m.bias.zero_()


class UniformActivationNoise(nn.Module):
    """``x + scale * u``, ``u ~ U[0, 1)`` drawn afresh for every element and every call.

    The published discriminator's "activation noise": its values lie in ``[0, scale)`` with mean
    ``scale / 2`` (a shift, not zero-mean), the scale is never annealed, and it is added in
    evaluation mode too (the published forward pass never looks at the mode). Contrast the
    zero-mean Gaussian instance noise of :class:`advlab.gan.tricks.InstanceNoise`, annealed to
    zero. Draws come from the global generator of ``x``'s device (``advlab.seed_everything``
    seeds it), like dropout's.
    """

    def __init__(self, scale: float = 0.1):
        super().__init__()
        self.scale = check_number(scale, "scale", low=0)

    def forward(self, x):
        if self.scale == 0:
            return x
        return x + self.scale * torch.rand(x.shape, dtype=x.dtype, device=x.device)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class AuthorACGANGenerator(nn.Module):
    """``(z, labels) -> images (N, 3, 32, 32)`` in [-1, 1]: the published CIFAR-10 generator.

    The label enters as in Odena et al.: G reads ``[z, one_hot(label)]`` (``z_dim + classes``
    numbers), then a linear layer to 384 units with ReLU, and three transposed convolutions of
    stride 2 without padding, kernels 6, 5 and 4: 1x1 -> 6x6 (192 channels) -> 15x15 (96) ->
    32x32 (3), batch norm and ReLU after the first two, tanh at the end. Weights N(0, 0.01^2),
    biases 0, batch norm scale 1 (global RNG). ``labels=None`` cycles through the classes, as
    :class:`advlab.gan.nets.ACGANGenerator` does.
    """

    image_shape = (3, 32, 32)

    def __init__(self, z_dim: int = 100, classes: int = 10):
        super().__init__()
        self.z_dim, self.classes = check_int(z_dim, "z_dim"), check_int(classes, "classes", low=2)
        self.net = nn.Sequential(
            nn.Linear(self.z_dim + self.classes, 384), nn.ReLU(), nn.Unflatten(1, (384, 1, 1)),
            nn.ConvTranspose2d(384, 192, 6, 2), nn.BatchNorm2d(192), nn.ReLU(),
            nn.ConvTranspose2d(192, 96, 5, 2), nn.BatchNorm2d(96), nn.ReLU(),
            nn.ConvTranspose2d(96, 3, 4, 2), nn.Tanh())
        _author_init_(self)

    def forward(self, z, labels=None):
        if not isinstance(z, torch.Tensor) or not z.is_floating_point():
            raise TypeError(f"z must be a floating-point torch.Tensor, got "
                            f"{getattr(z, 'dtype', type(z).__name__)}")
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (N, {self.z_dim}), got {tuple(z.shape)}")
        if labels is None:
            labels = torch.arange(len(z), device=z.device) % self.classes
        check_labels(labels, len(z))
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < self.classes:
            raise ValueError(f"labels must lie in [0, {self.classes}), got "
                             f"[{int(labels.min())}, {int(labels.max())}]")
        return self.net(torch.cat([z, F.one_hot(labels, self.classes).to(z.dtype)], 1))


class AuthorACGANDiscriminator(nn.Module):
    """``images (N, 3, 32, 32) -> (adversarial logits (N,), class logits (N, classes))``: the
    published CIFAR-10 discriminator.

    Six 3x3 convolutions (padding 1) with 16, 32, 64, 128, 256, 512 channels and strides 2, 1,
    2, 1, 2, 1 (32x32 -> 4x4), batch norm on all but the first, LeakyReLU(0.2); after each
    block :class:`UniformActivationNoise` (``noise``) and then dropout (``dropout``). One linear
    layer maps the 512x4x4 map to ``1 + classes`` outputs: the adversarial logit, then the class
    logits. The published network ends in a sigmoid and a softmax; here both stay logits (the
    course's contract), so its binary cross-entropy on the sigmoid is the course's
    ``"non-saturating"`` loss on these logits, and its ``NLLLoss`` on the softmax is
    :func:`nll_on_softmax`. In eval mode dropout is off and the noise stays on, as published.
    Weights N(0, 0.01^2), biases 0, batch norm scale 1 (global RNG).
    """

    image_shape = (3, 32, 32)

    def __init__(self, classes: int = 10, *, noise: float = 0.1, dropout: float = 0.5):
        super().__init__()
        self.classes = check_int(classes, "classes", low=2)
        self.noise = check_number(noise, "noise", low=0)
        self.dropout = check_number(dropout, "dropout", low=0)
        if self.dropout >= 1:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        layers: list[nn.Module] = []
        c_in = self.image_shape[0]
        for i, (c_out, stride) in enumerate(zip(AUTHOR_D_CHANNELS, AUTHOR_D_STRIDES, strict=True)):
            norm = [nn.BatchNorm2d(c_out)] if i else []  # none on the first block
            layers += [nn.Conv2d(c_in, c_out, 3, stride, 1), *norm, nn.LeakyReLU(0.2),
                       UniformActivationNoise(self.noise), nn.Dropout(self.dropout)]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c_in * 4 * 4, 1 + self.classes)
        _author_init_(self)

    def forward(self, x):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"x must have shape (N, 3, 32, 32), got {tuple(x.shape)}")
        out = self.head(self.body(x).flatten(1))
        return out[:, 0], out[:, 1:]


def author_setting(loss, *, epochs: int = AUTHOR_EPOCHS,
                   train_size: int = AUTHOR_TRAIN_SIZE) -> dict:
    """The published CIFAR-10 run, ready for :class:`~advlab.gan.GANTrainer`:
    ``{"G", "D", "steps", "trainer"}``.

    ``G``, ``D``: fresh :class:`AuthorACGANGenerator` (z of 100 numbers) and
    :class:`AuthorACGANDiscriminator` (noise 0.1, dropout 0.5), initialised from the global RNG.
    ``steps``: the D-and-G steps of ``epochs`` passes over ``train_size`` images at batch 100
    (published: 100 epochs of 50,000 images, 50,000 steps). ``trainer``: keyword arguments,
    Adam with learning rate 2e-4 and betas (0.5, 0.999) for both networks, batch 100, the
    non-saturating loss, and an :class:`ACGANClassLoss` with ``loss`` (the published one is
    :func:`nll_on_softmax`; :func:`class_loss` is the fix), D classifying the fakes too and the
    real-image term doubled. Published, D minimises ``(BCE_real + 2 L_real) / 2 + (BCE_fake +
    L_fake) / 2`` per step; the course's loop minimises twice that, which Adam's updates do not
    see. The loop draws its batches with replacement where the published loader shuffled each
    epoch.
    """
    if not callable(loss):
        raise TypeError(f"loss must be callable(logits, labels), e.g. nll_on_softmax or "
                        f"class_loss, got {type(loss).__name__}")
    check_int(epochs, "epochs")
    check_int(train_size, "train_size")
    return {"G": AuthorACGANGenerator(100, 10), "D": AuthorACGANDiscriminator(10),
            "steps": epochs * math.ceil(train_size / AUTHOR_BATCH_SIZE),
            "trainer": {"loss": "non-saturating", "optimizer": "adam",
                        "batch_size": AUTHOR_BATCH_SIZE, "lr_g": 2e-4, "lr_d": 2e-4,
                        "betas": (0.5, 0.999),
                        "tricks": [ACGANClassLoss(10, d_on_fake=True, real_weight=2.0, loss=loss)]}}

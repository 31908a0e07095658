"""Classifiers attacked in Part I, and the MLP generator / discriminator of Part II.

Classifiers map images in [0, 1] to logits; which one plays which role in the course lives in
:data:`advlab.train.COURSE_MODELS`. Generators output [-1, 1] (tanh) for images: convert with
:func:`to_unit` / :func:`to_signed`, the one place where the two ranges meet. The convolutional
GAN networks (DCGAN, AC-GAN, WGAN critic) are in :mod:`advlab.gan.nets`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .checks import check_int


class CNN(nn.Module):
    """Two conv / max-pool / ReLU blocks and a hidden fully connected layer.

    The default (5x5 convs with 16 and 32 channels, 100 hidden units) is the course's target
    model for 28x28 MNIST; ``features(x)`` returns the penultimate activations.

    Each block pools before its ReLU. The two commute exactly (ReLU is monotone, so the largest
    of four rectified values is the rectified largest; the gradient reaches the same pixel), so
    this is the usual conv / ReLU / max-pool block, bit for bit in values, gradients and training,
    with the ReLU and its backward pass on a quarter of the values: on one thread a training step
    of 64 digits ran 1.14 times and an input gradient of 500 digits 1.23 times as fast
    (``benchmarks/bench_cnn_layout.py``).

    The convolutions run in the channels-last memory layout (weights and inputs), which oneDNN
    computes faster on CPUs: on one thread of a 2-core machine a training step of 64 digits ran
    1.25 times, an input gradient of 500 digits 1.22 times and a forward pass 1.7 times as fast
    (``benchmarks/bench_cnn_layout.py``). The layout changes the order of floating-point sums, not
    the function: the weights, their initialisation and ``state_dict`` keys are the same.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, channels=(16, 32),
                 kernel: int = 5, hidden: int = 100, classes: int = 10, dropout: float = 0.0):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"image_size must be divisible by 4, got {image_size}")
        c1, c2 = channels
        pad = kernel // 2
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel, padding=pad), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(c1, c2, kernel, padding=pad), nn.MaxPool2d(2), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(c2 * (image_size // 4) ** 2, hidden), nn.ReLU(),
            nn.Dropout(dropout),
        )
        self.head = nn.Linear(hidden, classes)
        self.to(memory_format=torch.channels_last)

    def _prepare(self, x):
        return x.contiguous(memory_format=torch.channels_last)

    def features(self, x):
        return self.body(self._prepare(x))

    def forward(self, x):
        return self.head(self.features(x))


class MLP(nn.Module):
    """Flatten, then fully connected ReLU layers; ``features(x)`` is the last hidden layer."""

    def __init__(self, in_features: int = 784, hidden=(256, 256), classes: int = 10,
                 dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, classes)

    def _prepare(self, x):
        return x

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))


class Linear(nn.Module):
    """A softmax (multinomial logistic) classifier: logits = W x + b."""

    def __init__(self, in_features: int = 784, classes: int = 10):
        super().__init__()
        self.head = nn.Linear(in_features, classes)

    def features(self, x):
        return x.flatten(1)

    def forward(self, x):
        return self.head(x.flatten(1))


ARCHITECTURES = {"cnn": CNN, "mlp": MLP, "linear": Linear}


def split_at_dropout(model: nn.Module):
    """``(before, after)`` with ``model(x) == after(before(x))``, cut at the first dropout layer
    with p > 0, for a :class:`CNN` or :class:`MLP`; ``None`` for any other model or one without
    dropout.

    ``before`` holds no randomness, so Monte Carlo dropout can compute it once and run only
    ``after`` once per mask: the masks, drawn in the same order from the same random state, and
    the function are those of whole passes, at a fraction of the work (in the course's dropout
    CNN, ``after`` is the dropout layer and the 100 x 10 head).
    """
    if type(model) not in (CNN, MLP):
        return None
    cut = next((i for i, m in enumerate(model.body)
                if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0), None)
    if cut is None:
        return None
    first, rest = model.body[:cut], model.body[cut:]

    def before(x):
        return first(model._prepare(x))

    def after(h):
        return model.head(rest(h))

    return before, after


def make_classifier(arch: str, **kwargs) -> nn.Module:
    """Build a classifier by name (``"cnn"``, ``"mlp"``, ``"linear"``) with keyword settings."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)}, got {arch!r}")
    return ARCHITECTURES[arch](**kwargs)


# --- GAN generators and discriminators --------------------------------------------------------
# Generators for images end in tanh, so they output [-1, 1]; the course's images live in [0, 1].
# The conversion happens in exactly one place each way: to_signed (real images into the GAN)
# and to_unit (generated images out of it, for plots and metrics).


def to_unit(x):
    """Generator output in [-1, 1] -> image in [0, 1]: ``(x + 1) / 2``."""
    return (x + 1) / 2


def to_signed(x):
    """Image in [0, 1] -> the generator's range [-1, 1]: ``2 x - 1``."""
    return x * 2 - 1


def _mlp(width: int, hidden, activation, batch_norm: bool = False) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for h in hidden:
        layers.append(nn.Linear(width, h))
        if batch_norm:
            layers.append(nn.BatchNorm1d(h))
        layers.append(activation())
        width = h
    return layers


class MLPGenerator(nn.Module):
    """``z (N, z_dim) -> x (N, *out_shape)``: fully connected ReLU layers, then a linear layer.

    ``tanh=True`` (for images) squashes the output into [-1, 1]; 2-D toy data stays unbounded.
    ``batch_norm`` adds BatchNorm1d after every hidden layer, as the VEEGAN / PacGAN 2-D
    generators do (it tends to smear samples between modes on the toy data, hiding collapse).
    """

    def __init__(self, z_dim: int = 2, out_shape=(2,), hidden=(128, 128, 128), *,
                 tanh: bool = False, batch_norm: bool = False):
        super().__init__()
        self.z_dim = z_dim
        self.out_shape = tuple(out_shape)
        out_features = math.prod(self.out_shape)
        layers = _mlp(z_dim, hidden, nn.ReLU, batch_norm)
        layers.append(nn.Linear(hidden[-1] if hidden else z_dim, out_features))
        if tanh:
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z).view(len(z), *self.out_shape)


class MLPDiscriminator(nn.Module):
    """``x (N, *in_shape) -> logits (N // pack,)``; ``features(x)`` is the last hidden layer.

    Hidden layers use ReLU (``negative_slope=0``) or LeakyReLU. With ``pack = m`` the
    discriminator judges m samples at once, concatenated (PacGAN, Lin et al. 2018): N samples
    become N / m packed inputs, so N must be divisible by m. :class:`advlab.gan.GANTrainer` reads
    ``pack`` and feeds ``m * batch_size`` samples, so D still gives ``batch_size`` verdicts per
    batch, each on a pack of m, as in PacGAN.
    """

    def __init__(self, in_shape=(2,), hidden=(128, 128, 128), *, negative_slope: float = 0.0,
                 pack: int = 1):
        super().__init__()
        check_int(pack, "pack")
        self.pack = pack
        activation = (lambda: nn.LeakyReLU(negative_slope)) if negative_slope else nn.ReLU
        self.body = nn.Sequential(
            *_mlp(pack * math.prod(tuple(in_shape)), hidden, activation))
        self.head = nn.Linear(hidden[-1], 1)

    def features(self, x):
        if len(x) % self.pack:
            raise ValueError(f"batch size must be divisible by pack={self.pack}, got {len(x)}")
        return self.body(x.reshape(len(x) // self.pack, -1))

    def forward(self, x):
        return self.head(self.features(x)).squeeze(1)

"""Convolutional GAN networks: DCGAN, AC-GAN and the WGAN critic.

The DCGAN rules (Radford et al. 2016, section 3): strided (transposed) convolutions instead of
pooling, batch norm in both networks (not on G's output or D's input layer), ReLU in G with a
tanh output, LeakyReLU(0.2) in D, no fully connected hidden layers. Sizes follow the image: a
side of 28 (MNIST) starts G at 7x7 and doubles twice, a side of 32 (CIFAR-10) starts at 4x4 and
doubles three times; D mirrors G with stride-2 convolutions down to that size and one
convolution over the whole remaining map gives the logit.

* :class:`DCGANGenerator` ``z (N, z_dim) -> x (N, C, H, W)`` in [-1, 1].
* :class:`DCGANDiscriminator` ``x -> logits (N,)``; ``features(x)`` is the last feature map,
  flattened. ``norm="batch" | "layer" | "none"``; ``downsample="pool"`` swaps each stride-2
  convolution for a stride-1 convolution and 2x2 max pooling (against DCGAN's first rule, for
  notebook 11's comparison).
* :class:`ACGANGenerator` ``(z, labels) -> x``: the label enters through an embedding that
  multiplies z (Odena et al. 2017 concatenate a one-hot code; the product gives each class its
  own scaling of the latent space: the course's choice, not compared with the paper's).
* :class:`ACGANDiscriminator` ``x -> (adversarial logits (N,), class logits (N, classes))``.
* :class:`Critic`: the WGAN critic, a :class:`DCGANDiscriminator` with no batch norm by default
  (its output is an unbounded score, never a probability: there is no sigmoid anywhere).
* :func:`dcgan_init_`: the DCGAN paper's initialisation, N(0, 0.02) weights. Every network of
  this module starts from it (``init="dcgan"``, the default); ``init="default"`` keeps PyTorch's
  own (uniform within +-1/sqrt(fan-in)), for notebook 11's comparison.
* :func:`slerp`: spherical interpolation between two latent vectors.
"""

from __future__ import annotations

import torch
from torch import nn

from ..checks import check_int

NORMS = ("batch", "layer", "none")
INITS = ("dcgan", "default")
DOWNSAMPLES = ("stride", "pool")


def _check_choice(value, choices, name: str) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _initialise(net: nn.Module, init: str) -> None:
    """DCGAN's initialisation of ``net`` (the global RNG) unless ``init == "default"``."""
    if init == "dcgan":
        dcgan_init_(net)


def _image_shape(image_shape) -> tuple[int, int, int]:
    shape = tuple(image_shape) if isinstance(image_shape, (tuple, list, torch.Size)) else None
    if (shape is None or len(shape) != 3 or not all(isinstance(s, int) for s in shape)
            or shape[1] != shape[2] or shape[0] < 1 or shape[1] < 8):
        raise ValueError("image_shape must be (channels, side, side) with side >= 8, e.g. "
                         f"(1, 28, 28) or (3, 32, 32); got {image_shape!r}")
    return shape


def start_size(side: int) -> tuple[int, int]:
    """``(start, doublings)``: halve ``side`` while it stays even and at least 4 after halving.

    28 -> (7, 2), 32 -> (4, 3), 64 -> (4, 4).
    """
    start, n = side, 0
    while start % 2 == 0 and start // 2 >= 4:
        start, n = start // 2, n + 1
    return start, n


class DCGANGenerator(nn.Module):
    """``z (N, z_dim) -> images (N, C, H, W)`` in [-1, 1] (tanh), by transposed convolutions.

    The first transposed convolution maps the 1x1 latent to ``start x start`` with
    ``width * 2**(doublings - 1)`` channels; every following one doubles the side (kernel 4,
    stride 2, padding 1) and halves the channels, down to ``width``, then to C with tanh.
    ``init="dcgan"`` (default) applies :func:`dcgan_init_`; ``"default"`` keeps PyTorch's.
    """

    def __init__(self, z_dim: int = 64, image_shape=(1, 28, 28), width: int = 32, *,
                 init: str = "dcgan"):
        super().__init__()
        self.init = _check_choice(init, INITS, "init")
        self.z_dim = check_int(z_dim, "z_dim")
        self.image_shape = _image_shape(image_shape)
        check_int(width, "width")
        channels, side = self.image_shape[0], self.image_shape[1]
        start, n = start_size(side)
        ch = width * 2 ** max(n - 1, 0)
        layers: list[nn.Module] = [nn.ConvTranspose2d(self.z_dim, ch, start, bias=False),
                                   nn.BatchNorm2d(ch), nn.ReLU(True)]
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1) if n else nn.Conv2d(ch, channels, 1),
                   nn.Tanh()]
        self.net = nn.Sequential(*layers)
        _initialise(self, init)

    def forward(self, z):
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (N, {self.z_dim}), got {tuple(z.shape)}")
        return self.net(z[:, :, None, None])


def _norm(kind: str, channels: int, side: int) -> list[nn.Module]:
    if kind == "batch":
        return [nn.BatchNorm2d(channels)]
    if kind == "layer":  # normalises each sample on its own, so a gradient penalty stays valid
        return [nn.LayerNorm([channels, side, side])]
    return []


class DCGANDiscriminator(nn.Module):
    """``images (N, C, H, W) -> logits (N,)`` by stride-2 convolutions with LeakyReLU(0.2).

    The first convolution has no normalisation (DCGAN rule); the others get ``norm``. The last
    convolution covers the whole ``start x start`` map, so the net has no linear layer.
    ``downsample="pool"`` replaces each stride-2 convolution by a stride-1 one of the same kernel
    (4, zero padding 1 before and 2 after, so the map keeps its size) followed, after its
    normalisation and activation, by 2x2 max pooling: the same weights, maps and channels, with
    fixed instead of learned downsampling. ``init="dcgan"`` (default) applies
    :func:`dcgan_init_`; ``"default"`` keeps PyTorch's initialisation.
    """

    def __init__(self, image_shape=(1, 28, 28), width: int = 32, *, norm: str = "batch",
                 downsample: str = "stride", init: str = "dcgan"):
        super().__init__()
        self.image_shape = _image_shape(image_shape)
        check_int(width, "width")
        self.norm = _check_choice(norm, NORMS, "norm")
        self.downsample = _check_choice(downsample, DOWNSAMPLES, "downsample")
        self.init = _check_choice(init, INITS, "init")
        channels, side = self.image_shape[0], self.image_shape[1]
        start, n = start_size(side)
        if n == 0:
            raise ValueError(f"image_shape side must be divisible by 2 at least once, got {side}")

        def down(c_in, c_out, bias, norm_layers):
            if downsample == "stride":
                return [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=bias), *norm_layers,
                        nn.LeakyReLU(0.2, True)]
            return [nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(c_in, c_out, 4, 1, bias=bias), *norm_layers,
                    nn.LeakyReLU(0.2, True), nn.MaxPool2d(2)]

        pool = downsample == "pool"  # the norm of a pooled block acts before pooling
        layers: list[nn.Module] = down(channels, width, True, [])
        ch, side = width, side // 2
        for _ in range(n - 1):
            layers += down(ch, ch * 2, norm == "none", _norm(norm, ch * 2, side if pool else side // 2))
            ch, side = ch * 2, side // 2
        self.body = nn.Sequential(*layers)
        self.feature_dim = ch * start * start
        self.head = nn.Conv2d(ch, 1, start)
        _initialise(self, init)

    def _check(self, x):
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"x must have shape (N, {', '.join(map(str, self.image_shape))}), "
                             f"got {tuple(x.shape)}")

    def features(self, x):
        self._check(x)
        return self.body(x).flatten(1)

    def forward(self, x):
        self._check(x)
        return self.head(self.body(x)).flatten()


class Critic(DCGANDiscriminator):
    """The WGAN critic: a DCGAN discriminator whose output is a score, by default without any
    batch norm (a gradient penalty needs each score to depend on its own input only)."""

    def __init__(self, image_shape=(1, 28, 28), width: int = 32, *, norm: str = "none",
                 init: str = "dcgan"):
        super().__init__(image_shape, width, norm=norm, init=init)


class ACGANGenerator(nn.Module):
    """``(z, labels) -> images``: a DCGAN generator fed ``z * embedding(label)``.

    Called with ``labels=None`` (as :meth:`advlab.gan.GANTrainer.sample` does) it cycles through
    the classes: sample i gets label ``i % classes``.
    """

    def __init__(self, z_dim: int = 64, image_shape=(1, 28, 28), width: int = 32,
                 classes: int = 10, *, init: str = "dcgan"):
        super().__init__()
        self.classes = check_int(classes, "classes")
        self.body = DCGANGenerator(z_dim, image_shape, width, init=init)
        self.z_dim, self.image_shape = self.body.z_dim, self.body.image_shape
        self.embed = nn.Embedding(self.classes, self.z_dim)  # N(0, 1), as PyTorch draws it

    def forward(self, z, labels=None):
        if labels is None:
            labels = torch.arange(len(z), device=z.device) % self.classes
        if labels.shape != (len(z),) or labels.dtype != torch.long:
            raise ValueError(f"labels must be int64 of shape ({len(z)},), got {labels.dtype} "
                             f"{tuple(labels.shape)}")
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < self.classes:
            raise ValueError(f"labels must lie in [0, {self.classes}), got "
                             f"[{int(labels.min())}, {int(labels.max())}]")
        return self.body(z * self.embed(labels))


class ACGANDiscriminator(nn.Module):
    """``images -> (adversarial logits (N,), class logits (N, classes))``: one DCGAN body, two
    heads. The class head returns logits; its loss is cross-entropy (never NLL on softmax)."""

    def __init__(self, image_shape=(1, 28, 28), width: int = 32, classes: int = 10, *,
                 norm: str = "batch", init: str = "dcgan"):
        super().__init__()
        self.classes = check_int(classes, "classes")
        self.trunk = DCGANDiscriminator(image_shape, width, norm=norm, init=init)
        self.image_shape = self.trunk.image_shape
        self.class_head = nn.Linear(self.trunk.feature_dim, self.classes)
        _initialise(self.class_head, _check_choice(init, INITS, "init"))

    def features(self, x):
        return self.trunk.features(x)

    def forward(self, x):
        h = self.trunk.features(x)
        side = self.trunk.head.kernel_size[0]
        adv = self.trunk.head(h.view(len(x), -1, side, side)).flatten()
        return adv, self.class_head(h)


def has_batch_norm(model: nn.Module) -> bool:
    """Whether any layer of ``model`` normalises across the batch."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def dcgan_init_(module: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """DCGAN's initialisation, in place; returns ``module``.

    Radford et al. (2016, section 4) draw all weights from N(0, 0.02); batch norm's scale is
    drawn from N(1, 0.02) as in the authors' and PyTorch's DCGAN examples. For every submodule
    of ``module`` (itself included): a convolution, transposed convolution or linear layer gets
    weights ~ N(0, 0.02^2) and bias 0; a batch norm with learnable affine parameters gets scale
    ~ N(1, 0.02^2) and shift 0 (running statistics untouched). Every other layer (embeddings,
    layer norm, ...) is left as it is. Draws come from ``generator`` (the global RNG when None),
    submodule by submodule in ``module.modules()`` order.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got "
                        f"{type(generator).__name__}")
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
                m.weight.normal_(0.0, 0.02, generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                m.weight.normal_(1.0, 0.02, generator=generator)
                m.bias.zero_()
    return module


def slerp(z0: torch.Tensor, z1: torch.Tensor, t) -> torch.Tensor:
    """Spherical linear interpolation from ``z0`` (t = 0) to ``z1`` (t = 1):

        slerp(z0, z1, t) = (sin((1 - t) omega) z0 + sin(t omega) z1) / sin(omega),

    omega the angle between z0 and z1. The direction turns at a constant angular speed in the
    plane of z0 and z1 (at t the angle to z0 is t omega), and when ``||z0|| = ||z1||`` every
    point keeps that norm; a straight line between two Gaussian latents passes closer to the
    origin, where the generator saw few latents in training (White 2016). ``z0`` and ``z1``
    are 1-D of the same shape (D,); ``t`` is a number (result (D,)) or a tensor of shape (T,)
    or (T, 1) (result (T, D)). Nearly parallel or opposite vectors (sin omega below 1e-6)
    fall back to the straight line.
    """
    for name, v in (("z0", z0), ("z1", z1)):
        if not isinstance(v, torch.Tensor) or not v.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor, got "
                            f"{getattr(v, 'dtype', type(v).__name__)}")
    if z0.dim() != 1 or z0.shape != z1.shape:
        raise ValueError(f"z0 and z1 must be 1-D of the same shape, got {tuple(z0.shape)} and "
                         f"{tuple(z1.shape)}")
    if not (z0.norm() > 0 and z1.norm() > 0):
        raise ValueError("z0 and z1 must be non-zero (the angle between them is undefined)")
    if isinstance(t, torch.Tensor):
        if not (t.dim() == 1 or (t.dim() == 2 and t.shape[1] == 1)):
            raise ValueError(f"t must be a number or a tensor of shape (T,) or (T, 1), got "
                             f"{tuple(t.shape)}")
        t = t.reshape(-1, 1).to(z0)
    elif isinstance(t, (int, float)) and not isinstance(t, bool):
        t = torch.tensor(float(t), dtype=z0.dtype, device=z0.device)
    else:
        raise TypeError(f"t must be a number or a torch.Tensor, got {type(t).__name__}")
    omega = torch.arccos(((z0 / z0.norm()) @ (z1 / z1.norm())).clamp(-1, 1))
    if torch.sin(omega).abs() < 1e-6:
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)

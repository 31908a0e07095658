"""Extension points of the GAN loop: a trick is an object with any of these hook methods.

:class:`advlab.gan.GANTrainer` runs one loop; everything that changes between GAN variants
plugs in here instead of into a copy of the loop. Per training step the trainer calls, in order:

    before_step(ctx)                           once, before anything else in the step
    repeat n_critic times:
        real = next real batch                 -> ctx.real (ctx.real_labels if labelled);
                                                  pack x batch_size samples for a packing D
        out_r = D(d_inputs(real, ctx))         -> ctx.d_real   (D on real)
        z = latent(z, ctx); fake = G(z)        -> ctx.z, ctx.fake (generate fake)
        out_f = D(d_inputs(fake.detach(), ctx)) -> ctx.d_fake  (D on fake)
        loss = d_loss(loss.d_loss(out_r, out_f, real_label), ctx) ; D's optimiser step
        after_d_step(ctx)
    out_g = D(d_inputs(fake, ctx))             -> ctx.d_fake_g (the same fake batch, new D)
    loss = g_loss(loss.g_loss(out_g), ctx) ; G's optimiser step (D's weights are not touched)
    after_g_step(ctx)

Hooks return the (possibly changed) value they were given. How the course's tricks map on them:

============================  ===========================================================
feature matching              :class:`FeatureMatching`, ``g_loss``:
                              ||mean D.features(real) - mean D.features(fake)||^2
minibatch discrimination      a layer inside D (:mod:`advlab.gan.layers`, no hook)
historical averaging          :class:`HistoricalAveraging`, ``d_loss`` / ``g_loss``: penalty
                              to a running mean of the parameters, updated in
                              ``after_d_step`` / ``after_g_step``
one-sided label smoothing     ``real_label=0.9`` of the trainer (a loss option, no hook)
virtual batch norm            a layer with a fixed reference batch in G (:mod:`.layers`,
                              no hook: every forward pass re-runs the reference batch)
instance noise                :class:`InstanceNoise`, ``d_inputs``: x + sigma(step) * noise
packing                       ``MLPDiscriminator(pack=m)`` (no hook): the trainer draws
                              m x batch_size real samples and fakes, so D judges
                              batch_size packs of m (PacGAN)
weight clipping (WGAN)        :class:`~advlab.gan.wgan.WeightClipping`, ``after_d_step``:
                              clamp D's weights
gradient penalty (WGAN-GP)    :class:`~advlab.gan.wgan.GradientPenalty`, ``d_loss``: add
                              the penalty at interpolates of ``ctx.real`` and ``ctx.fake``
AC-GAN class loss             :class:`~advlab.gan.acgan.ACGANClassLoss`: ``latent``
                              returns (z, labels) for a conditional G; D returns
                              (adversarial logits, class logits); ``d_loss`` / ``g_loss`` add
                              cross-entropy on ``ctx.d_real[1]``, ``ctx.d_fake[1]``, ...
============================  ===========================================================

A trick with state that must survive a resume (running averages, a reference batch) returns it
from ``state_dict`` (tensors, numbers, lists, dicts) and takes it back in ``load_state_dict``.
Draw random numbers from ``ctx.generator`` so a resumed run repeats them exactly.

:class:`TrickSet` is the switchboard of the improved-training fixes: one frozen dataclass of
on / off flags (and each fix's settings) that builds the generator, the discriminator, the hook
objects and the trainer's options, so a notebook cell or a widget turns a fix on without another
loop. ``TrickSet()`` (all off) builds exactly the vanilla GAN.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from types import SimpleNamespace

import torch
from torch import nn

from ..checks import check_int, check_number
from ..models import MLPDiscriminator, MLPGenerator
from .layers import MinibatchDiscriminator, VirtualBatchNormGenerator

HOOKS = ("before_step", "d_inputs", "latent", "d_loss", "after_d_step", "g_loss",
         "after_g_step")


class Trick:
    """Base class: every hook does nothing. Override the ones a trick needs."""

    def before_step(self, ctx) -> None:
        pass

    def d_inputs(self, x, ctx):
        """What D sees of a batch ``x`` (real, or fake on its way to D)."""
        return x

    def latent(self, z, ctx):
        """What G is called with: a tensor, or a tuple of arguments for G(*args)."""
        return z

    def d_loss(self, loss, ctx):
        return loss

    def after_d_step(self, ctx) -> None:
        pass

    def g_loss(self, loss, ctx):
        return loss

    def after_g_step(self, ctx) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def overriding(tricks, hook: str) -> list:
    """Bound ``hook`` methods of the tricks that override it (the loop skips the no-ops)."""
    if hook not in HOOKS:
        raise ValueError(f"hook must be one of {HOOKS}, got {hook!r}")
    base = getattr(Trick, hook)
    return [getattr(t, hook) for t in tricks
            if getattr(type(t), hook, base) is not base and callable(getattr(t, hook, None))]


def d_view(ctx):
    """``x -> what D sees of x``: the trainer's ``d_inputs`` hooks (e.g. instance noise)."""
    hooks = overriding(ctx.trainer.tricks, "d_inputs")

    def view(x):
        for hook in hooks:
            x = hook(x, ctx)
        return x
    return view


def feature_matching_loss(D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Feature matching's term ``||mean_i f(real_i) - mean_j f(fake_j)||^2``, f = ``D.features``.

    The squared Euclidean distance between the batch means of D's last hidden layer, the term
    :class:`FeatureMatching` gives G. The real features are a target: detached, so the loss's
    gradient reaches D's weights only through the fake batch.
    """
    features = getattr(D, "features", None)
    if not callable(features):
        raise TypeError(f"D must have a features(x) method, got {type(D).__name__}")
    if not isinstance(real, torch.Tensor) or not isinstance(fake, torch.Tensor):
        raise TypeError("real and fake must be tensors")
    target = features(real).detach().mean(0)
    return (features(fake).mean(0) - target).pow(2).sum()


class FeatureMatching(Trick):
    """G matches the mean of D's features instead of fooling D (Salimans et al. 2016, 3.1):

        L_G = || E_x f(x) - E_z f(G(z)) ||^2,   f = ``D.features`` (D's last hidden layer).

    The real features are a target (no gradient); D keeps its usual loss. ``adversarial=True``
    adds the feature term to G's usual loss instead of replacing it.
    """

    def __init__(self, weight: float = 1.0, *, adversarial: bool = False):
        self.weight = check_number(weight, "weight", low=0, strict=True)
        self.adversarial = bool(adversarial)

    def g_loss(self, loss, ctx):
        features = getattr(ctx.D, "features", None)
        if not callable(features):
            raise TypeError(f"feature matching needs D.features(x); {type(ctx.D).__name__} "
                            "has none")
        view = d_view(ctx)
        target = features(view(ctx.real)).detach().mean(0)
        match = (features(view(ctx.fake)).mean(0) - target).pow(2).sum()
        return self.weight * match + (loss if self.adversarial else 0.0)


class HistoricalAveraging(Trick):
    """Penalty ``weight * ||theta - (1/t) sum_i theta_i||^2`` for G and D (Salimans et al., 3.3).

    theta_i are a network's parameters after each of its updates, theta_0 the initial ones. The
    mean is kept as a running average (one ``lerp_`` per tensor per update, no history stored).
    D's penalty joins D's loss, G's joins G's; ``networks`` picks which ones.
    """

    def __init__(self, weight: float = 1e-3, networks=("G", "D")):
        self.weight = check_number(weight, "weight", low=0, strict=True)
        networks = tuple(networks) if not isinstance(networks, str) else (networks,)
        if not networks or not set(networks) <= {"G", "D"}:
            raise ValueError(f"networks must be a non-empty subset of ('G', 'D'), got {networks!r}")
        self.networks = networks
        self.average: dict[str, list[torch.Tensor]] = {}
        self.count: dict[str, int] = {}

    @staticmethod
    def _params(ctx, net: str) -> list[torch.Tensor]:
        model = ctx.G if net == "G" else ctx.D
        return [p for p in model.parameters() if p.requires_grad]

    def before_step(self, ctx) -> None:
        for net in self.networks:
            if net not in self.average:  # theta_0: the parameters before the first update
                self.average[net] = [p.detach().clone() for p in self._params(ctx, net)]
                self.count[net] = 1

    def penalty(self, ctx, net: str) -> torch.Tensor:
        pairs = zip(self._params(ctx, net), self.average[net], strict=True)
        return self.weight * sum((p - avg).pow(2).sum() for p, avg in pairs)

    def _update(self, ctx, net: str) -> None:
        self.count[net] += 1
        with torch.no_grad():
            for p, avg in zip(self._params(ctx, net), self.average[net], strict=True):
                avg.lerp_(p, 1.0 / self.count[net])  # mean += (theta_t - mean) / (t + 1)

    def d_loss(self, loss, ctx):
        return loss + self.penalty(ctx, "D") if "D" in self.networks else loss

    def after_d_step(self, ctx) -> None:
        if "D" in self.networks:
            self._update(ctx, "D")

    def g_loss(self, loss, ctx):
        return loss + self.penalty(ctx, "G") if "G" in self.networks else loss

    def after_g_step(self, ctx) -> None:
        if "G" in self.networks:
            self._update(ctx, "G")

    def state_dict(self) -> dict:
        return {"average": {k: [a.clone() for a in v] for k, v in self.average.items()},
                "count": dict(self.count)}

    def load_state_dict(self, state: dict) -> None:
        self.average = {k: [a.clone() for a in v] for k, v in state["average"].items()}
        self.count = dict(state["count"])


class _Scalar(nn.Module):
    def __init__(self, value: torch.Tensor):
        super().__init__()
        self.value = nn.Parameter(value)


def bilinear_play(x: float, y: float, *, eta: float = 0.1, steps: int = 200,
                  weight: float = 0.0) -> torch.Tensor:
    """Alternating gradient play on V(x, y) = x y from ``(x, y)``, with historical averaging.

    x minimises V, y maximises it; y answers the new x, as D and G take turns in the trainer:

        x <- x - eta (y + 2 weight (x - mean of x's values so far)),
        y <- y + eta (x - 2 weight (y - mean of y's values so far)).

    The penalty is :class:`HistoricalAveraging`'s (the means include the start and the current
    value); ``weight = 0`` is plain alternating play, which circles (0, 0) forever. Returns the
    path ``(steps + 1, 2)`` in float64, starting with ``(x, y)``.
    """
    x, y = check_number(x, "x"), check_number(y, "y")
    eta = check_number(eta, "eta", low=0, strict=True)
    steps = check_int(steps, "steps", low=0)
    weight = check_number(weight, "weight", low=0)
    px, py = (_Scalar(torch.tensor(v, dtype=torch.float64)) for v in (x, y))
    ctx = SimpleNamespace(G=px, D=py)
    averaging = HistoricalAveraging(weight) if weight > 0 else Trick()
    path = [(x, y)]
    for _ in range(steps):
        averaging.before_step(ctx)
        loss_x = averaging.g_loss(px.value * py.value.detach(), ctx)   # x minimises x y
        (grad,) = torch.autograd.grad(loss_x, px.value)
        with torch.no_grad():
            px.value -= eta * grad
        averaging.after_g_step(ctx)
        loss_y = averaging.d_loss(-px.value.detach() * py.value, ctx)  # y maximises x y
        (grad,) = torch.autograd.grad(loss_y, py.value)
        with torch.no_grad():
            py.value -= eta * grad
        averaging.after_d_step(ctx)
        path.append((px.value.detach().item(), py.value.detach().item()))
    return torch.tensor(path, dtype=torch.float64)


class InstanceNoise(Trick):
    """Gaussian noise on everything D sees, real and fake, annealed linearly to zero:

        x -> x + sigma(t) eps,  eps ~ N(0, I),  sigma(t) = std * max(0, 1 - t / anneal_steps).

    Blurring both distributions makes their supports overlap, so D cannot separate them
    perfectly and G keeps a useful gradient (Sonderby et al. 2017; Arjovsky & Bottou 2017).
    From step ``anneal_steps`` on sigma is 0 and D sees the data itself. ``anneal_steps=None``
    keeps sigma constant. The noise comes from the loop's generator (resumable).
    """

    def __init__(self, std: float = 0.1, anneal_steps: int | None = None):
        self.std = check_number(std, "std", low=0)
        if anneal_steps is not None:
            check_int(anneal_steps, "anneal_steps")
        self.anneal_steps = anneal_steps

    def sigma(self, step: int) -> float:
        if self.anneal_steps is None:
            return self.std
        return self.std * max(0.0, 1.0 - step / self.anneal_steps)

    def d_inputs(self, x, ctx):
        sigma = self.sigma(ctx.step)
        if sigma == 0.0:
            return x
        return x + sigma * torch.randn(x.shape, generator=ctx.generator, device=x.device,
                                       dtype=x.dtype)


FIXES = ("feature_matching", "minibatch_discrimination", "historical_averaging",
         "label_smoothing", "virtual_batch_norm", "instance_noise", "packing")


@dataclass(frozen=True)
class TrickSet:
    """Which fixes are on, and their settings. ``TrickSet()`` is the vanilla GAN.

    Switches: ``feature_matching``, ``minibatch_discrimination``, ``historical_averaging``,
    ``label_smoothing`` (real targets ``real_label``, fakes stay 0), ``virtual_batch_norm`` (in
    G), ``instance_noise`` (``noise_std`` annealed to 0 by ``noise_until`` of training) and
    ``pack`` (PacGAN: D judges ``pack`` samples at once and the trainer draws ``pack`` times as
    many samples, so D's verdicts per batch stay ``batch_size``; 1 = off). Use :meth:`generator`,
    :meth:`discriminator`, :meth:`hooks` and :meth:`trainer_kwargs` to build a run.
    """

    feature_matching: bool = False
    minibatch_discrimination: bool = False
    historical_averaging: bool = False
    label_smoothing: bool = False
    virtual_batch_norm: bool = False
    instance_noise: bool = False
    pack: int = 1
    fm_weight: float = 1.0
    fm_adversarial: bool = False
    mbd_kernels: int = 8
    mbd_kernel_dim: int = 4
    ha_weight: float = 1e-3
    real_label: float = 0.9
    vbn_reference: int = 64
    noise_std: float = 0.1
    noise_until: float = 0.75

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "bool" and not isinstance(value, bool):
                raise TypeError(f"{f.name} must be True or False, got {value!r}")
        for name in ("pack", "mbd_kernels", "mbd_kernel_dim", "vbn_reference"):
            check_int(getattr(self, name), name)
        for name in ("fm_weight", "ha_weight", "noise_std", "noise_until"):
            check_number(getattr(self, name), name, low=0, strict=name != "noise_std")
        check_number(self.real_label, "real_label", low=0, high=1, strict=True)
        if self.noise_until > 1:
            raise ValueError(f"noise_until must be in (0, 1], got {self.noise_until!r}")

    def enabled(self) -> tuple[str, ...]:
        """Names of the fixes that are on, in the order of :data:`FIXES`."""
        return tuple(f for f in FIXES if (self.pack > 1 if f == "packing" else getattr(self, f)))

    def label(self) -> str:
        """A short name for tables: ``"vanilla"`` or the fixes joined by ``" + "``."""
        names = [f"pack{self.pack}" if f == "packing" else f.replace("_", " ")
                 for f in self.enabled()]
        return " + ".join(names) or "vanilla"

    def config(self) -> dict:
        """The settings as a JSON-friendly dict (for :func:`advlab.checkpoints.config_hash`)."""
        return asdict(self)

    def generator(self, z_dim: int = 2, out_shape=(2,), hidden=(128, 128, 128), *,
                  tanh: bool = False, batch_norm: bool = False, seed: int = 0) -> nn.Module:
        """An :class:`~advlab.models.MLPGenerator`; with virtual batch norm, its BatchNorm1d
        layers become virtual ones with a reference batch of ``vbn_reference`` latents drawn
        once from ``seed`` (this consumes no global random numbers)."""
        vbn = self.virtual_batch_norm
        G = MLPGenerator(z_dim, out_shape, hidden, tanh=tanh, batch_norm=batch_norm or vbn)
        return VirtualBatchNormGenerator(G, self.vbn_reference, seed=seed) if vbn else G

    def discriminator(self, in_shape=(2,), hidden=(128, 128, 128), *,
                      negative_slope: float = 0.0) -> nn.Module:
        """An :class:`~advlab.models.MLPDiscriminator` with ``pack``; with minibatch
        discrimination, wrapped in :class:`~advlab.gan.layers.MinibatchDiscriminator`."""
        D = MLPDiscriminator(in_shape, hidden, negative_slope=negative_slope, pack=self.pack)
        if self.minibatch_discrimination:
            D = MinibatchDiscriminator(D, self.mbd_kernels, self.mbd_kernel_dim)
        return D

    def hooks(self, steps: int) -> list[Trick]:
        """The hook objects for a run of ``steps`` steps (instance noise needs the length)."""
        check_int(steps, "steps")
        out: list[Trick] = []
        if self.instance_noise:
            out.append(InstanceNoise(self.noise_std, max(1, round(self.noise_until * steps))))
        if self.feature_matching:
            out.append(FeatureMatching(self.fm_weight, adversarial=self.fm_adversarial))
        if self.historical_averaging:
            out.append(HistoricalAveraging(self.ha_weight))
        return out

    def trainer_kwargs(self) -> dict:
        """Options for :class:`~advlab.gan.GANTrainer`: ``real_label`` when smoothing is on."""
        return {"real_label": self.real_label} if self.label_smoothing else {}

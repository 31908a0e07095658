"""Exercise checks for notebooks 11–14."""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from torch import nn

from ._core import ExerciseError, call, compare, passed
from ._core import close as _close
from ._core import seeded as _gen

__all__ = ["check_dcgan_init", "check_slerp", "check_acgan_class_loss", "check_class_loss",
           "check_wasserstein_losses", "check_gradient_penalty", "check_frechet_distance",
           "check_inception_score"]




def _scalar(value, what: str) -> torch.Tensor:
    """The answer as a 0-dim tensor (a tensor is kept as it is, graph included)."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ExerciseError(f"{what} should be one number (a 0-dim tensor), got shape "
                                f"{tuple(value.shape)}: average over the batch")
        value = value.reshape(())
        if torch.is_complex(value):
            raise ExerciseError(f"{what} is complex ({complex(value)}): the value is real; take "
                                "the real part of a complex matrix square root, or use a "
                                "symmetric one from torch.linalg.eigh")
        return value
    if isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real):
        raise ExerciseError(f"{what} is complex ({complex(value)}): the value is real; take the "
                            "real part of a complex matrix square root, or use a symmetric one "
                            "from torch.linalg.eigh")
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return torch.tensor(float(value), dtype=torch.float64)
    raise ExerciseError(f"{what} should be a number or a 0-dim tensor, got "
                        f"{type(value).__name__}")


# --- notebook 11 ---------------------------------------------------------------------------------

def _dcgan_test_net(seed: int) -> nn.Module:
    """A DCGAN generator, an AC-GAN discriminator (linear class head) and two layers DCGAN's
    initialisation must leave alone (an embedding and a layer norm), built with a seeded init."""
    from ..gan.nets import ACGANDiscriminator, DCGANGenerator

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.ModuleDict({"G": DCGANGenerator(64, (1, 28, 28), 32, init="default"),
                             "D": ACGANDiscriminator((1, 28, 28), 32, 10, init="default"),
                             "other": nn.Sequential(nn.Embedding(10, 8), nn.LayerNorm(8))})
        with torch.no_grad():  # moved away from their defaults, so a change shows
            for m in net.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.running_mean.uniform_(-1, 1)
                    m.running_var.uniform_(0.5, 2)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.5, 0.5)
            for p in net["other"].parameters():
                p.uniform_(-1, 1)
    return net


def _layer_kind(m: nn.Module) -> str | None:
    if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
        return "weights"
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return "batch norm"
    return None


def check_dcgan_init(answer, *, seed: int = 0) -> None:
    """``answer(module, generator=None)``: DCGAN's initialisation in place, as
    :func:`advlab.gan.nets.dcgan_init_`: conv / transposed conv / linear weights ~ N(0, 0.02^2)
    with bias 0, batch norm scale ~ N(1, 0.02^2) with shift 0, nothing else touched, the draws
    from ``generator``; returns the module."""
    name = getattr(answer, "__name__", "your function")
    net = _dcgan_test_net(seed)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng_before = torch.get_rng_state()
    out = call(answer, net, generator=_gen(seed))
    if not torch.equal(torch.get_rng_state(), rng_before):
        raise ExerciseError(f"`{name}` used the global random number generator although a "
                            "generator was given: draw with tensor.normal_(mean, std, "
                            "generator=generator)")
    if out is not net:
        raise ExerciseError(f"`{name}` should return the module it initialised (`return "
                            f"module`), got {type(out).__name__}")
    params = dict(net.named_parameters())
    for key, value in net.state_dict().items():
        if key not in params and not torch.equal(value, before[key]):
            raise ExerciseError(f"`{name}` changed the buffer {key} (batch norm's running "
                                "statistics): initialise the learnable scale (weight) and shift "
                                "(bias) only")
    for mod_name, m in net.named_modules():
        kind = _layer_kind(m)
        label = f"{type(m).__name__} {mod_name}"
        if kind is None:
            for pname, _ in m.named_parameters(recurse=False):
                key = f"{mod_name}.{pname}"
                if not torch.equal(params[key].detach(), before[key]):
                    raise ExerciseError(f"`{name}` changed {key} of {label}: DCGAN's "
                                        "initialisation touches convolutions, linear layers and "
                                        "batch norm only")
            continue
        if kind == "batch norm" and not m.affine:
            continue
        w = m.weight.detach().double()
        mean, std = (1.0, 0.02) if kind == "batch norm" else (0.0, 0.02)
        n = w.numel()
        # five standard errors of the sample mean and of the sample standard deviation
        tol_mean, tol_std = 5 * std / math.sqrt(n), 5 * std / math.sqrt(2 * (n - 1))
        got_mean, got_std = float(w.mean()), float(w.std())
        what = "scale (weight)" if kind == "batch norm" else "weights"
        if torch.equal(m.weight.detach(), before[f"{mod_name}.weight"]):
            every = ("batch norm" if kind == "batch norm"
                     else "convolution, transposed convolution and linear layer")
            raise ExerciseError(f"`{name}` left the {what} of {label} unchanged: every {every} "
                                "is initialised")
        if abs(got_std - std) > tol_std:
            raise ExerciseError(f"the {what} of {label} have standard deviation {got_std:.4f}, "
                                f"expected {std} (tolerance {tol_std:.2g} for {n} draws)"
                                + (": normal_(mean, std) takes the standard deviation, not the "
                                   "variance" if abs(got_std - std ** 2) < tol_std else ""))
        if abs(got_mean - mean) > tol_mean:
            raise ExerciseError(f"the {what} of {label} have mean {got_mean:.4f}, expected "
                                f"{mean} (tolerance {tol_mean:.2g} for {n} draws)")
        if m.bias is not None and not torch.equal(m.bias.detach(), torch.zeros_like(m.bias)):
            raise ExerciseError(f"the bias of {label} should be 0 after the initialisation, got "
                                f"values up to {float(m.bias.detach().abs().max()):.3g}")
        if not isinstance(m.weight, nn.Parameter) or not m.weight.requires_grad:
            raise ExerciseError(f"the weight of {label} is no longer a trainable nn.Parameter: "
                                "fill it in place under torch.no_grad()")
    # the same seed repeats the result, another seed does not
    again = _dcgan_test_net(seed)
    call(answer, again, generator=_gen(seed))
    other = _dcgan_test_net(seed)
    call(answer, other, generator=_gen(seed + 1))
    first = net["G"].net[0].weight.detach()
    if not torch.equal(again["G"].net[0].weight.detach(), first):
        raise ExerciseError(f"`{name}` gave different weights for two generators with the same "
                            "seed: draw from the generator argument")
    if torch.equal(other["G"].net[0].weight.detach(), first):
        raise ExerciseError(f"`{name}` gave the same weights for generators with different "
                            "seeds: draw from the generator argument")
    passed(answer, f"{name} initialises convolutions, linear layers and batch norm as DCGAN does "
                   "(means and standard deviations within 5 standard errors, biases 0), leaves "
                   "other layers and running statistics alone and repeats with its seed")


def _angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angles between the rows of ``a`` and ``b`` (broadcast), stable near 0 and pi (Kahan)."""
    a = a.double() / a.double().norm(dim=-1, keepdim=True)
    b = b.double() / b.double().norm(dim=-1, keepdim=True)
    return 2 * torch.atan2((a - b).norm(dim=-1), (a + b).norm(dim=-1))


def check_slerp(answer, *, seed: int = 0) -> None:
    """``answer(z0, z1, t)`` with z0, z1 of shape (D,) and t of shape (T, 1): the spherical
    interpolation of :func:`advlab.gan.nets.slerp`, shape (T, D); its endpoints are z0 and z1
    and at t its angle to z0 is t * omega."""
    from ..gan.nets import slerp

    name = getattr(answer, "__name__", "your function")
    gen = _gen(seed)
    t = torch.linspace(0, 1, 9)[:, None]
    z0, z1 = torch.randn(64, generator=gen), torch.randn(64, generator=gen)
    w0, w1 = torch.randn(16, generator=gen), torch.randn(16, generator=gen)
    cases = [("two latents of equal norm", w0, w1 * (w0.norm() / w1.norm())),
             ("two Gaussian latents", z0, z1),
             ("latents of different norms", 0.5 * w0, 2.0 * w1)]
    for label, a, b in cases:
        a_in, b_in = a.clone(), b.clone()
        got = call(answer, a_in, b_in, t)
        what = f"{name}(z0, z1, t) on {label} (D = {len(a)}, t of shape {tuple(t.shape)})"
        if not torch.equal(a_in, a) or not torch.equal(b_in, b):
            raise ExerciseError(f"{what} changed z0 or z1 in place")
        expected = slerp(a, b, t)
        if not isinstance(got, torch.Tensor):
            raise ExerciseError(f"{what} should return a tensor, got {type(got).__name__}")
        if tuple(got.shape) != tuple(expected.shape):
            raise ExerciseError(f"{what} has shape {tuple(got.shape)}, expected "
                                f"{tuple(expected.shape)}: one interpolated latent per row of t")
        if not torch.isfinite(got).all():
            raise ExerciseError(f"{what} holds NaN or inf values")
        compare(got[0], a, f"{what} at t = 0 (it should be z0)", atol=1e-5, rtol=1e-4)
        compare(got[-1], b, f"{what} at t = 1 (it should be z1)", atol=1e-5, rtol=1e-4)
        omega = float(_angle(a, b))
        angle0, angle1 = _angle(got, a), _angle(got, b)
        if ((angle0 + angle1 - omega).abs() > 1e-4).any():
            raise ExerciseError(f"{what} leaves the arc between z0 and z1: the angles to z0 and "
                                "z1 should add up to omega, the angle between them")
        equal_norms = bool(torch.isclose(a.norm(), b.norm()))
        bad = ((angle0 - t[:, 0].double() * omega).abs() > 1e-4).nonzero()
        if equal_norms and len(bad):
            i = int(bad[0])
            raise ExerciseError(
                f"{what}: at t = {float(t[i]):.3g} the angle to z0 is {float(angle0[i]):.4f} rad, "
                f"expected t * omega = {float(t[i]) * omega:.4f} (omega = {omega:.4f}, the angle "
                "between z0 and z1): slerp turns at a constant angular speed"
                + (" (a straight line does not)" if _close(got, (1 - t) * a + t * b, 1e-5, 1e-4)
                   else ""))
        if equal_norms:
            norms = got.double().norm(dim=1)
            compare(norms, torch.full_like(norms, float(a.norm())), f"the norms of {what} "
                    "(slerp between latents of equal norm keeps that norm)", atol=1e-4, rtol=1e-4)
        compare(got, expected, what, atol=1e-5, rtol=1e-4)
    passed(answer, f"{name} matches advlab.gan.nets.slerp: it starts at z0, ends at z1, stays on "
                   "the arc between them and, for latents of equal norm, keeps the norm and turns "
                   "at a constant angular speed")


# --- notebook 12 ---------------------------------------------------------------------------------

def _acgan_ctx(seed: int, n: int = 12, classes: int = 10):
    """A training step's context as the AC-GAN hooks see it: D's (adversarial, class) outputs on
    real images, on the fakes for D's step and on the fakes for G's step, the real labels and
    the (z, requested labels) pair the ``latent`` hook returned."""
    from ..gan.train import Step

    gen = _gen(seed)

    def d_out():
        return (torch.randn(n, generator=gen).requires_grad_(True),
                (2 * torch.randn(n, classes, generator=gen)).requires_grad_(True))

    z = torch.randn(n, 8, generator=gen)
    fake_labels = torch.randint(classes, (n,), generator=gen)
    real_labels = torch.randint(classes, (n,), generator=gen)
    return Step(trainer=None, step=1, G=nn.Identity(), D=nn.Identity(), generator=_gen(seed + 7),
                real=torch.randn(n, 1, 8, 8, generator=gen), real_labels=real_labels,
                z=(z, fake_labels), fake=torch.randn(n, 1, 8, 8, generator=gen), d_real=d_out(),
                d_fake=d_out(), d_fake_g=d_out())


def _settings(kwargs: dict) -> str:
    return ", ".join(f"{k}={getattr(v, '__name__', v)!s}" for k, v in kwargs.items()) or "defaults"


def check_acgan_class_loss(answer, *, seed: int = 0) -> None:
    """``answer``: a trick class ``(classes, *, weight=1.0, d_on_fake=False, loss=class_loss)``
    with the ``latent``, ``d_loss`` and ``g_loss`` hooks of
    :class:`advlab.gan.acgan.ACGANClassLoss`, compared hook by hook on one step's context."""
    from ..gan.acgan import ACGANClassLoss, class_loss, nll_on_softmax

    name = getattr(answer, "__name__", "your class")
    # latent: (z, labels), labels uniform over the classes, drawn from ctx.generator
    for classes in (10, 3):
        trick = call(answer, classes)
        z = torch.randn(5000, 4, generator=_gen(seed))
        ctx = _acgan_ctx(seed)
        rng_before = torch.get_rng_state()
        out = call(trick.latent, z, ctx)
        what = f"{name}({classes}).latent(z, ctx)"
        if not torch.equal(torch.get_rng_state(), rng_before):
            raise ExerciseError(f"{what} used the global random number generator: draw the "
                                "labels with generator=ctx.generator, so a run repeats from its "
                                "seed")
        if not isinstance(out, tuple) or len(out) != 2:
            raise ExerciseError(f"{what} should return the pair (z, labels) that G is called "
                                f"with, got {type(out).__name__}")
        if out[0] is not z and not (isinstance(out[0], torch.Tensor) and torch.equal(out[0], z)):
            raise ExerciseError(f"{what} should return z unchanged as the first element")
        labels = out[1]
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.long or \
                labels.shape != (len(z),):
            raise ExerciseError(f"{what}: labels should be an int64 tensor of shape "
                                f"({len(z)},), one per latent, got "
                                f"{getattr(labels, 'dtype', type(labels).__name__)} "
                                f"{tuple(getattr(labels, 'shape', ()))}")
        if int(labels.min()) < 0 or int(labels.max()) >= classes:
            raise ExerciseError(f"{what}: labels should lie in [0, {classes}), got "
                                f"[{int(labels.min())}, {int(labels.max())}]")
        counts = torch.bincount(labels, minlength=classes).double()
        expected = len(z) / classes
        spread = 5 * math.sqrt(expected * (1 - 1 / classes))
        if ((counts - expected).abs() > spread).any():
            raise ExerciseError(f"{what}: the labels should be uniform over the {classes} "
                                f"classes; out of {len(z)} the counts are "
                                f"{counts.long().tolist()}")
        again = call(trick.latent, z, _acgan_ctx(seed))
        if not torch.equal(again[1], labels):
            raise ExerciseError(f"{what} drew other labels from a generator with the same seed: "
                                "draw them from ctx.generator")
    # d_loss and g_loss against the reference, with the settings the notebook uses
    loss0 = torch.tensor(0.75)
    for kwargs in ({}, {"d_on_fake": True}, {"weight": 0.5, "loss": nll_on_softmax},
                   {"weight": 2.0, "d_on_fake": True, "loss": nll_on_softmax}):
        trick, ref = call(answer, 10, **kwargs), ACGANClassLoss(10, **kwargs)
        ctx = _acgan_ctx(seed + 1)
        what = f"{name}(10, {_settings(kwargs)})"
        got_d = _scalar(call(trick.d_loss, loss0, ctx), f"{what}.d_loss(loss, ctx)")
        got_g = _scalar(call(trick.g_loss, loss0, ctx), f"{what}.g_loss(loss, ctx)")
        exp_d, exp_g = ref.d_loss(loss0, ctx), ref.g_loss(loss0, ctx)
        d_on_fake, weight = kwargs.get("d_on_fake", False), kwargs.get("weight", 1.0)
        loss_fn = kwargs.get("loss", class_loss)
        if not _close(got_d, exp_d):
            hint = ""
            if _close(got_d, exp_d - loss0):
                hint = ": return the loss you were given plus the class terms"
            elif _close(got_d, ACGANClassLoss(10, **{**kwargs, "d_on_fake": not d_on_fake})
                        .d_loss(loss0, ctx)):
                hint = (": with d_on_fake=True add the class loss of D's output on the fakes "
                        "(ctx.d_fake) under their requested labels (ctx.z[1])" if d_on_fake else
                        ": with d_on_fake=False the class head learns from real images only")
            elif weight != 1 and _close(got_d, ACGANClassLoss(10, **{**kwargs, "weight": 1.0})
                                        .d_loss(loss0, ctx)):
                hint = ": multiply the class terms by self.weight"
            elif loss_fn is not class_loss and _close(
                    got_d, ACGANClassLoss(10, **{**kwargs, "loss": class_loss}).d_loss(loss0, ctx)):
                hint = ": use self.loss, the class loss the trick was given"
            compare(got_d, exp_d, f"{what}.d_loss(loss, ctx)" + hint, atol=1e-6, rtol=1e-5)
        if not _close(got_g, exp_g):
            hint = ""
            if _close(got_g, exp_g - loss0):
                hint = ": return the loss you were given plus the class term"
            elif _close(got_g, loss0 + weight * loss_fn(ctx.d_fake[1], ctx.z[1])):
                hint = (": G's class loss is on D's output for G's step, ctx.d_fake_g, not "
                        "ctx.d_fake")
            elif _close(got_g, loss0 + weight * loss_fn(ctx.d_fake_g[1], ctx.real_labels)):
                hint = ": the fakes' labels are the requested ones, ctx.z[1]"
            compare(got_g, exp_g, f"{what}.g_loss(loss, ctx)" + hint, atol=1e-6, rtol=1e-5)
        logits = [ctx.d_real[1], ctx.d_fake[1], ctx.d_fake_g[1]]
        for got, exp, hook in ((got_d, exp_d, "d_loss"), (got_g, exp_g, "g_loss")):
            if not got.requires_grad:
                raise ExerciseError(f"{what}.{hook}(loss, ctx) carries no gradient: keep D's "
                                    "class logits in the graph (no .detach(), .item() or "
                                    "torch.no_grad())")
            g_got = torch.autograd.grad(got, logits, allow_unused=True)
            g_exp = torch.autograd.grad(exp, logits, allow_unused=True)
            for which, a, b in zip(("ctx.d_real", "ctx.d_fake", "ctx.d_fake_g"), g_got, g_exp,
                                   strict=True):
                a = torch.zeros_like(logits[0]) if a is None else a
                b = torch.zeros_like(logits[0]) if b is None else b
                compare(a, b, f"the gradient of {what}.{hook}(loss, ctx) with respect to the "
                              f"class logits of {which}", atol=1e-6, rtol=1e-5)
    passed(answer, f"{name} draws uniform labels from ctx.generator, and its d_loss and g_loss "
                   "match advlab.gan.acgan.ACGANClassLoss (values and gradients) with and "
                   "without d_on_fake, weights and another class loss")


def check_class_loss(answer, *, seed: int = 0) -> None:
    """``answer(logits, labels)``: cross-entropy on logits, ``-mean log softmax(logits)[label]``,
    as :func:`advlab.gan.acgan.class_loss`: value and gradient, also for logits so large that
    ``log(softmax(...))`` overflows."""
    from ..gan.acgan import class_loss, nll_on_softmax

    name = getattr(answer, "__name__", "your function")
    gen = _gen(seed)
    labels = torch.randint(10, (32,), generator=gen)
    random_logits = 3 * torch.randn(32, 10, generator=gen)
    confident = torch.zeros(32, 10)
    confident[torch.arange(32), (labels + 1) % 10] = 200.0  # confidently wrong by a margin of 200
    confident[::2, :] = confident[::2, :] + 1000.0  # and logits far from 0
    cases = [("random logits", random_logits),
             ("logits confidently wrong by 200, half of them offset by 1000", confident),
             ("float64 logits", random_logits.double())]
    for label, logits in cases:
        x = logits.clone().requires_grad_(True)
        got = call(answer, x, labels)
        what = f"{name}(logits, labels) on {label}"
        if not torch.equal(x.detach(), logits):
            raise ExerciseError(f"{what} changed the logits in place")
        if not isinstance(got, torch.Tensor):
            raise ExerciseError(f"{what} should return a tensor, got {type(got).__name__}")
        if got.dim() != 0:
            raise ExerciseError(f"{what} should be a 0-dim tensor (the batch mean), got shape "
                                f"{tuple(got.shape)}")
        expected = class_loss(logits, labels)
        if not torch.isfinite(got):
            raise ExerciseError(f"{what} is {float(got.detach())}, expected "
                                f"{float(expected.detach()):.6g}: "
                                "log(softmax(...)) overflows there; compute log-softmax as "
                                "l - logsumexp(l) (torch.logsumexp is stable)")
        if _close(got, nll_on_softmax(logits, labels)):
            raise ExerciseError(f"{what} is {float(got.detach()):.4g}, which is -mean p(label): "
                                "that is NLLLoss on probabilities, the bug; use log-probabilities")
        hint = ""
        if _close(got, expected * len(labels)):
            hint = " (it looks like a sum over the batch: take the mean)"
        elif _close(got, -expected):
            hint = " (the sign is flipped: the loss is minus the log-probability)"
        compare(got, expected, what + hint, atol=1e-5, rtol=1e-5)
        if not got.requires_grad:
            raise ExerciseError(f"{what} carries no gradient: keep the logits in the graph")
        (g_got,) = torch.autograd.grad(got, x)
        (g_exp,) = torch.autograd.grad(class_loss(x, labels), x)
        compare(g_got, g_exp, f"the gradient of {what} with respect to the logits (it should be "
                              "(softmax(l) - onehot(label)) / N)", atol=1e-6, rtol=1e-5)
    passed(answer, f"{name} matches advlab.gan.acgan.class_loss in value and gradient, also "
                   "for logits where log(softmax) would overflow")


# --- notebook 13 ---------------------------------------------------------------------------------

def check_wasserstein_losses(answer, *, seed: int = 0) -> None:
    """``answer(real_scores, fake_scores) -> (critic_loss, generator_loss)``: the pair registered
    as ``"wasserstein"`` (:func:`advlab.gan.losses.wasserstein_d_loss` and
    :func:`~advlab.gan.losses.wasserstein_g_loss`), values and gradients."""
    from ..gan.losses import bce_d_loss, wasserstein_d_loss, wasserstein_g_loss

    name = getattr(answer, "__name__", "your function")
    gen = _gen(seed)
    real = (3 + 2 * torch.randn(16, generator=gen)).requires_grad_(True)
    fake = (-1 + torch.randn(24, generator=gen)).requires_grad_(True)
    what = f"{name}(real_scores, fake_scores) with 16 real and 24 fake scores"
    out = call(answer, real, fake)
    if not isinstance(out, tuple) or len(out) != 2:
        raise ExerciseError(f"{what} should return the pair (critic_loss, generator_loss), got "
                            f"{type(out).__name__}")
    d_got = _scalar(out[0], f"the critic loss of {what}")
    g_got = _scalar(out[1], f"the generator loss of {what}")
    d_exp, g_exp = wasserstein_d_loss(real, fake), wasserstein_g_loss(fake)
    if _close(d_got, -d_exp):
        raise ExerciseError(f"the critic loss of {what} is {float(d_got.detach()):.4g}, "
                            f"expected {float(d_exp.detach()):.4g}: the sign is flipped. The "
                            "critic maximises mean f(real) - mean f(fake), so it minimises "
                            "mean f(fake) - mean f(real)")
    if _close(d_got, bce_d_loss(real, fake)):
        raise ExerciseError(f"the critic loss of {what} is binary cross-entropy: the critic's "
                            "outputs are scores, not logits of a probability (no sigmoid, no log)")
    compare(d_got, d_exp, f"the critic loss of {what}", atol=1e-5, rtol=1e-5)
    if _close(g_got, -g_exp):
        raise ExerciseError(f"the generator loss of {what} is {float(g_got.detach()):.4g}, "
                            f"expected {float(g_exp.detach()):.4g}: the sign is flipped. G wants "
                            "the critic to score its samples high, so it minimises -mean f(fake)")
    compare(g_got, g_exp, f"the generator loss of {what}", atol=1e-5, rtol=1e-5)
    for loss, exp, label in ((d_got, d_exp, "critic"), (g_got, g_exp, "generator")):
        if not loss.requires_grad:
            raise ExerciseError(f"the {label} loss of {what} carries no gradient: keep the "
                                "scores in the graph")
        got_grads = torch.autograd.grad(loss, (real, fake), allow_unused=True)
        exp_grads = torch.autograd.grad(exp, (real, fake), allow_unused=True)
        for which, a, b, ref in zip(("real", "fake"), got_grads, exp_grads, (real, fake),
                                    strict=True):
            a = torch.zeros_like(ref) if a is None else a
            b = torch.zeros_like(ref) if b is None else b
            compare(a, b, f"the gradient of the {label} loss of {what} with respect to the "
                          f"{which} scores", atol=1e-6, rtol=1e-5)
    passed(answer, f"{name} matches the \"wasserstein\" loss pair: the critic minimises "
                   "mean f(fake) - mean f(real), G minimises -mean f(fake)")


def _test_critic(seed: int) -> nn.Module:
    """A small smooth critic on (N, 2, 3, 3) inputs in float64: scores (N,)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        critic = nn.Sequential(nn.Flatten(), nn.Linear(18, 16), nn.Tanh(), nn.Linear(16, 1),
                               nn.Flatten(0))
        with torch.no_grad():
            critic[1].weight.mul_(3.0)  # gradient norms on both sides of 1
    return critic.double()


def _penalty_by_finite_differences(D, x_hat: torch.Tensor, weight: float,
                                   h: float = 1e-6) -> float:
    """weight * mean((||grad f(x_hat)|| - 1)^2), each gradient by central differences."""
    n, d = len(x_hat), x_hat[0].numel()
    flat = x_hat.detach().reshape(n, 1, d)
    steps = h * torch.eye(d, dtype=x_hat.dtype)
    with torch.no_grad():
        up = D((flat + steps).reshape(n * d, *x_hat.shape[1:])).reshape(n, d)
        down = D((flat - steps).reshape(n * d, *x_hat.shape[1:])).reshape(n, d)
    grad = (up - down) / (2 * h)
    return float(weight * ((grad.norm(dim=1) - 1) ** 2).mean())


def check_gradient_penalty(answer, *, seed: int = 0) -> None:
    """``answer(D, real, fake, eps, weight=10.0)``: WGAN-GP's penalty at
    ``x_hat = eps * real + (1 - eps) * fake`` as :func:`advlab.gan.losses.gradient_penalty`
    (value and its gradient with respect to the critic's weights), checked also against the
    gradient norms measured by finite differences in float64."""
    from ..gan.losses import gradient_penalty

    name = getattr(answer, "__name__", "your function")
    gen = _gen(seed)
    D = _test_critic(seed)
    real = torch.randn(6, 2, 3, 3, generator=gen, dtype=torch.float64)
    fake = torch.randn(6, 2, 3, 3, generator=gen, dtype=torch.float64)
    eps = torch.rand(6, generator=gen, dtype=torch.float64)
    params = list(D.parameters())
    for weight in (10.0, 1.0):
        what = f"{name}(D, real, fake, eps, weight={weight:g}) on 6 samples of shape (2, 3, 3)"
        inputs = [v.clone() for v in (real, fake, eps)]
        got = call(answer, D, *inputs, weight=weight)
        for label, before, after in zip(("real", "fake", "eps"), (real, fake, eps), inputs,
                                        strict=True):
            if not torch.equal(before, after.detach()):
                raise ExerciseError(f"{what} changed {label} in place")
            if after.requires_grad or after.grad is not None:
                raise ExerciseError(f"{what} made {label} require a gradient: take the gradient "
                                    "at a new tensor x_hat built from detached inputs")
        if any(p.grad is not None for p in params):
            raise ExerciseError(f"{what} left gradients in the critic's .grad: use "
                                "torch.autograd.grad(scores.sum(), x_hat, create_graph=True), "
                                "not .backward()")
        got = _scalar(got, what)
        expected = gradient_penalty(D, real, fake, weight=weight, eps=eps)
        x_hat = eps.view(-1, 1, 1, 1) * real + (1 - eps.view(-1, 1, 1, 1)) * fake
        finite = _penalty_by_finite_differences(D, x_hat, weight)
        if not _close(got, expected, atol=1e-8, rtol=1e-6):
            hint = ""
            if _close(got, gradient_penalty(D, fake, real, weight=weight, eps=eps), 1e-8, 1e-6):
                hint = ": x_hat = eps * real + (1 - eps) * fake, you have real and fake swapped"
            elif weight != 1 and _close(got, expected / weight, 1e-8, 1e-6):
                hint = ": multiply by weight (lambda)"
            elif _close(got, expected * len(real), 1e-8, 1e-6):
                hint = ": average over the samples, do not sum"
            else:
                x = x_hat.clone().requires_grad_(True)
                (grad,) = torch.autograd.grad(D(x).sum(), x)
                norms = grad.flatten(1).norm(dim=1)
                if _close(got, weight * (grad.norm() - 1) ** 2, 1e-8, 1e-6):
                    hint = (": take the norm of each sample's gradient "
                            "(grad.flatten(1).norm(dim=1)), not of the whole batch's")
                elif _close(got, weight * (norms ** 2).mean(), 1e-8, 1e-6):
                    hint = ": the penalty is (||grad|| - 1)^2, it pulls the norm to 1, not to 0"
            compare(got, expected, what + hint, atol=1e-8, rtol=1e-6)
        compare(got, finite, f"{what} against weight * mean((||grad f(x_hat)|| - 1)^2) with the "
                             "gradients measured by finite differences", atol=1e-6, rtol=1e-6)
        if not got.requires_grad:
            raise ExerciseError(f"{what} carries no gradient to the critic's weights: pass "
                                "create_graph=True to torch.autograd.grad, so the penalty's own "
                                "gradient reaches the critic")
        g_got = torch.autograd.grad(got, params, allow_unused=True)
        g_exp = torch.autograd.grad(expected, params, allow_unused=True)
        for (pname, p), a, b in zip(D.named_parameters(), g_got, g_exp, strict=True):
            a = torch.zeros_like(p) if a is None else a
            b = torch.zeros_like(p) if b is None else b
            compare(a, b,
                    f"the gradient of {what} with respect to the critic's {pname}",
                    atol=1e-8, rtol=1e-6)
    passed(answer, f"{name} matches advlab.gan.losses.gradient_penalty and the finite-difference "
                   "gradient norms, and its gradient reaches the critic's weights")


# --- notebook 14 ---------------------------------------------------------------------------------

def _features(gen: torch.Generator, n: int, d: int, shift: float = 0.0) -> torch.Tensor:
    """``n`` correlated Gaussian features in ``d`` dimensions (a random mixing matrix)."""
    mix = torch.randn(d, d, generator=gen, dtype=torch.float64) / math.sqrt(d)
    return torch.randn(n, d, generator=gen, dtype=torch.float64) @ mix + shift


def _fd_variant(a: torch.Tensor, b: torch.Tensor, *, biased: bool = False,
                product_of_roots: bool = False, two: float = 2.0) -> float:
    """Typical wrong versions of the Frechet distance, to name the mistake."""
    from ..metrics import _sqrt_psd

    ca = torch.cov(a.T, correction=0 if biased else 1)
    cb = torch.cov(b.T, correction=0 if biased else 1)
    if product_of_roots:
        cross = (_sqrt_psd(ca) @ _sqrt_psd(cb)).trace()
    else:
        root = _sqrt_psd(ca)
        cross = torch.linalg.eigvalsh(root @ cb @ root).clamp(min=0).sqrt().sum()
    return float((a.mean(0) - b.mean(0)).square().sum() + ca.trace() + cb.trace() - two * cross)


def check_frechet_distance(answer, *, seed: int = 0) -> None:
    """``answer(real, fake)`` for features ``(N, D)`` and ``(M, D)``: the Frechet distance of the
    Gaussians fitted to them (unbiased covariances) as :func:`advlab.metrics.frechet_distance`,
    and its properties (0 for a set against itself, symmetric, the squared mean shift when only
    the mean moves)."""
    from ..metrics import frechet_distance

    name = getattr(answer, "__name__", "your function")
    gen = _gen(seed)
    a, b = _features(gen, 200, 6), _features(gen, 150, 6, shift=0.5)
    c = _features(gen, 300, 3)
    shift = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    cases = [("two feature sets of 200 and 150 rows in 6 dimensions", a, b),
             ("the same two sets the other way round", b, a),
             ("a set against itself", c, c),
             ("a set against itself shifted by (1, -2, 0.5) (expected: the squared shift, 5.25)",
              c, c + shift)]
    for label, x, y in cases:
        x_in, y_in = x.clone(), y.clone()
        got = _scalar(call(answer, x_in, y_in), f"{name}(real, fake) on {label}")
        what = f"{name}(real, fake) on {label}"
        if not torch.equal(x_in, x) or not torch.equal(y_in, y):
            raise ExerciseError(f"{what} changed its inputs in place")
        expected = frechet_distance(x, y)
        if _close(got, expected, 1e-6, 1e-6):
            continue
        hint = ""
        if not math.isfinite(float(got.detach())):
            hint = (": the value should be finite (clamp tiny negative eigenvalues to 0 before "
                    "taking square roots)")
        elif _close(got, _fd_variant(x, y, biased=True), 1e-6, 1e-6):
            hint = ": use unbiased covariances (divide by N - 1), as torch.cov does"
        elif _close(got, _fd_variant(x, y, product_of_roots=True), 1e-6, 1e-6):
            hint = (": (S_r S_f)^(1/2) is not S_r^(1/2) S_f^(1/2) unless the two commute; take "
                    "the square root of the product (e.g. the eigenvalues of "
                    "S_r^(1/2) S_f S_r^(1/2))")
        elif _close(got, _fd_variant(x, y, two=1.0), 1e-6, 1e-6):
            hint = ": the cross term is -2 tr((S_r S_f)^(1/2))"
        elif _close(got, float((x.mean(0) - y.mean(0)).square().sum()), 1e-6, 1e-6):
            hint = ": the covariance term tr(S_r + S_f - 2 (S_r S_f)^(1/2)) is missing"
        compare(float(got.detach()), expected, what + hint, atol=1e-6, rtol=1e-6)
    passed(answer, f"{name} matches advlab.metrics.frechet_distance: 0 for a set against itself, "
                   "symmetric, the squared shift when only the mean moves")


def check_inception_score(answer, *, seed: int = 0) -> None:
    """``answer(probs)`` for class probabilities ``(N, K)``: the Inception score
    ``exp(mean KL(p(y|x) || p(y)))`` as :func:`advlab.metrics.inception_score`, with its closed
    forms (uniform predictions: 1; confident and balanced: K; confident, one class: 1)."""
    from ..metrics import inception_score

    name = getattr(answer, "__name__", "your function")
    gen = _gen(seed)
    random = torch.softmax(2 * torch.randn(500, 10, generator=gen, dtype=torch.float64), 1)
    onehot = torch.eye(10, dtype=torch.float64)
    cases = [
        ("500 random predictions over 10 classes", random),
        ("uniform predictions (expected: 1)", torch.full((50, 10), 0.1, dtype=torch.float64)),
        ("one-hot predictions, each of 10 classes 20 times (expected: 10)",
         onehot.repeat(20, 1)),
        ("one-hot predictions, all of class 3 (expected: 1)", onehot[[3] * 40]),
        ("one-hot predictions over 4 classes, unevenly (3 : 1 : 0 : 0)",
         torch.eye(4, dtype=torch.float64)[[0, 0, 0, 1] * 10]),
        ("500 random predictions in float32", random.float()),
    ]
    for label, probs in cases:
        p_in = probs.clone()
        raw = call(answer, p_in)
        what = f"{name}(probs) on {label}"
        if not torch.equal(p_in, probs):
            raise ExerciseError(f"{what} changed probs in place")
        got = _scalar(raw, what)
        expected = inception_score(probs)
        if not torch.isfinite(got):
            raise ExerciseError(f"{what} is {float(got.detach())}, expected {expected:.6g}: a zero "
                                "probability contributes 0 to the KL divergence (0 log 0 = 0, "
                                "e.g. torch.xlogy)")
        tol = 1e-5 if probs.dtype == torch.float32 else 1e-9
        if _close(got, expected, tol, tol):
            continue
        p = probs.double()
        marginal = p.mean(0, keepdim=True)
        kl = (torch.xlogy(p, p) - torch.xlogy(p, marginal)).sum(1)
        uniform = (torch.xlogy(p, p) + p * math.log(p.shape[1])).sum(1)
        hint = ""
        if _close(got, kl.mean(), tol, tol):
            hint = ": that is log IS, the mean KL divergence; take its exp"
        elif _close(got, uniform.mean().exp(), tol, tol):
            hint = (": p(y) is the mean of the predictions over the samples, not the uniform "
                    "distribution")
        elif _close(got, kl.exp().mean(), tol, tol):
            hint = ": average the KL divergences first, then take exp"
        compare(got, expected, what + hint, atol=tol, rtol=tol)
    passed(answer, f"{name} matches advlab.metrics.inception_score: 1 for uniform or "
                   "single-class predictions, K for confident and balanced ones")

"""Exercise checks for notebooks 08–10."""

from __future__ import annotations

import copy
import math

import torch

from .. import metrics
from ..data import toy_2d, toy_2d_modes
from ..gan.divergence import optimal_discriminator
from ..gan.layers import MinibatchDiscrimination
from ..gan.losses import bce_d_loss, non_saturating_g_loss, saturating_g_loss
from ..gan.train import GANTrainer
from ..gan.tricks import bilinear_play, feature_matching_loss
from ..models import MLPDiscriminator, MLPGenerator
from ._core import ExerciseError, _name, call, compare, passed
from ._core import seeded as _rng

__all__ = ["check_averaged_play", "check_batch_features", "check_feature_matching",
           "check_gan_loop", "check_gan_losses", "check_mode_coverage",
           "check_optimal_discriminator", "check_reverse_kl"]


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen, dtype=torch.float64))


def _hinted(fn, hint: str) -> None:
    """Run a comparison; on failure add ``hint`` to its message."""
    try:
        fn()
    except ExerciseError as err:
        raise ExerciseError(f"{err}. {hint[0].upper()}{hint[1:]}") from None


def _tuple(result, n: int, answer, names: str):
    if not isinstance(result, (tuple, list)) or len(result) != n:
        got = f"a {type(result).__name__}" + (f" of length {len(result)}"
                                             if isinstance(result, (tuple, list)) else "")
        raise ExerciseError(f"`{_name(answer)}` should return {n} values ({names}), got {got}")
    return result


# --- notebook 08 -------------------------------------------------------------------------------

def _ring(n: int, generator: torch.Generator) -> torch.Tensor:
    return toy_2d("ring", n, generator=generator)


def _tiny_gan(seed: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return MLPGenerator(2, (2,), (16, 16)), MLPDiscriminator((2,), (16, 16))


_LOOP_HINTS = {
    ("D", True): "D's first update differs from GANTrainer's: take every random number from one "
                 "torch.Generator().manual_seed(seed), the real batch sample_real(batch_size, gen) "
                 "first, then z = torch.randn(batch_size, G.z_dim, generator=gen); D's loss is "
                 "d_loss(D(real), D(fake.detach())) of the non-saturating pair; Adam with lr and "
                 "betas (0.5, 0.999)",
    ("G", True): "D's first update matches, G's does not: G's loss is g_loss(D(fake)) on the same "
                 "fake batch (not a new one), judged by D after D's step; then G's own Adam step",
    ("D", False): "the first step matches GANTrainer's but later ones do not: create the "
                  "torch.Generator and both optimisers once, before the loop, and clear each "
                  "network's gradients before its backward pass",
}
_LOOP_HINTS["G", False] = _LOOP_HINTS["D", False]


def check_gan_loop(answer, *, seed: int = 0) -> None:
    """``answer(G, D, sample_real, steps, *, batch_size, lr, seed)`` trains G and D in place as
    :class:`advlab.gan.GANTrainer` does (non-saturating loss): all parameters after 1 and after
    50 steps on the ring, to 1e-5."""
    G0, D0 = _tiny_gan(seed)
    settings = {"batch_size": 32, "lr": 1e-3, "seed": int(seed)}
    for steps in (1, 50):
        G, D = copy.deepcopy(G0), copy.deepcopy(D0)
        with torch.random.fork_rng(devices=[]):
            call(answer, G, D, _ring, steps, **settings)
        G_ref, D_ref = copy.deepcopy(G0), copy.deepcopy(D0)
        GANTrainer(G_ref, D_ref, _ring, loss="non-saturating", batch_size=settings["batch_size"],
                   lr_g=settings["lr"], lr_d=settings["lr"], seed=settings["seed"],
                   device="cpu").train(steps)
        untouched = all(torch.equal(p, q) for p, q in zip(
            [*G.parameters(), *D.parameters()], [*G0.parameters(), *D0.parameters()],
            strict=True))
        if untouched:
            raise ExerciseError(f"`{_name(answer)}` left G and D unchanged: train them in place "
                                "(optimiser steps on G.parameters() and D.parameters())")
        for net, mine, ref in (("D", D, D_ref), ("G", G, G_ref)):
            for (name, p), q in zip(mine.named_parameters(), ref.parameters(), strict=True):
                what = f"after {steps} step{'s' if steps > 1 else ''}, {net}'s parameter {name}"
                _hinted(lambda p=p, q=q, what=what: compare(p, q, what, atol=1e-5, rtol=0),
                        _LOOP_HINTS[net, steps == 1])
    passed(answer, "your loop trains G and D exactly as GANTrainer does (every parameter after 1 "
                   "and 50 steps)")


def _optimal_d_cases(seed: int):
    gen = _rng(seed)
    f64 = torch.float64
    normal = torch.distributions.Normal

    def n(loc, scale):
        return normal(torch.tensor(loc, dtype=f64), torch.tensor(scale, dtype=f64))

    grid = torch.linspace(-8.0, 10.0, 1801, dtype=f64)
    p_r = n(_uniform(gen, -1, 1), _uniform(gen, 0.6, 1.5))
    p_g = n(_uniform(gen, 0.5, 2.5), _uniform(gen, 0.4, 1.0))
    mix = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(torch.tensor([0.3, 0.7], dtype=f64)),
        normal(torch.tensor([-2.0, _uniform(gen, 0.5, 2.0)], dtype=f64),
               torch.tensor([0.5, 0.8], dtype=f64)))
    return [
        ("two normal densities", p_r, p_g, grid),
        ("p_r = p_g", p_r, p_r, grid),
        ("a mixture of two normals against a normal", mix, p_g, grid),
        ("N(0, 1) against N(8, 0.5²) on [-40, 40], where both densities underflow to 0 at the "
         "ends", n(0.0, 1.0), n(8.0, 0.5), torch.linspace(-40.0, 40.0, 2001, dtype=f64)),
    ]


def check_optimal_discriminator(answer, *, seed: int = 0) -> None:
    """``answer(p_r, p_g, x) -> (D*(x), V(D*))`` against
    :func:`advlab.gan.divergence.optimal_discriminator` on four pairs of 1-D densities."""
    for label, p_r, p_g, x in _optimal_d_cases(seed):
        result = call(answer, p_r, p_g, x.clone())
        d_star, value = _tuple(result, 2, answer, "D* on the grid and V(D*)")
        ref_d, ref_v = optimal_discriminator(p_r, p_g, x)
        if isinstance(d_star, torch.Tensor) and d_star.shape == ref_d.shape \
                and torch.isnan(d_star).any():
            i = int(torch.isnan(d_star).nonzero()[0])
            raise ExerciseError(
                f"D* is nan at x = {float(x[i]):.4g} ({label}): both densities are 0 there in "
                "floating point, so p_r / (p_r + p_g) is 0 / 0. Work with the log-densities: "
                "D* = sigmoid(log p_r - log p_g)")
        compare(d_star, ref_d, f"D* ({label})", atol=1e-9, rtol=1e-6)
        if isinstance(value, torch.Tensor) and value.numel() == 1 and torch.isnan(value):
            value = float("nan")
        if isinstance(value, float) and math.isnan(value):
            raise ExerciseError(
                f"V(D*) is nan ({label}): where a density is 0 its term is 0 * log 0. Use "
                "log D* = logsigmoid(log p_r - log p_g) and log(1 - D*) = "
                "logsigmoid(log p_g - log p_r), which stay finite")
        _hinted(lambda value=value, ref_v=ref_v, label=label: compare(
            value, ref_v, f"V(D*) ({label})", atol=1e-7, rtol=1e-6),
            "V(D*) is the sum over the grid of p_r log D* + p_g log(1 - D*), times the grid "
            "spacing x[1] - x[0]")
    passed(answer, "D* and V(D*) match advlab.gan.divergence.optimal_discriminator, also where "
                   "the densities underflow")


_LOSS_NAMES = ("the D loss", "the saturating G loss", "the non-saturating G loss")
_LOSS_REFS = (bce_d_loss, lambda real, fake: saturating_g_loss(fake),
              lambda real, fake: non_saturating_g_loss(fake))


def check_gan_losses(answer, *, seed: int = 0) -> None:
    """``answer(real_out, fake_out) -> (d_loss, saturating g_loss, non-saturating g_loss)`` on
    logits, values and gradients, against :mod:`advlab.gan.losses`, also at logits of ±100."""
    gen = _rng(seed)
    moderate = (3 * torch.randn(64, generator=gen), 3 * torch.randn(64, generator=gen))
    extreme = [torch.randn(16, generator=gen) for _ in range(2)]
    for logits, sign in zip(extreme, (1, -1), strict=True):
        logits[::2] = 100.0 * sign
        logits[1::4] = -100.0 * sign
    for label, (real0, fake0) in (("moderate logits", moderate),
                                  ("logits of ±100", tuple(extreme))):
        real, fake = real0.clone().requires_grad_(), fake0.clone().requires_grad_()
        result = _tuple(call(answer, real, fake), 3, answer,
                        "the D loss, the saturating and the non-saturating G loss")
        for name, got, ref_fn in zip(_LOSS_NAMES, result, _LOSS_REFS, strict=True):
            r, f = real0.clone().requires_grad_(), fake0.clone().requires_grad_()
            expected = ref_fn(r, f)
            if not isinstance(got, torch.Tensor):
                raise ExerciseError(f"{name} should be a tensor (a scalar that autograd can "
                                    f"differentiate), got {type(got).__name__}")
            if got.numel() == 1 and not torch.isfinite(got).all():
                raise ExerciseError(
                    f"{name} is {got.detach().item()} with {label}: log(sigmoid(l)) underflows there. "
                    "Write log D = log sigmoid(l) = -softplus(-l) and log(1 - D) = -softplus(l) "
                    "(torch.nn.functional.softplus or logsigmoid)")
            _hinted(lambda got=got, expected=expected, name=name, label=label: compare(
                got, expected, f"{name} ({label})", atol=1e-5, rtol=1e-5),
                "each loss is a mean over the batch; D's loss is -V, BCE with target 1 for real "
                "and 0 for fake")
            if not got.requires_grad:
                raise ExerciseError(f"{name} does not depend on the logits through autograd: "
                                    "compute it with torch operations on real_out and fake_out")
            mine = torch.autograd.grad(got, (real, fake), allow_unused=True, retain_graph=True)
            theirs = torch.autograd.grad(expected, (r, f), allow_unused=True)
            for which, g, e, x in zip(("real_out", "fake_out"), mine, theirs, (real, fake),
                                      strict=True):
                g = torch.zeros_like(x) if g is None else g
                e = torch.zeros_like(x) if e is None else e
                compare(g, e, f"the gradient of {name} with respect to {which} ({label})",
                        atol=1e-7, rtol=1e-4)
    passed(answer, "the D loss and both G losses match advlab.gan.losses, values and gradients, "
                   "also at logits of ±100")


# --- notebook 09 -------------------------------------------------------------------------------

def _around(gen, centers, n, low, high, std):
    """``n`` points at distance in [low, high] * std from randomly chosen ``centers``."""
    mode = torch.randint(len(centers), (n,), generator=gen)
    angle = 2 * math.pi * torch.rand(n, generator=gen)
    radius = std * (low + (high - low) * torch.rand(n, generator=gen))
    return centers[mode] + radius[:, None] * torch.stack([angle.cos(), angle.sin()], 1)


def _coverage_cases(seed: int):
    gen = _rng(seed)
    centers, std = toy_2d_modes("grid")
    centers = centers.float()
    subset = centers[torch.randperm(len(centers), generator=gen)[:15]]
    far = 10 * torch.rand(150, 2, generator=gen) - 5
    distance = torch.cdist(far.double(), centers.double()).min(1).values / std
    far = far[(distance - 3).abs() > 0.1]          # none within 3 % of the threshold
    grid = torch.cat([_around(gen, subset, 300, 0.0, 2.9, std),
                      _around(gen, centers, 100, 3.1, 10.0, std), far])
    grid = grid[torch.randperm(len(grid), generator=gen)]
    ring_centers, ring_std = toy_2d_modes("ring")
    ring_centers = ring_centers.float()
    k = int(torch.randint(len(ring_centers), (), generator=gen))
    collapsed = torch.cat([_around(gen, ring_centers[k:k + 1], 200, 0.0, 2.5, ring_std),
                           _around(gen, ring_centers, 50, 4.0, 20.0, ring_std)])
    nowhere = _around(gen, centers, 40, 3.5, 8.0, std)
    return [("grid samples, 15 of 25 modes hit", grid, centers, std),
            ("a ring generator collapsed onto one mode", collapsed, ring_centers, ring_std),
            ("samples of which none is high quality", nowhere, centers, std)]


def check_mode_coverage(answer, *, seed: int = 0) -> None:
    """``answer(samples, centers, std) -> (modes_covered, high_quality, counts)`` against
    :func:`advlab.metrics.mode_coverage` on grid and ring samples."""
    for label, samples, centers, std in _coverage_cases(seed):
        result = call(answer, samples.clone(), centers.clone(), std)
        modes, hq, counts = _tuple(result, 3, answer, "modes_covered, high_quality, counts")
        ref = metrics.mode_coverage(samples, centers, std)
        if isinstance(counts, torch.Tensor) and counts.shape == ref.counts.shape:
            if counts.is_floating_point() or counts.dtype == torch.bool:
                raise ExerciseError(f"counts ({label}) should be integers (e.g. "
                                    f"torch.bincount), got dtype {counts.dtype}")
            total = int(counts.sum())
            if total == len(samples) and total != int(ref.counts.sum()):
                raise ExerciseError(f"counts ({label}) holds all {total} samples: count only "
                                    f"the high-quality ones (within 3 std of their nearest mode)")
        compare(counts, ref.counts, f"counts, the high-quality samples per mode ({label})",
                exact=True, check_dtype=False)
        if isinstance(hq, (int, float)) and hq > 1:
            raise ExerciseError(f"high_quality ({label}) is {hq}: it is the fraction of all "
                                "samples that are high quality, between 0 and 1")
        compare(hq, ref.high_quality, f"high_quality ({label})", atol=1e-6, rtol=0)
        compare(modes, ref.modes_covered, f"modes_covered ({label})", exact=True)
    passed(answer, "modes covered, high-quality fraction and counts match "
                   "advlab.metrics.mode_coverage")


def check_reverse_kl(answer, *, seed: int = 0) -> None:
    """``answer(counts) -> KL(q || uniform)`` of a histogram, against
    :func:`advlab.metrics.kl_to_uniform` (empty bins included)."""
    gen = _rng(seed)
    skewed = torch.randint(0, 60, (25,), generator=gen)
    skewed[torch.randperm(25, generator=gen)[:8]] = 0
    k = int(torch.randint(8, (), generator=gen))
    cases = [("a histogram over 25 modes without empty modes",
              torch.randint(1, 60, (25,), generator=gen)),
             ("a histogram over 25 modes with 8 empty ones", skewed),
             ("a uniform histogram", torch.full((8,), 40, dtype=torch.long)),
             ("all samples in one of 8 modes", torch.zeros(8, dtype=torch.long).index_fill_(
                 0, torch.tensor([k]), 300))]
    for label, counts in cases:
        got = call(answer, counts.clone())
        expected = metrics.kl_to_uniform(counts)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, float) and not math.isfinite(got):
            raise ExerciseError(
                f"your reverse KL is {got} for {label}: empty modes add 0 (0 log 0 = 0), so "
                "leave them out of the sum; it is KL(q || uniform), with q first")
        compare(got, expected, f"the reverse KL of {label}", atol=1e-6, rtol=1e-6)
    passed(answer, "the reverse KL matches advlab.metrics.kl_to_uniform, empty modes included")


# --- notebook 10 -------------------------------------------------------------------------------

def check_feature_matching(answer, *, seed: int = 0) -> None:
    """``answer(D, real, fake)`` against :func:`advlab.gan.tricks.feature_matching_loss`: value,
    gradient with respect to the fake batch and to D's weights (the real features are a target)."""
    gen = _rng(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        D = MLPDiscriminator((2,), (16, 16))
    real = toy_2d("ring", 64, generator=gen)
    for label, n_fake in (("real and fake batches of 64", 64),
                          ("64 real samples, 48 fake ones", 48)):
        fake0 = 0.7 * torch.randn(n_fake, 2, generator=gen)
        fake = fake0.clone().requires_grad_()
        got = call(answer, D, real.clone(), fake)
        if any(p.grad is not None for p in D.parameters()):
            raise ExerciseError("D's parameters have gradients after the call: return the loss "
                                "without calling backward()")
        ref_fake = fake0.clone().requires_grad_()
        expected = feature_matching_loss(D, real, ref_fake)
        if not isinstance(got, torch.Tensor):
            raise ExerciseError(f"the loss should be a tensor, got {type(got).__name__}")
        _hinted(lambda got=got, expected=expected, label=label: compare(
            got, expected, f"the feature matching loss ({label})", atol=1e-6, rtol=1e-5),
            "take the mean of D.features over each batch, then the squared Euclidean norm of "
            "the difference of the two means (a sum over features, not a mean)")
        if not got.requires_grad:
            raise ExerciseError("the loss does not depend on the fake batch through autograd")
        params = list(D.parameters())
        mine = torch.autograd.grad(got, [fake, *params], allow_unused=True)
        theirs = torch.autograd.grad(expected, [ref_fake, *params], allow_unused=True)
        compare(mine[0], theirs[0], f"the gradient with respect to the fake batch ({label})",
                atol=1e-7, rtol=1e-4)
        for (name, p), g, e in zip(D.named_parameters(), mine[1:], theirs[1:], strict=True):
            g = torch.zeros_like(p) if g is None else g
            e = torch.zeros_like(p) if e is None else e
            _hinted(lambda g=g, e=e, name=name, label=label: compare(
                g, e, f"the gradient with respect to D's {name} ({label})", atol=1e-7,
                rtol=1e-4),
                "the real features are a fixed target: detach them, so the loss reaches D's "
                "weights only through the fake batch")
    passed(answer, "your feature matching loss matches advlab.gan.tricks.feature_matching_loss "
                   "(value and gradients)")


def check_batch_features(answer, *, seed: int = 0) -> None:
    """``answer(f, T) -> o`` with T ``(A, B, C)`` against
    :meth:`advlab.gan.layers.MinibatchDiscrimination.batch_features`: values, gradients, and
    N - 1 in every kernel for a batch of N copies."""
    gen = _rng(seed)
    A, B, C, N = 6, 5, 3, 20
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        layer = MinibatchDiscrimination(A, kernels=B, kernel_dim=C)
    f0 = 0.3 * torch.randn(N, A, generator=gen)
    copies = f0[:1].expand(N, A).clone()
    weights = torch.randn(N, B, generator=gen)
    for label, feats in (("20 different feature rows", f0), ("20 copies of one row", copies)):
        f = feats.clone().requires_grad_()
        T = layer.T.detach().view(A, B, C).clone().requires_grad_()
        got = call(answer, f, T)
        f_ref = feats.clone().requires_grad_()
        expected = layer.batch_features(f_ref)
        if isinstance(got, torch.Tensor) and got.shape == (B, N):
            raise ExerciseError(f"o has shape {tuple(got.shape)}, expected {(N, B)}: one row per "
                                "sample, one column per kernel")
        if isinstance(got, torch.Tensor) and got.shape == expected.shape and torch.allclose(
                got.detach() - expected.detach(), torch.ones_like(expected), atol=1e-4):
            raise ExerciseError(f"every value of o is 1 too large ({label}): the sum runs over "
                                "j != i, so leave out the sample itself (its term is exp(0) = 1)")
        compare(got, expected, f"o(f) ({label})", atol=1e-5, rtol=1e-5)
        if not got.requires_grad:
            raise ExerciseError("o does not depend on f and T through autograd: D learns "
                                "through these features, so compute them with torch operations")
        mine = torch.autograd.grad((got * weights).sum(), (f, T), allow_unused=True)
        theirs = torch.autograd.grad((expected * weights).sum(), (f_ref, layer.T))
        for which, g, e, x in zip(("f", "T"), mine, theirs, (f, T), strict=True):
            g = torch.zeros_like(x) if g is None else g
            compare(g, e.view_as(x), f"the gradient of o with respect to {which} ({label})",
                    atol=1e-5, rtol=1e-4)
    passed(answer, "your batch features match MinibatchDiscrimination.batch_features (values "
                   "and gradients; N - 1 for N copies)")


def check_averaged_play(answer, *, seed: int = 0) -> None:
    """``answer(x, y, *, eta, weight, steps)`` against :func:`advlab.gan.tricks.bilinear_play`
    (alternating play on V = x y with historical averaging): the whole path, to 1e-6."""
    gen = _rng(seed)
    start = (_uniform(gen, -1.5, 1.5), _uniform(gen, -1.5, 1.5))
    cases = [(start, {"eta": 0.1, "weight": 0.0, "steps": 50}),
             ((1.0, 1.0), {"eta": 0.1, "weight": 0.1, "steps": 200}),
             (start, {"eta": round(_uniform(gen, 0.05, 0.2), 3),
                      "weight": round(_uniform(gen, 0.05, 0.5), 3), "steps": 100})]
    for (x, y), kw in cases:
        got = call(answer, x, y, **kw)
        expected = bilinear_play(x, y, **kw)
        label = (f"from ({x:.3f}, {y:.3f}) with eta={kw['eta']}, weight={kw['weight']}, "
                 f"steps={kw['steps']}")
        if isinstance(got, torch.Tensor) and not got.is_floating_point():
            raise ExerciseError(f"the path should hold floats, got dtype {got.dtype}")
        hint = ("without averaging, x moves first, x <- x - eta y, then y answers the new x, "
                "y <- y + eta x" if kw["weight"] == 0 else
                "each player's mean runs over all its values so far: the start, every value "
                "after an update, the current one included; the penalty weight (theta - mean)^2 "
                "adds 2 weight (x - mean of x) to x's gradient and 2 weight (y - mean of y) to "
                "the gradient y descends on -x y")
        _hinted(lambda got=got, expected=expected, label=label: compare(
            got, expected, f"the path {label}", atol=1e-6, rtol=1e-5, check_dtype=False), hint)
    passed(answer, "your play matches advlab.gan.tricks.bilinear_play, with and without "
                   "historical averaging")

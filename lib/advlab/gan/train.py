"""One GAN training loop for every GAN in the course; losses and tricks plug into it.

Per step, in the order of the course notes (see :mod:`advlab.gan.tricks` for the hooks):

1. D on a real batch,
2. generate a fake batch (once; the same batch is reused for G's step),
3. D on the fake batch (detached), D's loss, D's optimiser step (``n_critic`` times 1-3),
4. G to fool D: the now-updated D judges the same fake batch, G's optimiser step. G's backward
   pass computes gradients for G's parameters only, so D is never changed by G's step.

Packing (PacGAN, Lin et al. 2018): a D with ``D.pack = m > 1`` (e.g.
``MLPDiscriminator(pack=m)``) judges m samples at once. The trainer then draws ``m * batch_size``
real samples and ``m * batch_size`` latents per step, so D still gives ``batch_size`` verdicts per
batch, each on a pack of m, for D's step and G's step alike (the PacGAN protocol). With ``m = 1``
the loop draws exactly what it drew before packing existed.

Losses are recorded as tensors and only looked at every ``check_every`` steps (no per-step
``.item()``), where non-finite values stop training with :class:`GANDivergedError`. Snapshots
(models, optimisers, RNG states, trick state, loss history, step) go through the atomic
:func:`advlab.checkpoints.save` only after such a check, so the last snapshot on disk is always a
good one, and a run resumed from it repeats the uninterrupted run bit for bit on CPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .. import checkpoints
from ..checks import check_int, check_labels, check_number, eval_mode
from ..data import ImageSet
from ..runtime import device as default_device
from .losses import get_loss
from .tricks import HOOKS, overriding

OPTIMIZERS = ("adam", "rmsprop")


class GANDivergedError(RuntimeError):
    """A loss or parameter became NaN / inf; ``step``, ``what`` and the last good snapshot."""

    def __init__(self, what: str, step: int, snapshot_step: int | None,
                 snapshot_path: Path | None):
        self.what, self.step = what, step
        self.snapshot_step, self.snapshot_path = snapshot_step, snapshot_path
        hint = (f"The last good snapshot (step {snapshot_step}) is {snapshot_path}; load it with "
                "GANTrainer.load_snapshot and retry with smaller learning rates."
                if snapshot_path is not None else
                "No snapshot was written; pass snapshot_path= and snapshot_every= to keep one.")
        super().__init__(f"GAN training diverged: {what} became non-finite at step {step}. {hint}")


@dataclass
class Step:
    """What the hooks and the callback see of the current step (``step`` counts from 1)."""

    trainer: GANTrainer
    step: int
    G: nn.Module
    D: nn.Module
    generator: torch.Generator
    critic_iter: int = 0
    real: torch.Tensor | None = None
    real_labels: torch.Tensor | None = None
    z: Any = None
    fake: torch.Tensor | None = None
    d_real: Any = None
    d_fake: Any = None
    d_fake_g: Any = None
    d_loss: torch.Tensor | None = None
    g_loss: torch.Tensor | None = None


def _adversarial(out):
    """The logits the loss judges: D's output, or its first element when D returns a tuple."""
    return out[0] if isinstance(out, tuple) else out


class GANTrainer:
    """Train generator ``G`` against discriminator ``D`` on ``data``.

    ``data``: a tensor of real samples ``(N, ...)`` (batches are drawn with replacement), an
    ``(samples, labels)`` pair or :class:`~advlab.data.ImageSet`, or a function
    ``sample(batch_size, generator)`` returning a batch (or a ``(batch, labels)`` pair), e.g.
    ``lambda n, g: advlab.data.toy_2d("ring", n, generator=g)``. Images must already be in G's
    output range ([-1, 1]: convert with :func:`advlab.models.to_signed`).

    ``loss``: a name in :data:`advlab.gan.losses.LOSSES` or a ``GANLoss``; ``real_label < 1``
    is one-sided label smoothing. Separate optimisers (``"adam"`` with ``betas``, fused where
    the device allows, or ``"rmsprop"``) with learning rates ``lr_g`` and ``lr_d``; ``n_critic``
    D steps per G step; ``tricks``: objects with hooks (:mod:`advlab.gan.tricks`; penalties
    and constraints such as :class:`advlab.gan.wgan.GradientPenalty` are tricks too);
    ``lr_schedule(step, steps) -> factor``: both learning rates become ``lr * factor`` after
    each step of a run of ``steps`` (e.g. :func:`linear_decay`). All randomness of the loop
    (real batches, z, the tricks' noise and interpolates) comes from ``self.generator``, seeded
    by ``seed``.

    Packing: ``self.pack = getattr(D, "pack", 1)``. A D that packs ``m`` samples into one input
    gets ``m * batch_size`` real samples and ``m * batch_size`` fakes per call (a data function
    is asked for ``m * batch_size``), so it returns ``batch_size`` logits, as in PacGAN; ``ctx.real``
    and ``ctx.fake`` hold the unpacked samples. ``pack=1`` draws exactly ``batch_size`` of each.
    """

    def __init__(self, G: nn.Module, D: nn.Module, data, *, loss="non-saturating",
                 batch_size: int = 64, lr_g: float = 2e-4, lr_d: float = 2e-4,
                 betas=(0.5, 0.999), n_critic: int = 1, z_dim: int | None = None,
                 real_label: float = 1.0, tricks=(), optimizer: str = "adam", seed: int = 0,
                 lr_schedule: Callable[[int, int], float] | None = None, device=None):
        if not isinstance(G, nn.Module) or not isinstance(D, nn.Module):
            raise TypeError(f"G and D must be torch.nn.Module, got {type(G).__name__} and "
                            f"{type(D).__name__}")
        self.loss = get_loss(loss)
        self.batch_size = check_int(batch_size, "batch_size")
        self.n_critic = check_int(n_critic, "n_critic")
        lr_g, lr_d = check_number(lr_g, "lr_g", low=0, strict=True), check_number(lr_d, "lr_d", low=0, strict=True)
        z_dim = getattr(G, "z_dim", None) if z_dim is None else z_dim
        if z_dim is None:
            raise ValueError("z_dim must be given (G has no z_dim attribute)")
        self.z_dim = check_int(z_dim, "z_dim")
        check_number(real_label, "real_label", low=0, high=1, strict=True)
        if real_label != 1 and not self.loss.smoothable:
            raise ValueError(f"real_label must be 1 for loss {self.loss.name!r} (no labels)")
        self.real_label = float(real_label)
        betas = tuple(betas)
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        if lr_schedule is not None and not callable(lr_schedule):
            raise TypeError("lr_schedule must be callable(step, steps) -> factor, got "
                            f"{type(lr_schedule).__name__}")
        self.lr_schedule = lr_schedule
        self.tricks = list(tricks) if isinstance(tricks, (list, tuple)) else [tricks]
        if not all(any(hasattr(t, h) for h in HOOKS) for t in self.tricks):
            raise TypeError(f"each trick must define at least one hook of {HOOKS}")
        self._hooks = {h: overriding(self.tricks, h) for h in HOOKS}
        self.device = torch.device(device) if device is not None else default_device()
        self.G, self.D = G.to(self.device), D.to(self.device)
        self.pack = check_int(getattr(D, "pack", 1), "D.pack")
        self._sample_real = self._make_sampler(data)
        self.seed = seed
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.opt_g = self._optimizer(optimizer, G.parameters(), lr_g, betas)
        self.opt_d = self._optimizer(optimizer, D.parameters(), lr_d, betas)
        self._g_params = [p for p in G.parameters() if p.requires_grad]
        self._d_params = [p for p in D.parameters() if p.requires_grad]
        self.config = {"loss": self.loss.name, "batch_size": self.batch_size,
                       "n_critic": self.n_critic, "z_dim": self.z_dim, "lr_g": lr_g,
                       "lr_d": lr_d, "betas": list(betas), "real_label": self.real_label,
                       "optimizer": optimizer, "seed": seed,
                       "tricks": [type(t).__name__ for t in self.tricks]}
        if self.pack > 1:  # only then: snapshots of unpacked runs keep their config
            self.config["pack"] = self.pack
        if lr_schedule is not None:
            self.config["lr_schedule"] = getattr(lr_schedule, "__qualname__",
                                                 type(lr_schedule).__name__)
        self.step = 0
        self.history = {"d_loss": torch.empty(0), "g_loss": torch.empty(0)}
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._last_snapshot: tuple[int, Path] | None = None

    # -- set-up ------------------------------------------------------------------------------

    def _optimizer(self, name, params, lr, betas):
        if name == "rmsprop":
            return torch.optim.RMSprop(params, lr=lr)
        fused = self.device.type in ("cpu", "cuda")
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused)

    def _make_sampler(self, data):
        if callable(data) and not isinstance(data, torch.Tensor):
            def sample_fn():
                out = data(self.pack * self.batch_size, self.generator)
                return out if isinstance(out, tuple) else (out, None)
            return sample_fn
        if isinstance(data, ImageSet):
            data = (data.images, data.labels)
        x, y = data if isinstance(data, (tuple, list)) and len(data) == 2 else (data, None)
        if not isinstance(x, torch.Tensor) or x.dim() < 2 or len(x) == 0:
            raise TypeError("data must be a tensor (N, ...), a (samples, labels) pair, an "
                            "ImageSet or a function sample(batch_size, generator)")
        if y is not None and len(y) != len(x):
            raise ValueError(f"labels must have length {len(x)}, got {len(y)}")
        x = x.to(self.device, torch.float32)
        y = y.to(self.device) if y is not None else None
        n, size = len(x), (self.pack * self.batch_size,)  # m samples per verdict of a packing D

        def sample_tensor():
            idx = torch.randint(n, size, generator=self.generator, device=self.device)
            return x[idx], (y[idx] if y is not None else None)
        return sample_tensor

    # -- one step ----------------------------------------------------------------------------

    def _d(self, x, ctx):
        for hook in self._hooks["d_inputs"]:
            x = hook(x, ctx)
        return self.D(x)

    def _generate(self, ctx, keep_graph: bool):
        z = torch.randn(self.pack * self.batch_size, self.z_dim, generator=self.generator,
                        device=self.device)
        for hook in self._hooks["latent"]:
            z = hook(z, ctx)
        ctx.z = z
        with torch.set_grad_enabled(keep_graph):
            return self.G(*z) if isinstance(z, tuple) else self.G(z)

    def _step(self, t: int) -> Step:
        hooks, loss = self._hooks, self.loss
        ctx = Step(self, t, self.G, self.D, self.generator)
        for hook in hooks["before_step"]:
            hook(ctx)
        for k in range(self.n_critic):
            ctx.critic_iter = k
            ctx.real, ctx.real_labels = self._sample_real()          # 1. D on real
            ctx.d_real = self._d(ctx.real, ctx)
            ctx.fake = fake = self._generate(ctx, k == self.n_critic - 1)  # 2. generate fake
            ctx.d_fake = self._d(fake.detach(), ctx)                  # 3. D on fake
            d_loss = loss.d_loss(_adversarial(ctx.d_real), _adversarial(ctx.d_fake),
                                 self.real_label)
            for hook in hooks["d_loss"]:
                d_loss = hook(d_loss, ctx)
            ctx.d_loss = d_loss
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward(inputs=self._d_params)
            self.opt_d.step()
            for hook in hooks["after_d_step"]:
                hook(ctx)
        ctx.d_fake_g = self._d(fake, ctx)                             # 4. G to fool D
        g_loss = loss.g_loss(_adversarial(ctx.d_fake_g))
        for hook in hooks["g_loss"]:
            g_loss = hook(g_loss, ctx)
        ctx.g_loss = g_loss
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward(inputs=self._g_params)  # gradients for G only: D stays as it is
        self.opt_g.step()
        for hook in hooks["after_g_step"]:
            hook(ctx)
        return ctx

    # -- the loop ----------------------------------------------------------------------------

    def train(self, steps: int, *, callback=None, snapshot_every: int = 0, snapshot_path=None,
              resume: bool = False, check_every: int = 100, progress: bool = False) -> dict:
        """Run until ``steps`` steps in total have been done; return :attr:`history`.

        ``callback(ctx)`` runs after every step with the :class:`Step` (losses as tensors: call
        ``.item()`` only every few steps). Every ``snapshot_every`` steps and at the end the
        state goes to ``snapshot_path``; ``resume=True`` first loads that file if it exists.
        NaN / inf losses or parameters raise :class:`GANDivergedError` at the next check
        (every ``check_every`` steps, before each snapshot and at the end).
        """
        check_int(steps, "steps")
        check_int(snapshot_every, "snapshot_every", low=0)
        check_int(check_every, "check_every")
        if (snapshot_every or resume) and snapshot_path is None:
            raise ValueError("snapshot_path must be given with snapshot_every > 0 or resume=True")
        path = Path(snapshot_path) if snapshot_path is not None else None
        if resume and path.is_file():
            self.load_snapshot(path)
        if steps < self.step:
            raise ValueError(f"steps must be >= the {self.step} steps already done, got {steps}")
        self.G.train()
        self.D.train()
        start = time.perf_counter()
        bar = tqdm(total=steps, initial=self.step, desc="GAN steps", disable=not progress,
                   leave=False)
        pending = self._pending
        for t in range(self.step + 1, steps + 1):
            ctx = self._step(t)
            self.step = t
            pending.append((ctx.d_loss.detach(), ctx.g_loss.detach()))
            if self.lr_schedule is not None:
                self._set_lr(self.lr_schedule(t, steps))
            if callback is not None:
                callback(ctx)
            if t % check_every == 0:
                self._check()
                bar.update(check_every)
            if snapshot_every and t % snapshot_every == 0:
                self.snapshot(path)
        self._check()
        if path is not None and self._last_snapshot != (self.step, path):
            self.snapshot(path)
        bar.close()
        return {**self.history, "seconds": time.perf_counter() - start, "steps": self.step}

    def _set_lr(self, factor: float) -> None:
        for opt, lr0 in ((self.opt_g, self.config["lr_g"]), (self.opt_d, self.config["lr_d"])):
            for group in opt.param_groups:
                group["lr"] = max(lr0 * factor, 1e-12)  # Adam refuses lr = 0 on some versions

    def _check(self) -> None:
        """Move pending losses to the history; raise if any loss or parameter is not finite."""
        if self._pending:
            d, g = (torch.stack(col).float().cpu() for col in zip(*self._pending, strict=True))
            first = self.step - len(d) + 1
            self._pending.clear()
            self.history = {"d_loss": torch.cat([self.history["d_loss"], d]),
                            "g_loss": torch.cat([self.history["g_loss"], g])}
            d_ok, g_ok = torch.isfinite(d), torch.isfinite(g)
            bad = ~(d_ok & g_ok)
            if bad.any():
                i = int(bad.nonzero()[0])
                keep = len(self.history["d_loss"]) - len(d) + i + 1
                self.history = {k: v[:keep] for k, v in self.history.items()}
                name, value = ("discriminator", d[i]) if not d_ok[i] else ("generator", g[i])
                raise self._diverged(f"the {name} loss ({float(value)})", first + i)
        for name, model in (("G", self.G), ("D", self.D)):
            if not torch.stack([p.isfinite().all() for p in model.parameters()]).all():
                raise self._diverged(f"a parameter of {name}", self.step)

    def _diverged(self, what: str, step: int) -> GANDivergedError:
        snap = self._last_snapshot
        return GANDivergedError(what, step, snap[0] if snap else None, snap[1] if snap else None)

    # -- snapshots and sampling --------------------------------------------------------------

    def state_dict(self) -> dict:
        self._check()
        rng = {"torch": torch.get_rng_state(), "loop": self.generator.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {"config": self.config, "step": self.step,
                "G": self.G.state_dict(), "D": self.D.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "tricks": [t.state_dict() if hasattr(t, "state_dict") else {}
                           for t in self.tricks],
                "rng": rng, "history": dict(self.history)}

    def load_state_dict(self, state: dict) -> None:
        diff = sorted(k for k in self.config if state["config"].get(k) != self.config[k])
        if diff:
            raise ValueError(f"snapshot was made with a different config ({', '.join(diff)}); "
                             f"got {state['config']}, expected {self.config}")
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for trick, trick_state in zip(self.tricks, state["tricks"], strict=True):
            if hasattr(trick, "load_state_dict"):
                trick.load_state_dict(trick_state)
        torch.set_rng_state(state["rng"]["torch"])
        self.generator.set_state(state["rng"]["loop"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self.step = state["step"]
        self.history = dict(state["history"])
        self._pending.clear()

    def snapshot(self, path) -> Path:
        """Check for divergence, then write the full training state atomically to ``path``."""
        path = checkpoints.save(self.state_dict(), path)
        self._last_snapshot = (self.step, path)
        return path

    def load_snapshot(self, path) -> None:
        """Restore the state saved by :meth:`snapshot` (same models, tricks and config)."""
        self.load_state_dict(checkpoints.load(path, map_location=self.device))
        self._last_snapshot = (self.step, Path(path))

    @torch.no_grad()
    def sample(self, n: int, *, labels: torch.Tensor | None = None,
               seed: int | None = None) -> torch.Tensor:
        """``n`` samples of G in eval mode from fixed noise (``seed``, default ``self.seed + 1``);
        a conditional G gets ``labels`` (``(n,)`` class indices) as ``G(z, labels)``.

        Uses its own generator, so sampling inside a callback never changes the training run.
        """
        gen = torch.Generator(self.device).manual_seed(self.seed + 1 if seed is None else seed)
        z = torch.randn(check_int(n, "n"), self.z_dim, generator=gen, device=self.device)
        with torch.no_grad(), eval_mode(self.G):
            if labels is None:
                return self.G(z)
            return self.G(z, check_labels(labels, n).to(self.device))


def linear_decay(decay_from: float) -> Callable[[int, int], float]:
    """An ``lr_schedule``: factor 1 until step ``floor(decay_from * steps)``, then linearly to 0
    at the last step (the PacGAN toy protocol: Adam's jitter alone would spread the samples)."""
    decay_from = check_number(decay_from, "decay_from", low=0, high=1)

    def factor(step: int, steps: int) -> float:
        start = math.floor(decay_from * steps)
        return (steps - step) / (steps - start) if step >= start and steps > start else 1.0

    factor.__qualname__ = f"linear_decay({decay_from})"
    return factor


def train_gan(G: nn.Module, D: nn.Module, data, *, steps: int, callback=None,
              snapshot_every: int = 0, snapshot_path=None, resume: bool = False,
              check_every: int = 100, progress: bool = False, **settings):
    """Build a :class:`GANTrainer` from ``settings`` and train it; return ``(trainer, history)``."""
    trainer = GANTrainer(G, D, data, **settings)
    history = trainer.train(steps, callback=callback, snapshot_every=snapshot_every,
                            snapshot_path=snapshot_path, resume=resume, check_every=check_every,
                            progress=progress)
    return trainer, history

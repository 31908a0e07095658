"""2-D toy GAN runs for ablations: one cached run per (fixes, mixture, seed), many in parallel.

    record = toy_run(TrickSet(instance_noise=True), "grid", seed=0, steps=3000, lr=2e-3)
    records = toy_runs([(TrickSet(), "ring", s, 1500, {"lr": 4e-3}) for s in range(3)])

A run trains :class:`~advlab.gan.tricks.TrickSet`-built MLPs with :class:`~advlab.gan.GANTrainer`
on :func:`advlab.data.toy_2d` and returns generator samples for
:func:`advlab.metrics.mode_coverage` (this module stays below ``metrics`` in the layering). Both
learning rates decay linearly to zero over the last ``1 - decay_from`` of training (the trainer's
``lr_schedule``): the PacGAN protocol counts a ring sample only within 0.03 of a mode, and at
short budgets Adam's step-to-step jitter alone spreads samples wider than that.

Records go through the course cache (:func:`advlab.checkpoints.cached_record`), keyed by the run's
settings and the source of the code that trains it, so an edited GAN package retrains. ``toy_runs`` hands runs to worker processes (one thread each): the networks are so
small that a step costs Python overhead, not arithmetic, so two processes are ~2x one.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial

import torch

from .. import checkpoints
from ..checks import check_int
from ..data import TOY_2D, toy_2d
from .train import GANTrainer, linear_decay
from .tricks import TrickSet

CODE = ("advlab.gan", "advlab.models", "advlab.data", "advlab.checks")  # what a record depends on


def _sampler(dataset: str, n: int, generator: torch.Generator) -> torch.Tensor:
    return toy_2d(dataset, n, generator=generator)


def _config(tricks, dataset, seed, steps, hidden=(64, 64, 64), batch_size=128, lr=2e-3,
            betas=(0.5, 0.999), z_dim=2, decay_from=0.5, n_samples=2500) -> dict:
    if not isinstance(tricks, TrickSet):
        raise TypeError(f"tricks must be an advlab.gan.tricks.TrickSet, got {type(tricks).__name__}")
    if dataset not in TOY_2D:
        raise ValueError(f"dataset must be one of {TOY_2D}, got {dataset!r}")
    check_int(steps, "steps")
    if not 0 <= decay_from <= 1:
        raise ValueError(f"decay_from must be in [0, 1], got {decay_from!r}")
    return {"dataset": dataset, "seed": seed, "steps": steps,
            "hidden": list(hidden), "batch_size": batch_size, "lr": lr, "betas": list(betas),
            "z_dim": z_dim, "decay_from": decay_from, "n_samples": n_samples,
            "tricks": tricks.config()}


def toy_run(tricks: TrickSet, dataset: str, seed: int, steps: int, *, cache: bool = True,
            **settings) -> dict:
    """Train (or load) one run; return ``{"samples", "G", "config", "seconds", "hit", ...}``.

    Settings (defaults): ``hidden=(64, 64, 64)`` for both networks, ``batch_size=128``,
    ``lr=2e-3`` for both, ``betas=(0.5, 0.999)``, ``z_dim=2``, ``decay_from=0.5``,
    ``n_samples=2500``. ``samples``: generator outputs from fixed noise, on the CPU; ``G``: its
    state dict; ``seconds`` / ``cpu_seconds``: wall-clock / CPU time of the training that made the
    record (the CPU time is what a run costs on an idle machine).
    """
    config = _config(tricks, dataset, seed, steps, **settings)

    def compute():
        c = config
        torch.manual_seed(seed)
        G = tricks.generator(c["z_dim"], (2,), c["hidden"], seed=seed)
        D = tricks.discriminator((2,), c["hidden"])
        trainer = GANTrainer(G, D, partial(_sampler, dataset), batch_size=c["batch_size"],
                             lr_g=c["lr"], lr_d=c["lr"], betas=c["betas"],
                             tricks=tricks.hooks(steps), seed=seed, device="cpu",
                             lr_schedule=linear_decay(c["decay_from"]),
                             **tricks.trainer_kwargs())
        start, cpu_start = time.perf_counter(), time.process_time()
        trainer.train(steps, check_every=500)
        return {"config": config, "samples": trainer.sample(c["n_samples"]).cpu(),
                "G": {k: v.detach().cpu() for k, v in G.state_dict().items()},
                "seconds": time.perf_counter() - start,
                "cpu_seconds": time.process_time() - cpu_start}

    record = checkpoints.cached_record("gan-toy", config, compute, code=CODE, cache=cache)
    record.pop("path")
    return record


def _worker_init() -> None:
    torch.set_num_threads(1)


def _star(job):
    args, settings = job
    return toy_run(*args, **settings)


def toy_runs(jobs, *, workers: int | None = None, **settings) -> list[dict]:
    """:func:`toy_run` for each job ``(tricks, dataset, seed, steps[, job_settings])``, in order.

    ``settings`` go to every run; a job's own ``job_settings`` dict (e.g. ``{"lr": 4e-3}``)
    overrides them. Cached runs load here; the others train in ``workers`` processes (default:
    one per CPU core, at most 8, or ``ADVLAB_WORKERS``), longest first; ``workers=1`` trains in
    this process.
    """
    if workers is None:
        env = os.environ.get("ADVLAB_WORKERS", "").strip()
        workers = int(env) if env.isdigit() else min(8, os.cpu_count() or 1)
    check_int(workers, "workers")
    tasks = []
    for job in jobs:
        job = tuple(job)
        if len(job) not in (4, 5):
            raise ValueError(f"each job must be (tricks, dataset, seed, steps[, settings]), got {job!r}")
        tasks.append((job[:4], {**settings, **(job[4] if len(job) == 5 else {})}))
    records: list[dict | None] = []
    for args, kwargs in tasks:
        path = checkpoints.cache_path("gan-toy", _config(*args, **kwargs), code=CODE)
        records.append({**checkpoints.load(path), "hit": True} if path.is_file() else None)
    todo = sorted((i for i, r in enumerate(records) if r is None),
                  key=lambda i: -tasks[i][0][3])  # longest runs first: better load balance
    if workers == 1 or len(todo) < 2:
        done = [_star(tasks[i]) for i in todo]
    else:
        context = multiprocessing.get_context("spawn")  # forking a threaded torch can hang
        try:
            with ProcessPoolExecutor(min(workers, len(todo)), mp_context=context,
                                     initializer=_worker_init) as pool:
                done = list(pool.map(_star, [tasks[i] for i in todo]))
        except BrokenProcessPool:
            warnings.warn("toy_runs: the worker processes died (a script must call toy_runs under "
                          "`if __name__ == '__main__':`); training in this process instead",
                          RuntimeWarning, stacklevel=2)
            done = [_star(tasks[i]) for i in todo]
    for i, record in zip(todo, done, strict=True):
        records[i] = record
    return records

"""2-D toy GAN runs for ablations: one cached run per (fixes, mixture, seed), many in parallel;
notebook 10's ablation itself (:data:`ABLATION`), whose runs ship as package data, and the
tuning runs that chose its settings on seeds the ablation never reports (:data:`TUNING`).

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
from pathlib import Path

import torch

from .. import checkpoints
from ..checks import check_int, check_number
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


# The ablation of notebook 10 at the quick profile's scale, run once over ten seeds (PacGAN's
# protocol) by ``make pretrained`` (tools/toy_ablation.py) and shipped as package data, so the
# quick profile reads every run's samples instead of training 190 runs. The full profile trains
# its own, longer runs with the same configurations.
ABLATION = {
    "steps": {"ring": 1000, "grid": 3000},
    "lr": {"ring": 4e-3, "grid": 2e-3},
    "noise_std": {"ring": 0.2, "grid": 0.25},
    "settings": {"hidden": [64, 64, 64], "batch_size": 128, "decay_from": 0.5, "n_samples": 2500},
    "seeds": list(range(10)),
}
ABLATION_FILE = "ablation_toy.pt"
CONSTANT_LR = "vanilla, constant lr"  # vanilla without the learning-rate decay (ring only)


def ablation_configurations(dataset: str, noise_std: float | None = None) -> dict[str, TrickSet]:
    """Notebook 10's nine configurations on ``dataset``: vanilla, each fix alone, and the
    combination (instance noise + feature matching with the adversarial term kept + virtual
    batch norm in G). Instance noise starts at ``noise_std`` (default: ``ABLATION["noise_std"]``)
    and is annealed to zero at half the run."""
    if dataset not in ABLATION["steps"]:
        raise ValueError(f"dataset must be one of {sorted(ABLATION['steps'])}, got {dataset!r}")
    std = ABLATION["noise_std"][dataset] if noise_std is None else noise_std
    noise = {"instance_noise": True, "noise_std": check_number(std, "noise_std", low=0, strict=True),
             "noise_until": 0.5}
    return {
        "vanilla": TrickSet(),
        "feature matching": TrickSet(feature_matching=True),
        "minibatch discrimination": TrickSet(minibatch_discrimination=True),
        "historical averaging": TrickSet(historical_averaging=True),
        "label smoothing (0.9)": TrickSet(label_smoothing=True),
        "virtual batch norm (G)": TrickSet(virtual_batch_norm=True),
        "instance noise": TrickSet(**noise),
        "packing (m = 2)": TrickSet(pack=2),
        "combination": TrickSet(**noise, feature_matching=True, fm_adversarial=True,
                                virtual_batch_norm=True),
    }


def _seeds_and_steps(seeds, default: list, steps: dict | None) -> tuple[list, dict]:
    """The seeds (``default`` when None; each an int >= 0) and the steps per mixture (ABLATION's,
    overridden by ``steps``)."""
    seeds = default if seeds is None else list(seeds)
    for s in seeds:
        check_int(s, "seeds", low=0)
    return seeds, {**ABLATION["steps"], **(steps or {})}


def ablation_jobs(seeds=None, *, steps: dict | None = None, names=None) -> list[tuple[tuple, tuple]]:
    """``[(key, job)]`` for :func:`toy_runs`: every configuration on both mixtures under each of
    ``seeds`` (default ``ABLATION["seeds"]``), plus vanilla on the ring at a constant learning
    rate (:data:`CONSTANT_LR`); ``key`` is ``(dataset, name, seed)``. ``steps`` overrides the
    steps per mixture; ``names`` keeps only those configurations."""
    seeds, steps = _seeds_and_steps(seeds, ABLATION["seeds"], steps)
    out = []
    for ds in ("ring", "grid"):
        configs = ablation_configurations(ds)
        chosen = list(configs) + ([CONSTANT_LR] if ds == "ring" else [])
        for name in chosen:
            if names is not None and name not in names:
                continue
            tricks = configs[name.split(",")[0]]
            job_settings = {"lr": ABLATION["lr"][ds], **({"decay_from": 1.0} if name == CONSTANT_LR else {})}
            for s in seeds:
                out.append(((ds, name, s), (tricks, ds, s, steps[ds], job_settings)))
    return out


def write_ablation(path, records: dict, *, spec: dict | None = None) -> Path:
    """Write the ablation ``records`` (``{(dataset, name, seed): toy_run record}``) to ``path``
    atomically (:func:`advlab.checkpoints.save`): per run its samples in half precision (a resolution of 0.001 on
    the ring and 0.004 on the grid, far inside the 3-standard-deviation high-quality radius), its
    tricks config and its CPU seconds, with ``spec`` (default :data:`ABLATION`)."""
    runs = {}
    for key, record in records.items():
        if not (isinstance(key, tuple) and len(key) == 3):
            raise ValueError(f"records must be keyed by (dataset, name, seed), got {key!r}")
        ds, name, seed = key
        runs[f"{ds}|{name}|{seed}"] = {"samples": record["samples"].detach().cpu().half(),
                                       "tricks": record["config"]["tricks"],
                                       "steps": record["config"]["steps"],
                                       "lr": record["config"]["lr"],
                                       "decay_from": record["config"]["decay_from"],
                                       "cpu_seconds": float(record["cpu_seconds"])}
    return checkpoints.save({"spec": spec or ABLATION, "runs": runs}, path)


def _read_runs(name: str, path) -> dict:
    """The file ``path``, or the shipped file ``name`` when ``path`` is None."""
    if path is not None:
        return checkpoints.load(path)
    from .pretrained import shipped

    path = shipped().joinpath(name)
    if not path.is_file():
        raise FileNotFoundError(f"no {name} among the shipped files: run `make pretrained`")
    with path.open("rb") as f:
        return torch.load(f, map_location="cpu", weights_only=True)


def load_ablation(path=None) -> dict:
    """The shipped ablation (or the file at ``path``): ``{"spec", "runs": {(dataset, name, seed):
    {"samples" (float32), "cpu_seconds", ...}}}``. Raises when the file is missing or no longer
    matches :data:`ABLATION` and :func:`ablation_configurations` (rerun tools/toy_ablation.py)."""
    data = _read_runs(ABLATION_FILE, path)
    if data.get("spec") != ABLATION:
        raise ValueError(f"{ABLATION_FILE} was made with other settings than ABLATION: rerun "
                         "tools/toy_ablation.py")
    runs = {}
    for text, run in data["runs"].items():
        ds, name, seed = text.split("|")
        if run["tricks"] != ablation_configurations(ds)[name.split(",")[0]].config():
            raise ValueError(f"{ABLATION_FILE}: the run {text!r} used other tricks than "
                             "ablation_configurations: rerun tools/toy_ablation.py")
        planned = (ABLATION["steps"][ds], ABLATION["lr"][ds],
                   1.0 if name == CONSTANT_LR else ABLATION["settings"]["decay_from"])
        if (run["steps"], run["lr"], run["decay_from"]) != planned:
            raise ValueError(f"{ABLATION_FILE}: the run {text!r} used other steps, learning rate "
                             "or decay than ABLATION: rerun tools/toy_ablation.py")
        runs[ds, name, int(seed)] = {**run, "samples": run["samples"].float()}
    return {"spec": data["spec"], "runs": runs}


# How ABLATION's settings were chosen: on tuning seeds that no table of notebook 10 reports, one
# knob at a time (the learning rate, then the noise level at it, then the combination at both),
# each at ABLATION's value, half and twice it, by the rule of pick_setting. On the grid the rule
# picked a noise level of 0.25 over the 0.5 chosen before in short trials on reported seeds, so
# 0.125 was tried too. 63 runs at the ablation's budget, shipped like the ablation
# (tools/toy_ablation.py --tuning, run by `make pretrained`).
TUNING = {
    "seeds": [100, 101, 102],
    "lr": {"ring": [2e-3, 4e-3, 8e-3], "grid": [1e-3, 2e-3, 4e-3]},          # vanilla
    "noise_std": {"ring": [0.1, 0.2, 0.4], "grid": [0.125, 0.25, 0.5, 1.0]},  # instance noise
    "combinations": ["combination", "noise + feature matching", "noise + virtual batch norm",
                     "feature matching + virtual batch norm"],
    "rule": "most modes covered (mean over the tuning seeds); among the candidates within half a "
            "mode of the most, the highest mean high-quality fraction",
}
TUNING_FILE = "tuning_toy.pt"


def tuning_candidates(dataset: str) -> dict[str, dict[str, tuple[TrickSet, dict]]]:
    """``{knob: {candidate name: (tricks, job settings)}}`` of :data:`TUNING` on ``dataset``: the
    vanilla GAN at each learning rate, instance noise alone at each starting level (at the
    ablation's learning rate), and the combination against each of its two-fix subsets (at the
    ablation's learning rate and noise level). The candidate named ``"combination"`` and those
    at ABLATION's own values are exactly the ablation's configurations."""
    configs = ablation_configurations(dataset)  # validates dataset
    lr = {"lr": ABLATION["lr"][dataset]}
    noise = {"instance_noise": True, "noise_std": ABLATION["noise_std"][dataset], "noise_until": 0.5}
    fm = {"feature_matching": True, "fm_adversarial": True}
    subsets = {"combination": configs["combination"],
               "noise + feature matching": TrickSet(**noise, **fm),
               "noise + virtual batch norm": TrickSet(**noise, virtual_batch_norm=True),
               "feature matching + virtual batch norm": TrickSet(**fm, virtual_batch_norm=True)}
    return {
        "lr": {f"vanilla, lr {v:g}": (TrickSet(), {"lr": v}) for v in TUNING["lr"][dataset]},
        "noise_std": {f"instance noise, σ0 {v:g}": (ablation_configurations(dataset, v)["instance noise"], lr)
                      for v in TUNING["noise_std"][dataset]},
        "combinations": {name: (subsets[name], lr) for name in TUNING["combinations"]},
    }


def tuning_jobs(seeds=None, *, steps: dict | None = None) -> list[tuple[tuple, tuple]]:
    """``[(key, job)]`` for :func:`toy_runs`: every candidate of :func:`tuning_candidates` on
    both mixtures under each of ``seeds`` (default ``TUNING["seeds"]``); ``key`` is
    ``(dataset, candidate, seed)``."""
    seeds, steps = _seeds_and_steps(seeds, TUNING["seeds"], steps)
    out = []
    for ds in ("ring", "grid"):
        for candidates in tuning_candidates(ds).values():
            for name, (tricks, job_settings) in candidates.items():
                for s in seeds:
                    out.append(((ds, name, s), (tricks, ds, s, steps[ds], job_settings)))
    return out


def load_tuning(path=None) -> dict:
    """The shipped tuning runs (or the file at ``path``), as :func:`load_ablation` returns the
    ablation; raises when the file no longer matches :data:`TUNING` and :func:`tuning_candidates`."""
    data = _read_runs(TUNING_FILE, path)
    if data.get("spec") != {**TUNING, "ablation": ABLATION}:
        raise ValueError(f"{TUNING_FILE} was made with other settings than TUNING and ABLATION: "
                         "rerun tools/toy_ablation.py --tuning")
    planned = {(ds, name): (tricks.config(), job["lr"])
               for ds in ("ring", "grid") for knob in tuning_candidates(ds).values()
               for name, (tricks, job) in knob.items()}
    runs = {}
    for text, run in data["runs"].items():
        ds, name, seed = text.split("|")
        if (ds, name) not in planned or planned[ds, name] != (run["tricks"], run["lr"]) \
                or run["steps"] != ABLATION["steps"][ds]:
            raise ValueError(f"{TUNING_FILE}: the run {text!r} is not a candidate of TUNING: rerun "
                             "tools/toy_ablation.py --tuning")
        runs[ds, name, int(seed)] = {**run, "samples": run["samples"].float()}
    return {"spec": data["spec"], "runs": runs}


def pick_setting(results: dict) -> str:
    """The candidate :data:`TUNING`'s rule picks from ``results`` = ``{candidate: [(modes
    covered, high-quality fraction) per tuning seed]}``: the most modes covered on average; among
    the candidates within half a mode of the most, the highest mean high-quality fraction."""
    if not results or any(len(v) == 0 for v in results.values()):
        raise ValueError("results must give every candidate at least one (modes, high quality) pair")
    mean = {name: (sum(m for m, _ in v) / len(v), sum(q for _, q in v) / len(v))
            for name, v in results.items()}
    most = max(m for m, _ in mean.values())
    tied = [name for name, (m, _) in mean.items() if m >= most - 0.5]
    return max(tied, key=lambda name: mean[name][1])

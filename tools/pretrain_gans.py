"""Train the course's image GANs with fixed configs and seeds; write small generator checkpoints.

    python tools/pretrain_gans.py                  # all runs into lib/advlab/gan/weights (make pretrained)
    python tools/pretrain_gans.py dcgan acgan      # only these runs
    python tools/pretrain_gans.py --steps 3 --out /tmp/x   # a smoke test (what tests/ does)
    python tools/pretrain_gans.py --study dcgan_rules      # one study's variants x seeds (no runs)

Quick profile only: the 4,000 MNIST training digits; the 1,000 held-out test digits judge every
evaluation (classifier-FID on the target CNN's features, and for the WGANs the critic's estimate
of W1 on held-out real images). Run it with OMP_NUM_THREADS=1 so two runs can share a 2-core
machine. Per run NAME it writes NAME.pt (config + generator weights, read with the safe loader)
and NAME.json (config + log); ``dcgan`` also writes dcgan_snapshots.pt (float16 generator weights
at several steps, for choosing a checkpoint in notebook 14). A study (``STUDIES``) trains each of
its variants under each of its seeds, keeps no weights and writes study_NAME.json: per variant
and seed the classifier-FID log and, from 2,000 samples read by the target CNN, the class
histogram and each class's feature spread (``metrics.within_class_spread``) beside the held-out
digits' own.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import platform
import sys
import time
from pathlib import Path

import torch

import advlab
from advlab import metrics
from advlab.data import load_images
from advlab.gan import GANTrainer
from advlab.gan.pretrained import (
    RUNS,
    STUDIES,
    build_discriminator,
    build_generator,
    pretrained_dir,
    study_config,
    trainer_settings,
    write_run,
    write_study,
)
from advlab.gan.wgan import wasserstein_estimate
from advlab.models import to_signed, to_unit
from advlab.train import course_model

EVALS = 20          # evaluations per run (plus one at the end)
EVAL_SAMPLES = 1000  # generated images per evaluation, against the 1,000 held-out test digits
STUDY_EVALS = 5     # evaluations per study run
CLASS_SAMPLES = 2000  # samples read by the classifier for a study's class statistics


@functools.cache
def _mnist(split: str):
    """The quick-profile MNIST split, parsed once per process (the CSV parse is slow)."""
    return load_images("mnist", split, profile="quick")


def train_run(name: str, run: dict, out: Path | None, *, steps: int | None = None, seed: int = 0,
              eval_samples: int = EVAL_SAMPLES, evals: int = EVALS, log=print):
    """Train one run, evaluating ``evals`` times; write NAME.pt / NAME.json into ``out`` (nothing
    when ``out`` is None); return ``(record, G, trainer)``."""
    steps = steps or run["steps"]
    config = {"name": name, "profile": "quick", "data": "mnist", "seed": seed,
              **{k: v for k, v in run.items() if k != "steps"}, "steps": steps}
    advlab.seed_everything(seed)
    G = build_generator(config["generator"])
    D = build_discriminator(config["discriminator"])
    settings, tricks = trainer_settings(config)
    train_set, held_out = _mnist("train"), _mnist("test")
    trainer = GANTrainer(G, D, (to_signed(train_set.images), train_set.labels), tricks=tricks,
                         seed=seed, device="cpu", **settings)
    classifier, _ = course_model("target", profile="quick")
    classifier = classifier.cpu()
    real_features = metrics.classifier_features(classifier, held_out.images)
    wasserstein = settings["loss"] == "wasserstein"
    every = max(1, steps // evals)
    points = sorted({*range(every, steps + 1, every), steps})
    snap_points = set(points[::max(1, len(points) // run["snapshots"])][-run["snapshots"]:]) \
        if run.get("snapshots") else set()
    history = {"step": [], "seconds": [], "classifier_fid": [], "d_loss": [], "g_loss": []}
    if wasserstein:
        history["critic_estimate"] = []
    snapshots = {}
    train_seconds = 0.0
    for point in points:
        done = trainer.step
        result = trainer.train(point, check_every=max(1, min(100, point - done)))
        train_seconds += result["seconds"]
        fake = trainer.sample(eval_samples, seed=seed + 1)
        fid = metrics.frechet_distance(real_features,
                                       metrics.classifier_features(classifier, to_unit(fake)))
        window = slice(done, point)
        history["step"].append(point)
        history["seconds"].append(round(train_seconds, 2))
        history["classifier_fid"].append(round(fid, 4))
        history["d_loss"].append(round(float(trainer.history["d_loss"][window].mean()), 5))
        history["g_loss"].append(round(float(trainer.history["g_loss"][window].mean()), 5))
        line = f"{name:10s} step {point:5d}  {train_seconds:7.1f} s  classifier-FID {fid:8.2f}"
        if wasserstein:
            est = wasserstein_estimate(D, to_signed(held_out.images), fake)
            history["critic_estimate"].append(round(est, 5))
            line += f"  critic estimate {est:8.4f}"
        if point in snap_points:
            snapshots[point] = {k: (v.half() if v.is_floating_point() else v).clone()
                                for k, v in G.state_dict().items()}
        log(line, flush=True)
    final = {"classifier_fid": history["classifier_fid"][-1], "train_seconds": round(train_seconds, 1)}
    if "ACGANGenerator" == config["generator"][0]:
        acc, per_class = metrics.label_accuracy(G, classifier, per_class=100, seed=seed)
        final["label_accuracy"] = round(acc, 4)
        final["label_accuracy_per_class"] = [round(a, 4) for a in per_class.tolist()]
    G.eval()
    state = {k: v.detach().cpu().clone() for k, v in G.state_dict().items()}
    record = {"config": config, "final": final, "log": history,
              "machine": {"torch": torch.__version__, "python": platform.python_version(),
                          "threads": torch.get_num_threads()}}
    if out is not None:
        write_run(out, name, config, state, record, snapshots)
    return record, G, trainer


def class_statistics(trainer, classifier, seed: int) -> dict:
    """What the classifier reads in ``CLASS_SAMPLES`` samples of the trainer's G (a conditional
    G cycles through the classes): the class histogram, the per-class feature spread of the
    samples and of the held-out test digits (their true classes), and for a conditional G how
    often the read class is the requested one."""
    held_out = _mnist("test")
    classes = int(held_out.labels.max()) + 1
    fake = to_unit(trainer.sample(CLASS_SAMPLES, seed=seed + 2))
    with torch.no_grad():
        read = classifier(fake).argmax(1)
    fake_spread = metrics.within_class_spread(metrics.classifier_features(classifier, fake), read,
                                              classes, min_count=10)
    real_spread = metrics.within_class_spread(metrics.classifier_features(classifier, held_out.images),
                                              held_out.labels, classes, min_count=10)
    stats = {"histogram": metrics.class_histogram(read, classes).tolist(),
             "spread": [None if torch.isnan(v) else round(float(v), 4) for v in fake_spread],
             "real_spread": [round(float(v), 4) for v in real_spread]}
    if hasattr(trainer.G, "classes"):
        requested = torch.arange(CLASS_SAMPLES) % trainer.G.classes
        stats["label_accuracy"] = round(float((read == requested).double().mean()), 4)
    return stats


def run_study(study: str, out: Path, *, steps: int | None = None, seeds=None,
              eval_samples: int = EVAL_SAMPLES, log=print) -> dict:
    """Train every variant of ``study`` under each seed; write study_NAME.json; return it."""
    spec = STUDIES[study]
    seeds = list(seeds or spec["seeds"])
    classifier, _ = course_model("target", profile="quick")
    classifier = classifier.cpu().eval()
    record = {"study": study, "seeds": seeds, "steps": steps or spec["steps"], "variants": {}}
    for variant in spec["variants"]:
        config = study_config(study, variant)
        runs = []
        for seed in seeds:
            result, _, trainer = train_run(f"{study}:{seed}", copy.deepcopy(config), None,
                                           steps=steps, seed=seed, eval_samples=eval_samples,
                                           evals=STUDY_EVALS, log=log)
            runs.append({"seed": seed, "final": result["final"], "log": result["log"],
                         **class_statistics(trainer, classifier, seed)})
            log(f"{study} | {variant} | seed {seed}: classifier-FID "
                f"{result['final']['classifier_fid']:.1f}", flush=True)
        record["variants"][variant] = {"config": config, "runs": runs}
    record["machine"] = {"torch": torch.__version__, "python": platform.python_version(),
                         "threads": torch.get_num_threads()}
    write_study(out, study, record)
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help=f"runs to train (default: all of {list(RUNS)}, "
                        "then every study)")
    parser.add_argument("--study", action="append", default=[], choices=list(STUDIES),
                        help="run this study (repeatable); with no run names, runs no run")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="override a study's seeds")
    parser.add_argument("--out", default=None, help="output folder (default: the package's advlab/gan/weights)")
    parser.add_argument("--steps", type=int, default=None, help="override every run's steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-samples", type=int, default=EVAL_SAMPLES,
                        help="generated images per evaluation")
    args = parser.parse_args(argv)
    unknown = [r for r in args.runs if r not in RUNS]
    if unknown:
        parser.error(f"unknown runs {unknown}; choose from {list(RUNS)}")
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be >= 1")
    out = Path(args.out) if args.out else pretrained_dir()
    everything = not args.runs and not args.study
    for name in list(RUNS) if everything else args.runs:
        start = time.perf_counter()
        record, _, _ = train_run(name, copy.deepcopy(RUNS[name]), out, steps=args.steps,
                                 seed=args.seed, eval_samples=args.eval_samples)
        print(f"{name}: {json.dumps(record['final'])} ({time.perf_counter() - start:.0f} s wall)",
              flush=True)
    for study in list(STUDIES) if everything else args.study:
        start = time.perf_counter()
        run_study(study, out, steps=args.steps, seeds=args.seeds, eval_samples=args.eval_samples)
        print(f"study {study}: {time.perf_counter() - start:.0f} s wall", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

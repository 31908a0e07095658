"""FGSM and PGD-10: advlab vs torchattacks on the same model, batch and CPU threads.

    python benchmarks/bench_attacks.py [--batch 128] [--repeats 21] [--threads 1]

Runs are interleaved in pairs, alternating which goes first, so that load from other processes
hits both alike. For each attack the table gives the median wall time and the median CPU time of
the process (``time.process_time``, which other processes on a shared machine disturb far less),
and for each the ratio of medians torchattacks / advlab (> 1: advlab is faster) with the
interquartile range of the per-pair ratios as a noise gauge. One thread by default: on a shared
2-core machine, two threads per process oversubscribe the cores and wall times mostly measure the
neighbours. Before timing, FGSM and PGD without random start are checked to give the same images.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from advlab import attacks
from advlab.data import load_images
from advlab.models import make_classifier


def timed(fn) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def summary(ours: list[float], theirs: list[float]) -> tuple[float, float, float, float, float]:
    """Medians, ratio of medians (theirs / ours) and the quartiles of the per-pair ratios."""
    m_ours, m_theirs = statistics.median(ours), statistics.median(theirs)
    q1, _, q3 = statistics.quantiles([b / a for a, b in zip(ours, theirs, strict=True)], n=4)
    return m_ours, m_theirs, m_theirs / m_ours, q1, q3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eps", type=float, default=0.25)
    args = parser.parse_args(argv)
    try:
        import torchattacks
    except ImportError:
        print("torchattacks is not installed: pip install --no-deps torchattacks")
        return 1

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = make_classifier("cnn").eval()  # the course's target architecture; weights don't matter
    data = load_images("mnist", "test", profile="quick")
    x, y = data.images[:args.batch], data.labels[:args.batch]
    eps, steps = args.eps, 10
    alpha = 2.5 * eps / steps

    ta_fgsm = torchattacks.FGSM(model, eps=eps)
    ta_pgd = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
    check = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)
    same = (torch.allclose(attacks.fgsm(model, x, y, eps), ta_fgsm(x, y), atol=1e-6)
            and torch.allclose(attacks.pgd(model, x, y, eps, alpha=alpha, steps=steps,
                                           random_start=False), check(x, y), atol=1e-6))

    cases = {
        "FGSM": (lambda: attacks.fgsm(model, x, y, eps), lambda: ta_fgsm(x, y)),
        "PGD-10": (lambda: attacks.pgd(model, x, y, eps, alpha=alpha, steps=steps),
                   lambda: ta_pgd(x, y)),
    }
    rows = []
    for name, (ours, theirs) in cases.items():
        ours(), theirs()  # warm-up
        t_ours, t_theirs = [], []
        for i in range(args.repeats):  # alternate who goes first, so neither gets warm caches
            if i % 2:
                t_theirs.append(timed(theirs))
                t_ours.append(timed(ours))
            else:
                t_ours.append(timed(ours))
                t_theirs.append(timed(theirs))
        for kind, col in (("wall", 0), ("CPU", 1)):
            rows.append((name, kind, *summary([t[col] for t in t_ours], [t[col] for t in t_theirs])))

    print(f"CPU, {args.threads} threads, batch {args.batch} MNIST images, course target CNN, "
          f"eps {eps}, {args.repeats} interleaved repeats; same images as torchattacks: {same}\n")
    print("| attack | time | advlab median (ms) | torchattacks median (ms) "
          "| torchattacks / advlab | paired ratios, IQR |")
    print("|---|---|---:|---:|---:|---:|")
    for name, kind, a, b, r, q1, q3 in rows:
        print(f"| {name} | {kind} | {1e3 * a:.1f} | {1e3 * b:.1f} | {r:.2f} | {q1:.2f}-{q3:.2f} |")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Run notebook 10's ablation at the quick profile's scale over ten seeds; ship the samples.

    python tools/toy_ablation.py                  # every run, into lib/advlab/gan/weights (make pretrained)
    python tools/toy_ablation.py --steps 20 --seeds 0 --out /tmp/a.pt   # a smoke test
    python tools/toy_ablation.py --tuning         # the tuning runs behind ABLATION's settings

Every configuration of ``advlab.gan.toy.ablation_configurations`` on the ring (1,000 steps) and
the grid (3,000 steps) under the seeds of ``ABLATION`` (PacGAN's protocol: 10), plus vanilla on the
ring without the learning-rate decay: 190 runs, about half an hour of CPU time, in one worker process per
core (``--workers``). Runs go through the course cache, so an interrupted run resumes. The file
keeps each run's 2,500 samples in half precision and its CPU seconds (``write_ablation``); notebook
10 reads it with ``load_ablation`` and computes every number from the samples.

``--tuning`` runs ``TUNING`` instead: the candidates of ``tuning_candidates`` (learning rates,
noise levels, the combination against its two-fix subsets) on both mixtures under the tuning
seeds 100-102, 63 runs, written the same way (``tuning_toy.pt``, read by ``load_tuning``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from advlab.gan.pretrained import pretrained_dir
from advlab.gan.toy import (
    ABLATION,
    ABLATION_FILE,
    TUNING,
    TUNING_FILE,
    ablation_jobs,
    load_ablation,
    load_tuning,
    toy_runs,
    tuning_jobs,
    write_ablation,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help=f"file to write (default: the shipped {ABLATION_FILE})")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default: ABLATION's ten)")
    parser.add_argument("--steps", type=int, help="steps on both mixtures (a smoke test)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--tuning", action="store_true", help=f"the tuning runs ({TUNING_FILE})")
    args = parser.parse_args(argv)
    smoke = args.seeds is not None or args.steps is not None
    if smoke and not args.out:
        parser.error("--seeds / --steps make a file that does not match the plan: give --out")
    steps = {"ring": args.steps, "grid": args.steps} if args.steps else None
    jobs = (tuning_jobs if args.tuning else ablation_jobs)(args.seeds, steps=steps)
    print(f"{len(jobs)} runs in {args.workers} worker(s)", flush=True)
    start = time.perf_counter()
    records = toy_runs([job for _, job in jobs], workers=args.workers, **ABLATION["settings"])
    out = Path(args.out) if args.out else pretrained_dir() / (TUNING_FILE if args.tuning else ABLATION_FILE)
    spec = {**TUNING, "ablation": ABLATION} if args.tuning else ABLATION
    spec = spec if not smoke else {**spec, "smoke": True}
    write_ablation(out, dict(zip([key for key, _ in jobs], records, strict=True)), spec=spec)
    cpu = sum(r["cpu_seconds"] for r in records)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): {len(records)} runs, "
          f"{cpu:.0f} CPU seconds of training, {time.perf_counter() - start:.0f} s here")
    if not smoke:
        (load_tuning if args.tuning else load_ablation)(out)  # the file must read back against the plan
    return 0


if __name__ == "__main__":
    sys.exit(main())

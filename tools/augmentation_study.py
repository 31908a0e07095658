"""Run notebook 07's augmentation study over three training seeds; ship its numbers.

    python tools/augmentation_study.py                      # every run, into lib/advlab/shipped (make pretrained)
    python tools/augmentation_study.py --seeds 0 --recipes "no augmentation" --out /tmp/s.json

Every recipe of ``advlab.studies.AUGMENTATION`` (eight) under each of its training seeds, on the
quick profile's 4,000 training digits of course seed 0, each measured by
``advlab.studies.evaluate_recipe``: clean, FGSM and PGD-20 accuracy at six radii on the first 500
test digits, and a universal 16x16 patch trained against the model. About ten minutes on one
thread (581 s on a 2-core machine). Notebook 07 reads the file with
``advlab.studies.load_augmentation``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from advlab import data
from advlab.studies import (
    AUGMENTATION,
    load_augmentation,
    run_augmentation,
    shipped_path,
    write_augmentation,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="file to write (default: the shipped study file)")
    parser.add_argument("--seeds", type=int, nargs="+", help="training seeds (default: the study's)")
    parser.add_argument("--recipes", nargs="+", choices=list(AUGMENTATION["recipes"]),
                        help="recipes (default: all)")
    args = parser.parse_args(argv)
    partial_run = args.seeds is not None or args.recipes is not None
    if partial_run and not args.out:
        parser.error("--seeds / --recipes make a file that does not match AUGMENTATION: give --out")
    train_set = data.load_images("mnist", "train", profile="quick", course_seed=0)
    test_set = data.load_images("mnist", "test", profile="quick", course_seed=0)
    start = time.perf_counter()
    record = run_augmentation(train_set, test_set, recipes=args.recipes, seeds=args.seeds)
    out = write_augmentation(record, Path(args.out) if args.out else shipped_path())
    runs = sum(len(r) for r in record["runs"].values())
    print(f"wrote {out}: {runs} runs in {time.perf_counter() - start:.0f} s")
    if not partial_run:
        load_augmentation(out)  # the file must read back against the registry
    return 0


if __name__ == "__main__":
    sys.exit(main())

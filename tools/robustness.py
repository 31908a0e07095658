"""Robustness run: every notebook under other course seeds, one thread each, fresh data folders.

    python tools/robustness.py                 # seeds 1 and 2, all notebooks (`make robustness`)
    python tools/robustness.py --seeds 3 4 5 02 10   # other seeds, only notebooks 02 and 10

Each seed runs in its own process with ``ADVLAB_SEED`` set, ``OMP_NUM_THREADS=1`` and an empty
``ADVLAB_DATA`` folder, side by side with the other seeds, so the run costs about one course's wall
time on a 2-core machine. Notebooks record their headline numbers with ``advlab.headline``; the
report gives, per notebook, pass or fail and seconds for every seed, and the spread of each
headline number over the seeds. It is printed and written to ``build/robustness/`` (``report.md``,
the table the README carries, and ``report.json``). The exit status is 1 if any notebook failed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import course  # noqa: E402

ROOT = course.ROOT
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def worker(seed: int, only: list[str], out: Path, timeout: int) -> int:
    """Run the notebooks for one seed in this process; write ``out`` (JSON) as results arrive."""
    data = Path(tempfile.mkdtemp(prefix=f"advlab-seed{seed}-"))
    os.environ.update({"ADVLAB_SEED": str(seed), "ADVLAB_DATA": str(data),
                       "ADVLAB_WORKERS": "1", **{v: "1" for v in THREAD_VARS}})
    results = []
    for path in course.notebook_paths(only):
        headlines = data / f"{path.stem}.headlines.jsonl"
        os.environ["ADVLAB_HEADLINES"] = str(headlines)
        _, secs, error = course.execute(path, timeout)
        numbers = {}
        if headlines.is_file():
            for line in headlines.read_text().splitlines():
                record = json.loads(line)
                numbers[record["name"]] = record["value"]
        results.append({"notebook": path.stem, "seconds": round(secs, 1), "error": error,
                        "headlines": numbers})
        print(f"seed {seed}: {path.name:36s} {secs:7.1f} s  {'ok' if error is None else 'FAILED'}",
              flush=True)
        out.write_text(json.dumps(results, indent=1))
    return 0


def spread(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    digits = 3 if max(abs(lo), abs(hi)) < 10 else 1
    if len(values) == 1:
        return f"{lo:.{digits}f}"
    sd = statistics.stdev(values)
    return f"{lo:.{digits}f} – {hi:.{digits}f} (sd {sd:.{digits}f})"


def report(seeds: list[int], per_seed: dict[int, list[dict]], threads: int) -> tuple[str, dict]:
    names = [r["notebook"] for r in per_seed[seeds[0]]]
    by = {s: {r["notebook"]: r for r in per_seed[s]} for s in seeds}
    head = " | ".join(f"seed {s}" for s in seeds)
    lines = [f"| notebook | {head} | headline numbers over seeds {', '.join(map(str, seeds))} |",
             "|---|" + "---:|" * len(seeds) + "---|"]
    summary = {"seeds": seeds, "threads": threads, "notebooks": {}}
    for name in names:
        cells, headlines = [], {}
        for s in seeds:
            r = by[s].get(name)
            if r is None:
                cells.append("not run")
                continue
            cells.append(f"{'pass' if r['error'] is None else 'FAIL'} {r['seconds']:.0f} s")
            for key, value in r["headlines"].items():
                headlines.setdefault(key, []).append(value)
        text = "; ".join(f"{k}: {spread(v)}" for k, v in headlines.items()) or "–"
        lines.append(f"| {name} | {' | '.join(cells)} | {text} |")
        summary["notebooks"][name] = {
            "runs": {s: by[s].get(name) for s in seeds},
            "headlines": {k: {"values": v, "min": min(v), "max": max(v)}
                          for k, v in headlines.items()}}
    totals = [sum(r["seconds"] for r in per_seed[s]) for s in seeds]
    lines.append("| total | " + " | ".join(f"{t:.0f} s" for t in totals) + " | |")
    return "\n".join(lines) + "\n", summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    parser.add_argument("--out", default=str(ROOT / "build" / "robustness"))
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("only", nargs="*", help="run only notebooks whose name contains one of these")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.worker is not None:
        return worker(args.worker, args.only, out / f"seed{args.worker}.json", args.timeout)
    if len(set(args.seeds)) != len(args.seeds):
        parser.error("--seeds must not repeat a seed")
    if not course.notebook_paths(args.only):
        parser.error(f"no notebook matches {args.only}")
    start = time.perf_counter()
    procs = {}
    for seed in args.seeds:
        (out / f"seed{seed}.json").unlink(missing_ok=True)
        cmd = [sys.executable, __file__, "--worker", str(seed), "--out", str(out),
               "--timeout", str(args.timeout), *args.only]
        procs[seed] = subprocess.Popen(cmd, cwd=ROOT)
    codes = {seed: p.wait() for seed, p in procs.items()}
    per_seed = {}
    for seed in args.seeds:
        path = out / f"seed{seed}.json"
        per_seed[seed] = json.loads(path.read_text()) if path.is_file() else []
        if codes[seed] != 0:
            print(f"seed {seed}: worker exited with status {codes[seed]}", file=sys.stderr)
    if not all(per_seed.values()):
        return 1
    table, summary = report(args.seeds, per_seed, threads=1)
    wall = time.perf_counter() - start
    summary["wall_seconds"] = round(wall, 1)
    (out / "report.md").write_text(table)
    (out / "report.json").write_text(json.dumps(summary, indent=1))
    print(f"\nRobustness run: seeds {args.seeds}, one thread each, side by side; "
          f"wall time {wall:.0f} s\n")
    print(table)
    failed = [(s, r["notebook"], r["error"]) for s in args.seeds for r in per_seed[s] if r["error"]]
    for seed, name, error in failed:
        print(f"FAILED seed {seed} {name}: {error}")
    return 1 if failed or any(codes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

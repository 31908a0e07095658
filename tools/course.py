"""Course harness: run every notebook top to bottom, save the executed copies, keep the badges in sync.

    python tools/course.py run --save build/executed   # what `make course` does (then tools/site.py)
    python tools/course.py run --inplace         # refresh the committed outputs
    python tools/course.py badges                # rewrite the Colab / Binder badges
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BADGE_START = "<!-- badges -->"
BADGE_END = "<!-- /badges -->"


def repository() -> tuple[str, str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["advlab"]
    return meta["repository"], meta["branch"]


def badge_block(notebook_name: str) -> str:
    """The Colab and Binder badges for one notebook, from the URL kept in pyproject.toml."""
    repo, branch = repository()
    colab = f"https://colab.research.google.com/github/{repo}/blob/{branch}/notebooks/{notebook_name}"
    binder = f"https://mybinder.org/v2/gh/{repo}/{branch}?labpath=notebooks%2F{notebook_name}"
    return (
        f"{BADGE_START}\n"
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab}) "
        f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder})\n"
        f"{BADGE_END}"
    )


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def notebook_paths(only: list[str] | None = None) -> list[Path]:
    """The course notebooks in order; with ``only``, those whose name contains one of its items."""
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    return [p for p in paths if not only or any(o in p.name for o in only)]


def sync_badges() -> int:
    changed = 0
    pattern = re.compile(re.escape(BADGE_START) + ".*?" + re.escape(BADGE_END), re.S)
    for path in notebook_paths():
        nb = nbformat.read(path, as_version=4)
        cell = nb.cells[0]
        new = badge_block(path.name)
        text = pattern.sub(new, cell.source) if BADGE_START in cell.source else (
            new + "\n\n" + cell.source)
        if text != cell.source:
            cell.source = text
            nbformat.write(nb, path)
            changed += 1
    print(f"badges updated in {changed} notebook(s)")
    return 0


def execute(path: Path, timeout: int):
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except Exception as exc:  # a failing cell: report it, keep going with the next notebook
        text = ANSI.sub("", str(exc)).strip()
        error = text.splitlines()[-1] if text else type(exc).__name__
    return nb, time.perf_counter() - start, error


def without_timing(nb):
    """``nb`` without the per-cell execution timestamps nbclient records: a refreshed notebook
    then differs from the committed one only where its outputs do."""
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    return nb


def save_runs(rows, folder: Path) -> Path:
    """Record each notebook's seconds and status in ``folder/runs.json`` (merged with the
    notebooks an earlier run recorded there), for the course site's landing page."""
    path = folder / "runs.json"
    record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    finished = datetime.now(UTC).isoformat(timespec="seconds")
    notebooks = record.get("notebooks", {})
    for name, secs, err in rows:
        notebooks[name] = {"seconds": round(secs, 1), "status": "ok" if err is None else
                           f"failed: {ANSI.sub('', err)}", "finished": finished}
    record = {"profile": os.environ.get("ADVLAB_PROFILE", "") or "quick",
              "seed": os.environ.get("ADVLAB_SEED", "") or "0",
              "notebooks": dict(sorted(notebooks.items()))}
    tmp = folder / ".runs.json.tmp"
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def failure(nb, error: str) -> str:
    """What stopped a notebook, for runs.json: its first error output, else the harness's line
    (a cell that timed out or a dead kernel leaves no error output)."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return ANSI.sub("", f"{out.ename}: {out.evalue}")
    if not error.strip("- "):
        return "stopped without an error output: a cell timed out or the kernel died"
    return error


def run(save_dir: str | None, inplace: bool, timeout: int, only: list[str]) -> int:
    paths = notebook_paths(only)
    rows = []
    if save_dir:
        Path(save_dir).mkdir(parents=True, exist_ok=True)
    for path in paths:
        nb, secs, error = execute(path, timeout)
        rows.append((path.stem, secs, None if error is None else failure(nb, error)))
        print(f"{path.name:40s} {secs:7.1f} s  {'ok' if error is None else 'FAILED'}", flush=True)
        if inplace and error is None:
            nbformat.write(without_timing(nb), path)
        if save_dir:  # failed ones too: the site shows where they stopped
            nbformat.write(nb, Path(save_dir) / path.name)
    print(f"\n{'notebook':40s} {'seconds':>9s}  status")
    for name, secs, error in rows:
        print(f"{name:40s} {secs:9.1f}  {'ok' if error is None else 'FAILED: ' + error}")
    print(f"{'total':40s} {sum(r[1] for r in rows):9.1f}")
    if save_dir:
        print(f"executed copies and {save_runs(rows, Path(save_dir))} saved")
    return 1 if any(err is not None for _, _, err in rows) else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute notebooks top to bottom")
    r.add_argument("--save", metavar="DIR", help="save the executed copies and runs.json "
                   "(seconds, status) into DIR, for tools/site.py (make course: build/executed)")
    r.add_argument("--inplace", action="store_true", help="write fresh outputs into notebooks/")
    r.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    r.add_argument("only", nargs="*", help="run only notebooks whose name contains one of these")
    sub.add_parser("badges", help="rewrite the Colab / Binder badges in every notebook")
    args = parser.parse_args(argv)
    if args.cmd == "badges":
        return sync_badges()
    return run(args.save, args.inplace, args.timeout, args.only)


if __name__ == "__main__":
    sys.exit(main())

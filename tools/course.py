"""Course harness: run every notebook top to bottom, save the executed copies, keep the badges in sync.

    python tools/course.py run --save build/executed   # what `make course` does (then tools/site.py)
    python tools/course.py run --inplace         # refresh the committed outputs
    python tools/course.py nbval                 # every notebook under nbval (`make notebooks`)
    python tools/course.py badges                # rewrite the Colab / Binder badges

``run`` and ``nbval`` use two **lanes** on a machine with two or more cores (quick profile), side
by side: Part I (00-07) in one, Part II (08-14) in the other, about 280 and 240 s of notebooks on a
2-core machine. Part II needs only 00's target CNN, which the first lane has trained long before
the second reaches notebook 10. Side by side, each lane runs on one thread (``ADVLAB_THREADS=1``,
``ADVLAB_WORKERS=1``), so each has a core of its own: with PyTorch's default two threads in the
first lane, three threads shared two cores and the course took 10 % longer (352 s against 320 s
of wall time on a 2-core machine). A lane with Part II's GAN notebooks runs on one thread in any
case, the count those notebooks choose anyway. OpenMP threads wait passively
(``OMP_WAIT_POLICY=PASSIVE``) so that the lanes share the cores instead of spinning against each
other. ``--lanes 1`` runs everything in order in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BADGE_START = "<!-- badges -->"
BADGE_END = "<!-- /badges -->"
PART_TWO = "08"  # the GAN notebooks: small networks, and only 00's target CNN from Part I


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


def default_lanes() -> int:
    """Two lanes on a machine with two or more cores in the quick profile, else one."""
    quick = (os.environ.get("ADVLAB_PROFILE", "").strip().lower() or "quick") == "quick"
    return 2 if quick and (os.cpu_count() or 1) >= 2 else 1


def stages(paths: list[Path], lanes: int) -> list[list[list[Path]]]:
    """The notebooks as stages run one after the other, each a list of lanes run side by side."""
    if lanes == 1:
        return [[paths]] if paths else []
    second = [p for p in paths if p.name >= PART_TWO]
    first = [p for p in paths if p not in second]
    return [[first, second]] if paths else []


def lane_env(lane: list[Path], lanes: int = 1) -> dict:
    """The environment of one of ``lanes`` lanes running side by side (kernels inherit it); what
    the caller set is kept."""
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if lanes > 1 or any(p.name >= PART_TWO for p in lane):
        env.setdefault("ADVLAB_THREADS", "1")
        env.setdefault("ADVLAB_WORKERS", "1")
    return env


def run_lanes(stage: list[list[Path]], command) -> list[tuple[list[Path], int, str]]:
    """Start the process ``command(lane)`` for every non-empty lane of ``stage`` side by side, each
    with :func:`lane_env`; return ``(lane, exit status, output)`` once all have finished."""
    running = []
    lanes = [lane for lane in stage if lane]
    for lane in lanes:
        out = tempfile.TemporaryFile(mode="w+")
        proc = subprocess.Popen(command(lane), cwd=ROOT, env=lane_env(lane, len(lanes)), stdout=out,
                                stderr=subprocess.STDOUT, text=True)
        running.append((lane, proc, out))
    done = []
    for lane, proc, out in running:
        code = proc.wait()
        out.seek(0)
        done.append((lane, code, out.read()))
        out.close()
    return done


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


def run_sequential(paths: list[Path], save_dir: str | None, inplace: bool, timeout: int):
    rows = []
    for path in paths:
        nb, secs, error = execute(path, timeout)
        rows.append((path.stem, secs, None if error is None else failure(nb, error)))
        print(f"{path.name:40s} {secs:7.1f} s  {'ok' if error is None else 'FAILED'}", flush=True)
        if inplace and error is None:
            nbformat.write(without_timing(nb), path)
        if save_dir:  # failed ones too: the site shows where they stopped
            nbformat.write(nb, Path(save_dir) / path.name)
    return rows


def run(save_dir: str | None, inplace: bool, timeout: int, only: list[str], lanes: int = 1,
        report: str | None = None) -> int:
    paths = notebook_paths(only)
    if save_dir:
        Path(save_dir).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = []
    for stage in stages(paths, lanes):
        if len([lane for lane in stage if lane]) == 1:
            rows += run_sequential(next(lane for lane in stage if lane), save_dir, inplace, timeout)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            def command(lane, tmp=tmp):
                out = Path(tmp) / f"{lane[0].stem}.json"
                return [sys.executable, __file__, "run", "--lanes", "1", "--timeout", str(timeout),
                        "--report", str(out), *(["--save", save_dir] if save_dir else []),
                        *(["--inplace"] if inplace else []), *[p.stem for p in lane]]
            for lane, code, output in run_lanes(stage, command):
                print(output, end="", flush=True)
                out = Path(tmp) / f"{lane[0].stem}.json"
                lane_rows = [tuple(r) for r in json.loads(out.read_text())] if out.is_file() else []
                if code and not lane_rows:
                    lane_rows = [(p.stem, 0.0, f"lane stopped (exit status {code})") for p in lane]
                rows += lane_rows
    if report:  # a lane of a parent run: hand the rows back, the parent prints and saves them
        Path(report).write_text(json.dumps(rows))
        return 1 if any(err is not None for _, _, err in rows) else 0
    print(f"\n{'notebook':40s} {'seconds':>9s}  status")
    for name, secs, error in rows:
        print(f"{name:40s} {secs:9.1f}  {'ok' if error is None else 'FAILED: ' + error}")
    print(f"{'total':40s} {sum(r[1] for r in rows):9.1f}")
    print(f"{'wall time':40s} {time.perf_counter() - start:9.1f}  ({lanes} lane(s))")
    if save_dir:
        print(f"executed copies and {save_runs(rows, Path(save_dir))} saved")
    return 1 if any(err is not None for _, _, err in rows) else 0


KERNEL_DIED = "Kernel died before replying to kernel_info"


def kernel_start_failures(output: str) -> tuple[list[str], list[str]]:
    """From an nbval run's output: the notebooks whose kernel died before it started (a port
    chosen for it was taken by a kernel another lane started at the same moment), and the
    notebooks that failed for any other reason."""
    died = sorted(set(re.findall(r"ERROR at setup of (notebooks/\S+?\.ipynb)::Cell 0", output))
                  ) if KERNEL_DIED in output else []
    failed = set(re.findall(r"^(?:FAILED|ERROR) (notebooks/\S+?\.ipynb)::", output, re.M))
    return died, sorted(failed - set(died))


def nbval(timeout: int, only: list[str], lanes: int) -> int:
    """Every notebook under nbval (``--nbval-lax``: cells marked ``# NBVAL_CHECK_OUTPUT`` are
    compared with their committed output, every other cell must run without error), in lanes.

    A notebook whose kernel died before it started, and nothing else in its lane failed, is run
    once more on its own: kernels started side by side can race for the same free port."""
    status = 0
    start = time.perf_counter()

    def pytest_command(paths):
        return [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
                f"--nbval-cell-timeout={timeout}", "-q", "-p", "no:cacheprovider", *paths]

    for stage in stages(notebook_paths(only), lanes):
        def command(lane):
            return pytest_command([str(p.relative_to(ROOT)) for p in lane])
        for lane, code, output in run_lanes(stage, command):
            print(f"--- nbval: {lane[0].stem} .. {lane[-1].stem} (exit status {code})")
            print(output, end="", flush=True)
            died, other = kernel_start_failures(output)
            if code and died and not other:
                print(f"--- nbval: the kernel of {', '.join(died)} did not start; once more",
                      flush=True)
                code = subprocess.run(pytest_command(died), cwd=ROOT, env=lane_env(lane)).returncode
            status = status or code
    print(f"nbval: {time.perf_counter() - start:.0f} s wall time, {lanes} lane(s)")
    return status


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute notebooks top to bottom")
    r.add_argument("--save", metavar="DIR", help="save the executed copies and runs.json "
                   "(seconds, status) into DIR, for tools/site.py (make course: build/executed)")
    r.add_argument("--inplace", action="store_true", help="write fresh outputs into notebooks/")
    r.add_argument("--report", help=argparse.SUPPRESS)
    v = sub.add_parser("nbval", help="check every notebook with pytest --nbval-lax")
    for p in (r, v):
        p.add_argument("--timeout", type=int, default=600, help="seconds per cell")
        p.add_argument("--lanes", type=int, choices=(1, 2), default=default_lanes(),
                       help="2: Part I beside Part II (default on 2+ cores, quick)")
        p.add_argument("only", nargs="*", help="run only notebooks whose name contains one of these")
    sub.add_parser("badges", help="rewrite the Colab / Binder badges in every notebook")
    args = parser.parse_args(argv)
    if args.cmd == "badges":
        return sync_badges()
    if args.cmd == "nbval":
        return nbval(args.timeout, args.only, args.lanes)
    return run(args.save, args.inplace, args.timeout, args.only, args.lanes, args.report)


if __name__ == "__main__":
    sys.exit(main())

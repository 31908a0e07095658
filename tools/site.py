"""Build the course site (Sphinx + myst-nb + sphinx-book-theme) from the executed notebooks.

    python tools/site.py                         # what `make site` does: build/site/index.html
    python tools/site.py --from notebooks        # from the committed notebooks only
    python tools/site.py --out /tmp/site --work /tmp/site-src

Each notebook comes from ``--from`` (default ``build/executed``, where ``make course`` saves the
executed copies and ``runs.json``) when it is there, else from ``notebooks/``. Nothing is executed:
myst-nb renders the stored outputs (``nb_execution_mode = "off"`` in ``docs/conf.py``). The staged
copies have terminal colour codes stripped from every output. The landing page lists the two
parts of the course and, per notebook, what it teaches (its first cell), its quick-profile run
time and its status: from ``runs.json`` when the notebook was run by ``make course``, else from
the execution times stored in the notebook itself.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import course  # noqa: E402

ROOT = course.ROOT
DOCS = ROOT / "docs"
EXECUTED = ROOT / "build" / "executed"
RUNS = "runs.json"
PARTS = [("Part I · Attacks on classifiers, and defences", range(0, 8)),
         ("Part II · Generative adversarial networks", range(8, 15))]
# CSI sequences (colours, cursor moves) and the two-byte escapes: all a terminal would swallow.
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def strip_ansi(value):
    """``value`` with terminal escape codes removed from every string in it (lists, dicts)."""
    if isinstance(value, str):
        return ANSI.sub("", value)
    if isinstance(value, list):
        return [strip_ansi(v) for v in value]
    if isinstance(value, dict):
        return {k: strip_ansi(v) for k, v in value.items()}
    return value


def clean_notebook(nb):
    """Strip ANSI codes from a notebook's outputs (stream text, tracebacks, text data) and from
    stored widget state (widget output areas hold outputs too). Sources are left alone."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.from_dict(strip_ansi(dict(o))) for o in cell.outputs]
    widgets = nb.metadata.get("widgets")
    if widgets:
        nb.metadata["widgets"] = strip_ansi(widgets)
    return nb


def describe(nb) -> dict:
    """Title, learning goals and stated time budget from a notebook's first (markdown) cell."""
    first = nb.cells[0]
    if first.cell_type != "markdown":
        raise ValueError("the first cell of a course notebook must be markdown (title, goals)")
    lines = first.source.splitlines()
    title = next((ln.lstrip("# ").strip() for ln in lines if ln.startswith("# ")), None)
    if not title:
        raise ValueError("the first cell must start with a '# NN · title' heading")
    goals, inside = [], False
    for ln in lines:
        if ln.strip().startswith("**In this notebook you will**"):
            inside = True
        elif inside and ln.startswith("- "):
            goals.append(ln[2:].strip())
        elif inside and ln.startswith("  ") and goals:
            goals[-1] += " " + ln.strip()
        elif inside and goals:
            break
    budget = []  # the "**Time:**" paragraph, which may wrap over several lines
    for ln in lines:
        if "**Time:**" in ln:
            budget = [ln.split("**Time:**", 1)[1].strip()]
        elif budget and ln.strip():
            budget.append(ln.strip())
        elif budget:
            break
    budget = " ".join(budget)
    return {"title": title, "goals": goals, "budget": budget}


def _timestamp(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def stored_run(nb) -> dict:
    """Seconds and status of the run whose outputs a notebook holds, from nbclient's per-cell
    timing metadata: first cell started to last cell finished."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    unrun = [c for c in code if c.execution_count is None]
    times = [c.metadata.get("execution", {}) for c in code]
    starts = [t["iopub.execute_input"] for t in times if "iopub.execute_input" in t]
    ends = [t["shell.execute_reply"] for t in times if "shell.execute_reply" in t]
    seconds = ((_timestamp(max(ends)) - _timestamp(min(starts))).total_seconds()
               if starts and ends else None)
    status = ("failed: " + strip_ansi(f"{errors[0].ename}: {errors[0].evalue}")) if errors else (
        f"{len(unrun)} cell(s) not run" if unrun else "ok")
    return {"seconds": seconds, "status": status,
            "when": max(ends)[:10] if ends else None, "source": "stored outputs"}


def load_runs(folder: Path) -> dict:
    path = folder / RUNS
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _run_line(run: dict) -> str:
    secs = f"{run['seconds']:.0f} s" if run.get("seconds") is not None else "time not recorded"
    status = strip_ansi(run["status"]).replace("`", "'").replace("\n", " ")
    status = "ok" if status == "ok" else f"**{status}**"
    when = f", {run['when']}" if run.get("when") else ""
    return f"{run.get('profile', 'quick')} run: {secs} · status: {status} ({run['source']}{when})"


def landing_page(entries) -> str:
    """The index page: the two parts, and per notebook what it teaches, its time and status."""
    out = ["# advlab: adversarial machine learning, hands-on", "",
           "An open course in ordered Jupyter notebooks. Every page below is a notebook as last "
           "executed, with that run's profile, time and status; the buttons at the top of a page "
           "open it on "
           "**Colab** or **Binder** or download the `.ipynb`. Each notebook imports the tested "
           "package `advlab` and checks its own claims with self-check cells.", ""]
    for caption, numbers in PARTS:
        part = [e for e in entries if e["number"] in numbers]
        out += [f"## {caption}", ""]
        for e in part:
            info = e["info"]
            out += [f"### {{doc}}`{info['title']} <notebooks/{e['stem']}>`", "",
                    _run_line(e["run"]) + "  ", ]
            if info["budget"]:
                out += [f"Time budget (from the notebook): {info['budget']}", ""]
            else:
                out += [""]
            if info["goals"]:
                out += ["You will:", ""] + [f"- {g}" for g in info["goals"]] + [""]
        out += ["```{toctree}", ":hidden:", f":caption: {caption}", ""]
        out += [f"notebooks/{e['stem']}" for e in part] + ["```", ""]
    return "\n".join(out)


def stage(source: Path, work: Path) -> Path:
    """Write the Sphinx source folder: ``index.md`` and the cleaned ``notebooks/*.ipynb``."""
    src = work / "src"
    if src.exists():
        shutil.rmtree(src)
    (src / "notebooks").mkdir(parents=True)
    record = load_runs(source)
    runs = record.get("notebooks", {})
    entries = []
    for committed in course.notebook_paths():
        executed = source / committed.name
        path = executed if executed.is_file() else committed
        nb = clean_notebook(nbformat.read(path, as_version=4))
        if committed.stem in runs and path == executed:
            run = {**runs[committed.stem], "source": "make course",
                   "profile": record.get("profile", "quick")}
            run["when"] = run.get("finished", "")[:10] or None
        else:
            run = stored_run(nb)  # committed outputs come from the quick profile
        nbformat.write(nb, src / "notebooks" / committed.name)
        entries.append({"stem": committed.stem, "number": int(committed.name[:2]),
                        "info": describe(nb), "run": run})
    missing = [n for _, numbers in PARTS for n in numbers
               if n not in {e["number"] for e in entries}]
    if missing:
        raise ValueError(f"notebooks {missing} are missing from notebooks/: the table of contents "
                         "lists 00-14")
    (src / "index.md").write_text(landing_page(entries), encoding="utf-8")
    return src


def build(out: Path, *, source: Path = EXECUTED, work: Path | None = None, quiet: bool = True) -> float:
    """Stage and build the site into ``out``; return the seconds the whole build took."""
    out, source = Path(out), Path(source)
    work = Path(work) if work is not None else out.parent / f"{out.name}-src"
    start = time.perf_counter()
    src = stage(source, work)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-c", str(DOCS), "-d",
           str(work / "doctrees"), str(src), str(out)]
    if quiet:
        cmd.insert(3, "-q")
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"sphinx-build failed ({result.returncode}):\n"
                           f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    if result.stderr.strip():
        print(result.stderr.strip(), file=sys.stderr)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", default=str(EXECUTED),
                        help="folder of executed notebooks + runs.json (default: build/executed); "
                             "a notebook not there comes from notebooks/")
    parser.add_argument("--out", default=str(ROOT / "build" / "site"), help="site folder")
    parser.add_argument("--work", default=None, help="staging folder (default: OUT-src)")
    args = parser.parse_args(argv)
    seconds = build(Path(args.out), source=Path(args.source),
                    work=Path(args.work) if args.work else None)
    print(f"course site built in {seconds:.1f} s: {Path(args.out) / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

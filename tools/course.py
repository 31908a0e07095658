"""Course harness: run every notebook top to bottom, render HTML, keep the badges in sync.

    python tools/course.py run --html build      # what `make course` does
    python tools/course.py run --inplace         # refresh the committed outputs
    python tools/course.py badges                # rewrite the Colab / Binder badges
"""

from __future__ import annotations

import argparse
import html
import os
import re
import sys
import time
import tomllib
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


def render_index(rows, out: Path) -> None:
    body = "\n".join(
        f"<tr><td><a href='{html.escape(name)}.html'>{html.escape(name)}</a></td>"
        f"<td>{secs:.1f}</td><td>{'ok' if err is None else 'FAILED: ' + html.escape(err)}</td></tr>"
        for name, secs, err in rows
    )
    total = sum(secs for _, secs, _ in rows)
    profile = os.environ.get("ADVLAB_PROFILE", "default")
    out.write_text(
        "<!doctype html><meta charset='utf-8'><title>advlab course</title>"
        "<style>body{font-family:sans-serif;max-width:50em;margin:2em auto}"
        "td,th{padding:.3em 1em;text-align:left}</style>"
        f"<h1>advlab: adversarial machine learning, rendered</h1>"
        f"<p>Profile: {html.escape(profile)}. Total {total:.0f} s.</p>"
        f"<table><tr><th>notebook</th><th>seconds</th><th>status</th></tr>{body}</table>\n"
    )


def run(html_dir: str | None, inplace: bool, timeout: int, only: list[str]) -> int:
    from nbconvert import HTMLExporter

    paths = notebook_paths(only)
    rows = []
    if html_dir:
        Path(html_dir).mkdir(parents=True, exist_ok=True)
    for path in paths:
        nb, secs, error = execute(path, timeout)
        rows.append((path.stem, secs, error))
        print(f"{path.name:40s} {secs:7.1f} s  {'ok' if error is None else 'FAILED'}", flush=True)
        if inplace and error is None:
            nbformat.write(nb, path)
        if html_dir:
            body, _ = HTMLExporter().from_notebook_node(nb)
            (Path(html_dir) / f"{path.stem}.html").write_text(body)
    print(f"\n{'notebook':40s} {'seconds':>9s}  status")
    for name, secs, error in rows:
        print(f"{name:40s} {secs:9.1f}  {'ok' if error is None else 'FAILED: ' + error}")
    print(f"{'total':40s} {sum(r[1] for r in rows):9.1f}")
    if html_dir:
        render_index(rows, Path(html_dir) / "index.html")
        print(f"rendered course: {Path(html_dir) / 'index.html'}")
    return 1 if any(err is not None for _, _, err in rows) else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute notebooks top to bottom")
    r.add_argument("--html", metavar="DIR", help="render each notebook to DIR/NAME.html + index")
    r.add_argument("--inplace", action="store_true", help="write fresh outputs into notebooks/")
    r.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    r.add_argument("only", nargs="*", help="run only notebooks whose name contains one of these")
    sub.add_parser("badges", help="rewrite the Colab / Binder badges in every notebook")
    args = parser.parse_args(argv)
    if args.cmd == "badges":
        return sync_badges()
    return run(args.html, args.inplace, args.timeout, args.only)


if __name__ == "__main__":
    sys.exit(main())

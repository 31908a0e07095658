"""Classroom copies of the course with nbgrader: student versions, autograding, a gradebook.

    python tools/classroom.py markup [NN ...]       # check the nbgrader markup of the notebooks
    python tools/classroom.py assignments           # build/classroom/: source/ and release/ copies
    python tools/classroom.py grade                 # autograde build/classroom/submitted/, grades.csv
    python tools/classroom.py student-run [NN ...]  # run student copies top to bottom (unsolved)
    python tools/classroom.py readme                # rewrite README.md's table of exercises

The committed notebooks are the instructor version: every exercise has its solution between
``### BEGIN SOLUTION`` / ``### END SOLUTION`` in a cell marked as an nbgrader answer, and a locked,
graded check cell calls ``advlab.exercises``. ``assignments`` copies them into an nbgrader course
folder and lets ``nbgrader generate_assignment`` make the student copies (solutions replaced by
``raise NotImplementedError()``, hidden tests and outputs removed). ``grade`` runs
``nbgrader autograde`` on whatever is under ``submitted/<student>/<assignment>/`` and exports the
gradebook to ``grades.csv``. Instructors can use any other nbgrader command in that folder.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CLASSROOM = ROOT / "build" / "classroom"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
HEADING = re.compile(r"^### Exercise (\d\d)\.(\d) · .+ \((\d+) points?\)\s*$", re.M)
CHECK_CALL = re.compile(r"\bexercises\.check_\w+\(")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


def notebook_paths(only: list[str] | None = None) -> list[Path]:
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    return [p for p in paths if not only or any(o in p.name for o in only)]


def grader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def is_answer(cell) -> bool:
    meta = grader(cell)
    return bool(meta.get("solution")) and not meta.get("grade")


def is_check(cell) -> bool:
    meta = grader(cell)
    return bool(meta.get("grade")) and not meta.get("solution") and cell.cell_type == "code"


def markup_problems(nb, name: str = "notebook") -> list[str]:
    """What is wrong with one notebook's exercise markup (an empty list when it is right).

    Rules: every cell holding a solution region is an nbgrader answer cell (``solution``, not
    locked) and every answer cell holds one; every cell calling ``exercises.check_...`` is a
    locked, graded cell with points and comes after an answer cell; grade ids are unique; each
    ``### Exercise NN.k · title (P points)`` heading is followed by answer and check cells whose
    points add up to P; two or three exercises per notebook, numbered 1, 2, 3 with the
    notebook's number.
    """
    problems = []
    ids: dict[str, int] = {}
    number = name[:2]
    headings = []
    seen_answer = False
    for i, cell in enumerate(nb.cells):
        meta = grader(cell)
        src = cell.source
        if meta:
            gid = meta.get("grade_id")
            if not gid:
                problems.append(f"cell {i}: nbgrader metadata without a grade_id")
            elif gid in ids:
                problems.append(f"cell {i}: grade_id {gid!r} also used by cell {ids[gid]}")
            else:
                ids[gid] = i
            if meta.get("schema_version") != 3:
                problems.append(f"cell {i}: nbgrader schema_version must be 3")
        has_region = BEGIN in src or END in src
        if has_region:
            if src.count(BEGIN) != src.count(END):
                problems.append(f"cell {i}: unbalanced solution markers")
            if cell.cell_type != "code" or not is_answer(cell) or meta.get("locked"):
                problems.append(f"cell {i}: holds a solution region but is not an unlocked "
                                "nbgrader answer cell")
        elif is_answer(cell):
            problems.append(f"cell {i}: answer cell without a solution region")
        if is_answer(cell):
            seen_answer = True
        if cell.cell_type == "code" and CHECK_CALL.search(src):
            if not is_check(cell) or not meta.get("locked"):
                problems.append(f"cell {i}: calls an exercise check but is not a locked, graded "
                                "nbgrader cell")
            elif not meta.get("points") or meta["points"] <= 0:
                problems.append(f"cell {i}: graded check cell without points")
            if not seen_answer:
                problems.append(f"cell {i}: check cell before any answer cell")
        elif is_check(cell):
            problems.append(f"cell {i}: graded cell that calls no exercises.check_... function")
        if (HIDDEN_BEGIN in src or HIDDEN_END in src) and not is_check(cell):
            problems.append(f"cell {i}: hidden tests outside a graded check cell")
        if cell.cell_type == "markdown":
            for m in HEADING.finditer(src):
                headings.append((i, m))
    numbers = []
    for k, (i, m) in enumerate(headings):
        nb_no, ex_no, points = m.group(1), int(m.group(2)), int(m.group(3))
        numbers.append(ex_no)
        if nb_no != number:
            problems.append(f"cell {i}: exercise {nb_no}.{ex_no} in notebook {number}")
        stop = headings[k + 1][0] if k + 1 < len(headings) else len(nb.cells)
        cells = nb.cells[i + 1:stop]
        answers = [c for c in cells if is_answer(c)]
        checks = [c for c in cells if is_check(c)]
        got = sum(grader(c).get("points", 0) for c in checks)
        if not answers or not checks:
            problems.append(f"cell {i}: exercise {nb_no}.{ex_no} needs an answer cell and a check "
                            "cell before the next exercise")
        elif got != points:
            problems.append(f"cell {i}: exercise {nb_no}.{ex_no} says {points} points, its check "
                            f"cells give {got}")
    if not 2 <= len(headings) <= 3:
        problems.append(f"{len(headings)} exercise headings; each notebook has two or three")
    if numbers != list(range(1, len(numbers) + 1)):
        problems.append(f"exercises numbered {numbers}, expected 1, 2, ...")
    return [f"{name}: {p}" for p in problems]


def exercise_table(nb) -> list[tuple[str, int]]:
    """``(title, points)`` of each exercise in a notebook, from its headings."""
    rows = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for m in HEADING.finditer(cell.source):
                title = m.group(0).split(" · ", 1)[1].rsplit(" (", 1)[0]
                rows.append((f"{m.group(1)}.{m.group(2)} {title}", int(m.group(3))))
    return rows


README = ROOT / "README.md"
TABLE_START, TABLE_END = "<!-- exercises -->", "<!-- /exercises -->"


def exercises_markdown(paths: list[Path] | None = None) -> str:
    """The README's table of exercises: per notebook, each exercise with its points."""
    rows = ["| notebook | exercises (points) | points |", "|---|---|---:|"]
    total_n = total_p = 0
    for path in paths or notebook_paths():
        table = exercise_table(nbformat.read(path, as_version=4))
        points = sum(p for _, p in table)
        total_n, total_p = total_n + len(table), total_p + points
        items = "; ".join(f"{t} ({p})" for t, p in table).replace("*", "\\*")
        rows.append(f"| {path.stem[:2]} | {items} | {points} |")
    rows.append(f"| all | {total_n} exercises | {total_p} |")
    return "\n".join(rows)


def sync_readme() -> bool:
    """Rewrite the exercise table in README.md; return whether it changed."""
    text = README.read_text()
    pattern = re.compile(re.escape(TABLE_START) + ".*?" + re.escape(TABLE_END), re.S)
    new = pattern.sub(lambda _: f"{TABLE_START}\n{exercises_markdown()}\n{TABLE_END}", text)
    if new != text:
        README.write_text(new)
    return new != text


def student_copy(nb):
    """A student copy made in memory by nbgrader's own preprocessors: solution regions replaced by
    the stub, hidden tests removed, outputs cleared (what ``generate_assignment`` does to the
    cells)."""
    from nbgrader.preprocessors import ClearHiddenTests, ClearOutput, ClearSolutions

    nb = nbformat.from_dict(nb)
    resources: dict = {}
    for pre in (ClearSolutions(code_stub={"python": STUB}), ClearHiddenTests(), ClearOutput()):
        nb, resources = pre.preprocess(nb, resources)
    return nb


def run_student_copy(path: Path, timeout: int = 600):
    """Run the student copy of ``path`` top to bottom, cells erroring allowed; return the executed
    notebook, the indices of cells that raised, and the seconds it took."""
    from nbclient import NotebookClient

    nb = student_copy(nbformat.read(path, as_version=4))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    errors = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
              and any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    return nb, errors, time.perf_counter() - start


def student_run_problems(nb, errors: list[int], name: str) -> list[str]:
    """A student copy may fail only in its answer and check cells, and must fail in a check."""
    problems = []
    for i in errors:
        cell = nb.cells[i]
        if not (is_answer(cell) or is_check(cell)):
            err = next(o for o in cell.outputs if o.get("output_type") == "error")
            problems.append(f"{name}: cell {i} fails in the student copy: "
                            f"{err.get('ename')}: {ANSI.sub('', err.get('evalue', ''))[:300]}")
    if not any(is_check(nb.cells[i]) for i in errors):
        problems.append(f"{name}: no check cell fails in the student copy (it would get full marks)")
    return problems


def nbgrader_env() -> dict:
    """nbgrader's ``db`` commands call ``alembic``: put this Python's ``bin/`` first on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def nbgrader(folder: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "nbgrader", *args]
    proc = subprocess.run(cmd, cwd=folder, env=nbgrader_env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"`nbgrader {' '.join(args)}` failed ({proc.returncode}):\n"
                           f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


CONFIG = """\
# nbgrader configuration of the advlab classroom folder (made by `make assignments`).
c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "advlab"
c.ClearSolutions.code_stub = {{"python": {stub!r}}}
c.Execute.timeout = {timeout}
"""


def assignments(folder: Path = CLASSROOM, only: list[str] | None = None,
                timeout: int = 600) -> list[str]:
    """Build the nbgrader course folder: ``nbgrader_config.py``, ``source/NN_topic/`` (the
    committed notebooks) and, through ``nbgrader generate_assignment``, ``release/NN_topic/``;
    return the assignment names. Submissions and the gradebook already there are kept."""
    paths = notebook_paths(only)
    problems = [p for path in paths
                for p in markup_problems(nbformat.read(path, as_version=4), path.stem)]
    if problems:
        raise SystemExit("exercise markup problems:\n  " + "\n  ".join(problems))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nbgrader_config.py").write_text(CONFIG.format(stub=STUB, timeout=timeout))
    for path in paths:
        for kind in ("source", "release"):
            shutil.rmtree(folder / kind / path.stem, ignore_errors=True)
        src = folder / "source" / path.stem
        src.mkdir(parents=True)
        shutil.copy2(path, src / path.name)
    pattern = paths[0].stem if len(paths) == 1 else "[0-9][0-9]_*"
    nbgrader(folder, "generate_assignment", pattern, "--force")
    missing = [p.stem for p in paths
               if not (folder / "release" / p.stem / p.name).is_file()]
    if missing:
        raise RuntimeError(f"nbgrader made no release copy of {', '.join(missing)}")
    return [p.stem for p in paths]


def grade(folder: Path = CLASSROOM) -> Path:
    """Autograde every submission under ``submitted/<student>/<assignment>/`` (students new to
    the gradebook are added) and export the gradebook to ``grades.csv``."""
    submitted = folder / "submitted"
    found = sorted(p for p in submitted.glob("*/*") if p.is_dir()) if submitted.is_dir() else []
    if not found:
        raise SystemExit(f"nothing to grade: put notebooks in {submitted}/<student>/<assignment>/")
    nbgrader(folder, "autograde", "*", "--create", "--force")
    out = folder / "grades.csv"
    nbgrader(folder, "export", "--to", str(out))
    return out


def student_run(only: list[str], timeout: int, lanes: int) -> int:
    """Run the student copy of every notebook, unsolved; in lanes as ``tools/course.py`` does."""
    sys.path.insert(0, str(Path(__file__).parent))
    import course

    paths = notebook_paths(only)
    start = time.perf_counter()
    status = 0
    for stage in course.stages(paths, lanes):
        live = [lane for lane in stage if lane]
        if len(live) == 1:
            status = _student_run_lane(live[0], timeout) or status
            continue

        def command(lane):
            return [sys.executable, __file__, "student-run", "--lanes", "1", "--timeout",
                    str(timeout), *[p.stem for p in lane]]
        for _lane, code, output in course.run_lanes(stage, command):
            print(output, end="", flush=True)
            status = status or code
    print(f"student copies: {time.perf_counter() - start:.0f} s wall time, {lanes} lane(s)")
    return status


def _student_run_lane(paths: list[Path], timeout: int) -> int:
    problems = []
    for path in paths:
        nb, errors, seconds = run_student_copy(path, timeout)
        found = student_run_problems(nb, errors, path.stem)
        problems += found
        checks = sum(1 for i in errors if is_check(nb.cells[i]))
        print(f"{path.stem}: student copy ran in {seconds:.0f} s; {checks} check cell(s) fail "
              f"as unsolved{'' if not found else '; PROBLEMS:'}", flush=True)
        for p in found:
            print(f"    {p}", flush=True)
    return 1 if problems else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("markup", help="check the nbgrader markup of the notebooks")
    p.add_argument("only", nargs="*")
    p = sub.add_parser("assignments", help="build the nbgrader course folder")
    p.add_argument("only", nargs="*")
    p.add_argument("--folder", default=str(CLASSROOM))
    p = sub.add_parser("grade", help="autograde the submissions, export grades.csv")
    p.add_argument("--folder", default=str(CLASSROOM))
    p = sub.add_parser("student-run", help="run student copies top to bottom, unsolved")
    p.add_argument("only", nargs="*")
    p.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    p.add_argument("--lanes", type=int, choices=(1, 2), default=None,
                   help="2: Part I beside Part II (default as tools/course.py)")
    sub.add_parser("readme", help="rewrite the table of exercises in README.md")
    args = parser.parse_args(argv)

    if args.command == "markup":
        problems = []
        for path in notebook_paths(args.only):
            nb = nbformat.read(path, as_version=4)
            problems += markup_problems(nb, path.stem)
            rows = exercise_table(nb)
            print(f"{path.stem}: {len(rows)} exercises, {sum(p for _, p in rows)} points"
                  + "".join(f"\n    {t} ({p})" for t, p in rows))
        print("\n".join(problems) if problems else "markup: no problems")
        return 1 if problems else 0
    if args.command == "readme":
        print("README.md exercise table " + ("updated" if sync_readme() else "already current"))
        return 0
    if args.command == "assignments":
        folder = Path(args.folder)
        names = assignments(folder, args.only)
        print(f"{len(names)} assignments: {folder}/source and {folder}/release")
        return 0
    if args.command == "grade":
        out = grade(Path(args.folder))
        print(f"grades: {out}")
        return 0
    if args.command == "student-run":
        if args.lanes is None:
            sys.path.insert(0, str(Path(__file__).parent))
            from course import default_lanes
            args.lanes = default_lanes()
        return student_run(args.only, args.timeout, args.lanes)
    return 2


if __name__ == "__main__":
    sys.exit(main())

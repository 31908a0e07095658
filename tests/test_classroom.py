"""Classroom copies: the exercise markup of every notebook, nbgrader's student copies (no solution
survives), and autograding (the instructor version gets full marks, a student copy less)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import classroom  # noqa: E402

NOTEBOOKS = classroom.notebook_paths()
GRADED = ["02_fgsm", "14_evaluating_gans"]  # autograded here: one from each part, both quick


def meta(gid, **kw):
    d = {"grade": False, "grade_id": gid, "locked": False, "schema_version": 3,
         "solution": False, "task": False}
    d.update(kw)
    return {"nbgrader": d}


def tiny_notebook(points=2):
    """A notebook with two well-formed exercises."""
    nb = nbformat.v4.new_notebook()
    cells = [nbformat.v4.new_code_cell("from advlab import exercises")]
    for k, name in ((1, "double"), (2, "triple")):
        cells += [
            nbformat.v4.new_markdown_cell(f"### Exercise 99.{k} · {name} it ({points} points)"),
            nbformat.v4.new_code_cell(f"def {name}(x):\n    ### BEGIN SOLUTION\n    return {k + 1} * x"
                                      "\n    ### END SOLUTION", metadata=meta(f"nb99_{name}",
                                                                           solution=True)),
            nbformat.v4.new_code_cell(f"exercises.check_{name}({name})",
                                      metadata=meta(f"nb99_{name}_check", grade=True, locked=True,
                                                    points=points)),
        ]
    nb.cells = cells
    return nb


def solution_lines(nb) -> set[str]:
    """Lines written only inside solution regions (not elsewhere in the notebook)."""
    inside, outside = set(), set()
    for cell in nb.cells:
        region = False
        for line in cell.source.splitlines():
            s = line.strip()
            if s.startswith(classroom.BEGIN):
                region = True
                continue
            if s.startswith(classroom.END):
                region = False
                continue
            (inside if region else outside).add(s)
    return {s for s in inside - outside if s and not s.startswith("#")}


def test_a_well_formed_notebook_has_no_markup_problems():
    assert classroom.markup_problems(tiny_notebook(), "99_tiny") == []
    assert classroom.exercise_table(tiny_notebook()) == [("99.1 double it", 2),
                                                         ("99.2 triple it", 2)]


@pytest.mark.parametrize("breakage, message", [
    (lambda nb: nb.cells[2].metadata.pop("nbgrader"), "not an unlocked nbgrader answer cell"),
    (lambda nb: nb.cells[3].metadata["nbgrader"].update(locked=False), "not a locked, graded"),
    (lambda nb: nb.cells[3].metadata["nbgrader"].update(points=3), "says 2 points"),
    (lambda nb: nb.cells[6].metadata["nbgrader"].update(grade_id="nb99_double_check"),
     "also used by cell 3"),
    (lambda nb: nb.cells.__delitem__(slice(4, 7)), "1 exercise headings"),
    (lambda nb: nb.cells.insert(1, nb.cells.pop(3)), "check cell before any answer cell"),
    (lambda nb: setattr(nb.cells[2], "source", "def double(x):\n    return 2 * x"),
     "answer cell without a solution region"),
])
def test_markup_problems_are_named(breakage, message):
    nb = tiny_notebook()
    breakage(nb)
    problems = classroom.markup_problems(nb, "99_tiny")
    assert any(message in p for p in problems), problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_exercise_markup(path):
    nb = nbformat.read(path, as_version=4)
    assert classroom.markup_problems(nb, path.stem) == []
    # the instructor version is complete: every check passed when it was run
    for cell in nb.cells:
        if classroom.is_check(cell):
            text = "".join(o.get("text", "") for o in cell.get("outputs", []))
            assert "✓" in text, f"{path.stem}: a check cell did not pass in the committed run"


def test_readme_lists_every_exercise():
    text = classroom.README.read_text()
    start, end = text.index(classroom.TABLE_START), text.index(classroom.TABLE_END)
    assert text[start + len(classroom.TABLE_START):end].strip() == classroom.exercises_markdown(), \
        "README.md's exercise table is stale: run python tools/classroom.py readme"


@pytest.fixture(scope="module")
def classroom_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("classroom")
    names = classroom.assignments(folder)
    assert names == [p.stem for p in NOTEBOOKS]
    return folder


def test_release_copies_carry_no_solution(classroom_folder):
    for path in NOTEBOOKS:
        source = nbformat.read(classroom_folder / "source" / path.stem / path.name, as_version=4)
        assert source == nbformat.read(path, as_version=4), "source/ holds the committed notebook"
        release = nbformat.read(classroom_folder / "release" / path.stem / path.name,
                                as_version=4)
        text = "\n".join(c.source for c in release.cells)
        for marker in (classroom.BEGIN, classroom.END, classroom.HIDDEN_BEGIN,
                       classroom.HIDDEN_END):
            assert marker not in text, f"{path.stem}: {marker!r} survives in the release copy"
        lines = {line.strip() for line in text.splitlines()}
        leaked = solution_lines(source) & lines
        assert not leaked, f"{path.stem}: solution lines in the release copy: {sorted(leaked)}"
        answers = [c for c in release.cells if classroom.is_answer(c)]
        assert answers and all("raise NotImplementedError()" in c.source for c in answers)
        assert all(not c.get("outputs") for c in release.cells if c.cell_type == "code")
        assert len(release.cells) == len(source.cells)


def test_autograde_gives_the_instructor_version_full_marks_and_a_student_copy_less(
        classroom_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("ADVLAB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("ADVLAB_SEED", "0")
    for student, kind in (("instructor", "source"), ("student", "release")):
        for name in GRADED:
            dest = classroom_folder / "submitted" / student / name
            dest.mkdir(parents=True)
            src = classroom_folder / kind / name / f"{name}.ipynb"
            dest.joinpath(src.name).write_bytes(src.read_bytes())
    out = classroom.grade(classroom_folder)
    rows = {(r["student_id"], r["assignment"]): r for r in csv.DictReader(out.open())}
    for name in GRADED:
        full = rows["instructor", name]
        assert float(full["max_score"]) > 0
        assert float(full["score"]) == float(full["max_score"]), full
        unsolved = rows["student", name]
        assert float(unsolved["score"]) < float(unsolved["max_score"]), unsolved
        # the unsolved copy ran top to bottom: only its answer and check cells raised
        graded = nbformat.read(classroom_folder / "autograded" / "student" / name
                               / f"{name}.ipynb", as_version=4)
        errors = [i for i, c in enumerate(graded.cells) if c.cell_type == "code"
                  and any(o.get("output_type") == "error" for o in c.get("outputs", []))]
        assert classroom.student_run_problems(graded, errors, name) == []

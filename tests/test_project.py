"""The course as a whole: packaging agrees with Binder, notebooks are committed clean."""

import json
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import course  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CONDA_NAMES = {"torch": "pytorch", "build": "python-build"}
MACHINE_PATH = re.compile(r"(/work/|/home/\w+|/root/|/tmp/|/Users/\w+|[A-Z]:\\\\Users)")


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[;]", req, maxsplit=1)[0].strip().lower()


def test_environment_yml_matches_pyproject():
    # Binder gets the full set: the core dependencies plus every extra (course, dev).
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + [r for extra in project["optional-dependencies"].values()
                                      for r in extra]
    text = (ROOT / "environment.yml").read_text()
    conda = {}
    for line in text.split("\ndependencies:", 1)[-1].splitlines():
        m = re.match(r"\s+-\s+([A-Za-z0-9_.-]+)\s*([<>=!~].*)?$", line)
        if m and not line.strip().startswith("- -e"):
            conda[m.group(1).lower()] = (m.group(2) or "").strip()
    for req in deps:
        name = CONDA_NAMES.get(_name(req), _name(req))
        assert name in conda, f"{name} is in pyproject.toml but not in environment.yml"
        spec = req[len(_name(req)):].strip()
        assert conda[name] == spec, f"{name}: pyproject says {spec!r}, environment.yml {conda[name]!r}"
    extra = set(conda) - {CONDA_NAMES.get(_name(r), _name(r)) for r in deps} - {"python", "pip"}
    assert not extra, f"{sorted(extra)} in environment.yml but not in pyproject.toml"
    assert "- -e ." in text, "environment.yml must install advlab itself (editable) via pip"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make course" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [ln for ln in ci.splitlines() if ln.strip() and not ln.startswith(("#", "set ", "cd "))]
    # Before it, only the system packages the browser test needs (chromium, through apt); after
    # it, the student copies run unsolved and the full profile's smoke run.
    assert commands[-3:] == ["make test", "make student-copies", "make full-smoke"], commands
    assert all("apt-get" in ln or ln.strip() in ("fi", "else") or ln.startswith(("if ", "SUDO="))
               for ln in commands[:-3]), commands


def test_there_are_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].name == "00_setup.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_badges_are_in_sync(path):
    nb = json.loads(path.read_text())
    first = "".join(nb["cells"][0]["source"])
    assert nb["cells"][0]["cell_type"] == "markdown"
    assert course.badge_block(path.name) in first, (
        "badges out of date: run `python tools/course.py badges`")
    repo, _ = course.repository()
    setup = "".join(nb["cells"][1]["source"])
    if "google.colab" in setup:
        assert f"git+https://github.com/{repo}" in setup, "Colab install must use the repository URL"
        assert "advlab[" not in setup, "Colab installs the core dependencies only, no extras"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_with_fresh_outputs(path):
    assert path.stat().st_size < 2 * 1024 * 1024, f"{path.name} is over 2 MB"
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name}: cells not executed top to bottom once (execution counts {counts})")
    assert any(c["outputs"] for c in code), f"{path.name} has no outputs: nbval would skip it"
    timed = [i for i, c in enumerate(code) if "execution" in c.get("metadata", {})]
    assert not timed, f"{path.name} cells {timed} keep per-cell timing metadata (refresh with tools/course.py)"
    for i, cell in enumerate(code):
        for out in cell["outputs"]:
            assert out["output_type"] != "error", f"{path.name} cell {i} holds an error output"
            if out["output_type"] == "stream" and out["name"] == "stderr":
                assert "Traceback" not in "".join(out["text"]), f"{path.name} cell {i}: traceback"
            text = json.dumps(out.get("text", "")) + json.dumps(out.get("data", {}).get("text/plain", ""))
            found = MACHINE_PATH.search(text)
            assert not found, f"{path.name} cell {i} prints a machine path: {found.group(0)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_a_self_check(path):
    nb = json.loads(path.read_text())
    source = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert re.search(r"^\s*(assert |advlab\.expect\()", source, re.M), (
        f"{path.name} has no self-check")
    assert re.search(r"advlab\.setup\((small_networks=True)?\)", source), (
        f"{path.name} does not seed its run from the course seed")
    fixed = re.search(r"manual_seed\(\s*\d+\s*\)|seed_everything\(\s*\d+|seed=\d+", source)
    assert not fixed, (f"{path.name} fixes a seed by hand ({fixed.group(0)}): derive it from the "
                       "course seed with advlab.derive_seed / advlab.generator")


def test_refresh_drops_per_cell_timing():
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nb.cells[0].metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00Z"}
    nb.cells[0].metadata["tags"] = ["keep"]
    out = course.without_timing(nb)
    assert "execution" not in out.cells[0].metadata and out.cells[0].metadata["tags"] == ["keep"]


def test_lanes_run_part_one_beside_part_two():
    paths = course.notebook_paths()
    (part_one, second), = course.stages(paths, 2)
    assert [p.name[:2] for p in part_one] == [f"{i:02d}" for i in range(8)]
    assert [p.name[:2] for p in second] == [f"{i:02d}" for i in range(8, 15)]
    assert course.stages(paths, 1) == [[paths]]
    only_gan = course.stages(course.notebook_paths(["10", "12"]), 2)
    assert only_gan == [[[], course.notebook_paths(["10", "12"])]]
    assert course.stages([], 2) == []


def test_lanes_side_by_side_and_the_gan_lane_run_on_one_thread_unless_told_otherwise(monkeypatch):
    for name in ("ADVLAB_THREADS", "ADVLAB_WORKERS", "OMP_WAIT_POLICY"):
        monkeypatch.delenv(name, raising=False)
    part_one, second = course.stages(course.notebook_paths(), 2)[0]
    alone = course.lane_env(part_one)  # Part I on its own keeps PyTorch's default threads
    assert "ADVLAB_THREADS" not in alone and alone["OMP_WAIT_POLICY"] == "PASSIVE"
    for lane in (part_one, second):
        env = course.lane_env(lane, 2)
        assert env["ADVLAB_THREADS"] == "1" and env["ADVLAB_WORKERS"] == "1"
    two = course.lane_env(second)
    assert two["ADVLAB_THREADS"] == "1" and two["ADVLAB_WORKERS"] == "1"
    monkeypatch.setenv("ADVLAB_THREADS", "4")
    assert course.lane_env(second, 2)["ADVLAB_THREADS"] == "4"


def test_lanes_default_to_two_only_for_the_quick_profile_on_two_cores(monkeypatch):
    monkeypatch.setattr(course.os, "cpu_count", lambda: 2)
    monkeypatch.delenv("ADVLAB_PROFILE", raising=False)
    assert course.default_lanes() == 2
    monkeypatch.setenv("ADVLAB_PROFILE", "full")
    assert course.default_lanes() == 1
    monkeypatch.delenv("ADVLAB_PROFILE")
    monkeypatch.setattr(course.os, "cpu_count", lambda: 1)
    assert course.default_lanes() == 1


def test_nbval_runs_again_only_notebooks_whose_kernel_did_not_start():
    died = ("__________ ERROR at setup of notebooks/01_target_models.ipynb::Cell 0 __________\n"
            "RuntimeError: Kernel died before replying to kernel_info\n"
            "=========================== short test summary info ============================\n"
            "ERROR notebooks/01_target_models.ipynb::Cell 0 - RuntimeError: Kernel died be...\n"
            "ERROR notebooks/01_target_models.ipynb::Cell 1 - RuntimeError: Kernel died be...\n")
    assert course.kernel_start_failures(died) == (["notebooks/01_target_models.ipynb"], [])
    failed = died + "FAILED notebooks/02_fgsm.ipynb::Cell 12\n"
    assert course.kernel_start_failures(failed) == (["notebooks/01_target_models.ipynb"],
                                                    ["notebooks/02_fgsm.ipynb"])
    plain = "FAILED notebooks/02_fgsm.ipynb::Cell 12\nERROR notebooks/03_black_box.ipynb::Cell 0\n"
    assert course.kernel_start_failures(plain) == ([], ["notebooks/02_fgsm.ipynb",
                                                        "notebooks/03_black_box.ipynb"])

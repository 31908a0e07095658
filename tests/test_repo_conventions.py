"""The open-course conventions: CI workflows, licences, citation, changelog and release check."""

import re
import shutil
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import release_check  # noqa: E402

WORKFLOWS = ROOT / ".github" / "workflows"
TEMPLATES = ROOT / ".github" / "ISSUE_TEMPLATE"
RELEASE_FILES = (release_check.PACKAGE, release_check.CHANGELOG, release_check.CITATION)


def _workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def _triggers(workflow: dict) -> dict:
    # YAML 1.1 reads the bare key `on` as the boolean True.
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return on or {}


def _steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def _step_using(workflow: dict, action: str) -> list[dict]:
    return [s for s in _steps(workflow) if str(s.get("uses", "")).startswith(action + "@")]


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_workflow_is_valid_yaml_without_secrets(path):
    workflow = yaml.safe_load(path.read_text())
    assert isinstance(workflow, dict) and workflow.get("jobs"), f"{path.name}: no jobs"
    assert _triggers(workflow), f"{path.name}: no `on:` triggers"
    for name, job in workflow["jobs"].items():
        assert job.get("runs-on"), f"{path.name}: job {name} has no runs-on"
        assert job.get("steps"), f"{path.name}: job {name} has no steps"
    assert "secrets." not in path.read_text(), f"{path.name} must run without repository secrets"


def test_the_two_workflows_exist():
    names = {p.name for p in WORKFLOWS.glob("*.yml")}
    assert {"test.yml", "robustness.yml"} <= names, f"workflows found: {sorted(names)}"


def test_test_workflow_runs_ci_script_on_push_and_pull_request():
    workflow = _workflow("test.yml")
    assert {"push", "pull_request"} <= set(_triggers(workflow))
    runs = [s.get("run", "") for s in _steps(workflow)]
    assert any(re.search(r"(^|\s)bash \.ci/run(\s|$)", run) for run in runs), runs
    assert all(job.get("timeout-minutes") == 90 for job in workflow["jobs"].values())
    python = _step_using(workflow, "actions/setup-python")
    assert python and str(python[0]["with"]["python-version"]) == "3.11"


def test_test_workflow_caches_downloads_and_models_and_keeps_the_site():
    workflow = _workflow("test.yml")
    python = _step_using(workflow, "actions/setup-python")[0]["with"]
    caches = [s["with"] for s in _step_using(workflow, "actions/cache")]
    pip_cached = (python.get("cache") == "pip"
                  and "pyproject.toml" in python.get("cache-dependency-path", "")) or any(
        "~/.cache/pip" in c["path"] and "pyproject.toml" in c["key"] for c in caches)
    assert pip_cached, "pip downloads are not cached by pyproject.toml"
    assert any("data/cache" in c["path"] for c in caches), "the course model cache is not cached"
    assert any(s.get("run", "").strip() == "make site" for s in _steps(workflow))
    uploads = _step_using(workflow, "actions/upload-artifact")
    assert any(u["with"]["path"].rstrip("/") == "build/site" and "always()" in u.get("if", "")
               for u in uploads), "the course site is not uploaded after every run"


def test_robustness_workflow_runs_weekly_and_by_hand():
    workflow = _workflow("robustness.yml")
    triggers = _triggers(workflow)
    assert "workflow_dispatch" in triggers
    crons = [entry["cron"] for entry in triggers.get("schedule") or []]
    assert len(crons) == 1 and crons[0].split()[2:4] == ["*", "*"], crons  # weekly: any day/month
    assert crons[0].split()[4] != "*", f"{crons[0]} runs every day, not weekly"
    assert any("make robustness" in s.get("run", "") for s in _steps(workflow))
    uploads = _step_using(workflow, "actions/upload-artifact")
    assert any(u["with"]["path"].rstrip("/") == "build/robustness" for u in uploads)


def test_licence_files():
    code = (ROOT / "LICENSE").read_text()
    assert code.startswith("MIT License") and "the advlab authors" in code
    assert "WITHOUT WARRANTY OF ANY KIND" in code
    content = (ROOT / "LICENSE-content").read_text()
    assert "Creative Commons Attribution 4.0 International" in content
    assert "https://creativecommons.org/licenses/by/4.0/legalcode" in content


def test_readme_links_the_project_files():
    readme = (ROOT / "README.md").read_text()
    for name in ("LICENSE", "LICENSE-content", "CONTRIBUTING.md", "CITATION.cff", "CHANGELOG.md"):
        assert f"]({name})" in readme, f"README.md does not link {name}"
        assert (ROOT / name).is_file(), f"README.md links {name}, which does not exist"


def test_pyproject_points_at_the_code_licence_and_reads_the_version_from_the_package():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    assert "version" not in project and "version" in project.get("dynamic", [])
    attr = pyproject["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "advlab.__version__"


def test_citation_file():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["license"] == "MIT"
    assert cff["repository-code"] == "https://github.com/advlab-course/advlab"
    assert {"name": "The advlab authors"} in cff["authors"]
    assert cff["title"] and cff["message"]


def test_release_check_passes_on_the_repository(capsys):
    assert release_check.check(ROOT) == []
    assert release_check.main(["--root", str(ROOT)]) == 0
    import advlab

    assert advlab.__version__ in capsys.readouterr().out


def _copy_release_files(dest: Path) -> Path:
    for name in RELEASE_FILES:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, dest / name)
    return dest


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_release_check_passes_on_a_faithful_copy(tmp_path):
    assert release_check.check(_copy_release_files(tmp_path)) == []


def test_release_check_names_the_citation_when_its_version_disagrees(tmp_path, capsys):
    root = _copy_release_files(tmp_path)
    version = release_check.package_version(root)
    _edit(root / "CITATION.cff", f'version: "{version}"', 'version: "9.9.9"')
    assert release_check.main(["--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "CITATION.cff: version is 9.9.9" in out and version in out


def test_release_check_names_the_changelog_when_its_version_or_date_disagrees(tmp_path):
    root = _copy_release_files(tmp_path)
    version, date = release_check.changelog_release(root)
    _edit(root / "CHANGELOG.md", f"## [{version}] - {date}", f"## [{version}9] - 1999-01-01")
    problems = release_check.check(root)
    assert any(p.startswith("CHANGELOG.md: top release is") for p in problems), problems
    assert any("date-released" in p and "1999-01-01" in p for p in problems), problems


def test_release_check_names_the_package_when_it_moves_alone(tmp_path):
    root = _copy_release_files(tmp_path)
    version = release_check.package_version(root)
    _edit(root / "lib/advlab/__init__.py", f'__version__ = "{version}"', '__version__ = "0.0.1"')
    problems = release_check.check(root)
    assert len(problems) == 2 and all("lib/advlab/__init__.py" in p for p in problems), problems


def test_release_check_skips_unreleased_and_reports_missing_files(tmp_path):
    root = _copy_release_files(tmp_path)
    _edit(root / "CHANGELOG.md", "\n## [", "\n## [Unreleased]\n\n- work in progress\n\n## [")
    assert release_check.check(root) == []
    (root / "CITATION.cff").unlink()
    assert release_check.check(root) == ["CITATION.cff: file not found"]


def test_release_check_rejects_a_bad_root(tmp_path):
    with pytest.raises(ValueError, match="root"):
        release_check.check(tmp_path / "missing")
    with pytest.raises(TypeError, match="root"):
        release_check.check(3)


def test_fallback_yaml_reader_agrees_with_pyyaml_on_the_citation():
    text = (ROOT / "CITATION.cff").read_text()
    simple = release_check.parse_simple_yaml(text)
    full = yaml.safe_load(text)
    for key in ("cff-version", "version", "date-released", "license", "title"):
        assert simple[key] == str(full[key]), key
    assert "name" not in simple  # nested author entries are not top-level fields


def test_makefile_has_the_release_check_target():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^release-check:.*\n\t.*tools/release_check\.py", makefile, re.M)


def test_issue_templates_ask_for_what_a_fix_needs():
    bug = next(TEMPLATES.glob("bug_report.*")).read_text()
    assert 'python -c "import advlab; print(advlab.versions())"' in bug
    for words in ("Colab", "Binder", "JupyterLab", "CI", "CPU", "GPU", "cell", "error"):
        assert words in bug, f"the bug report template does not ask about {words}"
    erratum = next(TEMPLATES.glob("content_erratum.*")).read_text()
    for words in ("Notebook", "claim", "wrong", "Source", "section", "page"):
        assert words in erratum, f"the erratum template does not ask for {words}"
    for path in TEMPLATES.glob("*.yml"):
        assert isinstance(yaml.safe_load(path.read_text()), dict), f"{path.name} is not valid YAML"
    pull = (ROOT / ".github" / "PULL_REQUEST_TEMPLATE.md").read_text()
    for step in ("make refresh", "make robustness", "make test", "advlab.setup()"):
        assert step in pull, f"the pull request checklist does not mention {step}"

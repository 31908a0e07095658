"""The course site (tools/site.py): built from the committed notebooks into a temporary folder."""

import importlib.util
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import course  # noqa: E402

# tools/site.py shares its name with the standard library's ``site`` module: load it by path.
_spec = importlib.util.spec_from_file_location("course_site", ROOT / "tools" / "site.py")
course_site = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(course_site)

NOTEBOOKS = course.notebook_paths()
ESCAPES = ("\x1b[", "\\u001b[", "\\x1b[", "&#27;[", "&#x1b;[", "&#x1B;[")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One build from the committed notebooks (an empty --from folder: no executed copies)."""
    tmp = tmp_path_factory.mktemp("site")
    (tmp / "no-runs").mkdir()
    seconds = course_site.build(tmp / "site", source=tmp / "no-runs", work=tmp / "work")
    print(f"site built in {seconds:.1f} s")
    return tmp / "site"


def _launch_links(page: str) -> list[str]:
    block = re.search(r'<div class="dropdown dropdown-launch-buttons">(.*?)</ul>', page, re.S)
    assert block, "no launch-button menu on the page"
    return re.findall(r'href="([^"]+)"', block.group(1))


def test_index_links_every_notebook_in_course_order(built):
    index = (built / "index.html").read_text(encoding="utf-8")
    assert len(NOTEBOOKS) == 15
    for path in NOTEBOOKS:
        assert f'href="notebooks/{path.stem}.html' in index, f"index does not link {path.stem}"
        assert (built / "notebooks" / f"{path.stem}.html").is_file()
    part1, part2 = index.index("Part I ·"), index.index("Part II ·")
    assert part1 < index.index("notebooks/07_") < part2 < index.index("notebooks/08_")
    # the sidebar's table of contents: every notebook once, in course order
    nav = re.search(r'<nav class="bd-links[^"]*".*?</nav>', index, re.S).group(0)
    order = re.findall(r'href="notebooks/(\d\d)_', nav)
    assert order == [p.name[:2] for p in NOTEBOOKS], order


def test_landing_page_says_what_each_notebook_teaches_its_time_and_status(built):
    index = (built / "index.html").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        info = course_site.describe(nbformat.read(path, as_version=4))
        assert info["goals"], f"{path.name}: no 'In this notebook you will' list in its first cell"
        first_goal = re.sub(r"[`*$]", "", info["goals"][0]).split()[0]
        assert first_goal in index
    assert index.count("quick run:") == 15 and index.count("status:") == 15
    assert "status: ok" in index


def test_search_page_and_index_exist(built):
    assert (built / "search.html").is_file()
    searchindex = (built / "searchindex.js").read_text(encoding="utf-8")
    assert "fgsm" in searchindex.lower() and "wasserstein" in searchindex.lower()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_page_has_launch_buttons_download_and_math(built, path):
    page = (built / "notebooks" / f"{path.stem}.html").read_text(encoding="utf-8")
    repo, branch = course.repository()
    links = _launch_links(page)
    assert f"https://colab.research.google.com/github/{repo}/blob/{branch}/notebooks/{path.name}" in links
    assert f"https://mybinder.org/v2/gh/{repo}/{branch}?urlpath=lab/tree/notebooks/{path.name}" in links
    assert f'href="../_sources/notebooks/{path.name}"' in page, "no .ipynb download"
    assert (built / "_sources" / "notebooks" / path.name).is_file()
    source = "".join(c.source for c in nbformat.read(path, as_version=4).cells
                     if c.cell_type == "markdown")
    if re.search(r"\$[^$\s][^$]*\$", source):
        assert 'class="math' in page and "mathjax" in page.lower(), "math is not rendered"


def test_no_page_shows_terminal_colour_codes(built):
    pages = list(built.rglob("*.html")) + list(built.rglob("*.ipynb"))
    assert len(pages) > 15
    for page in pages:
        text = page.read_text(encoding="utf-8")
        found = [e for e in ESCAPES if e in text]
        assert not found, f"{page.relative_to(built)} shows terminal escape codes {found}"


def _coloured_notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 99 · x\n\n**In this notebook you will**\n- a\n"),
                nbformat.v4.new_code_cell("1/0", execution_count=1, outputs=[
                    nbformat.v4.new_output("stream", name="stderr",
                                           text="\x1b[31mwarning\x1b[0m\n"),
                    nbformat.v4.new_output("error", ename="ZeroDivisionError",
                                           evalue="\x1b[1mdivision by zero\x1b[0m",
                                           traceback=["\x1b[0;31m----\x1b[0m", "\x1b[?25lZero"])])]
    nb.metadata["widgets"] = {"state": {"o": {"outputs": [{"text": "\x1b[32mok\x1b[39m"}]}}}
    return nb


def test_ansi_codes_are_stripped_from_outputs_and_widget_state():
    nb = course_site.clean_notebook(_coloured_notebook())
    text = json.dumps(nb)
    assert "\\u001b" not in text and "\x1b" not in text
    outputs = nb.cells[1].outputs
    assert outputs[0].text == "warning\n" and outputs[1].evalue == "division by zero"
    assert outputs[1].traceback == ["----", "Zero"]
    assert course_site.stored_run(nb)["status"] == "failed: ZeroDivisionError: division by zero"


def test_status_comes_from_the_last_make_course_run(tmp_path):
    executed = tmp_path / "executed"
    executed.mkdir()
    name = NOTEBOOKS[2]
    nbformat.write(nbformat.read(name, as_version=4), executed / name.name)
    (executed / "runs.json").write_text(json.dumps({"notebooks": {name.stem: {
        "seconds": 12.5, "status": "failed: AssertionError: \x1b[31mno\x1b[0m",
        "finished": "2030-01-02T03:04:05+00:00"}}}))
    src = course_site.stage(executed, tmp_path / "work")
    index = (src / "index.md").read_text(encoding="utf-8")
    entry = index.split(name.stem)[1].split("###")[0]
    assert "quick run: 12 s" in entry and "make course, 2030-01-02" in entry
    assert "**failed: AssertionError: no**" in entry and "\x1b" not in index
    assert "stored outputs" in index.split(NOTEBOOKS[3].stem)[1].split("###")[0]


def test_a_first_cell_without_a_title_is_refused():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    with pytest.raises(ValueError, match="first cell"):
        course_site.describe(nb)


def test_make_course_records_seconds_and_status_for_the_site(tmp_path):
    nb = _coloured_notebook()
    assert course.failure(nb, "----") == "ZeroDivisionError: division by zero"
    nb.cells[1].outputs = []
    assert "timed out" in course.failure(nb, "-------------------")
    course.save_runs([("00_setup", 3.21, None)], tmp_path)
    course.save_runs([("02_fgsm", 7.0, "AssertionError: \x1b[31mx\x1b[0m")], tmp_path)
    runs = json.loads((tmp_path / "runs.json").read_text())["notebooks"]
    assert runs["00_setup"]["seconds"] == 3.2 and runs["00_setup"]["status"] == "ok"
    assert runs["02_fgsm"]["status"] == "failed: AssertionError: x"

"""Release check: the package, the changelog and the citation name the same release.

    python tools/release_check.py              # this checkout (what `make release-check` runs)
    python tools/release_check.py --root DIR   # another copy of the course

Three files repeat the version: ``lib/advlab/__init__.py`` (``__version__``, the one the package
is built from), the top release heading of ``CHANGELOG.md`` (``## [X.Y.Z] - YYYY-MM-DD``; an
``[Unreleased]`` section above it is skipped) and ``CITATION.cff`` (``version`` and
``date-released``). The check reads them without importing the package, prints every
disagreement with the file it is in, and exits with status 1 if there is one.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path("lib/advlab/__init__.py")
CHANGELOG = Path("CHANGELOG.md")
CITATION = Path("CITATION.cff")

VERSION = re.compile(r"\d+\.\d+\.\d+(?:[-.+]?[0-9A-Za-z.]+)?")
RELEASE_HEADING = re.compile(
    r"^##\s+\[?(?P<version>(?i:unreleased)|\d[^\]\s]*)\]?(?:\s+-\s+(?P<date>\S+))?\s*$", re.M)


class ReleaseFileError(Exception):
    """A release file is missing or does not say what the check needs."""


def package_version(root: Path) -> str:
    """``__version__`` from the package's ``__init__.py``, read as source (nothing imported)."""
    path = root / PACKAGE
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except FileNotFoundError:
        raise ReleaseFileError(f"{PACKAGE}: file not found") from None
    except SyntaxError as exc:
        raise ReleaseFileError(f"{PACKAGE}: not valid Python ({exc.msg}, line {exc.lineno})") from None
    for node in tree.body:
        if (isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets)):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return node.value.value
            raise ReleaseFileError(f"{PACKAGE}: __version__ is not a plain string")
    raise ReleaseFileError(f"{PACKAGE}: no __version__ = \"X.Y.Z\" line")


def changelog_release(root: Path) -> tuple[str, str | None]:
    """Version and date of the top release heading in the changelog (``[Unreleased]`` skipped)."""
    path = root / CHANGELOG
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReleaseFileError(f"{CHANGELOG}: file not found") from None
    for match in RELEASE_HEADING.finditer(text):
        if match["version"].lower() != "unreleased":
            return match["version"], match["date"]
    raise ReleaseFileError(f"{CHANGELOG}: no release heading such as '## [0.2.0] - 2026-11-29'")


def parse_simple_yaml(text: str) -> dict[str, str]:
    """Top-level ``key: scalar`` pairs of a YAML file, for when PyYAML is not installed.

    Enough for CITATION.cff's ``version`` and ``date-released``: nested blocks, list items and
    comments are skipped, and one level of quotes is removed.
    """
    fields = {}
    for line in text.splitlines():
        if not line or line[0] in " \t#-":
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        value = value.strip()
        if value[:1] in ("'", '"'):
            end = value.find(value[0], 1)
            value = value[1:end] if end > 0 else value[1:]
        else:
            value = value.split(" #", 1)[0].strip()
        fields[key.strip()] = value
    return fields


def load_yaml(text: str) -> dict:
    """A YAML mapping: with PyYAML when it is installed, else :func:`parse_simple_yaml`."""
    try:
        import yaml
    except ImportError:
        return parse_simple_yaml(text)
    data = yaml.safe_load(text)
    return data if isinstance(data, dict) else {}


def citation_release(root: Path) -> tuple[str | None, str | None]:
    """``version`` and ``date-released`` from CITATION.cff, as strings (None where absent)."""
    path = root / CITATION
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReleaseFileError(f"{CITATION}: file not found") from None
    try:
        data = load_yaml(text)
    except Exception as exc:  # PyYAML's errors; the message says where the file is broken
        raise ReleaseFileError(f"{CITATION}: not valid YAML ({exc})") from None
    version, date = data.get("version"), data.get("date-released")
    if isinstance(date, dt.date):
        date = date.isoformat()
    return (None if version is None else str(version)), (None if date is None else str(date))


def _valid_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) is not None


def check(root: Path | str = ROOT) -> list[str]:
    """Every disagreement between the three release files under ``root``; empty when they agree."""
    if not isinstance(root, str | Path):
        raise TypeError(f"root must be a path, got {type(root).__name__}")
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root must be a folder holding a copy of the course, got {str(root)!r}")

    problems, found = [], {}
    for name, read in ((PACKAGE, package_version), (CHANGELOG, changelog_release),
                       (CITATION, citation_release)):
        try:
            found[name] = read(root)
        except ReleaseFileError as exc:
            problems.append(str(exc))
    if problems:
        return problems

    version = found[PACKAGE]
    log_version, log_date = found[CHANGELOG]
    cff_version, cff_date = found[CITATION]
    if not VERSION.fullmatch(version):
        problems.append(f"{PACKAGE}: __version__ {version!r} is not of the form X.Y.Z")
    if log_version != version:
        problems.append(f"{CHANGELOG}: top release is {log_version}, "
                        f"but {PACKAGE} says __version__ = {version!r}")
    if cff_version is None:
        problems.append(f"{CITATION}: no 'version' field")
    elif cff_version != version:
        problems.append(f"{CITATION}: version is {cff_version}, "
                        f"but {PACKAGE} says __version__ = {version!r}")
    if log_date is None:
        problems.append(f"{CHANGELOG}: the heading of release {log_version} has no date "
                        f"('## [{log_version}] - YYYY-MM-DD')")
    elif not _valid_date(log_date):
        problems.append(f"{CHANGELOG}: release {log_version} date {log_date!r} is not YYYY-MM-DD")
    if cff_date is None:
        problems.append(f"{CITATION}: no 'date-released' field")
    elif not _valid_date(cff_date):
        problems.append(f"{CITATION}: date-released {cff_date!r} is not YYYY-MM-DD")
    if log_date and cff_date and log_date != cff_date:
        problems.append(f"{CITATION}: date-released is {cff_date}, "
                        f"but {CHANGELOG} dates release {log_version} {log_date}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(ROOT), help="the course folder (default: this one)")
    args = parser.parse_args(argv)
    try:
        problems = check(args.root)
    except ValueError as exc:
        parser.error(str(exc))
    if problems:
        print("release check failed:")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    version = package_version(Path(args.root))
    _, date = changelog_release(Path(args.root))
    print(f"release check: advlab {version} ({date}) agrees in {PACKAGE}, {CHANGELOG} "
          f"and {CITATION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""pytest hooks shared by the unit tests and the nbval notebook run."""

from collections import defaultdict


def pytest_terminal_summary(terminalreporter):
    per_notebook = defaultdict(float)
    for reports in terminalreporter.stats.values():
        for rep in reports:
            path = getattr(rep, "nodeid", "").split("::")[0]
            if path.endswith(".ipynb") and getattr(rep, "when", "call") == "call":
                per_notebook[path] += getattr(rep, "duration", 0.0)
    if not per_notebook:
        return
    terminalreporter.section("slowest notebooks")
    for path, secs in sorted(per_notebook.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{secs:8.1f} s  {path}")
    terminalreporter.write_line(f"{sum(per_notebook.values()):8.1f} s  total")

"""Full-profile smoke run: every notebook's ``full`` code path at smoke scale, offline, on the CPU.

    python tools/full_smoke.py            # every notebook (`make full-smoke`)
    python tools/full_smoke.py 02 12      # only notebooks whose name contains 02 or 12

Writes small MNIST / CIFAR-10 fixtures (``tools/fixtures.py``: real MNIST digits, synthetic
CIFAR-10-shaped images) into a fresh temporary data folder, then runs each notebook top to bottom
with ``ADVLAB_PROFILE=full ADVLAB_SMOKE=1 ADVLAB_DATA=<that folder> ADVLAB_DEVICE=cpu``, one
thread, and the network blocked for the kernel (a ``sitecustomize`` on ``PYTHONPATH`` makes every non-loopback
connection and name lookup raise), so a notebook that tries to download fails here instead of
hanging. The committed notebooks are not changed. It prints a table of notebook, seconds and
status (with the failing cell), then the lines the notebooks printed starting with
``[smoke scale: not verified]`` (``advlab.expect`` at smoke scale), and exits 1 on any failure.
A smoke run checks that the code paths run, never that a number reaches its full-scale value.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import course  # noqa: E402
import fixtures  # noqa: E402

NOT_VERIFIED = "[smoke scale: not verified]"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

# Imported by the kernel's Python at start-up (it is first on PYTHONPATH): no connection leaves
# the machine. Loopback and Unix sockets stay open (the kernel talks to nbclient over them).
SITECUSTOMIZE = '''\
"""Written by tools/full_smoke.py: the network is blocked for this process."""
import ipaddress
import socket

_LOCAL_NAMES = {"localhost", "ip6-localhost", ""}
_MESSAGE = "network blocked by tools/full_smoke.py (a full-smoke run must work offline)"


def _local(host):
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host is None or str(host).lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _check(address):
    if isinstance(address, tuple) and address and not _local(address[0]):
        raise OSError(f"{_MESSAGE}: connection to {address[0]!r} refused")


_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo


def connect(self, address):
    _check(address)
    return _connect(self, address)


def connect_ex(self, address):
    _check(address)
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if not _local(host):
        raise socket.gaierror(f"{_MESSAGE}: lookup of {host!r} refused")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
socket.getaddrinfo = getaddrinfo
'''


def write_network_block(folder) -> Path:
    """Write the ``sitecustomize.py`` above into ``folder``; return ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return folder


def smoke_environment(data, block_dir=None, base=None) -> dict[str, str]:
    """The environment a notebook kernel runs under in a smoke run (``base``: default os.environ).

    Full profile at smoke scale, on the CPU, with ``data`` as the data folder; ``block_dir`` (a
    folder from :func:`write_network_block`) goes first on ``PYTHONPATH``. One thread: smoke sizes
    are too small to gain from more, and the run can share a busy machine. ``ADVLAB_HEADLINES``
    is dropped: smoke numbers are not headline numbers.
    """
    if not isinstance(data, (str, Path)):
        raise TypeError(f"data must be a path, got {type(data).__name__}")
    env = dict(os.environ if base is None else base)
    env.pop("ADVLAB_HEADLINES", None)
    env.update({"ADVLAB_PROFILE": "full", "ADVLAB_SMOKE": "1", "ADVLAB_DATA": str(data),
                "ADVLAB_DEVICE": "cpu", **{v: "1" for v in THREAD_VARS}})
    if block_dir is not None:
        rest = env.get("PYTHONPATH", "")
        env["PYTHONPATH"] = str(block_dir) + (os.pathsep + rest if rest else "")
    return env


def not_verified_lines(nb) -> list[str]:
    """Lines of a notebook's printed output that start with ``[smoke scale: not verified]``."""
    lines = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stdout":
                text = out.get("text", "")
                lines += [ln for ln in text.splitlines() if ln.startswith(NOT_VERIFIED)]
    return lines


def failing_cell(nb) -> str | None:
    """``cell N (code cell M): Name: message`` for the first cell with an error output."""
    code = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        code += 1
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                value = course.ANSI.sub("", str(out.get("evalue", ""))).strip().splitlines()
                return (f"cell {index} (code cell {code}): {out.get('ename')}: "
                        f"{value[0] if value else ''}")
    return None


def run(only: list[str], timeout: int, keep: bool) -> int:
    paths = course.notebook_paths(only)
    if not paths:
        print(f"no notebook matches {only}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="advlab-full-smoke-"))
    data, block = work / "data", write_network_block(work / "netblock")
    start = time.perf_counter()
    before = os.environ.copy()
    rows = []
    try:
        fixtures.write_fixtures(data)
        os.environ.clear()
        os.environ.update(smoke_environment(data, block, before))
        print(f"full profile at smoke scale, CPU, network blocked; fixtures in {data}", flush=True)
        for path in paths:
            nb, secs, error = course.execute(path, timeout)
            if keep:  # the executed copy, for reading a failure; the committed notebook is untouched
                nbformat.write(nb, work / path.name)
            where = failing_cell(nb) if error is not None else None
            rows.append((path.stem, secs, error, where, not_verified_lines(nb)))
            print(f"{path.name:40s} {secs:7.1f} s  {'ok' if error is None else 'FAILED'}"
                  f"{f' at {where}' if where else ''}", flush=True)
    finally:
        os.environ.clear()
        os.environ.update(before)
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'notebook':36s} {'seconds':>8s}  {'not verified':>12s}  status")
    for name, secs, error, where, lines in rows:
        status = "ok" if error is None else f"FAILED at {where}" if where else f"FAILED: {error}"
        print(f"{name:36s} {secs:8.1f}  {len(lines):12d}  {status}")
    print(f"{'total':36s} {sum(r[1] for r in rows):8.1f}  {sum(len(r[4]) for r in rows):12d}")
    print(f"wall time {time.perf_counter() - start:.0f} s (fixtures included)")
    for name, _, _, _, lines in rows:
        if lines:
            print(f"\n{name}: {len(lines)} self-check(s) not verified at smoke scale")
            for line in lines:
                print(f"  {line}")
    failed = [r[0] for r in rows if r[2] is not None]
    if failed:
        print(f"\nFAILED: {', '.join(failed)}")
    return 1 if failed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder: fixtures, trained models, executed notebooks")
    parser.add_argument("only", nargs="*", help="run only notebooks whose name contains one of these")
    args = parser.parse_args(argv)
    if args.timeout < 1:
        parser.error(f"--timeout must be at least 1 second, got {args.timeout}")
    return run(args.only, args.timeout, args.keep)


if __name__ == "__main__":
    sys.exit(main())

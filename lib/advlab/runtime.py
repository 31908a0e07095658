"""Where the course runs: device, the course seed, the quick / full profile and the data folder.

Every notebook starts with ``advlab.setup()``: it seeds every generator from the **course seed**
(``ADVLAB_SEED``, default 0) and prints :func:`versions`. All other randomness in a notebook comes
from :func:`derive_seed` / :func:`generator`, so one number changes every split, initialisation,
batch order and random start, and the same seed gives the same numbers on the same machine.
Sizes are chosen with ``advlab.pick(quick=..., full=...)``. Headline numbers go through
:func:`headline` (recorded for ``make robustness``); claims that need full-scale training go
through :func:`expect`, which reports rather than asserts at smoke scale.
"""

from __future__ import annotations

import json
import os
import platform
import random
from pathlib import Path

import numpy as np
import torch

PROFILES = ("quick", "full")
DEVICES = ("cpu", "cuda", "mps")
_DEFAULT_THREADS = torch.get_num_threads()
SEED_STRIDE = 1_000_003  # a prime: the streams of two course seeds never share an offset grid


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def device() -> torch.device:
    """The device notebooks train on: CUDA, then Apple MPS, then CPU.

    ``ADVLAB_DEVICE`` (e.g. ``cpu``, ``cuda``, ``cuda:1``, ``mps``) overrides the choice.
    """
    override = os.environ.get("ADVLAB_DEVICE", "").strip()
    if override:
        kind = override.split(":", 1)[0]
        if kind not in DEVICES:
            raise ValueError(
                f"ADVLAB_DEVICE must be one of {', '.join(DEVICES)} (optionally with ':index'), "
                f"got {override!r}"
            )
        return torch.device(override)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _check_seed(seed, name: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"{name} must be an int, got {type(seed).__name__}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"{name} must be in [0, 2**32), got {seed}")
    return seed


def course_seed() -> int:
    """The one seed behind all of a notebook's randomness: ``ADVLAB_SEED``, default 0."""
    value = os.environ.get("ADVLAB_SEED", "").strip()
    if not value:
        return 0
    try:
        seed = int(value)
    except ValueError:
        raise ValueError(f"ADVLAB_SEED must be a whole number in [0, 2**32), got {value!r}") from None
    if not 0 <= seed < 2**32:
        raise ValueError(f"ADVLAB_SEED must be in [0, 2**32), got {seed}")
    return seed


def derive_seed(offset: int = 0, *, course: int | None = None) -> int:
    """Seed of stream ``offset`` under the course seed: ``offset`` itself when the course seed is 0.

    Different offsets give independent streams (one for the split, one per model, one per random
    start, ...); a different course seed moves every stream at once. ``course`` names another
    course seed than the current one (e.g. the one shipped generators were trained under).
    """
    _check_seed(offset, "offset")
    course = course_seed() if course is None else _check_seed(course, "course")
    return (offset + SEED_STRIDE * course) % 2**32


def generator(offset: int = 0, device=None) -> torch.Generator:
    """A fresh ``torch.Generator`` seeded with :func:`derive_seed` ``(offset)``."""
    gen = torch.Generator() if device is None else torch.Generator(device=device)
    return gen.manual_seed(derive_seed(offset))


def seed_everything(seed: int | None = None) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a CPU generator seeded the same.

    ``seed=None`` uses the course seed's stream 0 (:func:`derive_seed`).
    """
    seed = derive_seed(0) if seed is None else _check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def versions() -> str:
    """One line for bug reports: course, Python, torch, device, profile and course seed."""
    from . import __version__

    return (f"advlab {__version__} | Python {platform.python_version()} | torch {torch.__version__}"
            f" | device {device()} | profile {profile()}{' (smoke scale)' if smoke_scale() else ''}"
            f" | seed {course_seed()}")


def threads(*, small_networks: bool = False) -> int:
    """Set and return PyTorch's CPU thread count: ``ADVLAB_THREADS`` if set; else one thread for
    ``small_networks`` on the CPU (splitting tiny matrix products across threads costs more than
    it saves: see ``benchmarks/bench_gan.py --threads``); else PyTorch's default for this process
    (what it chose at import, e.g. from ``OMP_NUM_THREADS``), so a notebook can go back to all
    cores for larger networks."""
    value = os.environ.get("ADVLAB_THREADS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"ADVLAB_THREADS must be a whole number >= 1, got {value!r}")
        torch.set_num_threads(int(value))
    elif small_networks and device().type == "cpu":
        torch.set_num_threads(1)
    else:
        torch.set_num_threads(_DEFAULT_THREADS)
    return torch.get_num_threads()


def setup(*, small_networks: bool = False) -> torch.Generator:
    """A notebook's first call: seed everything from the course seed, set the CPU threads
    (:func:`threads`) and print :func:`versions`."""
    gen = seed_everything()
    threads(small_networks=small_networks)
    print(versions())
    return gen


def profile() -> str:
    """``"quick"`` (CPU, offline, minutes) or ``"full"`` (GPU, downloads).

    Read from ``ADVLAB_PROFILE``; the default is ``"quick"`` everywhere, GPU or not: it is the
    profile CI verifies. ``full`` is an explicit choice.
    """
    value = os.environ.get("ADVLAB_PROFILE", "").strip().lower()
    if not value:
        return "quick"
    if value not in PROFILES:
        raise ValueError(f"ADVLAB_PROFILE must be one of {PROFILES}, got {value!r}")
    return value


def smoke_scale() -> bool:
    """True when the full profile runs at smoke scale (``ADVLAB_SMOKE=1``): its code paths on
    fixture data with tiny step counts, as ``make full-smoke`` does."""
    value = os.environ.get("ADVLAB_SMOKE", "").strip().lower()
    if value not in ("", "0", "1", "true", "false", "yes", "no"):
        raise ValueError(f"ADVLAB_SMOKE must be 0 or 1, got {value!r}")
    return value in ("1", "true", "yes") and profile() == "full"


_UNSET = object()


def pick(*, quick, full, smoke=_UNSET):
    """Return ``quick`` or ``full`` according to :func:`profile`.

    At smoke scale (see :func:`smoke_scale`) the full profile returns ``smoke`` where one is given, so a
    notebook can keep full-profile code paths with tiny sizes.
    """
    if profile() == "quick":
        return quick
    if smoke is not _UNSET and smoke_scale():
        return smoke
    return full


def expect(condition, message: str) -> bool:
    """A self-check on a result that needs real training: ``assert`` it, except at smoke scale,
    where tiny runs cannot meet it and the check is printed as not verified instead."""
    if not isinstance(message, str) or not message:
        raise TypeError("message must be a non-empty string saying what is checked")
    ok = bool(condition)
    if smoke_scale():
        print(f"[smoke scale: not verified] {message} -> {'holds' if ok else 'does not hold'}")
        return ok
    assert ok, message
    return ok


def headline(name: str, value: float) -> float:
    """Record a notebook's headline number and return it.

    When ``ADVLAB_HEADLINES`` names a file (as ``make robustness`` sets it), the number is appended
    to it as a JSON line, so the spread over seeds can be tabulated.
    """
    if not isinstance(name, str) or not name:
        raise TypeError("name must be a non-empty string")
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "item"):
        raise TypeError(f"value must be a number, got {type(value).__name__}")
    value = float(value)
    path = os.environ.get("ADVLAB_HEADLINES", "").strip()
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"name": name, "value": value}) + "\n")
    return value


def _repo_root() -> Path | None:
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "lib" / "advlab").is_dir():
        return root
    return None


def data_dir() -> Path:
    """Folder for downloads and the model cache.

    ``ADVLAB_DATA`` if set; else the course checkout's ``data/``; else (a pip install, e.g. on
    Colab) the user cache folder ``$XDG_CACHE_HOME/advlab`` (default ``~/.cache/advlab``).
    """
    env = os.environ.get("ADVLAB_DATA", "").strip()
    if env:
        path = Path(env).expanduser()
    elif (root := _repo_root()) is not None:
        path = root / "data"
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        path = Path(cache) / "advlab"
    path.mkdir(parents=True, exist_ok=True)
    return path

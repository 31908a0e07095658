"""Where the course runs: device, seeds, the quick / full profile and the data folder.

Every notebook starts with ``advlab.seed_everything(0)`` and prints ``advlab.device()`` and
``advlab.profile()``; sizes are chosen with ``advlab.pick(quick=..., full=...)``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

PROFILES = ("quick", "full")
DEVICES = ("cpu", "cuda", "mps")


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


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a CPU generator seeded the same."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def profile() -> str:
    """``"quick"`` (CPU, offline, minutes) or ``"full"`` (GPU, downloads).

    Read from ``ADVLAB_PROFILE``; the default is ``"full"`` when CUDA is available, else ``"quick"``.
    """
    value = os.environ.get("ADVLAB_PROFILE", "").strip().lower()
    if not value:
        return "full" if torch.cuda.is_available() else "quick"
    if value not in PROFILES:
        raise ValueError(f"ADVLAB_PROFILE must be one of {PROFILES}, got {value!r}")
    return value


def pick(*, quick, full):
    """Return ``quick`` or ``full`` according to :func:`profile`."""
    return quick if profile() == "quick" else full


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

"""Checkpoints that survive crashes and never run code on load, plus a model cache.

* :func:`save` writes to a temporary file in the same folder, flushes it to disk and renames it
  over the target with ``os.replace`` (atomic on POSIX and Windows), so a crash mid-save leaves
  the previous file intact.
* :func:`load` uses ``torch.load(weights_only=True)``: tensors, dicts, lists, numbers and strings
  only. A file that would need to import or run code is refused with :class:`UnsafeCheckpointError`.
* :func:`cached` returns a model for a config, training it only when no checkpoint exists for the
  hash of that config, so a changed config retrains instead of loading stale weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .runtime import data_dir


class UnsafeCheckpointError(ValueError):
    """The file holds objects that only unrestricted unpickling (running code) could load."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save(obj, path) -> Path:
    """Atomically write ``obj`` with ``torch.save``; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def load(path, map_location="cpu"):
    """Load a checkpoint written by :func:`save` with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it contains objects that need code to be run "
            f"(weights_only=True rejected it: {str(exc).splitlines()[0]})"
        ) from exc


def config_hash(config: dict) -> str:
    """A short, stable hash of a JSON-serialisable config (key order does not matter)."""
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_path(name: str, config: dict, cache_dir=None) -> Path:
    folder = Path(cache_dir) if cache_dir is not None else data_dir() / "cache"
    return folder / f"{name}-{config_hash(config)}.pt"


def cached(name: str, config: dict, build: Callable[[], torch.nn.Module],
           train: Callable[[torch.nn.Module], dict | None], *, cache_dir=None):
    """Return ``(model, info)`` for ``config``: loaded if cached, else built, trained and stored.

    ``build()`` makes an untrained model; ``train(model)`` trains it in place and may return a
    dict of JSON-friendly facts (accuracy, seconds) stored beside the weights. ``info`` holds
    those facts plus ``hit`` (loaded from the cache), ``path`` and ``config``.
    """
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"name must be a non-empty file-name-safe string, got {name!r}")
    path = cache_path(name, config, cache_dir)
    model = build()
    if path.is_file():
        record = load(path)
        model.load_state_dict(record["state_dict"])
        model.eval()
        return model, {**record["info"], "hit": True, "path": path, "config": config}
    start = time.perf_counter()
    facts = train(model) or {}
    facts = {**facts, "train_seconds": round(time.perf_counter() - start, 2)}
    model.eval()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save({"config": config, "info": facts, "state_dict": state}, path)
    return model, {**facts, "hit": False, "path": path, "config": config}

"""Checkpoints that survive crashes and never run code on load, plus a model cache.

* :func:`save` writes to a temporary file in the same folder, flushes it to disk and renames it
  over the target with ``os.replace`` (atomic on POSIX and Windows), so a crash mid-save leaves
  the previous file intact. :func:`save_json` writes JSON records (the shipped studies) the same way.
* :func:`load` uses ``torch.load(weights_only=True)``: tensors, dicts, lists, numbers and strings
  only. A file that would need to import or run code is refused with :class:`UnsafeCheckpointError`.
* :func:`cached_record` is the course's one cache: a record (a dict of tensors and facts) for a
  config, computed only when no file exists for the key. The key hashes the config **and** the
  source code of the modules that compute it (:func:`code_version`), so a changed config or an
  edited library recomputes instead of loading stale results. :func:`cached` is the same for a
  model (models, toy GAN runs and patches all go through it).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
import pickle
import tempfile
import time
from collections.abc import Callable, Sequence
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
    return _atomic_write(path, lambda fh: torch.save(obj, fh))


def save_json(obj, path) -> Path:
    """Atomically write ``obj`` as indented UTF-8 JSON (one trailing newline); return the path."""
    text = json.dumps(obj, indent=1, ensure_ascii=False) + "\n"
    return _atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def _atomic_write(path, write) -> Path:
    """``write(binary file)`` into a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
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


@functools.cache
def _source_hash(module_name: str) -> str:
    module = importlib.import_module(module_name)
    origin = Path(module.__file__)
    files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.relative_to(origin.parent).as_posix().encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()


def code_version(modules: Sequence[str] = ("advlab",)) -> str:
    """A short hash of the source of ``modules`` (dotted names; a package means all its files)."""
    if isinstance(modules, str) or not modules:
        raise TypeError("modules must be a non-empty sequence of module names, e.g. "
                        "('advlab.train', 'advlab.models')")
    text = "".join(_source_hash(m) for m in sorted(set(modules)))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_path(name: str, config: dict, cache_dir=None, *,
               code: Sequence[str] = ("advlab",)) -> Path:
    """Where :func:`cached_record` keeps ``name`` for ``config`` computed by the ``code`` modules."""
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"name must be a non-empty file-name-safe string, got {name!r}")
    key = config_hash({"config": config, "code": code_version(code)})
    folder = Path(cache_dir) if cache_dir is not None else data_dir() / "cache"
    return folder / f"{name}-{key}.pt"


def cached_record(name: str, config: dict, compute: Callable[[], dict], *,
                  code: Sequence[str] = ("advlab",), cache_dir=None, cache: bool = True) -> dict:
    """``compute()``'s record for ``config``, loaded from the cache when it holds one.

    ``compute()`` returns a dict of tensors, numbers, strings and lists (what
    :func:`load` accepts). The result has ``hit`` (True when loaded) and ``path`` added;
    ``cache=False`` computes and stores nothing.
    """
    path = cache_path(name, config, cache_dir, code=code)
    if cache and path.is_file():
        return {**load(path), "hit": True, "path": path}
    record = compute()
    if not isinstance(record, dict):
        raise TypeError(f"compute() must return a dict, got {type(record).__name__}")
    if cache:
        save(record, path)
    return {**record, "hit": False, "path": path}


def cached(name: str, config: dict, build: Callable[[], torch.nn.Module],
           train: Callable[[torch.nn.Module], dict | None], *,
           code: Sequence[str] = ("advlab",), cache_dir=None):
    """Return ``(model, info)`` for ``config``: loaded if cached, else built, trained and stored.

    ``build()`` makes an untrained model; ``train(model)`` trains it in place and may return a
    dict of JSON-friendly facts (accuracy, seconds) stored beside the weights. ``info`` holds
    those facts plus ``hit`` (loaded from the cache), ``path`` and ``config``. The key covers
    ``config`` and the source of the ``code`` modules (default: the whole package).
    """
    model = build()

    def compute():
        start = time.perf_counter()
        facts = train(model) or {}
        facts = {**facts, "train_seconds": round(time.perf_counter() - start, 2)}
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        return {"config": config, "info": facts, "state_dict": state}

    record = cached_record(name, config, compute, code=code, cache_dir=cache_dir)
    if record["hit"]:
        model.load_state_dict(record["state_dict"])
    model.eval()
    return model, {**record["info"], "hit": record["hit"], "path": record["path"],
                   "config": config}

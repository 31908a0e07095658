"""The course's longer-trained generators: rebuilt from their config, loaded safely.

``make pretrained`` (``tools/pretrain_gans.py``) trains each image GAN of the course with a fixed
config and seed and writes, per run NAME, into ``data/pretrained/``:

* ``NAME.pt``: ``{"name", "config", "G"}``: the config and the generator's weights, read with
  :func:`advlab.checkpoints.load` (``weights_only=True``: no code runs on load);
* ``NAME.json``: the same config plus the training log (metrics at each evaluation step).

:func:`load_generator` rebuilds G from the config in the checkpoint, loads the weights and checks
that the JSON beside it describes the same run.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import checkpoints
from ..models import MLPGenerator
from ..runtime import _repo_root, data_dir
from .nets import ACGANGenerator, DCGANGenerator

GENERATORS = {"MLPGenerator": MLPGenerator, "DCGANGenerator": DCGANGenerator,
              "ACGANGenerator": ACGANGenerator}


def pretrained_dir() -> Path:
    """``data/pretrained`` of the course checkout (else of :func:`advlab.data_dir`)."""
    root = _repo_root()
    return (root / "data" if root is not None else data_dir()) / "pretrained"


def build_generator(spec):
    """A fresh generator from ``[class name, keyword arguments]`` (lists become tuples)."""
    if not isinstance(spec, (list, tuple)) or len(spec) != 2 or spec[0] not in GENERATORS:
        raise ValueError(f"generator spec must be [name, kwargs] with name in "
                         f"{sorted(GENERATORS)}, got {spec!r}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in spec[1].items()}
    return GENERATORS[spec[0]](**kwargs)


def load_generator(name: str, folder=None):
    """``(G in eval mode, record)`` for pretrained run ``name``; ``record`` is its JSON file
    (config, log, final metrics). Raises when the files are missing or disagree."""
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"name must be a run name like 'dcgan', got {name!r}")
    folder = Path(folder) if folder is not None else pretrained_dir()
    path, meta = folder / f"{name}.pt", folder / f"{name}.json"
    if not path.is_file() or not meta.is_file():
        raise FileNotFoundError(f"no pretrained run {name!r} in {folder}: run `make pretrained` "
                                f"(tools/pretrain_gans.py) first")
    state = checkpoints.load(path)
    record = json.loads(meta.read_text())
    if state["config"] != record["config"]:
        raise ValueError(f"{path.name} and {meta.name} describe different runs: retrain with "
                         "`make pretrained`")
    G = build_generator(state["config"]["generator"])
    G.load_state_dict(state["G"])
    return G.eval(), record

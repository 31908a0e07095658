"""The course's longer-trained generators, shipped inside the package: registry, writer, reader.

``make pretrained`` (``tools/pretrain_gans.py``) trains each image GAN of the course with a fixed
config and seed and writes, per run NAME, into the package folder ``advlab/gan/weights/``
(package data, so a ``pip install`` of advlab, e.g. on Colab, carries them):

* ``NAME.pt``: ``{"name", "config", "G"}``: the config and the generator's weights, read with
  :func:`advlab.checkpoints.load` (``weights_only=True``: no code runs on load);
* ``NAME.json``: the same config plus the training log (metrics at each evaluation step);
* ``NAME_snapshots.pt`` (optional): the generator at several steps, in float16.

:func:`load_generator` rebuilds G from the config in the checkpoint, loads the weights and checks
that the JSON beside it describes the same run. The files are found with :mod:`importlib.resources`,
so they load wherever the package is installed.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from .. import checkpoints
from ..data import load_images
from ..models import MLPGenerator
from .nets import ACGANGenerator, DCGANGenerator

GENERATORS = {"MLPGenerator": MLPGenerator, "DCGANGenerator": DCGANGenerator,
              "ACGANGenerator": ACGANGenerator}
WEIGHTS = "weights"  # the package-data folder beside this module
TRAINING_COURSE_SEED = 0  # the course seed whose quick MNIST split the shipped runs trained on


def shipped():
    """The shipped-weights folder as an :mod:`importlib.resources` traversable."""
    return resources.files(__package__).joinpath(WEIGHTS)


def pretrained_dir() -> Path:
    """The shipped-weights folder (``advlab/gan/weights``) as a path on disk."""
    folder = shipped()
    if not isinstance(folder, Path):
        raise FileNotFoundError(
            f"advlab is imported from an archive ({folder}), so its generator files have no path "
            "on disk: use load_generator(), or install advlab as files with pip")
    return folder


def _check_name(name) -> str:
    if not isinstance(name, str) or not name or not name.replace("_", "").isalnum():
        raise ValueError(f"name must be a run name like 'dcgan' (letters, digits, '_'), got {name!r}")
    return name


def _folder(folder):
    if folder is None:
        return shipped()
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"folder must be a path or None, got {type(folder).__name__}")
    return Path(folder)


def build_generator(spec):
    """A fresh generator from ``[class name, keyword arguments]`` (lists become tuples)."""
    if not isinstance(spec, (list, tuple)) or len(spec) != 2 or spec[0] not in GENERATORS:
        raise ValueError(f"generator spec must be [name, kwargs] with name in "
                         f"{sorted(GENERATORS)}, got {spec!r}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in spec[1].items()}
    return GENERATORS[spec[0]](**kwargs)


def write_run(folder, name: str, config: dict, state: dict, record: dict,
              snapshots: dict | None = None) -> Path:
    """Write run ``name`` into ``folder``: ``NAME.pt`` (config + generator ``state``), ``NAME.json``
    (``record``, which must carry the same config) and, given ``{step: state}`` snapshots,
    ``NAME_snapshots.pt``. Every file is written to a temporary name and renamed."""
    _check_name(name)
    folder = _folder(folder if folder is not None else pretrained_dir())
    if not isinstance(config, dict) or record.get("config") != config:
        raise ValueError("record['config'] must be the run's config dict")
    folder.mkdir(parents=True, exist_ok=True)
    checkpoints.save({"name": name, "config": config, "G": state}, folder / f"{name}.pt")
    if snapshots:
        steps = sorted(snapshots)
        checkpoints.save({"name": name, "config": config, "steps": steps,
                          "G": [snapshots[s] for s in steps]}, folder / f"{name}_snapshots.pt")
    tmp = folder / f".{name}.json.tmp"
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(folder / f"{name}.json")
    return folder


def load_generator(name: str, folder=None):
    """``(G in eval mode, record)`` for pretrained run ``name``; ``record`` is its JSON file
    (config, log, final metrics). ``folder`` defaults to the weights shipped in the package.
    Raises when the files are missing or disagree."""
    _check_name(name)
    source = _folder(folder)
    weights, meta = source.joinpath(f"{name}.pt"), source.joinpath(f"{name}.json")
    if not weights.is_file() or not meta.is_file():
        raise FileNotFoundError(f"no pretrained run {name!r} in {source}: run `make pretrained` "
                                f"(tools/pretrain_gans.py) first")
    with resources.as_file(weights) as path:
        state = checkpoints.load(path)
    record = json.loads(meta.read_text(encoding="utf-8"))
    if state["config"] != record["config"]:
        raise ValueError(f"{name}.pt and {name}.json describe different runs: retrain with "
                         "`make pretrained`")
    G = build_generator(state["config"]["generator"])
    G.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state["G"].items()})
    return G.eval(), record


def shipped_split(split: str = "test"):
    """The quick-profile MNIST split the shipped generators were trained under (course seed 0).

    ``"train"``: the 4,000 digits they learned from; ``"test"``: the 1,000 they never saw, the
    reference set for judging them. Under another course seed the course's own split moves, so
    its test half then holds about 800 of these generators' training digits, which lowers the
    FID of a generator that copies its training set more than that of one that does not.
    """
    return load_images("mnist", split, profile="quick", course_seed=TRAINING_COURSE_SEED)

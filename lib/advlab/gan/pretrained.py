"""The course's longer-trained generators, shipped inside the package: registry, writer, reader.

:data:`RUNS` is the registry: each run's networks, trainer settings, tricks and steps, as plain
data (``[class name, keyword arguments]`` pairs) that :func:`build_generator`,
:func:`build_discriminator` and :func:`trainer_settings` turn into objects.

``make pretrained`` (``tools/pretrain_gans.py``) trains each image GAN of the course with a fixed
config and seed and writes, per run NAME, into the package folder ``advlab/gan/weights/``
(package data, so a ``pip install`` of advlab, e.g. on Colab, carries them):

* ``NAME.pt``: ``{"name", "config", "G"}``: the config and the generator's weights, read with
  :func:`advlab.checkpoints.load` (``weights_only=True``: no code runs on load);
* ``NAME.json``: the same config plus the training log (metrics at each evaluation step);
* ``NAME_snapshots.pt`` (optional): the generator at several steps, in float16.

:data:`STUDIES` are small controlled experiments over the same runs: variants of a run (another
initialisation, pooling, another class loss, no class information), each trained under several
seeds for a fixed number of steps. ``make pretrained`` writes each study's numbers (no weights)
to ``study_NAME.json``; :func:`load_study` reads it.

:func:`load_generator` rebuilds G from the config in the checkpoint, loads the weights and checks
that the JSON beside it describes the same run; :func:`load_snapshots` reads the snapshots. The files are found with :mod:`importlib.resources`,
so they load wherever the package is installed.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from .. import checkpoints
from ..data import load_images
from ..models import MLPDiscriminator, MLPGenerator
from .acgan import ACGANClassLoss
from .nets import ACGANDiscriminator, ACGANGenerator, Critic, DCGANDiscriminator, DCGANGenerator
from .wgan import GradientPenalty, WeightClipping

GENERATORS = {"MLPGenerator": MLPGenerator, "DCGANGenerator": DCGANGenerator,
              "ACGANGenerator": ACGANGenerator}
DISCRIMINATORS = {"MLPDiscriminator": MLPDiscriminator, "DCGANDiscriminator": DCGANDiscriminator,
                  "ACGANDiscriminator": ACGANDiscriminator, "Critic": Critic}
TRICKS = {"ACGANClassLoss": ACGANClassLoss, "WeightClipping": WeightClipping,
          "GradientPenalty": GradientPenalty}
# A run's "loss" names a registered GAN loss, or a recipe of a loss and tricks (the shipped
# wgan_gp run records "wgan-gp": the Wasserstein loss with the gradient penalty, lambda = 10).
RECIPES = {"wgan-gp": ("wasserstein", [["GradientPenalty", {"weight": 10.0}]])}
MNIST = [1, 28, 28]

RUNS = {
    # The MNIST MLP GAN of notebook 08 (same nets and settings), trained twice as long, as the
    # baseline for the convolutional ones.
    "mlp_gan": {
        "generator": ["MLPGenerator", {"z_dim": 64, "out_shape": MNIST, "hidden": [128, 256],
                                       "tanh": True}],
        "discriminator": ["MLPDiscriminator", {"in_shape": MNIST, "hidden": [256, 128],
                                               "negative_slope": 0.2}],
        "trainer": {"loss": "non-saturating", "lr_g": 1e-3, "lr_d": 1e-3, "betas": [0.5, 0.999],
                    "batch_size": 64},
        "steps": 4000},
    # DCGAN (Radford et al. 2016): their optimiser settings, narrower nets for a CPU.
    "dcgan": {
        "generator": ["DCGANGenerator", {"z_dim": 64, "image_shape": MNIST, "width": 32}],
        "discriminator": ["DCGANDiscriminator", {"image_shape": MNIST, "width": 32}],
        "trainer": {"loss": "non-saturating", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999],
                    "batch_size": 64},
        "steps": 4000, "snapshots": 6},
    # Every DCGAN-family network starts from DCGAN's N(0, 0.02) initialisation (advlab.gan.nets).
    # AC-GAN: z times a label embedding; D's class head learns from real images only.
    "acgan": {
        "generator": ["ACGANGenerator", {"z_dim": 64, "image_shape": MNIST, "width": 32,
                                         "classes": 10}],
        "discriminator": ["ACGANDiscriminator", {"image_shape": MNIST, "width": 32,
                                                 "classes": 10}],
        "trainer": {"loss": "non-saturating", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999],
                    "batch_size": 64},
        "tricks": [["ACGANClassLoss", {"classes": 10, "d_on_fake": False}]],
        "steps": 6000},
    # WGAN-GP: exactly the paper's settings (Adam 1e-4, betas (0, 0.9), lambda = 10, 5 critic
    # steps, batch 64) and a critic without batch norm; as many generator steps as wgan_clip.
    "wgan_gp": {
        "generator": ["DCGANGenerator", {"z_dim": 64, "image_shape": MNIST, "width": 32}],
        "discriminator": ["Critic", {"image_shape": MNIST, "width": 32, "norm": "none"}],
        "trainer": {"loss": "wgan-gp", "lr_g": 1e-4, "lr_d": 1e-4, "betas": [0.0, 0.9],
                    "batch_size": 64, "n_critic": 5},
        "steps": 1500},
    # WGAN with weight clipping: exactly the paper's settings (RMSprop 5e-5, clip 0.01, 5 critic
    # steps, batch 64) and its batch-normed DCGAN critic.
    "wgan_clip": {
        "generator": ["DCGANGenerator", {"z_dim": 64, "image_shape": MNIST, "width": 32}],
        "discriminator": ["Critic", {"image_shape": MNIST, "width": 32, "norm": "batch"}],
        "trainer": {"loss": "wasserstein", "optimizer": "rmsprop", "lr_g": 5e-5, "lr_d": 5e-5,
                    "batch_size": 64, "n_critic": 5},
        "tricks": [["WeightClipping", {"clip": 0.01}]],
        "steps": 1500},
}

# Controlled experiments: each variant is a run of RUNS ("base") with its networks' keyword
# arguments updated and, where given, its tricks replaced; every variant trains under each seed
# (never seed 0, the shipped runs' seed) for "steps" generator steps.
STUDIES = {
    # Two DCGAN rules measured: the paper's initialisation, and strided convolutions in D.
    "dcgan_rules": {
        "steps": 1000, "seeds": [1, 2, 3],
        "variants": {
            "DCGAN (N(0, 0.02) init, strided D)": {"base": "dcgan"},
            "PyTorch's default init": {"base": "dcgan", "generator": {"init": "default"},
                                       "discriminator": {"init": "default"}},
            "max pooling in D": {"base": "dcgan", "discriminator": {"downsample": "pool"}},
        }},
    # AC-GAN's class loss on D's fakes (Odena et al.) or on real images only (the course's
    # default), and an unconditional DCGAN with the same body, settings and steps.
    "acgan_classes": {
        "steps": 1500, "seeds": [1, 2, 3],
        "variants": {
            "AC-GAN, D's class loss on real only": {"base": "acgan"},
            "AC-GAN, D's class loss on fakes too": {
                "base": "acgan", "tricks": [["ACGANClassLoss", {"classes": 10, "d_on_fake": True}]]},
            "unconditional DCGAN": {"base": "dcgan"},
        }},
}
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


def _build(spec, table: dict, what: str):
    if not isinstance(spec, (list, tuple)) or len(spec) != 2 or spec[0] not in table:
        raise ValueError(f"{what} spec must be [name, kwargs] with name in {sorted(table)}, "
                         f"got {spec!r}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in spec[1].items()}
    return table[spec[0]](**kwargs)


def build_generator(spec):
    """A fresh generator from ``[class name, keyword arguments]`` (lists become tuples)."""
    return _build(spec, GENERATORS, "generator")


def build_discriminator(spec):
    """A fresh discriminator or critic from ``[class name, keyword arguments]``."""
    return _build(spec, DISCRIMINATORS, "discriminator")


def trainer_settings(config: dict) -> tuple[dict, list]:
    """:class:`~advlab.gan.GANTrainer` keyword arguments and trick objects of a run's config
    (an entry of :data:`RUNS`), with a recipe name such as ``"wgan-gp"`` resolved."""
    settings = {k: tuple(v) if isinstance(v, list) else v for k, v in config["trainer"].items()}
    settings["loss"], recipe = RECIPES.get(settings["loss"], (settings["loss"], []))
    tricks = [_build(t, TRICKS, "trick") for t in [*config.get("tricks", []), *recipe]]
    return settings, tricks


def study_config(study: str, variant: str) -> dict:
    """The run config (an entry of :data:`RUNS`, steps included) of ``variant`` of ``study``."""
    if study not in STUDIES:
        raise ValueError(f"study must be one of {sorted(STUDIES)}, got {study!r}")
    variants = STUDIES[study]["variants"]
    if variant not in variants:
        raise ValueError(f"variant must be one of {list(variants)}, got {variant!r}")
    change = variants[variant]
    config = json.loads(json.dumps(RUNS[change["base"]]))  # a deep copy of plain data
    for net in ("generator", "discriminator"):
        config[net][1].update(change.get(net, {}))
    if "tricks" in change:
        config["tricks"] = json.loads(json.dumps(change["tricks"]))
    config.pop("snapshots", None)
    config["steps"] = STUDIES[study]["steps"]
    return config


def write_study(folder, study: str, record: dict) -> Path:
    """Write ``record`` (``{"study", "variants": {variant: {"config", "seeds": [...]}}, ...}``)
    to ``study_NAME.json`` in ``folder``, through a temporary file."""
    if study not in STUDIES or record.get("study") != study:
        raise ValueError(f"record must be for study {study!r}, one of {sorted(STUDIES)}")
    folder = _folder(folder if folder is not None else pretrained_dir())
    folder.mkdir(parents=True, exist_ok=True)
    checkpoints.save_json(record, folder / f"study_{study}.json")
    return folder


def load_study(study: str, folder=None) -> dict:
    """The numbers of study ``study`` (see :data:`STUDIES`) as ``make pretrained`` wrote them;
    raises when the file is missing or its variants no longer match the registry."""
    if study not in STUDIES:
        raise ValueError(f"study must be one of {sorted(STUDIES)}, got {study!r}")
    path = _folder(folder).joinpath(f"study_{study}.json")
    if not path.is_file():
        raise FileNotFoundError(f"no study {study!r} in {_folder(folder)}: run `make pretrained` "
                                "(tools/pretrain_gans.py --study) first")
    record = json.loads(path.read_text(encoding="utf-8"))
    for variant, entry in record["variants"].items():
        if variant not in STUDIES[study]["variants"] or entry["config"] != study_config(study, variant):
            raise ValueError(f"study_{study}.json's variant {variant!r} no longer matches "
                             "STUDIES: rerun it with tools/pretrain_gans.py --study")
    return record


def _generator(spec, state: dict):
    """A generator built from ``spec`` with the weights ``state`` (float16 read as float32)."""
    G = build_generator(spec)
    G.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return G.eval()


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
    checkpoints.save_json(record, folder / f"{name}.json")
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
    return _generator(state["config"]["generator"], state["G"]), record


def load_snapshots(name: str, folder=None) -> list:
    """``[(step, G in eval mode), ...]`` in step order: run ``name``'s generator at each step
    saved in ``NAME_snapshots.pt`` (float16 on disk, float32 here), e.g. to choose a checkpoint
    on held-out data. Raises when the run has no snapshots file."""
    _check_name(name)
    source = _folder(folder)
    path = source.joinpath(f"{name}_snapshots.pt")
    if not path.is_file():
        raise FileNotFoundError(f"pretrained run {name!r} has no snapshots in {source}: "
                                "`make pretrained` writes them for the runs that keep them")
    with resources.as_file(path) as local:
        snap = checkpoints.load(local)
    spec = snap["config"]["generator"]
    return [(int(step), _generator(spec, state))
            for step, state in zip(snap["steps"], snap["G"], strict=True)]


def shipped_split(split: str = "test"):
    """The quick-profile MNIST split the shipped generators were trained under (course seed 0).

    ``"train"``: the 4,000 digits they learned from; ``"test"``: the 1,000 they never saw, the
    reference set for judging them. Under another course seed the course's own split moves, so
    its test half then holds about 800 of these generators' training digits, which lowers the
    FID of a generator that copies its training set more than that of one that does not.
    """
    return load_images("mnist", split, profile="quick", course_seed=TRAINING_COURSE_SEED)

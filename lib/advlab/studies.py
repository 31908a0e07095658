"""Controlled studies of Part I, over several training seeds, shipped with the package.

:data:`AUGMENTATION` is notebook 07's question "would extensive data augmentation help?" asked
properly: eight training recipes for the course CNN at one budget (no augmentation, random
shifts, Gaussian noise at three standard deviations, cutout, all three augmentations combined,
FGSM adversarial training), each trained under three seeds and each measured the same way: clean
accuracy, FGSM accuracy, PGD-20 accuracy at six radii, and the success of a universal patch
(notebook 04's attack) trained white-box against that very model.

:func:`train_recipe` trains one recipe (notebook 07 trains its live models with it),
:func:`evaluate_recipe` measures one model, :func:`run_augmentation` runs the whole study
(``tools/augmentation_study.py`` for the shipped file, or a notebook with its live switch on), and
:func:`write_augmentation` / :func:`load_augmentation` store and read it. The reader refuses a
file whose recipes, budget, evaluation or seeds no longer match :data:`AUGMENTATION`.
"""

from __future__ import annotations

import json
import time
from functools import partial
from importlib import resources
from pathlib import Path

import torch

from . import attacks, checkpoints, defenses
from .checks import check_int, eval_mode
from .models import make_classifier
from .train import evaluate, fit, predict

AUGMENTATION_FILE = "study_augmentation.json"
TRAIN_EPS = 0.25  # the adversarial recipes' training radius (tested at 0.2: a little slack)

AUGMENTATION = {
    # 07's budget for every recipe: the same updates on the same 4,000 digits (the split of
    # course seed 0); only what each training step sees changes
    "budget": {"arch": "cnn", "epochs": 8, "lr": 1e-2, "batch_size": 64},
    "seeds": [0, 1, 2],  # training seeds; seed 0 is the one notebook 07 trains under course seed 0
    "recipes": {
        "no augmentation": {},
        "random shifts": {"max_shift": 2},
        "Gaussian noise σ = 0.1": {"noise_std": 0.1},
        "Gaussian noise σ = 0.3": {"noise_std": 0.3},
        "Gaussian noise σ = 0.5": {"noise_std": 0.5},
        "cutout 16x16": {"cutout": 16},
        "shifts + cutout + noise σ = 0.3": {"max_shift": 2, "cutout": 16, "noise_std": 0.3},
        "FGSM adv. training": {"attack": "fgsm", "eps": TRAIN_EPS, "steps": 1,
                               "alpha": 1.25 * TRAIN_EPS},
    },
    "evaluation": {
        "test_digits": 500,  # the first quick-profile test digits, as in notebook 07
        "fgsm_eps": 0.2,
        "pgd_eps": [0.05, 0.1, 0.15, 0.2, 0.25, 0.3],
        "pgd_steps": 20,
        # notebook 04's universal patch, trained against the model it is measured on
        "patch": {"size": 16, "target": 8, "steps": 60, "batch_size": 64, "lr": 0.3,
                  "placements": 4},
    },
}


def _check_recipe(recipe) -> dict:
    known = {"max_shift", "noise_std", "cutout", "attack", "eps", "steps", "alpha"}
    if not isinstance(recipe, dict) or not set(recipe) <= known:
        raise ValueError(f"recipe must be a dict with keys from {sorted(known)}, got {recipe!r}")
    if "attack" in recipe and (recipe["attack"] not in ("fgsm", "pgd") or "eps" not in recipe
                               or set(recipe) & {"max_shift", "noise_std", "cutout"}):
        raise ValueError(f"an adversarial recipe needs attack 'fgsm' or 'pgd' and eps, and no "
                         f"augmentation beside it; got {recipe!r}")
    return recipe


def recipe_transform(recipe: dict, generator: torch.Generator):
    """The ``batch_transform`` of an augmentation recipe (``None`` for no augmentation): a random
    shift, then cutout, then Gaussian noise, whichever the recipe names, all from ``generator``."""
    _check_recipe(recipe)
    if "attack" in recipe:
        raise ValueError("an adversarial recipe trains through train_recipe, not a transform")
    steps = []
    if "max_shift" in recipe:
        steps.append(partial(defenses.random_shift, max_shift=recipe["max_shift"], generator=generator))
    if "cutout" in recipe:
        steps.append(partial(defenses.cutout, size=recipe["cutout"], generator=generator))
    if "noise_std" in recipe:
        steps.append(partial(defenses.gaussian_noise, std=recipe["noise_std"], generator=generator))
    if not steps:
        return None

    def augment(x):
        for step in steps:
            x = step(x)
        return x

    return defenses.augmentation(augment)


def train_recipe(model, train_set, recipe: dict, *, epochs: int, lr: float, batch_size: int,
                 seed: int, progress: bool = False) -> dict:
    """Train ``model`` in place with ``recipe`` (an entry of ``AUGMENTATION["recipes"]`` or one like
    it) and return ``{"fit_seconds"}``. ``seed`` seeds the batch order and, through one generator,
    every random shift, cutout, noise draw and random start, so a run repeats exactly."""
    _check_recipe(recipe)
    seed = check_int(seed, "seed", low=0)
    gen = torch.Generator().manual_seed(seed)
    fit_kwargs = {"lr": lr, "batch_size": batch_size, "seed": seed, "progress": progress}
    if "attack" in recipe:
        steps = recipe.get("steps", 1 if recipe["attack"] == "fgsm" else 7)
        attack = partial(attacks.pgd, steps=steps, alpha=recipe.get("alpha"), random_start=True,
                         generator=gen)
        history = defenses.adversarial_training(model, train_set, attack=attack,
                                                eps=recipe["eps"], epochs=epochs, **fit_kwargs)
    else:
        history = fit(model, train_set, epochs, batch_transform=recipe_transform(recipe, gen),
                      **fit_kwargs)
    return {"fit_seconds": round(history["seconds"], 1)}


def evaluate_recipe(model, test_images, test_labels, patch_images, *,
                    evaluation: dict | None = None, seed: int = 0) -> dict:
    """Measure one trained model as :data:`AUGMENTATION` prescribes: accuracy clean, after FGSM and
    after PGD at every radius on the first ``test_digits``, and the targeted success of a
    universal patch trained on ``patch_images`` against this model, over all test digits not of
    the target class. ``seed`` seeds the random starts, the patch's training and its places."""
    spec = evaluation or AUGMENTATION["evaluation"]
    n = spec["test_digits"]
    x, y = test_images[:n], test_labels[:n]
    gen = torch.Generator().manual_seed(seed)
    with eval_mode(model):
        pgd = []
        for eps in spec["pgd_eps"]:
            adv = attacks.pgd(model, x, y, eps, steps=spec["pgd_steps"],
                              generator=torch.Generator().manual_seed(seed))
            pgd.append(round((predict(model, adv).argmax(1) == y).float().mean().item(), 4))
        p = spec["patch"]
        patch = attacks.train_patch(model, patch_images, p["target"], size=p["size"],
                                    steps=p["steps"], batch_size=p["batch_size"], lr=p["lr"],
                                    generator=gen)
        patch_rate = attacks.patch_success(model, patch, test_images, test_labels, p["target"],
                                           placements=p["placements"],
                                           generator=torch.Generator().manual_seed(seed + 1))
        return {"clean": round(evaluate(model, (x, y)), 4),
                "fgsm": round(evaluate(model, (attacks.fgsm(model, x, y, spec["fgsm_eps"]), y)), 4),
                "pgd": pgd, "patch": round(patch_rate, 4)}


def run_augmentation(train_set, test_set, *, recipes=None, seeds=None, spec: dict | None = None,
                     log=print) -> dict:
    """Train and measure every recipe under every seed; return the record that
    :func:`write_augmentation` stores (``{"spec", "runs": {recipe: [run per seed]}}``)."""
    spec = json.loads(json.dumps(spec or AUGMENTATION))
    names = list(spec["recipes"]) if recipes is None else list(recipes)
    unknown = [name for name in names if name not in spec["recipes"]]
    if unknown:
        raise ValueError(f"recipes must come from {list(spec['recipes'])}, got {unknown}")
    seeds = spec["seeds"] if seeds is None else [check_int(s, "seeds", low=0) for s in seeds]
    spec["seeds"] = list(seeds)
    spec["recipes"] = {name: spec["recipes"][name] for name in names}
    budget = spec["budget"]
    runs = {}
    for name in names:
        runs[name] = []
        for seed in seeds:
            torch.manual_seed(seed)
            model = make_classifier(budget["arch"])
            start = time.perf_counter()
            facts = train_recipe(model, train_set, spec["recipes"][name], epochs=budget["epochs"],
                                 lr=budget["lr"], batch_size=budget["batch_size"], seed=seed)
            model.eval()
            numbers = evaluate_recipe(model, test_set.images, test_set.labels, train_set.images,
                                      evaluation=spec["evaluation"], seed=seed)
            runs[name].append({"seed": seed, **numbers, **facts,
                               "seconds": round(time.perf_counter() - start, 1)})
            if log:
                log(f"{name:34s} seed {seed}: clean {numbers['clean']:.3f}, PGD at "
                    f"{spec['evaluation']['pgd_eps'][3]} {numbers['pgd'][3]:.3f}, patch "
                    f"{numbers['patch']:.3f} ({runs[name][-1]['seconds']:.0f} s)")
    return {"spec": spec, "runs": runs}


def shipped_path() -> Path:
    """Where the shipped study file lives (package data beside this module)."""
    return Path(str(resources.files(__package__).joinpath("shipped", AUGMENTATION_FILE)))


def write_augmentation(record: dict, path=None) -> Path:
    """Write ``record`` (from :func:`run_augmentation`) as JSON, atomically
    (:func:`advlab.checkpoints.save_json`)."""
    if not isinstance(record, dict) or set(record) != {"spec", "runs"}:
        raise ValueError("record must be run_augmentation's {'spec', 'runs'} dict")
    if set(record["runs"]) != set(record["spec"]["recipes"]):
        raise ValueError("record's runs must cover exactly its spec's recipes")
    return checkpoints.save_json(record, path if path is not None else shipped_path())


def load_augmentation(path=None) -> dict:
    """The shipped study (or the file at ``path``); raises ``ValueError`` when its spec no longer
    matches :data:`AUGMENTATION` (a changed recipe, budget, evaluation or seed list) or a recipe
    lacks a run for some seed."""
    path = Path(path) if path is not None else shipped_path()
    if not path.is_file():
        raise FileNotFoundError(f"no augmentation study at {path}: run tools/augmentation_study.py")
    record = json.loads(path.read_text(encoding="utf-8"))
    spec = record.get("spec")
    if spec != json.loads(json.dumps(AUGMENTATION)):
        raise ValueError(f"{path.name} was made for another spec than studies.AUGMENTATION: "
                         "rerun tools/augmentation_study.py")
    for name in spec["recipes"]:
        if [run["seed"] for run in record["runs"].get(name, [])] != spec["seeds"]:
            raise ValueError(f"{path.name}: recipe {name!r} lacks a run for some seed")
    return record

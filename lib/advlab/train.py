"""Train and evaluate classifiers; the course's shared, cached models.

:func:`fit` is a plain minibatch loop (Adam + one-cycle schedule by default) over tensors held in
memory; ``batch_transform`` is the hook that augmentation and adversarial training plug into.
:func:`course_model` returns the models that several notebooks attack, trained once and cached.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import checkpoints
from .checks import batched, check_int, module_device
from .data import ImageSet, batches, load_images, num_batches
from .models import make_classifier
from .runtime import derive_seed
from .runtime import device as default_device
from .runtime import profile as current_profile

SCHEDULES = ("onecycle", "constant")


def _as_tensors(data):
    if isinstance(data, ImageSet):
        return data.images, data.labels
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    raise TypeError("data must be an ImageSet or an (images, labels) pair, "
                    f"got {type(data).__name__}")


def fit(model: torch.nn.Module, data, epochs: int, *, batch_size: int = 64, lr: float = 3e-3,
        weight_decay: float = 0.0, schedule: str = "onecycle",
        loss_fn: Callable | None = None, batch_transform: Callable | None = None,
        seed: int = 0, device=None, progress: bool = True) -> dict:
    """Train ``model`` in place on ``data`` for ``epochs`` passes; return the loss history.

    ``loss_fn(logits, targets)`` defaults to cross-entropy (targets may be class indices or
    probability rows). ``batch_transform(x, y, model)`` returns the ``(x, y)`` actually trained
    on, e.g. augmented or adversarial images.
    """
    check_int(epochs, "epochs")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    images, labels = _as_tensors(data)
    dev = torch.device(device) if device is not None else default_device()
    model.to(dev)
    images, labels = images.to(dev), labels.to(dev)
    loss_fn = loss_fn or F.cross_entropy
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * num_batches(len(images), batch_size)
    sched = (torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
             if schedule == "onecycle" else None)
    gen = torch.Generator().manual_seed(seed)
    history = {"loss": []}
    start = time.perf_counter()
    bar = tqdm(range(epochs), desc="epochs", disable=not progress, leave=False)
    for _ in bar:
        model.train()
        total, count = 0.0, 0
        for xb, yb in batches(images, labels, batch_size, generator=gen):
            if batch_transform is not None:
                xb, yb = batch_transform(xb, yb, model)
                model.train()
            loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            total += loss.item() * len(xb)
            count += len(xb)
        history["loss"].append(total / count)
        bar.set_postfix(loss=f"{history['loss'][-1]:.4f}")
    model.eval()
    history["seconds"] = time.perf_counter() - start
    return history


def predict(model: torch.nn.Module, images: torch.Tensor, *, batch_size: int = 1000) -> torch.Tensor:
    """Logits for ``images`` in eval mode, on the model's device; the model's mode is restored."""
    return batched(model, images, batch_size=batch_size, models=[model],
                   device=module_device(model))


def evaluate(model: torch.nn.Module, data, *, batch_size: int = 1000) -> float:
    """Top-1 accuracy in [0, 1]."""
    images, labels = _as_tensors(data)
    pred = predict(model, images, batch_size=batch_size).argmax(1).cpu()
    return (pred == labels.cpu()).float().mean().item()


# the modules a course model's weights depend on: editing one retrains the models
COURSE_MODEL_CODE = ("advlab.train", "advlab.models", "advlab.data", "advlab.checks")

COURSE_MODELS = {
    # The model every attack in Part I targets (white-box in 02, black-box in 03).
    "target": {"arch": "cnn", "kwargs": {}, "epochs": 8, "lr": 3e-3, "batch_size": 64},
    # Surrogates of other architectures for the transfer attacks of 03.
    "mlp": {"arch": "mlp", "kwargs": {"hidden": [256, 256]}, "epochs": 10, "lr": 2e-3,
            "batch_size": 64},
    "cnn_b": {"arch": "cnn", "kwargs": {"channels": [32, 64], "kernel": 3, "hidden": 128},
              "epochs": 6, "lr": 2e-3, "batch_size": 64},
    # The target architecture with dropout (p = 0.5) before the head, for MC dropout in 07.
    "dropout": {"arch": "cnn", "kwargs": {"dropout": 0.5}, "epochs": 8, "lr": 3e-3,
                "batch_size": 64},
}


def course_model_config(name: str, *, profile: str | None = None) -> dict:
    if name not in COURSE_MODELS:
        raise ValueError(f"name must be one of {sorted(COURSE_MODELS)}, got {name!r}")
    prof = profile or current_profile()
    spec = dict(COURSE_MODELS[name])
    if prof == "full":
        spec["epochs"] = 2 * spec["epochs"]
    return {"name": name, "data": "mnist", "profile": prof, "seed": derive_seed(0), **spec}


def course_model(name: str, *, profile: str | None = None, progress: bool = False):
    """``(model, info)`` for a course model: trained on the MNIST train split and cached.

    ``info`` has the test accuracy, training seconds and whether it came from the cache.
    """
    config = course_model_config(name, profile=profile)
    prof = config["profile"]

    def build():
        torch.manual_seed(config["seed"])
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config["kwargs"].items()}
        return make_classifier(config["arch"], **kwargs)

    def train(model):
        history = fit(model, load_images("mnist", "train", profile=prof), config["epochs"],
                      lr=config["lr"], batch_size=config["batch_size"], seed=config["seed"],
                      progress=progress)
        acc = evaluate(model, load_images("mnist", "test", profile=prof))
        return {"test_accuracy": acc, "fit_seconds": round(history["seconds"], 2)}

    model, info = checkpoints.cached(name, config, build, train, code=COURSE_MODEL_CODE)
    return model.to(default_device()).eval(), info

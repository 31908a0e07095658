"""Argument and image checks shared by every module, and the one evaluation-mode helper.

Every check names the argument it rejects: a wrong **type** raises ``TypeError``, a wrong
**value** (range, shape, choice) raises ``ValueError``, before any work starts.

:func:`eval_mode` switches a model to evaluation mode and restores every submodule's own
``training`` flag afterwards, also when the body raises; :func:`batched` runs a function over a
tensor in chunks without building a graph, inside :func:`eval_mode` of the given models.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from contextlib import ExitStack, contextmanager

import torch


def check_int(value, name: str, *, low: int | None = 1, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` (either end may be None); bools are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be an int{_bounds(low, high)}, got {value!r}")
    return int(value)


def check_number(value, name: str, *, low: float | None = None, high: float | None = None,
                 strict: bool = False) -> float:
    """``value`` as a finite float in ``[low, high]``; ``strict=True`` excludes ``low`` itself."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    bad_low = low is not None and (value <= low if strict else value < low)
    bad_high = high is not None and value > high
    if not math.isfinite(value) or bad_low or bad_high:
        raise ValueError(f"{name} must be a finite number{_bounds(low, high, strict)}, "
                         f"got {value!r}")
    return value


def check_choice(value, name: str, choices: Iterable):
    """``value`` if it is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_tensor(value, name: str, *, dim: int | None = None, floating: bool = False):
    """``value`` if it is a tensor (of ``dim`` dimensions, floating point if asked)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {value.dtype}")
    if dim is not None and value.dim() != dim:
        raise ValueError(f"{name} must be {dim}-D, got shape {tuple(value.shape)}")
    return value


def check_images(images, name: str = "images", *, unit_range: bool = True) -> torch.Tensor:
    """A float image batch ``(N, C, H, W)``, in ``[0, 1]`` unless ``unit_range=False``."""
    check_tensor(images, name, floating=True)
    if images.dim() != 4:
        raise ValueError(f"{name} must be 4-D (N, C, H, W), got shape {tuple(images.shape)}")
    if unit_range and images.numel():
        lo, hi = torch.aminmax(images.detach())
        if not (lo >= 0 and hi <= 1):  # also catches NaN
            raise ValueError(f"{name} must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}]"
                             " (convert generator output with advlab.models.to_unit)")
    return images


def check_labels(labels, n: int, name: str = "labels") -> torch.Tensor:
    """Class indices, one per image: an int64 tensor of shape ``(n,)``."""
    check_tensor(labels, name)
    if labels.dtype != torch.long:
        raise TypeError(f"{name} must have dtype torch.int64 (class indices), got {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one per image, got {tuple(labels.shape)}")
    return labels


def _bounds(low, high, strict: bool = False) -> str:
    if low is not None and high is not None:
        return f" in {'(' if strict else '['}{low}, {high}]"
    if low is not None:
        return f" {'>' if strict else '>='} {low}"
    if high is not None:
        return f" <= {high}"
    return ""


# --- evaluation mode ---------------------------------------------------------------------------

@contextmanager
def eval_mode(*models: torch.nn.Module):
    """Run ``models`` in evaluation mode; restore every submodule's own ``training`` flag after,
    also when the body raises."""
    flags = [(m, m.training) for model in models for m in model.modules()]
    for model in models:
        model.eval()
    try:
        yield models[0] if len(models) == 1 else models
    finally:
        for m, flag in flags:
            m.training = flag


def module_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter (or buffer); the CPU for a model with neither."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def batched(fn: Callable[..., torch.Tensor], *inputs: torch.Tensor, batch_size: int = 500,
            models: Iterable[torch.nn.Module] = (), device=None) -> torch.Tensor:
    """``torch.cat`` of ``fn(*chunk)`` over ``batch_size`` rows of ``inputs`` at a time, without
    gradients, with ``models`` in :func:`eval_mode`; chunks move to ``device`` (if given) first."""
    check_int(batch_size, "batch_size")
    if not inputs:
        raise TypeError("batched needs at least one input tensor")
    n = len(inputs[0])
    if any(len(x) != n for x in inputs):
        raise ValueError(f"inputs must have the same length, got {[len(x) for x in inputs]}")
    with torch.no_grad(), ExitStack() as stack:
        models = tuple(models)
        if models:
            stack.enter_context(eval_mode(*models))
        outs = []
        for i in range(0, max(n, 1), batch_size):  # an empty input still gets fn's output shape
            chunk = [x[i:i + batch_size] for x in inputs]
            if device is not None:
                chunk = [x.to(device) for x in chunk]
            outs.append(fn(*chunk))
    return torch.cat(outs)

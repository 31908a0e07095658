"""The machinery every exercise check shares: comparing an answer with the reference in words,
calling a student's function, and letting later cells fall back to the library's version."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable

import numpy as np
import torch


class ExerciseError(AssertionError):
    """An exercise check failed; the message says what is wrong (shape, dtype, which element)."""


_PASSED: weakref.WeakSet = weakref.WeakSet()
_PASSED_IDS: set[int] = set()  # answers that cannot be weakly referenced


def _name(fn) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def call(answer: Callable, *args, **kwargs):
    """Call the student's function; turn "not written yet" and crashes into a message that says so.

    ``NotImplementedError`` (what a student copy's solution region raises) becomes an
    :class:`ExerciseError` asking for the missing code; any other exception is re-raised as an
    :class:`ExerciseError` naming the function and the error, chained to the original traceback.
    """
    if not callable(answer):
        raise ExerciseError(f"expected a function, got {type(answer).__name__}: define it in the "
                            "exercise cell above and run that cell first")
    try:
        return answer(*args, **kwargs)
    except NotImplementedError as err:
        raise ExerciseError(f"`{_name(answer)}` is not written yet: replace "
                            "`raise NotImplementedError()` in the exercise cell with your code, "
                            "run that cell, then this check again") from err
    except ExerciseError:
        raise
    except Exception as err:
        raise ExerciseError(f"`{_name(answer)}` raised {type(err).__name__}: {err}") from err


def _as_tensor(value, what: str):
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    raise ExerciseError(f"{what} should be a tensor, got {type(value).__name__}")


def _index(flat: int, shape) -> tuple:
    return tuple(int(i) for i in np.unravel_index(flat, tuple(shape))) if len(shape) else ()


def compare(got, expected, what: str = "your answer", *, atol: float = 1e-6, rtol: float = 1e-5,
            exact: bool = False, check_dtype: bool = True) -> None:
    """Raise :class:`ExerciseError` unless ``got`` matches ``expected``; say how it differs.

    Tensors (or arrays) are compared for type, shape, dtype, then values: ``exact`` asks for equal
    elements (bit for bit), otherwise ``|got - expected| <= atol + rtol * |expected|`` elementwise,
    with NaN only where the reference has NaN. The message names the worst element, both values,
    the difference and the tolerance, and how many elements differ. Numbers compare the same way.
    """
    if isinstance(expected, (bool, np.bool_)):
        if not isinstance(got, (bool, np.bool_)) and not (
                isinstance(got, torch.Tensor) and got.numel() == 1 and got.dtype == torch.bool):
            raise ExerciseError(f"{what} should be True or False, got {type(got).__name__}")
        if bool(got) != bool(expected):
            raise ExerciseError(f"{what} is {bool(got)}, expected {bool(expected)}")
        return
    if isinstance(expected, (int, float, np.integer, np.floating)):
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, (bool, np.bool_)) or not isinstance(
                got, (int, float, np.integer, np.floating)):
            raise ExerciseError(f"{what} should be a number, got {type(got).__name__}")
        got_f, exp_f = float(got), float(expected)
        if math.isnan(exp_f) and math.isnan(got_f):
            return
        tol = 0.0 if exact else atol + rtol * abs(exp_f)
        if math.isnan(got_f) or abs(got_f - exp_f) > tol:
            raise ExerciseError(f"{what} is {got_f:.6g}, expected {exp_f:.6g} (difference "
                                f"{abs(got_f - exp_f):.3g}, tolerance {tol:.3g})")
        return
    expected = _as_tensor(expected, "the reference")
    got = _as_tensor(got, what)
    if tuple(got.shape) != tuple(expected.shape):
        raise ExerciseError(f"{what} has shape {tuple(got.shape)}, expected "
                            f"{tuple(expected.shape)}")
    if check_dtype and got.dtype != expected.dtype:
        raise ExerciseError(f"{what} has dtype {got.dtype}, expected {expected.dtype}")
    got = got.detach().cpu()
    expected = expected.detach().cpu()
    if expected.dtype == torch.bool or got.dtype == torch.bool:
        wrong = got.to(torch.bool) != expected.to(torch.bool)
        if wrong.any():
            flat = int(torch.nonzero(wrong.flatten())[0])
            raise ExerciseError(
                f"{what} differs at element {_index(flat, got.shape)}: "
                f"{bool(got.flatten()[flat])} instead of {bool(expected.flatten()[flat])} "
                f"({int(wrong.sum())} of {wrong.numel()} elements differ)")
        return
    g = got.to(torch.float64)
    e = expected.to(torch.float64)
    both_nan = torch.isnan(g) & torch.isnan(e)
    diff = (g - e).abs()
    tol = torch.zeros_like(e) if exact else atol + rtol * e.abs()
    bad = ~both_nan & ((diff > tol) | torch.isnan(g) | torch.isnan(e))
    if bad.any():
        excess = torch.where(bad, torch.nan_to_num(diff - tol, nan=float("inf")),
                             torch.full_like(diff, -1.0))
        flat = int(excess.flatten().argmax())
        gv, ev = float(g.flatten()[flat]), float(e.flatten()[flat])
        limit = "bit for bit" if exact else f"tolerance {float(tol.flatten()[flat]):.3g}"
        raise ExerciseError(
            f"{what} differs at element {_index(flat, got.shape)}: {gv:.6g} instead of {ev:.6g} "
            f"(difference {abs(gv - ev):.3g}, {limit}; {int(bad.sum())} of {bad.numel()} elements "
            "differ)")


def seeded(seed: int) -> torch.Generator:
    """The CPU generator a check draws its inputs from."""
    return torch.Generator().manual_seed(int(seed))


def tensor_answer(got, what: str) -> torch.Tensor:
    """``got`` itself if it is a tensor, else an :class:`ExerciseError` saying what came back."""
    if not isinstance(got, torch.Tensor):
        raise ExerciseError(f"{what} should return a tensor, got {type(got).__name__}")
    return got


def close(a, b, atol: float = 1e-6, rtol: float = 1e-5) -> bool:
    """Whether two numbers or tensors agree in shape and value (to recognise a typical mistake)."""
    try:
        a = torch.as_tensor(a, dtype=torch.float64).detach().cpu()
        b = torch.as_tensor(b, dtype=torch.float64).detach().cpu()
        return a.shape == b.shape and bool(torch.allclose(a, b, atol=atol, rtol=rtol))
    except (TypeError, ValueError, RuntimeError):
        return False


def passed(answer, message: str) -> None:
    """Record that ``answer`` passed its check (for :func:`choose`) and print ``message``."""
    try:
        _PASSED.add(answer)
    except TypeError:
        _PASSED_IDS.add(id(answer))
    print(f"✓ {message}")


def has_passed(answer) -> bool:
    """Whether ``answer`` passed its exercise check in this session."""
    try:
        return answer in _PASSED
    except TypeError:
        return id(answer) in _PASSED_IDS


def choose(answer, reference, *, name: str | None = None):
    """Your solution where it passed its check, else the library's reference, saying which.

    Cells after an exercise call this so that a student copy runs top to bottom while the
    exercise is still open, and uses the student's own code once it is right.
    """
    label = name or _name(answer)
    ref = f"{getattr(reference, '__module__', '')}.{_name(reference)}".lstrip(".")
    if answer is not None and has_passed(answer):
        print(f"using your `{label}` (it passed its check)")
        return answer
    print(f"`{label}` has not passed its check yet, so the cells below use `{ref}`")
    return reference

import random
from pathlib import Path

import numpy as np
import pytest
import torch

import advlab
from advlab import runtime


def test_device_override(monkeypatch):
    monkeypatch.setenv("ADVLAB_DEVICE", "cpu")
    assert advlab.device() == torch.device("cpu")


def test_device_default_is_cpu_without_accelerators(monkeypatch):
    monkeypatch.delenv("ADVLAB_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "_mps_available", lambda: False)
    assert advlab.device() == torch.device("cpu")


def test_device_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.delenv("ADVLAB_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert advlab.device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "_mps_available", lambda: True)
    assert advlab.device().type == "mps"


def test_bad_device_override(monkeypatch):
    monkeypatch.setenv("ADVLAB_DEVICE", "tpu")
    with pytest.raises(ValueError, match="ADVLAB_DEVICE"):
        advlab.device()


def test_seed_everything_repeats_all_generators():
    g = advlab.seed_everything(123)
    a = (random.random(), np.random.rand(), torch.rand(3), torch.rand(2, generator=g))
    g = advlab.seed_everything(123)
    b = (random.random(), np.random.rand(), torch.rand(3), torch.rand(2, generator=g))
    assert a[0] == b[0] and a[1] == b[1]
    assert torch.equal(a[2], b[2]) and torch.equal(a[3], b[3])


@pytest.mark.parametrize("seed", [1.5, "3", None, True])
def test_seed_must_be_int(seed):
    with pytest.raises(TypeError, match="seed"):
        advlab.seed_everything(seed)


def test_seed_range():
    with pytest.raises(ValueError, match="seed"):
        advlab.seed_everything(-1)


def test_profile_from_env(monkeypatch):
    monkeypatch.setenv("ADVLAB_PROFILE", "full")
    assert advlab.profile() == "full"
    assert advlab.pick(quick=1, full=2) == 2
    monkeypatch.setenv("ADVLAB_PROFILE", "QUICK")
    assert advlab.profile() == "quick"
    assert advlab.pick(quick=1, full=2) == 1


def test_profile_default_follows_cuda(monkeypatch):
    monkeypatch.delenv("ADVLAB_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert advlab.profile() == "quick"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert advlab.profile() == "full"


def test_unknown_profile(monkeypatch):
    monkeypatch.setenv("ADVLAB_PROFILE", "medium")
    with pytest.raises(ValueError, match="ADVLAB_PROFILE.*quick.*full"):
        advlab.profile()


def test_data_dir_env_and_repo_default(monkeypatch, tmp_path):
    monkeypatch.setenv("ADVLAB_DATA", str(tmp_path / "d"))
    assert advlab.data_dir() == tmp_path / "d" and (tmp_path / "d").is_dir()
    monkeypatch.delenv("ADVLAB_DATA")
    repo = Path(runtime.__file__).resolve().parents[2]
    assert advlab.data_dir() == repo / "data"


def test_data_dir_outside_a_checkout(monkeypatch, tmp_path):
    monkeypatch.delenv("ADVLAB_DATA", raising=False)
    monkeypatch.setattr(runtime, "_repo_root", lambda: None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert advlab.data_dir() == tmp_path / "advlab"

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


@pytest.mark.parametrize("seed", [1.5, "3", True])
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


def test_profile_default_is_quick_even_with_cuda(monkeypatch):
    monkeypatch.delenv("ADVLAB_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert advlab.profile() == "quick"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert advlab.profile() == "quick"
    assert advlab.pick(quick=1, full=2) == 1


def test_smoke_scale_only_in_the_full_profile(monkeypatch):
    monkeypatch.setenv("ADVLAB_SMOKE", "1")
    monkeypatch.setenv("ADVLAB_PROFILE", "quick")
    assert not advlab.smoke_scale()
    assert advlab.pick(quick=1, full=2, smoke=3) == 1
    monkeypatch.setenv("ADVLAB_PROFILE", "full")
    assert advlab.smoke_scale()
    assert advlab.pick(quick=1, full=2, smoke=3) == 3
    assert advlab.pick(quick=1, full=2) == 2
    monkeypatch.setenv("ADVLAB_SMOKE", "0")
    assert advlab.pick(quick=1, full=2, smoke=3) == 2
    monkeypatch.setenv("ADVLAB_SMOKE", "maybe")
    with pytest.raises(ValueError, match="ADVLAB_SMOKE"):
        advlab.smoke_scale()


def test_expect_asserts_except_at_smoke_scale(monkeypatch, capsys):
    monkeypatch.delenv("ADVLAB_SMOKE", raising=False)
    assert advlab.expect(True, "fine")
    with pytest.raises(AssertionError, match="accuracy too low"):
        advlab.expect(False, "accuracy too low")
    monkeypatch.setenv("ADVLAB_PROFILE", "full")
    monkeypatch.setenv("ADVLAB_SMOKE", "1")
    assert advlab.expect(False, "accuracy too low") is False
    assert "not verified] accuracy too low -> does not hold" in capsys.readouterr().out
    with pytest.raises(TypeError, match="message"):
        advlab.expect(True, "")


def test_course_seed_moves_every_stream(monkeypatch):
    monkeypatch.delenv("ADVLAB_SEED", raising=False)
    assert advlab.course_seed() == 0
    assert [advlab.derive_seed(k) for k in (0, 1, 7)] == [0, 1, 7]
    a = torch.rand(4, generator=advlab.generator(3))
    monkeypatch.setenv("ADVLAB_SEED", "2")
    assert advlab.course_seed() == 2
    seeds = [advlab.derive_seed(k) for k in (0, 1, 7)]
    assert len(set(seeds)) == 3 and not set(seeds) & {0, 1, 7}
    assert not torch.equal(a, torch.rand(4, generator=advlab.generator(3)))
    assert torch.equal(torch.rand(4, generator=advlab.generator(3)),
                       torch.rand(4, generator=advlab.generator(3)))
    g = advlab.seed_everything()
    assert g.initial_seed() == advlab.derive_seed(0)


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", str(2**32)])
def test_bad_course_seed(monkeypatch, value):
    monkeypatch.setenv("ADVLAB_SEED", value)
    with pytest.raises(ValueError, match="ADVLAB_SEED"):
        advlab.course_seed()


def test_course_seed_changes_the_split_and_model_keys(monkeypatch):
    from advlab import data, train

    monkeypatch.delenv("ADVLAB_SEED", raising=False)
    split0 = data.load_images("digits", "test").labels
    key0 = train.course_model_config("target")
    monkeypatch.setenv("ADVLAB_SEED", "1")
    split1 = data.load_images("digits", "test").labels
    assert not torch.equal(split0, split1)
    assert sorted(split0.tolist()) != split1.tolist()
    assert train.course_model_config("target") != key0


def test_headline_records_when_asked(monkeypatch, tmp_path):
    monkeypatch.delenv("ADVLAB_HEADLINES", raising=False)
    assert advlab.headline("accuracy", torch.tensor(0.5)) == 0.5
    out = tmp_path / "h.jsonl"
    monkeypatch.setenv("ADVLAB_HEADLINES", str(out))
    advlab.headline("accuracy", 0.25)
    advlab.headline("modes", 8)
    lines = out.read_text().splitlines()
    assert lines == ['{"name": "accuracy", "value": 0.25}', '{"name": "modes", "value": 8.0}']
    with pytest.raises(TypeError, match="value"):
        advlab.headline("x", "high")
    with pytest.raises(TypeError, match="name"):
        advlab.headline("", 1.0)


def test_versions_line(monkeypatch, capsys):
    monkeypatch.setenv("ADVLAB_SEED", "5")
    line = advlab.versions()
    for part in (advlab.__version__, torch.__version__, "device cpu", "profile", "seed 5"):
        assert part in line
    advlab.setup()
    assert capsys.readouterr().out.strip() == line


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

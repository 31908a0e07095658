import json
import os
import pickle

import pytest
import torch
from torch import nn

from advlab import checkpoints


def test_round_trip(tmp_path):
    obj = {"w": torch.randn(3, 4), "step": 7, "name": "x", "nested": [torch.ones(2)]}
    path = checkpoints.save(obj, tmp_path / "sub" / "a.pt")
    back = checkpoints.load(path)
    assert torch.equal(back["w"], obj["w"]) and back["step"] == 7 and back["name"] == "x"
    assert torch.equal(back["nested"][0], torch.ones(2))
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.pt"]  # no temp file left


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_code_carrying_file_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"payload": _Evil()}, path, pickle_module=pickle)
    with pytest.raises(checkpoints.UnsafeCheckpointError, match="refusing"):
        checkpoints.load(path)


def test_failed_save_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    checkpoints.save({"v": torch.tensor([1.0])}, path)

    def crash(obj, fh, *args, **kwargs):
        fh.write(b"half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        checkpoints.save({"v": torch.tensor([2.0])}, path)
    monkeypatch.undo()
    assert checkpoints.load(path)["v"].item() == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        checkpoints.load(tmp_path / "nope.pt")


def test_config_hash_is_order_free_and_sensitive():
    a = checkpoints.config_hash({"lr": 0.1, "epochs": 3})
    assert a == checkpoints.config_hash({"epochs": 3, "lr": 0.1})
    assert a != checkpoints.config_hash({"epochs": 4, "lr": 0.1})
    with pytest.raises(TypeError, match="config"):
        checkpoints.config_hash([1, 2])


def test_cache_trains_once_and_retrains_on_new_config(tmp_path):
    calls = []

    def build():
        return nn.Linear(2, 1)

    def train(model):
        calls.append(1)
        with torch.no_grad():
            model.weight.fill_(len(calls))
        return {"score": 0.5}

    m1, info1 = checkpoints.cached("lin", {"a": 1}, build, train, cache_dir=tmp_path)
    m2, info2 = checkpoints.cached("lin", {"a": 1}, build, train, cache_dir=tmp_path)
    assert len(calls) == 1 and not info1["hit"] and info2["hit"]
    assert info2["score"] == 0.5 and "train_seconds" in info2
    assert torch.equal(m1.weight, m2.weight)
    m3, info3 = checkpoints.cached("lin", {"a": 2}, build, train, cache_dir=tmp_path)
    assert len(calls) == 2 and not info3["hit"] and m3.weight[0, 0].item() == 2.0


def test_cache_bad_name(tmp_path):
    with pytest.raises(ValueError, match="name"):
        checkpoints.cached("a/b", {}, lambda: nn.Linear(1, 1), lambda m: None, cache_dir=tmp_path)


def test_saved_file_gets_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = checkpoints.save({"v": 1}, tmp_path / "p.pt")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_cache_key_follows_the_code_that_computes_it(tmp_path, monkeypatch):
    pkg = tmp_path / "src"
    pkg.mkdir()
    (pkg / "course_piece.py").write_text("def f():\n    return 1\n")
    monkeypatch.syspath_prepend(str(pkg))
    checkpoints._source_hash.cache_clear()
    calls = []

    def compute():
        calls.append(1)
        return {"value": torch.tensor([len(calls)])}

    a = checkpoints.cached_record("rec", {"k": 1}, compute, code=["course_piece"],
                                  cache_dir=tmp_path)
    b = checkpoints.cached_record("rec", {"k": 1}, compute, code=["course_piece"],
                                  cache_dir=tmp_path)
    assert (a["hit"], b["hit"], len(calls)) == (False, True, 1)
    assert torch.equal(b["value"], a["value"])
    # an edited module is new code: the record is computed again, not loaded stale
    (pkg / "course_piece.py").write_text("def f():\n    return 2\n")
    checkpoints._source_hash.cache_clear()
    c = checkpoints.cached_record("rec", {"k": 1}, compute, code=["course_piece"],
                                  cache_dir=tmp_path)
    assert not c["hit"] and len(calls) == 2 and c["path"] != a["path"]
    # cache=False computes and stores nothing
    d = checkpoints.cached_record("rec", {"k": 2}, compute, code=["course_piece"],
                                  cache_dir=tmp_path, cache=False)
    assert not d["path"].exists()
    checkpoints._source_hash.cache_clear()


def test_cached_record_and_code_version_bad_input(tmp_path):
    with pytest.raises(TypeError, match="compute"):
        checkpoints.cached_record("r", {}, lambda: [1], cache_dir=tmp_path)
    with pytest.raises(TypeError, match="modules"):
        checkpoints.code_version("advlab")
    with pytest.raises(ValueError, match="name"):
        checkpoints.cache_path("a/b", {})


def test_save_json_writes_utf8_json_atomically_and_keeps_the_old_file_on_a_crash(tmp_path):
    path = tmp_path / "sub" / "r.json"
    assert checkpoints.save_json({"σ": [0.1, 2], "name": "noise"}, path) == path
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n") and "σ" in text and json.loads(text) == {"σ": [0.1, 2], "name": "noise"}
    with pytest.raises(TypeError):
        checkpoints.save_json({"bad": object()}, path)  # not JSON: nothing half-written
    assert json.loads(path.read_text(encoding="utf-8"))["name"] == "noise"
    assert [p.name for p in path.parent.iterdir()] == ["r.json"], "no temporary file may be left behind"

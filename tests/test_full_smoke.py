"""`make full-smoke`: the fixture data sets (tools/fixtures.py) and the harness (tools/full_smoke.py)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

import advlab
from advlab import data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import fixtures  # noqa: E402
import full_smoke  # noqa: E402


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fixtures")
    fixtures.write_fixtures(root, 100, 50, seed=3)
    return root


@pytest.mark.parametrize("name,shape", [("mnist", (1, 28, 28)), ("cifar10", (3, 32, 32))])
def test_fixtures_load_through_the_full_profile_offline(name, shape, fixture_root, monkeypatch,
                                                       no_network):
    monkeypatch.setenv("ADVLAB_DATA", str(fixture_root))
    train = data.load_images(name, "train", profile="full")
    test = data.load_images(name, "test", profile="full")
    assert train.images.shape == (100, *shape) and test.images.shape == (50, *shape)
    for part in (train, test):
        assert part.images.dtype == torch.float32 and part.labels.dtype == torch.int64
        assert 0.0 <= part.images.min() and part.images.max() <= 1.0
        assert part.images.std() > 0.1, "fixture images must not be blank"
    assert torch.bincount(train.labels, minlength=10).tolist() == [10] * 10
    assert torch.bincount(test.labels, minlength=10).tolist() == [5] * 10
    assert len(train.classes) == 10
    flat = {row.numpy().tobytes() for row in train.images.flatten(1)}
    assert not any(row.numpy().tobytes() in flat for row in test.images.flatten(1))


def test_mnist_fixture_is_real_digits_and_seeded():
    (x, y), _ = fixtures.mnist_arrays(50, 10, seed=0)
    real = {row.astype(np.uint8).tobytes() for row in data._mnist_subset_arrays()[0]}
    assert all(img.reshape(-1).tobytes() in real for img in x)
    (x2, y2), _ = fixtures.mnist_arrays(50, 10, seed=0)
    (x3, _), _ = fixtures.mnist_arrays(50, 10, seed=1)
    assert np.array_equal(x, x2) and np.array_equal(y, y2) and not np.array_equal(x, x3)


def test_cifar_fixture_classes_are_separable():
    """Class means differ more than the spread inside a class: a small model can learn them."""
    (x, y), _ = fixtures.cifar10_arrays(200, 10, seed=0)
    colour = x.reshape(len(x), 3, -1).mean(2) / 255.0
    means = np.stack([colour[y == c].mean(0) for c in range(10)])
    within = np.mean([colour[y == c].std(0).mean() for c in range(10)])
    between = np.linalg.norm(means[:, None] - means[None], axis=2)[np.triu_indices(10, 1)]
    assert np.median(between) > 2 * within


def test_cifar_fixture_batches_and_meta_follow_torchvision(fixture_root):
    import pickle

    folder = fixture_root / "cifar-10-batches-py"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*data.CIFAR10_FILES, "batches.meta"])
    with open(folder / "batches.meta", "rb") as fh:
        assert pickle.load(fh, encoding="latin1")["label_names"] == list(data.CIFAR10_CLASSES)
    with open(folder / "data_batch_1", "rb") as fh:
        entry = pickle.load(fh, encoding="latin1")
    assert entry["data"].shape == (20, 3072) and entry["data"].dtype == np.uint8


def test_mnist_fixture_reads_with_torchvision(fixture_root, no_network):
    from torchvision.datasets import MNIST

    ds = MNIST(str(fixture_root), train=False, download=False)
    assert ds.data.shape == (50, 28, 28) and len(ds.targets) == 50


@pytest.mark.parametrize("kwargs,error", [
    ({"n_train": 95}, ValueError), ({"n_test": 0}, ValueError), ({"n_train": 5000}, ValueError),
    ({"n_train": 100.0}, TypeError), ({"seed": -1}, ValueError)])
def test_fixture_bad_sizes(kwargs, error, tmp_path):
    name = next(iter(kwargs))
    with pytest.raises(error, match=name):
        fixtures.write_fixtures(tmp_path, **{"n_train": 100, "n_test": 50, **kwargs})


def test_write_idx_checks_dtype(tmp_path):
    with pytest.raises(TypeError, match="array"):
        fixtures.write_idx(tmp_path / "x", np.zeros((2, 2), dtype=np.int64))


def test_quick_is_the_default_profile_even_with_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert advlab.profile() == "quick"
    assert advlab.pick(quick=1, full=2, smoke=3) == 1 and not advlab.smoke_scale()


def test_harness_environment(tmp_path):
    base = {"PATH": "/bin", "PYTHONPATH": "/somewhere", "ADVLAB_PROFILE": "quick",
            "ADVLAB_HEADLINES": "/tmp/h.jsonl", "ADVLAB_SEED": "4"}
    env = full_smoke.smoke_environment(tmp_path / "data", tmp_path / "block", base)
    assert env["ADVLAB_PROFILE"] == "full" and env["ADVLAB_SMOKE"] == "1"
    assert env["ADVLAB_DATA"] == str(tmp_path / "data") and env["ADVLAB_DEVICE"] == "cpu"
    assert env["OMP_NUM_THREADS"] == "1" and "ADVLAB_HEADLINES" not in env
    assert env["PYTHONPATH"].split(os.pathsep) == [str(tmp_path / "block"), "/somewhere"]
    assert env["ADVLAB_SEED"] == "4" and env["PATH"] == "/bin" and base["ADVLAB_PROFILE"] == "quick"
    with pytest.raises(TypeError, match="data"):
        full_smoke.smoke_environment(None)


def test_harness_environment_gives_smoke_scale(tmp_path, monkeypatch):
    for key, value in full_smoke.smoke_environment(tmp_path, None, {}).items():
        monkeypatch.setenv(key, value)
    assert advlab.profile() == "full" and advlab.smoke_scale()
    assert advlab.pick(quick=1, full=2, smoke=3) == 3 and advlab.data_dir() == tmp_path


def test_network_block_refuses_outside_connections_only(tmp_path):
    """A Python started with the harness's environment cannot reach the network, only loopback."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    env = full_smoke.smoke_environment(tmp_path, full_smoke.write_network_block(tmp_path / "b"))
    script = (
        "import socket, urllib.request\n"
        f"socket.create_connection(('127.0.0.1', {port}), timeout=5).close()\n"
        "for call in (lambda: socket.create_connection(('93.184.215.14', 80), timeout=5),\n"
        "             lambda: urllib.request.urlopen('https://example.com', timeout=5)):\n"
        "    try:\n"
        "        call()\n"
        "    except OSError as exc:\n"
        "        assert 'network blocked' in str(exc), exc\n"
        "    else:\n"
        "        raise SystemExit('connection was not blocked')\n"
        "print('blocked')\n")
    try:
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                             text=True, timeout=60)
    finally:
        server.close()
    assert out.returncode == 0 and out.stdout.strip() == "blocked", out.stderr


def test_harness_reads_not_verified_lines_and_the_failing_cell():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell("advlab.expect(...)", outputs=[nbformat.v4.new_output(
            "stream", name="stdout",
            text="acc 0.5\n[smoke scale: not verified] acc >= 0.99 -> does not hold\n")]),
        nbformat.v4.new_code_cell("1 / 0", outputs=[nbformat.v4.new_output(
            "error", ename="ZeroDivisionError", evalue="division by zero", traceback=[])]),
    ])
    assert full_smoke.not_verified_lines(nb) == [
        "[smoke scale: not verified] acc >= 0.99 -> does not hold"]
    assert full_smoke.failing_cell(nb) == "cell 2 (code cell 2): ZeroDivisionError: division by zero"
    nb.cells.pop()
    assert full_smoke.failing_cell(nb) is None

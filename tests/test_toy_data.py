import math

import pytest
import torch

from advlab import data


def test_ring_modes():
    centers, std = data.toy_2d_modes("ring")
    assert centers.shape == (8, 2) and centers.dtype == torch.float32 and std == 0.01
    assert torch.allclose(centers.norm(dim=1), torch.ones(8), atol=1e-6)
    angles = torch.atan2(centers[:, 1], centers[:, 0]).remainder(2 * math.pi).sort().values
    assert torch.allclose(angles, torch.arange(8) * (math.pi / 4), atol=1e-5)


def test_grid_modes():
    centers, std = data.toy_2d_modes("grid")
    assert centers.shape == (25, 2) and std == 0.05
    assert {tuple(c) for c in centers.tolist()} == {
        (float(a), float(b)) for a in range(-4, 5, 2) for b in range(-4, 5, 2)}


@pytest.mark.parametrize("name", ["ring", "grid"])
def test_samples_sit_near_their_modes_and_cover_all(name):
    centers, std = data.toy_2d_modes(name)
    x = data.toy_2d(name, 4000, generator=torch.Generator().manual_seed(0))
    assert x.shape == (4000, 2) and x.dtype == torch.float32
    dist, nearest = torch.cdist(x, centers).min(dim=1)
    assert dist.max() < 6 * std
    counts = torch.bincount(nearest, minlength=len(centers))
    assert counts.min() > 0.5 * 4000 / len(centers)  # roughly equal weights


def test_same_generator_seed_same_samples():
    a = data.toy_2d("ring", 10, generator=torch.Generator().manual_seed(3))
    b = data.toy_2d("ring", 10, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_bad_input():
    with pytest.raises(ValueError, match="name"):
        data.toy_2d_modes("spiral")
    with pytest.raises(ValueError, match="name"):
        data.toy_2d("circle", 10)
    with pytest.raises(ValueError, match="n must"):
        data.toy_2d("ring", -1)
    with pytest.raises(TypeError, match="n must be an int"):
        data.toy_2d("ring", 2.5)

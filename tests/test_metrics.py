import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from advlab import data
from advlab.metrics import mode_coverage

RING, RING_STD = data.toy_2d_modes("ring")
GRID, GRID_STD = data.toy_2d_modes("grid")


def test_exact_mixture_covers_every_mode():
    for name, centers, std in (("ring", RING, RING_STD), ("grid", GRID, GRID_STD)):
        x = data.toy_2d(name, 2500, generator=torch.Generator().manual_seed(0))
        cov = mode_coverage(x, centers, std)
        assert cov.modes_covered == cov.n_modes == len(centers)
        # within 3 std in 2-D: P(chi2_2 <= 9) = 1 - exp(-4.5) = 0.9889
        assert abs(cov.high_quality - (1 - math.exp(-4.5))) < 0.01
        assert 0 <= cov.reverse_kl < 0.02
        assert int(cov.counts.sum()) == round(cov.high_quality * 2500)


def test_samples_on_the_centres_are_perfect():
    cov = mode_coverage(RING.repeat(5, 1), RING, RING_STD)
    assert (cov.modes_covered, cov.high_quality, cov.reverse_kl) == (8, 1.0, 0.0)
    assert cov.counts.tolist() == [5] * 8


def test_collapsed_samples_count_the_right_modes():
    gen = torch.Generator().manual_seed(1)
    picked = torch.tensor([0, 3, 5])
    x = RING[picked].repeat_interleave(100, 0) + RING_STD * torch.randn(300, 2, generator=gen)
    cov = mode_coverage(x, RING, RING_STD)
    assert cov.modes_covered == 3
    assert cov.counts.nonzero().flatten().tolist() == [0, 3, 5]
    # about equal thirds on 3 of 8 modes: KL(q || u) is close to log(8 / 3)
    assert abs(cov.reverse_kl - math.log(8 / 3)) < 0.02
    one = mode_coverage(RING[2:3].repeat(50, 1), RING, RING_STD)
    assert one.modes_covered == 1 and one.reverse_kl == pytest.approx(math.log(8))


def test_far_away_samples_are_not_high_quality():
    x = torch.full((100, 2), 10.0)
    cov = mode_coverage(x, RING, RING_STD)
    assert (cov.modes_covered, cov.high_quality) == (0, 0.0)
    assert cov.reverse_kl == math.inf
    # just outside / inside the 3 std radius
    edge = RING[:1] + torch.tensor([[0.0, 3.2 * RING_STD]])
    assert mode_coverage(edge, RING, RING_STD).high_quality == 0.0
    assert mode_coverage(edge, RING, RING_STD, threshold=3.5).high_quality == 1.0


def test_nan_samples_are_never_high_quality():
    x = torch.tensor([[float("nan"), 0.0], [1.0, 0.0]])
    cov = mode_coverage(x, RING, RING_STD)
    assert cov.high_quality == 0.5 and cov.modes_covered == 1


def test_numpy_input():
    cov = mode_coverage(RING.numpy().astype(np.float64), RING.numpy(), RING_STD)
    assert cov.modes_covered == 8


@pytest.mark.parametrize("samples,centers,std,kwargs,exc,match", [
    (torch.zeros(5, 3), RING, 0.01, {}, ValueError, "dimension"),
    (torch.zeros(5), RING, 0.01, {}, ValueError, "samples"),
    (torch.zeros(0, 2), RING, 0.01, {}, ValueError, "samples"),
    (torch.zeros(5, 2), RING[0], 0.01, {}, ValueError, "centers"),
    (torch.zeros(5, 2), RING, 0.0, {}, ValueError, "std"),
    (torch.zeros(5, 2), RING, -1.0, {}, ValueError, "std"),
    (torch.zeros(5, 2), RING, "0.1", {}, TypeError, "std"),
    (torch.zeros(5, 2), RING, 0.01, {"threshold": 0}, ValueError, "threshold"),
    ([[0.0, 0.0]], RING, 0.01, {}, TypeError, "samples"),
    (torch.zeros(5, 2), "ring", 0.01, {}, TypeError, "centers"),
])
def test_bad_input(samples, centers, std, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        mode_coverage(samples, centers, std, **kwargs)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7), st.floats(-0.05, 0.05), st.floats(-0.05, 0.05)),
                min_size=1, max_size=40))
def test_bounds(rows):
    idx = torch.tensor([r[0] for r in rows])
    x = RING[idx] + torch.tensor([[r[1], r[2]] for r in rows])
    cov = mode_coverage(x, RING, RING_STD)
    assert 0 <= cov.modes_covered <= 8 and 0.0 <= cov.high_quality <= 1.0
    assert cov.reverse_kl == math.inf or -1e-12 <= cov.reverse_kl <= math.log(8) + 1e-12
    assert cov.modes_covered <= int(cov.counts.sum()) <= len(rows)

"""Classifier-FID / KID, precision / recall and label accuracy (metrics for image GANs)."""

import importlib
import itertools

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from advlab import metrics

pytestmark = pytest.mark.usefixtures("one_thread")


class SmallCNN(nn.Module):
    """A stand-in for the course's target CNN: ``features`` are its penultimate activations."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(1, 4, 5, 2), nn.ReLU(), nn.Flatten(),
                                  nn.Linear(4 * 12 * 12, 16), nn.ReLU())
        self.head = nn.Linear(16, 10)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))


def scipy_frechet(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


# Tolerances from the numerics, not from one machine: the inputs are float64, and symmetric
# eigendecompositions / sqrtm of small well-conditioned 5x5 covariances agree to about 1e-12
# relative between LAPACK builds; 1e-6 relative (of the covariance trace, for values near 0)
# leaves a wide margin for other BLAS kernels and thread counts while still catching any wrong term.
def test_frechet_distance_matches_scipy_closed_form():
    gen = torch.Generator().manual_seed(0)
    a = (torch.randn(300, 5, generator=gen) @ torch.randn(5, 5, generator=gen)).double()
    b = (torch.randn(200, 5, generator=gen) * 2 + 1).double()
    scale = torch.cov(a.T).trace().item()
    assert metrics.frechet_distance(a, b) == pytest.approx(scipy_frechet(a, b), rel=1e-6)
    assert metrics.frechet_distance(a, a) == pytest.approx(0, abs=1e-6 * scale)
    # Gaussians with equal covariance: only the means differ
    assert metrics.frechet_distance(a, a + 3) == pytest.approx(5 * 9, rel=1e-6)


def test_classifier_fid_is_zero_for_one_set_and_small_for_two_samples_of_it():
    model = SmallCNN()
    gen = torch.Generator().manual_seed(1)
    pool = torch.rand(600, 1, 28, 28, generator=gen) ** 2
    other = torch.rand(300, 1, 28, 28, generator=gen) ** 0.5
    same = metrics.classifier_fid(pool[:300], pool[300:], model)
    different = metrics.classifier_fid(pool[:300], other, model)
    # one set against itself: exactly the same features, so 0 up to float64 cancellation
    assert metrics.classifier_fid(pool, pool, model) <= 1e-9 * different
    assert same < 0.05 * different


def test_classifier_fid_matches_torchmetrics_with_the_same_features():
    fid_mod = importlib.import_module("torchmetrics.image.fid")
    model = SmallCNN()

    class Features(nn.Module):  # torchmetrics calls forward; ours calls features
        num_features = 16

        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model.features(x)

    gen = torch.Generator().manual_seed(2)
    real = torch.rand(128, 1, 28, 28, generator=gen)
    fake = torch.rand(96, 1, 28, 28, generator=gen) ** 3
    oracle = fid_mod.FrechetInceptionDistance(feature=Features(), normalize=True)
    oracle.update(real, real=True)
    oracle.update(fake, real=False)
    expected = float(oracle.compute())
    assert metrics.classifier_fid(real, fake, model) == pytest.approx(expected, rel=1e-4)


def _exact_mean(points_p, probs_p, points_q, probs_q, m, n, statistic):
    """The exact expectation of ``statistic`` over all samples of sizes m and n."""
    total = 0.0
    for ia in itertools.product(range(len(points_p)), repeat=m):
        for ib in itertools.product(range(len(points_q)), repeat=n):
            weight = np.prod([probs_p[i] for i in ia]) * np.prod([probs_q[i] for i in ib])
            total += weight * statistic(points_p[list(ia)], points_q[list(ib)])
    return total


def test_kid_is_unbiased_exactly_on_a_discrete_case():
    P = torch.tensor([[0.0, 1.0], [2.0, -1.0]], dtype=torch.float64)
    Q = torch.tensor([[1.0, 1.0], [-1.0, 0.5]], dtype=torch.float64)
    p, q = [0.3, 0.7], [0.6, 0.4]

    def k(x, y):
        return (x @ y.T / 2 + 1) ** 3

    def expect(A, wa, B, wb):
        return float(torch.tensor(wa, dtype=torch.float64) @ k(A, B)
                     @ torch.tensor(wb, dtype=torch.float64))

    population = expect(P, p, P, p) + expect(Q, q, Q, q) - 2 * expect(P, p, Q, q)
    unbiased = _exact_mean(P, p, Q, q, 3, 2, metrics.mmd2_unbiased)
    assert unbiased == pytest.approx(population, rel=1e-10)

    def biased(a, b):  # the V-statistic, diagonal kept
        return float(k(a, a).mean() + k(b, b).mean() - 2 * k(a, b).mean())

    assert abs(_exact_mean(P, p, Q, q, 3, 2, biased) - population) > 0.1 * abs(population)


def test_kernel_distance_subsets():
    gen = torch.Generator().manual_seed(3)
    a, b = torch.randn(400, 4, generator=gen), torch.randn(300, 4, generator=gen) + 1
    whole, spread = metrics.kernel_distance(a, b)
    assert spread == 0 and whole == pytest.approx(metrics.mmd2_unbiased(a, b))
    mean, std = metrics.kernel_distance(a, b, subset_size=100, subsets=20)
    assert std > 0 and abs(mean - whole) < 3 * std
    same, _ = metrics.kernel_distance(a[:200], a[200:])
    assert abs(same) < 0.05 * whole
    with pytest.raises(ValueError, match="subset_size"):
        metrics.kernel_distance(a, b, subset_size=1)
    with pytest.raises(ValueError, match="subsets"):
        metrics.kernel_distance(a, b, subsets=0)


def test_precision_recall():
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    # real balls (k=1) have radius 1; fake balls have radius 9.5 (its only other point)
    assert metrics.precision_recall(real, torch.tensor([[0.5], [10.0]]), k=1) == (0.5, 1.0)
    assert metrics.precision_recall(real, real, k=2) == (1.0, 1.0)
    gen = torch.Generator().manual_seed(4)
    cloud = torch.randn(200, 3, generator=gen)
    collapsed = cloud[:50] * 0.1  # realistic but not diverse: high precision, low recall
    precision, recall = metrics.precision_recall(cloud, collapsed)
    assert precision > 0.9 and recall < 0.3
    assert metrics.precision_recall(cloud, cloud + 100) == (0.0, 0.0)
    with pytest.raises(ValueError, match="k must"):
        metrics.precision_recall(cloud, cloud, k=0)


class OnePixelG(nn.Module):
    """Conditional 'generator': class c lights pixel (0, c); class 7 is drawn as a 3."""

    classes, z_dim = 10, 4

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, z, labels):
        x = -torch.ones(len(z), 1, 28, 28)
        drawn = torch.where(labels == 7, 3, labels)
        x[torch.arange(len(z)), 0, 0, drawn] = 1.0
        return x


class OnePixelClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(10.0))

    def forward(self, x):
        return x[:, 0, 0, :10] * self.scale


def test_label_accuracy():
    acc, per_class = metrics.label_accuracy(OnePixelG(), OnePixelClassifier(), per_class=7)
    assert acc == pytest.approx(0.9)
    assert per_class.tolist() == [1.0] * 7 + [0.0] + [1.0] * 2
    with pytest.raises(TypeError, match="conditional"):
        metrics.label_accuracy(nn.Linear(2, 2), OnePixelClassifier())
    with pytest.raises(ValueError, match="per_class"):
        metrics.label_accuracy(OnePixelG(), OnePixelClassifier(), per_class=0)


@pytest.mark.parametrize("call, exc, match", [
    (lambda m: metrics.classifier_fid(torch.rand(4, 1, 28, 28) * 2 - 1, torch.rand(4, 1, 28, 28),
                                      m), ValueError, "images must lie in \\[0, 1\\]"),
    (lambda m: metrics.classifier_fid(torch.rand(4, 28, 28), torch.rand(4, 1, 28, 28), m),
     ValueError, "images must be 4-D"),
    (lambda m: metrics.classifier_fid([1, 2], torch.rand(4, 1, 28, 28), m), TypeError, "images"),
    (lambda m: metrics.classifier_fid(torch.rand(4, 1, 28, 28), torch.rand(4, 1, 28, 28),
                                      nn.Linear(2, 2)), TypeError, "features"),
    (lambda m: metrics.frechet_distance(torch.rand(4, 3), torch.rand(4, 2)), ValueError,
     "dimension"),
    (lambda m: metrics.frechet_distance(torch.rand(1, 3), torch.rand(4, 3)), ValueError,
     "at least 2 rows"),
])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call(SmallCNN())


def test_rank_correlation_matches_scipy():
    stats = importlib.import_module("scipy.stats")
    gen = torch.Generator().manual_seed(5)
    a = torch.randn(30, generator=gen)
    b = a + torch.randn(30, generator=gen)
    b[3] = b[7]  # a tie
    assert metrics.rank_correlation(a, b) == pytest.approx(stats.spearmanr(a, b)[0], rel=1e-10)
    assert metrics.rank_correlation([1, 2, 3], [30, 20, 10]) == pytest.approx(-1)
    with pytest.raises(ValueError, match="same length"):
        metrics.rank_correlation([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="different values"):
        metrics.rank_correlation([1, 1], [1, 2])


def test_within_class_spread_closed_form_and_errors():
    from advlab.metrics import within_class_spread

    # class 0: the corners of a unit square (distances 1, 1, 1, 1, sqrt 2, sqrt 2 over 6 pairs);
    # class 1: two points 3 apart; class 2: one point (NaN); class 3: absent (NaN)
    square = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    feats = torch.tensor(square + [[5.0, 5.0], [5.0, 8.0], [9.0, 9.0]])
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    spread = within_class_spread(feats, labels, 4)
    assert spread.dtype == torch.float64 and spread.shape == (4,)
    assert spread[0].item() == pytest.approx((4 + 2 * 2 ** 0.5) / 6, rel=1e-12)
    assert spread[1].item() == pytest.approx(3.0, rel=1e-12)
    assert torch.isnan(spread[2:]).all()
    # a copy of each row adds zero distances: the spread of a collapsed set falls
    doubled = within_class_spread(torch.cat([feats[:4], feats[:4]]), torch.zeros(8, dtype=torch.long), 1)
    assert doubled[0].item() == pytest.approx((4 + 2 * 2 ** 0.5) * 4 / 28, rel=1e-12)  # < 1.138
    with pytest.raises(ValueError, match="labels"):
        within_class_spread(feats, labels[:3], 4)
    with pytest.raises(ValueError, match="labels"):
        within_class_spread(feats, labels, 2)
    with pytest.raises(TypeError, match="labels"):
        within_class_spread(feats, labels.float(), 4)
    with pytest.raises(ValueError, match="min_count"):
        within_class_spread(feats, labels, 4, min_count=1)

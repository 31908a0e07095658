import importlib

import numpy as np
import pytest
import torch

from advlab import metrics

stats = importlib.import_module("scipy.stats")
sk_metrics = importlib.import_module("sklearn.metrics")


def test_mid_ranks_match_scipy_with_ties():
    v = [3.0, 1.0, 3.0, 2.0, 3.0, -1.0, 2.0]
    np.testing.assert_array_equal(metrics.mid_ranks(v).numpy(), stats.rankdata(v))


@pytest.mark.parametrize("n_neg,n_pos", [(50, 50), (40, 13)])
def test_auroc_matches_sklearn_with_ties(n_neg, n_pos):
    g = torch.Generator().manual_seed(0)
    neg = torch.randint(0, 6, (n_neg,), generator=g).double()  # many ties
    pos = torch.randint(2, 8, (n_pos,), generator=g).double()
    truth = np.r_[np.zeros(n_neg), np.ones(n_pos)]
    expected = sk_metrics.roc_auc_score(truth, np.r_[neg.numpy(), pos.numpy()])
    assert metrics.auroc(neg, pos) == pytest.approx(expected, abs=1e-12)


def test_auroc_bounds_and_errors():
    assert metrics.auroc([0, 1], [2, 3]) == 1.0
    assert metrics.auroc([2, 3], [0, 1]) == 0.0
    assert metrics.auroc([1, 1], [1, 1]) == 0.5
    with pytest.raises(ValueError, match="same length"):
        metrics.auroc([0, 1], [2], paired=True)
    with pytest.raises(ValueError, match="positives must be finite"):
        metrics.auroc([0.0], [float("nan")])
    with pytest.raises(ValueError, match="negatives must be a non-empty 1-D"):
        metrics.auroc([], [1.0])

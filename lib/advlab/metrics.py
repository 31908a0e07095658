"""Numbers that judge a classifier, a generator or a detector.

A classifier's confusion matrix and per-class accuracy; a generator's mode coverage, class
histogram, classifier FID / KID, Inception Score and precision / recall; ranks, Spearman
correlation and AUROC.

:func:`mode_coverage` follows the protocol of VEEGAN (Srivastava et al. 2017) and PacGAN
(Lin et al. 2018, Table 1): draw 2,500 generated samples, assign each to its nearest mode, call
it *high quality* when it lies within ``threshold`` (3) standard deviations of that mode, and
report how many modes received at least one high-quality sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .checks import batched, check_images, check_int, check_number, module_device


def kl_to_uniform(counts) -> float:
    """KL(q || uniform) in nats of the histogram ``counts`` over K bins (classes or modes):
    sum_k q_k log(K q_k), 0 for a uniform histogram, log K when everything is in one bin."""
    counts = torch.as_tensor(counts).double().flatten()
    if counts.dim() != 1 or len(counts) == 0 or (counts < 0).any() or counts.sum() <= 0:
        raise ValueError("counts must be a non-empty 1-D histogram of non-negative counts "
                         "with a positive total")
    q = counts[counts > 0] / counts.sum()
    return float((q * (q * len(counts)).log()).sum())


def class_histogram(labels, classes: int) -> torch.Tensor:
    """How often each of ``classes`` classes occurs among predicted ``labels``."""
    check_int(classes, "classes")
    labels = torch.as_tensor(labels).flatten().long().cpu()
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"labels must lie in [0, {classes}), got [{int(labels.min())}, "
                         f"{int(labels.max())}]")
    return torch.bincount(labels, minlength=classes)


def _class_indices(value, name: str, classes: int) -> torch.Tensor:
    """``value`` as a 1-D int64 CPU tensor of class indices in ``[0, classes)``."""
    if not isinstance(value, (torch.Tensor, np.ndarray, list, tuple)):
        raise TypeError(f"{name} must be a tensor, array or list of class indices, got "
                        f"{type(value).__name__}")
    value = torch.as_tensor(value)
    if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class indices, got {value.dtype}")
    if value.dim() != 1:
        raise ValueError(f"{name} must be 1-D, one class per image, got shape {tuple(value.shape)}")
    value = value.detach().long().cpu()
    if len(value) and (value.min() < 0 or value.max() >= classes):
        raise ValueError(f"{name} must lie in [0, {classes}), got [{int(value.min())}, "
                         f"{int(value.max())}]")
    return value


def confusion_matrix(predictions, labels, classes: int) -> torch.Tensor:
    """``(classes, classes)`` int64 counts: entry ``[i, j]`` is how many images of class ``i`` were
    predicted as class ``j``.

    Rows are the true ``labels``, columns the ``predictions`` (scikit-learn's convention): the
    diagonal counts the correct predictions, row ``i`` sums to the number of images of class
    ``i``, column ``j`` to how often ``j`` was predicted. Both inputs are 1-D integer class
    indices of the same length; the result is on the CPU.
    """
    classes = check_int(classes, "classes")
    pred = _class_indices(predictions, "predictions", classes)
    true = _class_indices(labels, "labels", classes)
    if len(pred) != len(true):
        raise ValueError(f"predictions and labels must have the same length, got {len(pred)} "
                         f"and {len(true)}")
    counts = torch.bincount(true * classes + pred, minlength=classes * classes)
    return counts.view(classes, classes)


def per_class_accuracy(model, images, labels, *, batch_size: int = 1000) -> torch.Tensor:
    """Top-1 accuracy of ``model`` on the images of each class: a float32 ``(K,)`` tensor on the
    CPU, ``K`` the number of logits, NaN for a class without images.

    Entry ``k`` is the diagonal of :func:`confusion_matrix` over its row sum (the recall of class
    ``k``). The model runs in evaluation mode, its mode restored, as in
    :func:`advlab.train.evaluate`; weighted by the class sizes, the entries average to that
    overall accuracy.
    """
    images = check_images(images)
    logits = batched(model, images, batch_size=batch_size, models=[model],
                     device=module_device(model))
    matrix = confusion_matrix(logits.argmax(1).cpu(), labels, logits.shape[1])
    return matrix.diag().float() / matrix.sum(1).float()


@dataclass(frozen=True)
class ModeCoverage:
    """The result of :func:`mode_coverage`.

    ``modes_covered``: modes with at least one high-quality sample (out of ``n_modes``).
    ``high_quality``: fraction of all samples within ``threshold * std`` of their nearest mode.
    ``reverse_kl``: KL(q || uniform) of the high-quality samples' mode histogram q, in nats.
    ``counts``: high-quality samples per mode, ``(n_modes,)`` int64.
    """

    modes_covered: int
    n_modes: int
    high_quality: float
    reverse_kl: float
    counts: torch.Tensor


def _as_matrix(value, name: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")
    if value.dim() != 2 or value.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, D) with N >= 1, got {tuple(value.shape)}")
    if not value.is_floating_point():
        value = value.float()
    return value.detach()


def mode_coverage(samples, centers, std: float, *, threshold: float = 3.0) -> ModeCoverage:
    """Mode coverage of ``samples`` (N, D) on the mixture with ``centers`` (K, D) and ``std``.

    A sample is high quality when ``||x - c_nearest|| <= threshold * std``. The reverse KL is

        KL(q || u) = sum_k q_k log(q_k K),   q_k = (high-quality samples at mode k) / (all HQ),

    against the uniform mode distribution u_k = 1/K. Empty bins contribute 0 (the convention
    0 log 0 = 0; q is the first argument, so no bin of u is ever empty). The value is 0 when the
    high-quality samples spread evenly and log K when they all sit at one mode; with no
    high-quality sample at all q is undefined and ``reverse_kl`` is ``inf``.
    """
    samples = _as_matrix(samples, "samples")
    centers = _as_matrix(centers, "centers")
    if samples.shape[1] != centers.shape[1]:
        raise ValueError(f"samples and centers must have the same dimension D, got samples "
                         f"{tuple(samples.shape)} and centers {tuple(centers.shape)}")
    check_number(std, "std", low=0, strict=True)
    check_number(threshold, "threshold", low=0, strict=True)
    samples = samples.to(torch.float64).cpu()
    centers = centers.to(torch.float64).cpu()
    dist, nearest = torch.cdist(samples, centers).min(dim=1)
    good = dist <= threshold * std  # NaN samples compare False: never high quality
    counts = torch.bincount(nearest[good], minlength=len(centers))
    n_good = int(counts.sum())
    reverse_kl = kl_to_uniform(counts) if n_good else math.inf
    return ModeCoverage(
        modes_covered=int((counts > 0).sum()),
        n_modes=len(centers),
        high_quality=n_good / len(samples),
        reverse_kl=reverse_kl,
        counts=counts,
    )


# --- Image GANs, judged on the features of our own MNIST classifier -------------------------------
# FID (Heusel et al. 2017) and KID (Binkowski et al. 2018) are defined on the 2048-d pool features
# of an ImageNet Inception network. On MNIST we use the penultimate activations (100-d) of the
# course's target CNN instead, so these numbers are *classifier*-FID / -KID: comparable across the
# course, not with published Inception FIDs.


def classifier_features(model, images, *, batch_size: int = 500) -> torch.Tensor:
    """``model.features(images)`` in eval mode (mode restored), float64 on the CPU, ``(N, D)``."""
    if not callable(getattr(model, "features", None)):
        raise TypeError("model must have a features(x) method, e.g. course_model('target')")
    images = check_images(images)
    if len(images) == 0:
        raise ValueError("images must hold at least one image")
    return batched(lambda x: model.features(x).double().cpu(), images, batch_size=batch_size,
                   models=[model], device=module_device(model))


def _two_feature_sets(a, b, min_rows: int = 2):
    a, b = _as_matrix(a, "real").double(), _as_matrix(b, "fake").double()
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"real and fake features must have the same dimension, got "
                         f"{a.shape[1]} and {b.shape[1]}")
    if len(a) < min_rows or len(b) < min_rows:
        raise ValueError(f"real and fake need at least {min_rows} rows each, got {len(a)} "
                         f"and {len(b)}")
    return a, b


def _sqrt_psd(m: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(m)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def frechet_distance(real, fake) -> float:
    """Frechet distance of Gaussians fitted to two feature sets ``(N, D)`` and ``(M, D)``:

        d^2 = ||mu_r - mu_f||^2 + tr(S_r + S_f - 2 (S_r S_f)^{1/2}),

    with unbiased covariances. tr (S_r S_f)^{1/2} = tr (S_r^{1/2} S_f S_r^{1/2})^{1/2}, a symmetric
    PSD matrix, so both roots come from ``eigh`` in float64 (no complex sqrtm residue).
    """
    a, b = _two_feature_sets(real, fake)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    root_a = _sqrt_psd(cov_a)
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    value = (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross
    return max(float(value), 0.0)


def classifier_fid(real, fake, model) -> float:
    """Classifier-FID: :func:`frechet_distance` on ``model.features`` of two image sets in [0, 1].

    Not Inception FID: the features are those of the course's MNIST classifier (see above).
    """
    return frechet_distance(classifier_features(model, real), classifier_features(model, fake))


def _polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(real, fake) -> float:
    """Unbiased MMD^2 with KID's kernel k(x, y) = (x.y / d + 1)^3 (Binkowski et al. 2018):

        1/(m(m-1)) sum_{i != j} k(x_i, x_j) + 1/(n(n-1)) sum_{i != j} k(y_i, y_j)
        - 2/(mn) sum_{i, j} k(x_i, y_j).

    Its expectation over samples is the population MMD^2 exactly (the diagonal terms, which
    bias the plain V-statistic upwards, are left out); it can be slightly negative.
    """
    a, b = _two_feature_sets(real, fake)
    m, n = len(a), len(b)
    k_aa, k_bb = _polynomial_kernel(a, a), _polynomial_kernel(b, b)
    k_ab = _polynomial_kernel(a, b)
    value = ((k_aa.sum() - k_aa.trace()) / (m * (m - 1))
             + (k_bb.sum() - k_bb.trace()) / (n * (n - 1)) - 2 * k_ab.mean())
    return float(value)


def kernel_distance(real, fake, *, subset_size: int = 1000, subsets: int = 10,
                    seed: int = 0) -> tuple[float, float]:
    """KID: mean and standard deviation of :func:`mmd2_unbiased` over ``subsets`` random subsets
    of ``subset_size`` rows of each set (the whole sets, once, when both are that small)."""
    a, b = _two_feature_sets(real, fake)
    check_int(subset_size, "subset_size", low=2)
    check_int(subsets, "subsets")
    if len(a) <= subset_size and len(b) <= subset_size:
        return mmd2_unbiased(a, b), 0.0
    size = min(subset_size, len(a), len(b))
    gen = torch.Generator().manual_seed(seed)
    values = torch.tensor([mmd2_unbiased(a[torch.randperm(len(a), generator=gen)[:size]],
                                         b[torch.randperm(len(b), generator=gen)[:size]])
                           for _ in range(subsets)], dtype=torch.float64)
    return float(values.mean()), float(values.std()) if subsets > 1 else 0.0


def classifier_kid(real, fake, model, **kwargs) -> tuple[float, float]:
    """Classifier-KID ``(mean, std)``: :func:`kernel_distance` on ``model.features``."""
    return kernel_distance(classifier_features(model, real), classifier_features(model, fake),
                           **kwargs)


def _knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    dist = torch.cdist(x, x)
    return dist.kthvalue(k + 1, dim=1).values  # k+1: the nearest "neighbour" is the point itself


def precision_recall(real, fake, *, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of feature sets ``(N, D)``.

    Each set's manifold is the union of balls around its points, each ball reaching that point's
    k-th nearest neighbour within the set. Precision: the fraction of fake points inside the real
    manifold (are the samples realistic?). Recall: the fraction of real points inside the fake
    manifold (is the data's variety covered?). The paper uses k = 3.
    """
    check_int(k, "k")
    a, b = _two_feature_sets(real, fake, min_rows=k + 1)
    r_a, r_b = _knn_radii(a, k), _knn_radii(b, k)
    cross = torch.cdist(b, a)  # (fake, real)
    precision = (cross <= r_a[None, :]).any(dim=1).double().mean()
    recall = (cross.T <= r_b[None, :]).any(dim=1).double().mean()
    return float(precision), float(recall)


def within_class_spread(features, labels, classes: int, *, min_count: int = 2) -> torch.Tensor:
    """Per class, the mean Euclidean distance between two different feature rows of that class:
    ``(classes,)`` float64, NaN for a class with fewer than ``min_count`` rows.

    ``features`` is ``(N, D)`` (e.g. :func:`classifier_features` of samples), ``labels`` their
    ``N`` classes (e.g. what a classifier reads). A generator that collapses within a class
    (the same few digits of each kind) has a small spread against real images of that class,
    even when every class is present.
    """
    feats = _as_matrix(features, "features").double()
    labels = _class_indices(labels, "labels", check_int(classes, "classes"))
    if len(labels) != len(feats):
        raise ValueError(f"labels must have one entry per feature row ({len(feats)}), got "
                         f"{len(labels)}")
    if check_int(min_count, "min_count") < 2:
        raise ValueError(f"min_count must be at least 2 (a distance needs two rows), got {min_count}")
    spread = torch.full((classes,), float("nan"), dtype=torch.float64)
    for c in range(classes):
        rows = feats[labels == c]
        n = len(rows)
        if n >= min_count:
            spread[c] = torch.cdist(rows, rows).sum() / (n * (n - 1))
    return spread


def label_accuracy(G, classifier, *, per_class: int = 100, seed: int = 0):
    """How often ``classifier`` puts a conditional G's samples in their conditioning class.

    G is called as ``G(z, labels)`` with ``per_class`` samples of each of ``G.classes`` classes
    (z from ``seed``), in eval mode (mode restored); its [-1, 1] output goes through
    :func:`advlab.models.to_unit`. Returns ``(overall accuracy, per-class accuracies (classes,))``.
    """
    from .models import to_unit

    classes = getattr(G, "classes", None)
    if not isinstance(classes, int) or not hasattr(G, "z_dim"):
        raise TypeError("G must be a conditional generator with classes and z_dim attributes")
    check_int(per_class, "per_class")
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(per_class)
    z = torch.randn(len(labels), G.z_dim, generator=gen)
    images = batched(lambda z, y: to_unit(G(z, y)).cpu(), z, labels, models=[G],
                     device=module_device(G))
    pred = batched(lambda x: classifier(x).argmax(1).cpu(), images, models=[classifier],
                   device=module_device(classifier))
    correct = (pred == labels).double()
    return float(correct.mean()), correct.view(classes, per_class).mean(1)


def mid_ranks(values) -> torch.Tensor:
    """1-based ranks of a 1-D array in float64, ties sharing the mean of their ranks."""
    v = torch.as_tensor(values, dtype=torch.float64).detach().cpu().flatten()
    _, inverse, counts = torch.unique(v, sorted=True, return_inverse=True, return_counts=True)
    last = counts.cumsum(0).double()  # rank of each distinct value's last copy
    return (last - (counts.double() - 1) / 2)[inverse]


def rank_correlation(a, b) -> float:
    """Spearman's rank correlation of two equal-length sequences (ties get their mean rank)."""
    x = torch.as_tensor(a, dtype=torch.float64).flatten()
    y = torch.as_tensor(b, dtype=torch.float64).flatten()
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"a and b must have the same length >= 2, got {len(x)} and {len(y)}")
    rx, ry = mid_ranks(x), mid_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = (rx.norm() * ry.norm()).item()
    if denom == 0:
        raise ValueError("a and b must each hold at least two different values")
    return float(rx @ ry) / denom


def auroc(negatives, positives, *, paired: bool = False) -> float:
    """Area under the ROC curve of a score meant to be higher for ``positives``.

    The probability that a random positive scores above a random negative, ties counting one
    half: the Mann-Whitney U statistic from mid-ranks, U / (n_neg n_pos). 0.5 is chance, 1.0
    perfect, below 0.5 means the score points the wrong way. ``paired=True`` requires one
    negative and one positive per item (e.g. a clean and an adversarial score per test image).
    """
    neg = torch.as_tensor(negatives, dtype=torch.float64).detach().cpu()
    pos = torch.as_tensor(positives, dtype=torch.float64).detach().cpu()
    for name, s in (("negatives", neg), ("positives", pos)):
        if s.dim() != 1 or len(s) == 0:
            raise ValueError(f"{name} must be a non-empty 1-D array, got shape {tuple(s.shape)}")
        if not torch.isfinite(s).all():
            raise ValueError(f"{name} must be finite (no NaN or inf)")
    if paired and len(neg) != len(pos):
        raise ValueError("negatives and positives must have the same length (one pair per "
                         f"item), got {len(neg)} and {len(pos)}")
    ranks = mid_ranks(torch.cat([neg, pos]))
    n, m = len(neg), len(pos)
    u = ranks[n:].sum() - m * (m + 1) / 2
    return float(u / (n * m))


def inception_score(probs) -> float:
    """The Inception score of class probabilities ``probs`` ``(N, K)``, one row per sample:

        IS = exp( mean_i KL(p(y | x_i) || p(y)) ),   p(y) = mean_i p(y | x_i),

    (Salimans et al. 2016), with 0 log 0 = 0. It runs from 1 (every sample gets the same
    prediction, e.g. uniform ones) to K (each sample confidently in one class, the classes
    equally often). Computed in float64 over all N rows at once; the paper averages it over
    10 splits of 50,000 samples. It never looks at real data.
    """
    if isinstance(probs, np.ndarray):
        probs = torch.from_numpy(probs)
    if not isinstance(probs, torch.Tensor):
        raise TypeError(f"probs must be a torch.Tensor or numpy array, got {type(probs).__name__}")
    if probs.dim() != 2 or probs.shape[0] == 0 or probs.shape[1] < 2:
        raise ValueError(f"probs must have shape (N, K) with N >= 1 and K >= 2, got "
                         f"{tuple(probs.shape)}")
    p = probs.detach().double().cpu()
    if not torch.isfinite(p).all() or (p < 0).any() or \
            not torch.allclose(p.sum(1), torch.ones(len(p), dtype=p.dtype), atol=1e-4):
        raise ValueError("probs must be probabilities: non-negative rows that sum to 1 (apply "
                         "softmax to logits first)")
    marginal = p.mean(0, keepdim=True)
    kl = (torch.xlogy(p, p) - torch.xlogy(p, marginal)).sum(1)
    return float(kl.mean().exp())


def classifier_inception_score(images, model, *, batch_size: int = 500) -> float:
    """Classifier-IS: :func:`inception_score` of ``softmax(model(images))`` for images in [0, 1].

    Not the Inception score: the classifier is the course's MNIST CNN, so the value lies
    between 1 and 10 and compares only within the course. Eval mode, mode restored.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    images = check_images(images)
    if len(images) == 0:
        raise ValueError("images must hold at least one image")
    check_int(batch_size, "batch_size")
    probs = batched(lambda x: model(x).double().softmax(1).cpu(), images,
                    batch_size=batch_size, models=[model], device=module_device(model))
    return inception_score(probs)

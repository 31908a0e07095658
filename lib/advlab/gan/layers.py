"""Layers of "Improved techniques for training GANs" (Salimans et al. 2016) and their wrappers.

* :class:`MinibatchDiscrimination`: lets the discriminator look at a whole batch, so a batch of
  near-identical fakes (mode collapse) is easy to tell from a varied real batch (section 3.2).
* :class:`VirtualBatchNorm1d`: batch normalisation whose statistics come from a fixed reference
  batch plus the example itself, so one sample's output never depends on the rest of its batch
  (section 3.4).

The wrappers fit them into the course's MLP models without changing :mod:`advlab.models`:
:class:`MinibatchDiscriminator` puts the layer between ``D.features`` and a new head;
:class:`VirtualBatchNormGenerator` swaps every ``BatchNorm1d`` of a generator for virtual batch
norm and keeps the reference latent batch, chosen once, as a buffer (saved with the weights).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..checks import check_int


class MinibatchDiscrimination(nn.Module):
    """``f (N, A) -> [f, o(f)] (N, A + B)`` with ``B = kernels`` batch features per sample.

    A learned tensor T (A x B x C) maps each feature row to B rows of length C, M_i = f_i T.
    Closeness of samples i and j in kernel b is c_b(i, j) = exp(-||M_i,b - M_j,b||_1), and

        o(x_i)_b = sum_{j != i} c_b(x_i, x_j).

    A varied batch gives o near 0; a batch of N identical samples gives o = N - 1 in every
    kernel, the signature of collapse that D can learn to reject. (Salimans et al. sum over all
    j, adding a constant 1; leaving out j = i makes the signature exact.) Cost: O(N^2 B C).
    """

    def __init__(self, in_features: int, kernels: int = 8, kernel_dim: int = 4):
        super().__init__()
        self.in_features = check_int(in_features, "in_features")
        self.kernels = check_int(kernels, "kernels")
        self.kernel_dim = check_int(kernel_dim, "kernel_dim")
        self.T = nn.Parameter(torch.randn(in_features, kernels * kernel_dim)
                              / math.sqrt(in_features))
        self.out_features = in_features + kernels

    def batch_features(self, f: torch.Tensor) -> torch.Tensor:
        """o(f): ``(N, kernels)``, the summed closeness of each sample to the others."""
        if f.dim() != 2 or f.shape[1] != self.in_features:
            raise ValueError(f"f must have shape (N, {self.in_features}), got {tuple(f.shape)}")
        m = (f @ self.T).view(len(f), self.kernels, self.kernel_dim).transpose(0, 1)  # (B,N,C)
        l1 = torch.cdist(m, m, p=1)               # (B, N, N); ~2x faster than broadcasting
        return torch.exp(-l1).sum(2).t() - 1.0    # (N, B); the j = i term is exp(0) = 1

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return torch.cat([f, self.batch_features(f)], 1)


class MinibatchDiscriminator(nn.Module):
    """``D`` with minibatch discrimination before its head: logits of ``[f, o(f)]``.

    ``D`` must have ``features(x) -> (N', A)`` (e.g. :class:`advlab.models.MLPDiscriminator`,
    packed or not); its own head is dropped (``D.head = None``, so D is changed in place) and a
    new ``Linear(A + kernels, 1)`` judges ``[f, o(f)]``. ``features`` of the
    wrapper is ``[f, o(f)]``, the input of the new head.
    """

    def __init__(self, D: nn.Module, kernels: int = 8, kernel_dim: int = 4):
        super().__init__()
        if not callable(getattr(D, "features", None)) or not isinstance(D, nn.Module):
            raise TypeError(f"D must be an nn.Module with a features(x) method, got "
                            f"{type(D).__name__}")
        width = getattr(getattr(D, "head", None), "in_features", None)
        if width is None:
            raise TypeError("D must have a linear head (D.head.in_features) to find the width")
        D.head = None  # unused from now on: keep its weights out of the optimiser
        self.inner = D
        self.pack = getattr(D, "pack", 1)
        self.minibatch = MinibatchDiscrimination(width, kernels, kernel_dim)
        self.head = nn.Linear(self.minibatch.out_features, 1)

    def features(self, x):
        return self.minibatch(self.inner.features(x))

    def forward(self, x):
        return self.head(self.features(x)).squeeze(1)


class VirtualBatchNorm1d(nn.Module):
    """Batch norm of ``(N, F)`` rows with statistics of a reference batch plus the row itself.

    For a row x and reference rows r_1..r_n, with w = 1 / (n + 1) (as in Salimans et al.):

        mu = w x + (1 - w) mean(r),   s = w x^2 + (1 - w) mean(r^2),   var = s - mu^2,
        y = gamma (x - mu) / sqrt(var + eps) + beta.

    Call :meth:`reference` on the reference batch first (in the same forward pass, so gradients
    flow through the reference statistics too); every later call normalises each row on its own.
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = check_int(num_features, "num_features")
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self._ref: tuple[torch.Tensor, torch.Tensor, int] | None = None
        self.collecting = False

    def _normalise(self, x, mean, meansq):
        return (x - mean) * torch.rsqrt(meansq - mean ** 2 + self.eps) * self.weight + self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"x must have shape (N, {self.num_features}), got {tuple(x.shape)}")
        if self.collecting:  # the reference batch: plain batch norm, statistics kept
            mean, meansq = x.mean(0), (x ** 2).mean(0)
            self._ref = (mean, meansq, len(x))
            return self._normalise(x, mean, meansq)
        if self._ref is None:
            raise RuntimeError("VirtualBatchNorm1d needs a reference batch first: run the "
                               "network on it with collecting=True (VirtualBatchNormGenerator "
                               "does this in every forward pass)")
        ref_mean, ref_meansq, n = self._ref
        w = 1.0 / (n + 1)
        return self._normalise(x, w * x + (1 - w) * ref_mean, w * x ** 2 + (1 - w) * ref_meansq)


class VirtualBatchNormGenerator(nn.Module):
    """A generator whose ``BatchNorm1d`` layers become :class:`VirtualBatchNorm1d`.

    ``G`` is changed in place (build it with ``batch_norm=True``). The reference batch is
    ``reference_size`` latent vectors drawn once from ``seed`` and stored as a buffer. Every
    forward pass first runs G on that batch (collecting the statistics layer by layer), then on
    ``z``, where each sample is normalised with the reference statistics and itself only.
    Salimans et al. use it in the generator only: it costs a second forward pass.
    """

    def __init__(self, G: nn.Module, reference_size: int = 64, *, seed: int = 0):
        super().__init__()
        z_dim = getattr(G, "z_dim", None)
        if not isinstance(G, nn.Module) or z_dim is None:
            raise TypeError(f"G must be an nn.Module with a z_dim attribute, got "
                            f"{type(G).__name__}")
        check_int(reference_size, "reference_size")
        swapped = 0
        for parent in list(G.modules()):
            for name, child in parent.named_children():
                if isinstance(child, nn.BatchNorm1d):
                    setattr(parent, name, VirtualBatchNorm1d(child.num_features, child.eps))
                    swapped += 1
        if not swapped:
            raise ValueError("G has no BatchNorm1d layer to make virtual; build it with "
                             "batch_norm=True")
        self.inner, self.z_dim = G, z_dim
        self.out_shape = getattr(G, "out_shape", None)
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("reference_z", torch.randn(reference_size, z_dim, generator=gen))
        self._vbn = [m for m in G.modules() if isinstance(m, VirtualBatchNorm1d)]

    def forward(self, z):
        for m in self._vbn:
            m.collecting = True
        try:
            self.inner(self.reference_z)
        finally:
            for m in self._vbn:
                m.collecting = False
        return self.inner(z)

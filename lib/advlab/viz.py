"""Figures used across the notebooks: image grids, curves and 2-D sample scatters, at a modest dpi."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch


def to_numpy_image(image: torch.Tensor):
    """``(C, H, W)`` in [0, 1] -> an array matplotlib can show (``(H, W)`` for one channel)."""
    image = image.detach().float().cpu().clamp(0, 1)
    return image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy()


def show_images(images: torch.Tensor, titles=None, *, ncols: int = 10, scale: float = 1.2,
                suptitle: str | None = None, cmap: str = "gray"):
    """Show a batch ``(N, C, H, W)`` in [0, 1] as a grid, one optional title per image."""
    n = len(images)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, scale * nrows + 0.3),
                             squeeze=False, dpi=72)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(to_numpy_image(images[i]), cmap=cmap, vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_curves(x, curves: dict, *, xlabel: str, ylabel: str, title: str | None = None,
                ax=None, marker: str = "o"):
    """One line per ``{label: ys}`` entry against ``x``."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2), dpi=72)
    for label, ys in curves.items():
        ax.plot(list(x), list(ys), marker=marker, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def scatter_2d(samples, centers=None, *, ax=None, title: str | None = None,
               limit: int | None = 2000, alpha: float = 0.3):
    """2-D samples as small dots, with the mixture's mode centres as red crosses."""
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 3.2), dpi=72)
    x = torch.as_tensor(samples).detach().float().cpu()
    if x.dim() != 2 or x.shape[1] != 2:
        raise ValueError(f"samples must have shape (N, 2), got {tuple(x.shape)}")
    x = x[:limit] if limit is not None else x
    ax.scatter(x[:, 0], x[:, 1], s=2, alpha=alpha)
    if centers is not None:
        c = torch.as_tensor(centers).detach().float().cpu()
        ax.scatter(c[:, 0], c[:, 1], marker="x", c="r", s=25)
    if title:
        ax.set_title(title, fontsize=9)
    ax.set_aspect("equal")
    return ax

"""Classifiers attacked in Part I. Every model maps images in [0, 1] to logits.

Which model plays which role in the course lives in :data:`advlab.train.COURSE_MODELS`.
"""

from __future__ import annotations

from torch import nn


class CNN(nn.Module):
    """Two conv / ReLU / max-pool blocks and a hidden fully connected layer.

    The default (5x5 convs with 16 and 32 channels, 100 hidden units) is the course's target
    model for 28x28 MNIST; ``features(x)`` returns the penultimate activations.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, channels=(16, 32),
                 kernel: int = 5, hidden: int = 100, classes: int = 10, dropout: float = 0.0):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"image_size must be divisible by 4, got {image_size}")
        c1, c2 = channels
        pad = kernel // 2
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, kernel, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(c2 * (image_size // 4) ** 2, hidden), nn.ReLU(),
            nn.Dropout(dropout),
        )
        self.head = nn.Linear(hidden, classes)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))


class MLP(nn.Module):
    """Flatten, then fully connected ReLU layers; ``features(x)`` is the last hidden layer."""

    def __init__(self, in_features: int = 784, hidden=(256, 256), classes: int = 10,
                 dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, classes)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))


class Linear(nn.Module):
    """A softmax (multinomial logistic) classifier: logits = W x + b."""

    def __init__(self, in_features: int = 784, classes: int = 10):
        super().__init__()
        self.head = nn.Linear(in_features, classes)

    def features(self, x):
        return x.flatten(1)

    def forward(self, x):
        return self.head(x.flatten(1))


ARCHITECTURES = {"cnn": CNN, "mlp": MLP, "linear": Linear}


def make_classifier(arch: str, **kwargs) -> nn.Module:
    """Build a classifier by name (``"cnn"``, ``"mlp"``, ``"linear"``) with keyword settings."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)}, got {arch!r}")
    return ARCHITECTURES[arch](**kwargs)

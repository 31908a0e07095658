"""AC-GAN (Odena et al. 2017): both networks see class labels; D also classifies.

G gets ``(z, c)`` with c drawn uniformly; D returns ``(adversarial logits, class logits)``. On top
of the adversarial loss, with ``L_C = cross-entropy(class logits, c)``:

* D minimises L_C on real images (their true labels) and, in the paper, on fakes (their
  conditioning labels) too;
* G minimises L_C on its fakes: it must make images that D's class head files under ``c``.

:class:`ACGANClassLoss` is that, as a trick of :class:`advlab.gan.GANTrainer`. With
``d_on_fake=False`` D's class head learns from real images only: early fakes are noise, and
learning to classify them lets D and G agree on any labelling at all (a permutation of the
digits, or one image per class), which is what the paper's version did in our runs.

:func:`nll_on_softmax` is a bug from a published AC-GAN implementation (EricTay1997/AC-GAN_CIFAR10,
the one the course notes cite), kept for notebook 12:
``NLLLoss`` expects log-probabilities, so on softmax probabilities it returns ``-p_c`` (negative,
bounded in [-1, 0]) and its gradient vanishes exactly where the prediction is confidently wrong.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..checks import check_int, check_number
from .tricks import Trick


def class_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``-mean log softmax(logits)[label]``: cross-entropy on logits (the correct class loss)."""
    if logits.dim() != 2 or labels.shape != (len(logits),):
        raise ValueError(f"logits must be (N, classes) and labels (N,), got "
                         f"{tuple(logits.shape)} and {tuple(labels.shape)}")
    return F.cross_entropy(logits, labels)


def nll_on_softmax(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The bug: ``NLLLoss(softmax(logits), labels) = -mean p_label``. Do not train with it."""
    return F.nll_loss(F.softmax(logits, dim=1), labels)


class ACGANClassLoss(Trick):
    """Conditional latent and the auxiliary class loss, added to D's and G's losses.

    ``latent`` draws one label per sample from the loop's generator and calls G(z, labels);
    ``d_loss`` adds ``weight * L_C`` on real images (and on fakes with ``d_on_fake=True``);
    ``g_loss`` adds ``weight * L_C`` on the fakes. ``loss`` swaps the class loss (notebook 12
    passes :func:`nll_on_softmax` to show the bug).
    """

    def __init__(self, classes: int = 10, *, weight: float = 1.0, d_on_fake: bool = False,
                 loss=class_loss):
        check_int(classes, "classes", low=2)
        check_number(weight, "weight", low=0)
        if not callable(loss):
            raise TypeError(f"loss must be callable(logits, labels), got {type(loss).__name__}")
        self.classes, self.weight, self.d_on_fake, self.loss = classes, float(weight), \
            bool(d_on_fake), loss

    def latent(self, z, ctx):
        labels = torch.randint(self.classes, (len(z),), generator=ctx.generator, device=z.device)
        return z, labels

    @staticmethod
    def _class_logits(out):
        if not isinstance(out, tuple) or len(out) != 2:
            raise TypeError("D must return (adversarial logits, class logits) for the AC-GAN "
                            "class loss, e.g. advlab.gan.nets.ACGANDiscriminator")
        return out[1]

    def d_loss(self, loss, ctx):
        if ctx.real_labels is None:
            raise ValueError("data must be labelled for the AC-GAN class loss: pass an ImageSet "
                             "or an (images, labels) pair")
        extra = self.loss(self._class_logits(ctx.d_real), ctx.real_labels)
        if self.d_on_fake:
            extra = extra + self.loss(self._class_logits(ctx.d_fake), ctx.z[1])
        return loss + self.weight * extra

    def g_loss(self, loss, ctx):
        return loss + self.weight * self.loss(self._class_logits(ctx.d_fake_g), ctx.z[1])

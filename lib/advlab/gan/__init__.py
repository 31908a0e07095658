"""Generative adversarial networks: named losses, pluggable tricks and one training loop.

    from advlab.gan import GANTrainer
    trainer = GANTrainer(G, D, data, loss="non-saturating", lr_g=1e-3, lr_d=1e-3)
    history = trainer.train(5000)

* :mod:`advlab.gan.losses`: the registry of losses (``"minimax"`` / ``"saturating"``,
  ``"non-saturating"``, ``"wasserstein"``), :func:`register_loss` to add one, and the
  gradient penalty.
* :mod:`advlab.gan.tricks`: the hooks a trick can use, when the loop calls them, the
  improved-training tricks (layers they need in :mod:`advlab.gan.layers`) and
  :class:`~advlab.gan.tricks.TrickSet`, their switchboard.
* :mod:`advlab.gan.train`: :class:`GANTrainer`, :func:`train_gan`, :class:`GANDivergedError`.
* :mod:`advlab.gan.nets`: DCGAN, AC-GAN and WGAN critic networks; :mod:`advlab.gan.wgan`
  (weight clipping and the gradient penalty as tricks), :mod:`advlab.gan.acgan` (class loss),
  :mod:`advlab.gan.pretrained` (the generators shipped as package data in
  ``advlab/gan/weights/``); :mod:`advlab.gan.divergence` (D trained alone between two fixed
  distributions); :mod:`advlab.gan.toy` (cached 2-D runs for the ablation in notebook 10).
"""

from .losses import LOSSES, GANLoss, get_loss, register_loss
from .train import GANDivergedError, GANTrainer, Step, train_gan
from .tricks import Trick

__all__ = ["LOSSES", "GANDivergedError", "GANLoss", "GANTrainer", "Step", "Trick", "get_loss",
           "register_loss", "train_gan"]

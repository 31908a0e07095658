"""advlab: the tested library behind the adversarial machine learning course.

``import advlab`` gives the runtime helpers at top level; the rest lives in submodules:
``advlab.data``, ``advlab.models``, ``advlab.checkpoints``, ``advlab.train``, ``advlab.viz``.
"""

from .runtime import data_dir, device, pick, profile, seed_everything

__version__ = "0.1.0"

__all__ = ["data_dir", "device", "pick", "profile", "seed_everything", "__version__"]

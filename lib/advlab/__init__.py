"""advlab: the tested library behind the adversarial machine learning course.

``import advlab`` gives the runtime helpers at top level (device, course seed, profile, data
folder, headline numbers and self-checks); the rest lives in submodules: ``advlab.data``,
``advlab.models``, ``advlab.checkpoints``, ``advlab.train``, ``advlab.attacks``,
``advlab.defenses``, ``advlab.metrics``, ``advlab.viz``, ``advlab.gan`` and
``advlab.exercises`` (the checks behind the notebooks' exercises).
"""

__version__ = "0.2.0"

from .runtime import (  # noqa: E402
    course_seed,
    data_dir,
    derive_seed,
    device,
    expect,
    generator,
    headline,
    pick,
    profile,
    seed_everything,
    setup,
    smoke_scale,
    threads,
    versions,
)

__all__ = [
    "__version__",
    "course_seed",
    "data_dir",
    "derive_seed",
    "device",
    "expect",
    "generator",
    "headline",
    "pick",
    "profile",
    "seed_everything",
    "setup",
    "smoke_scale",
    "threads",
    "versions",
]

"""The checks behind the notebooks' exercises, each comparing your function with the library's.

Each check runs your function on seeded inputs, compares it with the library's reference and says
in words what differs (shape, dtype, which element and by how much), raising
:class:`ExerciseError`; a passed check prints a line starting with ✓.

``check_<name>(your_function)`` is the check of one exercise; :func:`choose` lets the cells after
an exercise use your function once it passed, and the library's reference until then.
"""

from . import _nb00_03, _nb04_07, _nb08_10, _nb11_14
from ._core import ExerciseError, call, choose, compare, has_passed, passed
from ._nb00_03 import *  # noqa: F403
from ._nb04_07 import *  # noqa: F403
from ._nb08_10 import *  # noqa: F403
from ._nb11_14 import *  # noqa: F403

__all__ = ["ExerciseError", "call", "choose", "compare", "has_passed", "passed",
           *_nb00_03.__all__, *_nb04_07.__all__, *_nb08_10.__all__, *_nb11_14.__all__]

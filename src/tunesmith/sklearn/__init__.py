"""scikit-learn face: :class:`TunedSearchCV`, a drop-in for ``GridSearchCV``.

Needs scikit-learn: ``pip install 'tunesmith[sklearn]'``.
"""

from __future__ import annotations

import re

try:
    import sklearn
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError("tunesmith.sklearn needs scikit-learn: pip install 'tunesmith[sklearn]'") from None

# sklearn.utils.get_tags: an older scikit-learn (the importance extra allows 1.3) failed with
# "cannot import name 'get_tags'"
if tuple(int(n) for n in re.findall(r"\d+", sklearn.__version__)[:2]) < (1, 6):
    raise ImportError(f"tunesmith.sklearn needs scikit-learn >= 1.6, this is {sklearn.__version__}: "
                      "pip install -U 'tunesmith[sklearn]'")

from .search import TunedSearchCV
from .space import SearchSpace, as_search_space

__all__ = ["SearchSpace", "TunedSearchCV", "as_search_space"]

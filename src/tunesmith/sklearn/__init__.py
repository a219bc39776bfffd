"""scikit-learn face: :class:`TunedSearchCV`, a drop-in for ``GridSearchCV``.

Needs scikit-learn: ``pip install 'tunesmith[sklearn]'``.
"""

from __future__ import annotations

try:
    import sklearn  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError("tunesmith.sklearn needs scikit-learn: pip install 'tunesmith[sklearn]'") from None

from .search import TunedSearchCV
from .space import SearchSpace, as_search_space

__all__ = ["SearchSpace", "TunedSearchCV", "as_search_space"]

"""scikit-learn face: :class:`TunedSearchCV`, a drop-in for ``GridSearchCV``.

Needs scikit-learn: ``pip install 'tunesmith[sklearn]'``.
"""

from __future__ import annotations

from ..integrations._common import check_floor

try:
    import sklearn
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError("tunesmith.sklearn needs scikit-learn: pip install 'tunesmith[sklearn]'") from None

# sklearn.utils.get_tags: an older scikit-learn (the importance extra allows 1.4.2) failed with
# "cannot import name 'get_tags'"
check_floor(sklearn, (1, 6), extra="sklearn", what="tunesmith.sklearn")

from .search import TunedSearchCV  # noqa: E402 - after the check above
from .space import SearchSpace, as_search_space  # noqa: E402

__all__ = ["SearchSpace", "TunedSearchCV", "as_search_space"]

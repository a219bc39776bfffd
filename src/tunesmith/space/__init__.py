"""Search spaces: parameters with scales, steps, conditions and encodings."""

from .params import Categorical, Fixed, Float, Int, Param, Prior
from .space import Config, Dim, Space, display_names, for_display, value_labels

__all__ = ["Categorical", "Config", "Dim", "Fixed", "Float", "Int", "Param", "Prior", "Space", "display_names", "for_display", "value_labels"]

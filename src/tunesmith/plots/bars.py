"""Data of the importance bars: each parameter's share, with its band."""

from __future__ import annotations

from typing import Any

from ..importance import Importances, method_name
from ..space import display_names
from .records import Chart, Series, group_color, nothing, snapshot


def importance_bars(source: Any, *, method: str = "fanova", pairs: int = 3, seed: int = 0) -> Chart:
    """Horizontal bars of the main effects (largest on top) and the ``pairs`` largest
    interactions, each with its band (one standard deviation). ``source``: an
    :class:`~tunesmith.importance.Importances`, or a Study (computed here with ``method``)."""
    shown: dict[str, str] = {}
    if isinstance(source, Importances):
        imp, name = source, ""
    else:
        s = snapshot(source)
        name, shown = f"{s.name}: ", display_names(s.space)
        method = method_name(method)  # a misspelt method is the caller's error, not a note in the chart
        try:
            imp = source.importance(method, seed=seed) if hasattr(source, "importance") else _compute(s, method, seed)
        except (ValueError, ImportError) as exc:
            return nothing("importance", f"{name}importance", str(exc))
    effects = [*imp.main, *imp.interactions[:pairs]]
    title = f"{name}importance ({imp.method}, {imp.n_trials} complete trials)"
    if imp.note:  # bars all of length 0 would read as "nothing matters"
        return nothing("importance", title, imp.note)
    labels = [" × ".join(shown.get(n, n) for n in e.names) for e in reversed(effects)]
    series = Series(None, [e.fraction for e in reversed(effects)], labels, mode="bars", color=group_color(0),
                    error=[e.std for e in reversed(effects)], gid="bars")
    return Chart("importance", title, "fraction" if imp.method == "fanova" else "share of the divergence", "",
                 (series,))


def _compute(s: Any, method: str, seed: int) -> Importances:
    from ..importance import importance

    return importance(list(s.trials), s.space, method=method, direction=s.direction, seed=seed)

"""Plots of a study with matplotlib (``pip install 'tunesmith[plots]'``).

    from tunesmith import plots
    ax = plots.learning_curves(study)   # every trial's reports by step, coloured by state
    ax.figure.savefig("curves.png")
    plots.history(study)                # each trial's value by number, and the best so far

Both read only the study's records (any storage, any worker's trials), take an
``ax`` to draw into (else a new figure), and return the Axes. From the shell:
``tunesmith plot NAME --storage URL --kind curves -o curves.png``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .study import Study
from .trial import FrozenTrial, TrialState

#: colour of each trial state (a colour-blind-safe palette)
STATE_COLORS = {
    TrialState.COMPLETE: "#0072B2",
    TrialState.PRUNED: "#999999",
    TrialState.PAUSED: "#E69F00",
    TrialState.RUNNING: "#009E73",
    TrialState.FAILED: "#D55E00",
    TrialState.WAITING: "#CC79A7",
}


def learning_curves(study: Study, ax: Any = None, *, log_y: bool = False) -> Any:
    """Each trial's intermediate reports against their step, coloured by state.

    A pruned trial ends in an "x" and a paused one in a circle (where it waits); the
    best complete trial is drawn thicker; the pruner's rungs (ASHA, SH, Hyperband's
    first bracket) are dotted vertical lines.
    """
    ax = _axes(ax)
    every = study.trials  # one read of the storage
    trials = [t for t in every if t.intermediate]
    best = _best_number(every, study.direction.sign())
    counts = Counter(t.state for t in trials)
    labelled: set[TrialState] = set()
    for t in trials:
        steps = sorted(t.intermediate)
        values = [t.intermediate[s] for s in steps]
        color = STATE_COLORS[t.state]
        label = None if t.state in labelled else f"{t.state.value} ({counts[t.state]})"
        labelled.add(t.state)
        ax.plot(steps, values, color=color, lw=2.5 if t.number == best else 1.0,
                alpha=1.0 if t.state is not TrialState.PRUNED else 0.6, zorder=3 if t.number == best else 2,
                label=label, gid=f"trial-{t.number}")
        end = {TrialState.PRUNED: "x", TrialState.PAUSED: "o"}.get(t.state)
        if end:
            ax.plot(steps[-1:], values[-1:], end, color=color, mfc="none", ms=6)
    if trials:
        for step in _rungs(study, max(max(t.intermediate) for t in trials)):
            ax.axvline(step, color="#555555", ls=":", lw=0.8, zorder=1)
    title = f"{study.name}: learning curves of {len(trials)} trials"
    return _label(ax, "step", "reported value", title, log_y, legend=bool(trials))


def history(study: Study, ax: Any = None, *, log_y: bool = False) -> Any:
    """Each finished trial's value by trial number (pruned: their last report, in grey),
    and the best complete value so far as a step line."""
    ax = _axes(ax)
    sign = study.direction.sign()
    every = study.trials  # one read of the storage
    done = [t for t in every if t.value is not None and t.state.is_finished]
    for state in (TrialState.COMPLETE, TrialState.PRUNED):
        some = [t for t in done if t.state is state]
        if some:
            ax.plot([t.number for t in some], [t.value for t in some], "o" if state is TrialState.COMPLETE else "x",
                    color=STATE_COLORS[state], ms=4, label=f"{state.value} ({len(some)})")
    xs, ys, best = [], [], None
    for t in sorted(done, key=lambda t: t.number):
        if t.state is TrialState.COMPLETE and (best is None or sign * float(t.value) < sign * best):  # type: ignore[arg-type]
            best = float(t.value)  # type: ignore[arg-type]
        if best is not None:
            xs.append(t.number)
            ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="#000000", lw=1.5, label="best so far", gid="best-so-far")
    title = f"{study.name}: {len(done)} finished of {len(every)} trials"
    return _label(ax, "trial", f"value ({study.direction.value})", title, log_y, legend=bool(done))


def _label(ax: Any, x: str, y: str, title: str, log_y: bool, legend: bool) -> Any:
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)
    if log_y:
        ax.set_yscale("log")
    if legend:
        ax.legend(loc="best", fontsize="small")
    return ax


def _axes(ax: Any) -> Any:
    if ax is not None:
        return ax
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("tunesmith.plots needs matplotlib: pip install 'tunesmith[plots]'") from exc
    return plt.subplots(figsize=(7, 4.5))[1]


def _best_number(trials: list[FrozenTrial], sign: float) -> int | None:
    """The number of Study.best_trial, from trials already read."""
    done = [t for t in trials if t.state is TrialState.COMPLETE]
    return min(done, key=lambda t: (sign * float(t.value), t.number)).number if done else None  # type: ignore[arg-type]


def _rungs(study: Study, upto: int) -> list[int]:
    rung_steps = getattr(study.pruner, "rung_steps", None)
    return list(rung_steps(upto)) if rung_steps is not None else []


__all__ = ["STATE_COLORS", "history", "learning_curves"]

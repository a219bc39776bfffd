"""Focus on what matters: a new study in the space of the parameters that matter.

The parameters that are not kept are fixed at the best trial's values
(:meth:`Space.fix <tunesmith.space.Space.fix>`), and the old study's complete
trials are carried into the new one, so its sampler starts from what is known:

- ``carry="all"`` (default): every complete trial whose kept parameters form a
  configuration of the new space (a trial whose branch the fixing switched off is
  left out). Its value was measured at its own values of the fixed parameters,
  so it is exact only where those equal the best's; with parameters that truly
  do not matter that is what the model needs. The best trial comes first, so the
  new study's best is the old best until a new trial beats it.
- ``carry="exact"``: only the trials whose fixed parameters equal the best's (the
  best trial itself at least): every carried value is a value of the new space.
- ``carry="none"``: a fresh study in the narrowed space.

Each carried trial keeps its attributes and records where it came from in
``attrs["focus_source"]`` (``{"study": name, "number": n, "exact": bool}``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..importance import Importances
from ..space import Space, for_display
from ..space.narrow import dropped
from ..space.params import did_you_mean_each, plural
from ..storage import Storage
from ..trial import FrozenTrial, TrialState, ranked

if TYPE_CHECKING:
    from .study import Study

logger = logging.getLogger("tunesmith")

CARRY = ("all", "exact", "none")


@dataclass(frozen=True)
class FocusPlan:
    """What focusing does: the narrowed space, the values fixed, the trials carried.

    ``keep``: the free parameters of the new space; ``fixed``: the parameters fixed
    and their values; ``dropped``: parameters that can never be active in the new
    space (a branch the fixing switched off); ``carried``: the old trials as they
    enter the new study (params projected, best first); ``skipped``: complete trials
    not carried; ``importance``: each parameter's total importance (main effect plus
    its pairs), when ``threshold`` chose what to keep.
    """

    space: Space
    keep: tuple[str, ...]
    fixed: Mapping[str, Any]
    dropped: tuple[str, ...]
    carried: tuple[FrozenTrial, ...]
    skipped: int
    importance: Mapping[str, float] = field(default_factory=dict)

    def summary(self, source: str) -> str:
        shown = ", ".join(f"{_printable(k)}={v!r}" for k, v in for_display(self.fixed).items())  # stored: every bit
        gone = f"; dropped (never active now): {list(self.dropped)}" if self.dropped else ""
        return (f"focus on {list(self.keep)} of study {source!r}: fixed {shown or 'nothing'}{gone}; "
                f"carried {plural(len(self.carried), 'trial')}"
                + (f" ({plural(self.skipped, 'complete trial')} not carried)" if self.skipped else ""))


def _printable(name: str) -> str:
    """A stored parameter name as printed: control characters as escapes (``\\x1b``), so a
    name written into a shared database cannot drive the terminal of whoever focuses it."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


def plan_focus(
    study: Study,
    *,
    keep: Sequence[str] | None = None,
    threshold: float | None = None,
    carry: str = "all",
    method: str = "fanova",
    seed: int = 0,
) -> FocusPlan:
    """The :class:`FocusPlan` of :meth:`Study.focus <tunesmith.Study.focus>` (nothing is written)."""
    if carry not in CARRY:
        raise ValueError(f"carry must be one of {list(CARRY)}, got {carry!r}")
    _check_request(keep, threshold)
    complete = best_first(study)
    if not complete:
        raise ValueError(f"study {study.name!r} has no complete trial yet: focus fixes parameters at the best "
                         "trial's values, so run some trials first")
    best = complete[0]
    scores: dict[str, float] = {}
    if keep is None:
        imp = study.importance(method, seed=seed)
        if imp.note:  # every share 0 (the value never varied, or PED-ANOVA's good trials stand out in nothing):
            # no threshold can choose (rather than "the largest: x at 0.000")
            raise ValueError(f"focus by importance cannot choose: {imp.note}; name the parameters with keep=[...]")
        scores = total_importance(imp)
    names = _chosen(study.space, keep, threshold, scores)
    space, fixed = _narrowed(study.space, names, complete)
    kept = tuple(n for n in space.free)
    lost = tuple(n for n in names if n not in kept)
    if lost and keep is not None:
        raise ValueError(f"cannot keep {list(lost)}: at the best trial's values of the fixed parameters they are "
                         f"never active ({_needs(study.space, lost)}); keep their parents too")
    if not fixed:
        logger.warning("focus of study %r keeps every parameter (%s): the new study searches the same space; "
                       "raise the threshold or keep fewer to narrow it (study.copy() copies a study)",
                       study.name, f"threshold={threshold:g}" if keep is None else "all named")
    carried = _carried(space, fixed, [best, *sorted(complete[1:], key=lambda t: t.number)], carry, study.name)
    return FocusPlan(space, kept, fixed, tuple(dropped(study.space, space)), carried,
                     len(complete) - len(carried), scores)


def total_importance(imp: Importances) -> dict[str, float]:
    """Each parameter's main effect plus every pair it belongs to (fANOVA's pairs)."""
    total = dict(imp.fractions)
    for e in imp.interactions:
        for n in e.names:
            total[n] = total.get(n, 0.0) + max(e.fraction, 0.0)
    return total


def _check_request(keep: Sequence[str] | None, threshold: float | None) -> None:
    if (keep is None) == (threshold is None):
        raise ValueError("focus needs keep=[names] or threshold=<importance>, one of the two")
    if threshold is not None and not 0 <= threshold < 1:
        raise ValueError(f"threshold is a fraction of the importance in [0, 1), got {threshold!r}")


def _chosen(space: Space, keep: Sequence[str] | None, threshold: float | None,
            scores: Mapping[str, float]) -> list[str]:
    if keep is not None:
        return _checked_keep(space, keep)
    assert threshold is not None
    names = [n for n in space.free if scores.get(n, 0.0) >= threshold]
    if not names:
        top = max(scores.items(), key=lambda kv: kv[1], default=("-", 0.0))
        raise ValueError(f"no parameter has importance >= {threshold} (the largest: {top[0]} at {top[1]:.3f}); "
                         "lower the threshold or name the parameters with keep=[...]")
    return names


def _checked_keep(space: Space, keep: Sequence[str]) -> list[str]:
    if isinstance(keep, str):
        raise TypeError(f"keep is a list of parameter names, got the string {keep!r}; write keep=[{keep!r}]")
    unknown = [n for n in keep if n not in space]
    if unknown:
        hint = did_you_mean_each(unknown, list(space.free))
        raise ValueError(f"keep names unknown parameter(s) {unknown}{hint}; the space's free parameters are "
                         f"{list(space.free)}")
    constant = [n for n in keep if n not in space.free]
    if constant:
        raise ValueError(f"keep names fixed parameter(s) {constant}: they are constants already; the free ones "
                         f"are {list(space.free)}")
    if not keep:
        raise ValueError(f"keep names no parameter; name at least one of {list(space.free)}")
    return list(dict.fromkeys(keep))


def _narrowed(space: Space, keep: Sequence[str], complete: Sequence[FrozenTrial]) -> tuple[Space, dict[str, Any]]:
    """The space with every free parameter not in ``keep`` fixed at the best trial's
    value. One inactive in the best trial that can still be active (its parent is
    kept) is fixed at its value in the best trial where it was active; kept free
    if it never was. ``complete``: the complete trials, best first."""
    best = complete[0]
    first = {n: best.params[n] for n in space.free if n not in keep and n in best.params}
    narrowed = space.fix(first)
    later: dict[str, Any] = {}
    for n in narrowed.free:
        if n in keep:
            continue
        source = next((t for t in complete if n in t.params), None)  # ``complete`` is best first
        if source is not None:
            later[n] = source.params[n]
    narrowed = narrowed.fix(later) if later else narrowed
    fixed = {n: v for n, v in {**first, **later}.items() if n in narrowed}
    return narrowed, fixed


def _needs(space: Space, names: Sequence[str]) -> str:
    return "; ".join(f"{n} needs {dict(space[n].when)}" for n in names)


def _carried(space: Space, fixed: Mapping[str, Any], trials: Sequence[FrozenTrial], carry: str,
             source: str) -> tuple[FrozenTrial, ...]:
    if carry == "none":
        return ()
    out = []
    for t in trials:
        exact = all(_same_value(t.params.get(n), v) for n, v in fixed.items())
        params = _projected(space, t.params)
        if params is None or (carry == "exact" and not exact):
            continue
        attrs = {**t.attrs, "focus_source": {"study": source, "number": t.number, "exact": exact}}
        out.append(t.replace(params=params, attrs=attrs))
    return tuple(out)


def _projected(space: Space, params: Mapping[str, Any]) -> dict[str, Any] | None:
    """``params`` as a configuration of ``space`` (fixed values filled in), or None when
    the trial's kept parameters are not one (another branch was active)."""
    try:
        return space.validate({n: v for n, v in params.items() if n in space.free})
    except ValueError:
        return None


def _same_value(a: Any, b: Any) -> bool:
    return a is not None and bool(a == b)


def best_first(study: Study) -> list[FrozenTrial]:
    """The complete trials, best first, as ``best_trial`` ranks them."""
    return ranked(study.trials_in(TrialState.COMPLETE), study.direction)


def focus_study(
    study: Study,
    *,
    keep: Sequence[str] | None,
    threshold: float | None,
    name: str | None,
    storage: str | Storage | None,
    carry: str,
    method: str,
    seed: int | None,
    log: bool = True,
) -> tuple[Study, FocusPlan]:
    """Create the focused study and carry the trials (:meth:`Study.focus`); ``log=False`` leaves
    the plan's summary to the caller (the CLI prints it)."""
    from ..exceptions import DuplicateStudyError
    from ..storage import make_storage
    from .manage import COPY_ID, check_sampler_fits, exists, known_result
    from .study import Study

    new_name = name or f"{study.name}-focus"
    if keep is not None:  # a misspelt name first: it would still be wrong under the --to NEW the next check asks for
        _checked_keep(study.space, keep)
    target = study.storage if storage is None else make_storage(storage)
    if exists(target, new_name):  # checked first: a focus is not resumed, and Study's hint (load_if_exists) is not focus's
        raise DuplicateStudyError(
            f"a study named {new_name!r} already exists in {target.display_url}: focus into another name "
            f"(name=..., on the command line --to NEW), or continue that study: Study.load({new_name!r}, storage)"
        )
    plan = plan_focus(study, keep=keep, threshold=threshold, carry=carry, method=method,
                      seed=0 if seed is None else seed)
    check_sampler_fits(study, plan.space, "focus")  # a grid's points for a parameter focus drops
    carried = [known_result(plan.space, t.params, t.value, state=TrialState.COMPLETE, intermediate=t.intermediate,
                            attrs=t.attrs, error=None, started=t.started, completed=t.completed) for t in plan.carried]
    # created with the carried trials in one write: an empty focus (Ctrl-C, a full disk, a process killed) would
    # take the name a second try needs; under the name of the study in another storage, its checkpoints stay apart
    Study(plan.space, direction=study.direction, sampler=study.sampler.describe(), pruner=study.pruner.describe(),
          seed=seed, name=new_name, storage=target, load_if_exists=False, _settings={COPY_ID: uuid.uuid4().hex},
          _trials=carried)
    if log:
        logger.info("%s", plan.summary(study.name))
    # opened anew, as a copy is: its sampler's stream follows the carried trials (session = their count),
    # where the object made empty drew the parent's first trial again
    return Study(storage=target, name=new_name), plan

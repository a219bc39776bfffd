"""Which hyperparameters matter: pure functions from trial records and a space to importances.

    from tunesmith.importance import importance
    imp = importance(study.trials, study.space, method="fanova", direction=study.direction)
    imp.fractions            # {"lr": 0.61, "batch_size": 0.22, ...}, largest first
    imp.interactions         # pairs (fANOVA only)

Two methods:

- ``"fanova"``: the share of the objective's variance over the whole space that each
  parameter explains alone (main effect) and each pair explains together beyond
  their main effects, on a random-forest model of the trials, computed exactly over
  the trees' partitions; the band is the spread over the trees.
- ``"ped-anova"``: among the good trials (best ``target_quantile``), how far each
  parameter's values are from its spread over all trials; the band is the spread
  over bootstrap resamples.

Only complete trials count (a failed trial has no value; a pruned one stopped at a
smaller budget). Importances are measured on each parameter's own scale: uniform in
log for a log parameter, over the choices for a categorical; where a conditional
parameter is inactive it does not matter, and its parent carries the difference
that switching it off makes (see :mod:`.data`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..space import Space
from ..space.params import check_seed, did_you_mean, plural
from ..trial import Direction, FrozenTrial
from .data import MIN_TRIALS, Design, design, left_out_text, param_names
from .fanova import FanovaOptions, fanova
from .ped_anova import PedAnovaOptions, ped_anova, sizes

METHODS = ("fanova", "ped-anova")


@dataclass(frozen=True)
class Effect:
    """The importance of one parameter (``names`` of length 1) or a pair: its fraction
    and the band's half-width (a standard deviation)."""

    names: tuple[str, ...]
    fraction: float
    std: float

    @property
    def label(self) -> str:
        """"a × b" for a pair: " x " read as a parameter when one is named x ("x x y")."""
        return " × ".join(self.names)


@dataclass(frozen=True)
class Importances:
    """The result: main effects (largest first), pairs (fANOVA), what was used."""

    method: str
    main: tuple[Effect, ...]
    interactions: tuple[Effect, ...] = ()
    n_trials: int = 0
    left_out: Mapping[str, int] = field(default_factory=dict)
    note: str = ""  # why every fraction is 0: the value never varied, or no parameter set the good trials apart

    @property
    def fractions(self) -> dict[str, float]:
        return {e.names[0]: e.fraction for e in self.main}

    def __getitem__(self, name: str) -> float:
        fractions = self.fractions
        if name not in fractions:
            raise KeyError(f"{name!r} was not measured{did_you_mean(name, list(fractions))}; "
                           f"the parameters measured are {list(fractions)}")
        return fractions[name]

    def __str__(self) -> str:
        """A plain-text table, as ``tunesmith importance`` prints it: ``print(imp)`` gave the dataclass's
        one line of every Effect, all 21 pairs of 7 parameters among them."""
        left = left_out_text(self.left_out)
        head = f"importance ({self.method}, {self.n_trials} complete trials{'; left out: ' + left if left else ''})"
        effects = [*self.main, *self.interactions[:5]]
        width = max((columns(e.label) for e in effects), default=0)
        rows = [f"  {e.label}{' ' * (width - columns(e.label))}  {e.fraction:.3f} ± {e.std:.3f}" for e in effects]
        more = len(self.interactions) - 5
        return "\n".join([head, *rows, *([f"  ... {plural(more, 'more pair')} in .interactions"] if more > 0 else []),
                          *([self.note] if self.note else [])])

    def to_dict(self) -> dict[str, object]:
        return {
            "method": self.method, "n_trials": self.n_trials, "left_out": dict(self.left_out), "note": self.note,
            "main": [{"param": e.names[0], "fraction": e.fraction, "std": e.std} for e in self.main],
            "interactions": [{"params": list(e.names), "fraction": e.fraction, "std": e.std}
                             for e in self.interactions],
        }


def columns(text: str) -> int:
    """The columns ``text`` takes in a terminal, as rich and wcwidth measure it: two for a wide character
    (CJK, a Hangul syllable's leading consonant, the I Ching's hexagrams), none for a combining mark (a
    spacing one, Devanagari's U+093E, included: it draws on its letter's column), a zero-width character, a
    decomposed Hangul syllable's vowel and final consonant (they join the leading one's two columns), a
    Hangul filler or an emoji's skin tone (it joins the emoji), one for the rest: a soft hyphen and the
    Arabic number signs (U+0600-U+0605) included, which terminals print (``len`` misaligned names with any of
    these). Printable ASCII is one column a character, counted at once (a character at a time, an HTML slice's
    check of 50,000 choices took most of its time: benchmarks/bench_slice_choices.py)."""
    if text.isascii() and text.isprintable():
        return len(text)
    return sum(_columns(c) for c in text)


#: the characters of no column of their own beside the marks: decomposed Hangul's vowels and final consonants
#: (Hangul Jamo, Jamo Extended-B), the Hangul fillers, the emoji skin-tone modifiers
_JOINING = ((0x1160, 0x11FF), (0xD7B0, 0xD7FF), (0x3164, 0x3164), (0xFFA0, 0xFFA0), (0x1F3FB, 0x1F3FF))
#: format characters (Cf) a terminal prints, one column each: the soft hyphen, the prepended number signs
_PRINTED = ((0xAD, 0xAD), (0x600, 0x605), (0x6DD, 0x6DD), (0x70F, 0x70F), (0x890, 0x891), (0x8E2, 0x8E2),
            (0x110BD, 0x110BD), (0x110CD, 0x110CD))
#: wide since Unicode 16 (the trigrams, the hexagrams, Tai Xuan Jing, counting rods), which the unicodedata of
#: an older Python does not know
_WIDE = ((0x2630, 0x2637), (0x268A, 0x268F), (0x4DC0, 0x4DFF), (0x1D300, 0x1D356), (0x1D360, 0x1D376))


def _within(c: str, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(lo <= ord(c) <= hi for lo, hi in ranges)


def _columns(c: str) -> int:
    if _within(c, _PRINTED):
        return 1
    if (unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Mc", "Cf", "Zl", "Zp")
            or _within(c, _JOINING)):
        return 0
    return 2 if unicodedata.east_asian_width(c) in "WF" or _within(c, _WIDE) else 1


def importance(
    trials: Sequence[FrozenTrial],
    space: Space,
    *,
    method: str = "fanova",
    direction: Direction | str = Direction.MINIMIZE,
    params: Sequence[str] | None = None,
    seed: int = 0,
    options: FanovaOptions | PedAnovaOptions | None = None,
) -> Importances:
    """Importances of ``params`` (default: every free parameter) from ``trials``: measured
    with every free parameter in the model, then those of ``params`` reported (a model of
    one parameter alone gives it all the variance it can fit, 1.0 for one that does nothing).

    ``options``: :class:`FanovaOptions` or :class:`PedAnovaOptions` (defaults when None).
    Raises ValueError with fewer than :data:`MIN_TRIALS` (10) complete trials, either method.
    """
    method = method_name(method)
    wanted = None if params is None else set(param_names(space, params))
    check_seed(seed)
    d = design(trials, space, direction=direction, seed=seed)
    if method == "fanova":
        imp = _fanova(d, _options(options, FanovaOptions), seed)
    else:
        imp = _ped_anova(d, _options(options, PedAnovaOptions), seed)
    if wanted is not None:
        imp = replace(imp, main=tuple(e for e in imp.main if e.names[0] in wanted),
                      interactions=tuple(e for e in imp.interactions if wanted.issuperset(e.names)))
    if d.y.max() == d.y.min():  # all zeros, and here is why (rather than "nothing matters"); np.ptp overflows at 1.7e308
        # PED-ANOVA's good set is then the first trials by number: its divergences are the sampler's, not the objective's
        return replace(imp, main=tuple(replace(e, fraction=0.0, std=0.0) for e in imp.main),
                       interactions=tuple(replace(e, fraction=0.0, std=0.0) for e in imp.interactions),
                       note=f"the value was {_value(d.y[0], direction)} in all {len(d.y)} complete trials: "
                            "no parameter can explain a difference")
    return imp


def method_name(method: Any) -> str:
    """``method`` as :data:`METHODS` names it ("ped_anova", "PED-ANOVA": "ped-anova"), or a ValueError."""
    if isinstance(method, str) and method.lower().replace("_", "-") in METHODS:
        return method.lower().replace("_", "-")
    raise ValueError(f"unknown importance method {method!r}{did_you_mean(method, list(METHODS))}; "
                     f"choose one of {list(METHODS)}")


def _value(y: float, direction: Direction | str) -> str:
    return f"{Direction.parse(direction).sign() * y:.6g}"


def _options(given: object, kind: type) -> object:
    if given is None:
        return kind()
    if not isinstance(given, kind):
        raise TypeError(f"options for this method are a {kind.__name__}, got {type(given).__name__}")
    return given


def _fanova(d: Design, options: object, seed: int) -> Importances:
    assert isinstance(options, FanovaOptions)
    trees = fanova(d, options, seed)
    D = len(d.columns)
    if not trees:  # every tree constant: the objective did not vary
        cols = np.arange(min(D, options.max_pair_params))
        main = np.zeros((1, D))
        pairs = np.zeros((1, cols.size, cols.size))
    else:
        cols = trees[0].pair_columns  # every column, or the largest main effects (max_pair_params)
        main = np.array([t.main for t in trees])
        pairs = np.array([t.pairs for t in trees])
    effects = [Effect((n,), float(main[:, j].mean()), float(main[:, j].std())) for j, n in enumerate(d.names)]
    P = cols.size
    inter = [Effect((d.names[cols[a]], d.names[cols[b]]), float(pairs[:, a, b].mean()), float(pairs[:, a, b].std()))
             for a in range(P) for b in range(a + 1, P)
             if (min(cols[a], cols[b]), max(cols[a], cols[b])) not in d.apart] if options.pairs else []
    return Importances("fanova", _sorted(effects), _sorted(inter), len(d.y), d.left_out)


def _ped_anova(d: Design, options: object, seed: int) -> Importances:
    assert isinstance(options, PedAnovaOptions)
    point, boot = ped_anova(d, options, seed)
    frac = _normalized(point)
    spread = np.array([_normalized(b) for b in boot]).std(axis=0) if len(boot) else np.zeros_like(frac)
    effects = [Effect((n,), float(frac[j]), float(spread[j])) for j, n in enumerate(d.names)]
    return Importances("ped-anova", _sorted(effects), (), len(d.y), d.left_out, _nothing_apart(point, len(d.y), options))


def _nothing_apart(point: np.ndarray, n_trials: int, options: PedAnovaOptions) -> str:
    """Why every share is 0 when no divergence is above 0 ("" otherwise): bars of 0 would read as
    "nothing matters", where a few good trials far apart (both ends of a range) say only that
    they are too few to tell."""
    if point.max(initial=0.0) > 0:
        return ""
    region, good = sizes(n_trials, options)
    among = f"the best {region} of {n_trials}" if region < n_trials else f"{n_trials}"
    return (f"no parameter sets the best {good} of {among} complete trials apart: each is spread over them as "
            "over all; run more trials, use fanova, or raise PedAnovaOptions.target_quantile")


def _normalized(x: np.ndarray) -> np.ndarray:
    total = float(x.sum())
    return x / total if total > 0 else np.zeros_like(x)


def _sorted(effects: list[Effect]) -> tuple[Effect, ...]:
    return tuple(sorted(effects, key=lambda e: -e.fraction))


__all__ = ["METHODS", "MIN_TRIALS", "Effect", "FanovaOptions", "Importances", "PedAnovaOptions", "importance"]

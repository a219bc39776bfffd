"""Nested values: mappings, lists and tuples of plain values, as parameters and attributes hold them.

Two walks, and the rules they share:

- :func:`rebuilder` gives a function that makes a value anew, container by container (a value as JSON gives it back, a
  hashable form, NumPy scalars as Python's);
- :func:`walk` visits every container and non-plain value, with its path, depth first and in order
  (where tuples are, the first non-text key, a set inside).

Both look into mappings, lists and tuples only; a set, an array or any other object is a leaf.
Both refuse values that nest deeper than a study stores (:data:`MAX_DEPTH`) with :class:`TooDeep`,
a ValueError, rather than a RecursionError: a value read from a file or another program may nest
thousands of levels.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np

#: how many levels lists and dicts in a trial's attributes (and in any JSON column read back) may
#: nest: deeper ones ended the readers that walk them (export, the dashboard's JSON) with a RecursionError
MAX_DEPTH = 100

#: values whose exact type is one of these are plain: no NumPy scalar, container or subclass to look into
PLAIN_TYPES = frozenset({int, float, str, bool, type(None)})

Path = tuple[Any, ...]
#: a function :func:`rebuilder` makes: (value, what to call it, how deep it may nest) -> the value made anew
Rebuild = Callable[..., Any]


class TooDeep(ValueError):
    """A value whose containers nest more than ``limit`` levels, ``what`` naming it."""

    def __init__(self, what: str, limit: int) -> None:
        self.limit = limit
        super().__init__(f"{what} nests lists more than {limit} levels deep, more than a study stores; "
                         "give a flatter value")


def _items(v: Any) -> Iterable[tuple[Any, Any]] | None:
    """The (key or index, item) pairs of a mapping, list or tuple; None for anything else (a set, an array)."""
    return v.items() if isinstance(v, Mapping) else enumerate(v) if isinstance(v, (list, tuple)) else None


def walk(x: Any, limit: int = MAX_DEPTH, what: str = "value") -> Iterator[tuple[Path, Any]]:
    """Each value in ``x`` that is not plain (see :data:`PLAIN_TYPES`), with its keys and indices from the
    top: ``x`` itself first (plain or not), then the items of each mapping, list and tuple, depth first and
    in order. Walked without recursion; a :class:`TooDeep` where containers nest more than ``limit`` levels."""
    stack: list[tuple[Path, Any]] = [((), x)]
    while stack:
        at, v = stack.pop()
        yield at, v
        items = _items(v)
        if items is None:
            continue
        if len(at) >= limit:
            raise TooDeep(what, limit)
        # no path for a number: a list of 10^6 of them is passed over
        inner = [((*at, k), c) for k, c in items if type(c) not in PLAIN_TYPES]
        inner.reverse()
        stack += inner


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether lists, tuples and dicts in ``value`` nest more than ``limit`` levels (as :func:`walk` counts
    them, without its paths: a JSON column read back is checked so; a tuple is stored as a list)."""
    stack = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        items = _items(v)
        if items is not None:
            if depth >= limit:
                return True
            stack.extend((c, depth + 1) for _, c in items if type(c) not in PLAIN_TYPES)
    return False


def python_scalar(x: Any) -> Any:
    """A NumPy scalar (``np.int64(3)``, a 0-d array) as Python's; anything else as it is."""
    if isinstance(x, np.generic) or isinstance(x, np.ndarray) and x.ndim == 0:
        return x.item()
    return x


class _Deeper(Exception):
    """Raised inside a rebuild at the depth limit; the rebuild raises :class:`TooDeep`, named, in its place."""


def rebuilder(*, plain: Callable[[Any], Any] | None = None, leaf: Callable[[Any], Any] | None = None,
              mapping: Callable[[Iterable[tuple[Any, Any]]], Any] | None = dict,
              sequence: Callable[[list[Any]], Any] | None = list,
              into: tuple[type[list[Any]] | type[tuple[Any, ...]], ...] = (list, tuple)) -> Rebuild:
    """A function that makes a value anew: each mapping as ``mapping(its (key, value) pairs)`` (not looked
    into where None), each list or tuple (those of ``into``) as ``sequence(its items)`` (None: a tuple stays a
    tuple, a list a list), each plain value as ``plain(value)`` and each other one as ``leaf(value)`` (None:
    as it is). It takes the value, then what to call it and how deep it may nest (``limit`` levels of
    containers), and raises :class:`TooDeep` past that. Made once per shape: a call costs no set-up."""

    def make(v: Any, left: int) -> Any:  # left: how many more levels of containers v may hold
        cls = type(v)
        if mapping is not None and (cls is dict or isinstance(v, Mapping)):  # dict first: Mapping's check is slow
            if not left:
                raise _Deeper
            left -= 1  # a plain item made here, not in a call of its own: a mapping of 10^5 numbers
            out = ({k: c if type(c) in PLAIN_TYPES else make(c, left) for k, c in v.items()} if plain is None else
                   {k: plain(c) if type(c) in PLAIN_TYPES else make(c, left) for k, c in v.items()})
            return out if mapping is dict else mapping(out.items())
        if cls in into or isinstance(v, into):
            if not left:
                raise _Deeper
            left -= 1
            items = ([c if type(c) in PLAIN_TYPES else make(c, left) for c in v] if plain is None else
                     [plain(c) if type(c) in PLAIN_TYPES else make(c, left) for c in v])
            if sequence is None:
                return tuple(items) if isinstance(v, tuple) else items
            return items if sequence is list else sequence(items)
        return v if leaf is None else leaf(v)

    def rebuild(v: Any, what: str = "value", limit: int = MAX_DEPTH) -> Any:
        if type(v) in PLAIN_TYPES:  # most values: no isinstance of Mapping each
            return v if plain is None else plain(v)
        try:  # what and limit not passed down each call: 1.1-1.2x the time on small values
            return make(v, limit)
        except _Deeper:
            raise TooDeep(what, limit) from None

    return rebuild


def nan_inside(x: Any) -> Any:
    """The first NaN in ``x`` at any depth (never equal to itself, so a stored value holding one never
    matches the value given), or None."""
    for _, v in walk(x):
        inner: Iterable[Any] = v.values() if isinstance(v, Mapping) else v if isinstance(v, (list, tuple)) else (v,)
        for c in inner:
            if is_nan(c):
                return c
    return None


def is_nan(x: Any) -> bool:
    """Whether ``x`` is a NaN of a float, a complex number or a Decimal (NumPy's too): never equal to
    itself. A Decimal's signalling NaN is asked, not compared (its ``!=`` raises)."""
    if isinstance(x, decimal.Decimal):
        return x.is_nan()
    return isinstance(x, (float, complex, np.floating, np.complexfloating)) and x != x

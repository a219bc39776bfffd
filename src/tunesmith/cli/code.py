"""Moved to :mod:`tunesmith.code`, a layer below the faces (``compare`` in plots/ marks its runs with it too, and a
face imports no other face); kept under this name for code that imported it from here."""

from ..code import code_digest, local_modules, objective_code, read_code

__all__ = ["code_digest", "local_modules", "objective_code", "read_code"]

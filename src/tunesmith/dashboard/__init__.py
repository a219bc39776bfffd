"""A live dashboard of the studies in a storage: ``tunesmith dashboard --storage URL``.

    from tunesmith.dashboard import create_app, serve
    serve("sqlite:///tunesmith.db", port=8080)          # blocks; Ctrl-C stops it
    app = create_app(url)                                 # or an ASGI app to serve yourself

Pages: every study; one study (the report's plots, updating live while trials arrive);
one trial; importance; a comparison of studies. Large studies are reduced on the server
(a sampled or thinned plot, a paged table). Read-only unless ``allow_writes``.
Needs ``pip install 'tunesmith[dashboard]'`` (starlette, uvicorn, plotly); see docs/dashboard.md.
"""

from __future__ import annotations

from typing import Any

from .server import LOOPBACK, open_storage, serve


def create_app(storage: Any, *, allow_writes: bool = False, poll_seconds: float = 2.0, host: str | None = None) -> Any:
    """The dashboard of ``storage`` (a Storage) as a Starlette application; ``host``: the address
    it listens on (on a loopback one it answers only requests addressed to a loopback name)."""
    from .server import _require

    _require(("starlette", "plotly"))  # not a bare "No module named 'starlette'"
    from ..storage import Storage
    from .app import create_app as _create

    if isinstance(storage, str):  # a URL, as serve() takes it (else every page failed)
        storage = open_storage(storage, allow_writes=allow_writes)
    elif not isinstance(storage, Storage):
        raise TypeError(f"create_app takes a Storage or a database URL, got {type(storage).__name__} {storage!r}")
    return _create(storage, allow_writes=allow_writes, poll_seconds=poll_seconds, host=host)


__all__ = ["LOOPBACK", "create_app", "open_storage", "serve"]

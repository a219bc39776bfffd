"""The dashboard's Starlette application: pages, JSON endpoints, and the ``--allow-writes`` actions.

Pages (HTML): ``/`` studies, ``/studies/{name}`` one study (plots update live),
``/studies/{name}/trials/{number}``, ``/studies/{name}/importance``, ``/compare?study=a&study=b``.
JSON: ``/api/studies``, ``/api/studies/{name}``, ``/api/studies/{name}/changes?since=V``,
``/api/studies/{name}/plots/{kind}``, ``/api/studies/{name}/trials?offset=&limit=&state=&order=``,
``/api/studies/{name}/trials/{number}``, ``/api/studies/{name}/trials/{number}/curve``,
``/api/studies/{name}/importance?method=``, ``/api/compare?study=a&study=b``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from ..exceptions import StorageError, StudyNotFound
from ..importance import METHODS
from ..storage import Storage
from ..study.manage import study_notes
from ..trial import FrozenTrial, TrialState, as_count, json_finite
from . import figures, pages
from .aggregate import ORDERS, page, ran_for
from .cache import StudyCache, View
from .server import asked_uid, check_host, connection_ends, is_loopback, listed_uid, users_listed
from .writes import WRITE_ROUTES

MAX_PAGE = 500  # rows one trials request returns at most
MAX_FORM = 1 << 20  # bytes a posted form may have (a note, a configuration): a larger body is refused unread
STATES = tuple(s.value for s in TrialState)
MAX_POLL = (2**31 - 1) // 1000  # seconds: a browser's timer waits at most 2**31 - 1 ms and fires a longer wait at once
#: marks a "/" inside one path segment (sent as %2F) while the router splits the path: "/" is written
#: MARK + "|", and the name's own MARK (a study may be named "x\uffffy") MARK + MARK
MARK = "\uffff"


class Dashboard:
    """The state behind the routes: the storage's cache and the server's options."""

    def __init__(self, storage: Storage, *, allow_writes: bool = False, poll_seconds: float = 2.0) -> None:
        if isinstance(poll_seconds, bool) or not isinstance(poll_seconds, (int, float)) or not 0 < poll_seconds <= MAX_POLL:
            raise ValueError(f"poll_seconds must be a positive number of seconds, at most {MAX_POLL:,.0f} (a browser's "
                             f"timer fires a longer wait at once), got {poll_seconds!r}")  # 0, nan: no pause
        self.cache = StudyCache(storage)
        self.allow_writes = allow_writes
        self.poll_seconds = poll_seconds
        self.token = secrets.token_urlsafe(16)  # the write forms carry it: no other site can post them

    def view(self, name: str) -> View:
        try:
            return self.cache.view(name)
        except StudyNotFound:
            raise HTTPException(404, f"no study named {name!r} in {self.cache.storage.display_url}") from None

    def trial(self, v: View, number: str) -> FrozenTrial:
        n = as_count(number)  # no trial has "-1" ("--1", "²" or 4,301 digits: int()'s error)
        t = None if n is None else v.trial(n)
        if t is None:
            last = f"0-{len(v.trials) - 1}" if v.trials else "none yet"
            raise HTTPException(404, f"study {v.name!r} has no trial {number!r} (its trials: {last})")
        return t


def create_app(storage: Storage, *, allow_writes: bool = False, poll_seconds: float = 2.0,
               host: str | None = None) -> Starlette:
    """The dashboard of ``storage`` as an ASGI application (serve it with uvicorn). ``host``: the
    address it listens on; on a loopback one, it answers only requests addressed to a loopback name,
    and on Linux only its own user's connections (whether the system tells whose a connection is is
    asked here, not on the server's event loop at the first request). An IPv6 address may be given
    in brackets (``[::1]``); an IPv4 address written as IPv6 (``::ffff:127.0.0.1``) is refused."""
    host = None if host is None else check_host(host, "host={!r}".format)
    d = Dashboard(storage, allow_writes=allow_writes, poll_seconds=poll_seconds)
    routes = [Route(path, _bind(d, fn), methods=methods) for path, fn, methods in [*ROUTES, *WRITE_ROUTES]]
    handlers = {HTTPException: _error, ValueError: _bad_request, StorageError: _storage_error}
    middleware = [Middleware(_Headers), Middleware(_SlashesInNames)]
    if host is not None and is_loopback(host):
        middleware.insert(0, Middleware(_LoopbackNamesOnly))
        for v6 in ({False, True} if host == "localhost" else {":" in host}):  # the server's address: either
            users_listed(v6)  # once per process: a socket pair and a kernel lookup, here rather than on the loop
    app = Starlette(routes=routes, exception_handlers=handlers, middleware=middleware)
    app.state.dashboard = d
    return app


class _SlashesInNames:
    """A study name may hold "/" (``a/b``, linked as ``/studies/a%2Fb``), but the server decodes
    ``%2F`` before routing, so the name would be split into two path segments and the page not
    found. This rewrites the path from the raw one, each segment decoded once, with such a slash as
    :data:`MARK`, which the endpoint turns back into "/". A path ending in "/" is sent to the same path
    without it, as the router would, but as sent (the router's redirect went to the escaped path, which
    names another study)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        raw = scope.get("raw_path") or b""
        path = raw.split(b"?", 1)[0]
        if scope["type"] == "http" and path.endswith(b"/") and path.strip(b"/"):
            query = scope.get("query_string") or b""  # one leading "/": "//host" would leave this server
            to = b"/" + path.strip(b"/") + (b"?" + query if query else b"")
            await RedirectResponse(to.decode("utf-8", "replace"), 307)(scope, receive, send)
            return
        if scope["type"] == "http" and raw:  # every path: one sent as raw UTF-8 may hold MARK too
            segments = path.decode("utf-8", "replace").split("/")
            scope = {**scope, "path": "/".join(_hidden(unquote(s)) for s in segments)}
        await self.app(scope, receive, send)


def _hidden(segment: str) -> str:
    """A decoded path segment with its "/" (and :data:`MARK`) escaped, so that the router keeps it whole."""
    return segment.replace(MARK, MARK + MARK).replace("/", MARK + "|")


def shown_name(segment: str) -> str:
    """The study name a path segment escaped by :func:`_hidden` holds."""
    return re.sub(MARK + "(.)", lambda m: "/" if m.group(1) == "|" else m.group(1), segment, flags=re.S) \
        if MARK in segment else segment


#: on every response: no other site may frame a page (a click on "delete study", then on "yes, do
#: it", inside a page of another site dressed as something else), nor read a JSON answer as a script
HEADERS = [(b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"),
           (b"content-security-policy", b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'")]


class _Headers:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *HEADERS]}
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


class _LoopbackNamesOnly:
    """A dashboard that listens on loopback answers only requests addressed to ``localhost``,
    ``127.0.0.1`` or ``[::1]``: a page of another site that points its own name at 127.0.0.1
    (DNS rebinding) could otherwise read every study, and the write forms' token with them. Every scope but
    the server's own ``lifespan`` is checked: a websocket handshake (served with a websocket library installed,
    ``uvicorn[standard]``) reached the application unchecked, which a websocket route would have answered."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            sent = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1").lower()
            name = sent.rsplit(":", 1)[0] if not sent.endswith("]") else sent
            if not is_loopback(name.strip("[]")):
                text = (f"this dashboard answers only requests addressed to localhost or 127.0.0.1, not {sent!r}; "
                        "to reach it from other machines, start it with --host 0.0.0.0")
                await _refuse(scope, receive, send, text, 421)
                return
            if await _another_user(scope):
                text = ("this dashboard answers the user who started it only (or root), and this connection is not "
                        "theirs: another user of this machine could read every study (and, with --allow-writes, "
                        "change and delete them)")
                await _refuse(scope, receive, send, text, 403)
                return
        await self.app(scope, receive, send)


async def _refuse(scope: Any, receive: Any, send: Any, text: str, status: int) -> None:
    """Answer a refused request: ``text`` with ``status`` over HTTP; a websocket handshake closed before it is
    accepted (the server answers 403), as policy violation (1008) with the reason (cut to a close frame's
    123 bytes); a scope of another type is not answered."""
    if scope["type"] == "http":
        await PlainTextResponse(text, status)(scope, receive, send)
    elif scope["type"] == "websocket":
        from starlette.websockets import WebSocketClose

        await WebSocketClose(1008, text.encode()[:123].decode(errors="ignore"))(scope, receive, send)


async def _another_user(scope: Any) -> bool:
    """On Linux, whether a request's connection may be another user's: its socket is not listed as one
    of this process's user or root (:func:`~.server.peer_uid`; one not found is refused too: its client's
    address came from a proxy's header, or the connection is closed). Elsewhere, and where the system lists
    no socket's user (:func:`users_listed`, over the server's IPv6 or IPv4), False. Where netlink cannot be
    asked, the socket tables are read in a worker thread: tens of ms that stalled every other request."""
    client, server = scope.get("client"), scope.get("server")
    if not users_listed(":" in str(server[0] if server else "")):
        return False
    ends = connection_ends(client, server) if client and server else None
    if ends is None:
        return True
    try:
        uid = asked_uid(ends)
    except LookupError:
        from starlette.concurrency import run_in_threadpool

        uid = await run_in_threadpool(listed_uid, ends)
    return uid not in (os.getuid(), 0)


def _bind(d: Dashboard, fn: Callable[..., Any]) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        if "name" in request.path_params:
            request.path_params["name"] = shown_name(request.path_params["name"])
        if request.method == "POST":  # the forms post url-encoded fields (no multipart parser needed)
            request.state.form = dict(parse_qsl((await _form_body(d, request)).decode("utf-8", "replace")))
        return await run_in_threadpool(fn, d, request)  # storage reads block: off the event loop

    return endpoint


async def _form_body(d: Dashboard, request: Request) -> bytes:
    """A posted form's bytes, read only where writes are allowed and only up to :data:`MAX_FORM`
    (before, any body was read whole into memory, a read-only dashboard's too)."""
    if not d.allow_writes:
        raise HTTPException(403, "this dashboard is read-only: start it with --allow-writes to change studies")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise HTTPException(413, f"a form of more than {MAX_FORM:,} bytes is refused")
    return body


# -- responses --------------------------------------------------------------------------------


def json_response(data: Any, status: int = 200) -> Response:
    body = json.dumps(json_finite(data), default=str, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json")


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


async def _error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if wants_json(request):
        return json_response({"error": exc.detail}, exc.status_code)
    title = {404: "Not found", 403: "Not allowed", 400: "Bad request"}.get(exc.status_code, "Error")
    name = request.path_params.get("name") if exc.status_code == 400 else None  # a 404: the study may be gone
    study = shown_name(name) if isinstance(name, str) else None
    return HTMLResponse(pages.message_page(exc.status_code, title, str(exc.detail), study), exc.status_code)


async def _bad_request(request: Request, exc: Exception) -> Response:
    return await _error(request, HTTPException(400, str(exc)))


async def _storage_error(request: Request, exc: Exception) -> Response:
    """What the storage said (a study whose record cannot be read, a database gone), not a bare 500."""
    return await _error(request, HTTPException(500, str(exc)))


# -- pages ------------------------------------------------------------------------------------


def studies(d: Dashboard, request: Request) -> Response:
    views = [d.cache.listed(r) for r in d.cache.records()]
    return HTMLResponse(pages.studies_page(views, d.cache.storage.display_url))


def study(d: Dashboard, request: Request) -> Response:
    v = d.view(request.path_params["name"])
    total, rows, args = _trials_page(v, request)
    keep = _notes_view(request)
    asked = {k: a for k, a in request.query_params.items() if k in args}  # the trials page, kept by "all notes"
    html = pages.study_page(v, figures.STUDY_KINDS, pages.trials_table(v, total, rows, **args, keep=keep),
                            pages.write_forms(v, d.token) if d.allow_writes else "", all_notes=bool(keep), page=asked)
    return HTMLResponse(html.replace("data-version=", f"data-poll='{d.poll_seconds:g}' data-version=", 1))


def trial(d: Dashboard, request: Request) -> Response:
    v = d.view(request.path_params["name"])
    t = d.trial(v, request.path_params["number"])
    return HTMLResponse(pages.trial_page(v, t, pages.write_forms(v, d.token, t) if d.allow_writes else ""))


def note(d: Dashboard, request: Request) -> Response:
    """A study's note whole, by its number (0: the oldest)."""
    v = d.view(request.path_params["name"])
    notes, number = study_notes(v.record.config), request.path_params["number"]
    n = as_count(number)
    if n is None or n >= len(notes):
        raise HTTPException(404, f"study {v.name!r} has no note {number!r} (its notes: "
                                 f"{f'0-{len(notes) - 1}' if notes else 'none'})")
    return HTMLResponse(pages.note_page(v, n, notes[n]))


def importance(d: Dashboard, request: Request) -> Response:
    v = d.view(request.path_params["name"])
    return HTMLResponse(pages.importance_page(v, _method(request)))


def _compared(request: Request) -> list[str]:
    """The studies a comparison names, each once (a name repeated in the address is drawn once)."""
    return list(dict.fromkeys(request.query_params.getlist("study")))


def compare(d: Dashboard, request: Request) -> Response:
    names = _compared(request)
    directions = [d.view(n).record.direction.value for n in names]
    return HTMLResponse(pages.compare_page(names, [r.name for r in d.cache.records()], directions,
                                           _direction(request)))


def _direction(request: Request) -> str | None:
    direction = request.query_params.get("direction") or None
    if direction not in (None, "minimize", "maximize"):
        raise ValueError(f"direction must be minimize or maximize, not {direction!r}")
    return direction


# -- JSON -------------------------------------------------------------------------------------


def api_studies(d: Dashboard, request: Request) -> Response:
    return json_response({"studies": [d.cache.listed(r).summary() for r in d.cache.records()]})


def api_study(d: Dashboard, request: Request) -> Response:
    v = d.view(request.path_params["name"])
    return json_response({**v.summary(), "space": v.record.space, "notes": study_notes(v.record.config)})


def api_changes(d: Dashboard, request: Request) -> Response:
    """Whether the study changed since version ``since``; if so, its new summary, and ``html``: the
    study page's summary lines and its trials table (the page of ``offset``, ``limit``, ``order``,
    ``state``, as the page's own query) rendered as the page renders them."""
    v = d.view(request.path_params["name"])
    since = request.query_params.get("since", "")
    changed = since != str(v.version)
    if not changed:
        return json_response({"version": v.version, "changed": False})
    summary = v.summary()
    total, rows, args = _trials_page(v, request)
    html = {**pages.shown(summary), "trials": pages.trials_table(v, total, rows, **args, keep=_notes_view(request))}
    return json_response({"version": v.version, "changed": True, "summary": summary, "html": html})


def api_plots(d: Dashboard, request: Request) -> Response:
    v = d.view(request.path_params["name"])
    kind = request.path_params["kind"]
    if kind not in figures.STUDY_KINDS:
        raise HTTPException(404, f"no plot {kind!r}; the study's plots: {list(figures.STUDY_KINDS)}")
    return json_response({"version": v.version, "plots": figures.plots_of(d.cache, v, kind)})


def api_trials(d: Dashboard, request: Request) -> Response:
    v = d.view(request.path_params["name"])
    total, rows, args = _trials_page(v, request)
    ties = pages.tied_values(v, rows) if args["order"] == "best" else []  # as the page: ordered by best only
    return json_response({"version": v.version, "total": total, **args, "trials": [trial_dict(t) for t in rows],
                          "ties": [{"value": x, "trials": n} for x, n in ties],
                          **({"tie_order": pages.TIE_ORDER} if ties else {})})


def _notes_view(request: Request) -> dict[str, str]:
    """``{"notes": "all"}`` when the study page lists every note (its table's pager keeps it), else {}."""
    notes = request.query_params.get("notes")
    if notes not in (None, "all"):
        raise ValueError(f"notes must be 'all' (every note of the study; the latest {pages.NOTES_SHOWN} without it), "
                         f"not {notes!r}")
    return {"notes": "all"} if notes == "all" else {}


def _trials_page(v: View, request: Request) -> tuple[int, list[FrozenTrial], dict[str, Any]]:
    p = request.query_params
    args: dict[str, Any] = {"offset": _int(p.get("offset", "0"), "offset"),
                            "limit": min(_int(p.get("limit", "50"), "limit", least=1), MAX_PAGE),
            "order": p.get("order", "number"), "state": p.get("state") or None}
    if args["order"] not in ORDERS:
        raise ValueError(f"order must be one of {list(ORDERS)}, not {args['order']!r}")
    if args["state"] is not None and args["state"] not in STATES:  # a typo listed nothing, with no word why
        raise ValueError(f"state must be one of {list(STATES)}, not {args['state']!r}")
    total, rows = page(v, **args)
    return total, rows, args


def _int(text: str, what: str, *, least: int = 0) -> int:
    number = as_count(text)
    if number is None or number < least:  # limit=0 showed "trials 1-0" and a "next" link
        raise ValueError(f"{what} must be a whole number >= {least}, not {text!r}")
    return number


def api_trial(d: Dashboard, request: Request) -> Response:
    v = d.view(request.path_params["name"])
    return json_response(trial_dict(d.trial(v, request.path_params["number"]), full=True))


def api_curve(d: Dashboard, request: Request) -> Response:
    v = d.view(request.path_params["name"])
    t = d.trial(v, request.path_params["number"])
    return json_response({"version": v.version, "plots": [figures.trial_curve(d.cache.snapshot(v), t.number)]})


def api_importance(d: Dashboard, request: Request) -> Response:
    v = d.view(request.path_params["name"])
    method = _method(request)
    plot = v.cached(("importance", method), lambda: figures.importance_plot(d.cache.snapshot(v), method=method))
    return json_response({"version": v.version, "plots": [plot]})


def _method(request: Request) -> str:
    method = request.query_params.get("method", "fanova")
    method = {m.replace("-", "_"): m for m in METHODS}.get(method.lower().replace("-", "_"), method)  # as importance()
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, not {method!r}")
    return method


def api_compare(d: Dashboard, request: Request) -> Response:
    names = _compared(request)
    if not names:
        raise ValueError("name the studies to compare: /api/compare?study=a&study=b")
    snaps = [d.cache.snapshot(d.view(n)) for n in names]
    return json_response({"version": 0, "plots": [figures.comparison_plot(snaps, _direction(request))]})


def trial_dict(t: FrozenTrial, *, full: bool = False) -> dict[str, Any]:
    """A trial as the JSON endpoints give it; ``duration`` as the pages show it (:func:`ran_for`: to the last
    heartbeat of a trial lost by the heartbeat check, not to when it was judged lost)."""
    out: dict[str, Any] = {"number": t.number, "state": t.state.value, "value": t.value, "params": dict(t.params),
                           "worker": t.worker, "started": t.started, "completed": t.completed, "duration": ran_for(t)}
    if full:
        out.update(error=t.error, heartbeat=t.heartbeat, attrs=dict(t.attrs), checkpoint=t.attrs.get("checkpoint"),
                   intermediate={str(k): v for k, v in sorted(t.intermediate.items())})
    return out


def plotly_js(d: Dashboard, request: Request) -> Response:
    """plotly.js from the installed plotly package (the same file the report embeds)."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})


def dashboard_js(d: Dashboard, request: Request) -> Response:
    from ..plots.plotly_render import FIT_TITLE

    text = resources.files(__package__).joinpath("dashboard.js").read_text(encoding="utf-8")
    return Response(FIT_TITLE + text, media_type="text/javascript")  # the plots' titles fitted as the report's


ROUTES: list[tuple[str, Callable[..., Response], list[str]]] = [
    ("/", studies, ["GET"]),
    ("/studies/{name}", study, ["GET"]),
    ("/studies/{name}/trials/{number}", trial, ["GET"]),
    ("/studies/{name}/notes/{number}", note, ["GET"]),
    ("/studies/{name}/importance", importance, ["GET"]),
    ("/compare", compare, ["GET"]),
    ("/api/studies", api_studies, ["GET"]),
    ("/api/studies/{name}", api_study, ["GET"]),
    ("/api/studies/{name}/changes", api_changes, ["GET"]),
    ("/api/studies/{name}/plots/{kind}", api_plots, ["GET"]),
    ("/api/studies/{name}/trials", api_trials, ["GET"]),
    ("/api/studies/{name}/trials/{number}", api_trial, ["GET"]),
    ("/api/studies/{name}/trials/{number}/curve", api_curve, ["GET"]),
    ("/api/studies/{name}/importance", api_importance, ["GET"]),
    ("/api/compare", api_compare, ["GET"]),
    ("/static/plotly.min.js", plotly_js, ["GET"]),
    ("/static/dashboard.js", dashboard_js, ["GET"]),
]

__all__ = ["Dashboard", "create_app", "json_response"]

"""The changes ``tunesmith dashboard --allow-writes`` can make, each through the study's public
verbs and each only after a confirmation page: add a note to a study, mark an unfinished trial
failed, enqueue a configuration, delete a study.

Every form carries the server's token (a page of another site cannot post one), and a
request without ``confirm=yes`` gets the confirmation page instead of the change.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..exceptions import TrialFinishedError
from ..space.params import plural
from ..study import Study, manage
from ..study.manage import MAX_NOTE, note_text
from . import pages

if TYPE_CHECKING:
    from .app import Dashboard



def _form(d: Dashboard, request: Request) -> dict[str, str]:
    """The posted fields (read only where writes are allowed), once the token matches."""
    fields = {k: str(v) for k, v in request.state.form.items()}
    sent = fields.get("token", "").encode("utf-8", "replace")  # as bytes: a str not ASCII raised (a 500)
    if not secrets.compare_digest(sent, d.token.encode()):
        raise HTTPException(403, "this form did not come from this dashboard (its token is missing or stale): "
                                 "reload the page and try again")
    return fields


def _confirmed(request: Request, fields: dict[str, str], what: str) -> Response | None:
    """None when the change was confirmed; else the page that asks for it."""
    if fields.get("confirm") == "yes":
        return None
    keep = {k: v for k, v in fields.items() if k != "confirm"}
    raw = request.scope.get("raw_path")  # as sent, still percent-encoded: a name with '?', '#' or '/' stays whole
    action = raw.split(b"?", 1)[0].decode("ascii", "replace") if raw else pages.q(request.url.path).replace("%2F", "/")
    return HTMLResponse(pages.confirm_page(action, what, keep))


def _study(d: Dashboard, name: str) -> Study:
    d.view(name)  # 404 if absent
    with d.cache.io:
        return Study.load(name, d.cache.storage)


def add_note(d: Dashboard, request: Request) -> Response:
    name = request.path_params["name"]
    fields = _form(d, request)
    text = note_text(fields.get("text", ""))
    d.view(name)
    ask = _confirmed(request, fields, f"add the note {text!r} to study {name!r}?")
    if ask:
        return ask
    with d.cache.io:
        manage.add_note(d.cache.storage, name, text)  # after the notes it holds, whatever they are
    d.cache.stale(name)
    return RedirectResponse(f"/studies/{pages.q(name)}", 303)


def fail_trial(d: Dashboard, request: Request) -> Response:
    name = request.path_params["name"]
    fields = _form(d, request)
    t = d.trial(d.view(name), request.path_params["number"])
    if t.state.is_finished:
        raise ValueError(f"trial {t.number} of {name!r} is already {t.state.value}; finished trials never change")
    ask = _confirmed(request, fields, f"mark trial {t.number} of study {name!r} ({t.state.value}) failed?")
    if ask:
        return ask
    error = fields.get("error", "").strip() or "marked failed from the dashboard"
    study = _study(d, name)
    try:
        with d.cache.io:
            study.tell(t.number, state="failed", error=error[:MAX_NOTE])
    except TrialFinishedError as exc:  # it finished since the page was read
        raise ValueError(str(exc)) from None
    finally:
        d.cache.stale(name)
    return RedirectResponse(f"/studies/{pages.q(name)}/trials/{t.number}", 303)


def enqueue(d: Dashboard, request: Request) -> Response:
    name = request.path_params["name"]
    fields = _form(d, request)
    params = _params(fields.get("params", ""))
    study = _study(d, name)
    study.space.validate(params)  # a wrong configuration is refused before the confirmation
    ask = _confirmed(request, fields, f"enqueue {json.dumps(params, ensure_ascii=False)} in study {name!r}?")
    if ask:
        return ask
    with d.cache.io:
        number = study.enqueue(params)
    d.cache.stale(name)
    return RedirectResponse(f"/studies/{pages.q(name)}/trials/{number}", 303)


def _params(text: str) -> dict[str, Any]:
    try:
        params = json.loads(text)
    except RecursionError:  # '[[[[...' : before, a 500
        raise ValueError("the configuration nests too deep: it must be a JSON object such as {\"x\": 0.5}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"the configuration must be a JSON object such as {{\"x\": 0.5}}: {exc}") from None
    if not isinstance(params, dict):
        raise ValueError(f"the configuration must be a JSON object such as {{\"x\": 0.5}}, not {text!r}")
    return params


def delete_study(d: Dashboard, request: Request) -> Response:
    name = request.path_params["name"]
    fields = _form(d, request)
    v = d.view(name)
    also = manage.with_test_results(d.cache.storage, name)  # before: not said, deleted all the same
    ask = _confirmed(request, fields, f"delete study {name!r} and its {plural(len(v.trials), 'trial')}{also}? "
                                      "This cannot be undone.")
    if ask:
        return ask
    study = _study(d, name)
    with d.cache.io:
        study.delete()
    d.cache.forget(name)
    return RedirectResponse("/", 303)


WRITE_ROUTES: list[tuple[str, Callable[..., Response], list[str]]] = [
    ("/studies/{name}/notes", add_note, ["POST"]),
    ("/studies/{name}/trials/{number}/fail", fail_trial, ["POST"]),
    ("/studies/{name}/enqueue", enqueue, ["POST"]),
    ("/studies/{name}/delete", delete_study, ["POST"]),
]

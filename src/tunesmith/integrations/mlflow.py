"""MLflow: each trial logged as an MLflow run, nested under one parent run for the study.

    cb = MLflowCallback(tracking_uri="sqlite:///mlflow.db")
    study.optimize(objective, n_trials=50, callbacks=[cb])
    cb.log_study(study)        # log every finished trial not logged yet (idempotent)

A trial's run holds its parameters, its value (metric ``value`` by default), its attributes
(``trial.set_attr(name, value)``) as tags ``attr.<name>``, its state (tag
``tunesmith.state``; MLflow status FINISHED for complete, KILLED for pruned or paused, FAILED
for failed) and its reports as the history of the metric ``intermediate`` (step = the report's
step). The best trial's run is tagged ``tunesmith.best`` (``"true"``, moved when a trial beats
it), and the parent run holds its number (tag ``tunesmith.best_trial``) and value (metric
``best_value``). Runs are found again by the tags ``tunesmith.study``, ``tunesmith.study_id`` and
``tunesmith.trial``: a trial logged twice (paused, then resumed and completed; or a study reopened and logged again) updates
its one run. The parent run is RUNNING while ``optimize`` runs and ends with it (FINISHED, or
FAILED when optimize raises, KILLED when it is interrupted by a KeyboardInterrupt it does not
catch); a later ``optimize`` (a resumed study) reopens the same parent run. As ``optimize`` returns,
the study's trials with no run yet, or whose logging a Ctrl-C cut, are logged; a second Ctrl-C there
ends the parent run and the trial's run being logged KILLED. A run deleted in MLflow is restored by
the next logging, not made twice. Two callbacks of one experiment in one ``optimize`` are refused
(each would make a run of every trial). Needs ``tunesmith[mlflow]``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import posixpath
import re
import threading
import time
import warnings
import weakref
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from ..trial import Direction, FrozenTrial, TrialState, as_count
from ._common import refuse_unknown, require

mlflow = require("mlflow", extra="mlflow", what="tunesmith.integrations.mlflow")
from mlflow.entities import Metric, Param, RunTag  # noqa: E402

STUDY_TAG, TRIAL_TAG, STATE_TAG = "tunesmith.study", "tunesmith.trial", "tunesmith.state"
ID_TAG = "tunesmith.study_id"  # study.copy_id: two studies of one name (two storages) apart
BEST_TAG = "tunesmith.best"  # "true" on the best trial's run; the parent's tunesmith.best_trial names it
NAMES_TAG = "tunesmith.param_names"  # then tunesmith.param_names.2, .3...: the mapping in parts
_STATUS = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED",
           TrialState.PAUSED: "KILLED", TrialState.FAILED: "FAILED"}  # fmt: skip
_STATUS_OF = {state.value: status for state, status in _STATUS.items()}  # a run's state tag -> its status
_OLD_RUNS = ("Delete or rename the old runs (or log to another experiment: MLflowCallback(experiment=...)) "
             "if they are another study's")
_BATCH = 1000  # MLflow's limit of metrics per log_batch
_CATCH_UP_NOTICE = 100  # trials without a run that optimize's end logs with a warning first (it takes a while)
# (tracking URI, experiment id, study) -> trial number -> the run a callback of this process made and logged whole:
# (the callback, its thread, the run's id); a second callback about to make the same trial's run in the same thread
# while the first is open (in its optimize) is one of two given to one optimize
_MADE: dict[tuple[str, str, Any], dict[int, tuple[weakref.ref[MLflowCallback], int, str]]] = {}
_LIMITS = vars(importlib.import_module("mlflow.utils.validation"))  # the installed MLflow's; the defaults: where it moved them
_TAG_LIMIT = _LIMITS.get("MAX_TAG_VAL_LENGTH", 5000)  # a tag's value: 5,000 characters before MLflow 2.17, 8,000 since
# a longer parameter MLflow 3 cuts (the rest lost; refused with MLFLOW_TRUNCATE_LONG_VALUES=false and by older MLflow)
_PARAM_LIMIT = _LIMITS.get("MAX_PARAM_VAL_LENGTH", 6000)
_NAME_LIMIT = _LIMITS.get("MAX_EXPERIMENT_NAME_LENGTH", 500)  # an experiment's name (a study's may have 512 characters)
_KEY_LIMIT = _LIMITS.get("MAX_ENTITY_KEY_LENGTH", 250)  # a parameter's, metric's or tag's key
_ATTR = "attr."  # a user attribute's tag: attr.NAME


#: Optuna's MLflowCallback keywords (and a common slip) for MLflowCallback's, or what stands for them here
_ALIASES = {
    "tracking_url": "tracking_uri", "experiment_name": "experiment",
    "create_experiment": "the study's experiment is made when it does not exist (named after the study, or experiment=)",
    "mlflow_kwargs": "each trial is logged through MLflow's client, not mlflow.start_run; record more with "
                     "trial.set_attr(name, value), logged as the tag attr.<name>",
    "tag_trial_user_attrs": "a trial's attributes (trial.set_attr) are always logged, as tags attr.<name>",
    "tag_study_user_attrs": "a study has no attributes here, and its dated notes (study.add_note) are not logged; "
                            "a trial's attributes (trial.set_attr) always are, as tags attr.<name>",
}


class MLflowCallback:
    """``study.optimize(..., callbacks=[MLflowCallback()])``: one MLflow run per trial.

    Args:
        tracking_uri: where to log (``sqlite:///mlflow.db``, ``http://host:5000``,
            ``databricks``...); default: MLflow's own (``MLFLOW_TRACKING_URI`` or its default).
        experiment: the MLflow experiment's name (created when missing); default: the study's name.
        metric_name: the name of the objective's value in MLflow.
        artifact_location: where an experiment the callback creates keeps its artifacts (a value
            longer than MLflow's limit for a tag is kept whole there), a folder or an artifact URI;
            a folder that starts with ``~`` is in the home folder (``~/mlflow-artifacts``), which
            MLflow itself would take as a folder named ``~`` in the working folder;
            default: MLflow's (a file store's own folder; for a SQL store, ``./mlruns`` in the working
            folder of the process that creates the experiment).
    """

    def __init__(
        self, *, tracking_uri: str | None = None, experiment: str | None = None,
        metric_name: str = "value", artifact_location: str | os.PathLike[str] | None = None, **unknown: Any,
    ) -> None:  # fmt: skip
        refuse_unknown("MLflowCallback", unknown, list(MLflowCallback.__init__.__kwdefaults__ or {}), _ALIASES,
                       space=False)
        if not isinstance(metric_name, str) or not metric_name or metric_name == "intermediate":
            raise ValueError(f"MLflowCallback: metric_name must be a non-empty string other than 'intermediate', got {metric_name!r}")
        _check_metric_name(metric_name)
        if isinstance(artifact_location, os.PathLike):
            artifact_location = str(Path(_home_expanded(os.fspath(artifact_location))).absolute())
        for name, value in (("tracking_uri", tracking_uri), ("experiment", experiment),
                            ("artifact_location", artifact_location)):  # fmt: skip
            if value is not None and not isinstance(value, str):  # 5: "'int' object has no attribute 'decode'"
                raise TypeError(f"MLflowCallback: {name} must be a string or None, got {type(value).__name__} {value!r}")
        if artifact_location is not None and not artifact_location.strip():  # MLflow took "" as its default
            raise ValueError("MLflowCallback: artifact_location is empty; pass a folder or URI, or None for MLflow's default")
        if artifact_location is not None:
            artifact_location = _home_expanded(artifact_location)
        self.client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        self._store = _store(self.client.tracking_uri)  # (the key of the runs this process made: _MADE)
        self.experiment, self.metric_name, self.artifact_location = experiment, metric_name, artifact_location
        # by _key(study): two studies of one name given this callback (one deleted and made again) apart
        self._ids: dict[Any, tuple[str, str]] = {}  # study -> (experiment id, parent run id)
        self._open: set[Any] = set()  # studies whose parent run this callback set RUNNING
        self._runs: dict[Any, dict[int, str]] = {}  # study -> trial number -> its run's id
        self._warned: set[Any] = set()  # studies warned about runs matched without the id tag
        # study -> trial numbers whose run was made but not logged to the end (an interrupt cut it)
        self._cut: dict[Any, set[int]] = {}
        self._best: dict[Any, tuple[int, float]] = {}  # study -> the trial marked best and its value

    def __call__(self, study: Any, trial: FrozenTrial) -> None:
        """Log ``trial`` (a finished or paused trial of ``study``) to its run."""
        if trial.state not in _STATUS:
            return  # running or waiting: logged when it ends
        experiment_id, _ = self._parent(study)
        if _key(study) not in self._runs:  # the runs logged before (another session): read once
            self._read_runs(study, experiment_id)
        run_id = self._runs[_key(study)].get(trial.number)
        self._log_trial(study, trial, None if run_id is None else self.client.get_run(run_id))
        if trial.state is TrialState.COMPLETE and self._beats_best(study, trial):
            self._mark_best(study)

    def log_study(self, study: Any) -> None:
        """Log every finished or paused trial of ``study``; trials already logged are only updated
        (a finished trial logged with its state is left as it is). The parent run ends FINISHED
        again, unless an ``optimize`` logging to it is under way."""
        running = _key(study) in self._open
        trials = [t for t in study.trials if t.state in _STATUS]
        with contextlib.nullcontext() if running else self._ended_if_stopped(study):  # in optimize: it ends the run
            if trials:
                experiment_id, _ = self._parent(study)
                runs = self._read_runs(study, experiment_id)
                for trial in trials:  # the runs read once, not searched for trial by trial
                    self._log_trial(study, trial, runs.get(trial.number))
        if not running:
            self.on_optimize_end(study, None)

    def on_optimize_end(self, study: Any, error: BaseException | None) -> None:
        """End the study's parent run (``Study.optimize`` calls it once the call is over):
        FINISHED, FAILED when optimize raises an exception, KILLED for an interruption. A call that returns
        first logs the study's trials that have no run yet or whose logging was cut: a Ctrl-C fails the
        running trials without calling the callbacks back, and may stop the callback in the middle of
        a trial's logging."""
        if error is None and (_key(study) in self._open or any(t.state in _STATUS for t in study.trials)):
            with self._ended_if_stopped(study):
                self._parent(study)  # opened also where a Ctrl-C stopped every trial of the call before one was logged
                self._catch_up(study)
                self._mark_best(study)
        elif _key(study) not in self._open and (error is None or _key(study) not in self._ids):
            return  # nothing to log, nothing logged in this call (nor before, when it failed): parent run untouched
        self._end_parent(study, error)

    @contextlib.contextmanager
    def _ended_if_stopped(self, study: Any) -> Iterator[None]:
        """End the parent run (KILLED, or FAILED for an exception) where a Ctrl-C (a second one, in a long
        catch-up or ``log_study``) or MLflow's error stops the logging: not left RUNNING for good."""
        try:
            yield
        except BaseException as exc:
            if _key(study) in self._open:
                with contextlib.suppress(Exception):  # what stopped the logging is the error raised
                    self._end_parent(study, exc)
            raise

    def _end_parent(self, study: Any, error: BaseException | None) -> None:
        self._open.discard(_key(study))
        status = "FINISHED" if error is None else "FAILED" if isinstance(error, Exception) else "KILLED"
        self.client.set_terminated(self._ids[_key(study)][1], status=status)

    def _catch_up(self, study: Any) -> None:
        """Log the finished or paused trials of ``study`` whose run is missing or was cut, reading the
        study's runs again first (so that a run another process made since is taken, not made twice)."""
        runs, cut = self._runs.get(_key(study), {}), self._cut.get(_key(study), set())
        behind = [t for t in study.trials if t.state in _STATUS and (t.number not in runs or t.number in cut)]
        if behind:
            read = self._read_runs(study, self._ids[_key(study)][0])
            missing = sum(t.number not in read for t in behind)
            if missing >= _CATCH_UP_NOTICE:  # a resumed study given the callback (or another experiment) first
                logging.getLogger("tunesmith").warning(
                    "MLflowCallback: logging %d trials of study %r that have no run in MLflow experiment %r yet "
                    "(run without the callback, or logged to another experiment), as optimize returns; each takes "
                    "a few MLflow calls (about 0.15 s a trial on a local SQLite store)", missing, study.name,
                    self.experiment or study.name)  # fmt: skip
            for trial in behind:
                self._log_trial(study, trial, read.get(trial.number))

    def _beats_best(self, study: Any, trial: FrozenTrial) -> bool:
        """Whether ``trial`` may be the study's new best: none marked yet, or a value as good as the marked one's
        (a tie the study's tie rule may rank first: :meth:`_mark_best` asks the study)."""
        marked = self._best.get(_key(study))
        sign = Direction.parse(study.direction).sign()
        return marked is None or (trial.value is not None and sign * trial.value <= sign * marked[1])

    def _mark_best(self, study: Any) -> None:
        """Tag the best trial's run ``tunesmith.best`` (and no other), and give the parent run its number
        (tag ``tunesmith.best_trial``) and value (metric ``best_<metric_name>``, step = its number)."""
        try:
            best = study.best_trial
        except ValueError:
            return  # no complete trial yet
        runs, parent = self._runs.get(_key(study), {}), self._ids[_key(study)][1]
        if best.value is None:
            return
        self._best[_key(study)] = (best.number, best.value)
        if best.number not in runs:
            return  # not logged yet: marked as optimize returns, once its run is logged
        before = as_count(self.client.get_run(parent).data.tags.get(BEST_TAG + "_trial"))
        if before == best.number:
            if self.client.get_run(runs[best.number]).data.tags.get(BEST_TAG) != "true":  # made again (deleted in MLflow)
                self.client.set_tag(runs[best.number], BEST_TAG, "true")
            return
        if before is not None and before not in runs:  # logged since the runs were read (another driver)
            runs = {n: run.info.run_id for n, run in self._read_runs(study, self._ids[_key(study)][0]).items()}
        if before in runs:
            try:
                self.client.delete_tag(runs[before], BEST_TAG)
            except mlflow.exceptions.MlflowException:  # removed by hand since: nothing to remove
                pass
        self.client.set_tag(runs[best.number], BEST_TAG, "true")
        self.client.log_batch(parent, metrics=[Metric(f"best_{self.metric_name}", best.value, _ms(time.time()), best.number)],
                              tags=[RunTag(BEST_TAG + "_trial", str(best.number))])  # fmt: skip

    # -- runs ---------------------------------------------------------------------------
    def _parent(self, study: Any) -> tuple[str, str]:
        if _key(study) not in self._ids:
            name = self.experiment or study.name
            found = experiment_by_name(self.client, name)
            if found is not None and found.lifecycle_stage == "deleted":  # MLflow refused the first run's logging
                raise ValueError(
                    f"MLflowCallback: the MLflow experiment {name!r} (id {found.experiment_id}) is deleted (in "
                    f"MLflow's trash), so nothing can be logged to it; restore it (mlflow experiments restore "
                    f"--experiment-id {found.experiment_id}, or MlflowClient().restore_experiment("
                    f"{found.experiment_id!r})), log to another with MLflowCallback(experiment=...), or remove "
                    "it for good (mlflow gc) so that the callback creates it anew"
                )
            experiment_id = found.experiment_id if found else self._create_experiment(name)
            run = self._find_parent(experiment_id, study)
            if run is None:
                run = self.client.create_run(experiment_id, run_name=study.name, tags={
                    STUDY_TAG: study.name, "tunesmith.parent": "true", **_id_tag(study),
                    "tunesmith.direction": str(getattr(study.direction, "value", study.direction)),
                })  # fmt: skip
            self._ids[_key(study)] = (experiment_id, run.info.run_id)
        if _key(study) not in self._open:  # ended by an earlier optimize: reopened, not duplicated
            run_id = self._ids[_key(study)][1]
            info = self.client.get_run(run_id).info
            if info.lifecycle_stage == "deleted":  # in MLflow's trash: its trials' runs name it as their parent
                self.client.restore_run(run_id)
            if info.status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
            self._open.add(_key(study))
        return self._ids[_key(study)]

    def _create_experiment(self, name: str) -> str:
        try:
            experiment_id: str = self.client.create_experiment(name, artifact_location=self.artifact_location)
        except mlflow.exceptions.MlflowException as exc:
            if len(name) > _NAME_LIMIT:
                raise ValueError(
                    f"MLflowCallback: MLflow refuses an experiment name of more than {_NAME_LIMIT} characters, and "
                    f"{name[:40]!r}... has {len(name)}; pass MLflowCallback(experiment=...) with a shorter name (the "
                    "runs still carry the study's whole name in their tunesmith.study tag)"
                ) from exc
            if "'" not in name:
                raise
            raise ValueError(
                f"MLflowCallback: MLflow could not create an experiment named {name!r} at "
                f"{self.client.tracking_uri} (its file store cannot hold a quote in a name); pass "
                "MLflowCallback(experiment=...) with a name without quotes, or use a SQLite store "
                "(tracking_uri='sqlite:///mlflow.db')"
            ) from exc
        return experiment_id

    def _find_parent(self, experiment_id: str, study: Any) -> Any:
        """The study's parent run: its tagged one, or the one untagged candidate (as for trial runs: of two
        studies of one name made before either logged, either one's parent could be taken), or None."""
        runs = [r for r in _search(self.client, experiment_id, study.name, "tags.`tunesmith.parent` = 'true'",
                                   limit=1000) if _of_study(r, study)]  # fmt: skip
        tagged = [r for r in runs if ID_TAG in r.data.tags or not _id_tag(study)]
        if tagged or len(runs) <= 1:
            self._tag_as_study(study, [] if tagged else runs)
            return (tagged or runs or [None])[0]
        warnings.warn(f"MLflowCallback: study {study.name!r} has {len(runs)} parent runs without the {ID_TAG!r} tag "
                      f"(logged by an earlier tunesmith) that started once it existed, so none is taken: its trials are "
                      f"logged under a new parent run. {_OLD_RUNS}", UserWarning, stacklevel=4)
        return None

    def _read_runs(self, study: Any, experiment_id: str) -> dict[int, Any]:
        """The study's trial runs in MLflow, by trial number; their ids are kept, so that the next
        trials are looked up without a search (which reads every run of a file store)."""
        tagged: dict[int, Any] = {}
        untagged: dict[int, list[Any]] = {}  # runs logged before the id tag, of a study that has an id
        for run in trial_runs(self.client, experiment_id, study.name, deleted=True):
            if (n := _trial_number(run)) is not None and _of_study(run, study):
                if ID_TAG in run.data.tags or not _id_tag(study):
                    tagged.setdefault(n, run)
                else:
                    untagged.setdefault(n, []).append(run)
        # an untagged run is the trial's only when it is the one run that can be: none tagged, no other untagged
        runs = {**{n: found[0] for n, found in untagged.items() if len(found) == 1}, **tagged}
        self._warn_untagged(study, sum(n not in tagged and len(found) == 1 for n, found in untagged.items()),
                            sorted(n for n, found in untagged.items() if n not in tagged and len(found) > 1))
        self._tag_as_study(study, [run for n, run in runs.items() if n not in tagged])
        self._runs[_key(study)] = {number: run.info.run_id for number, run in runs.items()}
        self._cut[_key(study)] = {number for number, run in runs.items() if not _logged_to_the_end(run)}
        return runs

    def _tag_as_study(self, study: Any, runs: list[Any]) -> None:
        """Give the runs taken without the study's id tag that tag, so that a later session finds them as the
        study's at once (and does not warn about them again)."""
        for run in runs:
            self.client.set_tag(run.info.run_id, ID_TAG, _id_tag(study)[ID_TAG])

    def _warn_untagged(self, study: Any, matched: int, ambiguous: list[int]) -> None:
        """Warn once per study how many of its trials' runs were matched without the study's id tag (logged
        by a tunesmith before that tag), and which trials had several such runs and got new ones."""
        if not (matched or ambiguous) or _key(study) in self._warned:
            return
        self._warned.add(_key(study))
        parts = [f"{matched} run(s) of study {study.name!r} carry no {ID_TAG!r} tag (logged by an earlier "
                 "tunesmith) and were taken as its trials' runs, as the only runs of their trial numbers that "
                 "started once the study existed; they are given the tag now"] if matched else []
        if ambiguous:
            parts.append(f"trial(s) {ambiguous[:10]}{'...' if len(ambiguous) > 10 else ''} of study {study.name!r} "
                         "each have several such runs (studies of one name, made again), so none of them is "
                         "taken: those trials are logged to new runs")
        warnings.warn(f"MLflowCallback: {'; '.join(parts)}. {_OLD_RUNS}", UserWarning, stacklevel=4)

    def _log_trial(self, study: Any, trial: FrozenTrial, run: Any) -> None:
        """Create ``trial``'s run, or bring ``run`` (its run, as read) up to date."""
        cut = self._cut.setdefault(_key(study), set())
        cut.add(trial.number)  # until its run is logged to the end
        try:
            if run is None:
                self._create(*self._ids[_key(study)], study, trial)
            elif not (trial.state.is_finished and _logged_to_the_end(run) and run.data.tags[STATE_TAG] == trial.state.value):
                if run.info.lifecycle_stage == "deleted":  # in MLflow's trash: the trial's one run, not made twice
                    self.client.restore_run(run.info.run_id)
                self._update(run, trial)  # a finished trial logged in its final state has nothing new
        except KeyboardInterrupt:  # its run ends KILLED, not RUNNING for good; the next logging completes it
            if (run_id := self._runs.get(_key(study), {}).get(trial.number)) is not None:
                with contextlib.suppress(Exception):
                    self.client.set_terminated(run_id, status="KILLED")
            raise
        cut.discard(trial.number)

    def _create(self, experiment_id: str, parent: str, study: Any, trial: FrozenTrial) -> None:
        where = (self._store, experiment_id, _key(study))
        if (made := self._made_by_another(where, study, trial)) is not None:
            self._runs.setdefault(_key(study), {})[trial.number] = made
            self._update(self.client.get_run(made), trial)
            return
        tags = {"mlflow.parentRunId": parent, STUDY_TAG: study.name, TRIAL_TAG: str(trial.number), **_id_tag(study)}
        run = self.client.create_run(
            experiment_id, start_time=_ms(trial.started or time.time()), tags=tags, run_name=f"trial-{trial.number}",
        )  # fmt: skip
        self._runs.setdefault(_key(study), {})[trial.number] = run.info.run_id
        self._log_params(run.info.run_id, trial)
        self._log(run.info.run_id, trial, logged_steps=set())
        _MADE.setdefault(where, {})[trial.number] = (weakref.ref(self), threading.get_ident(), run.info.run_id)  # once whole

    def _made_by_another(self, where: tuple[str, str, Any], study: Any, trial: FrozenTrial) -> str | None:
        """The run of ``trial`` another callback of this process made in another thread (another ``optimize`` of
        the study, which logged the trial since this callback read the runs): taken, not made twice. Refused where
        it made it in this thread and is still open: two callbacks in one optimize each keep their own runs (two runs
        of every trial)."""
        maker, thread, run_id = _MADE.get(where, {}).get(trial.number, (None, 0, ""))
        if maker is None or maker() is self:
            return None
        if thread != threading.get_ident():
            return run_id
        if (other := maker()) is not None and _key(study) in other._open:
            raise ValueError(
                f"MLflowCallback: another MLflowCallback in this thread logged trial {trial.number} of study "
                f"{study.name!r} to the MLflow experiment {self.experiment or study.name!r} at {self.client.tracking_uri}: "
                "two callbacks logging to one experiment in one optimize make two runs of each trial; pass one "
                "MLflowCallback (callbacks=[cb]), or give the other its own experiment= or tracking_uri="
            )
        return None  # one of an optimize that ended, whose run was not taken (gone since, or not the study's): made anew

    def _log_params(self, run_id: str, trial: FrozenTrial) -> None:
        keys = _param_keys(list(trial.params))
        params = [Param(keys[k], self._fitted(run_id, keys[k], _text(v), _PARAM_LIMIT,
                                              where=f"tunesmith/params/{keys[k]}.txt"))
                  for k, v in trial.params.items()]  # fmt: skip
        renamed = {keys[k]: k for k in trial.params if keys[k] != k}
        name_tags = _name_tags(renamed)  # the names MLflow refuses, as logged -> as in the study
        for i in range(0, max(len(params), len(name_tags)), 100):  # MLflow's limit per log_batch
            self.client.log_batch(run_id, params=params[i : i + 100], tags=name_tags[i : i + 100])

    def _update(self, run: Any, trial: FrozenTrial) -> None:
        if trial.params and not run.data.params:  # its logging was cut before the parameters
            self._log_params(run.info.run_id, trial)
        history = self.client.get_metric_history(run.info.run_id, "intermediate")
        self._log(run.info.run_id, trial, logged_steps={m.step for m in history},
                  logged_value=run.data.metrics.get(self.metric_name), held=run.data.tags)  # fmt: skip

    def _log(self, run_id: str, trial: FrozenTrial, *, logged_steps: set[int], logged_value: float | None = None,
             held: dict[str, str] | None = None) -> None:
        at = _ms(trial.completed or trial.heartbeat or trial.started or time.time())
        metrics = [Metric("intermediate", v, at, s) for s, v in sorted(trial.intermediate.items())
                   if s not in logged_steps]  # fmt: skip
        if trial.value is not None and trial.value != logged_value:  # not logged twice
            metrics.append(Metric(self.metric_name, trial.value, at, 0))
        keys = _attr_keys(list(trial.attrs), held or {})
        tags = [self._tag(run_id, f"{_ATTR}{keys[k]}", _text(v)) for k, v in trial.attrs.items()]  # trial.set_attr(...)
        if trial.error:
            tags.append(self._tag(run_id, "tunesmith.error", trial.error))
        tags.append(RunTag(STATE_TAG, trial.state.value))  # in the last batch: a run cut before it is caught up
        metric_batches = [metrics[i : i + _BATCH] for i in range(0, len(metrics), _BATCH)]
        tag_batches = [tags[i : i + 100] for i in range(0, len(tags), 100)]
        empty: list[Any] = []
        tag_batches[:0] = [empty] * (len(metric_batches) - len(tag_batches))  # the last tags with the last metrics
        for metric_batch, tag_batch in zip_longest(metric_batches, tag_batches, fillvalue=empty):  # MLflow's limits per log_batch: 1000 metrics, 100 tags
            self.client.log_batch(run_id, metrics=metric_batch, tags=tag_batch)
        self.client.set_terminated(run_id, status=_STATUS[trial.state], end_time=at)


    def _tag(self, run_id: str, key: str, text: str) -> Any:
        """The tag ``key``; a value longer than MLflow's limit is kept whole as the run's artifact
        ``tunesmith/<key>.txt`` and the tag holds its start, its length and where the rest is."""
        return RunTag(key, self._fitted(run_id, key, text, _TAG_LIMIT, where=f"tunesmith/{key}.txt"))

    def _fitted(self, run_id: str, key: str, text: str, limit: int, *, where: str) -> str:
        """``text``, or where it is longer than ``limit``, its start, its length and ``where`` (the run's
        artifact that keeps it whole)."""
        if len(text) <= limit:
            return text
        try:
            self.client.log_text(run_id, text, where)
        except Exception as exc:  # noqa: BLE001 - an artifact store that cannot be written: say what is lost
            where = "nowhere: storing it failed"
            logging.getLogger("tunesmith").warning(
                "MLflow: %r of run %s holds %d characters, more than MLflow's %d; it is cut and could not be "
                "kept whole as an artifact (%s: %s)", key, run_id, len(text), limit, type(exc).__name__, exc)
        tail = f"... ({len(text):,} characters; the whole value: {where})"
        return text[: limit - len(tail)] + tail


def _check_metric_name(name: str) -> None:
    """A ValueError where MLflow would refuse ``name`` or the parent run's ``best_<name>`` (its limit of a key)
    as the first trials are logged, which ended optimize."""
    most = _KEY_LIMIT - len("best_")  # characters; bytes: a file name of 255 at most, best_ included
    if _param_keys([name])[name] == name and len(name) <= most:
        return
    if _param_keys([name], most=len(name) * 4)[name] == name:  # only too long
        raise ValueError(
            f"MLflowCallback: the metric name {name[:40]!r}... has {len(name)} characters ({len(name.encode())} "
            f"bytes of UTF-8); MLflow takes a key of at most {_KEY_LIMIT} characters and the parent run logs "
            f"best_<metric_name>, so use at most {most} characters and {_KEY_LIMIT} bytes (its file store names a "
            "file by it)"
        )
    raise ValueError(
        f"MLflowCallback: MLflow refuses the metric name {name!r}: use letters, digits and _ - . : / space "
        f"(e.g. {_param_keys([name], most=most)[name]!r})"
    )


def _home_expanded(location: str) -> str:
    """``location`` with a leading ``~`` or ``~user`` made the home folder; a ValueError when there is
    no such home (MLflow would make a folder named ``~user`` in the working folder)."""
    if not location.startswith("~"):
        return location
    expanded = os.path.expanduser(location)
    if expanded.startswith("~"):
        raise ValueError(
            f"MLflowCallback: artifact_location {location!r} starts with a home folder that does not "
            f"exist here ({location.split('/')[0]!r}); pass the folder's full path"
        )
    return expanded


def _store(uri: str) -> str:
    """One spelling of the tracking store ``uri``: a local file or SQLite store by its real absolute path (one store
    may be written ``./mlruns``, ``mlruns`` or ``file:///abs/mlruns``, ``sqlite:///x.db`` or ``sqlite:////abs/x.db``:
    taken for two stores, the two-callbacks refusal and the runs another thread made missed each
    other), any other as it is."""
    scheme, sep, rest = uri.partition(":")
    if scheme.lower().startswith("sqlite") and rest.startswith("///") and not rest.startswith("///:memory:"):
        path, query, args = rest[3:].partition("?")
        return f"{scheme.lower()}:///{os.path.realpath(path)}{query}{args}"
    if scheme.lower() == "file":
        return "file://" + os.path.realpath(url2pathname(urlparse(uri).path))
    if not sep or len(scheme) == 1:  # a folder (or a Windows drive letter)
        return "file://" + os.path.realpath(uri)
    return uri


def _key(study: Any) -> tuple[str, Any]:
    """What the callback keeps a study's runs by: its name and id."""
    return study.name, getattr(study, "copy_id", None)


def _id_tag(study: Any) -> dict[str, str]:
    """The tag naming ``study`` apart from any other of its name (a study an earlier tunesmith made has no id)."""
    copy_id = getattr(study, "copy_id", None)
    return {ID_TAG: copy_id} if isinstance(copy_id, str) else {}


def _of_study(run: Any, study: Any) -> bool:
    """Whether ``run``, of a study named as ``study``, is ``study``'s: its id tag is the study's (none
    for a study without an id); a run logged before runs were tagged with the id, when it started
    once the study existed (another study of the name, deleted and made again or in another storage,
    logged its runs before)."""
    tagged, copy_id = run.data.tags.get(ID_TAG), getattr(study, "copy_id", None)
    if tagged is not None or not isinstance(copy_id, str):
        return tagged == copy_id
    return bool(run.info.start_time >= _ms(getattr(study, "created", 0) or 0))


def _logged_to_the_end(run: Any) -> bool:
    """Whether a trial's run was logged to its end: its state tag written and the run ended with that state's
    status (a run killed between its last batch and its end holds the tag but is still RUNNING; one a Ctrl-C cut
    was ended KILLED: caught up, not left so for good), and not deleted (in MLflow's trash: restored)."""
    status = _STATUS_OF.get(run.data.tags.get(STATE_TAG, ""))
    return status == run.info.status and run.info.lifecycle_stage != "deleted"


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _name_tags(renamed: dict[str, str], limit: int = 5000) -> list[Any]:
    """``renamed`` (logged name -> the study's) as tags ``tunesmith.param_names``,
    ``tunesmith.param_names.2``...: each a JSON object of at most ``limit`` characters (MLflow's
    limit for a tag before 2.17: any MLflow takes them), which together hold every name; a study's name too long
    for one tag is cut."""
    parts: list[dict[str, str]] = []
    for key, name in renamed.items():
        entry = {key: name}
        while len(json.dumps(entry)) > limit:  # a name of thousands of characters: cut to fit
            entry[key] = entry[key][: len(entry[key]) - (len(json.dumps(entry)) - limit) // 6 - 1]
        if not parts or len(json.dumps({**parts[-1], **entry})) > limit:
            parts.append({})
        parts[-1].update(entry)
    return [RunTag(NAMES_TAG + (f".{i}" if i > 1 else ""), json.dumps(part)) for i, part in enumerate(parts, 1)]


def _attr_keys(names: list[str], held: dict[str, str]) -> dict[str, str]:
    """Each attribute's key after ``attr.`` (:func:`_param_keys`, within MLflow's limit less ``attr.``), or the key
    the run already holds it under (``held``: its tags), logged by a tunesmith that cut keys in characters only (a
    name of letters of two or more bytes, on a SQL store): catching the run up wrote a second tag of the attribute."""
    most = _KEY_LIMIT - len(_ATTR)
    if not (keys := _param_keys(names, most=most)) or not any(k.startswith(_ATTR) for k in held):
        return keys  # a new run
    earlier, made = _param_keys(names, most=most, in_bytes=False), set(keys.values())
    return {n: old if _ATTR + old in held and old not in made else keys[n] for n, old in earlier.items()}


def _param_keys(names: list[str], *, most: int = _KEY_LIMIT, in_bytes: bool = True) -> dict[str, str]:
    """Each parameter's name as MLflow accepts it: characters other than letters, digits and
    ``_ - . : / space`` become ``_`` (``"layers (n)"`` -> ``"layers _n_"``), and so do the
    slashes of a name that is not a clean relative path (``"a//b"``, ``"../x"``); at most ``most``
    characters and bytes (characters only where not ``in_bytes``; MLflow's limit of a key, less a prefix such as
    ``attr.``; its file store, and the artifact that keeps a value too long for MLflow, name a file by the key:
    255 bytes at most), made
    unique within them (two names alike in their first 250 characters: the second's ``_2`` passed the
    limit, and MLflow refused the trial's run, ending optimize)."""
    keys: dict[str, str] = {}
    taken = set(names)
    for name in names:
        key = _cut(re.sub(r"[^\w\-. :/]", "_", name), most, in_bytes)
        norm = posixpath.normpath(key)
        if norm != key or norm == "." or norm.startswith(("..", "/")):  # MLflow refuses these too
            key = key.replace("/", "_").replace("..", "__") if key not in (".", "") else "_"
        if key != name:
            base, i = key, 2
            while key in taken:
                key, i = f"{_cut(base, most - len(str(i)) - 1, in_bytes)}_{i}", i + 1
            taken.add(key)
        keys[name] = key
    return keys


def _cut(text: str, most: int, in_bytes: bool = True) -> str:
    """``text``'s start of at most ``most`` characters, and bytes of UTF-8 where ``in_bytes``."""
    return text.encode("utf-8", "surrogatepass")[:most].decode("utf-8", "ignore") if in_bytes else text[:most]


def _search(client: Any, experiment_id: str, study: str, where: str, *, limit: int, deleted: bool = True) -> list[Any]:
    """The runs of ``study`` matching ``where``, those in MLflow's trash too (``deleted``; after the others, so
    that a run made again beside a deleted one is taken). MLflow's filter strings cannot hold a quote or
    a backslash (an escaped one matches nothing), so such a study name is compared here."""
    exact = "'" not in study and "\\" not in study
    clause = f"tags.`{STUDY_TAG}` = '{study}'" if exact else ""
    where = " AND ".join(w for w in (clause, where) if w)
    view = mlflow.entities.ViewType.ALL if deleted else mlflow.entities.ViewType.ACTIVE_ONLY
    runs = client.search_runs([experiment_id], filter_string=where, run_view_type=view,
                              max_results=limit if exact else 50_000)  # fmt: skip
    runs = sorted(runs, key=lambda r: r.info.lifecycle_stage == "deleted")
    return [r for r in runs if r.data.tags.get(STUDY_TAG) == study][:limit]


def experiment_by_name(client: Any, name: str) -> Any:
    """``client.get_experiment_by_name(name)``, also for a name with a quote or a backslash
    (which MLflow's file store puts unescaped into a filter string, and fails)."""
    if "'" not in name and "\\" not in name:
        return client.get_experiment_by_name(name)
    token = None
    while True:
        page = client.search_experiments(view_type=mlflow.entities.ViewType.ALL, max_results=1000, page_token=token)
        found = next((e for e in page if e.name == name), None)
        if found is not None or not page.token:
            return found
        token = page.token


def trial_runs(client: Any, experiment_id: str, study: str, *, deleted: bool = False) -> list[Any]:
    """The runs of ``study``'s trials in an experiment, by trial number (``deleted``: those in MLflow's trash
    too). A run whose trial tag is no trial number (made by another user of the tracking store) is none of them."""
    runs = _search(client, experiment_id, study, "", limit=50_000, deleted=deleted)
    numbered = [(n, r) for r in runs if (n := _trial_number(r)) is not None]
    return [r for _, r in sorted(numbered, key=lambda pair: pair[0])]


def _trial_number(run: Any) -> int | None:
    """The trial number a run's tag names, as this callback writes it (digits), or None."""
    tag = run.data.tags.get(TRIAL_TAG)
    return as_count(tag)

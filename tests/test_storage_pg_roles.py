"""A PostgreSQL database shared by a team: another role that may create objects in the schema
holding tunesmith's tables defines operators and functions that fit tunesmith's queries better
than PostgreSQL's own (the attack of CVE-2018-1058). A worker must never call them: each of its
connections searches only pg_catalog (and pg_temp, last) and names its tables with their schema.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from pg import PostgresServer  # tests/ is on the path (conftest.py)

import tunesmith as ts
from tunesmith.exceptions import StorageError

psycopg = pytest.importorskip("psycopg")

SPACE = {"x": ts.Float(-5, 5), "k": ts.Categorical(["a", "b"])}
_numbers = itertools.count()

#: what the other role defines: operators and functions that a worker's query (or SQLAlchemy's
#: own, reading the catalog) would call in place of PostgreSQL's, each logging its name and the
#: role that ran it into a table of that role's
SHADOWS = {
    # varchar columns (name, state, token, key) compared with a text parameter: an exact match,
    # where PostgreSQL's own operators take text
    "=(varchar,varchar)": "OPERATOR {s}.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = {s}.{f})",
    "<>(varchar,varchar)": "OPERATOR {s}.<> (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = {s}.{f})",
    "=(varchar,text)": "OPERATOR {s}.= (LEFTARG = varchar, RIGHTARG = text, FUNCTION = {s}.{f})",
    # the catalog's name columns compared with a varchar parameter (SQLAlchemy's reflection)
    "=(name,varchar)": "OPERATOR {s}.= (LEFTARG = name, RIGHTARG = varchar, FUNCTION = {s}.{f})",
    # the driver's type lookup at the first connection (oid = to_regtype(...))
    "=(oid,regtype)": "OPERATOR {s}.= (LEFTARG = oid, RIGHTARG = regtype, FUNCTION = {s}.{f})",
}
@dataclass
class Team:
    admin: str  # the superuser's libpq DSN of the team's database
    url: str  # the worker role's SQLAlchemy URL
    worker: str
    other: str

    def sql(self, *statements: str) -> list[tuple[object, ...]]:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            rows: list[tuple[object, ...]] = []
            for s in statements:
                cur = conn.execute(s)
                rows = cur.fetchall() if cur.description else []
            return rows


@pytest.fixture
def team(pg_server: PostgresServer) -> Iterator[Team]:
    """A fresh database; a worker role, and another role, both with CREATE on schema public."""
    n = f"{os.getpid()}_{next(_numbers)}"
    db, worker, other = f"team{n}", f"tuner{n}", f"other{n}"
    pg_server.create_database(db)
    t = Team(pg_server.dsn(db), pg_server.url(db).replace("postgres@", f"{worker}@"), worker, other)
    t.sql(f"CREATE ROLE {worker} LOGIN", f"CREATE ROLE {other} LOGIN",
          f"GRANT CREATE ON SCHEMA public TO {worker}, {other}")
    yield t
    with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as conn:
        for s in (f'DROP DATABASE "{db}" WITH (FORCE)', f"DROP ROLE {worker}", f"DROP ROLE {other}"):
            conn.execute(s)


def _plant(team: Team, schema: str) -> None:
    """As the other role: a log table the worker may write, and the shadowing operators and
    functions in ``schema`` (each logs, then does what PostgreSQL's own would)."""
    with psycopg.connect(team.admin, autocommit=True) as conn:
        conn.execute(f"SET ROLE {team.other}")
        conn.execute(f"CREATE TABLE {schema}.loot (shadow text, who text)")
        conn.execute(f"GRANT INSERT ON {schema}.loot TO PUBLIC")
        # counts every call, also those of transactions rolled back (SQLAlchemy's first connection)
        conn.execute(f"CREATE SEQUENCE {schema}.calls")
        conn.execute(f"GRANT USAGE ON SEQUENCE {schema}.calls TO PUBLIC")
        for i, (label, operator) in enumerate(SHADOWS.items()):
            left, right = label[label.index("(") + 1:-1].split(",")
            f = f"shadow{i}"
            op = label[:label.index("(")]
            same = f"a OPERATOR(pg_catalog.{op}) b::oid" if right == "regtype" else f"a::text {op} b::text"
            conn.execute(
                f"CREATE FUNCTION {schema}.{f}(a {left}, b {right}) RETURNS boolean LANGUAGE plpgsql AS $$ "
                f"BEGIN INSERT INTO {schema}.loot VALUES ('{label}', current_user); "
                f"PERFORM pg_catalog.nextval('{schema}.calls'); RETURN {same}; END $$")
            conn.execute("CREATE " + operator.format(s=schema, f=f))
        conn.execute(
            f"CREATE FUNCTION {schema}.pg_advisory_xact_lock(k integer) RETURNS void LANGUAGE plpgsql AS $$ "
            f"BEGIN INSERT INTO {schema}.loot VALUES ('pg_advisory_xact_lock(integer)', current_user); "
            f"PERFORM pg_catalog.nextval('{schema}.calls'); END $$")


def _run_study(url: str) -> ts.Study:
    study = ts.Study(SPACE, sampler="random", seed=0, storage=url, name="victim")
    study.optimize(lambda t: t.params["x"] ** 2 + (t.params["k"] == "b"), n_trials=4)
    again = ts.Study.load("victim", storage=url)  # a second worker: opens the tables, reads the study
    assert [t.number for t in again.trials] == [0, 1, 2, 3]
    storage = ts.SQLStorage(url)
    storage.rename_study("victim", "victim2")
    storage.rename_study("victim2", "victim")
    storage.close()
    return study


def test_another_roles_operators_never_run_in_a_worker(team: Team) -> None:
    _plant(team, "public")
    study = _run_study(team.url)
    assert len(study.trials) == 4 and all(t.state is ts.TrialState.COMPLETE for t in study.trials)
    assert team.sql("SELECT shadow, who, count(*) FROM public.loot GROUP BY 1, 2") == []
    assert team.sql("SELECT is_called FROM public.calls") == [(False,)]
    # the shadows are live, and putting pg_catalog first does not stop them: an operator of closer
    # argument types wins wherever it is on the path (before, a run of this test called them 2,730 times, 879 in
    # transactions that committed)
    team.sql(f"SET ROLE {team.worker}", "SET search_path TO pg_catalog, public, pg_temp",
             "SELECT count(*) FROM ts_studies WHERE name = 'victim'")
    assert ("=(varchar,varchar)", team.worker) in team.sql("SELECT shadow, who FROM public.loot")


def test_a_schema_named_in_the_url_holds_the_tables_and_is_searched_by_no_query(
    team: Team, caplog: pytest.LogCaptureFixture
) -> None:
    team.sql(f"CREATE SCHEMA team AUTHORIZATION {team.worker}", f"GRANT USAGE, CREATE ON SCHEMA team TO {team.other}")
    _plant(team, "team")
    url = team.url + "?options=-csearch_path%3Dteam"
    with caplog.at_level(logging.WARNING, logger="tunesmith"):
        _run_study(url)
    assert team.sql("SELECT shadow, who FROM team.loot") == []
    assert team.sql("SELECT is_called FROM team.calls") == [(False,)]
    tables = team.sql("SELECT schemaname, tablename FROM pg_tables WHERE tablename LIKE 'ts\\_%' ORDER BY 2")
    assert tables == [("team", "ts_meta"), ("team", "ts_studies"), ("team", "ts_trials")]
    warned = [r.getMessage() for r in caplog.records if "may create objects" in r.getMessage()]
    assert warned and team.other in warned[0] and "REVOKE CREATE ON SCHEMA team" in warned[0]


def test_a_schema_only_its_owner_may_create_in_is_not_warned_about(
    team: Team, caplog: pytest.LogCaptureFixture
) -> None:
    team.sql(f"CREATE SCHEMA team AUTHORIZATION {team.worker}")
    with caplog.at_level(logging.WARNING, logger="tunesmith"):
        _run_study(team.url + "?options=-csearch_path%3Dteam")
    assert not [r for r in caplog.records if "may create objects" in r.getMessage()]


def test_public_writable_by_another_role_is_warned_about_once_per_storage(
    team: Team, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="tunesmith"):
        storage = ts.SQLStorage(team.url)
        storage.list_studies()
        storage.close()
    warned = [r.getMessage() for r in caplog.records if "may create objects" in r.getMessage()]
    assert len(warned) == 1 and "schema public" in warned[0] and team.other in warned[0]


def test_a_search_path_naming_no_existing_schema_is_a_clear_error(team: Team) -> None:
    with pytest.raises(StorageError, match=r"no schema .*search_path.*CREATE SCHEMA"):
        ts.SQLStorage(team.url + "?options=-csearch_path%3Dnowhere")


def test_a_session_of_the_storage_searches_pg_catalog_alone(team: Team) -> None:
    storage = ts.SQLStorage(team.url)
    with storage.engine.connect() as conn:
        assert conn.execute(sa.text("SHOW search_path")).scalar_one() == "pg_catalog, pg_temp"
    storage.close()


def test_tables_the_search_path_finds_are_used_where_a_schema_before_them_appeared(team: Team) -> None:
    _run_study(team.url)  # tables in public
    team.sql(f"CREATE SCHEMA late AUTHORIZATION {team.worker}")  # first on the path now, and empty
    study = ts.Study.load("victim", storage=team.url + "?options=-csearch_path%3Dlate,public")
    assert len(study.trials) == 4
    assert team.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'late'") == []


def test_a_schema_1_database_in_a_named_schema_is_upgraded_there(team: Team) -> None:
    team.sql(f"CREATE SCHEMA team AUTHORIZATION {team.worker}")
    url = team.url + "?options=-csearch_path%3Dteam"
    _run_study(url)
    team.sql("ALTER TABLE team.ts_trials DROP COLUMN system",  # back to schema version 1
             "UPDATE team.ts_meta SET value = '1' WHERE key = 'schema_version'")
    assert len(ts.Study.load("victim", storage=url).trials) == 4
    assert team.sql("SELECT value FROM team.ts_meta WHERE key = 'schema_version'") == [("2",)]
    assert team.sql("SELECT count(*) FROM pg_indexes WHERE schemaname = 'team' AND indexname = 'ts_trials_state'") == [(1,)]


def _objective(trial: ts.Trial) -> float:  # importable by process workers
    return float(trial.params["x"] ** 2)


def _no_loot(team: Team, schema: str = "public") -> None:
    assert team.sql(f"SELECT shadow, who, count(*) FROM {schema}.loot GROUP BY 1, 2") == []
    assert team.sql(f"SELECT is_called FROM {schema}.calls") == [(False,)]


def test_every_other_query_path_calls_no_operator_of_another_role(team: Team, capsys: pytest.CaptureFixture[str]) -> None:
    """Process workers, a second worker's incremental refresh (with trials still running), the
    dashboard's cache, the manage commands: none calls what the other role planted."""
    from starlette.testclient import TestClient

    from tunesmith.cli import main
    from tunesmith.dashboard import create_app, open_storage

    _plant(team, "public")
    study = ts.Study(SPACE, sampler="random", seed=0, storage=team.url, name="victim", direction="maximize")
    study.optimize(_objective, n_trials=4, n_jobs=2, executor="process")
    other = ts.Study.load("victim", storage=team.url)
    assert len(other.trials) == 4
    running = [study.ask(), study.ask()]
    study.tell(running[0], 1.0)
    study.add_note("ünï")
    assert [t.state for t in other.trials[4:]] == [ts.TrialState.COMPLETE, ts.TrialState.RUNNING]
    study.tell(running[1], 3.0)
    assert other.trials[5].state is ts.TrialState.COMPLETE  # refreshed since number 4, with 5 live
    with TestClient(create_app(open_storage(team.url, allow_writes=False))) as c:
        assert "victim" in {s["name"] for s in c.get("/api/studies").json()["studies"]}
        first = c.get("/api/studies/victim/changes?since=").json()
        study.tell(study.ask(), 2.0)
        assert c.get(f"/api/studies/victim/changes?since={first['version']}").status_code == 200
        assert c.get("/api/studies/victim/plots/history").status_code == 200
    for argv in (["studies"], ["show", "victim"], ["export", "victim", "--format", "json"],
                 ["note", "victim", "looked at"], ["copy", "victim", "copied"], ["rename", "copied", "copy2"],
                 ["delete", "copy2", "--yes"]):
        assert main([*argv, "--storage", team.url]) == 0, argv
    capsys.readouterr()
    _no_loot(team)


def test_a_schema_1_database_is_upgraded_calling_no_operator_of_another_role(team: Team) -> None:
    _run_study(team.url)
    team.sql("ALTER TABLE public.ts_trials DROP COLUMN system",
             "UPDATE public.ts_meta SET value = '1' WHERE key = 'schema_version'")
    _plant(team, "public")
    assert len(ts.Study.load("victim", storage=team.url).trials) == 4
    _no_loot(team)  # before this test's own query below, whose session searches public
    assert team.sql("SELECT value FROM public.ts_meta WHERE key = 'schema_version'") == [("2",)]


@pytest.mark.slow
def test_ray_workers_call_no_operator_of_another_role(team: Team, ray_local: object) -> None:
    def objective(trial: ts.Trial) -> float:  # shipped by value: Ray's workers cannot import this module
        return float(trial.params["x"] ** 2)

    _plant(team, "public")
    study = ts.Study(SPACE, sampler="random", seed=0, storage=team.url, name="victim")
    study.optimize(objective, n_trials=4, n_jobs=2, executor="ray")
    assert len(study.trials) == 4 and all(t.state is ts.TrialState.COMPLETE for t in study.trials)
    _no_loot(team)


def test_a_schema_whose_name_needs_quoting_holds_the_tables(team: Team) -> None:
    team.sql(f'CREATE SCHEMA "Équipe" AUTHORIZATION {team.worker}')
    url = team.url + "?options=-csearch_path%3D%22%C3%89quipe%22"
    _run_study(url)
    team.sql('ALTER TABLE "Équipe".ts_trials DROP COLUMN system',  # schema version 1: upgraded there
             """UPDATE "Équipe".ts_meta SET value = '1' WHERE key = 'schema_version'""")
    assert len(ts.Study.load("victim", storage=url).trials) == 4
    assert team.sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'Équipe'") == [(3,)]
    assert team.sql("""SELECT value FROM "Équipe".ts_meta WHERE key = 'schema_version'""") == [("2",)]

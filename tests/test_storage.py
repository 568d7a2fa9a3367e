"""Tests of lightning_ticktock.storage: one conformance suite over every backend, then
SQLite specifics (reopen, schema version, WAL, pickling, processes, kill -9)."""

from __future__ import annotations

import math
import multiprocessing
import os
import pathlib
import pickle
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading

import pytest

from lightning_ticktock import storage as storage_mod
from lightning_ticktock.errors import StorageError, TickTockTypeError, TickTockValueError
from lightning_ticktock.space import Choice, Float, Int, SearchSpace
from lightning_ticktock.storage import (
    SCHEMA_VERSION,
    BaseStorage,
    InMemoryStorage,
    Owner,
    SQLiteStorage,
    get_storage,
)
from lightning_ticktock.trial import Trial

SPACE = SearchSpace([Float("lr", 1e-4, 1.0, log=True), Int("epochs", 1, 20),
                     Choice("opt", ["adam", "sgd"])])
PARAMS = {"lr": 0.01, "epochs": 5, "opt": "adam"}


def _trial(tid: int, **kw) -> Trial:
    kw.setdefault("params", dict(PARAMS))
    kw.setdefault("phase", "initial")
    return Trial(id=tid, **kw)


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


@pytest.fixture(params=["memory", "sqlite"])
def storage(request, tmp_path):
    s = InMemoryStorage() if request.param == "memory" else SQLiteStorage(tmp_path / "s.db")
    yield s
    s.close()


@pytest.fixture
def clock(monkeypatch):
    """A settable wall clock for heartbeats and completion stamps."""
    now = [1000.0]
    monkeypatch.setattr(storage_mod, "_now", lambda: now[0])
    return now


# ------------------------------------------------------------------ conformance suite


def test_empty_storage(storage):
    assert storage.load_space() is None
    assert storage.get_settings() == {}
    assert storage.load_trials() == []
    assert storage.load_queue() == []
    assert storage.next_trial_id() == 0


def test_open_study_records_space_and_settings(storage):
    storage.open_study(SPACE, {"max_cost": 10.0, "seed": 3})
    assert storage.load_space() == SPACE
    assert storage.get_settings() == {"max_cost": 10.0, "seed": 3}
    # Resume: same space, a new budget is recorded, other settings stay.
    storage.open_study(list(SPACE), {"max_cost": 20.0})
    assert storage.get_settings() == {"max_cost": 20.0, "seed": 3}
    storage.set_settings(seed=4, note="x")
    assert storage.get_settings() == {"max_cost": 20.0, "seed": 4, "note": "x"}


def test_open_study_with_another_space_raises(storage):
    storage.open_study(SPACE, {"max_cost": 10.0})
    other = SearchSpace([Float("lr", 1e-3, 1.0, log=True), Int("epochs", 1, 20)])
    with pytest.raises(StorageError, match=r"another search space.*'lr' differs.*'opt' only "
                                           r"in the first.*another storage path.*same space"):
        storage.open_study(other, {"max_cost": 10.0})
    # Nothing changed.
    assert storage.load_space() == SPACE


def test_settings_type_errors(storage):
    with pytest.raises(TickTockTypeError, match="settings=.*must be a dict"):
        storage.open_study(SPACE, [("max_cost", 1.0)])
    with pytest.raises(TickTockTypeError, match=r"settings\['bad'\].*JSON-serializable"):
        storage.set_settings(bad=object())
    with pytest.raises(TickTockTypeError, match="keys .* must be strings"):
        storage.open_study(SPACE, {1: 2})
    assert storage.load_space() is None  # the failed calls left nothing behind


def test_trial_round_trip_every_field(storage):
    nan, inf = float("nan"), float("inf")
    t = _trial(0, phase="added", status="completed", loss=nan, cost=inf, elapsed=-inf,
               projected_cost=4.5, error="boom", datetime_start=12.5, datetime_complete=13.5,
               metrics=[{"step": 1, "val_loss": nan}, {"step": 2, "val_loss": 0.5,
                                                       "nested": {"a": [1, 2]}}])
    storage.insert_trial(t)
    (got,) = storage.load_trials()
    assert math.isnan(got.loss) and got.cost == inf and got.elapsed == -inf
    assert math.isnan(got.metrics[0]["val_loss"])
    expected, actual = t.to_dict(), got.to_dict()
    for d in (expected, actual):  # NaN != NaN: compare everything else
        d["loss"] = "nan"
        d["metrics"][0]["val_loss"] = "nan"
    assert actual == expected
    assert storage.get_trial(0).to_dict()["params"] == PARAMS


def test_none_fields_round_trip(storage):
    t = _trial(0)
    storage.insert_trial(t)
    got = storage.get_trial(0)
    assert got.to_dict() == t.to_dict()
    assert (got.status, got.loss, got.cost, got.datetime_complete) == ("running", None, None,
                                                                       None)


def test_load_trials_in_id_order_and_fresh_copies(storage):
    for tid in (3, 0, 7):
        storage.insert_trial(_trial(tid))
    trials = storage.load_trials()
    assert [t.id for t in trials] == [0, 3, 7]
    assert storage.next_trial_id() == 8
    trials[0].params["lr"] = 0.5
    trials[0].metrics.append({"x": 1})
    assert storage.get_trial(0).params == PARAMS
    assert storage.get_trial(0).metrics == []
    # The object passed in is not kept either.
    t = _trial(8)
    storage.insert_trial(t)
    t.params["lr"] = 0.9
    assert storage.get_trial(8).params["lr"] == 0.01


def test_insert_existing_id_raises(storage):
    storage.insert_trial(_trial(0))
    with pytest.raises(StorageError, match="trial 0 already exists.*next_trial_id"):
        storage.insert_trial(_trial(0, phase="tick"))
    assert storage.get_trial(0).phase == "initial"


def test_insert_validates_fields(storage):
    with pytest.raises(TickTockTypeError, match="must be a lightning_ticktock Trial"):
        storage.insert_trial({"id": 0})
    with pytest.raises(TickTockValueError, match=r"trial.id=-1 must be >= 0"):
        storage.insert_trial(_trial(-1))
    with pytest.raises(TickTockTypeError, match=r"trial.id='a' must be an int"):
        storage.insert_trial(_trial("a"))
    with pytest.raises(TickTockTypeError, match="trial 0: loss='0.3' must be a float or None"):
        storage.insert_trial(_trial(0, loss="0.3"))
    with pytest.raises(TickTockTypeError, match="trial 0: params=.*JSON-serializable"):
        storage.insert_trial(_trial(0, params={"lr": object()}))
    with pytest.raises(TickTockTypeError, match=r"trial 0: metrics\[0\]=.*must be a dict"):
        storage.insert_trial(_trial(0, metrics=[1.0]))
    with pytest.raises(TickTockTypeError, match="trial 0: error=3 must be a str"):
        storage.insert_trial(_trial(0, error=3))
    bad = _trial(0)
    bad.status = "done"
    with pytest.raises(TickTockValueError, match="status='done' is not one of"):
        storage.insert_trial(bad)
    assert storage.load_trials() == []


def test_get_trial_unknown_raises(storage):
    with pytest.raises(StorageError, match=r"get_trial: no trial with id 4 .*\(no trials\)"):
        storage.get_trial(4)
    storage.insert_trial(_trial(0))
    with pytest.raises(StorageError, match="no trial with id 4 .*ids up to 0"):
        storage.get_trial(4)


def test_update_trial_writes_results(storage, clock):
    t = _trial(0, datetime_start=5.0)
    storage.insert_trial(t)
    t.projected_cost = 9.0
    t.elapsed = 1.0
    storage.update_trial(t)  # a running trial may change any number of times
    assert storage.get_trial(0).projected_cost == 9.0
    clock[0] = 1050.0
    t.status, t.loss, t.cost, t.elapsed = "completed", 0.25, 3.0, 3.5
    t.params = {"lr": 0.5}  # ignored: fixed at insert
    t.phase = "tock"
    storage.update_trial(t)
    got = storage.get_trial(0)
    assert (got.status, got.loss, got.cost, got.elapsed, got.projected_cost) == (
        "completed", 0.25, 3.0, 3.5, 9.0)
    assert got.params == PARAMS and got.phase == "initial" and got.datetime_start == 5.0
    assert got.datetime_complete == 1050.0  # stamped when it left running


@pytest.mark.parametrize("final", ["completed", "early_stopped", "failed", "interrupted"])
def test_final_trials_are_immutable(storage, final):
    t = _trial(0)
    storage.insert_trial(t)
    t.status, t.error = final, "e"
    storage.update_trial(t)
    t.status = "running"
    with pytest.raises(StorageError, match=f"trial 0 is already {final}.*immutable"):
        storage.update_trial(t)
    with pytest.raises(StorageError, match=f"append_metrics: trial 0 is already {final}"):
        storage.append_metrics(0, {"step": 1})
    assert storage.get_trial(0).status == final
    assert storage.heartbeat(0) is False
    assert storage.mark_interrupted(0) is False


def test_update_unknown_trial_raises(storage):
    with pytest.raises(StorageError, match="update_trial: no trial with id 0"):
        storage.update_trial(_trial(0))


def test_metrics_are_append_only(storage):
    storage.insert_trial(_trial(0))
    storage.append_metrics(0, {"step": 1, "val_loss": 0.9})
    storage.append_metrics(0, {"step": 2, "val_loss": 0.8})
    assert storage.get_trial(0).metrics == [{"step": 1, "val_loss": 0.9},
                                            {"step": 2, "val_loss": 0.8}]
    # A stale copy without the records loses nothing.
    stale = _trial(0)
    storage.update_trial(stale)
    assert len(storage.get_trial(0).metrics) == 2
    # An extension appends the new records (key order does not matter).
    fresh = storage.get_trial(0)
    fresh.metrics[0] = {"val_loss": 0.9, "step": 1}
    fresh.metrics.append({"step": 3, "val_loss": 0.7})
    storage.update_trial(fresh)
    assert [m["step"] for m in storage.get_trial(0).metrics] == [1, 2, 3]
    # A contradiction is refused.
    fresh.metrics[1] = {"step": 2, "val_loss": 0.1}
    with pytest.raises(StorageError, match=r"metrics\[1\] differs.*append-only"):
        storage.update_trial(fresh)
    assert storage.get_trial(0).metrics[1]["val_loss"] == 0.8


def test_append_metrics_errors(storage):
    with pytest.raises(StorageError, match="append_metrics: no trial with id 0"):
        storage.append_metrics(0, {"step": 1})
    storage.insert_trial(_trial(0))
    with pytest.raises(TickTockTypeError, match="record=.*must be a dict"):
        storage.append_metrics(0, [1, 2])
    with pytest.raises(TickTockTypeError, match="record=.*JSON-serializable"):
        storage.append_metrics(0, {"step": object()})
    assert storage.get_trial(0).metrics == []


def test_heartbeat_and_owner(storage, clock):
    storage.insert_trial(_trial(0))
    assert storage.get_heartbeat(0) == 1000.0
    assert storage.get_owner(0) == Owner.current()
    clock[0] = 1010.0
    other = Owner("elsewhere", 42)
    assert storage.heartbeat(0, owner=other) is True
    assert storage.get_heartbeat(0) == 1010.0
    assert storage.get_owner(0) == other
    clock[0] = 1020.0
    storage.append_metrics(0, {"step": 1})  # counts as a beat
    assert storage.get_heartbeat(0) == 1020.0
    with pytest.raises(StorageError, match="heartbeat: no trial with id 5"):
        storage.heartbeat(5)
    with pytest.raises(TickTockTypeError, match="owner=.*Owner"):
        storage.heartbeat(0, owner="me")


def test_fail_stale_trials(storage, clock):
    storage.insert_trial(_trial(0))  # beats at 1000
    storage.insert_trial(_trial(1, status="completed", loss=0.1))
    clock[0] = 1050.0
    storage.insert_trial(_trial(2))  # beats at 1050
    clock[0] = 1100.0
    assert storage.fail_stale_trials(grace_seconds=60.0) == [0]
    stale = storage.get_trial(0)
    assert (stale.status, stale.datetime_complete) == ("interrupted", 1100.0)
    assert storage.get_trial(1).datetime_complete == 1000.0  # untouched
    assert storage.get_trial(2).status == "running"
    assert storage.heartbeat(0) is False  # the old owner learns it should stop
    with pytest.raises(StorageError, match="already interrupted"):
        storage.update_trial(_trial(0, status="completed"))
    assert storage.fail_stale_trials(grace_seconds=60.0) == []


@pytest.mark.parametrize("grace, error", [(0, TickTockValueError), (-1.0, TickTockValueError),
                                          (float("nan"), TickTockValueError),
                                          ("10", TickTockTypeError)])
def test_fail_stale_trials_validates_grace(storage, grace, error):
    with pytest.raises(error, match="grace_seconds="):
        storage.fail_stale_trials(grace)


def test_mark_interrupted(storage, clock):
    storage.insert_trial(_trial(0))
    clock[0] = 1005.0
    assert storage.mark_interrupted(0) is True
    assert storage.get_trial(0).datetime_complete == 1005.0
    assert storage.mark_interrupted(0) is False
    with pytest.raises(StorageError, match="mark_interrupted: no trial with id 1"):
        storage.mark_interrupted(1)


def test_interrupt_dead_owner_trials(storage):
    host = socket.gethostname()
    storage.insert_trial(_trial(0, status="completed", loss=0.1), owner=Owner(host, _dead_pid()))
    storage.insert_trial(_trial(1), owner=Owner(host, _dead_pid()))
    storage.insert_trial(_trial(2))  # owned by this (live) process
    storage.insert_trial(_trial(3), owner=Owner(host + "-other", _dead_pid()))  # unknowable
    assert storage.interrupt_dead_owner_trials() == [1]
    assert [t.status for t in storage.load_trials()] == ["completed", "interrupted", "running",
                                                         "running"]
    assert storage.interrupt_dead_owner_trials() == []


def test_queue(storage):
    a, b = {"lr": 0.1, "epochs": 2}, {"lr": 0.2, "epochs": 2}
    assert storage.enqueue(a) is True
    assert storage.enqueue(b) is True
    assert storage.enqueue({"epochs": 2.0, "lr": 0.1}) is False  # same params
    assert storage.load_queue() == [a, b]
    assert storage.remove_from_queue({"epochs": 2, "lr": 0.1}) is True
    assert storage.remove_from_queue(a) is False
    assert storage.load_queue() == [b]
    assert storage.enqueue(a) is True  # may come back after removal, at the end
    assert storage.load_queue() == [b, a]
    queue = storage.load_queue()
    queue[0]["lr"] = 9.0
    assert storage.load_queue()[0]["lr"] == 0.2
    with pytest.raises(TickTockTypeError, match="enqueue: params=.*must be a dict"):
        storage.enqueue([0.1])
    with pytest.raises(TickTockTypeError, match="enqueue: params=.*JSON-serializable"):
        storage.enqueue({"lr": object()})
    with pytest.raises(TickTockTypeError, match="remove_from_queue: params="):
        storage.remove_from_queue(None)


def test_transaction_rolls_back_on_error(storage):
    storage.insert_trial(_trial(0))
    with pytest.raises(RuntimeError, match="decide failed"):
        with storage.transaction():
            storage.insert_trial(_trial(1))
            storage.enqueue(PARAMS)
            storage.set_settings(max_cost=1.0)
            storage.append_metrics(0, {"step": 1})
            raise RuntimeError("decide failed")
    assert [t.id for t in storage.load_trials()] == [0]
    assert storage.load_queue() == [] and storage.get_settings() == {}
    assert storage.get_trial(0).metrics == []


def test_transaction_is_reentrant(storage):
    with storage.transaction():
        storage.insert_trial(_trial(storage.next_trial_id()))
        with storage.transaction():
            storage.insert_trial(_trial(storage.next_trial_id()))
        with pytest.raises(StorageError):
            with storage.transaction():  # an inner failure is rolled back alone
                storage.insert_trial(_trial(2))
                storage.insert_trial(_trial(0))
        assert storage.next_trial_id() == 2
    assert [t.id for t in storage.load_trials()] == [0, 1]


def test_threads_claim_unique_ids(storage):
    def claim() -> None:
        for _ in range(10):
            with storage.transaction():
                storage.insert_trial(_trial(storage.next_trial_id()))

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert [t.id for t in storage.load_trials()] == list(range(40))


def test_pickle_round_trip(storage):
    storage.open_study(SPACE, {"max_cost": 1.0})
    storage.insert_trial(_trial(0))
    copy = pickle.loads(pickle.dumps(storage))
    assert copy.load_space() == SPACE
    assert [t.id for t in copy.load_trials()] == [0]
    copy.insert_trial(_trial(1))
    # A SQLite copy shares the file; an in-memory copy is an independent study.
    expected = [0, 1] if isinstance(storage, SQLiteStorage) else [0]
    assert [t.id for t in storage.load_trials()] == expected
    copy.close()


def test_get_storage(tmp_path):
    assert isinstance(get_storage(None), InMemoryStorage)
    s = InMemoryStorage()
    assert get_storage(s) is s
    by_str = get_storage(str(tmp_path / "a" / "b" / "s.db"))
    by_path = get_storage(tmp_path / "c" / "s.db")
    assert isinstance(by_str, SQLiteStorage) and isinstance(by_path, SQLiteStorage)
    assert (tmp_path / "a" / "b" / "s.db").exists() and (tmp_path / "c" / "s.db").exists()
    assert isinstance(by_str, BaseStorage)
    with pytest.raises(TickTockTypeError, match="storage=3 must be None .* or a BaseStorage"):
        get_storage(3)
    with pytest.raises(TickTockTypeError, match="storage=b'x.db'"):
        get_storage(b"x.db")
    by_str.close()
    by_path.close()


# --------------------------------------------------------------------- SQLite specifics


def test_sqlite_reopen_round_trip(tmp_path):
    path = tmp_path / "study.db"
    with SQLiteStorage(path) as s:
        s.open_study(SPACE, {"max_cost": 10.0})
        s.insert_trial(_trial(0, status="completed", loss=0.5, cost=1.0, metrics=[{"s": 1}]))
        s.insert_trial(_trial(1))
        s.append_metrics(1, {"step": 1, "val_loss": float("inf")})
        s.enqueue({"lr": 0.3, "epochs": 3, "opt": "sgd"})
        before = [t.to_dict() for t in s.load_trials()]
    with SQLiteStorage(str(path)) as again:
        assert [t.to_dict() for t in again.load_trials()] == before
        assert again.load_space() == SPACE
        assert again.get_settings() == {"max_cost": 10.0}
        assert again.load_queue() == [{"lr": 0.3, "epochs": 3, "opt": "sgd"}]
        assert again.next_trial_id() == 2
        with pytest.raises(StorageError, match="'epochs' only in the first space"):
            again.open_study(SearchSpace([SPACE.params[0], SPACE.params[2]]))


def test_sqlite_schema_version_mismatch(tmp_path):
    path = tmp_path / "study.db"
    SQLiteStorage(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(StorageError, match=rf"schema version 99 .*supports only schema version "
                                           rf"{SCHEMA_VERSION}; use a new storage path, or "
                                           "install the lightning_ticktock version that wrote"):
        SQLiteStorage(path)


def test_sqlite_foreign_files(tmp_path):
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(StorageError, match=r"not a lightning_ticktock study.*\['t'\].*new "
                                           "storage path"):
        SQLiteStorage(other)
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a database at all " * 50)
    with pytest.raises(StorageError, match="not an SQLite database"):
        SQLiteStorage(text)
    with pytest.raises(TickTockValueError, match="use InMemoryStorage"):
        SQLiteStorage(":memory:")
    with pytest.raises(TickTockTypeError, match="path must be a str"):
        SQLiteStorage(3)
    with pytest.raises(TickTockValueError, match="timeout=0"):
        SQLiteStorage(tmp_path / "t.db", timeout=0)


def test_sqlite_wal_mode_and_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = SQLiteStorage("rel.db")
    assert s.path == str(tmp_path / "rel.db")  # absolute: copies elsewhere find it
    s.insert_trial(_trial(0))
    conn = sqlite3.connect(tmp_path / "rel.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT status FROM trials").fetchall() == [("running",)]
    conn.close()
    s.close()


def test_sqlite_nan_is_stored_as_text_not_null(tmp_path):
    with SQLiteStorage(tmp_path / "s.db") as s:
        s.insert_trial(_trial(0, status="failed", loss=float("nan")))
        assert math.isnan(s.get_trial(0).loss)
    conn = sqlite3.connect(tmp_path / "s.db")
    assert conn.execute("SELECT loss, typeof(loss) FROM trials").fetchone() == ("NaN", "text")
    conn.close()


def test_sqlite_close_then_reuse(tmp_path):
    s = SQLiteStorage(tmp_path / "s.db")
    s.insert_trial(_trial(0))
    s.close()
    assert s.next_trial_id() == 1  # reopens lazily
    s.close()


def _claim_worker(path: str, n: int) -> None:
    storage = SQLiteStorage(path)
    for _ in range(n):
        with storage.transaction():
            tid = storage.next_trial_id()
            storage.insert_trial(Trial(id=tid, params={"worker": os.getpid()}, phase="initial"))
    storage.close()


def test_sqlite_processes_claim_unique_ids(tmp_path):
    path = str(tmp_path / "shared.db")
    SQLiteStorage(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_claim_worker, args=(path, 25)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with SQLiteStorage(path) as s:
        trials = s.load_trials()
    assert [t.id for t in trials] == list(range(100))
    assert {t.params["worker"] for t in trials} == {p.pid for p in procs}


@pytest.mark.skipif(os.name == "nt", reason="needs SIGKILL")
def test_sqlite_kill_9_loses_nothing_and_is_interrupted(tmp_path):
    path = tmp_path / "s.db"
    SQLiteStorage(path).close()
    script = textwrap.dedent(f"""
        import os, signal
        from lightning_ticktock.storage import SQLiteStorage
        from lightning_ticktock.trial import Trial
        s = SQLiteStorage({str(path)!r})
        s.insert_trial(Trial(id=0, params={{"lr": 0.1}}, phase="initial"))
        s.append_metrics(0, {{"step": 1, "val_loss": 0.5}})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    root = pathlib.Path(storage_mod.__file__).parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH",
                                                                                  "")])}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          timeout=60)
    assert proc.returncode == -9, proc.stderr.decode()
    with SQLiteStorage(path) as s:  # a restarted driver
        assert s.get_trial(0).metrics == [{"step": 1, "val_loss": 0.5}]
        assert s.interrupt_dead_owner_trials() == [0]
        assert s.get_trial(0).status == "interrupted"

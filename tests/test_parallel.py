"""Several trials at once: local worker processes, several drivers on one study file,
and processes killed mid-trial.

The module-level functions and the callback here are importable by worker processes
and by the driver subprocesses (``tests/`` is on their ``sys.path``).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import lightning.pytorch as lp
import toy_models

from lightning_ticktock import Float, Int, TickTockDriver
from lightning_ticktock.space import Choice

#: Directory where :class:`Stamp` writes one file per fit start and end.
STAMPS_ENV = "TICKTOCK_TEST_STAMPS"
#: Learning rates no Sobol point hits: a trial with DIE_LR kills its own process, one
#: with SLOW_LR trains at 0.5 s a batch (about 4 s: long enough to be killed mid-fit).
DIE_LR = 0.0123
SLOW_LR = 0.0456

# A fit of 8 batches x 1-2 epochs x 0.05 s: long enough to overlap with its neighbours.
SPACE = [Float("lr", 1e-3, 0.3, log=True), Int("epochs", 1, 2), Choice("delay", [0.05])]
OK = {"lr": 0.1, "epochs": 1, "delay": 0.05}


class Stamp(lp.Callback):
    """Records the pid and the wall-clock start and end of each fit (trial id from the
    default per-trial logger version ``trial_NNNN``)."""

    def _write(self, trainer, event: str) -> None:
        where = os.environ.get(STAMPS_ENV)
        if not where or trainer.logger is None:
            return
        trial = int(str(trainer.logger.version).rsplit("_", 1)[-1])
        path = Path(where) / f"{trial}.{event}.{os.getpid()}"
        path.write_text(json.dumps({"trial": trial, "event": event, "pid": os.getpid(),
                                    "time": time.time()}))

    def on_fit_start(self, trainer, pl_module):
        self._write(trainer, "start")

    def on_fit_end(self, trainer, pl_module):
        self._write(trainer, "end")


def stamp_callbacks(params):
    return [Stamp()]


def test_model(params):
    """The toy model; with ``lr == DIE_LR`` the process kills itself, with ``SLOW_LR``
    the model is slow."""
    if abs(params["lr"] - DIE_LR) < 1e-12:
        os.kill(os.getpid(), signal.SIGKILL)
    if abs(params["lr"] - SLOW_LR) < 1e-12:
        params = dict(params, delay=0.5)
    return toy_models.make_model(params)


test_model.__test__ = False  # not a test, despite its name


def read_stamps(where: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(where.iterdir())]


def make_driver(storage, **kw):
    kw.setdefault("model_fn", test_model)
    kw.setdefault("n_initial", 20)
    return TickTockDriver(trainer_fn=toy_models.trainer_fn, callbacks_fn=stamp_callbacks,
                          space=kw.pop("space", SPACE), max_cost=60.0, storage=storage, seed=0,
                          quiet=True, heartbeat_interval=1.0, **kw)


def test_four_local_workers_run_trials_at_once(tmp_path, monkeypatch):
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    monkeypatch.setenv(STAMPS_ENV, str(stamps))
    # n_initial=4: the later asks are model-based, made while 3 trials are pending.
    driver = make_driver(tmp_path / "s.db", n_workers=4, n_initial=4)
    study = driver.run(n_trials=8)

    trials = study.trials
    assert [t.id for t in trials] == list(range(8))
    assert all(t.status == "completed" for t in trials), [(t.id, t.error) for t in trials]
    assert study.n_finished == 8
    keys = {json.dumps(t.params, sort_keys=True) for t in trials}
    assert len(keys) == 8  # no duplicate proposals
    assert {t.phase for t in trials} & {"tick", "tock"}  # asked with trials pending

    runs = {}
    for s in read_stamps(stamps):
        runs.setdefault(s["trial"], {})[s["event"]] = s
    assert sorted(runs) == list(range(8))
    pids = {r["start"]["pid"] for r in runs.values()}
    assert len(pids) == 4 and os.getpid() not in pids  # four worker processes
    spans = sorted((r["start"]["time"], r["end"]["time"]) for r in runs.values())
    overlaps = [(a, b) for a, b in itertools.combinations(spans, 2) if b[0] < a[1]]
    assert overlaps, spans  # some fits really ran at the same time
    for t in trials:  # a trial's cost is its own fit, not the study's wall time
        start, end = runs[t.id]["start"]["time"], runs[t.id]["end"]["time"]
        assert 0 < t.cost <= (end - start) + 0.5


def test_a_killed_worker_interrupts_its_trial_only_and_the_study_goes_on(tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv(STAMPS_ENV, str(tmp_path))
    driver = make_driver(tmp_path / "s.db", n_workers=2)
    die = dict(OK, lr=DIE_LR)
    driver.enqueue(die)
    driver.enqueue(dict(OK, epochs=2))
    study = driver.run(n_trials=2)
    by_id = {t.id: t for t in study.trials}
    assert by_id[0].params == die and by_id[0].status == "interrupted"
    # The other worker's trial, running at the same time, is not taken down with it.
    assert by_id[1].status == "completed", by_id[1].error
    assert [t.status for t in study.trials].count("completed") == 2
    assert len(by_id) == 3 and study.n_finished == 2

    # The same configuration killing its worker a second time is a crash: failed, so
    # it is not proposed again and again.
    assert driver.enqueue(die)
    study = driver.run(n_trials=3)
    last = study.trials[-1]
    assert last.params == die and last.status == "failed"
    assert "worker process died" in last.error and "[0]" in last.error
    assert study.n_finished == 3


_DRIVER_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    import test_parallel
    d = test_parallel.make_driver({db!r}, n_workers=1)
    d.run(n_trials={n})
    """
)


def _rows(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    with sqlite3.connect(db, timeout=30) as con:
        try:
            return con.execute("SELECT id, status, owner_pid FROM trials").fetchall()
        except sqlite3.OperationalError:
            return []


def test_three_drivers_share_a_study_and_survive_a_sigkill(tmp_path):
    n_trials = 9
    db = tmp_path / "shared.db"
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    # One slow configuration, claimed first by whichever driver asks first.
    setup = make_driver(db)
    setup.enqueue(dict(OK, lr=SLOW_LR))
    setup.storage.close()
    script = tmp_path / "driver.py"
    script.write_text(_DRIVER_SCRIPT.format(tests=str(Path(__file__).parent), db=str(db),
                                            n=n_trials))
    env = dict(os.environ, **{STAMPS_ENV: str(stamps)})
    procs = [subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(3)]
    by_pid = {p.pid: p for p in procs}
    try:
        # Kill the driver running trial 0 once its fit has started.
        deadline = time.time() + 120
        victim = None
        while time.time() < deadline and victim is None:
            for tid, status, owner in _rows(db):
                if (tid == 0 and status == "running" and owner in by_pid
                        and list(stamps.glob("0.start.*"))):
                    victim = by_pid[owner]
            assert all(p.poll() is None for p in procs), "a driver exited early"
            time.sleep(0.05)
        assert victim is not None, "trial 0 never started"
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        for p in procs:
            if p is not victim:
                _, err = p.communicate(timeout=150)
                assert p.returncode == 0, err.decode()[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    study = make_driver(db).study
    trials = {t.id: t for t in study.trials}
    assert trials[0].status == "interrupted"  # seen dead by the other drivers
    finished = [t for t in trials.values() if t.is_finished]
    assert len(finished) == n_trials  # exactly the total, nothing lost
    assert not [t for t in trials.values() if t.status == "running"]
    assert sorted(trials) == list(range(len(trials)))  # ids unique, none skipped
    starts = [s["trial"] for s in read_stamps(stamps) if s["event"] == "start"]
    ends = [s["trial"] for s in read_stamps(stamps) if s["event"] == "end"]
    assert sorted(starts) == sorted(trials)  # every trial ran exactly once
    assert sorted(ends) == sorted(t.id for t in finished)  # no result thrown away
    assert len(trials) == n_trials + 1

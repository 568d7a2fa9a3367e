"""End-to-end studies on a toy LightningModule: statuses, storage, resume, namespaces."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import toy_models

from lightning_ticktock import Choice, Float, Int, TickTockDriver, TickTockError

SPACE = [Float("lr", 1e-3, 0.3, log=True), Int("epochs", 1, 3),
         Choice("delay", [0.0, 0.02]), Choice("crash", [False, True]),
         Choice("nan", [False, True])]


def make_driver(storage=None, model_fn=toy_models.make_model, **kw):
    kw.setdefault("n_initial", 20)  # Sobol only: these tests are about the loop, not the GP
    kw.setdefault("quiet", True)
    return TickTockDriver(model_fn=model_fn, trainer_fn=toy_models.trainer_fn,
                          space=SPACE, max_cost=kw.pop("max_cost", 3.0), storage=storage,
                          seed=0, **kw)


# The kill test needs a slow configuration: its own space, with a long delay.
KILL_SPACE = [Float("lr", 1e-3, 0.3, log=True), Int("epochs", 1, 3),
              Choice("delay", [0.0, 0.5]), Choice("crash", [False]), Choice("nan", [False])]

OK = {"lr": 0.1, "epochs": 2, "delay": 0.0, "crash": False, "nan": False}
CRASH = dict(OK, crash=True)
SLOW = dict(OK, epochs=3, delay=0.02)


def test_study_with_a_crash_an_early_stop_and_normal_runs(tmp_path):
    # 8 batches/epoch * 3 epochs * (0.02 s + step overhead) ~ 0.5-0.7 s: over a 0.38 s
    # budget. The callback decides after 10 of the 24 batches (~0.2-0.3 s spent), so it
    # stops on the projection, with room for a loaded machine's step overhead.
    driver = make_driver(tmp_path / "s.db", max_cost=0.38, warmup_steps=0)
    assert driver.enqueue(CRASH) and driver.enqueue(dict(SLOW))
    assert not driver.enqueue(dict(CRASH))  # already enqueued
    study = driver.run(n_trials=4)
    by_id = {t.id: t for t in study.trials}
    assert len(by_id) == 4
    assert by_id[0].params == CRASH and by_id[0].status == "failed"
    assert "boom" in by_id[0].error
    assert by_id[1].params == SLOW and by_id[1].status == "early_stopped"
    assert by_id[1].loss is None and by_id[1].cost > 0.38
    assert by_id[1].elapsed < by_id[1].cost  # stopped before spending the projection
    assert all(t.status in ("completed", "early_stopped", "failed") for t in study.trials)
    assert not driver.enqueue(CRASH)  # already run


def test_nan_loss_is_failed_and_the_study_goes_on():
    driver = make_driver(None, max_cost=30.0)
    driver.enqueue(dict(OK, nan=True))
    driver.enqueue(OK)
    study = driver.run(n_trials=2)
    t0, t1 = study.trials
    assert t0.status == "failed" and "non-finite" in t0.error
    assert t1.status == "completed" and t1.loss > 0 and t1.cost > 0
    assert study.best_trial.id == 1


def test_run_continues_to_the_study_total_and_resumes(tmp_path):
    db = tmp_path / "s.db"
    make_driver(db, max_cost=30.0).run(n_trials=2)
    study = make_driver(db, max_cost=30.0).run(n_trials=3)  # a new process would do this
    assert len(study.trials) == 3
    assert [t.id for t in study.trials] == [0, 1, 2]
    again = make_driver(db, max_cost=30.0).run(n_trials=3)
    assert len(again.trials) == 3  # already at the total: nothing more runs


def test_max_total_cost_stops_on_recorded_compute(tmp_path):
    driver = make_driver(tmp_path / "s.db", max_cost=30.0)
    driver.enqueue(dict(SLOW))
    study = driver.run(max_total_cost=1e-6, n_trials=10)
    assert len(study.trials) == 1  # the first trial's compute already exceeds the total
    assert study.total_compute > 0


def test_metrics_and_logs_per_trial(tmp_path):
    driver = make_driver(tmp_path / "s.db", max_cost=30.0)
    driver.enqueue(OK)
    study = driver.run(n_trials=1)
    (t,) = study.trials
    assert len(t.metrics) == 2 and all("val_loss" in m for m in t.metrics)
    logs = list((tmp_path / "s_logs").rglob("metrics.csv"))
    assert len(logs) == 1 and "trial_0000" in str(logs[0])


def test_pytorch_lightning_namespace():
    pytest.importorskip("pytorch_lightning")
    driver = make_driver(None, model_fn=toy_models.make_pl_model, max_cost=30.0)
    driver.enqueue(OK)
    study = driver.run(n_trials=1)
    assert study.trials[0].status == "completed", study.trials[0].error


def test_space_mismatch_on_reopen_is_a_clear_error(tmp_path):
    make_driver(tmp_path / "s.db")
    with pytest.raises(TickTockError, match="'lr'"):
        TickTockDriver(model_fn=toy_models.make_model, space=[Float("lr", 1e-2, 1.0)],
                       max_cost=1.0, storage=tmp_path / "s.db", quiet=True)


def test_budget_may_differ_on_resume(tmp_path):
    db = tmp_path / "s.db"
    make_driver(db, max_cost=30.0).run(n_trials=1)
    d = make_driver(db, max_cost=5.0)
    assert d.storage.get_settings()["max_cost"] == 5.0
    assert d.study.max_cost == 5.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"model_fn": 3}, "model_fn=3 must be a callable"),
        ({"n_workers": 0}, "n_workers=0 must be an integer >= 1"),
        ({"executor": "slurm"}, "executor='slurm' must be one of"),
        ({"max_cost": -1.0}, "max_cost=-1.0 must be > 0"),
        ({"margin": -0.5}, "margin"),
        ({"n_workers": 2, "model_fn": lambda p: None}, "must be importable"),
    ],
)
def test_driver_argument_errors(kwargs, match):
    base = {"model_fn": toy_models.make_model, "space": SPACE, "max_cost": 1.0, "quiet": True}
    base.update(kwargs)
    with pytest.raises(TickTockError, match=match):
        TickTockDriver(**base)


def test_run_argument_errors():
    d = make_driver(None)
    with pytest.raises(TickTockError, match="needs n_trials= or max_total_cost="):
        d.run()
    with pytest.raises(TickTockError, match="n_trials=-1"):
        d.run(n_trials=-1)


def test_progress_output(capsys):
    driver = make_driver(None, max_cost=30.0, quiet=False)
    driver.enqueue(OK)
    driver.run(n_trials=1)
    out = capsys.readouterr().out
    assert "1/1" in out and "completed" in out and "best" in out


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    import toy_models
    from lightning_ticktock import TickTockDriver
    from test_driver import KILL_SPACE, OK
    d = TickTockDriver(model_fn=toy_models.make_model, trainer_fn=toy_models.trainer_fn,
                       space=KILL_SPACE, max_cost=300.0, storage={db!r}, seed=0, n_initial=20,
                       quiet=True, heartbeat_interval=0.2)
    d.enqueue(OK)
    d.enqueue(dict(OK, epochs=3, delay=0.5))  # slow: still running when killed
    d.run(n_trials=3)
    """
)


def test_resume_after_sigkill_mid_trial(tmp_path):
    db = tmp_path / "kill.db"
    script = tmp_path / "run.py"
    script.write_text(_KILL_SCRIPT.format(tests=str(Path(__file__).parent), db=str(db)))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            if db.exists():
                with sqlite3.connect(db) as con:
                    try:
                        rows = con.execute("SELECT id, status FROM trials").fetchall()
                    except sqlite3.OperationalError:
                        rows = []
                if (1, "running") in rows and (0, "completed") in rows:
                    break
            assert proc.poll() is None, "driver exited before it could be killed"
            time.sleep(0.1)
        else:
            pytest.fail("the slow trial never started")
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    with sqlite3.connect(db) as con:
        before = con.execute("SELECT * FROM trials WHERE id = 0").fetchone()
    d = TickTockDriver(model_fn=toy_models.make_model, trainer_fn=toy_models.trainer_fn,
                       space=KILL_SPACE, max_cost=300.0, storage=db, seed=0, n_initial=20,
                       quiet=True)
    d.enqueue(dict(OK, epochs=1))
    study = d.run(n_trials=3)
    trials = {t.id: t for t in study.trials}
    assert trials[1].status == "interrupted"
    with sqlite3.connect(db) as con:
        after = con.execute("SELECT * FROM trials WHERE id = 0").fetchone()
    assert before[:12] == after[:12]  # the finished trial is unchanged
    assert len(trials) == 4 and sorted(trials) == [0, 1, 2, 3]  # ids never repeat
    finished = [t for t in study.trials if t.is_finished]
    assert len(finished) == 3
    report = json.loads(json.dumps([t.to_dict() for t in study.trials]))
    assert report[1]["status"] == "interrupted"
    assert os.path.exists(db)


def test_ctrl_c_marks_the_running_trial_interrupted(tmp_path):
    db = tmp_path / "int.db"
    script = tmp_path / "run.py"
    script.write_text(_KILL_SCRIPT.format(tests=str(Path(__file__).parent), db=str(db)))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            rows = []
            if db.exists():
                with sqlite3.connect(db) as con:
                    try:
                        rows = con.execute("SELECT id, status FROM trials").fetchall()
                    except sqlite3.OperationalError:
                        pass
            if (1, "running") in rows:
                break
            assert proc.poll() is None, "driver exited early"
            time.sleep(0.1)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    with sqlite3.connect(db) as con:
        rows = dict(con.execute("SELECT id, status FROM trials").fetchall())
    assert rows == {0: "completed", 1: "interrupted"}

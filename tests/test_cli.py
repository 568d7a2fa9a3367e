"""`ticktock report` (text and JSON) and `ticktock plot` on a small study."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lightning_ticktock import Choice, Float, Int, TickTock
from lightning_ticktock.cli import main
from lightning_ticktock.storage import SQLiteStorage

STATUSES = {"running", "completed", "early_stopped", "failed", "interrupted"}


@pytest.fixture()
def study_file(tmp_path):
    """A study of every status, written as the driver writes it."""
    space = [Float("lr", 1e-3, 1.0, log=True), Int("epochs", 1, 10), Choice("opt", ["a", "b"])]
    tt = TickTock(space, max_cost=10.0, seed=0)
    storage = SQLiteStorage(tmp_path / "s.db")
    storage.open_study(tt.space, {"max_cost": 10.0, "seed": 0})

    def record(told):
        storage.update_trial(told)

    outcomes = [
        {"loss": 0.30, "cost": 6.0},
        {"loss": 0.20, "cost": 9.0},
        {"cost": 25.0, "early_stopped": True, "elapsed": 2.5},
        {"cost": 1.0, "failed": True, "error": "RuntimeError: CUDA out of memory"},
        {"loss": 0.2001, "cost": 4.0},
        None,  # left running
        "interrupted",
    ]
    for out in outcomes:
        trial = tt.ask()
        storage.insert_trial(trial)
        if out is None:
            continue
        if out == "interrupted":
            storage.mark_interrupted(trial.id)
            tt.mark_interrupted(trial.id)
            continue
        record(tt.tell(trial, **out))
    return tmp_path / "s.db"


def test_report_text(study_file, capsys):
    assert main(["report", str(study_file)]) == 0
    out = capsys.readouterr().out
    for word in ("completed", "early_stopped", "failed", "running", "interrupted"):
        assert word in out
    assert "best" in out.lower() and "#4" in out  # 0.2001 ties 0.20 within 1%, and is cheaper
    assert "saved" in out.lower()


def test_report_json_contract(study_file, capsys):
    assert main(["report", str(study_file), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["max_cost"] == 10.0 and isinstance(data["max_cost"], float)
    assert data["best_trial_id"] == 4
    assert [t["id"] for t in data["trials"]] == list(range(7))
    keys = {"id", "phase", "status", "params", "loss", "cost", "elapsed", "projected_cost", "error"}
    for t in data["trials"]:
        assert keys <= set(t)
        assert t["status"] in STATUSES
    by_id = {t["id"]: t for t in data["trials"]}
    assert by_id[2]["status"] == "early_stopped" and by_id[2]["cost"] == 25.0
    assert by_id[2]["elapsed"] == 2.5 and by_id[2]["loss"] is None
    assert "out of memory" in by_id[3]["error"]
    assert by_id[5]["status"] == "running" and by_id[6]["status"] == "interrupted"


def test_plot_writes_a_png(study_file, tmp_path, capsys):
    out = tmp_path / "fig" / "s.png"
    assert main(["plot", str(study_file), "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_errors_are_clear(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing.db")]) == 2
    assert "no study file" in capsys.readouterr().err
    assert main(["nonsense"]) == 2


def test_console_entry_points(study_file):
    for cmd in ([sys.executable, "-m", "lightning_ticktock", "report", str(study_file), "--json"],):
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["best_trial_id"] == 4
    res = subprocess.run([sys.executable, "-m", "lightning_ticktock", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "report" in res.stdout and "plot" in res.stdout


def test_cli_does_not_import_torch(study_file):
    code = ("import sys; from lightning_ticktock.cli import main; "
            f"main(['report', {str(study_file)!r}]); "
            "print('torch' in sys.modules, 'lightning' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip().splitlines()[-1] == "False False"

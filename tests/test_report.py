"""Tests of lightning_ticktock.report: incumbent rules, totals, JSON contract, text, plots."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from lightning_ticktock import report
from lightning_ticktock.errors import TickTockTypeError, TickTockValueError
from lightning_ticktock.report import (
    best_trial,
    format_progress,
    format_table,
    plot,
    summary,
    to_json,
)
from lightning_ticktock.trial import Trial

BUDGET = 10.0


def _t(id: int, status: str = "completed", phase: str = "tock", **kw) -> Trial:
    kw.setdefault("params", {"lr": 0.01 * (id + 1), "width": 64})
    # Fixed timestamps so the finish order (and the progress panel) is deterministic.
    kw.setdefault("datetime_start", 1000.0 + id)
    return Trial(id=id, phase=phase, status=status, **kw)


def _study() -> list[Trial]:
    """A hand-built study whose totals are exact in binary floating point."""
    return [
        _t(0, phase="initial", loss=0.50, cost=4.0, elapsed=4.0),
        _t(1, phase="tick", loss=0.25, cost=8.0, elapsed=8.5),
        _t(2, phase="tock", loss=0.125, cost=12.0, elapsed=12.0),  # over budget
        _t(3, phase="tock", status="early_stopped", cost=40.0, elapsed=2.5, projected_cost=40.0),
        _t(4, phase="tick", status="early_stopped", cost=20.0, elapsed=1.5, projected_cost=20.0),
        _t(5, phase="tock", status="failed", cost=1.25, error="RuntimeError: boom"),
        _t(6, phase="tock", status="interrupted", elapsed=0.75),
        _t(7, phase="enqueued", status="running"),
        _t(8, phase="added", loss=0.75, cost=2.0),  # elapsed unknown: cost stands in
    ]


# --------------------------------------------------------------------------- best_trial


def test_best_trial_picks_lowest_feasible_loss():
    assert best_trial(_study(), BUDGET).id == 1  # id 2 has lower loss but is over budget
    assert best_trial(_study(), 12.0).id == 2  # the budget is inclusive


def test_best_trial_ignores_non_completed_and_non_finite():
    trials = [
        _t(0, status="early_stopped", cost=1.0, elapsed=0.5),
        _t(1, status="failed", loss=0.0, cost=1.0),  # a loss on a failed run does not count
        _t(2, loss=float("nan"), cost=1.0),
        _t(3, loss=0.1, cost=float("inf")),
        _t(4, loss=0.1, cost=None),  # unknown cost: cannot be shown feasible
        _t(5, loss=0.9, cost=3.0),
    ]
    assert best_trial(trials, BUDGET).id == 5


def test_best_trial_tie_within_default_tolerance_prefers_cheaper():
    trials = [_t(0, loss=0.3000, cost=9.0), _t(1, loss=0.3025, cost=3.0)]
    assert best_trial(trials, BUDGET).id == 1  # 0.0025 < 1e-9 + 0.01 * 0.3
    trials = [_t(0, loss=0.3000, cost=9.0), _t(1, loss=0.3035, cost=3.0)]
    assert best_trial(trials, BUDGET).id == 0  # 0.0035 is outside the default band


def test_best_trial_explicit_tolerance():
    trials = [_t(0, loss=0.30, cost=9.0), _t(1, loss=0.31, cost=3.0)]
    assert best_trial(trials, BUDGET).id == 0
    assert best_trial(trials, BUDGET, loss_tolerance=0.02).id == 1
    assert best_trial(trials, BUDGET, loss_tolerance=0.0).id == 0


def test_best_trial_band_is_anchored_at_the_lowest_loss():
    # 1 is within tol of 0 and 2 within tol of 1, but 2 is not within tol of 0.
    trials = [_t(0, loss=1.0, cost=9.0), _t(1, loss=1.01, cost=5.0), _t(2, loss=1.02, cost=1.0)]
    assert best_trial(trials, BUDGET, loss_tolerance=0.015).id == 1


def test_best_trial_exact_tie_breaks_on_id():
    trials = [_t(3, loss=0.2, cost=2.0), _t(1, loss=0.2, cost=2.0)]
    assert best_trial(trials, BUDGET).id == 1


def test_best_trial_none_cases():
    assert best_trial([], BUDGET) is None
    assert best_trial([_t(0, loss=0.1, cost=11.0)], BUDGET) is None
    assert best_trial([_t(0, status="early_stopped", cost=50.0, elapsed=1.0)], BUDGET) is None
    assert best_trial([_t(0, status="running")], BUDGET) is None


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_cost": 0.0}, TickTockValueError, r"max_cost=0\.0 must be a finite number > 0"),
        ({"max_cost": float("inf")}, TickTockValueError, "max_cost=inf"),
        ({"max_cost": "10"}, TickTockTypeError, "max_cost='10' must be a real number"),
        ({"max_cost": True}, TickTockTypeError, "max_cost=True"),
        ({"max_cost": 1.0, "loss_tolerance": -1.0}, TickTockValueError, "loss_tolerance=-1.0"),
        ({"max_cost": 1.0, "loss_tolerance": "x"}, TickTockTypeError, "loss_tolerance='x'"),
    ],
)
def test_best_trial_validates_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        best_trial([], **kwargs)


def test_trials_must_be_trial_records():
    with pytest.raises(TypeError, match=r"trials\[1\]="):
        summary([_t(0, loss=0.1, cost=1.0), {"id": 1}], BUDGET)
    with pytest.raises(TypeError, match="iterable of Trial"):
        to_json("abc", BUDGET)


# --------------------------------------------------------------------------- summary


def test_summary_exact_numbers():
    s = summary(_study(), BUDGET)
    assert s["max_cost"] == 10.0
    assert s["n_trials"] == 9
    assert s["n_by_status"] == {
        "running": 1,
        "completed": 4,
        "early_stopped": 2,
        "failed": 1,
        "interrupted": 1,
    }
    assert s["n_feasible"] == 3
    # 4 + 8.5 + 12 (completed, elapsed) + 2 (completed, cost fallback) + 2.5 + 1.5 (early,
    # elapsed) + 1.25 (failed, cost fallback) + 0.75 (interrupted); running not counted.
    assert s["total_compute"] == 32.5
    assert s["early_stopped_compute"] == 4.0
    assert s["early_stop_savings"] == (40.0 - 2.5) + (20.0 - 1.5) == 56.0
    assert s["best_trial_id"] == 1
    assert s["best_loss"] == 0.25
    assert s["best_cost"] == 8.0
    assert s["best_params"] == {"lr": 0.02, "width": 64}


def test_summary_best_params_is_a_copy():
    trials = _study()
    summary(trials, BUDGET)["best_params"]["lr"] = -1
    assert trials[1].params["lr"] == 0.02


def test_summary_early_stop_never_charges_its_projection():
    # No elapsed recorded: the projected cost (cost) must not count as spent.
    trials = [
        _t(0, status="early_stopped", cost=40.0),
        _t(1, status="early_stopped", cost=5.0, elapsed=6.0),
    ]
    s = summary(trials, BUDGET)
    assert s["total_compute"] == 6.0
    assert s["early_stopped_compute"] == 6.0
    assert s["early_stop_savings"] == 0.0  # unknown for 0, floored at zero for 1


def test_summary_empty():
    s = summary([], BUDGET)
    assert s["n_trials"] == 0
    assert set(s["n_by_status"].values()) == {0}
    assert s["total_compute"] == s["early_stopped_compute"] == s["early_stop_savings"] == 0.0
    assert s["best_trial_id"] is s["best_loss"] is s["best_cost"] is s["best_params"] is None


# --------------------------------------------------------------------------- to_json

_TRIAL_KEYS = {
    "id",
    "phase",
    "status",
    "params",
    "loss",
    "cost",
    "elapsed",
    "projected_cost",
    "error",
}
_STATUSES = {"running", "completed", "early_stopped", "failed", "interrupted"}


def _is_opt(value, kind) -> bool:
    return value is None or (isinstance(value, kind) and not isinstance(value, bool))


def test_to_json_contract():
    d = to_json(_study(), BUDGET)
    assert {"max_cost", "best_trial_id", "trials"} <= set(d)
    assert isinstance(d["max_cost"], float) and d["max_cost"] == 10.0
    assert d["best_trial_id"] == 1
    assert [row["id"] for row in d["trials"]] == list(range(9))
    for row in d["trials"]:
        assert set(row) == _TRIAL_KEYS
        assert isinstance(row["id"], int) and not isinstance(row["id"], bool)
        assert isinstance(row["phase"], str) and type(row["phase"]) is str
        assert row["status"] in _STATUSES and type(row["status"]) is str
        assert isinstance(row["params"], dict)
        for key in ("loss", "cost", "elapsed", "projected_cost"):
            assert _is_opt(row[key], float), (key, row[key])
        assert _is_opt(row["error"], str)
    failed = d["trials"][5]
    assert failed == {
        "id": 5,
        "phase": "tock",
        "status": "failed",
        "params": {"lr": 0.06, "width": 64},
        "loss": None,
        "cost": 1.25,
        "elapsed": None,
        "projected_cost": None,
        "error": "RuntimeError: boom",
    }
    assert json.loads(json.dumps(d, allow_nan=False)) == d


def test_to_json_never_emits_nan_or_inf():
    trials = [
        _t(0, loss=float("nan"), cost=1.0, elapsed=1.0),
        _t(1, status="early_stopped", cost=float("inf"), elapsed=2.0, projected_cost=float("inf")),
        _t(
            2,
            loss=0.5,
            cost=3.0,
            elapsed=float("-inf"),
            params={"lr": float("nan"), "sizes": (1, 2)},
        ),
    ]
    d = to_json(trials, BUDGET)
    text = json.dumps(d, allow_nan=False)  # raises if NaN/inf slipped through
    assert "NaN" not in text and "Infinity" not in text
    assert d["trials"][0]["loss"] is None
    assert d["trials"][1]["cost"] is None and d["trials"][1]["projected_cost"] is None
    assert d["trials"][2]["elapsed"] is None
    assert d["trials"][2]["params"] == {"lr": None, "sizes": [1, 2]}
    assert d["best_trial_id"] == 2


def test_to_json_empty():
    d = to_json([], 2)
    assert d["max_cost"] == 2.0 and isinstance(d["max_cost"], float)
    assert d["best_trial_id"] is None and d["trials"] == []
    json.dumps(d, allow_nan=False)


# --------------------------------------------------------------------------- text


def test_format_table_rows_and_footer():
    text = format_table(_study(), BUDGET)
    lines = text.splitlines()
    assert lines[0].split() == ["id", "phase", "status", "loss", "cost", "elapsed", "params"]
    rows = {
        int(line.split()[1] if line.startswith("*") else line.split()[0]): line
        for line in lines[1:10]
    }
    assert sorted(rows) == list(range(9))
    assert rows[1].startswith("*")  # the incumbent is marked
    assert rows[1].split() == [
        "*",
        "1",
        "tick",
        "completed",
        "0.25",
        "8",
        "8.5",
        "lr=0.02,",
        "width=64",
    ]
    assert "12>" in rows[2]  # completed over budget
    assert rows[3].split()[:6] == ["3", "tock", "early_stopped", "-", "40", "2.5"]
    assert "running" in rows[7] and "interrupted" in rows[6]
    # Every row has the same fixed-width prefix: the status column starts at one place.
    starts = {line.index(s) for line in lines[1:10] for s in _STATUSES if f" {s} " in line}
    assert len(starts) == 1
    assert "best trial: #1  loss 0.25  cost 8  (lr=0.02, width=64)" in text
    assert "total compute: 32.5" in text
    assert "compute spent on early-stopped runs: 4  (2 runs)" in text
    assert "compute saved by early stops: 56" in text


def test_format_table_empty_and_long_params():
    text = format_table([], BUDGET)
    assert "(no trials)" in text
    assert "best trial: none" in text
    long = _t(0, loss=0.1, cost=1.0, params={f"param_{i}": i for i in range(20)})
    row = format_table([long], BUDGET).splitlines()[1]
    assert row.endswith("...")
    assert len(row) < 120


def test_format_progress():
    best = _t(1, phase="tick", loss=0.25, cost=8.0)
    line = format_progress(3, 40, _t(2, loss=0.125, cost=12.0), best, 24.5)
    assert line.startswith("trial  3/40  tock")
    for piece in ("completed", "loss 0.125", "cost 12", "best 0.25 (#1)", "compute 24.5"):
        assert piece in line
    assert "\n" not in line

    early = _t(3, status="early_stopped", cost=40.0, elapsed=2.5)
    line = format_progress(4, None, early, None, 27.0, compute_budget=100)
    assert line.startswith("trial 4  tock")
    assert "cost ~40" in line and "best -" in line and "compute 27/100" in line

    failed = _t(5, status="failed", error="RuntimeError: boom\nTraceback ...")
    line = format_progress(6, 9, failed, best, 30.0)
    assert line.endswith("| error: RuntimeError: boom")


# --------------------------------------------------------------------------- plot


def _synthetic(n: int = 40) -> list[Trial]:
    import random

    rng = random.Random(0)
    trials = []
    for i in range(n):
        phase = "initial" if i < 6 else ("tick" if i % 2 else "tock")
        cost = 10 ** rng.uniform(0.0, 1.6)
        if cost > 14 and i % 3:
            trials.append(
                _t(i, "early_stopped", phase, cost=cost, elapsed=cost / 4, projected_cost=cost)
            )
        elif i % 13 == 5:
            trials.append(_t(i, "failed", phase, cost=cost / 3, error="boom"))
        else:
            trials.append(
                _t(
                    i,
                    phase=phase,
                    loss=0.1 + 1 / cost + rng.gauss(0, 0.01),
                    cost=cost,
                    elapsed=cost,
                )
            )
    return trials


def _assert_png(path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5000


@pytest.mark.parametrize(
    "trials",
    [
        pytest.param(_synthetic(), id="normal"),
        pytest.param([], id="empty"),
        pytest.param([t for t in _synthetic() if t.status == "early_stopped"], id="early-only"),
        pytest.param([_t(0, status="running"), _t(1, "failed")], id="nothing-drawable"),
        pytest.param([_t(0, loss=1e-3, cost=1.0), _t(1, loss=5.0, cost=2.0)], id="log-y"),
    ],
)
def test_plot_writes_png(tmp_path, trials):
    path = tmp_path / "study.png"
    fig = plot(trials, BUDGET, path=path, title="t")
    _assert_png(path)
    assert len(fig.axes) == 2


def test_plot_content_of_a_normal_study():
    fig = plot(_synthetic(), BUDGET)
    left, right = fig.axes
    assert left.get_xscale() == "log"  # costs span more than a decade
    labels = [t.get_text() for t in left.get_legend().get_texts()]
    assert any(lab.startswith("early-stopped (projected cost)") for lab in labels)
    assert any(lab.startswith("tick") for lab in labels)
    assert any(lab.startswith("tock") for lab in labels)
    assert "best feasible" in labels
    assert any(line.get_xdata()[0] == BUDGET for line in left.get_lines())  # budget line
    best = best_trial(_synthetic(), BUDGET)
    assert any(f"best #{best.id}" in t.get_text() for t in left.texts)
    assert right.get_lines()  # the step curve


def test_plot_linear_when_costs_are_close():
    fig = plot([_t(0, loss=0.2, cost=3.0), _t(1, loss=0.1, cost=6.0)], BUDGET)
    assert fig.axes[0].get_xscale() == "linear"


def test_plot_leaves_pyplot_alone():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plot(_synthetic(10), BUDGET)
    assert plt.get_fignums() == before


def test_import_does_not_load_matplotlib():
    code = "import sys, lightning_ticktock.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_public_api():
    assert set(report.__all__) == {
        "best_trial",
        "format_progress",
        "format_table",
        "plot",
        "summary",
        "to_json",
    }
    assert math.isfinite(summary(_synthetic(), BUDGET)["total_compute"])

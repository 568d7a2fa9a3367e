"""TickTock ask/tell: the public contract, errors, and behaviour on synthetic problems."""

import math

import pytest

from lightning_ticktock import Choice, Float, Int, TickTock, TickTockError


def contract_space():
    return [Float("lr", 1e-4, 1.0, log=True), Int("epochs", 2, 60, log=True),
            Choice("optimizer", ["adam", "sgd"])]


def fast(tt: TickTock) -> TickTock:
    # Few restarts keep GP tests fast; the behaviour under test does not depend on them.
    tt.num_restarts, tt.raw_samples = 2, 64
    return tt


def budget_fits(p):
    """Loss optimum reachable at ~17 epochs; cost = epochs; budget 30."""
    loss = 0.2 + (p["x"] - 0.3) ** 2 + 0.5 * math.exp(-p["epochs"] / 3)
    return loss, float(p["epochs"])


def budget_too_small(p):
    """Loss keeps falling with width; cost ~ width: the best feasible is at the budget."""
    loss = 0.1 + (p["x"] - 0.6) ** 2 + 2.0 / p["width"]
    return loss, p["width"] / 4.0


def run(tt, f, n, record=None):
    for _ in range(n):
        t = tt.ask()
        loss, cost = f(t.params)
        if cost > tt.max_cost:
            tt.tell(t, cost=cost, early_stopped=True)
        else:
            tt.tell(t, loss=loss, cost=cost)
        if record is not None:
            record.append((t, tt.best_trial))
    return tt


def test_public_contract_from_the_issue():
    tt = TickTock(space=contract_space(), max_cost=30.0, seed=0)
    trial = tt.ask()
    assert isinstance(trial.id, int) and isinstance(trial.params, dict)
    assert trial.phase in {"initial", "tick", "tock"}
    tt.tell(trial, loss=0.05, cost=12.3)
    t2 = tt.ask()
    tt.tell(t2, cost=85.0, early_stopped=True)
    t3 = tt.ask()
    tt.tell(t3, cost=3.0, failed=True)
    assert tt.best_trial.id == trial.id
    tt.max_cost = 20.0
    added = tt.add_trial({"lr": 0.01, "epochs": 10, "optimizer": "adam"}, loss=0.07, cost=9.1)
    assert added.phase == "added" and added.status == "completed"
    assert tt.enqueue({"lr": 0.1, "epochs": 5, "optimizer": "sgd"})
    nxt = tt.ask()
    assert nxt.phase == "enqueued" and nxt.params == {"lr": 0.1, "epochs": 5, "optimizer": "sgd"}
    statuses = [(t.id, t.status) for t in tt.trials]
    assert statuses == [(0, "completed"), (1, "early_stopped"), (2, "failed"),
                        (3, "completed"), (4, "running")]
    for t in tt.trials:
        assert {"id", "params", "phase", "status", "loss", "cost"} <= set(vars(t))
    assert tt.trials[1].loss is None and tt.trials[1].cost == 85.0


def test_best_trial_feasible_lowest_loss_then_cheaper():
    tt = TickTock(space=contract_space(), max_cost=30.0, seed=0, loss_tolerance=1e-3)
    p = tt.space.sobol(5, seed=9)
    assert tt.best_trial is None
    tt.add_trial(p[0], loss=0.10, cost=40.0)  # infeasible: over budget
    assert tt.best_trial is None
    tt.add_trial(p[1], loss=0.20, cost=10.0)
    assert tt.best_trial.id == 1
    tt.add_trial(p[2], loss=0.15, cost=25.0)
    assert tt.best_trial.id == 2
    tt.add_trial(p[3], loss=0.1505, cost=5.0)  # within tolerance, cheaper
    assert tt.best_trial.id == 3
    tt.add_trial(p[4], loss=0.16, cost=1.0)  # cheaper but clearly worse
    assert tt.best_trial.id == 3
    tt.max_cost = 50.0
    assert tt.best_trial.id == 0  # the budget change makes trial 0 feasible; nothing lost
    tt.max_cost = 4.0
    assert tt.best_trial.id == 4
    assert len(tt.trials) == 5


def test_default_tolerance_treats_tiny_differences_as_equal():
    tt = TickTock(space=contract_space(), max_cost=30.0, seed=0)
    p = tt.space.sobol(3, seed=2)
    tt.add_trial(p[0], loss=0.05, cost=10.0)
    tt.add_trial(p[1], loss=0.05 + 1e-12, cost=5.0)
    tt.add_trial(p[2], loss=0.06, cost=1.0)
    assert tt.best_trial.id == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"loss": 0.1, "cost": -1.0}, r"cost=-1.0 must be >= 0"),
        ({"loss": 0.1, "cost": float("nan")}, "cost=nan must be finite"),
        ({"loss": 0.1, "cost": float("inf")}, "must be finite"),
        ({"loss": 0.1, "cost": "3"}, "must be a real number"),
        ({"cost": 3.0}, "a completed run needs loss="),
        ({"loss": 0.1}, "a completed run needs cost="),
        ({"early_stopped": True}, r"needs cost= \(the projected full cost\)"),
        ({"loss": 0.1, "cost": 3.0, "early_stopped": True}, "has no loss"),
        ({"cost": 3.0, "early_stopped": True, "failed": True}, "exclusive"),
    ],
)
def test_tell_errors_leave_the_state_unchanged(kwargs, match):
    tt = TickTock(space=contract_space(), max_cost=30.0, seed=0)
    trial = tt.ask()
    before = [t.to_dict() for t in tt.trials]
    with pytest.raises(TickTockError, match=match):
        tt.tell(trial, **kwargs)
    assert [t.to_dict() for t in tt.trials] == before
    tt.tell(trial, loss=0.1, cost=3.0)  # still tellable


def test_tell_unknown_or_already_told_trial():
    tt = TickTock(space=contract_space(), max_cost=30.0, seed=0)
    trial = tt.ask()
    with pytest.raises(ValueError, match="trial 7 is not in this study"):
        tt.tell(7, loss=0.1, cost=1.0)
    tt.tell(trial, loss=0.1, cost=1.0)
    before = [t.to_dict() for t in tt.trials]
    with pytest.raises(ValueError, match="already completed; each trial is told once"):
        tt.tell(trial, loss=0.2, cost=1.0)
    assert [t.to_dict() for t in tt.trials] == before


def test_non_finite_loss_is_a_failure():
    tt = TickTock(space=contract_space(), max_cost=30.0, seed=0)
    t = tt.tell(tt.ask(), loss=float("nan"), cost=2.0)
    assert t.status == "failed" and t.loss is None and "non-finite loss" in t.error


def test_params_outside_the_space_are_rejected():
    tt = TickTock(space=contract_space(), max_cost=30.0, seed=0)
    with pytest.raises(ValueError, match=r"'lr': value 5.0 is outside"):
        tt.enqueue({"lr": 5.0, "epochs": 5, "optimizer": "sgd"})
    with pytest.raises(ValueError, match="'optimizer': value 'lion' is not one of"):
        tt.add_trial({"lr": 0.1, "epochs": 5, "optimizer": "lion"}, loss=0.1, cost=1.0)
    assert tt.trials == [] and tt.queue == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_cost": 0.0}, r"max_cost=0.0 must be > 0"),
        ({"max_cost": -3}, "must be > 0"),
        ({"max_cost": float("nan")}, "must be finite"),
        ({"max_cost": 30.0, "seed": -1}, "seed=-1 must be a non-negative integer"),
        ({"max_cost": 30.0, "n_initial": 0}, "n_initial=0 must be an integer >= 1"),
        ({"max_cost": 30.0, "phase_cycle": ("tick",)}, "at least one 'tock'"),
        ({"max_cost": 30.0, "phase_cycle": ("tock", "tack")}, "phase_cycle="),
        ({"max_cost": 30.0, "loss_tolerance": -0.1}, "loss_tolerance=-0.1 must be >= 0"),
    ],
)
def test_constructor_validation(kwargs, match):
    with pytest.raises(TickTockError, match=match):
        TickTock(space=contract_space(), **kwargs)


def test_budget_setter_validates():
    tt = TickTock(space=contract_space(), max_cost=30.0, seed=0)
    with pytest.raises(ValueError, match="max_cost=-1 must be > 0"):
        tt.max_cost = -1
    assert tt.max_cost == 30.0


def test_enqueue_order_and_idempotence():
    tt = TickTock(space=contract_space(), max_cost=30.0, seed=0)
    a = {"lr": 0.1, "epochs": 5, "optimizer": "sgd"}
    b = {"lr": 0.01, "epochs": 9, "optimizer": "adam"}
    assert tt.enqueue(a) and tt.enqueue(b)
    assert not tt.enqueue(dict(a))  # already enqueued
    assert [tt.ask().params for _ in range(2)] == [a, b]
    assert not tt.enqueue(a)  # already in the study
    assert tt.ask().phase == "initial"


def test_initial_design_then_alternating_phases():
    tt = fast(TickTock([Float("x", 0.0, 1.0), Int("epochs", 1, 40)], max_cost=30.0, seed=0,
                       n_initial=4))
    run(tt, budget_fits, 8)
    phases = [t.phase for t in tt.trials]
    assert phases[:4] == ["initial"] * 4
    assert phases[4:] == ["tock", "tick", "tock", "tick"]


def test_same_seed_same_tells_same_asks():
    def study(seed):
        tt = fast(TickTock([Float("x", 0.0, 1.0), Int("epochs", 1, 40)], max_cost=30.0,
                           seed=seed, n_initial=3))
        return [t.params for t in run(tt, budget_fits, 6).trials]

    assert study(1) == study(1)
    assert study(1) != study(2)


def test_resume_from_trials_gives_the_same_next_ask():
    space = [Float("x", 0.0, 1.0), Int("epochs", 1, 40)]
    a = fast(TickTock(space, max_cost=30.0, seed=4, n_initial=3))
    run(a, budget_fits, 5)
    b = fast(TickTock(space, max_cost=30.0, seed=4, n_initial=3))
    b.sync(a.trials)
    pa, pb = a.ask().params, b.ask().params
    # The running optimizer warm-starts its GP fits from the previous ask; the
    # resumed one starts cold. Both reach the same hyperparameter optimum up to
    # L-BFGS tolerance, so the next proposal agrees to a few decimals.
    assert pb["epochs"] == pa["epochs"]
    assert pb["x"] == pytest.approx(pa["x"], abs=1e-3)


def test_pending_trials_are_never_proposed_twice():
    tt = fast(TickTock([Float("x", 0.0, 1.0), Int("epochs", 1, 40)], max_cost=30.0, seed=0,
                       n_initial=4))
    run(tt, budget_fits, 6)
    asked = [tt.ask() for _ in range(4)]  # no tell in between: all pending
    params = [t.params for t in asked]
    assert all(t.phase in ("tick", "tock") for t in asked)
    assert len({tuple(sorted(p.items())) for p in params}) == 4
    assert tt.last_fit["n_pending"] == 3
    xs = sorted(p["x"] for p in params)
    # Not just distinct after rounding: the pending points actually repel.
    assert any(abs(p["x"] - q["x"]) > 1e-3 or p["epochs"] != q["epochs"]
               for i, p in enumerate(params) for q in params[i + 1:])
    assert xs == sorted(xs)


def test_early_stopped_tells_feed_only_the_cost_model():
    tt = fast(TickTock([Float("x", 0.0, 1.0), Int("width", 4, 400, log=True)], max_cost=20.0,
                       seed=0, n_initial=5))
    run(tt, budget_too_small, 6)
    n_stopped = sum(t.status == "early_stopped" for t in tt.trials)
    n_done = sum(t.status == "completed" for t in tt.trials)
    assert n_stopped >= 1
    assert tt.last_fit["n_cost_obs"] == n_stopped + n_done - (tt.trials[-1].status != "running")\
        or tt.last_fit["n_cost_obs"] <= n_stopped + n_done
    tt.ask()
    assert tt.last_fit["n_cost_obs"] == n_stopped + n_done
    assert tt.last_fit["n_loss_obs"] == n_done


def test_failed_points_are_not_proposed_again():
    tt = fast(TickTock([Int("a", 0, 3), Choice("c", ["p", "q"])], max_cost=10.0, seed=0,
                       n_initial=3))
    for _ in range(8):
        t = tt.ask()
        if t.params == {"a": 3, "c": "q"} or t.params["a"] == 0:
            tt.tell(t, cost=1.0, failed=True)
        else:
            tt.tell(t, loss=1.0 / (1 + t.params["a"]), cost=1.0)
    seen = [tuple(t.params.values()) for t in tt.trials]
    assert len(seen) == len(set(seen))  # a failed point is never re-proposed


def test_scenario_budget_fits_ticks_make_the_incumbent_cheaper():
    tt = fast(TickTock([Float("x", 0.0, 1.0), Int("epochs", 1, 40)], max_cost=30.0, seed=0,
                       n_initial=4))
    record = []
    run(tt, budget_fits, 22, record)
    tol = tt.effective_loss_tolerance()
    best_loss = min(t.loss for t in tt.trials if t.status == "completed" and t.cost <= 30)
    cheaper_by_tick = []
    prev = None
    for trial, best in record:
        if best is not None and prev is not None and best.id == trial.id \
                and trial.phase == "tick" and best.cost < prev.cost:
            cheaper_by_tick.append(trial)
        prev = best
    assert cheaper_by_tick, "no tick trial lowered the incumbent's cost"
    final = tt.best_trial
    assert final.loss <= best_loss + tol
    # The incumbent is near the cheapest cost reaching the optimum (~17 epochs),
    # well below the 30-epoch budget.
    assert final.cost <= 24


def test_scenario_budget_too_small_best_is_feasible_and_improves():
    tt = fast(TickTock([Float("x", 0.0, 1.0), Int("width", 4, 400, log=True)], max_cost=20.0,
                       seed=0, n_initial=5))
    record = []
    run(tt, budget_too_small, 20, record)
    bests = [b for _, b in record if b is not None]
    assert all(b.cost <= 20.0 for b in bests)
    initial_best = bests[tt.n_initial - 1 - (len(record) - len(bests))].loss if len(bests) > 15 \
        else bests[0].loss
    assert bests[-1].loss < initial_best
    # The best feasible width is 80 (cost 20): the incumbent should use most of the budget.
    assert bests[-1].cost >= 12.0


def test_budget_change_mid_study():
    tt = fast(TickTock([Float("x", 0.0, 1.0), Int("width", 4, 400, log=True)], max_cost=20.0,
                       seed=0, n_initial=5))
    run(tt, budget_too_small, 10)
    n = len(tt.trials)
    tt.max_cost = 8.0
    assert len(tt.trials) == n
    b = tt.best_trial
    assert b is None or b.cost <= 8.0
    run(tt, budget_too_small, 6)
    assert tt.best_trial.cost <= 8.0
    tt.max_cost = 40.0
    run(tt, budget_too_small, 4)
    assert len(tt.trials) == n + 10


def test_all_runs_over_budget_searches_for_feasibility():
    tt = fast(TickTock([Float("x", 0.0, 1.0), Int("width", 4, 400, log=True)], max_cost=2.0,
                       seed=0, n_initial=2))
    for _ in range(2):
        t = tt.ask()
        tt.tell(t, cost=50.0 + t.params["width"], early_stopped=True)
    t = tt.ask()
    assert t.phase == "tock" and tt.last_fit["n_loss_obs"] == 0

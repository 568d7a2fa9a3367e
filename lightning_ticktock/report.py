"""Tables, JSON and plots of a study: pure functions over a list of trials and the budget.

Nothing here touches storage or the optimizer: every function takes the trials
(:class:`~lightning_ticktock.trial.Trial` records) and the per-run budget
``max_cost`` and returns a value. matplotlib is imported only inside
:func:`plot`, so importing this module stays cheap.

Vocabulary used throughout:

* **feasible**: a completed trial with a finite loss and a known, finite
  ``cost <= max_cost``.
* **compute spent** by a trial: its ``elapsed``; for completed, failed and
  interrupted trials whose ``elapsed`` is unknown, their ``cost`` instead.
  An early-stopped trial's ``cost`` is its *projected* full cost, not what it
  spent, so it never stands in for ``elapsed``. Running trials are not counted.
* **compute saved** by an early stop: projected full cost (``cost``) minus
  ``elapsed``, floored at zero.

Example:
    >>> from lightning_ticktock.trial import Trial
    >>> trials = [
    ...     Trial(id=0, params={"lr": 0.1}, phase="initial", status="completed",
    ...           loss=0.5, cost=4.0, elapsed=4.0),
    ...     Trial(id=1, params={"lr": 0.01}, phase="tock", status="early_stopped",
    ...           cost=30.0, elapsed=3.0),
    ... ]
    >>> best_trial(trials, max_cost=10.0).id
    0
    >>> s = summary(trials, max_cost=10.0)
    >>> s["total_compute"], s["early_stopped_compute"], s["early_stop_savings"]
    (7.0, 3.0, 27.0)
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import TickTockTypeError, TickTockValueError
from .trial import Phase, Trial, TrialStatus

if TYPE_CHECKING:  # pragma: no cover - typing only; matplotlib is imported lazily
    from matplotlib.figure import Figure

__all__ = [
    "best_trial",
    "format_progress",
    "format_table",
    "plot",
    "summary",
    "to_json",
]

# NOTE: validation losses of two runs of the same configuration differ by data
# order and initialization noise, typically by about 1 % of the loss or more; a
# smaller difference says nothing about which configuration is better, so the
# cheaper one wins (the point of the tick phase). The absolute part keeps the
# rule sane for losses near zero. TickTock.best_trial uses this same rule.
_DEFAULT_ABS_TOL = 1e-9
_DEFAULT_REL_TOL = 1e-2

# NOTE: a params cell longer than this is cut so one wide trial does not push
# every other row of the table off the terminal.
_PARAMS_WIDTH = 60

# Statuses whose compute counts towards the study's total: everything that ran
# and stopped, whatever the reason. Running trials are still spending.
_SPENT_STATUSES = frozenset(
    {
        TrialStatus.COMPLETED.value,
        TrialStatus.EARLY_STOPPED.value,
        TrialStatus.FAILED.value,
        TrialStatus.INTERRUPTED.value,
    }
)

# Marker and colour per phase. tick looks for cheaper runs (points left), tock
# for lower loss (points down); colours are from the colour-blind-safe tab10.
_PHASE_STYLE: dict[str, dict[str, Any]] = {
    Phase.INITIAL.value: {"marker": "o", "color": "#7f7f7f", "label": "initial (Sobol)"},
    Phase.TICK.value: {"marker": "<", "color": "#1f77b4", "label": "tick (cheaper)"},
    Phase.TOCK.value: {"marker": "v", "color": "#ff7f0e", "label": "tock (lower loss)"},
    Phase.ENQUEUED.value: {"marker": "D", "color": "#2ca02c", "label": "enqueued"},
    Phase.ADDED.value: {"marker": "P", "color": "#9467bd", "label": "added"},
}
_EARLY_STOP_COLOR = "#d62728"
_FAILED_COLOR = "#000000"
_BUDGET_COLOR = "#d62728"
_BEST_COLOR = "#ffd700"


# --------------------------------------------------------------------------- helpers


def _check_max_cost(max_cost: Any) -> float:
    if isinstance(max_cost, bool) or not isinstance(max_cost, numbers.Real):
        raise TickTockTypeError(
            f"max_cost={max_cost!r} must be a real number, got {type(max_cost).__name__}"
        )
    value = float(max_cost)
    if not (math.isfinite(value) and value > 0):
        raise TickTockValueError(f"max_cost={max_cost!r} must be a finite number > 0")
    return value


def _check_trials(trials: Iterable[Trial]) -> list[Trial]:
    if isinstance(trials, (str, bytes, Mapping)):
        raise TickTockTypeError(f"trials must be an iterable of Trial, got {type(trials).__name__}")
    out = list(trials)
    for i, t in enumerate(out):
        if not isinstance(t, Trial):
            raise TickTockTypeError(f"trials[{i}]={t!r} must be a Trial, got {type(t).__name__}")
    return out


def _finite(x: Any) -> float | None:
    """``float(x)`` when it is a finite number, else None (None, NaN, inf, junk)."""
    if x is None or isinstance(x, bool):
        return None
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _is_feasible(trial: Trial, max_cost: float) -> bool:
    if trial.status != TrialStatus.COMPLETED.value:
        return False
    cost = _finite(trial.cost)
    # A completed run without a known cost cannot be shown to respect the budget.
    return _finite(trial.loss) is not None and cost is not None and cost <= max_cost


def _spent(trial: Trial) -> float:
    """Compute a trial actually used; 0.0 when it is unknown or the trial is running."""
    if trial.status not in _SPENT_STATUSES:
        return 0.0
    elapsed = _finite(trial.elapsed)
    if elapsed is not None:
        return elapsed
    if trial.status == TrialStatus.EARLY_STOPPED.value:
        # cost is the projected full cost here: counting it as spent would
        # charge the study for compute the early stop avoided.
        return 0.0
    cost = _finite(trial.cost)
    return cost if cost is not None else 0.0


def _saved(trial: Trial) -> float:
    """Projected full cost minus elapsed of an early-stopped trial (0.0 otherwise)."""
    if trial.status != TrialStatus.EARLY_STOPPED.value:
        return 0.0
    projected = _finite(trial.cost)
    if projected is None:
        projected = _finite(trial.projected_cost)
    elapsed = _finite(trial.elapsed)
    if projected is None or elapsed is None:
        return 0.0
    # A projection below what was spent is a measurement glitch, not negative saving.
    return max(projected - elapsed, 0.0)


def _projected(trial: Trial) -> float | None:
    """Where an early-stopped trial goes on the cost axis: its told cost, else the projection."""
    cost = _finite(trial.cost)
    return cost if cost is not None else _finite(trial.projected_cost)


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    try:
        value = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}g}"


def _fmt_value(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        return _fmt(v, 3)
    return str(v)


def _fmt_params(params: Mapping[str, Any], width: int | None = _PARAMS_WIDTH) -> str:
    text = ", ".join(f"{k}={_fmt_value(v)}" for k, v in params.items())
    if width is not None and len(text) > width:
        text = text[: width - 3] + "..."
    return text


def _jsonable(value: Any) -> Any:
    """A copy of ``value`` that ``json.dumps(allow_nan=False)`` accepts."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return _finite(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy / torch scalars
        try:
            return _jsonable(value.item())
        except (TypeError, ValueError):
            pass
    return str(value)


def _finish_order(trials: Sequence[Trial]) -> list[Trial]:
    """Trials that spent compute, in the order they stopped (ties by id)."""
    done = [t for t in trials if t.status in _SPENT_STATUSES]

    def key(t: Trial) -> tuple[float, int]:
        when = _finite(t.datetime_complete)
        return (when if when is not None else _finite(t.datetime_start) or 0.0, t.id)

    return sorted(done, key=key)


def _incumbent_trace(
    trials: Sequence[Trial], max_cost: float
) -> tuple[list[float], list[float], list[Trial], float]:
    """Cumulative compute and best feasible loss after each change of incumbent.

    Returns:
        ``(x, y, changed, total)``: compute spent when the incumbent changed, its
        loss, the new incumbent trials, and the study's total compute.
    """
    xs: list[float] = []
    ys: list[float] = []
    changed: list[Trial] = []
    feasible: list[Trial] = []
    cumulative = 0.0
    best: Trial | None = None
    for t in _finish_order(trials):
        cumulative += _spent(t)
        if not _is_feasible(t, max_cost):
            continue
        feasible.append(t)
        new_best = best_trial(feasible, max_cost)
        if new_best is not best:
            best = new_best
            xs.append(cumulative)
            ys.append(float(best.loss))  # type: ignore[union-attr, arg-type]
            changed.append(best)  # type: ignore[arg-type]
    return xs, ys, changed, cumulative


# --------------------------------------------------------------------------- public API


def best_trial(
    trials: Iterable[Trial], max_cost: float, loss_tolerance: float | None = None
) -> Trial | None:
    """The incumbent: the lowest-loss feasible trial, the cheaper one among near ties.

    Feasible means completed, with a finite loss and a known cost ``<= max_cost``.
    Let ``L`` be the lowest such loss. Every feasible trial with
    ``loss <= L + tol`` ties with the best, and the cheapest of them wins
    (then the lower loss, then the lower id). ``tol`` is ``loss_tolerance``
    when given, else ``1e-9 + 0.01 * |L|``: differences of a percent are
    within run-to-run noise, so they should not buy extra cost.

    Args:
        trials: Trials of a study, in any order.
        max_cost: The per-run budget; a finite number > 0.
        loss_tolerance: Absolute loss tolerance for ties; a finite number >= 0,
            or None for the default above.

    Returns:
        The winning trial (the object from ``trials``, not a copy), or None when
        no trial is feasible.

    Raises:
        TypeError: ``trials`` holds something other than a :class:`Trial`, or
            ``max_cost`` / ``loss_tolerance`` is not a number.
        ValueError: ``max_cost`` is not finite and positive, or
            ``loss_tolerance`` is negative or not finite.

    Example:
        >>> from lightning_ticktock.trial import Trial
        >>> ts = [Trial(id=0, params={}, phase="tock", status="completed", loss=0.30, cost=9.0),
        ...       Trial(id=1, params={}, phase="tick", status="completed", loss=0.3001, cost=2.0),
        ...       Trial(id=2, params={}, phase="tock", status="completed", loss=0.10, cost=50.0)]
        >>> best_trial(ts, max_cost=10.0).id  # id 2 is over budget; 0 and 1 tie, 1 is cheaper
        1
        >>> best_trial(ts, max_cost=10.0, loss_tolerance=0.0).id
        0
        >>> best_trial(ts, max_cost=1.0) is None
        True
    """
    max_cost = _check_max_cost(max_cost)
    if loss_tolerance is not None:
        if isinstance(loss_tolerance, bool) or not isinstance(loss_tolerance, numbers.Real):
            raise TickTockTypeError(
                f"best_trial(loss_tolerance={loss_tolerance!r}): must be a real number or None, "
                f"got {type(loss_tolerance).__name__}"
            )
        if not (math.isfinite(loss_tolerance) and loss_tolerance >= 0):
            raise TickTockValueError(
                f"best_trial(loss_tolerance={loss_tolerance!r}): must be a finite number >= 0"
            )
    feasible = [t for t in _check_trials(trials) if _is_feasible(t, max_cost)]
    if not feasible:
        return None
    lowest = min(float(t.loss) for t in feasible)  # type: ignore[arg-type]
    if loss_tolerance is None:
        tol = _DEFAULT_ABS_TOL + _DEFAULT_REL_TOL * abs(lowest)
    else:
        tol = float(loss_tolerance)
    # Ties are measured against the single lowest loss, so the band cannot drift
    # upwards through a chain of trials each within tol of the next.
    tied = [t for t in feasible if float(t.loss) <= lowest + tol]  # type: ignore[arg-type]
    return min(tied, key=lambda t: (float(t.cost), float(t.loss), t.id))  # type: ignore[arg-type]


def summary(trials: Iterable[Trial], max_cost: float) -> dict[str, Any]:
    """Counts, compute totals and the incumbent of a study.

    Args:
        trials: Trials of a study, in any order.
        max_cost: The per-run budget; a finite number > 0.

    Returns:
        A dict with these keys:

        * ``max_cost``: the budget, as a float.
        * ``n_trials``: number of trials.
        * ``n_by_status``: ``{status: count}`` for all five statuses (zeros included).
        * ``n_feasible``: completed trials with a finite loss under the budget.
        * ``total_compute``: compute spent by every stopped trial (see the module
          docstring: ``elapsed``, falling back to ``cost`` except for early stops).
        * ``early_stopped_compute``: ``elapsed`` summed over early-stopped trials.
        * ``early_stop_savings``: ``cost - elapsed`` summed over early-stopped trials.
        * ``best_trial_id``, ``best_loss``, ``best_cost``, ``best_params``: the
          incumbent per :func:`best_trial` (``best_params`` is a copy); all None
          when no trial is feasible.

    Example:
        >>> from lightning_ticktock.trial import Trial
        >>> ts = [Trial(id=0, params={"lr": 0.1}, phase="initial", status="completed",
        ...             loss=0.4, cost=2.0, elapsed=2.5),
        ...       Trial(id=1, params={"lr": 0.2}, phase="tock", status="failed", cost=1.0)]
        >>> s = summary(ts, max_cost=5.0)
        >>> s["n_by_status"]["failed"], s["total_compute"], s["best_trial_id"]
        (1, 3.5, 0)
    """
    max_cost = _check_max_cost(max_cost)
    trials = _check_trials(trials)
    counts = {s.value: 0 for s in TrialStatus}
    for t in trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    early = [t for t in trials if t.status == TrialStatus.EARLY_STOPPED.value]
    best = best_trial(trials, max_cost)
    return {
        "max_cost": max_cost,
        "n_trials": len(trials),
        "n_by_status": counts,
        "n_feasible": sum(_is_feasible(t, max_cost) for t in trials),
        # fsum: totals over hundreds of trials should not depend on their order.
        "total_compute": math.fsum(_spent(t) for t in trials),
        "early_stopped_compute": math.fsum(_finite(t.elapsed) or 0.0 for t in early),
        "early_stop_savings": math.fsum(_saved(t) for t in early),
        "best_trial_id": None if best is None else best.id,
        "best_loss": None if best is None else float(best.loss),  # type: ignore[arg-type]
        "best_cost": None if best is None else float(best.cost),  # type: ignore[arg-type]
        "best_params": None if best is None else copy.deepcopy(best.params),
    }


def to_json(trials: Iterable[Trial], max_cost: float) -> dict[str, Any]:
    """A JSON-ready dict of the study; ``json.dumps(..., allow_nan=False)`` accepts it.

    The contract (consumers rely on these keys; more top-level keys may be added)::

        {"max_cost": float,
         "best_trial_id": int | null,
         "trials": [{"id": int, "phase": str, "status": str, "params": {...},
                     "loss": float | null, "cost": float | null,
                     "elapsed": float | null, "projected_cost": float | null,
                     "error": str | null}, ...],
         "summary": {...}}          # the output of summary()

    ``status`` is one of running, completed, early_stopped, failed, interrupted;
    trials are sorted by id. NaN and infinite numbers (a diverged loss, an
    infinite projection) become null, so the output is strict JSON.

    Example:
        >>> import json
        >>> from lightning_ticktock.trial import Trial
        >>> ts = [Trial(id=0, params={"lr": 0.1}, phase="initial", status="completed",
        ...             loss=float("nan"), cost=1.0)]
        >>> d = to_json(ts, max_cost=2.0)
        >>> d["trials"][0]["loss"], d["best_trial_id"]
        (None, None)
        >>> len(json.dumps(d, allow_nan=False)) > 0
        True
    """
    max_cost = _check_max_cost(max_cost)
    trials = sorted(_check_trials(trials), key=lambda t: t.id)
    best = best_trial(trials, max_cost)
    rows = [
        {
            "id": int(t.id),
            "phase": str(t.phase),
            "status": str(t.status),
            "params": _jsonable(dict(t.params)),
            "loss": _finite(t.loss),
            "cost": _finite(t.cost),
            "elapsed": _finite(t.elapsed),
            "projected_cost": _finite(t.projected_cost),
            "error": None if t.error is None else str(t.error),
        }
        for t in trials
    ]
    return {
        "max_cost": max_cost,
        "best_trial_id": None if best is None else int(best.id),
        "trials": rows,
        "summary": _jsonable(summary(trials, max_cost)),
    }


def format_table(trials: Iterable[Trial], max_cost: float) -> str:
    """A fixed-width text table of the trials, then the incumbent and compute totals.

    One row per trial, sorted by id: id, phase, status, loss, cost, elapsed and
    the params in ``name=value`` form (cut at 60 characters). The incumbent's
    row is marked ``*``; a completed run over the budget has ``>`` after its
    cost; an early-stopped run's cost is its projected full cost.

    Example:
        >>> from lightning_ticktock.trial import Trial
        >>> ts = [Trial(id=0, params={"lr": 0.1}, phase="initial", status="completed",
        ...             loss=0.5, cost=4.0, elapsed=4.0)]
        >>> print(format_table(ts, max_cost=10.0))  # doctest: +NORMALIZE_WHITESPACE
          id  phase    status     loss  cost  elapsed  params
        *  0  initial  completed   0.5     4        4  lr=0.1
        <BLANKLINE>
        budget (max_cost): 10
        best trial: #0  loss 0.5  cost 4  (lr=0.1)
        total compute: 4  (1 trials: 1 completed)
        compute spent on early-stopped runs: 0  (0 runs)
        compute saved by early stops: 0
    """
    max_cost = _check_max_cost(max_cost)
    trials = sorted(_check_trials(trials), key=lambda t: t.id)
    s = summary(trials, max_cost)
    best_id = s["best_trial_id"]

    header = ["", "id", "phase", "status", "loss", "cost ", "elapsed", "params"]
    right = {1, 4, 5, 6}  # numeric columns line up on the right
    rows: list[list[str]] = []
    for t in trials:
        # Mark runs that completed over budget: they are results, not candidates. The
        # blank on the others keeps the digits of the column aligned.
        over = t.status == TrialStatus.COMPLETED.value and (_finite(t.cost) or 0.0) > max_cost
        cost = _fmt(t.cost) + (">" if over else " ")
        rows.append(
            [
                "*" if t.id == best_id else "",
                str(t.id),
                t.phase,
                t.status,
                _fmt(t.loss),
                cost,
                _fmt(t.elapsed),
                _fmt_params(t.params),
            ]
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        parts = [
            c.rjust(w) if i in right else (c if i == len(cells) - 1 else c.ljust(w))
            for i, (c, w) in enumerate(zip(cells, widths))
        ]
        return "  ".join(parts).rstrip()

    out = [line(header)]
    out += [line(r) for r in rows] if rows else ["(no trials)"]
    out.append("")
    out.append(f"budget (max_cost): {_fmt(max_cost)}")
    if best_id is None:
        out.append("best trial: none (no completed trial within the budget)")
    else:
        out.append(
            f"best trial: #{best_id}  loss {_fmt(s['best_loss'])}  cost {_fmt(s['best_cost'])}"
            f"  ({_fmt_params(s['best_params'], width=None)})"
        )
    counts = ", ".join(f"{n} {k}" for k, n in s["n_by_status"].items() if n)
    out.append(
        f"total compute: {_fmt(s['total_compute'])}  ({s['n_trials']} trials"
        + (f": {counts})" if counts else ")")
    )
    n_early = s["n_by_status"][TrialStatus.EARLY_STOPPED.value]
    out.append(
        f"compute spent on early-stopped runs: {_fmt(s['early_stopped_compute'])}  ({n_early} runs)"
    )
    out.append(f"compute saved by early stops: {_fmt(s['early_stop_savings'])}")
    return "\n".join(out)


def format_progress(
    i: int,
    n: int | None,
    trial: Trial,
    best: Trial | None,
    compute_used: float,
    *,
    compute_budget: float | None = None,
) -> str:
    """One progress line for the driver to log after each trial.

    Args:
        i: How many trials have run, this one included (1-based).
        n: Planned number of trials, or None when the study is limited by
            total compute instead.
        trial: The trial that just finished.
        best: The incumbent after it, or None.
        compute_used: Total compute spent by the study so far.
        compute_budget: Total compute the study may spend, shown as
            ``compute used/budget`` when given (cost-limited runs).

    Example:
        >>> from lightning_ticktock.trial import Trial
        >>> t = Trial(id=4, params={}, phase="tock", status="completed", loss=0.25, cost=8.0)
        >>> print(format_progress(5, 40, t, t, 31.5))  # doctest: +NORMALIZE_WHITESPACE
        trial  5/40  tock      completed      loss 0.25    cost 8
        | best 0.25 (#4) | compute 31.5
        >>> e = Trial(id=5, params={}, phase="tick", status="early_stopped", cost=40.0)
        >>> print(format_progress(6, None, e, t, 35.0, compute_budget=100.0))
        ... # doctest: +NORMALIZE_WHITESPACE
        trial 6  tick      early_stopped  loss -       cost ~40
        | best 0.25 (#4) | compute 35/100
    """
    counter = f"{i:>{len(str(n))}d}/{n}" if n is not None else str(i)
    if trial.status == TrialStatus.EARLY_STOPPED.value:
        cost = "~" + _fmt(_projected(trial))  # projected full cost, not measured
    else:
        cost = _fmt(trial.cost)
    text = (
        f"trial {counter}  {trial.phase:<8}  {trial.status:<13}  "
        f"loss {_fmt(trial.loss):<6}  cost {cost:<7}"
    )
    text += " | best " + ("-" if best is None else f"{_fmt(best.loss)} (#{best.id})")
    text += f" | compute {_fmt(compute_used)}"
    if compute_budget is not None:
        text += f"/{_fmt(compute_budget)}"
    if trial.status == TrialStatus.FAILED.value and trial.error:
        first = str(trial.error).strip().splitlines()[0] if str(trial.error).strip() else ""
        text += f" | error: {first[:80]}"
    return text


def plot(
    trials: Iterable[Trial],
    max_cost: float,
    path: Any = None,
    title: str | None = None,
) -> Figure:
    """Two panels: loss against cost, and best feasible loss against compute spent.

    Left: each completed trial at ``(cost, loss)``, marker and colour by phase,
    hollow when over the budget; a dashed vertical line at ``max_cost`` with
    the over-budget side shaded; early-stopped runs (no loss) as red ``x``
    along the top edge at their projected cost; failed runs with a known cost
    as a black rug along the bottom edge; the incumbent as an annotated gold
    star. The cost axis is logarithmic when the costs span more than a decade.

    Right: the best feasible loss so far (the incumbent of :func:`best_trial`)
    as a step plot against cumulative compute, trials taken in the order they
    finished, with a marker (coloured by phase) where the incumbent changes.

    An empty study, or one without a completed trial, gives a figure that says so.
    The figure is drawn on matplotlib's Agg canvas directly, so it neither needs
    a display nor changes the caller's pyplot backend or open figures.

    Args:
        trials: Trials of a study, in any order.
        max_cost: The per-run budget; a finite number > 0.
        path: Where to save the figure (format from the suffix, e.g. ``.png``),
            or None to only return it.
        title: Figure title; a default names the number of trials and the budget.

    Returns:
        The :class:`matplotlib.figure.Figure`.

    Example:
        >>> fig = plot(trials, max_cost=10.0, path="study.png")  # doctest: +SKIP
    """
    max_cost = _check_max_cost(max_cost)
    trials = sorted(_check_trials(trials), key=lambda t: t.id)

    # Lazy: matplotlib costs ~0.3 s to import and is an optional dependency.
    from matplotlib import ticker
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    fig = Figure(figsize=(13.0, 5.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax_l, ax_r = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.35, 1.0]})
    s = summary(trials, max_cost)
    best = best_trial(trials, max_cost)

    if title is None:
        title = f"Tick-tock study: {len(trials)} trials, per-run budget max_cost = {_fmt(max_cost)}"
    fig.suptitle(title, fontsize=13)

    _plot_loss_vs_cost(ax_l, trials, max_cost, best, Line2D, ticker)
    _plot_progress(ax_r, trials, max_cost, s)

    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def _plot_loss_vs_cost(
    ax: Any, trials: list[Trial], max_cost: float, best: Trial | None, line2d: Any, ticker: Any
) -> None:
    completed = [
        t
        for t in trials
        if t.status == TrialStatus.COMPLETED.value
        and _finite(t.loss) is not None
        and _finite(t.cost) is not None
    ]
    early = [
        t
        for t in trials
        if t.status == TrialStatus.EARLY_STOPPED.value and _projected(t) is not None
    ]
    failed = [
        t for t in trials if t.status == TrialStatus.FAILED.value and _finite(t.cost) is not None
    ]

    ax.set_title("Loss against cost of each run", fontsize=11)
    ax.set_xlabel("cost of the run (early-stopped: projected full cost)")
    ax.set_ylabel("final validation loss")
    ax.grid(True, which="major", alpha=0.3)

    xs = [float(t.cost) for t in completed] + [_projected(t) for t in early]  # type: ignore[misc]
    xs += [float(t.cost) for t in failed]  # type: ignore[arg-type]
    if not xs and not trials:
        ax.text(
            0.5,
            0.5,
            "no trials yet",
            ha="center",
            va="center",
            transform=ax.transAxes,
            fontsize=12,
            color="0.4",
        )
        ax.set_xticks([])
        ax.set_yticks([])
        return

    # Keep the budget on the chart; log x only when it helps and is possible.
    span = [x for x in xs if x is not None] + [max_cost]
    log_x = min(span) > 0 and max(span) / min(span) > 10.0
    if log_x:
        ax.set_xscale("log")
        lo, hi = min(span) / 1.4, max(span) * 1.4
        # Plain numbers (0.5, 1, 2, 5, 10, ...) read faster than 10^0, 10^1.
        ax.xaxis.set_major_locator(ticker.LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    else:
        pad = 0.06 * (max(span) - min(span)) or 0.1 * max_cost
        lo, hi = min(0.0, min(span) - pad), max(span) + pad
    ax.set_xlim(lo, hi)

    losses = [float(t.loss) for t in completed]  # type: ignore[arg-type]
    if losses:
        l_lo, l_hi = min(losses), max(losses)
        log_y = l_lo > 0 and l_hi / l_lo > 100.0  # a few diverged runs would squash the rest
        if log_y:
            ax.set_yscale("log")
            ax.set_ylim(l_lo / 1.3, l_hi * 2.2)  # headroom for the early-stop row
        else:
            rng = (l_hi - l_lo) or max(abs(l_hi), 1.0) * 0.1
            ax.set_ylim(l_lo - 0.08 * rng, l_hi + 0.16 * rng)

    ax.axvspan(max_cost, hi, color=_BUDGET_COLOR, alpha=0.06, lw=0, zorder=0)
    ax.axvline(max_cost, color=_BUDGET_COLOR, ls="--", lw=1.5, zorder=1)

    handles: list[Any] = [
        line2d(
            [],
            [],
            color=_BUDGET_COLOR,
            ls="--",
            lw=1.5,
            label=f"budget max_cost = {_fmt(max_cost)}",
        )
    ]
    any_over = False
    for phase, style in _PHASE_STYLE.items():
        group = [t for t in completed if t.phase == phase]
        if not group:
            continue
        inside = [t for t in group if float(t.cost) <= max_cost]  # type: ignore[arg-type]
        over = [t for t in group if float(t.cost) > max_cost]  # type: ignore[arg-type]
        any_over = any_over or bool(over)
        common = {"marker": style["marker"], "s": 64, "zorder": 3, "linewidths": 0.9}
        if inside:
            ax.scatter(
                [t.cost for t in inside],
                [t.loss for t in inside],
                color=style["color"],
                edgecolors="white",
                alpha=0.95,
                **common,
            )
        if over:
            ax.scatter(
                [t.cost for t in over],
                [t.loss for t in over],
                facecolors="none",
                edgecolors=style["color"],
                **common,
            )
        handles.append(
            line2d(
                [],
                [],
                ls="",
                marker=style["marker"],
                color=style["color"],
                markeredgecolor="white",
                markersize=8,
                label=f"{style['label']} ({len(group)})",
            )
        )
    if any_over:
        handles.append(
            line2d(
                [],
                [],
                ls="",
                marker="o",
                markerfacecolor="none",
                markeredgecolor="0.3",
                markersize=8,
                label="over budget (hollow)",
            )
        )

    # Early-stopped and failed runs have no loss: pin them to the axis edges (x in
    # data, y in axes coordinates) so they never pretend to have one.
    edge = ax.get_xaxis_transform()
    if early:
        # A faint rule sets the row apart from the loss scale it does not belong to.
        ax.plot(
            [0.0, 1.0],
            [0.915, 0.915],
            transform=ax.transAxes,
            color="0.6",
            lw=0.8,
            ls=":",
            zorder=1,
        )
        ax.text(
            0.99,
            0.905,
            "early-stopped runs above: no loss",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=7.5,
            color=_EARLY_STOP_COLOR,
        )
        ax.scatter(
            [_projected(t) for t in early],
            [0.96] * len(early),
            transform=edge,
            marker="x",
            s=42,
            color=_EARLY_STOP_COLOR,
            linewidths=1.6,
            zorder=4,
            clip_on=False,
        )
        handles.append(
            line2d(
                [],
                [],
                ls="",
                marker="x",
                color=_EARLY_STOP_COLOR,
                markeredgewidth=1.6,
                markersize=7,
                label=f"early-stopped (projected cost) ({len(early)})",
            )
        )
    if failed:
        ax.scatter(
            [t.cost for t in failed],
            [0.0] * len(failed),
            transform=edge,
            marker="|",
            s=160,
            color=_FAILED_COLOR,
            linewidths=1.5,
            zorder=4,
            clip_on=False,
        )
        handles.append(
            line2d(
                [],
                [],
                ls="",
                marker="|",
                color=_FAILED_COLOR,
                markersize=10,
                markeredgewidth=1.5,
                label=f"failed (cost spent) ({len(failed)})",
            )
        )

    if best is not None:
        bx, by = float(best.cost), float(best.loss)  # type: ignore[arg-type]
        ax.scatter(
            [bx],
            [by],
            marker="*",
            s=420,
            color=_BEST_COLOR,
            edgecolors="black",
            linewidths=1.0,
            zorder=5,
        )
        # Put the label on the roomier side of the star, up and inwards, so it is
        # not cut by the axes edge or drawn over the legend.
        frac_x, frac_y = ax.transAxes.inverted().transform(ax.transData.transform((bx, by)))
        right_side = frac_x < 0.62
        ax.annotate(
            f"best #{best.id}\nloss {_fmt(by)}, cost {_fmt(bx, 3)}",
            xy=(bx, by),
            xytext=(18 if right_side else -18, 26 if frac_y < 0.6 else -34),
            textcoords="offset points",
            fontsize=9,
            ha="left" if right_side else "right",
            va="bottom" if frac_y < 0.6 else "top",
            zorder=6,
            bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "0.5", "alpha": 0.9},
            arrowprops={"arrowstyle": "-", "color": "0.4", "lw": 0.8},
        )
        handles.append(
            line2d(
                [],
                [],
                ls="",
                marker="*",
                color=_BEST_COLOR,
                markeredgecolor="black",
                markersize=14,
                label="best feasible",
            )
        )

    if not completed:
        ax.set_yticks([])
        ax.text(
            0.5,
            0.5,
            "no completed runs yet",
            ha="center",
            va="center",
            transform=ax.transAxes,
            fontsize=12,
            color="0.4",
        )

    hidden = _hidden_counts(trials)
    if hidden:
        ax.text(
            0.01,
            0.035,
            "not shown: " + ", ".join(hidden),
            transform=ax.transAxes,
            fontsize=8,
            color="0.35",
            ha="left",
            va="bottom",
        )
    ax.legend(
        handles=handles,
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        frameon=False,
        borderaxespad=0.3,
    )


def _hidden_counts(trials: list[Trial]) -> list[str]:
    """What the left panel cannot draw, so the reader knows it exists."""
    n_running = sum(t.status == TrialStatus.RUNNING.value for t in trials)
    n_interrupted = sum(t.status == TrialStatus.INTERRUPTED.value for t in trials)
    n_bad_loss = sum(
        t.status == TrialStatus.COMPLETED.value
        and (_finite(t.loss) is None or _finite(t.cost) is None)
        for t in trials
    )
    n_failed_nocost = sum(
        t.status == TrialStatus.FAILED.value and _finite(t.cost) is None for t in trials
    )
    n_early_nocost = sum(
        t.status == TrialStatus.EARLY_STOPPED.value and _projected(t) is None for t in trials
    )
    parts = [
        (n_running, "running"),
        (n_interrupted, "interrupted"),
        (n_bad_loss, "completed without finite loss/cost"),
        (n_failed_nocost, "failed without cost"),
        (n_early_nocost, "early-stopped without projection"),
    ]
    return [f"{n} {what}" for n, what in parts if n]


def _plot_progress(ax: Any, trials: list[Trial], max_cost: float, s: dict[str, Any]) -> None:
    ax.set_title("Best feasible loss so far", fontsize=11)
    ax.set_xlabel("cumulative compute spent by the study")
    ax.set_ylabel("best loss with cost <= max_cost")
    ax.grid(True, alpha=0.3)
    xs, ys, changed, total = _incumbent_trace(trials, max_cost)

    if not xs:
        msg = "no trials yet" if not trials else "no completed run within the budget yet"
        ax.text(
            0.5,
            0.5,
            msg,
            ha="center",
            va="center",
            transform=ax.transAxes,
            fontsize=12,
            color="0.4",
        )
        ax.set_yticks([])
        if total > 0:
            ax.set_xlim(0, total * 1.05)
        else:
            ax.set_xticks([])
    else:
        # Extend the last level to the end of the study: compute spent after the
        # last improvement is part of the story.
        step_x = [*xs, max(total, xs[-1])]
        step_y = [*ys, ys[-1]]
        ax.step(step_x, step_y, where="post", color="0.25", lw=1.8, zorder=2)
        for t, x, y in zip(changed, xs, ys):
            style = _PHASE_STYLE.get(t.phase, _PHASE_STYLE[Phase.INITIAL.value])
            ax.scatter(
                [x],
                [y],
                marker=style["marker"],
                color=style["color"],
                s=60,
                edgecolors="black",
                linewidths=0.6,
                zorder=3,
            )
        # Trial ids help match the two panels, but only while they stay legible.
        if len(changed) <= 12:
            for t, x, y in zip(changed, xs, ys):
                ax.annotate(
                    f"#{t.id}",
                    (x, y),
                    xytext=(4, 5),
                    textcoords="offset points",
                    fontsize=8,
                    color="0.3",
                )
        ax.set_xlim(0, max(total, xs[-1]) * 1.04)
        y_lo, y_hi = min(ys), max(ys)
        if y_lo > 0 and y_hi / y_lo > 100.0:  # same rule as the left panel's loss axis
            ax.set_yscale("log")
            ax.set_ylim(y_lo / 1.5, y_hi * 1.5)
        else:
            rng = (y_hi - y_lo) or max(abs(y_hi), 1.0) * 0.1
            ax.set_ylim(y_lo - 0.1 * rng, y_hi + 0.12 * rng)

    if not trials:
        return
    lines = [f"total compute: {_fmt(s['total_compute'])}"]
    n_early = s["n_by_status"][TrialStatus.EARLY_STOPPED.value]
    if n_early:
        lines.append(
            f"early-stopped runs ({n_early}): spent {_fmt(s['early_stopped_compute'])},"
            f" saved {_fmt(s['early_stop_savings'])}"
        )
    if s["best_trial_id"] is not None:
        lines.append(
            f"best: #{s['best_trial_id']}  loss {_fmt(s['best_loss'])}"
            f"  cost {_fmt(s['best_cost'], 3)}"
        )
    ax.text(
        0.98,
        0.97,
        "\n".join(lines),
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=8.5,
        bbox={"boxstyle": "round,pad=0.4", "fc": "white", "ec": "0.7", "alpha": 0.9},
    )

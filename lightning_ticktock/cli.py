"""The ``ticktock`` command line: report, plot and run studies.

``ticktock report STUDY.db`` prints the trial table and the study's totals;
``--json`` prints one JSON object instead. ``ticktock plot STUDY.db -o FILE.png``
writes the study figure. ``ticktock run SCRIPT.py [ARGS...]`` runs a study
script (e.g. ``examples/mnist.py``) as ``python SCRIPT.py ARGS`` would.

Only the storage and report modules are imported here (no torch, no Lightning),
so ``ticktock --help`` and ``ticktock report`` start fast.

Example:
    >>> main(["--version"])  # doctest: +ELLIPSIS
    ticktock ...
    0
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
from collections.abc import Sequence

from . import __version__
from .errors import TickTockError


def _open(path: str):
    from .storage import SQLiteStorage

    if not os.path.exists(path):
        raise TickTockError(f"no study file at {path!r}")
    storage = SQLiteStorage(path)
    if storage.load_space() is None:
        raise TickTockError(f"{path!r} holds no study yet")
    return storage


def _max_cost(storage, override: float | None) -> float:
    if override is not None:
        return override
    value = storage.get_settings().get("max_cost")
    if value is None:
        raise TickTockError("the study records no max_cost; pass --max-cost")
    return float(value)


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import format_table, to_json

    storage = _open(args.study)
    trials = storage.load_trials()
    max_cost = _max_cost(storage, args.max_cost)
    if args.json:
        print(json.dumps(to_json(trials, max_cost), allow_nan=False))
    else:
        print(format_table(trials, max_cost))
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from .report import plot

    storage = _open(args.study)
    out = args.output or os.path.splitext(args.study)[0] + ".png"
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    plot(storage.load_trials(), _max_cost(storage, args.max_cost), path=out, title=args.title)
    print(out)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    if not os.path.exists(args.script):
        raise TickTockError(f"no script at {args.script!r}")
    sys.argv = [args.script, *args.args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(args.script)))
    runpy.run_path(args.script, run_name="__main__")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ticktock",
        description="Tick-tock Bayesian optimization of Lightning models under a cost budget.",
    )
    parser.add_argument("--version", action="version", version=f"ticktock {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    rep = sub.add_parser("report", help="print a study's trials and totals")
    rep.add_argument("study", help="study file (SQLite), e.g. runs/mnist.db")
    rep.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    rep.add_argument("--max-cost", type=float, default=None,
                     help="judge feasibility against this budget instead of the study's")
    rep.set_defaults(func=_cmd_report)

    plo = sub.add_parser("plot", help="write the study figure (loss vs cost, best vs compute)")
    plo.add_argument("study", help="study file (SQLite)")
    plo.add_argument("-o", "--output", default=None, help="image file (default: STUDY.png)")
    plo.add_argument("--title", default=None)
    plo.add_argument("--max-cost", type=float, default=None)
    plo.set_defaults(func=_cmd_plot)

    run = sub.add_parser("run", help="run a study script, e.g. examples/mnist.py")
    run.add_argument("script")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")
    run.set_defaults(func=_cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ticktock`` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help / --version / usage errors
        return int(exc.code or 0)
    try:
        return int(args.func(args))
    except TickTockError as exc:
        print(f"ticktock: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ticktock: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

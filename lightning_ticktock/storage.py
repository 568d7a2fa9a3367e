"""Study storage: one study (space, settings, trials, enqueue list) behind one interface.

Two backends fulfil the same contract (see :class:`BaseStorage`):

* :class:`InMemoryStorage`: plain dicts in this process; gone when it ends.
* :class:`SQLiteStorage`: one SQLite file in WAL mode, shared safely by several
  threads and processes on one machine (like Optuna's RDB storage). Nothing is
  pickled: params, metrics, space and settings are JSON text.

:func:`get_storage` turns a user's ``storage=`` argument into one of them.

Example:
    >>> from lightning_ticktock.space import Float, SearchSpace
    >>> from lightning_ticktock.storage import InMemoryStorage
    >>> from lightning_ticktock.trial import Trial
    >>> storage = InMemoryStorage()
    >>> storage.open_study(SearchSpace([Float("lr", 1e-4, 1.0, log=True)]), {"max_cost": 60.0})
    >>> with storage.transaction():  # claim an id atomically
    ...     storage.insert_trial(Trial(id=storage.next_trial_id(), params={"lr": 0.01},
    ...                                phase="initial"))
    >>> [(t.id, t.status) for t in storage.load_trials()]
    [(0, 'running')]
"""

from __future__ import annotations

import abc
import contextlib
import json
import logging
import math
import numbers
import os
import random
import socket
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from .errors import StorageError, TickTockTypeError, TickTockValueError
from .space import SearchSpace
from .trial import Phase, Trial, TrialStatus

__all__ = [
    "SCHEMA_VERSION",
    "BaseStorage",
    "InMemoryStorage",
    "Owner",
    "SQLiteStorage",
    "get_storage",
]

_logger = logging.getLogger(__name__)

#: Version of the SQLite layout this module reads and writes. Bump it on any change
#: of tables or columns; a file with another version is refused, never guessed at.
SCHEMA_VERSION = 1

_APP = "lightning_ticktock"

# NOTE: 30 s: long enough to ride out another process's transaction (they are short:
# a few reads and one insert) on a loaded machine, short enough that a real deadlock
# or a stuck process surfaces as an error rather than a silent hang.
_DEFAULT_TIMEOUT = 30.0

_RUNNING = TrialStatus.RUNNING.value
_INTERRUPTED = TrialStatus.INTERRUPTED.value

# Columns of one trial row. Both backends store rows with exactly these keys, so the
# conversion code (and therefore the behaviour) is shared.
_COLUMNS = (
    "id",
    "params",  # JSON object
    "phase",
    "status",
    "loss",
    "cost",
    "elapsed",
    "projected_cost",
    "error",
    "datetime_start",
    "datetime_complete",
    "heartbeat",  # UNIX time of the owner's last sign of life
    "owner_host",
    "owner_pid",
)
_FLOAT_COLUMNS = frozenset(
    {"loss", "cost", "elapsed", "projected_cost", "datetime_start", "datetime_complete",
     "heartbeat"}
)
# What update_trial writes; id, params, phase and datetime_start are fixed at insert.
_UPDATABLE = ("status", "loss", "cost", "elapsed", "projected_cost", "error",
              "datetime_complete")


def _now() -> float:
    """Wall-clock time for heartbeats and completion stamps.

    Wall clock, not ``time.monotonic()``: stamps are compared across processes, and a
    monotonic clock means nothing outside the process (or boot) that read it.
    Tests patch this function.
    """
    return time.time()


def _library_version() -> str:
    # Imported lazily: the package's __init__ may import this module before it
    # defines __version__.
    return str(getattr(sys.modules.get("lightning_ticktock"), "__version__", "unknown"))


# ----------------------------------------------------------------------------- owners


class Owner(NamedTuple):
    """The process that runs a trial: where to look to tell whether it is still alive.

    Attributes:
        host: ``socket.gethostname()`` of the machine.
        pid: Process id on that machine.

    Example:
        >>> import os
        >>> Owner.current().pid == os.getpid(), Owner.current().is_alive()
        (True, True)
    """

    host: str
    pid: int

    @classmethod
    def current(cls) -> Owner:
        """The calling process."""
        return cls(socket.gethostname(), os.getpid())

    def is_alive(self) -> bool | None:
        """Whether the process runs: ``None`` when it is on another host (unknowable here)."""
        if self.host != socket.gethostname():
            return None
        return _pid_alive(self.pid)


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` on this host exists and has not exited."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    if os.name == "nt":
        # NOTE: os.kill(pid, 0) on Windows *terminates* the process. Without a safe
        # probe, assume alive and leave recovery to the heartbeat grace period.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    except OSError:
        return True
    # An exited child that its parent has not reaped yet (a zombie) still answers
    # signal 0; /proc tells it apart (Linux). Without /proc, trust the signal.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return not os.path.isdir("/proc/self")
    fields = stat.rsplit(b")", 1)[-1].split()  # the name in (...) may contain spaces
    return not fields or fields[0] != b"Z"


def _check_owner(owner: Any) -> Owner:
    if owner is None:
        return Owner.current()
    if (
        isinstance(owner, tuple)
        and len(owner) == 2
        and isinstance(owner[0], str)
        and isinstance(owner[1], int)
        and not isinstance(owner[1], bool)
    ):
        return Owner(owner[0], int(owner[1]))
    raise TickTockTypeError(
        f"owner={owner!r} must be None (the calling process) or Owner(host: str, pid: int)"
    )


# ------------------------------------------------------------------ value conversion


def _dumps(value: Any, what: str) -> str:
    """JSON text of ``value``; NaN and infinities are kept (Python's json dialect)."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as e:
        raise TickTockTypeError(
            f"{what}={value!r} must be JSON-serializable (dict, list, str, int, float, "
            f"bool, None): {e}"
        ) from None


def _check_object(value: Any, what: str) -> dict[str, Any]:
    """A JSON object: a mapping with string keys (json would silently turn 1 into "1")."""
    if not isinstance(value, Mapping):
        raise TickTockTypeError(
            f"{what}={value!r} must be a dict, got {type(value).__name__}"
        )
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise TickTockTypeError(f"{what}: keys {bad!r} must be strings")
    return dict(value)


def _canonical(value: Any) -> Any:
    """``value`` with integral floats as ints, so that 1.0 and 1 are the same params."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, Mapping):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def _params_key(params: Mapping[str, Any]) -> str:
    return json.dumps(_canonical(params), sort_keys=True)


def _normalized(text: str) -> str:
    """Key-order independent form of a JSON text, for comparing metric records."""
    return json.dumps(json.loads(text), sort_keys=True)


def _check_id(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TickTockTypeError(
            f"{what}={value!r} must be an int, got {type(value).__name__}"
        )
    if value < 0:
        raise TickTockValueError(f"{what}={value!r} must be >= 0")
    return int(value)


def _opt_float(value: Any, what: str) -> float | None:
    if value is None:
        return None
    # Strict on purpose: a tensor or a string stored by mistake should fail here,
    # not when the optimizer reads the study back.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TickTockTypeError(
            f"{what}={value!r} must be a float or None, got {type(value).__name__}"
        )
    return float(value)


def _trial_to_row(trial: Any) -> tuple[dict[str, Any], list[str]]:
    """Validate a Trial and convert it to a row plus its metric records (JSON texts)."""
    if not isinstance(trial, Trial):
        raise TickTockTypeError(
            f"trial={trial!r} must be a lightning_ticktock Trial, got {type(trial).__name__}"
        )
    tid = _check_id(trial.id, "trial.id")
    ctx = f"trial {tid}"
    try:
        status = TrialStatus(trial.status).value
    except ValueError:
        raise TickTockValueError(
            f"{ctx}: status={trial.status!r} is not one of {[s.value for s in TrialStatus]}"
        ) from None
    try:
        phase = Phase(trial.phase).value
    except ValueError:
        raise TickTockValueError(
            f"{ctx}: phase={trial.phase!r} is not one of {[p.value for p in Phase]}"
        ) from None
    if trial.error is not None and not isinstance(trial.error, str):
        raise TickTockTypeError(f"{ctx}: error={trial.error!r} must be a str or None")
    if isinstance(trial.metrics, (str, bytes, Mapping)) or not isinstance(
        trial.metrics, Sequence
    ):
        raise TickTockTypeError(f"{ctx}: metrics={trial.metrics!r} must be a list of dicts")
    start = _opt_float(trial.datetime_start, f"{ctx}: datetime_start")
    if start is None:
        raise TickTockTypeError(f"{ctx}: datetime_start must be a UNIX time, got None")
    row = {
        "id": tid,
        "params": _dumps(_check_object(trial.params, f"{ctx}: params"), f"{ctx}: params"),
        "phase": phase,
        "status": status,
        "loss": _opt_float(trial.loss, f"{ctx}: loss"),
        "cost": _opt_float(trial.cost, f"{ctx}: cost"),
        "elapsed": _opt_float(trial.elapsed, f"{ctx}: elapsed"),
        "projected_cost": _opt_float(trial.projected_cost, f"{ctx}: projected_cost"),
        "error": trial.error,
        "datetime_start": start,
        "datetime_complete": _opt_float(trial.datetime_complete, f"{ctx}: datetime_complete"),
    }
    metrics = [
        _dumps(_check_object(r, f"{ctx}: metrics[{i}]"), f"{ctx}: metrics[{i}]")
        for i, r in enumerate(trial.metrics)
    ]
    return row, metrics


def _row_to_trial(row: Mapping[str, Any], metrics: Sequence[str]) -> Trial:
    return Trial(
        id=row["id"],
        params=json.loads(row["params"]),
        phase=row["phase"],
        status=row["status"],
        loss=row["loss"],
        cost=row["cost"],
        elapsed=row["elapsed"],
        projected_cost=row["projected_cost"],
        error=row["error"],
        metrics=[json.loads(m) for m in metrics],
        datetime_start=row["datetime_start"],
        datetime_complete=row["datetime_complete"],
    )


# ------------------------------------------------------------------------- interface


class BaseStorage(abc.ABC):
    """Where one study lives: its search space, settings, trials and enqueue list.

    A storage holds exactly one study. Every backend meets this contract, checked by
    one conformance suite (``tests/test_storage.py``):

    **Atomicity.** Each public method is atomic: it applies completely or not at all,
    and outside :meth:`transaction` its write is committed (durable and visible to
    every other thread and process using the storage) before it returns; a
    ``kill -9`` right after loses nothing. ``with storage.transaction():`` makes a
    whole block atomic: no other writer runs between its reads and its writes, its
    writes become visible together when it ends, and an exception inside rolls the
    block back. Transactions nest within a thread: an inner block that raises is
    rolled back alone, the outermost block commits. This is how drivers sharing one
    study claim trials without ever repeating an id::

        with storage.transaction():
            trials, queue = storage.load_trials(), storage.load_queue()
            ...  # decide what to run next
            storage.insert_trial(Trial(id=storage.next_trial_id(), params=params, ...))
            storage.remove_from_queue(params)

    Keep transactions short (never train inside one): other processes wait for them.

    **Copies.** Trials, dicts and spaces returned are fresh copies: mutating them never
    changes the storage, and the storage never keeps or mutates the objects passed in.

    **Immutability.** Trial ids are unique and never reused (:meth:`next_trial_id` is
    the largest id plus one). A trial's id, params, phase and datetime_start are fixed
    by :meth:`insert_trial`. Only a ``running`` trial may change; once it is
    ``completed``, ``early_stopped``, ``failed`` or ``interrupted`` it is final, and
    :meth:`update_trial` or :meth:`append_metrics` on it raises :class:`StorageError`.
    Metric records are append-only. When a trial leaves ``running`` without a
    ``datetime_complete``, the storage stamps the current time.

    **Heartbeats and owners.** Each trial row records its owner (host name and pid of
    the process running it) and a heartbeat (UNIX time of the owner's last sign of
    life). The protocol:

    1. :meth:`insert_trial` records the caller as owner (or the ``owner`` given, for an
       executor that starts a worker on the trial's behalf) and stamps the heartbeat.
    2. While the trial runs, its process calls :meth:`heartbeat` at a regular interval
       (a daemon thread, or each validation); :meth:`append_metrics` and
       :meth:`update_trial` count as beats too. :meth:`heartbeat` also makes the caller
       the owner, so the owner is always the process that last proved the trial alive.
    3. A driver starting up calls :meth:`interrupt_dead_owner_trials`: running trials
       owned by a process on this host that no longer exists are interrupted at once,
       so a driver restarted after a ``kill -9`` sees its trial interrupted right away.
    4. Drivers call :meth:`fail_stale_trials` with a grace period several times the
       beat interval (say 10x), for owners on other hosts and hung processes; trials
       whose last beat is older are interrupted.
    5. :meth:`heartbeat` returns False once the trial is no longer running (another
       process declared it interrupted): the owner should stop training, as its
       final :meth:`update_trial` will be refused.

    An interrupted trial is final; running its configuration again is a new trial.

    **Values.** Params, settings and metric records are JSON (dicts with string keys);
    NaN and infinities round-trip everywhere, including in loss, cost and metrics.

    **Backends** implement :meth:`transaction` and the private row primitives
    (``_get_meta`` ... ``_queue_remove``); the public methods above are written once,
    here, on top of them, so every backend behaves the same.
    """

    # ------------------------------------------------------------------ transactions

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """Make the reads and writes inside the block atomic (see the class docstring).

        Re-entrant within a thread. Raises :class:`StorageError` when another process
        keeps the storage locked longer than the backend's timeout.

        Example:
            >>> storage = InMemoryStorage()
            >>> with storage.transaction():
            ...     storage.enqueue({"lr": 0.1})
            True
            >>> storage.load_queue()
            [{'lr': 0.1}]
        """

    def _read_transaction(self) -> contextlib.AbstractContextManager[None]:
        """A consistent snapshot for methods that only read; backends may make it cheaper."""
        return self.transaction()

    def close(self) -> None:
        """Release connections and files. The storage reopens lazily if used again."""
        return None  # nothing to release by default

    def __enter__(self) -> BaseStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- study record

    def open_study(
        self, space: SearchSpace | Sequence[Any], settings: Mapping[str, Any] | None = None
    ) -> None:
        """Create the study, or check that a resumed one has the same space.

        On an empty storage, records ``space`` and ``settings``. On a storage that
        already holds a study, the stored space must equal ``space``; the given
        ``settings`` then update the stored ones (a resumed study may have another
        budget ``max_cost``: the new value is recorded, and the change logged).

        Args:
            space: The search space (or a list of parameters).
            settings: JSON dict of study settings, e.g. ``{"max_cost": 60.0, "seed": 0}``.

        Raises:
            StorageError: The storage holds a study with another space; the message lists
                the differences and how to fix it.

        Example:
            >>> from lightning_ticktock.space import Int
            >>> storage = InMemoryStorage()
            >>> storage.open_study([Int("epochs", 1, 9)], {"max_cost": 10.0, "seed": 0})
            >>> storage.open_study([Int("epochs", 1, 9)], {"max_cost": 20.0})
            >>> storage.get_settings()
            {'max_cost': 20.0, 'seed': 0}
        """
        space = SearchSpace.coerce(space)
        new = _check_object({} if settings is None else settings, "settings")
        space_text = _dumps(space.to_dict(), "space")
        with self.transaction():
            stored = self._get_meta("space")
            if stored is None:
                self._set_meta("space", space_text)
            else:
                old = self._parse_space(stored)
                diff = old.diff(space)
                if diff:
                    raise StorageError(
                        f"{self!r} already holds a study with another search space "
                        f"(first = stored, second = given): {'; '.join(diff)}. To start a "
                        "new study, use another storage path (or storage=None); to resume "
                        "this one, pass the same space."
                    )
            self._merge_settings(new)

    def load_space(self) -> SearchSpace | None:
        """The study's search space, or None before :meth:`open_study`."""
        with self._read_transaction():
            stored = self._get_meta("space")
        return None if stored is None else self._parse_space(stored)

    def get_settings(self) -> dict[str, Any]:
        """The study settings (``{}`` before any were set).

        Example:
            >>> storage = InMemoryStorage()
            >>> storage.set_settings(max_cost=5.0)
            >>> storage.get_settings()
            {'max_cost': 5.0}
        """
        with self._read_transaction():
            stored = self._get_meta("settings")
        return {} if stored is None else json.loads(stored)

    def set_settings(self, **settings: Any) -> None:
        """Update (add or overwrite) study settings; values must be JSON-serializable."""
        with self.transaction():
            self._merge_settings(settings)

    def _merge_settings(self, new: Mapping[str, Any]) -> None:
        if not new:
            return
        stored = self._get_meta("settings")
        merged = {} if stored is None else json.loads(stored)
        for key, value in new.items():
            text = _dumps(value, f"settings[{key!r}]")
            if key in merged and _dumps(merged[key], key) != text:
                _logger.info("study setting %r changed from %r to %r", key, merged[key], value)
            merged[key] = json.loads(text)
        self._set_meta("settings", json.dumps(merged))

    def _parse_space(self, text: str) -> SearchSpace:
        try:
            return SearchSpace.from_dict(json.loads(text))
        except (ValueError, TypeError, KeyError) as e:
            raise StorageError(
                f"{self!r}: the stored search space cannot be read ({e}); the storage is "
                "damaged or was written by another program; use a new storage path"
            ) from None

    # ----------------------------------------------------------------------- trials

    def load_trials(self) -> list[Trial]:
        """All trials, in id order, as fresh copies (with their metric records)."""
        with self._read_transaction():
            rows = self._load_rows()
            metrics = self._load_metrics(None)
        return [_row_to_trial(r, metrics.get(r["id"], ())) for r in rows]

    def get_trial(self, trial_id: int) -> Trial:
        """One trial, as a fresh copy.

        Raises:
            StorageError: No trial has this id.
        """
        trial_id = _check_id(trial_id, "trial_id")
        with self._read_transaction():
            row = self._require_row(trial_id, "get_trial")
            metrics = self._load_metrics(trial_id).get(trial_id, ())
        return _row_to_trial(row, metrics)

    def next_trial_id(self) -> int:
        """The largest id plus one (0 when empty): call inside :meth:`transaction`
        together with :meth:`insert_trial`, or another process may take the same id."""
        with self._read_transaction():
            top = self._max_id()
        return 0 if top is None else top + 1

    def insert_trial(self, trial: Trial, owner: Owner | None = None) -> None:
        """Store a new trial (any status: a running one, or a result from elsewhere).

        Args:
            trial: The trial; its id must be new.
            owner: The process that will run it; defaults to the caller.

        Raises:
            StorageError: A trial with this id already exists.
            TickTockTypeError: A field has the wrong type or is not JSON-serializable.
        """
        row, metrics = _trial_to_row(trial)
        owner = _check_owner(owner)
        now = _now()
        row.update(heartbeat=now, owner_host=owner.host, owner_pid=owner.pid)
        if row["status"] != _RUNNING and row["datetime_complete"] is None:
            row["datetime_complete"] = now
        with self.transaction():
            old = self._get_row(row["id"])
            if old is not None:
                raise StorageError(
                    f"insert_trial: trial {row['id']} already exists ({old['status']}); ids "
                    "are never reused: take a new one with next_trial_id() inside the same "
                    "storage.transaction() as the insert"
                )
            self._insert_row(row)
            if metrics:
                self._append_metric_rows(row["id"], metrics)

    def update_trial(self, trial: Trial) -> None:
        """Write a running trial's status, loss, cost, elapsed, projected_cost, error,
        metrics and datetime_complete. Also a heartbeat.

        ``trial.metrics`` may be a stale copy (fewer records than stored: nothing is
        lost) or an extension of the stored records (the new ones are appended);
        records are never rewritten. id, params, phase and datetime_start are ignored:
        they are fixed at insert.

        Raises:
            StorageError: The trial is unknown or already final (completed,
                early_stopped, failed, interrupted), or ``trial.metrics`` contradicts
                the records stored.

        Example:
            >>> storage = InMemoryStorage()
            >>> t = Trial(id=0, params={"lr": 0.1}, phase="initial")
            >>> storage.insert_trial(t)
            >>> t.status, t.loss, t.cost = "completed", 0.25, 3.0
            >>> storage.update_trial(t)
            >>> storage.get_trial(0).loss
            0.25
        """
        row, metrics = _trial_to_row(trial)
        tid = row["id"]
        with self.transaction():
            self._require_running(tid, "update_trial")
            stored = self._load_metrics(tid).get(tid, [])
            new = [_normalized(m) for m in metrics]
            old = [_normalized(m) for m in stored]
            common = min(len(new), len(old))
            if new[:common] != old[:common]:
                first = next(i for i in range(common) if new[i] != old[i])
                raise StorageError(
                    f"update_trial: trial {tid}: metrics[{first}] differs from the record "
                    f"stored ({new[first]} vs {old[first]}); metric records are append-only: "
                    "reload the trial with get_trial() and append to its metrics"
                )
            fields = {k: row[k] for k in _UPDATABLE}
            now = _now()
            fields["heartbeat"] = now
            if fields["status"] != _RUNNING and fields["datetime_complete"] is None:
                fields["datetime_complete"] = now
            self._update_row(tid, fields)
            if len(metrics) > len(stored):
                self._append_metric_rows(tid, metrics[len(stored):])

    def append_metrics(self, trial_id: int, record: Mapping[str, Any]) -> None:
        """Append one per-validation record (e.g. step, val_loss, elapsed) to a running
        trial, durably; it appears in ``Trial.metrics``. Also a heartbeat.

        Raises:
            StorageError: The trial is unknown or already final.

        Example:
            >>> storage = InMemoryStorage()
            >>> storage.insert_trial(Trial(id=0, params={"lr": 0.1}, phase="initial"))
            >>> storage.append_metrics(0, {"step": 10, "val_loss": 0.5})
            >>> storage.get_trial(0).metrics
            [{'step': 10, 'val_loss': 0.5}]
        """
        trial_id = _check_id(trial_id, "trial_id")
        what = f"append_metrics(trial_id={trial_id}): record"
        text = _dumps(_check_object(record, what), what)
        with self.transaction():
            self._require_running(trial_id, "append_metrics")
            self._append_metric_rows(trial_id, [text])
            self._update_row(trial_id, {"heartbeat": _now()})

    # ------------------------------------------------------------- heartbeats, owners

    def heartbeat(self, trial_id: int, owner: Owner | None = None) -> bool:
        """Stamp the current time on a running trial and make ``owner`` (default: the
        caller) its owner.

        Returns:
            True if stamped; False if the trial is no longer running (for instance
            interrupted by another process as stale): its owner should stop.

        Raises:
            StorageError: No trial has this id.
        """
        trial_id = _check_id(trial_id, "trial_id")
        owner = _check_owner(owner)
        with self.transaction():
            row = self._require_row(trial_id, "heartbeat")
            if row["status"] != _RUNNING:
                return False
            self._update_row(
                trial_id, {"heartbeat": _now(), "owner_host": owner.host, "owner_pid": owner.pid}
            )
        return True

    def get_heartbeat(self, trial_id: int) -> float | None:
        """UNIX time of the trial's last heartbeat."""
        trial_id = _check_id(trial_id, "trial_id")
        with self._read_transaction():
            return self._require_row(trial_id, "get_heartbeat")["heartbeat"]

    def get_owner(self, trial_id: int) -> Owner | None:
        """The process that last owned the trial (see the heartbeat protocol)."""
        trial_id = _check_id(trial_id, "trial_id")
        with self._read_transaction():
            row = self._require_row(trial_id, "get_owner")
        if row["owner_host"] is None or row["owner_pid"] is None:
            return None
        return Owner(row["owner_host"], row["owner_pid"])

    def mark_interrupted(self, trial_id: int) -> bool:
        """Mark a running trial ``interrupted`` (final) and stamp datetime_complete.

        Returns:
            True if it was running; False if it was already final (left unchanged).

        Raises:
            StorageError: No trial has this id.
        """
        trial_id = _check_id(trial_id, "trial_id")
        with self.transaction():
            if self._require_row(trial_id, "mark_interrupted")["status"] != _RUNNING:
                return False
            self._interrupt(trial_id, "marked interrupted")
        return True

    def fail_stale_trials(self, grace_seconds: float) -> list[int]:
        """Interrupt running trials whose last heartbeat is older than ``grace_seconds``.

        Args:
            grace_seconds: Several times the heartbeat interval, ``> 0``.

        Returns:
            The ids interrupted, in id order.

        Example:
            >>> storage = InMemoryStorage()
            >>> storage.insert_trial(Trial(id=0, params={"lr": 0.1}, phase="initial"))
            >>> storage.fail_stale_trials(grace_seconds=3600.0)
            []
        """
        if isinstance(grace_seconds, bool) or not isinstance(grace_seconds, numbers.Real):
            raise TickTockTypeError(
                f"fail_stale_trials(grace_seconds={grace_seconds!r}): must be a number of "
                "seconds"
            )
        if not grace_seconds > 0 or math.isnan(grace_seconds):
            raise TickTockValueError(
                f"fail_stale_trials(grace_seconds={grace_seconds!r}): must be > 0"
            )
        with self.transaction():
            cutoff = _now() - float(grace_seconds)
            ids = [
                r["id"]
                for r in self._load_rows(status=_RUNNING)
                if r["heartbeat"] is None or r["heartbeat"] < cutoff
            ]
            for tid in ids:
                self._interrupt(tid, f"no heartbeat for more than {grace_seconds} s")
        return ids

    def interrupt_dead_owner_trials(self) -> list[int]:
        """Interrupt running trials whose owner is a process on this host that has exited.

        Owners on other hosts are left to :meth:`fail_stale_trials`. (A pid reused by
        an unrelated process after the owner died also is: the trial then looks alive.)

        Returns:
            The ids interrupted, in id order.
        """
        host = socket.gethostname()
        with self.transaction():
            ids = [
                r["id"]
                for r in self._load_rows(status=_RUNNING)
                if r["owner_host"] == host
                and r["owner_pid"] is not None
                and not _pid_alive(r["owner_pid"])
            ]
            for tid in ids:
                self._interrupt(tid, "its owner process on this host has exited")
        return ids

    def _interrupt(self, trial_id: int, reason: str) -> None:
        self._update_row(trial_id, {"status": _INTERRUPTED, "datetime_complete": _now()})
        _logger.warning("trial %d interrupted: %s", trial_id, reason)

    def _require_row(self, trial_id: int, method: str) -> dict[str, Any]:
        row = self._get_row(trial_id)
        if row is None:
            top = self._max_id()
            have = "no trials" if top is None else f"trial ids up to {top}"
            raise StorageError(f"{method}: no trial with id {trial_id} in {self!r} ({have})")
        return row

    def _require_running(self, trial_id: int, method: str) -> dict[str, Any]:
        row = self._require_row(trial_id, method)
        if row["status"] != _RUNNING:
            raise StorageError(
                f"{method}: trial {trial_id} is already {row['status']}, and a finished or "
                "interrupted trial is immutable; only running trials can change (run the "
                "configuration again as a new trial)"
            )
        return row

    # ------------------------------------------------------------------------ queue

    def enqueue(self, params: Mapping[str, Any]) -> bool:
        """Append a configuration to the enqueue list.

        Two params are the same when their JSON forms are equal after sorting keys and
        writing integral floats as ints (so ``{"n": 1}`` and ``{"n": 1.0}`` are).

        Returns:
            True if added; False (nothing done) if the same params are already enqueued.

        Example:
            >>> storage = InMemoryStorage()
            >>> storage.enqueue({"lr": 0.1, "n": 2}), storage.enqueue({"n": 2.0, "lr": 0.1})
            (True, False)
        """
        params = _check_object(params, "enqueue: params")
        text = _dumps(params, "enqueue: params")
        with self.transaction():
            return self._queue_add(_params_key(params), text)

    def load_queue(self) -> list[dict[str, Any]]:
        """The enqueued params, oldest first (fresh copies)."""
        with self._read_transaction():
            items = self._queue_items()
        return [json.loads(text) for _, text in items]

    def remove_from_queue(self, params: Mapping[str, Any]) -> bool:
        """Remove enqueued params; True if they were there."""
        params = _check_object(params, "remove_from_queue: params")
        with self.transaction():
            return self._queue_remove(_params_key(params))

    # ------------------------------------------------------ backend primitives
    # All are called inside transaction(); rows are dicts keyed by _COLUMNS, never
    # mutated in place by the caller.

    @abc.abstractmethod
    def _get_meta(self, key: str) -> str | None:
        """The JSON text stored under ``key`` ("space", "settings"), or None."""

    @abc.abstractmethod
    def _set_meta(self, key: str, text: str) -> None:
        """Store JSON text under ``key``, replacing any previous value."""

    @abc.abstractmethod
    def _get_row(self, trial_id: int) -> dict[str, Any] | None:
        """The row of one trial, or None."""

    @abc.abstractmethod
    def _load_rows(self, status: str | None = None) -> list[dict[str, Any]]:
        """All rows (or those with ``status``), in id order."""

    @abc.abstractmethod
    def _max_id(self) -> int | None:
        """The largest trial id, or None when there are no trials."""

    @abc.abstractmethod
    def _insert_row(self, row: dict[str, Any]) -> None:
        """Add a row whose id is new."""

    @abc.abstractmethod
    def _update_row(self, trial_id: int, fields: dict[str, Any]) -> None:
        """Overwrite some columns of an existing row."""

    @abc.abstractmethod
    def _load_metrics(self, trial_id: int | None) -> dict[int, list[str]]:
        """Metric records (JSON texts) of one trial, or of all when None, in order."""

    @abc.abstractmethod
    def _append_metric_rows(self, trial_id: int, texts: Sequence[str]) -> None:
        """Append metric records (JSON texts) to a trial."""

    @abc.abstractmethod
    def _queue_items(self) -> list[tuple[str, str]]:
        """``(key, params JSON)`` of each enqueued entry, oldest first."""

    @abc.abstractmethod
    def _queue_add(self, key: str, text: str) -> bool:
        """Append an entry unless ``key`` is present; True if added."""

    @abc.abstractmethod
    def _queue_remove(self, key: str) -> bool:
        """Remove the entry with ``key``; True if it was there."""


# ------------------------------------------------------------------------- in memory


class InMemoryStorage(BaseStorage):
    """A study kept in this process's memory; lost when the process ends.

    Thread-safe (one re-entrant lock). Picklable, but a pickled copy (for instance one
    sent to a worker process) is an independent study: share a :class:`SQLiteStorage`
    between processes instead.

    Example:
        >>> storage = InMemoryStorage()
        >>> storage.insert_trial(Trial(id=0, params={"x": 1.0}, phase="added",
        ...                            status="completed", loss=0.5, cost=2.0))
        >>> storage.get_trial(0).status, storage.next_trial_id()
        ('completed', 1)
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._meta: dict[str, str] = {}
        self._rows: dict[int, dict[str, Any]] = {}
        self._metrics: dict[int, list[str]] = {}
        self._queue: dict[str, str] = {}  # key -> params JSON; dicts keep insertion order

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            # Rows are replaced, never mutated, so a shallow snapshot is a full one.
            saved = (dict(self._meta), dict(self._rows),
                     {k: list(v) for k, v in self._metrics.items()}, dict(self._queue))
            try:
                yield
            except BaseException:
                self._meta, self._rows, self._metrics, self._queue = saved
                raise

    def _read_transaction(self) -> contextlib.AbstractContextManager[None]:
        return self._lock  # reads change nothing: no snapshot to take

    def __getstate__(self) -> dict[str, Any]:
        with self._lock:
            state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return "InMemoryStorage()"

    def _get_meta(self, key: str) -> str | None:
        return self._meta.get(key)

    def _set_meta(self, key: str, text: str) -> None:
        self._meta[key] = text

    def _get_row(self, trial_id: int) -> dict[str, Any] | None:
        row = self._rows.get(trial_id)
        return None if row is None else dict(row)

    def _load_rows(self, status: str | None = None) -> list[dict[str, Any]]:
        return [dict(self._rows[k]) for k in sorted(self._rows)
                if status is None or self._rows[k]["status"] == status]

    def _max_id(self) -> int | None:
        return max(self._rows, default=None)

    def _insert_row(self, row: dict[str, Any]) -> None:
        self._rows[row["id"]] = {c: row.get(c) for c in _COLUMNS}

    def _update_row(self, trial_id: int, fields: dict[str, Any]) -> None:
        self._rows[trial_id] = {**self._rows[trial_id], **fields}

    def _load_metrics(self, trial_id: int | None) -> dict[int, list[str]]:
        if trial_id is None:
            return {k: list(v) for k, v in self._metrics.items()}
        return {trial_id: list(self._metrics.get(trial_id, ()))}

    def _append_metric_rows(self, trial_id: int, texts: Sequence[str]) -> None:
        # A new list, so the snapshot taken by transaction() stays intact.
        self._metrics[trial_id] = [*self._metrics.get(trial_id, ()), *texts]

    def _queue_items(self) -> list[tuple[str, str]]:
        return list(self._queue.items())

    def _queue_add(self, key: str, text: str) -> bool:
        if key in self._queue:
            return False
        self._queue[key] = text
        return True

    def _queue_remove(self, key: str) -> bool:
        return self._queue.pop(key, None) is not None


# ---------------------------------------------------------------------------- SQLite

_SCHEMA = (
    # One row per key; values are JSON text. Keys: app, schema_version,
    # library_version (of the writer that created the file), space, settings.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # NaN in a REAL column would be stored as NULL by SQLite; it is written as the
    # text 'NaN' instead (REAL affinity keeps non-numeric text as text).
    """CREATE TABLE trials (
        id INTEGER PRIMARY KEY,
        params TEXT NOT NULL,
        phase TEXT NOT NULL,
        status TEXT NOT NULL,
        loss REAL,
        cost REAL,
        elapsed REAL,
        projected_cost REAL,
        error TEXT,
        datetime_start REAL NOT NULL,
        datetime_complete REAL,
        heartbeat REAL,
        owner_host TEXT,
        owner_pid INTEGER
    )""",
    "CREATE INDEX trials_status ON trials (status)",
    """CREATE TABLE trial_metrics (
        trial_id INTEGER NOT NULL REFERENCES trials (id),
        seq INTEGER NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (trial_id, seq)
    )""",
    # seq gives the enqueue order; key is the canonical form that detects duplicates.
    """CREATE TABLE queue (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        params TEXT NOT NULL
    )""",
)

_SELECT_ROW = f"SELECT {', '.join(_COLUMNS)} FROM trials"


def _to_sql(column: str, value: Any) -> Any:
    if column in _FLOAT_COLUMNS and isinstance(value, float) and math.isnan(value):
        return "NaN"
    return value


def _from_sql(row: Sequence[Any]) -> dict[str, Any]:
    out = dict(zip(_COLUMNS, row))
    for c in _FLOAT_COLUMNS:
        if isinstance(out[c], str):
            out[c] = float(out[c])
    return out


def _is_locked(e: sqlite3.OperationalError) -> bool:
    msg = str(e).lower()
    return "locked" in msg or "busy" in msg


class _Connection:
    """A thread's SQLite connection (a wrapper, because sqlite3 connections cannot be
    weakly referenced and the storage must not keep dead threads' connections alive)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.pid = os.getpid()
        self.depth = 0  # transaction nesting level


class SQLiteStorage(BaseStorage):
    """A study in one SQLite file, shared by threads and processes on one machine.

    Each thread (and process) gets its own connection, opened lazily. The file uses
    WAL journal mode (readers never block the writer, nor the writer them); writes go
    through ``BEGIN IMMEDIATE`` transactions that wait for other writers up to
    ``timeout`` seconds. Next to ``study.db`` SQLite keeps ``study.db-wal`` and
    ``study.db-shm`` while connections are open. Do not put the file on a network
    filesystem: SQLite's locking is unreliable there.

    The object is picklable: a copy sent to a worker process reopens the same file.

    Args:
        path: The file; created (with its parent directories) if missing. An existing
            file must be a lightning_ticktock study of schema :data:`SCHEMA_VERSION`.
        timeout: Seconds to wait for a lock held by another connection.

    Raises:
        StorageError: The file cannot be opened, is not an SQLite database, is not a
            lightning_ticktock study, or has another schema version.

    Example:
        >>> import os, tempfile
        >>> from lightning_ticktock.space import Float
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = os.path.join(tmp, "runs", "study.db")
        ...     with SQLiteStorage(path) as storage:
        ...         storage.open_study([Float("lr", 1e-4, 1.0)], {"max_cost": 60.0})
        ...     with SQLiteStorage(path) as again:  # a new object on the same file
        ...         print(again.get_settings())
        {'max_cost': 60.0}
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = _DEFAULT_TIMEOUT
                 ) -> None:
        if not isinstance(path, (str, os.PathLike)) or isinstance(os.fspath(path), bytes):
            raise TickTockTypeError(
                f"SQLiteStorage(path={path!r}): path must be a str or os.PathLike, "
                f"got {type(path).__name__}"
            )
        text = os.fspath(path)
        if text in ("", ":memory:") or text.startswith("file:"):
            raise TickTockValueError(
                f"SQLiteStorage(path={text!r}): path must name a file; for a study kept in "
                "memory use InMemoryStorage() (storage=None)"
            )
        if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not (
            timeout > 0
        ):
            raise TickTockValueError(f"SQLiteStorage(timeout={timeout!r}): must be > 0 seconds")
        # Absolute, so that a copy unpickled in a process with another cwd finds the file.
        self.path = os.path.abspath(text)
        self.timeout = float(timeout)
        parent = os.path.dirname(self.path)
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as e:
            raise StorageError(f"SQLiteStorage: cannot create directory {parent!r}: {e}") from e
        self._init_runtime()
        # Open now, so a wrong path or a foreign file fails here rather than mid-study.
        self._connection()

    def _init_runtime(self) -> None:
        self._local = threading.local()
        self._all: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._all_lock = threading.Lock()
        self._generation = 0  # bumped by close(), so every thread reopens

    def __getstate__(self) -> dict[str, Any]:
        # Connections, locks and thread-locals cannot cross processes; the copy reopens.
        return {"path": self.path, "timeout": self.timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self.timeout = state["path"], state["timeout"]
        self._init_runtime()

    def __repr__(self) -> str:
        return f"SQLiteStorage({self.path!r})"

    def close(self) -> None:
        """Close this process's connections (all threads': call when none is using it)."""
        with self._all_lock:
            pid = os.getpid()
            for c in list(self._all):
                if c.pid == pid:  # a connection inherited through fork is the parent's
                    with contextlib.suppress(sqlite3.Error):
                        c.conn.close()
            self._all = weakref.WeakSet()
            self._generation += 1
        self._local.wrapper = None

    # ----------------------------------------------------------------- connections

    def _connection(self) -> _Connection:
        w: _Connection | None = getattr(self._local, "wrapper", None)
        # SQLite forbids using a connection inherited through fork(): open a new one.
        if (w is not None and w.pid == os.getpid()
                and self._local.generation == self._generation):
            return w
        w = _Connection(self._open())
        self._local.wrapper, self._local.generation = w, self._generation
        with self._all_lock:
            self._all.add(w)
        return w

    def _open(self) -> sqlite3.Connection:
        try:
            # isolation_level=None: autocommit; we issue BEGIN/COMMIT ourselves.
            # check_same_thread=False only so close() can close other threads'
            # connections; each is otherwise used by its own thread alone.
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as e:
            raise StorageError(f"{self!r}: cannot open the file: {e}") from e
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            mode = self._retry_locked(
                lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            )
            if str(mode).lower() != "wal":
                _logger.warning("%r: SQLite refused WAL journal mode (got %r); concurrent "
                                "readers will wait for writers", self, mode)
            # FULL: a committed write survives power loss too, not only kill -9.
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._check_schema(conn)
        except StorageError:
            conn.close()
            raise
        except sqlite3.DatabaseError as e:
            conn.close()
            if "not a database" in str(e):
                raise StorageError(
                    f"{self!r}: the file is not an SQLite database ({e}); is the path right? "
                    "Use a new storage path for a new study"
                ) from e
            raise StorageError(f"{self!r}: cannot open the file: {e}") from e
        except BaseException:
            conn.close()
            raise
        return conn

    def _retry_locked(self, fn: Any) -> Any:
        """Call ``fn``, retrying while SQLite reports the database locked or busy.

        busy_timeout already waits inside SQLite; this catches the cases where SQLite
        answers busy at once (to avoid a deadlock) instead of waiting.
        """
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as e:
                if not _is_locked(e):
                    raise
                if time.monotonic() >= deadline:
                    raise StorageError(
                        f"{self!r}: the database stayed locked for more than {self.timeout} s "
                        f"({e}); another process holds a long transaction, or the file is on "
                        "a network filesystem where SQLite locking does not work"
                    ) from e
                # Jitter, so that processes that collided do not collide again.
                time.sleep(delay * (0.5 + random.random()))
                delay = min(2 * delay, 0.2)

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        """Create the schema in an empty file, or check an existing file's version."""
        self._retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"))
        try:
            tables = {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                for statement in _SCHEMA:  # not executescript(): it would COMMIT first
                    conn.execute(statement)
                conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
                    ("app", json.dumps(_APP)),
                    ("schema_version", json.dumps(SCHEMA_VERSION)),
                    ("library_version", json.dumps(_library_version())),
                ])
            else:
                self._verify_schema(conn, tables)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _verify_schema(self, conn: sqlite3.Connection, tables: set[str]) -> None:
        meta: dict[str, Any] = {}
        if "meta" in tables:
            for key, value in conn.execute("SELECT key, value FROM meta"):
                with contextlib.suppress(ValueError, TypeError):
                    meta[key] = json.loads(value)
        if meta.get("app") != _APP:
            raise StorageError(
                f"{self!r} is an SQLite database but not a lightning_ticktock study (no meta "
                f"table with app = {_APP!r}; tables: {sorted(tables)}); use a new storage path"
            )
        found = meta.get("schema_version")
        if found != SCHEMA_VERSION:
            writer = meta.get("library_version", "unknown")
            raise StorageError(
                f"{self!r} has storage schema version {found!r} (written by lightning_ticktock "
                f"{writer}), but lightning_ticktock {_library_version()} supports only schema "
                f"version {SCHEMA_VERSION}; use a new storage path, or install the "
                f"lightning_ticktock version that wrote it ({writer})"
            )

    # ---------------------------------------------------------------- transactions

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._tx(immediate=True):
            yield

    def _read_transaction(self) -> contextlib.AbstractContextManager[None]:
        # A deferred transaction: a consistent WAL snapshot that takes no write lock.
        return self._tx(immediate=False)

    @contextlib.contextmanager
    def _tx(self, immediate: bool) -> Iterator[None]:
        w = self._connection()
        conn, depth = w.conn, w.depth
        savepoint = f"ticktock_{depth}"
        try:
            if depth == 0:
                # IMMEDIATE takes the write lock up front: upgrading a read transaction
                # later can fail at once with SQLITE_BUSY, which no timeout would cure.
                self._retry_locked(
                    lambda: conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
                )
            else:
                conn.execute(f"SAVEPOINT {savepoint}")
        except sqlite3.Error as e:
            raise StorageError(f"{self!r}: cannot start a transaction: {e}") from e
        w.depth = depth + 1
        try:
            yield
        except BaseException as e:
            w.depth = depth
            with contextlib.suppress(sqlite3.Error):
                if depth == 0:
                    conn.execute("ROLLBACK")
                else:
                    conn.execute(f"ROLLBACK TO {savepoint}")
                    conn.execute(f"RELEASE {savepoint}")
            if isinstance(e, sqlite3.Error):
                raise StorageError(f"{self!r}: SQLite error: {e}") from e
            raise
        w.depth = depth
        try:
            if depth == 0:
                self._retry_locked(lambda: conn.execute("COMMIT"))
            else:
                conn.execute(f"RELEASE {savepoint}")
        except (sqlite3.Error, StorageError) as e:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK" if depth == 0 else f"ROLLBACK TO {savepoint}")
            if isinstance(e, StorageError):
                raise
            raise StorageError(f"{self!r}: cannot commit: {e}") from e

    def _sql(self, statement: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._connection().conn.execute(statement, args)

    # ------------------------------------------------------------------ primitives

    def _get_meta(self, key: str) -> str | None:
        row = self._sql("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _set_meta(self, key: str, text: str) -> None:
        self._sql("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, text))

    def _get_row(self, trial_id: int) -> dict[str, Any] | None:
        row = self._sql(f"{_SELECT_ROW} WHERE id = ?", (trial_id,)).fetchone()
        return None if row is None else _from_sql(row)

    def _load_rows(self, status: str | None = None) -> list[dict[str, Any]]:
        if status is None:
            cur = self._sql(f"{_SELECT_ROW} ORDER BY id")
        else:
            cur = self._sql(f"{_SELECT_ROW} WHERE status = ? ORDER BY id", (status,))
        return [_from_sql(r) for r in cur]

    def _max_id(self) -> int | None:
        return self._sql("SELECT MAX(id) FROM trials").fetchone()[0]

    def _insert_row(self, row: dict[str, Any]) -> None:
        self._sql(
            f"INSERT INTO trials ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
            [_to_sql(c, row.get(c)) for c in _COLUMNS],
        )

    def _update_row(self, trial_id: int, fields: dict[str, Any]) -> None:
        unknown = set(fields) - set(_COLUMNS)
        assert not unknown, unknown  # column names go into the SQL text: whitelist them
        names = list(fields)
        self._sql(
            f"UPDATE trials SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?",
            [*(_to_sql(n, fields[n]) for n in names), trial_id],
        )

    def _load_metrics(self, trial_id: int | None) -> dict[int, list[str]]:
        if trial_id is None:
            cur = self._sql("SELECT trial_id, record FROM trial_metrics ORDER BY trial_id, seq")
        else:
            cur = self._sql(
                "SELECT trial_id, record FROM trial_metrics WHERE trial_id = ? ORDER BY seq",
                (trial_id,),
            )
        out: dict[int, list[str]] = {}
        for tid, record in cur:
            out.setdefault(tid, []).append(record)
        return out

    def _append_metric_rows(self, trial_id: int, texts: Sequence[str]) -> None:
        start = self._sql(
            "SELECT COALESCE(MAX(seq) + 1, 0) FROM trial_metrics WHERE trial_id = ?",
            (trial_id,),
        ).fetchone()[0]
        self._connection().conn.executemany(
            "INSERT INTO trial_metrics (trial_id, seq, record) VALUES (?, ?, ?)",
            [(trial_id, start + i, t) for i, t in enumerate(texts)],
        )

    def _queue_items(self) -> list[tuple[str, str]]:
        return [(k, p) for k, p in self._sql("SELECT key, params FROM queue ORDER BY seq")]

    def _queue_add(self, key: str, text: str) -> bool:
        cur = self._sql("INSERT OR IGNORE INTO queue (key, params) VALUES (?, ?)", (key, text))
        return cur.rowcount == 1

    def _queue_remove(self, key: str) -> bool:
        return self._sql("DELETE FROM queue WHERE key = ?", (key,)).rowcount == 1


# --------------------------------------------------------------------------- factory


def get_storage(storage: None | str | os.PathLike[str] | BaseStorage) -> BaseStorage:
    """Turn a ``storage=`` argument into a storage.

    Args:
        storage: None for an :class:`InMemoryStorage`; a path (str or os.PathLike) for
            an :class:`SQLiteStorage` (parent directories are created); a storage is
            returned as is.

    Raises:
        TickTockTypeError: ``storage`` is of another type.

    Example:
        >>> get_storage(None)
        InMemoryStorage()
        >>> s = InMemoryStorage(); get_storage(s) is s
        True
    """
    if storage is None:
        return InMemoryStorage()
    if isinstance(storage, BaseStorage):
        return storage
    if isinstance(storage, (str, os.PathLike)):
        return SQLiteStorage(storage)
    raise TickTockTypeError(
        f"storage={storage!r} must be None (in memory), a path to an SQLite file (str or "
        f"os.PathLike) or a BaseStorage, got {type(storage).__name__}"
    )

"""The trial record: one training run of one configuration.

A :class:`Trial` is plain data. The optimizer, the storage and the report all
read the same record; the optimizer's state is recomputed from a list of them.

Example:
    >>> from lightning_ticktock.trial import Trial, TrialStatus
    >>> t = Trial(id=0, params={"lr": 0.1}, phase="initial")
    >>> t.status == TrialStatus.RUNNING, t.is_finished
    (True, False)
"""

from __future__ import annotations

import copy
import dataclasses
import time
from enum import Enum
from typing import Any


class _StrEnum(str, Enum):
    """A str-valued enum that prints as its value (``"tick"``, not ``Phase.TICK``)."""

    def __str__(self) -> str:
        return str(self.value)


class TrialStatus(_StrEnum):
    """Where a trial stands. Compares equal to its string value."""

    RUNNING = "running"
    COMPLETED = "completed"
    EARLY_STOPPED = "early_stopped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class Phase(_StrEnum):
    """Why a trial's configuration was chosen. Compares equal to its string value."""

    INITIAL = "initial"  # scrambled Sobol design before the GPs have data
    TICK = "tick"  # lower cost without hurting loss
    TOCK = "tock"  # lower loss while staying under the budget
    ENQUEUED = "enqueued"  # given by the user through enqueue()
    ADDED = "added"  # a result obtained elsewhere, registered through add_trial()


#: Statuses after which a trial never changes again.
FINISHED_STATUSES = frozenset(
    {TrialStatus.COMPLETED, TrialStatus.EARLY_STOPPED, TrialStatus.FAILED}
)


@dataclasses.dataclass
class Trial:
    """One training run.

    Attributes:
        id: Unique, increasing, never reused within a study.
        params: The configuration, ``{name: value}`` in the space's native types.
        phase: One of :class:`Phase`'s values.
        status: One of :class:`TrialStatus`'s values.
        loss: Final validation loss; set only when ``status == "completed"``.
        cost: What the optimizer was told: the measured cost of a completed run,
            the projected full cost of an early-stopped one, the cost spent
            before a failure (if known).
        elapsed: Compute actually spent on the run, in the same unit as ``cost``.
        projected_cost: The callback's last projection of the full cost.
        error: Exception text of a failed run.
        metrics: Per-validation records, e.g.
            ``[{"epoch": 0, "step": 10, "val_loss": 0.3, "elapsed": 1.2}]``.
        datetime_start: UNIX time the trial was created.
        datetime_complete: UNIX time it finished (None while running).
    """

    id: int
    params: dict[str, Any]
    phase: str
    status: str = TrialStatus.RUNNING.value
    loss: float | None = None
    cost: float | None = None
    elapsed: float | None = None
    projected_cost: float | None = None
    error: str | None = None
    metrics: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    datetime_start: float = dataclasses.field(default_factory=time.time)
    datetime_complete: float | None = None

    def __post_init__(self) -> None:
        # Store plain strings: they serialize, print and compare without surprises.
        self.phase = str(Phase(self.phase).value)
        self.status = str(TrialStatus(self.status).value)

    @property
    def is_finished(self) -> bool:
        """True once the trial is completed, early-stopped or failed."""
        return self.status in FINISHED_STATUSES

    def copy(self) -> Trial:
        """A deep copy, so callers can never mutate a study's record."""
        return copy.deepcopy(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trial:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

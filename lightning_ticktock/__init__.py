"""lightning_ticktock: tick-tock Bayesian optimization of Lightning models under a cost budget.

Example:
    >>> from lightning_ticktock import TickTock, Float
    >>> TickTock([Float("lr", 1e-4, 1.0, log=True)], max_cost=10.0, seed=0).max_cost
    10.0
"""

from typing import Any

from .errors import StorageError, TickTockError, TickTockTypeError, TickTockValueError
from .optimizer import TickTock
from .space import Choice, Float, Int, SearchSpace
from .trial import Phase, Trial, TrialStatus

__all__ = [
    "Choice",
    "Float",
    "Int",
    "Phase",
    "SearchSpace",
    "StorageError",
    "Study",
    "TickTock",
    "TickTockCallback",
    "TickTockDriver",
    "TickTockError",
    "TickTockTypeError",
    "TickTockValueError",
    "Trial",
    "TrialStatus",
]
__version__ = "0.1.0"

# Lightning costs seconds to import: the names that need it load on first use,
# so `import lightning_ticktock` and `ticktock --help` stay fast.
_LAZY = {
    "TickTockCallback": ".callback",
    "TickTockDriver": ".driver",
    "Study": ".driver",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'lightning_ticktock' has no attribute {name!r}")

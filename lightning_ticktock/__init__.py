"""lightning_ticktock: tick-tock Bayesian optimization of Lightning models under a cost budget."""

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
    "TickTock",
    "TickTockError",
    "TickTockTypeError",
    "TickTockValueError",
    "Trial",
    "TrialStatus",
]
__version__ = "0.1.0"

"""Search spaces: parameter types, validation, encoding to the unit cube, Sobol design.

Each parameter maps to one column of the encoded vector the GPs see:

* :class:`Float` and :class:`Int` map to ``[0, 1]`` (linearly, or in log space
  with ``log=True``); integers are rounded on decode, and the encoding of a
  configuration always uses the rounded value, so the GPs only ever see
  reachable points.
* :class:`Choice` maps to its option's index ``0 .. k-1``; the GP treats that
  column as a category (BoTorch's categorical kernel), never as an ordered number.

Example:
    >>> from lightning_ticktock.space import Float, Int, Choice, SearchSpace
    >>> space = SearchSpace([Float("lr", 1e-4, 1.0, log=True), Int("epochs", 2, 60),
    ...                      Choice("optimizer", ["adam", "sgd"])])
    >>> x = space.encode({"lr": 1e-2, "epochs": 31, "optimizer": "sgd"})
    >>> [round(v, 3) for v in x]
    [0.5, 0.5, 1.0]
    >>> space.decode(x)
    {'lr': 0.01, 'epochs': 31, 'optimizer': 'sgd'}
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import TickTockTypeError, TickTockValueError

__all__ = ["Float", "Int", "Choice", "SearchSpace", "Parameter"]


def _check_name(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise TickTockTypeError(f"{kind}(name={name!r}): name must be a non-empty string")
    return name


def _check_number(kind: str, name: str, what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TickTockTypeError(
            f"{kind}({name!r}): {what}={value!r} must be a real number, "
            f"got {type(value).__name__}"
        )
    value = float(value)
    if not math.isfinite(value):
        raise TickTockValueError(f"{kind}({name!r}): {what}={value!r} must be finite")
    return value


class Parameter:
    """Base class of one dimension of a search space."""

    name: str

    def encode(self, value: Any) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self, u: float) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def validate(self, value: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Parameter) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "type")
        return f"{type(self).__name__}({args})"


class _Numeric(Parameter):
    _kind = "Float"

    def __init__(self, name: str, low: float, high: float, log: bool = False) -> None:
        kind = self._kind
        self.name = _check_name(kind, name)
        lo = _check_number(kind, name, "low", low)
        hi = _check_number(kind, name, "high", high)
        if lo >= hi:
            raise TickTockValueError(
                f"{kind}({name!r}, low={low!r}, high={high!r}): low must be < high"
            )
        if not isinstance(log, bool):
            raise TickTockTypeError(f"{kind}({name!r}): log={log!r} must be True or False")
        if log and lo <= 0:
            raise TickTockValueError(
                f"{kind}({name!r}, low={low!r}, high={high!r}, log=True): "
                "a log-scale parameter needs low > 0"
            )
        self.low, self.high, self.log = lo, hi, log

    def _to_unit(self, v: float) -> float:
        if self.log:
            return (math.log(v) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (v - self.low) / (self.high - self.low)

    def _from_unit(self, u: float) -> float:
        u = min(max(float(u), 0.0), 1.0)
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            return min(max(math.exp(lo + u * (hi - lo)), self.low), self.high)
        return self.low + u * (self.high - self.low)

    def _check_range(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TickTockTypeError(
                f"parameter {self.name!r}: value {value!r} must be a number in "
                f"[{self._fmt(self.low)}, {self._fmt(self.high)}]"
            )
        v = float(value)
        if not (self.low <= v <= self.high):  # also rejects NaN
            raise TickTockValueError(
                f"parameter {self.name!r}: value {value!r} is outside "
                f"[{self._fmt(self.low)}, {self._fmt(self.high)}]"
            )
        return v

    def _fmt(self, v: float) -> str:
        return repr(v)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self._kind, "name": self.name, "low": self._fmt_num(self.low),
                "high": self._fmt_num(self.high), "log": self.log}

    def _fmt_num(self, v: float) -> float:
        return v


class Float(_Numeric):
    """A real-valued parameter in ``[low, high]``.

    Args:
        name: Parameter name, unique in the space.
        low: Lower bound (inclusive).
        high: Upper bound (inclusive), ``> low``.
        log: Search in log space; needs ``low > 0``.

    Example:
        >>> Float("lr", 1e-4, 1.0, log=True).decode(0.5)
        0.01
    """

    _kind = "Float"

    def encode(self, value: Any) -> float:
        return self._to_unit(self._check_range(value))

    def decode(self, u: float) -> float:
        # Round to 12 significant digits so decode(encode(x)) == x for typical inputs.
        return float(f"{self._from_unit(u):.12g}")

    def validate(self, value: Any) -> float:
        return self._check_range(value)


class Int(_Numeric):
    """An integer parameter in ``[low, high]``.

    Args:
        name: Parameter name, unique in the space.
        low: Lower bound (inclusive), an integer.
        high: Upper bound (inclusive), an integer ``> low``.
        log: Search in log space; needs ``low > 0``.

    Example:
        >>> Int("epochs", 2, 60, log=True).decode(1.0)
        60
    """

    _kind = "Int"

    def __init__(self, name: str, low: int, high: int, log: bool = False) -> None:
        super().__init__(name, low, high, log)
        for what, v in (("low", low), ("high", high)):
            if float(v) != int(v):
                raise TickTockValueError(f"Int({name!r}): {what}={v!r} must be an integer")
        self.low, self.high = int(low), int(high)

    def _fmt(self, v: float) -> str:
        return str(int(v))

    def _fmt_num(self, v: float) -> int:  # type: ignore[override]
        return int(v)

    def validate(self, value: Any) -> int:
        v = self._check_range(value)
        if v != int(v):
            raise TickTockValueError(
                f"parameter {self.name!r}: value {value!r} must be an integer in "
                f"[{self.low}, {self.high}]"
            )
        return int(v)

    def encode(self, value: Any) -> float:
        return self._to_unit(self.validate(value))

    def decode(self, u: float) -> int:
        v = self._from_unit(u)
        if self.log:
            # Round in log space so both neighbours get their fair share of the cube.
            lo_i, hi_i = math.floor(v), math.ceil(v)
            if lo_i < self.low:
                return int(hi_i)
            if hi_i > self.high or lo_i == hi_i:
                return int(lo_i)
            closer_to_low = abs(math.log(v) - math.log(lo_i)) <= abs(math.log(hi_i) - math.log(v))
            return int(lo_i if closer_to_low else hi_i)
        return int(min(max(round(v), self.low), self.high))


class Choice(Parameter):
    """A categorical parameter: one of ``options`` (unordered).

    Args:
        name: Parameter name, unique in the space.
        options: Distinct values (str, int, float or bool), at least one.

    Example:
        >>> Choice("optimizer", ["adam", "sgd"]).decode(1)
        'sgd'
    """

    def __init__(self, name: str, options: Sequence[Any]) -> None:
        self.name = _check_name("Choice", name)
        if isinstance(options, (str, bytes)) or not isinstance(options, Iterable):
            raise TickTockTypeError(
                f"Choice({name!r}): options={options!r} must be a list of values"
            )
        opts = list(options)
        if not opts:
            raise TickTockValueError(f"Choice({name!r}): options must not be empty")
        for o in opts:
            if not isinstance(o, (str, int, float, bool)) and o is not None:
                raise TickTockTypeError(
                    f"Choice({name!r}): option {o!r} must be str, int, float, bool or None"
                )
        seen: list[Any] = []
        for o in opts:
            if any(type(o) is type(s) and o == s for s in seen):
                raise TickTockValueError(f"Choice({name!r}): duplicate option {o!r}")
            seen.append(o)
        self.options = opts

    def _index(self, value: Any) -> int:
        for i, o in enumerate(self.options):
            if o == value and (type(o) is type(value) or not isinstance(value, bool)
                               and not isinstance(o, bool)):
                return i
        raise TickTockValueError(
            f"parameter {self.name!r}: value {value!r} is not one of {self.options!r}"
        )

    def validate(self, value: Any) -> Any:
        return self.options[self._index(value)]

    def encode(self, value: Any) -> float:
        return float(self._index(value))

    def decode(self, u: float) -> Any:
        i = int(round(float(u)))
        return self.options[min(max(i, 0), len(self.options) - 1)]

    def to_dict(self) -> dict[str, Any]:
        return {"type": "Choice", "name": self.name, "options": list(self.options)}


_TYPES = {"Float": Float, "Int": Int, "Choice": Choice}


class SearchSpace:
    """An ordered collection of parameters with unique names.

    Args:
        params: The parameters (a list of :class:`Float`, :class:`Int`, :class:`Choice`).

    Example:
        >>> space = SearchSpace([Float("x", 0.0, 1.0), Choice("c", ["a", "b", "c"])])
        >>> space.dim, space.cat_dims, space.bounds
        (2, [1], [[0.0, 0.0], [1.0, 2.0]])
    """

    def __init__(self, params: Iterable[Parameter]) -> None:
        if isinstance(params, SearchSpace):
            params = params.params
        if isinstance(params, Parameter) or not isinstance(params, Iterable):
            raise TickTockTypeError(
                f"space={params!r} must be a list of Float, Int or Choice parameters"
            )
        ps = list(params)
        if not ps:
            raise TickTockValueError("space must contain at least one parameter")
        names: set[str] = set()
        for p in ps:
            if not isinstance(p, Parameter):
                raise TickTockTypeError(
                    f"space: {p!r} is not a parameter; use Float, Int or Choice"
                )
            if p.name in names:
                raise TickTockValueError(f"space: duplicate parameter name {p.name!r}")
            names.add(p.name)
        self.params: list[Parameter] = ps

    @classmethod
    def coerce(cls, space: SearchSpace | Iterable[Parameter]) -> SearchSpace:
        """Return ``space`` itself if it is a :class:`SearchSpace`, else wrap it."""
        return space if isinstance(space, SearchSpace) else cls(space)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    @property
    def dim(self) -> int:
        return len(self.params)

    @property
    def cat_dims(self) -> list[int]:
        """Columns holding a categorical index."""
        return [i for i, p in enumerate(self.params) if isinstance(p, Choice)]

    @property
    def bounds(self) -> list[list[float]]:
        """``[lower, upper]`` of each encoded column: ``[0, 1]``, or ``[0, k-1]`` for choices."""
        lo = [0.0] * self.dim
        hi = [float(len(p.options) - 1) if isinstance(p, Choice) else 1.0 for p in self.params]
        return [lo, hi]

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Check a configuration and return it with native types, in space order.

        Raises:
            TickTockValueError: a parameter is missing, unknown or out of range.
        """
        if not isinstance(params, Mapping):
            raise TickTockTypeError(f"params={params!r} must be a dict of {{name: value}}")
        unknown = sorted(set(params) - set(self.names))
        if unknown:
            raise TickTockValueError(
                f"params: unknown parameter(s) {unknown}; the space has {self.names}"
            )
        missing = [n for n in self.names if n not in params]
        if missing:
            raise TickTockValueError(f"params: missing parameter(s) {missing}")
        return {p.name: p.validate(params[p.name]) for p in self.params}

    def encode(self, params: Mapping[str, Any]) -> list[float]:
        """Configuration -> encoded vector (see the module docstring)."""
        params = self.validate(params)
        return [p.encode(params[p.name]) for p in self.params]

    def decode(self, x: Sequence[float]) -> dict[str, Any]:
        """Encoded vector -> configuration, rounding integers and categories."""
        if len(x) != self.dim:
            raise TickTockValueError(f"decode: expected {self.dim} values, got {len(x)}")
        return {p.name: p.decode(float(u)) for p, u in zip(self.params, x)}

    def round_encoded(self, x: Sequence[float]) -> list[float]:
        """Project an encoded vector onto reachable points: ``encode(decode(x))``."""
        return self.encode(self.decode(x))

    def sobol(self, n: int, seed: int | None = 0, skip: int = 0) -> list[dict[str, Any]]:
        """Points ``skip .. skip+n-1`` of a scrambled Sobol sequence, decoded.

        Example:
            >>> space = SearchSpace([Float("x", 0.0, 1.0), Int("k", 1, 4)])
            >>> len(space.sobol(4, seed=0))
            4
        """
        from torch.quasirandom import SobolEngine

        engine = SobolEngine(self.dim, scramble=True, seed=seed)
        if skip:
            engine.fast_forward(skip)
        u = engine.draw(n, dtype=__import__("torch").float64).tolist()
        out = []
        for row in u:
            x = []
            for p, v in zip(self.params, row):
                if isinstance(p, Choice):
                    # Sobol in [0, 1) -> equal-width bins, one per option.
                    x.append(float(min(int(v * len(p.options)), len(p.options) - 1)))
                else:
                    x.append(v)
            out.append(self.decode(x))
        return out

    def to_dict(self) -> list[dict[str, Any]]:
        """JSON-serializable description; :meth:`from_dict` inverts it."""
        return [p.to_dict() for p in self.params]

    @classmethod
    def from_dict(cls, data: Sequence[Mapping[str, Any]]) -> SearchSpace:
        params = []
        for d in data:
            d = dict(d)
            kind = d.pop("type")
            if kind not in _TYPES:
                raise TickTockValueError(
                    f"unknown parameter type {kind!r}; allowed: {list(_TYPES)}"
                )
            params.append(_TYPES[kind](**d))
        return cls(params)

    def diff(self, other: SearchSpace) -> list[str]:
        """Human-readable differences between two spaces (empty when equal)."""
        out = []
        mine, theirs = {p.name: p for p in self.params}, {p.name: p for p in other.params}
        for n in mine:
            if n not in theirs:
                out.append(f"parameter {n!r} only in the first space: {mine[n]!r}")
            elif mine[n] != theirs[n]:
                out.append(f"parameter {n!r} differs: {mine[n]!r} vs {theirs[n]!r}")
        for n in theirs:
            if n not in mine:
                out.append(f"parameter {n!r} only in the second space: {theirs[n]!r}")
        if not out and self.names != other.names:
            out.append(f"parameter order differs: {self.names} vs {other.names}")
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.to_dict() == other.to_dict()

    def __len__(self) -> int:
        return self.dim

    def __iter__(self):
        return iter(self.params)

    def __repr__(self) -> str:
        return f"SearchSpace({self.params!r})"

"""The error hierarchy of lightning_ticktock.

Every error derives from :class:`TickTockError`, and also from the built-in
exception a caller would naturally catch (``ValueError``, ``TypeError``,
``RuntimeError``), so ``except ValueError`` keeps working.

Example:
    >>> from lightning_ticktock.errors import TickTockValueError
    >>> isinstance(TickTockValueError("x"), ValueError)
    True
"""

from __future__ import annotations


class TickTockError(Exception):
    """Base class of every error raised by lightning_ticktock."""


class TickTockValueError(TickTockError, ValueError):
    """A value is outside what is allowed (bad bound, unknown trial, ...)."""


class TickTockTypeError(TickTockError, TypeError):
    """A value has the wrong type (a string where a number is required, ...)."""


class StorageError(TickTockError, RuntimeError):
    """The study storage cannot be used as asked (schema, space mismatch, ...)."""

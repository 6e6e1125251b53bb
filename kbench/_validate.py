"""Argument checks, each defined once: every module validates through these.

Keras layers validate in ``__init__`` and quote the value they got; so do
these. Each check raises ``error`` (default ValueError; modules pass their own
ValueError subclass, e.g. WorkflowError) with a message of the form
``"<where>: <name> must be <what>, got <value!r>"`` and returns the value, so
a check can sit in an expression.

Booleans are never numbers here: ``True`` is an ``int`` to Python, but a
``batch_size=True`` is a bug to report, not a batch of one.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

_INT_TYPES = (int, np.integer)
_NUMBER_TYPES = (int, float, np.integer, np.floating)


def is_int(value: Any) -> bool:
    """An int (Python or NumPy), not a bool."""
    return isinstance(value, _INT_TYPES) and not isinstance(value, (bool, np.bool_))


def is_number(value: Any) -> bool:
    """An int or float (Python or NumPy), not a bool. NaN and infinities count."""
    return isinstance(value, _NUMBER_TYPES) and not isinstance(value, (bool, np.bool_))


def _fail(error: type[Exception], where: str, name: str, what: str, value: Any) -> Exception:
    prefix = f"{where}: " if where else ""
    return error(f"{prefix}{name} must be {what}, got {value!r:.80}")


def _int_text(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"an int from {minimum} to {maximum}"
    if minimum == 1:
        return "a positive int"
    if minimum == 0:
        return "a non-negative int"
    if minimum is not None:
        return f"an int >= {minimum}"
    if maximum is not None:
        return f"an int <= {maximum}"
    return "an int"


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None,
              error: type[Exception] = ValueError, where: str = "") -> int:
    """``value`` as an int within [minimum, maximum] (either bound optional)."""
    if not is_int(value) or (minimum is not None and value < minimum) \
            or (maximum is not None and value > maximum):
        raise _fail(error, where, name, _int_text(minimum, maximum), value)
    return int(value)


def check_positive_int(name: str, value: Any, *, error: type[Exception] = ValueError,
                       where: str = "") -> int:
    """``value`` as an int >= 1."""
    return check_int(name, value, minimum=1, error=error, where=where)


def _bound_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        if low_open and high_open:
            return f"a number strictly between {low:g} and {high:g}"
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        return f"a number in {left}{low:g}, {high:g}{right}"
    if low is not None:
        if low == 0 and low_open:
            return "a positive finite number"
        return f"a finite number {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"a finite number {'<' if high_open else '<='} {high:g}"
    return "a finite number"


def check_number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False,
                 error: type[Exception] = ValueError, where: str = "", what: str = "") -> float:
    """``value`` as a finite float within the bounds (open or closed at each end).

    Args:
        what: the message's description of a valid value, where the generated
            one ("a number strictly between 0 and 1") would say too little.
    """
    ok = is_number(value) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise _fail(error, where, name, what or _bound_text(low, high, low_open, high_open), value)
    return float(value)


def check_fraction(name: str, value: Any, *, error: type[Exception] = ValueError,
                   where: str = "", what: str = "") -> float:
    """``value`` strictly between 0 and 1 (an alpha, a confidence, a share)."""
    return check_number(name, value, low=0, high=1, low_open=True, high_open=True,
                        error=error, where=where, what=what)


def check_bool(name: str, value: Any, *, error: type[Exception] = ValueError,
               where: str = "") -> bool:
    """``value``, which must be True or False (not 0/1, not a string)."""
    if not isinstance(value, (bool, np.bool_)):
        raise _fail(error, where, name, "a bool", value)
    return bool(value)


def check_choice(name: str, value: Any, choices: Collection, *,
                 error: type[Exception] = ValueError, where: str = "") -> Any:
    """``value``, which must be one of ``choices``."""
    if value not in choices:
        raise _fail(error, where, name, f"one of {tuple(choices)}", value)
    return value


def check_str(name: str, value: Any, *, error: type[Exception] = ValueError,
              where: str = "") -> str:
    """``value``, a non-empty str."""
    if not isinstance(value, str) or not value:
        raise _fail(error, where, name, "a non-empty str", value)
    return value


def check_version(name: str, value: Any, supported: Collection[int], *,
                  error: type[Exception] = ValueError, where: str = "") -> int:
    """A schema version: an int (``True`` is not version 1) that this kbench reads."""
    if not is_int(value) or value not in supported:
        raise _fail(error, where, name, f"one of {tuple(supported)}", value)
    return int(value)


def from_mapping(cls: Any, name: str, value: Any, *, error: type[Exception],
                 where: str = "record") -> Any:
    """``cls(**value)`` for a JSON object read back, its errors prefixed with ``where``.

    Raises:
        error: ``value`` is not a mapping, has fields ``cls`` does not take, or
            fails ``cls``'s own checks (which raise ``error``).
    """
    if not isinstance(value, Mapping):
        raise error(f"{where}: {name} must be an object, got {value!r:.80}")
    try:
        return cls(**value)
    except TypeError as err:
        raise error(f"{where}: bad {name} {dict(value)!r:.120}: {err}") from None
    except error as err:
        raise error(f"{where}: {err}") from None

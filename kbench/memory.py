"""Host memory of training: the process's resident set, and a leak check.

The leak check trains a fresh model ``calls`` times in one process (as a
notebook or a hyper-parameter sweep calls ``fit`` in a loop; TF #61791 leaked
there on 2.11-2.13, ``clear_session()`` or not) and fits a line to the
resident set size after each call: its slope, in bytes per call, is the leak.
The first calls are left out of the fit (``warmup_calls``): they fill
TensorFlow's and Keras's caches once (kernels, tracing machinery), which is
growth, not a leak.

RSS is read from ``/proc/self/statm`` (the resident pages now), not from
``getrusage``'s ``ru_maxrss``: that is the process's high-water mark, which
only grows, so it cannot show a slope once an earlier call was bigger.
"""

from __future__ import annotations

import dataclasses
import gc
import os
from collections.abc import Callable

import numpy as np

from kbench._validate import check_int, check_number

__all__ = ["LEAK_MAX_BYTES_PER_CALL", "LeakResult", "LeakError", "leak_check", "rss_bytes"]

STATM = "/proc/self/statm"
# The leak gate. Measured here (TF 2.21, 2-core VM; tests/test_memory.py's real
# workflows, 8 calls, 2 left out): see LEAK_MEASURED in the tests and the README.
LEAK_MAX_BYTES_PER_CALL = 1_000_000


class LeakError(ValueError):
    """Bad input to the leak check; the message quotes the value."""


def rss_bytes(path: str | os.PathLike = STATM) -> int:
    """This process's resident set size now, in bytes (Linux ``/proc/self/statm``).

    Raises:
        OSError: no such file (not Linux).
    """
    with open(path, encoding="ascii") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


@dataclasses.dataclass(frozen=True)
class LeakResult:
    """What a leak check measured.

    Attributes:
        rss: the resident set size after each call, in bytes.
        warmup_calls: the first calls the slope leaves out.
        bytes_per_call: the least-squares slope of ``rss`` over the later calls.
        clear_session: whether ``keras.backend.clear_session()`` ran after each call.
        limit: the slope above which the check fails.
    """

    rss: tuple[int, ...]
    warmup_calls: int
    bytes_per_call: float
    clear_session: bool
    limit: float

    @property
    def leaks(self) -> bool:
        return self.bytes_per_call > self.limit

    def failure(self, what: str) -> str | None:
        """Why ``what`` leaks (None if it does not)."""
        if not self.leaks:
            return None
        session = "with" if self.clear_session else "without"
        return (f"{what} leaks {self.bytes_per_call / 1e6:.2f} MB per call ({session} "
                f"clear_session, over calls {self.warmup_calls + 1}-{len(self.rss)}; the "
                f"limit is {self.limit / 1e6:.2f} MB, LEAK_MAX_BYTES_PER_CALL)")


def leak_check(call: Callable[[], object], *, calls: int = 8, warmup_calls: int = 2,
               clear_session: bool = False, limit: float = LEAK_MAX_BYTES_PER_CALL,
               rss: Callable[[], int] = rss_bytes) -> LeakResult:
    """Run ``call`` ``calls`` times (each should train a fresh model), reading the RSS
    after each (garbage collected first), and fit the slope past ``warmup_calls``.

    Raises:
        LeakError: quoting a count that leaves fewer than 3 calls to fit, or a bad limit.
    """
    check_int("calls", calls, minimum=1, error=LeakError)
    check_int("warmup_calls", warmup_calls, minimum=0, error=LeakError)
    check_number("limit", limit, low=0, error=LeakError)
    if calls - warmup_calls < 3:
        raise LeakError(f"a slope needs at least 3 calls past the warm-up, got calls={calls!r} "
                        f"and warmup_calls={warmup_calls!r}")
    readings = []
    for _ in range(calls):
        call()
        if clear_session:
            import keras

            keras.backend.clear_session()
        gc.collect()
        readings.append(rss())
    later = np.asarray(readings[warmup_calls:], dtype=float)
    slope = float(np.polyfit(np.arange(later.size), later, 1)[0])
    return LeakResult(tuple(readings), warmup_calls, slope, clear_session, float(limit))

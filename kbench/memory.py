"""Host memory of training: the process's resident set, its peak, and a leak check.

The peak (:func:`measure_peak`) is the process's RSS high-water mark over one
training run, reset just before it (``/proc/self/clear_refs``): what the
run's build, tracing, compilation and steps took at most, above the RSS it
started from (TensorFlow imported, the data loaded). It is meant to run in a
fresh process (kbench.memcheck starts one per workflow): in a process that
trained before, the allocator hands back memory it kept, and the same run
reads smaller, by however much earlier runs left free. On a GPU the device's
own peak (``tf.config.experimental.get_memory_info(...)["peak"]``, after
``reset_memory_stats``) is read beside it.

The leak check trains a fresh model ``calls`` times in one process (as a
notebook or a hyper-parameter sweep calls ``fit`` in a loop; TF #61791 leaked
there on 2.11-2.13, ``clear_session()`` or not) and measures two things:

- exact: how many of the models the calls returned are still alive after the
  last call (weak references; garbage collected first). A model that outlives
  its call is held by something (a callback, a global list, the harness):
  every one is a leak, and its weights and optimizer state leak with it;
- noisy: a line fitted to the resident set size after each call, whose slope
  in bytes per call is the native growth nothing in Python holds (TensorFlow's
  and Keras's own caches). The first calls are left out (``warmup_calls``):
  they fill caches once, which is growth, not a leak.

RSS is read from ``/proc/self/statm`` (the resident pages now), not from
``getrusage``'s ``ru_maxrss``: that is the process's high-water mark, which
only grows, so it cannot show a slope once an earlier call was bigger.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import weakref
from collections.abc import Callable

import numpy as np

from kbench._validate import check_bool, check_int, check_number, from_mapping

__all__ = ["LEAK_MAX_BYTES_PER_CALL", "LeakError", "LeakResult", "PeakMemory", "high_water_bytes",
           "leak_check", "measure_peak", "reset_high_water", "rss_bytes"]

STATM = "/proc/self/statm"
STATUS = "/proc/self/status"
CLEAR_REFS = "/proc/self/clear_refs"
# Written to clear_refs, resets the process's peak RSS (VmHWM) to its RSS now (Linux 4.0+).
_RESET_PEAK = "5"
# The RSS slope's gate, for gross native growth. Measured here (TF 2.21 / Keras
# 3.15, 2-core VM; a fresh process per setting, 16 calls of 1 epoch on 640
# digits, 4 left out, with and without clear_session): fit grows 6.1-6.5 MB per
# call for the MLP and 11.9-12.2 MB for the CNN although no model stays alive,
# the custom loop 2.8-3.0 MB (MLP) and 4.7 MB (CNN) - TensorFlow's and Keras's
# own growth, the TF #61791 pattern, which clear_session does not change. A
# caller that keeps every model grew 3.1-20.2 MB a call, 0.1-8 MB more than the
# same loop without: too little to tell from that growth by RSS, which is why
# models left alive are counted exactly. 32 MB sits 2.6x above the largest real
# slope; it catches a leak of data or graphs per call (one copy of
# Fashion-MNIST's training images as float32 is 188 MB).
LEAK_MAX_BYTES_PER_CALL = 32_000_000


class LeakError(ValueError):
    """Bad input to the leak check, or a malformed peak or leak record read back; the
    message quotes the value."""


def rss_bytes(path: str | os.PathLike = STATM) -> int:
    """This process's resident set size now, in bytes (Linux ``/proc/self/statm``).

    Raises:
        OSError: no such file (not Linux).
    """
    with open(path, encoding="ascii") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def high_water_bytes(path: str | os.PathLike = STATUS) -> int:
    """This process's peak resident set size (``VmHWM``) since it started or since the
    last :func:`reset_high_water`, in bytes.

    Raises:
        OSError: no such file, or it has no VmHWM line (not Linux).
    """
    with open(path, encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                value, unit = line.split()[1:3]
                if unit != "kB":
                    break
                return int(value) * 1024
    raise OSError(f"{path} has no 'VmHWM: <n> kB' line: the peak RSS cannot be read here")


def reset_high_water(path: str | os.PathLike = CLEAR_REFS) -> None:
    """Reset this process's peak RSS to its RSS now.

    Raises:
        OSError: the file cannot be written (not Linux, or a kernel before 4.0).
    """
    with open(path, "w", encoding="ascii") as clear_refs:
        clear_refs.write(_RESET_PEAK)


@dataclasses.dataclass(frozen=True)
class PeakMemory:
    """The most memory one training run took.

    Attributes:
        start_bytes: the process's RSS just before the run (TensorFlow imported,
            the data loaded; no model yet).
        peak_bytes: the process's peak RSS over the run (its high-water mark,
            reset at the start): what the machine must have free.
        device_peak_bytes: the accelerator's peak allocation over the run, from
            TensorFlow's allocator; None on the CPU.
    """

    start_bytes: int
    peak_bytes: int
    device_peak_bytes: int | None = None

    def __post_init__(self) -> None:
        check_int("start_bytes", self.start_bytes, minimum=0, error=LeakError, where="peak")
        check_int("peak_bytes", self.peak_bytes, minimum=self.start_bytes, error=LeakError,
                  where="peak")
        if self.device_peak_bytes is not None:
            check_int("device_peak_bytes", self.device_peak_bytes, minimum=0, error=LeakError,
                      where="peak")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, value, where: str = "memory check") -> "PeakMemory":
        return from_mapping(cls, "peak", value, error=LeakError, where=where)

    @property
    def run_bytes(self) -> int:
        """What the run added at its peak: its model, graphs, optimizer state and steps."""
        return self.peak_bytes - self.start_bytes


def _device_memory(device: str, tf):
    """(reset, read) of a GPU ``device``'s allocator peak (``/GPU:0`` is ``GPU:0`` there)."""
    name = device.lstrip("/").upper()
    experimental = tf.config.experimental
    return (lambda: experimental.reset_memory_stats(name),
            lambda: int(experimental.get_memory_info(name)["peak"]))


def measure_peak(run: Callable[[], object], *, device: str = "/CPU:0", tf=None,
                 rss: Callable[[], int] = rss_bytes,
                 high_water: Callable[[], int] = high_water_bytes,
                 reset: Callable[[], None] = reset_high_water) -> tuple[PeakMemory, object]:
    """Call ``run`` (one training run) and measure its peak memory.

    Returns:
        (its PeakMemory, what ``run`` returned).

    Raises:
        OSError: the peak RSS cannot be reset or read here (not Linux).
    """
    device_memory = None
    if device.lstrip("/").upper().startswith("GPU"):
        if tf is None:
            import tensorflow as tf
        device_memory = _device_memory(device, tf)
    gc.collect()
    reset()
    start = rss()
    if device_memory:
        device_memory[0]()
    returned = run()
    peak = high_water()
    device_peak = device_memory[1]() if device_memory else None
    return PeakMemory(start, max(peak, start), device_peak), returned


@dataclasses.dataclass(frozen=True)
class LeakResult:
    """What a leak check measured.

    Attributes:
        rss: the resident set size after each call, in bytes.
        alive: how many of the objects the calls returned are still alive
            after the last call (None: the calls returned nothing to watch).
        warmup_calls: the first calls the slope leaves out.
        bytes_per_call: the least-squares slope of ``rss`` over the later calls.
        clear_session: whether ``keras.backend.clear_session()`` ran after each call.
        limit: the slope above which the check fails.
    """

    rss: tuple[int, ...]
    alive: int | None
    warmup_calls: int
    bytes_per_call: float
    clear_session: bool
    limit: float

    def __post_init__(self) -> None:
        where = "leak"
        if not isinstance(self.rss, (tuple, list)) or not self.rss:
            raise LeakError(f"{where}: rss must be a non-empty list of byte counts, got "
                            f"{self.rss!r:.80}")
        object.__setattr__(self, "rss", tuple(
            check_int("rss", v, minimum=0, error=LeakError, where=where) for v in self.rss))
        if self.alive is not None:
            check_int("alive", self.alive, minimum=0, error=LeakError, where=where)
        check_int("warmup_calls", self.warmup_calls, minimum=0, error=LeakError, where=where)
        check_number("bytes_per_call", self.bytes_per_call, error=LeakError, where=where)
        check_bool("clear_session", self.clear_session, error=LeakError, where=where)
        check_number("limit", self.limit, low=0, error=LeakError, where=where)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, value, where: str = "memory check") -> "LeakResult":
        return from_mapping(cls, "leak", value, error=LeakError, where=where)

    @property
    def leaks(self) -> bool:
        return bool(self.alive) or self.bytes_per_call > self.limit

    def failure(self, what: str) -> str | None:
        """Why ``what`` leaks (None if it does not)."""
        session = "with" if self.clear_session else "without"
        if self.alive:
            return (f"{what} leaks: {self.alive} of the {len(self.rss)} models its calls "
                    f"built are still alive after the last call ({session} clear_session); "
                    "something holds them")
        if self.bytes_per_call <= self.limit:
            return None
        return (f"{what} leaks {self.bytes_per_call / 1e6:.2f} MB per call ({session} "
                f"clear_session, over calls {self.warmup_calls + 1}-{len(self.rss)}; the "
                f"limit is {self.limit / 1e6:.2f} MB, LEAK_MAX_BYTES_PER_CALL)")


def leak_check(call: Callable[[], object], *, calls: int = 8, warmup_calls: int = 2,
               clear_session: bool = False, limit: float = LEAK_MAX_BYTES_PER_CALL,
               rss: Callable[[], int] = rss_bytes) -> LeakResult:
    """Run ``call`` ``calls`` times (each should train a fresh model and return it),
    reading the RSS after each (garbage collected first), fit the slope past
    ``warmup_calls``, and count the returned models still alive at the end.

    What was alive before the first call is frozen (``gc.freeze``), so each call's
    collection looks only at what the calls made: a full collection costs 0.3 s
    in a fresh process that imported TensorFlow here, and several times that in a
    long test session, which would dominate the check. Nothing stays frozen: the
    count of models alive comes after a full collection. (A caller that froze
    objects itself keeps its own freeze, untouched.)

    Raises:
        LeakError: quoting a count that leaves fewer than 3 calls to fit, or a bad limit.
    """
    check_int("calls", calls, minimum=1, error=LeakError)
    check_int("warmup_calls", warmup_calls, minimum=0, error=LeakError)
    check_number("limit", limit, low=0, error=LeakError)
    if calls - warmup_calls < 3:
        raise LeakError(f"a slope needs at least 3 calls past the warm-up, got calls={calls!r} "
                        f"and warmup_calls={warmup_calls!r}")
    readings, watched = [], []
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.collect()
        gc.freeze()
    try:
        for _ in range(calls):
            returned = call()
            if returned is not None:
                watched.append(weakref.ref(returned))
            del returned
            if clear_session:
                import keras

                keras.backend.clear_session()
            gc.collect()
            readings.append(rss())
    finally:
        if freeze:
            gc.unfreeze()
    later = np.asarray(readings[warmup_calls:], dtype=float)
    slope = float(np.polyfit(np.arange(later.size), later, 1)[0])
    gc.collect()
    alive = sum(ref() is not None for ref in watched) if watched else None
    return LeakResult(tuple(readings), alive, warmup_calls, slope, clear_session, float(limit))

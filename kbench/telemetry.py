"""Noise telemetry: what else the machine did while a round ran.

On a shared virtual machine the hypervisor lends the vCPUs to other guests;
Linux counts that time as *steal* in ``/proc/stat``. A round's wall time then
includes time the process could not run, while its CPU time does not. Each
round records its wall time, the process's CPU time (all threads) and the
share of the machine's CPU time stolen during it, so that a reader can tell a
slow round from a disturbed one.

Where ``/proc/stat`` does not exist or cannot be parsed (macOS, Windows, some
containers), steal is ``None``: never an error.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable

from kbench import _validate

PROC_STAT = "/proc/stat"
# Fields of the aggregate "cpu" line of /proc/stat, in order (proc(5)). guest and
# guest_nice are already counted in user and nice, so they are not added again.
_CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


@dataclasses.dataclass(frozen=True)
class CpuTimes:
    """Cumulative CPU time of the whole machine since boot, in clock ticks."""

    total: int
    steal: int


def read_cpu_times(path: str | os.PathLike = PROC_STAT) -> CpuTimes | None:
    """The machine's cumulative total and steal ticks, or None where they cannot be read."""
    try:
        with open(path, encoding="ascii") as f:
            line = f.readline()
    except (OSError, UnicodeDecodeError):
        return None
    parts = line.split()
    if len(parts) < 1 + len(_CPU_FIELDS) or parts[0] != "cpu":
        return None
    try:
        values = [int(v) for v in parts[1:1 + len(_CPU_FIELDS)]]
    except ValueError:
        return None
    return CpuTimes(total=sum(values), steal=values[_CPU_FIELDS.index("steal")])


def steal_share(before: CpuTimes | None, after: CpuTimes | None) -> float | None:
    """The share of the machine's CPU time stolen between two readings (None if unknown)."""
    if before is None or after is None:
        return None
    elapsed = after.total - before.total
    if elapsed <= 0:  # the counters did not move (a round shorter than a tick)
        return None
    return min(1.0, max(0.0, (after.steal - before.steal) / elapsed))


@dataclasses.dataclass(frozen=True)
class RoundNoise:
    """One round's telemetry.

    Attributes:
        wall_s: the round's wall time.
        cpu_s: the process's CPU time (user + system, every thread) during it.
        steal: the share of the machine's CPU time stolen during it, or None.
    """

    wall_s: float
    cpu_s: float
    steal: float | None = None

    def __post_init__(self) -> None:
        _validate.check_number("wall_s", self.wall_s, low=0)
        _validate.check_number("cpu_s", self.cpu_s, low=0)
        if self.steal is not None:
            _validate.check_number("steal", self.steal, low=0, high=1)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Stopwatch:
    """Reads every clock at a round's start and end; seams for tests.

    Use ``token = watch.start()`` ... ``noise = watch.stop(token)``.
    """

    clock: Callable[[], float] = time.perf_counter
    process_clock: Callable[[], float] = time.process_time
    cpu_times: Callable[[], CpuTimes | None] = read_cpu_times

    def start(self) -> tuple[float, float, CpuTimes | None]:
        # The wall clock last, so the round's wall time excludes reading /proc/stat.
        cpu_times, process = self.cpu_times(), self.process_clock()
        return self.clock(), process, cpu_times

    def stop(self, token: tuple[float, float, CpuTimes | None]) -> RoundNoise:
        wall = self.clock()  # first, for the same reason
        process, cpu_times = self.process_clock(), self.cpu_times()
        start_wall, start_process, start_times = token
        return RoundNoise(wall_s=wall - start_wall, cpu_s=max(0.0, process - start_process),
                          steal=steal_share(start_times, cpu_times))


# A round's timed part starts and ends with the process quiet (wait_quiet), so
# no round is charged with the background work another left behind (a
# prefetch buffer refilling after its round, thread pools winding down), and
# a buffering pipeline is timed from full buffers to full buffers: what it
# produced in the round is exactly what the round consumed. Measured here (the
# prefetch settings and bounds in one group, default profile): a refill after
# a prefetching round took up to 160 ms; in the execution and loops suites
# every wait ended at its first window (median 2.2 ms, max 4 ms), so an idle
# process with all its group's variants alive stays under the share below.
# Windows of 2 ms bound the end-time error to
# one window, 2% of a 0.1 s round at worst and none for a round with nothing
# to refill (its first window is already quiet).
QUIET_WINDOW_S = 0.002
# Quiet: all the process's threads together used at most this share of one
# core over a window.
QUIET_CPU_SHARE = 0.25
# A process still busy after this long is taken as it is (the round goes on).
QUIET_MAX_S = 0.5


def wait_quiet(clock: Callable[[], float] = time.perf_counter, *,
               process_clock: Callable[[], float] = time.process_time,
               sleep: Callable[[float], None] = time.sleep,
               window_s: float = QUIET_WINDOW_S, cpu_share: float = QUIET_CPU_SHARE,
               max_s: float = QUIET_MAX_S) -> float:
    """Wait until this process has gone quiet; ``clock``'s reading when it had.

    Sleeps in windows of ``window_s`` until one in which every thread of the
    process together used at most ``cpu_share`` of one core, and returns the
    clock at that window's start: the background work had ended by then,
    within one window. After ``max_s`` without a quiet window it returns the
    clock as it is.
    """
    start = None
    while True:
        window_start, cpu_start = clock(), process_clock()
        start = window_start if start is None else start
        sleep(window_s)
        window_end, cpu_end = clock(), process_clock()
        if cpu_end - cpu_start <= cpu_share * max(window_end - window_start, window_s):
            return window_start
        if window_end - start >= max_s:
            return window_end

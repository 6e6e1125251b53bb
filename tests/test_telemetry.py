"""Tests for kbench.telemetry: /proc/stat steal, process CPU time, the round stopwatch."""

import itertools

import pytest

from kbench import telemetry
from kbench.telemetry import CpuTimes, RoundNoise

STAT = "cpu  253902 0 28490 153580 2194 0 190 2678 11 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"


def test_the_aggregate_cpu_line_gives_total_and_steal(tmp_path):
    path = tmp_path / "stat"
    path.write_text(STAT)
    # total: user..steal (guest time is already inside user), steal: the 8th field.
    assert telemetry.read_cpu_times(path) == CpuTimes(
        total=253902 + 28490 + 153580 + 2194 + 190 + 2678, steal=2678)


@pytest.mark.parametrize("text", ["", "intr 1 2 3\n", "cpu 1 2 3\n", "cpu a b c d e f g h\n"])
def test_unreadable_stat_gives_none_not_an_error(tmp_path, text):
    path = tmp_path / "stat"
    path.write_text(text)
    assert telemetry.read_cpu_times(path) is None
    assert telemetry.read_cpu_times(tmp_path / "absent") is None


def test_this_machine_reports_steal_or_says_it_cannot():
    times = telemetry.read_cpu_times()
    assert times is None or 0 <= times.steal <= times.total


@pytest.mark.parametrize("before, after, share", [
    (CpuTimes(100, 10), CpuTimes(200, 40), 0.3),
    (CpuTimes(100, 10), CpuTimes(100, 10), None),  # no tick passed
    (None, CpuTimes(200, 40), None),
    (CpuTimes(100, 10), CpuTimes(300, 5), 0.0),  # counters never run backwards; clamp
])
def test_steal_share_is_stolen_ticks_over_elapsed_ticks(before, after, share):
    assert telemetry.steal_share(before, after) == share


def test_stopwatch_reads_wall_process_and_steal_around_a_round():
    wall = itertools.count(10.0, 1.5)  # each read 1.5 s later
    process = iter([3.0, 3.4])
    stat = iter([CpuTimes(1000, 100), CpuTimes(1400, 200)])
    watch = telemetry.Stopwatch(clock=lambda: next(wall), process_clock=lambda: next(process),
                                cpu_times=lambda: next(stat))
    noise = watch.stop(watch.start())
    assert noise.wall_s == pytest.approx(1.5)
    assert noise.cpu_s == pytest.approx(0.4)
    assert noise.steal == pytest.approx(0.25)
    assert noise.to_dict() == {"wall_s": noise.wall_s, "cpu_s": noise.cpu_s, "steal": 0.25}


@pytest.mark.parametrize("fields, quoted", [({"wall_s": -1.0}, "-1.0"), ({"steal": 1.5}, "1.5"),
                                            ({"cpu_s": float("nan")}, "nan")])
def test_round_noise_validates(fields, quoted):
    with pytest.raises(ValueError, match=quoted):
        RoundNoise(**{"wall_s": 1.0, "cpu_s": 0.5, **fields})


# --------------------------------------------------------------------------- wait_quiet


class FakeProcess:
    """A wall clock and a process CPU clock; each window's sleep advances both, the CPU
    clock by that window's busy share."""

    def __init__(self, busy_shares, window_s=0.002):
        self.wall, self.cpu, self.window_s = 10.0, 0.0, window_s
        self.busy = iter(busy_shares)
        self.sleeps = 0

    def sleep(self, seconds):
        self.sleeps += 1
        self.wall += seconds
        self.cpu += next(self.busy) * seconds

    def wait(self, **kwargs):
        return telemetry.wait_quiet(lambda: self.wall, process_clock=lambda: self.cpu,
                                    sleep=self.sleep, **kwargs)


def test_wait_quiet_returns_at_once_when_the_process_is_already_quiet():
    proc = FakeProcess([0.0])
    assert proc.wait() == 10.0 and proc.sleeps == 1


def test_wait_quiet_waits_out_the_busy_windows_and_returns_the_first_quiet_ones_start():
    # A refill keeps 1.7 cores busy for three windows, then the process idles at 0.1 core.
    proc = FakeProcess([1.7, 1.7, 1.7, 0.1])
    assert proc.wait() == pytest.approx(10.0 + 3 * 0.002)
    assert proc.sleeps == 4


def test_wait_quiet_takes_a_window_at_its_cpu_share_as_quiet_and_just_above_as_busy():
    share = telemetry.QUIET_CPU_SHARE
    assert FakeProcess([share]).wait() == 10.0
    proc = FakeProcess([share * 1.01, 0.0])
    assert proc.wait() == pytest.approx(10.002)


def test_wait_quiet_gives_up_after_max_s_with_the_clock_as_it_is():
    proc = FakeProcess(itertools.repeat(2.0))
    assert proc.wait(max_s=0.01) == pytest.approx(10.01)
    assert proc.sleeps == 5

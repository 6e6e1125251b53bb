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

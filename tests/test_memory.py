"""Tests for kbench.memory: the resident set size and the leak check (exact: models that
outlive their calls; noisy: the RSS slope per call)."""

from __future__ import annotations

import gc
import itertools
import os
import types

import pytest

from kbench import memory, testing, training
from kbench.memory import LeakError
from kbench.workflows import LOOPS, WorkflowSpec


def test_rss_bytes_reads_the_resident_pages_of_statm(tmp_path):
    statm = tmp_path / "statm"
    statm.write_text("5000 1200 300 10 0 900 0\n")
    assert memory.rss_bytes(statm) == 1200 * os.sysconf("SC_PAGE_SIZE")
    assert memory.rss_bytes() > 0  # this process's own


def fake_rss(values):
    readings = iter(values)
    return lambda: next(readings)


def test_the_slope_leaves_the_warm_up_calls_out():
    mb = 1_000_000
    rss = [500 * mb, 540 * mb, 541 * mb, 543 * mb, 545 * mb, 547 * mb]  # +40 MB once, then +2
    result = memory.leak_check(lambda: None, calls=6, warmup_calls=2, rss=fake_rss(rss))
    assert result.bytes_per_call == pytest.approx(2 * mb)
    assert result.rss == tuple(rss) and result.alive is None
    assert result.failure("w") is None


def test_a_slope_beyond_the_limit_fails_saying_how_much():
    rss = [i * 30_000_000 for i in range(5)]
    result = memory.leak_check(lambda: None, calls=5, warmup_calls=1, rss=fake_rss(rss),
                               limit=10_000_000, clear_session=True)
    assert result.leaks
    assert result.failure("w") == ("w leaks 30.00 MB per call (with clear_session, over calls "
                                   "2-5; the limit is 10.00 MB, LEAK_MAX_BYTES_PER_CALL)")


def test_the_check_freezes_what_was_alive_before_it_and_leaves_nothing_frozen():
    seen = []
    memory.leak_check(lambda: seen.append(gc.get_freeze_count()), calls=3, warmup_calls=0,
                      rss=fake_rss(itertools.count()))
    assert min(seen) > 0 and gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError, match="boom"):
        memory.leak_check(lambda: (_ for _ in ()).throw(RuntimeError("boom")), calls=3,
                          warmup_calls=0, rss=fake_rss(itertools.count()))
    assert gc.get_freeze_count() == 0
    gc.freeze()  # a caller's own freeze stays: an unfreeze would empty it
    try:
        memory.leak_check(lambda: None, calls=3, warmup_calls=0, rss=fake_rss(itertools.count()))
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("kwargs, quoted", [
    (dict(calls=4, warmup_calls=2), "at least 3 calls past the warm-up, got calls=4 and "
                                    "warmup_calls=2"),
    (dict(calls=0), "calls must be a positive int, got 0"),
    (dict(warmup_calls=-1), "warmup_calls must be a non-negative int, got -1"),
    (dict(limit=-5), "limit must be a finite number >= 0, got -5"),
])
def test_bad_counts_are_refused_quoting_them(kwargs, quoted):
    with pytest.raises(LeakError) as info:
        memory.leak_check(lambda: None, rss=fake_rss(itertools.count()), **kwargs)
    assert quoted in str(info.value)


def _fresh_fit(spec, dataset, kept=None):
    """A call of the check: train a fresh model; ``kept`` (a leaking caller) holds it."""
    def call():
        model = training.train(spec, dataset=dataset).model
        if kept is not None:
            kept.append(model)
        return model
    return call


@pytest.fixture(scope="module")
def small():
    return testing.tiny_dataset()


@pytest.mark.parametrize("clear_session", [False, True])
@pytest.mark.parametrize("loop", LOOPS)
def test_training_fresh_models_in_a_loop_keeps_none_of_them_alive(loop, clear_session, small):
    spec = WorkflowSpec(loop=loop, epochs=1, batch_size=32)
    result = memory.leak_check(_fresh_fit(spec, small), calls=4, warmup_calls=1,
                               clear_session=clear_session)
    assert result.alive == 0, result.failure(spec.name)
    assert result.failure(spec.name) is None, result


def test_a_loop_that_keeps_every_model_fails_the_leak_check_exactly(small):
    spec = WorkflowSpec(epochs=1, batch_size=32)
    kept = []
    result = memory.leak_check(_fresh_fit(spec, small, kept), calls=4, warmup_calls=1,
                               clear_session=True)
    assert result.alive == 4 and result.leaks
    assert result.failure("the leaking loop") == (
        "the leaking loop leaks: 4 of the 4 models its calls built are still alive after "
        "the last call (with clear_session); something holds them")


def test_high_water_bytes_reads_vmhwm_of_status(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmPeak:\t  900 kB\nVmHWM:\t   1234 kB\nVmRSS:\t  1000 kB\n")
    assert memory.high_water_bytes(status) == 1234 * 1024
    status.write_text("Name:\tpython\n")
    with pytest.raises(OSError, match="has no 'VmHWM: <n> kB' line"):
        memory.high_water_bytes(status)


def test_reset_high_water_brings_the_peak_down_to_the_rss_now():
    import numpy as np

    block = np.ones(25_000_000)  # 200 MB touched, then freed
    del block
    assert memory.high_water_bytes() > memory.rss_bytes() + 150_000_000
    memory.reset_high_water()
    assert memory.high_water_bytes() < memory.rss_bytes() + 50_000_000


class _FakeExperimental:
    def __init__(self):
        self.calls = []

    def reset_memory_stats(self, device):
        self.calls.append(("reset", device))

    def get_memory_info(self, device):
        self.calls.append(("info", device))
        return {"current": 10, "peak": 4096}


def _fake_tf_config():
    experimental = _FakeExperimental()
    return types.SimpleNamespace(config=types.SimpleNamespace(experimental=experimental)), experimental


def test_measure_peak_reads_the_high_water_mark_after_resetting_it_before_the_run():
    order = []
    peak, returned = memory.measure_peak(
        lambda: order.append("run") or "model", rss=lambda: order.append("rss") or 700,
        high_water=lambda: order.append("hwm") or 950, reset=lambda: order.append("reset"))
    assert order == ["reset", "rss", "run", "hwm"] and returned == "model"
    assert peak == memory.PeakMemory(700, 950, None) and peak.run_bytes == 250


def test_measure_peak_reads_a_gpus_allocator_peak_beside_the_rss():
    tf, experimental = _fake_tf_config()
    peak, _ = memory.measure_peak(lambda: experimental.calls.append(("run", None)),
                                  device="/GPU:0", tf=tf, rss=lambda: 1, high_water=lambda: 2,
                                  reset=lambda: None)
    assert experimental.calls == [("reset", "GPU:0"), ("run", None), ("info", "GPU:0")]
    assert peak.device_peak_bytes == 4096


@pytest.mark.parametrize("fields, quoted", [
    (dict(start_bytes=10, peak_bytes=5), "peak_bytes must be an int >= 10, got 5"),
    (dict(start_bytes=-1, peak_bytes=5), "start_bytes must be a non-negative int, got -1"),
    (dict(start_bytes=1, peak_bytes=5, device_peak_bytes=1.5), "device_peak_bytes"),
])
def test_a_malformed_peak_is_refused_quoting_it(fields, quoted):
    with pytest.raises(LeakError) as info:
        memory.PeakMemory(**fields)
    assert quoted in str(info.value)


def test_a_leak_result_round_trips_and_refuses_bad_fields():
    result = memory.LeakResult([1, 2, 3], 0, 1, 0.5, True, 10.0)
    assert result.rss == (1, 2, 3)
    assert memory.LeakResult.from_dict(result.to_dict()) == result
    with pytest.raises(LeakError, match="clear_session must be a bool, got 'yes'"):
        memory.LeakResult.from_dict({**result.to_dict(), "clear_session": "yes"})
    with pytest.raises(LeakError, match="bad leak"):
        memory.LeakResult.from_dict({**result.to_dict(), "extra": 1})

"""Benchmark-suite wiring: profile option, devices, machine fingerprint, summary.

Only options, fixtures and hooks live here; measuring is kbench.measure's job
and the summary is kbench.report's.
"""

import os

import pytest
from pytest_benchmark.utils import get_tag

from kbench import data, fingerprint, measure, report

_RESULTS = pytest.StashKey[dict]()


def pytest_addoption(parser):
    parser.addoption(
        "--kbench-profile", choices=tuple(measure.PROFILES), default=None,
        help=f"benchmark profile (default: ${measure.PROFILE_ENV} or '{measure.DEFAULT_PROFILE}'): "
             "smoke <= 2 min for CI, default <= 10 min, full sweeps batch sizes",
    )


# Where results are kept unless the user says otherwise (--benchmark-storage).
RESULTS_STORAGE = "reports/runs/pytest-benchmark"


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark reads its options
def pytest_configure(config):
    """Always keep the run: autosave pytest-benchmark JSON (with kbench's fields)."""
    config.stash[_RESULTS] = {}
    if not config.getoption("benchmark_json") and not config.getoption("benchmark_save"):
        config.option.benchmark_autosave = get_tag()  # what --benchmark-autosave stores
    config.option.benchmark_save_data = True  # keep every round, not only the stats
    if config.getoption("benchmark_storage") == _pytest_benchmark_default_storage():
        config.option.benchmark_storage = f"file://{config.rootpath / RESULTS_STORAGE}"


def _pytest_benchmark_default_storage() -> str:
    return "file://./.benchmarks"


def _profile(config) -> measure.Profile:
    name = config.getoption("--kbench-profile") or os.environ.get(measure.PROFILE_ENV)
    return measure.get_profile(name)


def pytest_generate_tests(metafunc):
    """Batch sizes and model families come from the profile, so collection shows them."""
    profile = _profile(metafunc.config)
    if "batch_size" in metafunc.fixturenames:
        metafunc.parametrize("batch_size", profile.batch_sizes, ids=lambda b: f"b{b}")
    if "family" in metafunc.fixturenames:
        metafunc.parametrize("family", profile.families)


@pytest.fixture(scope="session")
def profile(request) -> measure.Profile:
    return _profile(request.config)


@pytest.fixture(scope="session")
def mnist_5k():
    return data.load_dataset("mnist_5k")


@pytest.fixture(params=[
    pytest.param("/CPU:0", id="cpu"),
    pytest.param("/GPU:0", id="gpu", marks=pytest.mark.skipif(
        not measure.gpu_devices(), reason="no GPU visible to TensorFlow on this machine")),
])
def device(request) -> str:
    """Every suite runs on the CPU, and on GPU:0 where one is visible."""
    return request.param


@pytest.fixture(scope="session")
def peak_flops():
    """Achievable matmul FLOP/s per device, probed once per session on first use."""
    cache = {}

    def probe(device):
        if device not in cache:
            cache[device] = measure.probe_matmul_flops(device)
        return cache[device]

    return probe


@pytest.fixture
def record(request, benchmark):
    """Keeps (the latest copy of) this benchmark's extra_info for the end-of-session summary."""
    def keep():
        request.config.stash[_RESULTS][request.node.nodeid] = dict(benchmark.extra_info)
    return keep


@pytest.fixture
def run_training(benchmark, profile, device, peak_flops, record):
    """Benchmark one training workflow and check that it learned while timed."""
    def run(spec, train_data, **labels):
        result = measure.benchmark_training(benchmark, spec, train_data, profile, device=device,
                                            peak_flops=peak_flops(device), **labels)
        record()
        assert result.loss_fell, (f"{spec.name}: loss rose from {result.loss_start:.4f} "
                                  f"to {result.loss_end:.4f} while timed")
        return result
    return run


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["kbench"] = fingerprint.fingerprint()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    results = list(config.stash.get(_RESULTS, {}).values())
    if results:
        terminalreporter.section("kbench summary")
        for line in report.summary_lines(results, fingerprint.fingerprint()):
            terminalreporter.write_line(line)

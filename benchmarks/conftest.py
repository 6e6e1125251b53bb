"""Benchmark-suite wiring: profile and store options, devices, machine fingerprint,
summary, storing the run.

Only options, fixtures and hooks live here; measuring is kbench.measure's job,
the summary is kbench.report's and the store is kbench.results'.
"""

import os
from pathlib import Path

import pytest

from kbench import data, distribute, fingerprint, measure, report, results

_RESULTS = pytest.StashKey[dict]()
_STORE = pytest.StashKey[Path]()
_STORED = pytest.StashKey[dict]()  # {"path": Path} once stored, {"error": str} if that failed


def pytest_addoption(parser):
    parser.addoption(
        "--kbench-profile", choices=tuple(measure.PROFILES), default=None,
        help=f"benchmark profile (default: ${measure.PROFILE_ENV} or '{measure.DEFAULT_PROFILE}'): "
             "smoke <= 2 min for CI, default <= 10 min, full sweeps batch sizes",
    )
    parser.addoption(
        "--kbench-store", metavar="DIR", default=None,
        help="where the run is stored, as DIR/<tf-version>/<machine-key>/<timestamp>.json "
             f"(default: ${results.STORE_ENV} or {results.DEFAULT_STORE} under the rootdir)",
    )


# Every session's run lands in the kbench store exactly once, atomically, with
# every round: results.write_run(<pytest-benchmark's JSON document>).
#
# pytest-benchmark writes JSON only when asked, and neither of its writers
# fits: --benchmark-save/--benchmark-autosave number files in its own layout
# (<storage>/<platform>/NNNN_<tag>.json, blind to the TF version and machine)
# and both they and --benchmark-json write in place, so an interrupted write
# leaves half a file. Autosaving as well as storing would keep two copies in
# two layouts. So kbench turns none of them on; it stores the document that
# pytest-benchmark's own hooks build (generate_json, update_json with the
# fingerprint) and writes it as pytest-benchmark does (indent 4, ASCII), so
# `pytest-benchmark compare <stored file>` reads it:
#   - the user passed --benchmark-json/--benchmark-save/--benchmark-autosave:
#     pytest-benchmark writes that as asked and hands us the document first
#     (pytest_benchmark_update_json, once per file it writes; we store the first);
#   - otherwise: pytest_sessionfinish, after pytest-benchmark's (a hookwrapper,
#     so it has finished), builds the same document through the same hooks.
@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark reads its options
def pytest_configure(config):
    # Before TensorFlow initialises: the replicas suite needs 2 devices.
    distribute.split_cpu_unless_gpu()
    config.stash[_RESULTS] = {}
    config.stash[_STORED] = {}
    config.option.benchmark_save_data = True  # --benchmark-save keeps every round too
    store = results.store_dir(config.getoption("kbench_store"), root=config.rootpath).absolute()
    if store.exists() and not store.is_dir():
        raise pytest.UsageError(f"kbench store {store} (--kbench-store or "
                                f"${results.STORE_ENV}) is a file, not a folder")
    config.stash[_STORE] = store


def _store(config, document) -> None:
    """Store this session's run, once; a failure is reported, not raised mid-teardown."""
    stored = config.stash[_STORED]
    if stored:
        return
    try:
        stored["path"] = results.write_run(document, config.stash[_STORE])
    except (results.ResultsError, OSError) as err:
        stored["error"] = str(err)


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """pytest-benchmark is about to write a file the user asked for: store the same run."""
    _store(config, output_json)


def _build_document(config, benchmarks) -> dict:
    """pytest-benchmark's JSON document for ``benchmarks``, every round included."""
    hook = config.hook
    machine_info = hook.pytest_benchmark_generate_machine_info(config=config)
    hook.pytest_benchmark_update_machine_info(config=config, machine_info=machine_info)
    commit_info = hook.pytest_benchmark_generate_commit_info(config=config)
    hook.pytest_benchmark_update_commit_info(config=config, commit_info=commit_info)
    return hook.pytest_benchmark_generate_json(config=config, benchmarks=benchmarks,
                                               include_data=True, machine_info=machine_info,
                                               commit_info=commit_info)


def pytest_sessionfinish(session):
    """Store the run if pytest-benchmark wrote no file; a run that was not stored fails."""
    config = session.config
    # pytest-benchmark's session object is where its fixture records the benchmarks.
    benchmarks = getattr(getattr(config, "_benchmarksession", None), "benchmarks", None)
    if benchmarks and not config.stash[_STORED]:
        document = _build_document(config, benchmarks)
        config.hook.pytest_benchmark_update_json(config=config, benchmarks=benchmarks,
                                                 output_json=document)
    if "error" in config.stash[_STORED] and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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


@pytest.fixture(params=[pytest.param("/CPU:0", id="cpu"), pytest.param("/GPU:0", id="gpu")])
def device(request) -> str:
    """Every suite runs on the CPU, and on GPU:0 where one is visible."""
    # Asked here, not at import: TF must not initialise before pytest_configure.
    if request.param.startswith("/GPU") and not measure.gpu_devices():
        pytest.skip("no GPU visible to TensorFlow on this machine")
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
    """Stamps kbench's schema version on this benchmark's extra_info; ``record()`` keeps
    (the latest copy of) it for the end-of-session summary."""
    benchmark.extra_info[results.SCHEMA_FIELD] = results.RESULT_SCHEMA_VERSION

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
    kept = list(config.stash.get(_RESULTS, {}).values())
    stored = config.stash.get(_STORED, {})
    if not kept and not stored:
        return
    terminalreporter.section("kbench summary")
    if kept:
        for line in report.summary_lines(kept, fingerprint.fingerprint()):
            terminalreporter.write_line(line)
    if "path" in stored:
        terminalreporter.write_line(f"Run stored in {stored['path']}")
    if "error" in stored:
        terminalreporter.write_line(f"Run NOT stored: {stored['error']}", red=True, bold=True)

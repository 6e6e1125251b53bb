"""kbench's pytest plugin: the benchmark suites' options, fixtures and hooks.

Enable it in the ``conftest.py`` of a benchmark folder::

    pytest_plugins = ["kbench.pytest_plugin"]

or for one run with ``pytest -p kbench.pytest_plugin``. It needs
pytest-benchmark (kbench's ``test`` extra). kbench's own
``benchmarks/conftest.py`` is that one line.

It adds ``--kbench-profile``, ``--kbench-dataset``, ``--kbench-group-s`` and
``--kbench-store``; the fixtures ``profile``, ``mnist_5k``, ``train_dataset``,
``on_dataset``, ``device``, ``peak_flops`` and ``lockstep_group``; the profile's
``batch_size``/``family``/``dataset_name`` parametrization; the store of every session's run;
and the kbench summary of that run at the end of the session. A benchmark
counts as kbench's when its ``extra_info`` holds a
:class:`kbench.record.BenchmarkRecord` (``lockstep_group`` and
``kbench.measure.write_record`` put it there).

Why ``pytest_plugins`` and not a ``pytest11`` entry point: pytest loads an
installed entry point in every session of the environment, and this plugin
imports TensorFlow and, in ``pytest_configure``, splits the CPU into logical
devices before TensorFlow initialises (the replicas suite needs two). That
must stay out of the test run (plain ``pytest``, testpaths = tests) and out of
a user's unrelated suites. pytest accepts ``pytest_plugins`` in a conftest it
loads before configuring: the one of a folder named on the command line or of
a file in it (``pytest benchmarks``, ``pytest benchmarks/test_loops.py``, or
``pytest`` inside the folder). It refuses it in a conftest reached only while
collecting (``pytest .`` from the repository root): run benchmarks by naming
their folder. Once enabled, the plugin's hooks apply to the whole session.

Only options, fixtures and hooks live here; measuring is kbench.measure's
job, the summary kbench.report's and the store kbench.results'.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from kbench import (data, distribute, fingerprint, flops, interleaved, profiles, report, results,
                    workflows)


@dataclasses.dataclass
class _State:
    """What the plugin keeps of one session, in ``config.stash[_STATE]``."""

    store: Path  # the kbench store this session's run goes to
    # pytest-benchmark's JSON document of the run, once built. pytest_sessionfinish
    # builds it before the terminal reporter calls pytest_terminal_summary, so the
    # summary can read the run that was stored: results.run_from_json(document).
    document: dict | None = None
    stored: Path | None = None  # where the run went
    error: str | None = None  # why it could not be stored
    # Comparison group -> its members' records by test node id (or why it failed),
    # measured when the group's first test runs.
    groups: dict = dataclasses.field(default_factory=dict)


_STATE = pytest.StashKey[_State]()


def pytest_addoption(parser):
    parser.addoption(
        "--kbench-profile", choices=tuple(profiles.PROFILES), default=None,
        help=f"benchmark profile (default: ${profiles.PROFILE_ENV} or '{profiles.DEFAULT_PROFILE}'): "
             "smoke <= 2 min for CI, default <= 10 min, full sweeps batch sizes",
    )
    parser.addoption(
        "--kbench-dataset", metavar="NAME", action="append", default=None,
        choices=tuple(workflows.DATASETS),
        help="a dataset the loops and prefetch suites train on (repeatable; default: the "
             "profile's: mnist_5k, and fashion_mnist too in the default and full profiles)",
    )
    parser.addoption(
        "--kbench-group-s", metavar="SECONDS", type=float, default=None,
        help="the most seconds of cycles each lockstep comparison group measures "
             "(default: the profile's group_s); more narrows the CIs",
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
#   - otherwise: pytest_sessionfinish, after pytest-benchmark's (a hookwrapper
#     that finishes its session before the plain hooks run), builds the same
#     document through the same hooks.
@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark reads its options
def pytest_configure(config):
    # Before TensorFlow initialises: the replicas suite needs 2 devices.
    distribute.split_cpu_unless_gpu()
    config.option.benchmark_save_data = True  # --benchmark-save keeps every round too
    store = results.store_dir(config.getoption("kbench_store"), root=config.rootpath).absolute()
    if store.exists() and not store.is_dir():
        raise pytest.UsageError(f"kbench store {store} (--kbench-store or "
                                f"${results.STORE_ENV}) is a file, not a folder")
    _profile(config)  # a bad --kbench-group-s is a usage error before anything runs
    config.stash[_STATE] = _State(store=store)


def _store(config, document) -> None:
    """Keep and store this session's run, once; a failure is reported, not raised
    mid-teardown."""
    state = config.stash[_STATE]
    if state.document is not None:
        return
    state.document = document
    try:
        state.stored = results.write_run(document, state.store)
    except (results.ResultsError, OSError) as err:
        state.error = str(err)


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
    if benchmarks and config.stash[_STATE].document is None:
        document = _build_document(config, benchmarks)
        config.hook.pytest_benchmark_update_json(config=config, benchmarks=benchmarks,
                                                 output_json=document)
    if config.stash[_STATE].error is not None and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _profile(config) -> profiles.Profile:
    name = config.getoption("--kbench-profile") or os.environ.get(profiles.PROFILE_ENV)
    try:
        profile = profiles.get_profile(name)
    except ValueError as err:
        raise pytest.UsageError(f"${profiles.PROFILE_ENV}={name!r}: {err}") from None
    chosen = config.getoption("--kbench-dataset")
    if chosen:
        profile = dataclasses.replace(profile, datasets=tuple(dict.fromkeys(chosen)))
    group_s = config.getoption("--kbench-group-s")
    if group_s is None:
        return profile
    try:
        return dataclasses.replace(profile, group_s=group_s)
    except ValueError as err:
        raise pytest.UsageError(f"--kbench-group-s {group_s!r}: {err}") from None


def _parametrized_by_marks(metafunc) -> set[str]:
    names: set[str] = set()
    for mark in metafunc.definition.iter_markers("parametrize"):
        argnames = mark.args[0] if mark.args else mark.kwargs.get("argnames", ())
        names.update(n.strip() for n in (argnames.split(",") if isinstance(argnames, str)
                                          else argnames))
    return names


def pytest_generate_tests(metafunc):
    """Batch sizes, model families and datasets come from the profile, so collection
    shows them.

    A test that parametrizes ``batch_size``, ``family`` or ``dataset_name`` itself
    keeps its own values
    (the hooks apply to the whole session, e.g. ``pytest tests benchmarks``).
    """
    profile = _profile(metafunc.config)
    own = _parametrized_by_marks(metafunc)
    if "batch_size" in metafunc.fixturenames and "batch_size" not in own:
        metafunc.parametrize("batch_size", profile.batch_sizes, ids=lambda b: f"b{b}")
    if "family" in metafunc.fixturenames and "family" not in own:
        metafunc.parametrize("family", profile.families)
    if "dataset_name" in metafunc.fixturenames and "dataset_name" not in own:
        metafunc.parametrize("dataset_name", profile.datasets)


@pytest.fixture(scope="session")
def profile(request) -> profiles.Profile:
    return _profile(request.config)


@pytest.fixture(scope="session")
def mnist_5k():
    return data.load_dataset("mnist_5k")


@pytest.fixture(scope="session")
def _loaded_datasets() -> dict:
    return {}


@pytest.fixture
def train_dataset(dataset_name, _loaded_datasets, mnist_5k) -> data.Dataset:
    """The profile's dataset ``dataset_name`` (loaded once a session); one that is not
    available offline skips, saying how to get it."""
    if dataset_name == mnist_5k.name:
        return mnist_5k
    if dataset_name not in _loaded_datasets:
        if data.local_source(dataset_name) is None:
            pytest.skip(f"{dataset_name} is not available offline; to get it: "
                        f"{data.offline_hint(dataset_name)}")
        _loaded_datasets[dataset_name] = data.load_dataset(dataset_name)
    return _loaded_datasets[dataset_name]


@pytest.fixture
def on_dataset(dataset_name) -> str:
    """What a comparison group's name adds for its dataset: nothing for the bundled
    digits (the names stored runs already use), `` on <name>`` for any other."""
    return "" if dataset_name == profiles.BUNDLED_DATASET else f" on {dataset_name}"


@pytest.fixture(params=[pytest.param("/CPU:0", id="cpu"), pytest.param("/GPU:0", id="gpu")])
def device(request) -> str:
    """Every suite runs on the CPU, and on GPU:0 where one is visible."""
    # Asked here, not at import: TF must not initialise before pytest_configure.
    if request.param.startswith("/GPU") and not distribute.gpu_devices():
        pytest.skip("no GPU visible to TensorFlow on this machine")
    return request.param


@pytest.fixture(scope="session")
def peak_flops():
    """Achievable matmul FLOP/s per device, probed once per session on first use."""
    cache = {}

    def probe(device):
        if device not in cache:
            cache[device] = flops.probe_matmul_flops(device)
        return cache[device]

    return probe


def _group_peers(item, vary: tuple[str, ...]) -> list:
    """The session's items of ``item``'s comparison group, in collection order: the same
    test function with the same parameters except those in ``vary``."""
    def key(node):
        params = getattr(getattr(node, "callspec", None), "params", {})
        return (node.path, getattr(node, "originalname", node.name),
                tuple(sorted((k, repr(v)) for k, v in params.items() if k not in vary)))
    missing = [p for p in vary if p not in getattr(getattr(item, "callspec", None), "params", {})]
    if missing:
        raise pytest.UsageError(f"{item.nodeid}: lockstep_group(vary={vary!r}) names "
                                f"{missing}, which the test is not parametrized by")
    mine = key(item)
    return [node for node in item.session.items if key(node) == mine]


class _LockstepGroup:
    """What the ``lockstep_group`` fixture gives a test (see there)."""

    def __init__(self, request, benchmark, profile, device, peak_flops):
        self._request, self._benchmark = request, benchmark
        self._profile, self._device, self._peak_flops = profile, device, peak_flops
        self.records: dict = {}  # variant name -> record, once the group has run

    def __call__(self, build, *, vary, comparison, baseline, suite=None, target_ci=None):
        node, state = self._request.node, self._request.config.stash[_STATE]
        vary = (vary,) if isinstance(vary, str) else tuple(vary)
        if comparison not in state.groups:
            state.groups[comparison] = self._measure(
                build, vary, _group_peers(node, vary), comparison, baseline, suite, target_ci)
        measured = state.groups[comparison]
        if isinstance(measured, Exception):
            raise measured
        owners, records = measured
        if node.nodeid not in owners:
            raise pytest.UsageError(
                f"{node.nodeid}: comparison {comparison!r} was already measured as the group "
                f"of {sorted(owners)}; each lockstep group needs its own comparison label")
        self.records = records
        record = records[owners[node.nodeid]]
        interleaved.replay_rounds(self._benchmark, record)
        assert record.invalid is None, record.invalid  # compare/gate refuse it too
        return record

    def _measure(self, build, vary, peers, comparison, baseline, suite, target_ci):
        """(test node id -> variant name, variant name -> record), or why it failed."""
        variants, owners = [], {}
        for peer in peers:
            variant = build(**{p: peer.callspec.params[p] for p in vary})
            if variant is not None:
                variants.append(variant)
                owners[peer.nodeid] = variant.name
        try:
            group = interleaved.Group(comparison, variants, baseline, suite=suite,
                                      target_ci=target_ci)
            records = interleaved.measure_group(group, self._profile, device=self._device,
                                                peak_flops=self._peak_flops(self._device))
        except Exception as err:  # every member of the group reports it
            failure = interleaved.GroupFailure(f"comparison group {comparison!r} failed: "
                                               f"{type(err).__name__}: {err}")
            failure.__cause__ = err
            return failure
        return owners, records


@pytest.fixture
def lockstep_group(request, benchmark, profile, device, peak_flops) -> _LockstepGroup:
    """Measure this test's comparison group in lockstep, and this test's variant as its entry.

    ``lockstep_group(build, vary=("loop",), comparison=..., baseline=...)``:
    the group is every selected test of the same function whose parameters
    differ only in ``vary``; ``build(**those parameters)`` returns a peer's
    variant (:class:`kbench.interleaved.Training`, ``BareFit`` or ``InputOnly``)
    or None where it cannot run (that test skips itself). The first test of a
    group to run measures all of it (:func:`kbench.interleaved.measure_group`);
    each test then replays its own variant's rounds into its ``benchmark`` and
    fails if its model did not learn while timed. Returns the variant's record;
    ``lockstep_group.records`` then holds every member's, by variant name.
    """
    return _LockstepGroup(request, benchmark, profile, device, peak_flops)


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["kbench"] = fingerprint.fingerprint()


def _summary(document: dict) -> list[str]:
    """The summary of the run as stored: the comparison code ``kbench compare`` uses."""
    try:
        run = results.run_from_json(document, source="this session's run")
    except results.ResultsError as err:
        return [f"no summary: {err}"]
    return report.summary_lines(run)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    state = config.stash.get(_STATE, None)
    if state is None or state.document is None:
        return
    terminalreporter.section("kbench summary")
    for line in _summary(state.document):
        terminalreporter.write_line(line)
    if state.stored is not None:
        terminalreporter.write_line(f"Run stored in {state.stored}")
    if state.error is not None:
        terminalreporter.write_line(f"Run NOT stored: {state.error}", red=True, bold=True)

"""Tests for kbench.pytest_plugin: the benchmark suites' options, fixtures and hooks,
run in inner pytest sessions (pytester)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kbench import data, distribute, profiles, record, results

pytest_plugins = ["pytester"]

PLUGIN = "kbench.pytest_plugin"
# How a user's benchmark folder enables the plugin, as benchmarks/conftest.py does.
PLUGIN_CONFTEST = f"pytest_plugins = [{PLUGIN!r}]\n"


def files_under(folder: Path) -> list[Path]:
    """Every file below ``folder``, temporary and hidden ones included."""
    return sorted(p for p in folder.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- the benchmark session
#
# The plugin runs in an inner pytest session (pytester) with fake benchmarks
# that time a no-op: the real hooks, pytest-benchmark and the store, no training.

FAKE_BENCHMARKS = """
import pytest

from kbench import measure, testing

@pytest.mark.parametrize("variant", ["base", "other"])
def test_fake(benchmark, variant):
    benchmark.pedantic(lambda: None, rounds=3, iterations=1)
    measure.write_record(benchmark, testing.fake_record(
        "", [1000.0, 1010.0, 990.0], comparison="fake", variant=variant, baseline="base"))
"""


@pytest.fixture(scope="module")
def plugin_imports():
    """Imports what inner sessions use before pytester's first snapshot of
    sys.modules: pytester drops the modules a test imported, and TensorFlow's and
    NumPy's extensions cannot be imported twice in a process. Hypothesis is here
    for time only: each inner session's hypothesis plugin imports it, which takes
    seconds (asserts rewritten) when it was dropped. The plugin itself is left to
    each session, which imports it afresh and rewrites its asserts, as pytest does
    for plugins; hooks in a test's conftest reach it with
    config.pluginmanager.get_plugin(PLUGIN)."""
    import hypothesis  # noqa: F401

    from kbench import data, fingerprint, report  # noqa: F401

    fingerprint.fingerprint()


@pytest.fixture
def inner(plugin_imports, pytester, monkeypatch):
    """pytester, for inner sessions that see none of the plugin's settings in the
    environment."""
    monkeypatch.delenv(results.STORE_ENV, raising=False)
    monkeypatch.delenv(profiles.PROFILE_ENV, raising=False)
    return pytester


@pytest.fixture
def session(inner):
    """Runs the plugin, enabled by a conftest, on fake benchmarks:
    session(*args, source=...) -> result."""
    pytester = inner
    pytester.makeconftest(PLUGIN_CONFTEST)

    def run(*args, source=FAKE_BENCHMARKS):
        pytester.makepyfile(test_fake=textwrap.dedent(source))
        return pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)

    return run


def stored_files(store: Path) -> list[Path]:
    return sorted(store.rglob("*.json")) if store.exists() else []


def test_session_stores_its_run_once_with_every_round_and_the_schema(session, pytester):
    result = session()
    result.assert_outcomes(passed=2)
    store = pytester.path / results.DEFAULT_STORE
    [path] = stored_files(store)
    run = results.read_run(path)
    assert path == results.run_path(store, run.fingerprint, run.datetime)
    assert set(run.results) == {"test_fake[base]", "test_fake[other]"}
    doc = json.loads(path.read_text())
    for bench in doc["benchmarks"]:
        assert bench["extra_info"][record.SCHEMA_FIELD] == record.RECORD_SCHEMA_VERSION
        assert len(bench["stats"]["data"]) == 3  # every round, not only the stats
    assert files_under(pytester.path / ".benchmarks") == []  # pytest-benchmark's own storage
    others = [p for p in pytester.path.rglob("*.json")  # HOME is here: skip .keras/, .cache/
              if p != path and not p.relative_to(pytester.path).parts[0].startswith(".")]
    assert others == []  # no second copy in another layout
    result.stdout.fnmatch_lines([f"Run stored in {path}"])


def test_session_summary_prints_each_comparison_group_then_where_the_run_went(session):
    result = session()
    result.stdout.fnmatch_lines(["*= kbench summary =*", "fake", "*base*", "*other*other/base*",
                                 "Run stored in *"])


def test_summary_hook_sees_the_run_the_session_stored(session, pytester):
    # pytest_sessionfinish keeps the document before the terminal reporter calls
    # pytest_terminal_summary, so the summary can be built from the stored run.
    pytester.makeconftest(PLUGIN_CONFTEST + textwrap.dedent(f"""
        from kbench import results

        def pytest_terminal_summary(terminalreporter, config):
            plugin = config.pluginmanager.get_plugin({PLUGIN!r})
            state = config.stash[plugin._STATE]
            run = results.run_from_json(state.document)
            stored = results.read_run(state.stored)
            terminalreporter.write_line(
                f"summary sees {{sorted(run.results)}}, stored {{sorted(stored.results)}}")
    """))
    session().stdout.fnmatch_lines([
        "summary sees ['test_fake[base]', 'test_fake[other]'], "
        "stored ['test_fake[base]', 'test_fake[other]']"])


def test_session_store_option_wins_over_the_environment(session, pytester, monkeypatch):
    monkeypatch.setenv(results.STORE_ENV, str(pytester.path / "from-env"))
    session().assert_outcomes(passed=2)
    assert len(stored_files(pytester.path / "from-env")) == 1
    session("--kbench-store", str(pytester.path / "from-option")).assert_outcomes(passed=2)
    assert len(stored_files(pytester.path / "from-option")) == 1
    assert len(stored_files(pytester.path / "from-env")) == 1
    assert not (pytester.path / results.DEFAULT_STORE).exists()


def test_session_honours_benchmark_json_and_save_and_still_stores_once(session, pytester):
    asked = pytester.path / "asked.json"
    storage = pytester.path / "pb-storage"
    store = pytester.path / "store"
    session("--kbench-store", str(store), "--benchmark-json", str(asked), "--benchmark-save",
            "named", "--benchmark-storage", f"file://{storage}").assert_outcomes(passed=2)
    [path] = stored_files(store)
    assert json.loads(path.read_text()) == json.loads(asked.read_text())
    [saved] = storage.rglob("*_named.json")
    assert results.read_run(saved).results.keys() == results.read_run(path).results.keys()


def test_stored_run_is_readable_by_pytest_benchmark_compare(session, pytester):
    session("--kbench-store", str(pytester.path / "store")).assert_outcomes(passed=2)
    [path] = stored_files(pytester.path / "store")
    # Run away from the inner session's conftest.py: the CLI imports ./conftest.py.
    done = subprocess.run([sys.executable, "-m", "pytest_benchmark", "compare", str(path)],
                          cwd=path.parent, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "test_fake[base]" in done.stdout and "test_fake[other]" in done.stdout


def test_a_run_that_cannot_be_stored_fails_the_session_and_says_why(session, pytester):
    result = session("--kbench-store", str(pytester.path / "store"), source="""
        def test_bad_samples(benchmark):
            benchmark.pedantic(lambda: None, rounds=3, iterations=1)
            benchmark.extra_info.update(samples_per_s="fast", batch_size=64)  # no record holds it
    """)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["no summary: *samples_per_s*'fast'*",
                                 "Run NOT stored: *samples_per_s*'fast'*"])
    assert stored_files(pytester.path / "store") == []


def test_a_store_that_is_a_file_is_a_usage_error(session, pytester):
    not_a_folder = pytester.path / "file"
    not_a_folder.write_text("")
    result = session("--kbench-store", str(not_a_folder))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{not_a_folder}*is a file, not a folder*"])


def test_a_session_without_benchmarks_stores_and_summarises_nothing(session, pytester):
    result = session("--kbench-store", str(pytester.path / "store"), "-k", "no_such_test")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert stored_files(pytester.path / "store") == []
    result.stdout.no_fnmatch_line("*kbench summary*")


# --------------------------------------------------------------------------- options

def test_help_lists_the_options_with_the_profiles_and_the_store_layout(session):
    result = session("--help")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([  # argparse wraps the help text at the terminal's width
        f"*--kbench-profile={{{','.join(profiles.PROFILES)}}}*",
        f"*benchmark profile (default: ${profiles.PROFILE_ENV} or*",
        "*--kbench-store=DIR*",
        "*DIR/<tf-version>/<machine-key>/<timestamp>.json*",
    ])


def test_an_unknown_profile_is_a_usage_error_naming_the_choices(session):
    result = session("--kbench-profile", "huge")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--kbench-profile: invalid choice: 'huge'*smoke*"])


# --------------------------------------------------------------------------- parametrization, devices

SIZED_BENCHMARK = """
import pytest

def test_sized(batch_size, family):
    pass

@pytest.mark.parametrize("family", ["own"])
def test_own_family(batch_size, family):
    pass
"""


def collected_ids(result) -> set[str]:
    return {line.partition("::")[2] for line in result.outlines if "::" in line}


def profile_ids(name: str) -> set[str]:
    """The profile's ids, and a test that parametrizes ``family`` itself keeping its own."""
    profile = profiles.get_profile(name)
    return ({f"test_sized[b{b}-{f}]" for b in profile.batch_sizes for f in profile.families}
            | {f"test_own_family[b{b}-own]" for b in profile.batch_sizes})


def test_collection_shows_the_profiles_batch_sizes_and_families(session, monkeypatch):
    def collected(*args):
        return collected_ids(session("--collect-only", "-q", *args, source=SIZED_BENCHMARK))

    assert collected() == profile_ids(profiles.DEFAULT_PROFILE)
    monkeypatch.setenv(profiles.PROFILE_ENV, "full")
    assert collected() == profile_ids("full")
    assert collected("--kbench-profile", "smoke") == profile_ids("smoke")  # the option wins


DATASET_BENCHMARK = """
def test_on(train_dataset, dataset_name, on_dataset):
    assert train_dataset.name == dataset_name
    print(f"{dataset_name} is labelled '{on_dataset}'")
"""


def test_the_profiles_datasets_parametrize_dataset_name_and_the_option_replaces_them(session):
    def collected(*args):
        return collected_ids(session("--collect-only", "-q", *args, source=DATASET_BENCHMARK))

    assert collected() == {f"test_on[{d}]" for d in profiles.FULL_DATASETS}
    assert collected("--kbench-profile", "smoke") == {"test_on[mnist_5k]"}
    assert collected("--kbench-dataset", "synthetic", "--kbench-dataset", "synthetic",
                     "--kbench-dataset", "mnist_5k") == {"test_on[synthetic]", "test_on[mnist_5k]"}
    bad = session("--kbench-dataset", "cifar10", source=DATASET_BENCHMARK)
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--kbench-dataset: invalid choice: 'cifar10'*fashion_mnist*"])


def test_train_dataset_loads_the_dataset_and_labels_all_but_the_bundled_one(session):
    result = session("-s", "--kbench-dataset", "mnist_5k", "--kbench-dataset", "synthetic",
                     source=DATASET_BENCHMARK)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*mnist_5k is labelled ''*", "*synthetic is labelled ' on "
                                 "synthetic'*"])


def test_a_dataset_not_available_offline_skips_saying_how_to_get_it(session, monkeypatch):
    monkeypatch.setattr(data, "local_source", lambda name, data_dir=None: None)
    result = session("-rs", "--kbench-dataset", "fashion_mnist", source=DATASET_BENCHMARK)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED *fashion_mnist is not available offline; to get it:*"
                                 "apt-get install dataset-fashion-mnist*"])


DEVICE_BENCHMARK = """
def test_on(device):
    assert device in ("/CPU:0", "/GPU:0")
"""


def test_gpu_cases_skip_with_the_reason_where_tensorflow_sees_no_gpu(session, monkeypatch):
    monkeypatch.setattr(distribute, "gpu_devices", lambda: [])
    result = session("-rs", source=DEVICE_BENCHMARK)
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED *no GPU visible to TensorFlow on this machine"])


def test_gpu_cases_run_where_tensorflow_sees_a_gpu(session, monkeypatch):
    monkeypatch.setattr(distribute, "gpu_devices", lambda: ["/device:GPU:0"])
    session(source=DEVICE_BENCHMARK).assert_outcomes(passed=2)


# --------------------------------------------------------------------------- a user's benchmark folder

@pytest.mark.parametrize("enable", ["conftest", "-p"])
def test_plugin_runs_a_users_own_benchmark_folder(inner, enable):
    pytester = inner
    folder = pytester.mkdir("perf")
    if enable == "conftest":
        (folder / "conftest.py").write_text(PLUGIN_CONFTEST)
    (folder / "test_mine.py").write_text(textwrap.dedent(FAKE_BENCHMARKS))
    store = pytester.path / "store"
    args = ["-p", PLUGIN] if enable == "-p" else []
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *args, "perf",
                                          "--kbench-store", str(store))
    result.assert_outcomes(passed=2)
    [path] = stored_files(store)
    assert set(results.read_run(path).results) == {"test_fake[base]", "test_fake[other]"}
    result.stdout.fnmatch_lines(["*= kbench summary =*", "fake", f"Run stored in {path}"])


# --------------------------------------------------------------------------- lockstep groups
#
# Fake variants (kbench.testing.FakeVariant): the plugin's grouping, replay and
# storage, with round times known in advance.

LOCKSTEP_BENCHMARKS = """
import pytest

from kbench import testing

SECONDS = {"fit": [0.2, 0.4], "custom": [0.1, 0.2], "xla": [0.5]}
BUILT = []


@pytest.mark.parametrize("loop", ["fit", "custom", "xla"])
@pytest.mark.parametrize("size", [1, 2])
def test_group(lockstep_group, size, loop):
    def variant(loop):
        BUILT.append((size, loop))
        return testing.FakeVariant(loop, SECONDS[loop])

    record = lockstep_group(variant, vary="loop", comparison=f"loops {size}", baseline="fit")
    assert record.variant == loop and record.lockstep == f"loops {size}"
    assert loop in lockstep_group.records and "fit" in lockstep_group.records


def test_each_group_was_built_once():
    assert sorted(BUILT) == sorted((s, v) for s in (1, 2) for v in ("fit", "custom", "xla"))
"""


def test_a_lockstep_group_is_measured_once_and_each_variant_keeps_its_own_entry(session, pytester):
    result = session("--kbench-profile", "smoke", source=LOCKSTEP_BENCHMARKS)
    result.assert_outcomes(passed=7, skipped=6)  # the GPU cases skip here
    [path] = stored_files(pytester.path / results.DEFAULT_STORE)
    doc = json.loads(path.read_text())
    entries = {b["name"]: b for b in doc["benchmarks"]}
    assert len(entries) == 6
    fit, custom = entries["test_group[cpu-1-fit]"], entries["test_group[cpu-1-custom]"]
    # pytest-benchmark's own stats are the rounds the variant ran, replayed.
    rounds = len(fit["stats"]["data"])
    assert rounds >= profiles.get_profile("smoke").rounds
    assert fit["stats"]["data"] == [[0.2, 0.4][i % 2] for i in range(rounds)]
    assert custom["stats"]["data"] == [[0.1, 0.2][i % 2] for i in range(rounds)]
    assert fit["group"] == "loops 1"
    run = results.read_run(path)
    ratio = run.results["test_group[cpu-1-custom]"]
    assert ratio.lockstep == "loops 1"
    result.stdout.fnmatch_lines(["loops 1", "*custom*custom/fit 2.00x*paired over*"])


def test_a_lockstep_group_of_the_selected_tests_only(session, pytester):
    result = session("--kbench-profile", "smoke", "-k", "cpu-1-fit or cpu-1-custom",
                     source=LOCKSTEP_BENCHMARKS)
    result.assert_outcomes(passed=2)
    [path] = stored_files(pytester.path / results.DEFAULT_STORE)
    run = results.read_run(path)
    assert set(run.results) == {"test_group[cpu-1-fit]", "test_group[cpu-1-custom]"}
    assert {r.variant for r in run.results.values()} == {"fit", "custom"}  # xla not built


FAILING_GROUP = """
import pytest

from kbench import testing


@pytest.mark.parametrize("side", ["a", "b"])
def test_group(lockstep_group, side):
    def variant(side):
        return testing.FakeVariant(side, [0.1], fail_in_round=2 if side == "b" else None)

    lockstep_group(variant, vary="side", comparison="broken", baseline="a")
"""


def test_a_failing_group_fails_every_member_naming_the_variant(session):
    result = session("--kbench-profile", "smoke", source=FAILING_GROUP)
    result.assert_outcomes(failed=2, skipped=2)
    result.stdout.fnmatch_lines(["*GroupFailure: comparison group 'broken' failed: "
                                 "LockstepError: variant 'b' failed in its round 2*"])


def test_vary_must_name_a_parameter_of_the_test(session):
    source = FAILING_GROUP.replace('vary="side"', 'vary="loop"')
    result = session("--kbench-profile", "smoke", source=source)
    result.assert_outcomes(failed=2, skipped=2)  # the GPU cases skip first
    assert ("lockstep_group(vary=('loop',)) names ['loop'], which the test is not "
            "parametrized by") in result.stdout.str()


GROUP_TIME = """
def test_group_time(profile):
    print(f"group_s={profile.group_s} target={profile.target_ci}")
"""


def test_group_time_option_overrides_the_profiles_and_refuses_a_bad_value(session):
    result = session("--kbench-profile", "smoke", "--kbench-group-s", "30", "-s",
                     source=GROUP_TIME)
    result.stdout.fnmatch_lines(["*group_s=30.0 target=0.1*"])
    bad = session("--kbench-profile", "smoke", "--kbench-group-s", "-1", source=GROUP_TIME)
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "--kbench-group-s -1.0: group_s must be" in bad.stderr.str() + bad.stdout.str()


def test_an_unknown_profile_in_the_environment_is_a_usage_error(session, monkeypatch):
    monkeypatch.setenv(profiles.PROFILE_ENV, "huge")
    result = session(source=GROUP_TIME)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"${profiles.PROFILE_ENV}='huge'" in result.stderr.str() + result.stdout.str()


CLASHING_LABELS = """
import pytest

from kbench import testing


@pytest.mark.parametrize("side", ["a", "b"])
def test_one(lockstep_group, side):
    lockstep_group(lambda side: testing.FakeVariant(side, [0.1]), vary="side",
                   comparison="same", baseline="a")


@pytest.mark.parametrize("side", ["a", "b"])
def test_two(lockstep_group, side):
    lockstep_group(lambda side: testing.FakeVariant(side, [0.1]), vary="side",
                   comparison="same", baseline="a")
"""


def test_two_groups_with_one_comparison_label_are_refused_naming_it(session):
    result = session("--kbench-profile", "smoke", "-k", "cpu", source=CLASHING_LABELS)
    result.assert_outcomes(passed=2, failed=2)
    assert "comparison 'same' was already measured as the group of" in result.stdout.str()

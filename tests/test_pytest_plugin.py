"""Tests for kbench.pytest_plugin: the benchmark suites' options, fixtures and hooks,
run in inner pytest sessions (pytester)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kbench import results

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]


def files_under(folder: Path) -> list[Path]:
    """Every file below ``folder``, temporary and hidden ones included."""
    return sorted(p for p in folder.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- the benchmark session
#
# benchmarks/conftest.py runs in an inner pytest session (pytester) with fake
# benchmarks that time a no-op: the real hooks, pytest-benchmark and the store,
# no training.

CONFTEST = REPO / "benchmarks" / "conftest.py"
FAKE_BENCHMARKS = """
import pytest

@pytest.mark.parametrize("variant", ["base", "other"])
def test_fake(benchmark, record, variant):
    benchmark.pedantic(lambda: None, rounds=3, iterations=1)
    benchmark.extra_info.update(samples_per_s=[1000.0, 1010.0, 990.0], batch_size=64,
                                device="/CPU:0", comparison="fake", variant=variant,
                                baseline="base")
    record()
"""


@pytest.fixture(scope="module")
def conftest_imports():
    """Imports what the conftest and its hooks use (TensorFlow among it) before any
    pytester session: pytester drops the modules a session imported first, and
    TensorFlow's and NumPy's extensions cannot be imported twice in a process."""
    from kbench import fingerprint, measure, report  # noqa: F401

    fingerprint.fingerprint()


@pytest.fixture
def session(conftest_imports, pytester, monkeypatch):
    """Runs the benchmark conftest on fake benchmarks: session(*args, source=...) -> result."""
    monkeypatch.delenv(results.STORE_ENV, raising=False)
    pytester.makeconftest(CONFTEST.read_text())

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
        assert bench["extra_info"][results.SCHEMA_FIELD] == results.RESULT_SCHEMA_VERSION
        assert len(bench["stats"]["data"]) == 3  # every round, not only the stats
    assert files_under(pytester.path / ".benchmarks") == []  # pytest-benchmark's own storage
    others = [p for p in pytester.path.rglob("*.json")  # HOME is here: skip .keras/, .cache/
              if p != path and not p.relative_to(pytester.path).parts[0].startswith(".")]
    assert others == []  # no second copy in another layout
    result.stdout.fnmatch_lines([f"Run stored in {path}"])


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
    # Run from the store: the CLI loads ./conftest.py, and this one imports TensorFlow.
    done = subprocess.run([sys.executable, "-m", "pytest_benchmark", "compare", str(path)],
                          cwd=path.parent, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "test_fake[base]" in done.stdout and "test_fake[other]" in done.stdout


def test_a_run_that_cannot_be_stored_fails_the_session_and_says_why(session, pytester):
    result = session("--kbench-store", str(pytester.path / "store"), source="""
        def test_bad_samples(benchmark, record):
            benchmark.pedantic(lambda: None, rounds=3, iterations=1)
            benchmark.extra_info["samples_per_s"] = "fast"
    """)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["Run NOT stored: *samples_per_s*'fast'*"])
    assert stored_files(pytester.path / "store") == []


def test_a_store_that_is_a_file_is_a_usage_error(session, pytester):
    not_a_folder = pytester.path / "file"
    not_a_folder.write_text("")
    result = session("--kbench-store", str(not_a_folder))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{not_a_folder}*is a file, not a folder*"])


def test_a_session_without_benchmarks_stores_nothing(session, pytester):
    result = session("--kbench-store", str(pytester.path / "store"), "-k", "no_such_test")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert stored_files(pytester.path / "store") == []

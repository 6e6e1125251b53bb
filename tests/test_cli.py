"""The kbench command (kbench.cli): the app, its help, and bad arguments and input.

Every command is driven through typer's CliRunner. Stored runs are small fake
pytest-benchmark documents (kbench.testing); the benchmark suite is never
really run: ``bench`` and ``ab`` get a FakeSuite as their runner through the
context object. The helpers here (``invoke``, ``assert_bad_input``,
``write_run``, the ``two_runs`` fixture) serve the other test_cli_* modules,
which mirror kbench/cli's command modules.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kbench import cli, testing
from kbench.cli._common import (QUIET_TF_LOG_LEVEL, TF_LOAD_NOTICE, TF_LOG_LEVEL_ENV,
                                dropping_stderr_lines, parse_fraction, quiet_tensorflow)
from kbench.record import Pooling
from test_ab import KEYS

COMMANDS = ("list", "env", "run", "data", "bench", "compare", "check", "gate", "ab", "report",
            "export")
# Rounds per side in the stored runs below: above stats.min_samples_for(0.01) = 5,
# so a 20% slowdown with 2% noise is significant.
N_ROUNDS = 7
BASE = 30000.0


def invoke(*args: str, env: dict | None = None, **extra):
    """Run the app in this process. It sets TF_CPP_MIN_LOG_LEVEL (unless --verbose);
    CliRunner restores the variables named in ``env`` afterwards, so no test leaks it."""
    env = {TF_LOG_LEVEL_ENV: os.environ.get(TF_LOG_LEVEL_ENV), **(env or {})}
    return CliRunner().invoke(cli.app, list(map(str, args)), prog_name="kbench", env=env, **extra)


def assert_bad_input(result, *fragments: str) -> None:
    """Exit 2, one line on stderr naming what was wrong, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.output


def write_run(path: Path, factor: float, *, when: str, seed: int = 0, keys=KEYS,
              tensorflow: str = "2.21.0", sessions: bool = False) -> Path:
    """A run file whose benchmarks run at ``factor`` x the base throughput: the rounds
    of one session, or (``sessions``) one median per session, pooled as kbench ab
    --sessions pools them."""
    samples = {key: testing.draw_samples(BASE * factor, N_ROUNDS, seed=seed + i)
               for i, key in enumerate(keys)}
    pooling = (Pooling(sources=tuple(f"s{i}" for i in range(N_ROUNDS)), unit="session")
               if sessions else None)
    run = testing.fake_run(samples, datetime=when, tf_version=tensorflow, pooling=pooling)
    return testing.write_run(path, run)


@pytest.fixture
def two_runs(tmp_path) -> tuple[Path, Path, Path]:
    """A baseline, a candidate at the same speed, and a candidate 20% slower."""
    base = write_run(tmp_path / "base.json", 1.0, when="2026-11-23T12:00:00+00:00", seed=0)
    same = write_run(tmp_path / "same.json", 1.0, when="2026-11-23T12:01:00+00:00", seed=10)
    slow = write_run(tmp_path / "slow.json", 0.8, when="2026-11-23T12:02:00+00:00", seed=20)
    return base, same, slow


# --------------------------------------------------------------------------- help


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_command_has_help(command):
    result = invoke(*([command] if command else []), "--help")
    assert result.exit_code == 0, result.output
    assert f"Usage: kbench{' ' + command if command else ''}" in result.stdout


def test_no_command_shows_the_commands_in_order():
    result = invoke()
    assert result.exit_code == 2
    listed = [line.split()[1] for line in result.output.splitlines()
              if len(line.split()) > 1 and line.split()[1] in COMMANDS]
    assert listed == list(COMMANDS)


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("args, fragments", [
    (["frob"], ["No such command 'frob'"]),
    (["list", "--family", "rnn"], ["'--family'", "'rnn'"]),
    (["list", "--precision", "fp8"], ["'--precision'", "'fp8'"]),
    (["run", "mlp-functional-fit"], ["'mlp-functional-fit'"]),
    (["run", "mlp-functional-fit-function-fp64"], ["'fp64'"]),
    (["run", "mlp-functional-fit-function-fp32", "--epochs", "0"], ["'--epochs'", "got 0"]),
    (["run", "mlp-functional-fit-function-fp32", "--batch-size", "x"], ["'--batch-size'", "'x'"]),
    (["run", "mlp-functional-fit-function-fp32", "--epochs", "1.5"],
     ["'--epochs'", "expected an integer, got '1.5'"]),
    (["bench", "--timeout", "0.5"], ["'--timeout'", ">= 1, got 0.5"]),
    (["run", "mlp-functional-fit-function-fp32", "--dataset", "cifar"], ["'cifar'"]),
    (["gate", "--candidate", "x.json"], ["Missing option '--baseline'"]),
    (["export", "--format", "csv"], ["'--format'", "'csv'"]),
    (["compare", "--alpha", "1.5", "a.json", "b.json"],
     ["'--alpha'", "strictly between 0 and 1, got 1.5"]),
    (["gate", "--baseline", "a", "--candidate", "b", "--alpha", "x"],
     ["'--alpha'", "expected a number, got 'x'"]),
    (["bench", "--timeout", "nan"], ["'--timeout'", "got nan"]),
    (["compare", "--min-change", "5", "a.json", "b.json"], ["'--min-change'", "'5'"]),
    (["run", "mlp-functional-fit-function-fp32", "--dataset", "mnist_5k", "--data-dir", "."],
     ["--data-dir only applies to the datasets mnist, fashion_mnist, not to 'mnist_5k'"]),
    (["run", "mlp-functional-fit-function-fp32", "--dataset", "synthetic", "--data-dir", "."],
     ["not to 'synthetic'"]),
    (["data", "cifar10"], ["'cifar10'"]),
    (["data", "mnist", "synthetic", "--data-dir", "."], ["not to 'synthetic'"]),
    (["--loud", "list"], ["No such option: --loud"]),
])
def test_bad_arguments_exit_2_with_a_one_line_reason(args, fragments):
    assert_bad_input(invoke(*args), *fragments)


@pytest.mark.parametrize("value", ["10", "1.5", "100%", "0%", "-5%", "ten", ""])
def test_gate_rejects_a_max_slowdown_that_is_neither_a_percentage_nor_a_fraction(two_runs, value):
    base, same, _ = two_runs
    result = invoke("gate", "--baseline", base, "--candidate", same, "--max-slowdown", value)
    assert_bad_input(result, "'--max-slowdown'", f"got {value!r}")


@pytest.mark.parametrize("text, expected", [("10%", 0.10), ("0.10", 0.10), (" 2.5% ", 0.025),
                                            (".2", 0.2), ("99.5%", 0.995)])
def test_parse_fraction_accepts_percentages_and_fractions(text, expected):
    assert parse_fraction(text, "--x") == pytest.approx(expected)


def test_parse_fraction_allows_zero_only_where_asked():
    assert parse_fraction("0%", "--min-change", allow_zero=True) == 0.0


# --------------------------------------------------------------------------- bad input


def test_missing_files_exit_2_naming_them(tmp_path, two_runs):
    base, same, _ = two_runs
    missing = tmp_path / "nope.json"
    assert_bad_input(invoke("gate", "--baseline", missing, "--candidate", same), str(missing))
    assert_bad_input(invoke("compare", base, missing), f"no such file or folder: '{missing}'")
    assert_bad_input(invoke("compare", base, tmp_path / "x*" / "*.json"), "no files match")
    assert_bad_input(invoke("gate", "--baseline", base, "--candidate", same,
                            "--policy", tmp_path / "policy.toml"), "no such policy file")
    assert_bad_input(invoke("compare", "--store", tmp_path / "empty"), "does not exist")


def test_an_unreadable_named_run_file_exits_2_with_the_reason(tmp_path, two_runs):
    base, _, _ = two_runs
    broken = tmp_path / "broken.json"
    text = base.read_text()
    broken.write_text(text[:text.index(", ", 200) + 1])  # cut after a value: it ends early
    assert_bad_input(invoke("compare", base, broken), str(broken), "truncated JSON")


# --------------------------------------------------------------------------- quiet TensorFlow

# What TensorFlow 2.21 printed on stderr when `kbench env` imported it, before
# kbench quietened it (one of each kind; the first three twice).
TF_START_UP_LINES = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    "I0000 00:00:1796245389.838424    2672 port.cc:153] oneDNN custom operations are on. You may "
    "see slightly different numerical results due to floating-point round-off errors from "
    "different computation orders. To turn them off, set the environment variable "
    "`TF_ENABLE_ONEDNN_OPTS=0`.\n",
    "I0000 00:00:1796245389.842745    2672 cudart_stub.cc:31] Could not find cuda drivers on your "
    "machine, GPU will not be used.\n",
    "I0000 00:00:1796245390.936602    2672 cpu_feature_guard.cc:227] This TensorFlow binary is "
    "optimized to use available CPU instructions in performance-critical operations.\n",
    "E0000 00:00:1796245401.766920    2672 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
    "CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n",
)


def test_the_load_notices_are_the_banner_and_info_or_warning_lines_only():
    banner, onednn, cuda, cpu_guard, cu_init = TF_START_UP_LINES
    assert all(TF_LOAD_NOTICE.match(line) for line in (banner, onednn, cuda, cpu_guard))
    assert not TF_LOAD_NOTICE.match(cu_init)  # an ERROR line: TF_CPP_MIN_LOG_LEVEL=3 hides it
    for kept in ("Traceback (most recent call last):\n", "kbench: error: x\n",
                 "UserWarning: I0000 00:00:1.0 1 a.cc:1] quoted\n", "W0000 at start of a sentence\n"):
        assert not TF_LOAD_NOTICE.match(kept), kept


def test_dropping_stderr_lines_holds_back_fd_2_and_writes_back_the_rest(capfd):
    with dropping_stderr_lines(TF_LOAD_NOTICE):
        for line in (*TF_START_UP_LINES, "a real problem\n"):
            os.write(2, line.encode())  # as C++ code writes: past sys.stderr
    err = capfd.readouterr().err
    assert err == TF_START_UP_LINES[-1] + "a real problem\n"


def test_dropping_stderr_lines_restores_fd_2_when_the_block_raises(capfd):
    with pytest.raises(ImportError, match="no tensorflow"):
        with dropping_stderr_lines(TF_LOAD_NOTICE):
            os.write(2, TF_START_UP_LINES[0].encode() + b"said before failing\n")
            raise ImportError("no tensorflow")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "said before failing\nafter\n"


def test_quiet_tensorflow_sets_the_level_unless_the_user_did():
    environ = {}
    quiet_tensorflow(environ)
    assert environ == {TF_LOG_LEVEL_ENV: QUIET_TF_LOG_LEVEL} == {"TF_CPP_MIN_LOG_LEVEL": "3"}
    environ = {TF_LOG_LEVEL_ENV: "0"}
    quiet_tensorflow(environ)
    assert environ == {TF_LOG_LEVEL_ENV: "0"}


@pytest.mark.parametrize("args, user_level, expected", [
    ([], None, QUIET_TF_LOG_LEVEL),
    ([], "1", "1"),
    (["--verbose"], None, None),
])
def test_the_app_sets_the_log_level_that_env_then_records(args, user_level, expected):
    before = os.environ.get(TF_LOG_LEVEL_ENV)
    result = invoke(*args, "env", "--json", env={TF_LOG_LEVEL_ENV: user_level})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["env"][TF_LOG_LEVEL_ENV] == expected
    assert os.environ.get(TF_LOG_LEVEL_ENV) == before  # invoke restores it


def test_a_command_that_imports_tensorflow_prints_none_of_its_start_up_lines():
    """The one subprocess test: TensorFlow is imported once per process."""
    env = {k: v for k, v in os.environ.items() if k != TF_LOG_LEVEL_ENV}
    done = subprocess.run([sys.executable, "-m", "kbench.cli", "env"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Machine: ")
    assert f"{TF_LOG_LEVEL_ENV}={QUIET_TF_LOG_LEVEL}" in done.stdout
    lines = done.stderr.splitlines(True)
    assert not [line for line in lines if TF_LOAD_NOTICE.match(line)], done.stderr
    assert not re.search(r"cuInit|cpu_feature_guard|cuda drivers|oneDNN", done.stderr), done.stderr

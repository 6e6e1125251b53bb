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
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kbench import cli, testing
from kbench.cli._common import parse_fraction
from kbench.record import Pooling
from test_ab import KEYS

COMMANDS = ("list", "env", "run", "bench", "compare", "check", "gate", "ab", "report",
            "export")
# Rounds per side in the stored runs below: above stats.min_samples_for(0.01) = 5,
# so a 20% slowdown with 2% noise is significant.
N_ROUNDS = 7
BASE = 30000.0


def invoke(*args: str, **extra):
    return CliRunner().invoke(cli.app, list(map(str, args)), prog_name="kbench", **extra)


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
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(testing.run_document(run)))
    return path


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

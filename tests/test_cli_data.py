"""``kbench data`` (kbench/cli/data.py): where each dataset loads from, its size and checksums."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kbench.data import IDX_FILES, save_idx_folder, sources
from kbench.testing import tiny_dataset
from kbench.workflows import DATASETS
from test_cli import assert_bad_input, invoke
from test_data_checksums import publish
from test_data_sources import make_offline


@pytest.fixture
def offline(monkeypatch, tmp_path) -> Path:
    return make_offline(monkeypatch, tmp_path)


def as_json(*args) -> dict[str, dict]:
    result = invoke("data", "--json", *args)
    assert result.exit_code == 0, result.output
    return {status["name"]: status for status in json.loads(result.stdout)}


def test_json_has_one_status_per_dataset_in_order(offline):
    result = invoke("data", "--json")
    assert result.exit_code == 0, result.output
    statuses = json.loads(result.stdout)
    assert [s["name"] for s in statuses] == list(DATASETS)
    by_name = {s["name"]: s for s in statuses}
    assert (by_name["mnist_5k"]["source"], by_name["mnist_5k"]["status"]) == ("bundled", "ok")
    assert (by_name["synthetic"]["source"], by_name["synthetic"]["status"]) == ("generated",
                                                                                 "not checked")
    for name in ("mnist", "fashion_mnist"):
        assert (by_name[name]["source"], by_name[name]["place"], by_name[name]["status"]) == (
            "Keras download", None, "missing")
    assert by_name["fashion_mnist"]["hints"][0] == "apt-get install dataset-fashion-mnist (Debian/Ubuntu)"
    assert by_name["mnist"]["hints"][0] == "no Debian/Ubuntu package ships mnist"


def test_the_table_shows_source_path_size_status_and_how_to_get_it(offline, monkeypatch):
    system = save_idx_folder(tiny_dataset(n_train=30, n_test=10), sources.SYSTEM_FASHION_MNIST_FOLDER)
    publish(monkeypatch, "fashion_mnist", system)
    result = invoke("data", env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines()
            if line.startswith("│") and line.split("│")[1].strip() in DATASETS}
    assert list(rows) == list(DATASETS)
    assert "system package" in rows["fashion_mnist"] and str(system) in rows["fashion_mnist"]
    assert " kB " in rows["fashion_mnist"] and " ok " in rows["fashion_mnist"]
    assert "Keras download" in rows["mnist"] and "missing" in rows["mnist"]
    assert "no Debian/Ubuntu package ships mnist" in rows["mnist"]
    assert "bundled" in rows["mnist_5k"] and "817.8 kB" in rows["mnist_5k"]
    assert "keras.datasets.mnist.load_data()" in result.stdout


def test_data_dir_applies_to_the_idx_datasets_only(offline, tmp_path):
    folder = save_idx_folder(tiny_dataset(n_train=30, n_test=10), tmp_path / "mine")
    statuses = as_json("--data-dir", folder)
    for name in ("mnist", "fashion_mnist"):
        assert (statuses[name]["source"], statuses[name]["place"]) == ("data_dir", str(folder))
        # the folder is not the published data
        assert statuses[name]["status"] == "mismatch"
    assert statuses["mnist_5k"]["source"] == "bundled"
    assert list(as_json("mnist", "--data-dir", folder)) == ["mnist"]


def test_a_mismatch_names_the_file_and_both_hashes(offline, tmp_path, monkeypatch):
    folder = save_idx_folder(tiny_dataset(n_train=30, n_test=10), tmp_path / "mine")
    published = publish(monkeypatch, "mnist", folder)
    labels = folder / IDX_FILES["train_labels"]
    save_idx_folder(tiny_dataset(seed=1, n_train=30, n_test=10), tmp_path / "other")
    labels.write_bytes((tmp_path / "other" / labels.name).read_bytes())
    [check] = [c for c in as_json("mnist", "--data-dir", folder)["mnist"]["files"]
               if c["status"] != "ok"]
    assert check["path"] == str(labels)
    assert check["status"] == "mismatch"
    assert published[labels.name].content in check["detail"]
    result = invoke("data", "mnist", "--data-dir", folder, env={"COLUMNS": "400"})
    assert f"{labels.name}: {check['detail']}" in result.stdout


def test_a_data_dir_that_is_wrong_is_reported_missing_naming_it(offline, tmp_path):
    absent = tmp_path / "absent"
    status = as_json("fashion_mnist", "--data-dir", absent)["fashion_mnist"]
    assert (status["source"], status["status"]) == ("data_dir", "missing")
    assert status["files"] == [{"path": str(absent), "status": "missing",
                                "detail": "does not exist or is not a folder"}]
    assert "apt-get install dataset-fashion-mnist (Debian/Ubuntu)" in status["hints"]


@pytest.mark.parametrize("args, fragments", [
    (["mnist_5k", "--data-dir", "."], ["--data-dir only applies to the datasets mnist, "
                                       "fashion_mnist, not to 'mnist_5k'"]),
    (["cifar10"], ["'cifar10'", "mnist_5k"]),
    (["--json", "--data-dir"], ["'--data-dir' requires an argument"]),
])
def test_bad_arguments_exit_2_naming_them(args, fragments):
    assert_bad_input(invoke("data", *args), *fragments)


def test_kbench_data_does_not_import_tensorflow():
    code = ("import sys; from typer.testing import CliRunner; from kbench import cli; "
            "result = CliRunner().invoke(cli.app, ['data', '--json', 'mnist_5k']); "
            "assert result.exit_code == 0, result.output; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)

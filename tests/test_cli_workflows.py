"""``kbench list``, ``env`` and ``run`` (kbench/cli/workflows.py)."""

from __future__ import annotations

import json
import re
import types

import numpy as np
import pytest

from kbench import fingerprint, workflows
from kbench.data import IDX_FILES, save_idx_folder
from kbench.testing import tiny_dataset
from test_cli import assert_bad_input, invoke

# Test accuracy of the run below (mlp-functional-custom-function-fp32 on synthetic
# data, 1 epoch, batch 128), measured with kbench.training.train on that spec on the
# project's 2-core CPU, TF 2.21 / Keras 3, seeds 0-4: 0.986-0.997; with weights that
# barely move (learning rate 1e-12) it scores 0.075 (chance is 0.1). On the 1,000 test
# examples (data.SYNTHETIC_TEST_SIZE) one standard error near 0.99 is 0.004, so the
# floor sits 0.036 (about 10 standard errors) below the lowest seed, and far above
# what an untrained model scores.
RUN_ACCURACY_FLOOR = 0.95


def names(result) -> set[str]:
    assert result.exit_code == 0, result.output
    return set(result.stdout.split())


# --------------------------------------------------------------------------- list


def test_list_shows_all_108_combinations_and_the_tutorials_in_a_table():
    result = invoke("list")
    assert result.exit_code == 0
    assert f"{108 + len(workflows.TUTORIAL_WORKFLOWS)} workflow(s)" in result.stdout
    assert "cnn-subclassed-custom-xla-bf16" in result.stdout
    assert "reference (5 epochs)" in result.stdout
    assert "tutorial-fashion-classifier" in result.stdout


def test_list_tutorials_shows_only_the_tutorials_with_their_data_and_settings():
    assert names(invoke("list", "--names", "--tutorials")) == set(workflows.TUTORIAL_WORKFLOWS)
    assert names(invoke("list", "--names", "--tutorials", "--family", "cnn")) == {
        "tutorial-mnist-cnn-tfdata", "tutorial-mnist-cnn-callbacks"}
    table = invoke("list", "--tutorials", "--family", "mlp").stdout
    assert "tutorial: fashion_mnist, numpy input, onehot labels, batch 32, 20 epochs" in table


def test_list_refuses_reference_and_tutorials_together():
    assert_bad_input(invoke("list", "--reference", "--tutorials"), "--reference", "--tutorials")


def test_list_filters_by_every_name_field():
    found = names(invoke("list", "--names", "--family", "cnn", "--loop", "custom",
                         "--precision", "bf16", "--execution", "xla", "--execution", "eager"))
    assert found == {f"cnn-{style}-custom-{execution}-bf16"
                     for style in ("sequential", "functional", "subclassed")
                     for execution in ("xla", "eager")}
    assert names(invoke("list", "--names", "--style", "subclassed", "--precision", "float32",
                        "--family", "mlp", "--loop", "fit")) == {
        "mlp-subclassed-fit-eager-fp32", "mlp-subclassed-fit-function-fp32",
        "mlp-subclassed-fit-xla-fp32"}


def test_list_reference_shows_only_the_reference_workflows():
    assert names(invoke("list", "--names", "--reference")) == set(workflows.REFERENCE_WORKFLOWS)
    table = invoke("list", "--reference", "--family", "cnn").stdout
    assert "cnn-functional-fit-function-fp32" in table and "mlp-" not in table


# --------------------------------------------------------------------------- env


def test_env_json_is_a_valid_fingerprint():
    result = invoke("env", "--json")
    assert result.exit_code == 0, result.output
    fp = json.loads(result.stdout)
    fingerprint.validate(fp)
    assert fp["machine_key"] == fingerprint.machine_key(fp)


def test_env_describes_the_machine():
    result = invoke("env")
    assert result.exit_code == 0
    assert result.stdout.startswith("Machine: ")
    assert "TensorFlow " in result.stdout


# --------------------------------------------------------------------------- run


def test_run_trains_one_epoch_and_prints_metrics_and_tensorboard_logs(tmp_path):
    from kbench import data  # imports TensorFlow

    logs = tmp_path / "tb"
    result = invoke("run", "mlp-functional-custom-function-fp32", "--dataset", "synthetic",
                    "--epochs", "1", "--batch-size", "128", "--tensorboard", logs)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "on synthetic: 1 epoch(s), batch size 128" in out
    [epoch_line] = [line for line in out.splitlines() if line.startswith("epoch 1: ")]
    epoch = dict(re.findall(r"(\w+) ([\d.]+)", epoch_line.split(": ", 1)[1]))
    metrics = dict(line.split(" ", 1) for line in out.splitlines()
                   if line.startswith(("test_accuracy ", "epochs_run ", "steps ")))
    # The engine evaluates the test split after each epoch (val_*) and after training
    # (test_*): with the same weights the two must agree, and the model must have learnt.
    assert metrics["test_accuracy"] == epoch["val_accuracy"]
    assert float(metrics["test_accuracy"]) >= RUN_ACCURACY_FLOOR, out
    assert metrics["epochs_run"] == "1"
    assert metrics["steps"] == str(-(-data.SYNTHETIC_TRAIN_SIZE // 128))
    assert list(logs.rglob("events.out.tfevents.*"))


def test_run_output_dir_keeps_the_workflows_checkpoint_and_logs(tmp_path):
    out = tmp_path / "run"
    result = invoke("run", "tutorial-fashion-callbacks", "--dataset", "synthetic", "--epochs",
                    "1", "--output-dir", out)
    assert result.exit_code == 0, result.output
    assert f"the workflow's checkpoint and logs: {out}" in result.stdout
    assert (out / "best.keras").is_file()
    assert list((out / "logs").rglob("events.out.tfevents.*"))


def test_run_output_dir_says_when_the_workflow_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr("kbench.training.train", FakeTrain())
    result = invoke("run", "mlp-functional-fit-function-fp32", "--dataset", "synthetic",
                    "--output-dir", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "callbacks write no files" in result.stdout


def test_run_output_dir_refuses_a_file_and_a_folder_holding_a_checkpoint(tmp_path):
    file = tmp_path / "a-file"
    file.write_text("mine")
    assert_bad_input(invoke("run", "tutorial-fashion-callbacks", "--dataset", "synthetic",
                            "--output-dir", file), "--output-dir must be a folder", str(file))
    folder = tmp_path / "earlier"
    folder.mkdir()
    (folder / "best.keras").write_text("an earlier run's checkpoint")
    assert_bad_input(invoke("run", "tutorial-fashion-callbacks", "--dataset", "synthetic",
                            "--output-dir", folder), "already holds a checkpoint",
                     str(folder / "best.keras"))
    assert (folder / "best.keras").read_text() == "an earlier run's checkpoint"


class FakeTrain:
    """Stands in for kbench.training.train: records what it was given, trains nothing."""

    def __init__(self):
        self.calls = []

    def __call__(self, spec, *, dataset=None, callbacks=(), output_dir=None):
        self.calls.append((spec, dataset))
        return types.SimpleNamespace(history={"loss": [1.0]}, test_accuracy=0.5, test_loss=1.0,
                                     epochs_run=1, steps=1, samples_seen=30, wall_time_s=1.0)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_run_data_dir_trains_on_the_folder_it_names(tmp_path, monkeypatch, name):
    from kbench import training  # imports TensorFlow

    fake = FakeTrain()
    monkeypatch.setattr(training, "train", fake)
    small = tiny_dataset(n_train=30, n_test=10)
    folder = save_idx_folder(small, tmp_path / "idx", compress=name == "mnist")
    result = invoke("run", "mlp-functional-fit-function-fp32", "--dataset", name,
                    "--data-dir", folder)
    assert result.exit_code == 0, result.output
    assert f"on {name} from {folder}: " in result.stdout
    [(spec, dataset)] = fake.calls
    assert spec.dataset == name
    np.testing.assert_equal(vars(dataset), vars(small) | {"name": name})


def test_run_data_dir_that_is_wrong_exits_2_naming_it(tmp_path):
    absent = tmp_path / "absent"
    assert_bad_input(invoke("run", "mlp-functional-fit-function-fp32", "--dataset", "mnist",
                            "--data-dir", absent),
                     f"data folder {absent} does not exist or is not a folder",
                     "no Debian/Ubuntu package ships mnist")
    folder = save_idx_folder(tiny_dataset(n_train=30, n_test=10), tmp_path / "idx")
    (folder / IDX_FILES["train_labels"]).unlink()
    assert_bad_input(invoke("run", "mlp-functional-fit-function-fp32", "--dataset", "fashion_mnist",
                            "--data-dir", folder),
                     f"data folder {folder} is missing train-labels-idx1-ubyte.gz",
                     "apt-get install dataset-fashion-mnist")
    (folder / IDX_FILES["test_images"]).write_bytes(b"not gzip")
    (folder / IDX_FILES["train_labels"]).write_bytes((folder / IDX_FILES["test_labels"]).read_bytes())
    assert_bad_input(invoke("run", "mlp-functional-fit-function-fp32", "--dataset", "mnist",
                            "--data-dir", folder),
                     f"IDX file {folder / IDX_FILES['test_images']} is not a valid gzip stream")


def test_run_data_dir_needs_a_dataset_read_from_idx_folders(tmp_path):
    """The workflow's own dataset counts: mlp-functional-fit-function-fp32 trains on mnist_5k."""
    assert workflows.get_workflow("mlp-functional-fit-function-fp32").dataset == "mnist_5k"
    assert_bad_input(invoke("run", "mlp-functional-fit-function-fp32", "--data-dir", tmp_path),
                     "--data-dir only applies to the datasets mnist, fashion_mnist, not to 'mnist_5k'")

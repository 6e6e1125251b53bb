"""``kbench list``, ``env`` and ``run`` (kbench/cli/workflows.py)."""

from __future__ import annotations

import json
import re

from kbench import fingerprint, workflows
from test_cli import invoke

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


def test_list_shows_all_108_workflows_in_a_table():
    result = invoke("list")
    assert result.exit_code == 0
    assert "108 workflow(s)" in result.stdout
    assert "cnn-subclassed-custom-xla-bf16" in result.stdout


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

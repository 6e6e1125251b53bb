"""Tests for kbench.workflows: spec validation, naming, registry, known issues."""

import dataclasses
import itertools
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kbench import workflows as wf
from kbench.workflows import WorkflowError, WorkflowSpec

NAME_CHOICES = (wf.FAMILIES, wf.STYLES, wf.LOOPS, wf.EXECUTIONS, wf.PRECISIONS)


def test_default_spec_name_follows_scheme():
    assert WorkflowSpec().name == "mlp-functional-fit-function-fp32"
    spec = WorkflowSpec(family="cnn", style="subclassed", loop="custom", execution="xla",
                        precision="mixed_bfloat16")
    assert spec.name == "cnn-subclassed-custom-xla-bf16"


@given(st.tuples(*(st.sampled_from(c) for c in NAME_CHOICES)),
       st.integers(1, 4096), st.integers(1, 50), st.integers(0, 2**31))
def test_name_round_trips_through_parse(fields, batch_size, epochs, seed):
    spec = WorkflowSpec(**dict(zip(wf.NAME_FIELDS, fields)), batch_size=batch_size,
                        epochs=epochs, seed=seed)
    parsed = wf.parse_name(spec.name, batch_size=batch_size, epochs=epochs, seed=seed)
    assert parsed == spec


def test_full_matrix_is_every_combination_and_unique():
    matrix = wf.full_matrix()
    expected = 1
    for choices in NAME_CHOICES:
        expected *= len(choices)
    assert len(matrix) == expected == 108
    assert len({s.name for s in matrix}) == expected
    assert {tuple(getattr(s, f) for f in wf.NAME_FIELDS) for s in matrix} == set(
        itertools.product(*NAME_CHOICES))


def test_full_matrix_applies_settings():
    assert {s.batch_size for s in wf.full_matrix(batch_size=256)} == {256}


def test_every_matrix_workflow_is_constructible_by_name():
    for spec in wf.full_matrix():
        assert wf.parse_name(spec.name) == spec
        assert wf.get_workflow(spec.name).name == spec.name


def test_get_workflow_keeps_reference_settings_unless_overridden():
    eager = wf.get_workflow("mlp-functional-custom-eager-fp32")
    assert eager.epochs == wf.EAGER_REFERENCE_EPOCHS
    assert wf.get_workflow("mlp-functional-custom-eager-fp32", epochs=7).epochs == 7
    assert wf.get_workflow("cnn-functional-custom-function-bf16").epochs == \
        wf.CNN_MIXED_REFERENCE_EPOCHS
    assert wf.get_workflow("cnn-sequential-fit-xla-fp32") == wf.WorkflowSpec(
        family="cnn", style="sequential", execution="xla")


def test_reference_workflows_cover_the_promised_matrix():
    refs = wf.REFERENCE_WORKFLOWS.values()
    mlp32 = wf.select(refs, family="mlp", precision="float32")
    assert {(s.loop, s.execution, s.style) for s in mlp32} == set(
        itertools.product(wf.LOOPS, wf.EXECUTIONS, wf.STYLES))
    cnn32 = wf.select(refs, family="cnn", precision="float32", execution="function")
    assert {s.loop for s in cnn32} == set(wf.LOOPS)
    for precision in ("mixed_float16", "mixed_bfloat16"):
        assert {s.loop for s in wf.select(refs, family="mlp", precision=precision)} == set(wf.LOOPS)
        assert wf.select(refs, family="cnn", precision=precision)
    assert all(wf.REFERENCE_WORKFLOWS[name].name == name for name in wf.REFERENCE_WORKFLOWS)


@pytest.mark.parametrize("field, value", [
    ("family", "rnn"), ("style", "Functional"), ("loop", "keras"), ("execution", "jit"),
    ("precision", "float16"), ("dataset", "cifar10"), ("optimizer", "adamw"),
    ("strategy", "horovod"), ("input_kind", "pandas"), ("labels", "multi_hot"),
    ("output", "sigmoid"),
])
def test_unknown_choice_is_rejected_naming_field_and_value(field, value):
    with pytest.raises(WorkflowError, match=rf"{field} must be one of .*got '{value}'"):
        WorkflowSpec(**{field: value})


@pytest.mark.parametrize("field, value", [
    ("batch_size", 0), ("batch_size", -3), ("batch_size", 8.0), ("batch_size", True),
    ("epochs", 0), ("epochs", "5"), ("seed", -1), ("seed", 1.5),
    ("learning_rate", 0), ("learning_rate", -1e-3), ("learning_rate", float("nan")),
    ("learning_rate", float("inf")), ("learning_rate", "0.001"), ("deterministic", 1),
    ("replicas", 0), ("replicas", 2.0), ("replicas", True),
    ("steps_per_execution", 0), ("steps_per_execution", 8.0), ("steps_per_execution", True),
    ("dropout", 1.0), ("dropout", -0.1), ("validation_split", 1.0), ("validation_split", -0.1),
    ("validation_split", "0.1"), ("hidden_units", 128), ("shuffle_buffer", 0), ("cache", 1),
])
def test_bad_number_is_rejected_quoting_it(field, value):
    with pytest.raises(WorkflowError, match=rf"{field} must be .*got {value!r}"):
        WorkflowSpec(**{field: value})


@pytest.mark.parametrize("settings, message", [
    ({"replicas": 2}, "strategy='default' runs one replica, got replicas=2"),
    ({"strategy": "mirrored", "replicas": 3}, "batch_size 64 does not split evenly over replicas=3"),
])
def test_replicas_must_fit_the_strategy_and_batch(settings, message):
    with pytest.raises(WorkflowError, match=re.escape(message)):
        WorkflowSpec(**settings)


def test_strategy_is_a_setting_recorded_with_the_spec():
    spec = wf.get_workflow("mlp-functional-custom-function-fp32", strategy="mirrored", replicas=2)
    assert spec.name == "mlp-functional-custom-function-fp32"
    assert spec.to_dict()["strategy"] == "mirrored" and spec.to_dict()["replicas"] == 2
    assert WorkflowSpec(strategy="mirrored", replicas=1).replicas == 1


def test_known_issue_example_hits_it():
    for issue in wf.KNOWN_ISSUES:
        spec = issue.example(epochs=1)
        assert issue.applies_to(spec) and spec.epochs == 1
        assert issue.error_class().__name__ == issue.error_name


def test_gpu_only_issue_is_not_refused_where_a_gpu_is_visible():
    issue = next(i for i in wf.KNOWN_ISSUES if i.without_gpu)
    wf.check_supported(issue.example(), gpu_visible=True)
    with pytest.raises(wf.UpstreamBugError, match=re.escape(issue.reference)):
        wf.check_supported(issue.example(), gpu_visible=False)


def test_spec_is_frozen_and_replace_validates():
    spec = WorkflowSpec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.epochs = 3
    assert spec.replace(epochs=3).epochs == 3
    with pytest.raises(WorkflowError, match="epochs must be a positive int, got 0"):
        spec.replace(epochs=0)
    with pytest.raises(WorkflowError, match=r"unknown WorkflowSpec field\(s\) \['epoch'\]"):
        spec.replace(epoch=3)


@pytest.mark.parametrize("name, message", [
    ("mlp-functional-fit", "must have 5 parts"),
    ("mlp-functional-fit-function-fp64", "precision tag must be one of .*got 'fp64'"),
    ("rnn-functional-fit-function-fp32", "family must be one of .*got 'rnn'"),
    ("mlp-functional-fit-jit-fp32", "execution must be one of .*got 'jit'"),
])
def test_bad_names_are_rejected_quoting_the_part(name, message):
    with pytest.raises(WorkflowError, match=message):
        wf.parse_name(name)


def test_parse_name_refuses_settings_that_clash_or_do_not_exist():
    with pytest.raises(WorkflowError, match=r"fields \['loop'\] come from the name"):
        wf.parse_name("mlp-functional-fit-function-fp32", loop="custom")
    with pytest.raises(WorkflowError, match="bad settings"):
        wf.parse_name("mlp-functional-fit-function-fp32", batchsize=3)


def test_select_filters_by_value_or_tuple_and_rejects_unknown_fields():
    matrix = wf.full_matrix()
    assert len(wf.select(matrix, family="cnn")) == 54
    assert len(wf.select(matrix, family="cnn", loop=("fit", "custom"), precision="float32")) == 18
    with pytest.raises(WorkflowError, match="unknown field"):
        wf.select(matrix, familly="cnn")


def test_to_dict_has_name_and_every_field():
    record = WorkflowSpec().to_dict()
    assert record["name"] == "mlp-functional-fit-function-fp32"
    assert set(record) == {"name"} | {f.name for f in dataclasses.fields(WorkflowSpec)}


# A known issue made up for these tests only; the real registry is exercised
# against real TensorFlow in tests/test_training.py.
FAKE_ISSUE = wf.KnownIssue(
    reference="example/repo#1", summary="Test-only entry.",
    when={"family": "cnn", "execution": "xla"}, error_type=ValueError,
    error_match="boom", workaround="use execution='function'.",
)


def test_known_issue_matches_only_its_fields(monkeypatch):
    monkeypatch.setattr(wf, "KNOWN_ISSUES", (FAKE_ISSUE,))
    hit = WorkflowSpec(family="cnn", execution="xla", loop="custom")
    assert hit.known_issue is FAKE_ISSUE
    assert WorkflowSpec(family="mlp", execution="xla").known_issue is None
    with pytest.raises(wf.UpstreamBugError, match=r"cnn-functional-custom-xla-fp32.*example/repo#1"
                       r".*ValueError: 'boom'.*execution='function'"):
        wf.check_supported(hit)
    wf.check_supported(WorkflowSpec(family="cnn", execution="function"))


def test_known_issue_rejects_unknown_fields():
    with pytest.raises(WorkflowError, match=r"unknown spec field\(s\) \['device'\]"):
        wf.KnownIssue(reference="x#1", summary="s", when={"device": "gpu"}, error_type=ValueError,
                      error_match="m", workaround="w")


def test_registered_known_issues_are_well_formed():
    for issue in wf.KNOWN_ISSUES:
        assert "#" in issue.reference or "/" in issue.reference, issue
        assert issue.when and issue.workaround and issue.summary
        assert any(issue.applies_to(s) for s in wf.full_matrix(**_non_name_fields(issue))), issue


def _non_name_fields(issue):
    return {k: v for k, v in issue.when.items() if k not in wf.NAME_FIELDS}


def test_a_spec_round_trips_through_its_dict_and_old_dicts_take_the_defaults():
    spec = WorkflowSpec(family="cnn", loop="custom", steps_per_execution=8, strategy="mirrored",
                        replicas=2)
    assert WorkflowSpec.from_dict(spec.to_dict()) == spec
    old = {k: v for k, v in WorkflowSpec().to_dict().items()
           if k not in ("strategy", "replicas", "steps_per_execution")}
    assert WorkflowSpec.from_dict(old) == WorkflowSpec()
    with pytest.raises(WorkflowError, match=r"unknown WorkflowSpec field\(s\) \['colour'\]"):
        WorkflowSpec.from_dict({**old, "colour": "red"})
    with pytest.raises(WorkflowError, match="spec name 'cnn-x' does not match"):
        WorkflowSpec.from_dict({**old, "name": "cnn-x"})


@pytest.mark.parametrize("settings, message", [
    ({"callbacks": ("early_stop",)}, "callback must be one of .*got 'early_stop'"),
    ({"callbacks": "tensorboard"}, "callbacks must be a tuple of names .*got 'tensorboard'"),
    ({"callbacks": ("tensorboard", "tensorboard")}, r"\['tensorboard'\] are named more than once"),
    ({"callbacks": ("tensorboard", "tensorboard_histograms")}, "two TensorBoard loggers"),
    ({"input_kind": "numpy", "loop": "custom"}, "needs loop='fit', got loop='custom'"),
    ({"input_kind": "numpy", "shuffle_buffer": 100}, "shuffle_buffer=100 needs input_kind='tfdata'"),
    ({"preset": ""}, "preset must be a non-empty str, got ''"),
    ({"hidden_units": ()}, re.escape("hidden_units must be a non-empty tuple of positive ints, "
                                     "got ()")),
    ({"hidden_units": (128, 0)}, re.escape("got (128, 0)")),
    ({"hidden_units": (64.0,)}, re.escape("got (64.0,)")),
])
def test_tutorial_fields_are_validated_quoting_the_value(settings, message):
    with pytest.raises(WorkflowError, match=message):
        WorkflowSpec(**settings)


def test_tutorials_are_named_workflows_with_their_own_knobs():
    tutorials = wf.TUTORIAL_WORKFLOWS
    assert set(tutorials) == {"tutorial-fashion-classifier", "tutorial-fashion-callbacks",
                              "tutorial-mnist-cnn-tfdata", "tutorial-mnist-cnn-callbacks"}
    for name, spec in tutorials.items():
        assert spec.name == name and wf.get_workflow(name) == spec
        assert WorkflowSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    basic = tutorials["tutorial-fashion-classifier"]
    assert (basic.dataset, basic.input_kind, basic.labels, basic.output, basic.hidden_units,
            basic.dropout, basic.batch_size, basic.epochs) == (
        "fashion_mnist", "numpy", "sparse", "logits", (128,), 0.0, 32, 10)
    callbacks = tutorials["tutorial-fashion-callbacks"]
    assert (callbacks.hidden_units, callbacks.dropout, callbacks.output, callbacks.labels) == (
        (128, 64), 0.3, "softmax", "onehot")
    assert set(callbacks.callbacks) == {"checkpoint", "early_stopping", "tensorboard"}
    tfdata = tutorials["tutorial-mnist-cnn-tfdata"]
    assert (tfdata.input_kind, tfdata.cache, tfdata.shuffle_buffer, tfdata.batch_size) == (
        "tfdata", False, 1000, 32)
    cnn = tutorials["tutorial-mnist-cnn-callbacks"]
    assert (cnn.batch_size, cnn.validation_split, cnn.labels) == (128, 0.1, "onehot")
    assert "tensorboard_histograms" in cnn.callbacks and "reduce_lr" in cnn.callbacks


def test_a_tutorial_takes_overrides_and_keeps_its_name():
    spec = wf.get_workflow("tutorial-mnist-cnn-tfdata", dataset="mnist_5k", epochs=2)
    assert (spec.name, spec.dataset, spec.epochs, spec.shuffle_buffer) == (
        "tutorial-mnist-cnn-tfdata", "mnist_5k", 2, 1000)

"""Tests for kbench.loops: what each execution really compiles in the custom loop."""

import pytest
import tensorflow as tf

from kbench import data, testing, training
from kbench.workflows import WorkflowSpec

# The attribute TF puts on the call of a tf.function(jit_compile=True): XLA must
# compile that function (tensorflow/python/eager/polymorphic_function).
XLA_MUST_COMPILE = "_XlaMustCompile"


def must_compile_flags(graph: tf.Graph) -> list[bool]:
    """The XLA must-compile flag of every function call in ``graph`` and the functions it calls."""
    flags = []
    graphs = [graph]
    while graphs:
        g = graphs.pop()
        for op in g.get_operations():
            if XLA_MUST_COMPILE in op.node_def.attr:
                flags.append(op.get_attr(XLA_MUST_COMPILE))
        graphs.extend(f.graph for f in getattr(g, "_functions", {}).values()
                      if hasattr(f, "graph"))
    return flags


def traced_train_step(execution: str) -> tf.Graph:
    spec = WorkflowSpec(loop="custom", execution=execution, batch_size=32)
    engine = training.prepare(spec)
    dataset = testing.tiny_dataset()
    x, y = next(iter(data.make_splits(dataset, training.pipeline_options(spec))[0]))
    with engine.settings():
        return engine.loop.train_step.get_concrete_function(x, y).graph


def test_the_custom_loops_xla_step_is_compiled_by_xla():
    flags = must_compile_flags(traced_train_step("xla"))
    assert flags and all(flags), "no function of the xla train step is marked for XLA"


def test_the_custom_loops_function_step_is_not():
    assert not any(must_compile_flags(traced_train_step("function")))


def test_the_custom_loops_eager_step_is_not_traced():
    spec = WorkflowSpec(loop="custom", execution="eager")
    engine = training.prepare(spec)
    with pytest.raises(AttributeError):
        engine.loop.train_step.get_concrete_function

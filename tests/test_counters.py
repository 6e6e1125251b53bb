"""Tests for kbench.counters: finding a step's tf.functions, their trace counts and graph
sizes, and the Counters record (its checks and its retrace failure)."""

from types import SimpleNamespace

import pytest
import tensorflow as tf

from kbench import counters
from kbench.counters import Counters, CountersError


def _square():
    @tf.function
    def square(x):
        return x * x
    return square


def test_compiled_functions_finds_tf_functions_in_closures_and_bound_methods():
    square, cube = _square(), tf.function(lambda x: x * x * x)

    def outer(x):  # a plain function holding a tf.function, as Keras's train_function does
        return square(x) + cube(x)

    class Holder:
        def method(self, x):
            return outer(x)

    found = counters.compiled_functions(outer, Holder().method, square)
    assert found == {"square": square, "<lambda>": cube}
    assert counters.compiled_functions(lambda x: x) == {}
    assert counters.compiled_functions(outer, depth=0) == {}  # it looks no deeper than asked


def test_functions_of_one_name_are_told_apart():
    first, second = _square(), _square()
    assert counters.compiled_functions(first, second) == {"square": first, "square#2": second}


def test_trace_counts_and_graph_nodes_follow_tensorflow():
    square = _square()
    square(tf.constant(2.0))
    square(tf.constant(3.0))  # the same signature: no new trace
    assert counters.tracing_counts({"square": square}) == {"square": 1}
    one = counters.graph_nodes(square)
    square(tf.constant([1.0, 2.0]))  # a new shape: a second concrete function
    assert counters.tracing_counts({"square": square}) == {"square": 2}
    assert counters.graph_nodes(square) > one > 0
    assert counters.graph_nodes(object()) is None  # nothing listed: unknown, not 0


def test_between_counts_the_traces_since_the_timed_rounds_began():
    square, unused = _square(), tf.function(lambda x: x)
    square(tf.constant(1.0))
    before = counters.tracing_counts({"square": square})
    square(tf.constant([1.0]))
    found = Counters.between({"square": square, "unused": unused}, before)
    assert dict(found.traces) == {"square": 2} and dict(found.retraces) == {"square": 1}
    assert found.graph_nodes["square"] == counters.graph_nodes(square)
    assert found.xla_functions == () and found.xla_compilations is None


def test_xla_functions_count_one_compilation_per_trace():
    jitted = tf.function(lambda x: x + 1, jit_compile=True)
    jitted(tf.constant(1.0))
    jitted(tf.constant([1.0, 2.0]))
    found = Counters.between({"jitted": jitted}, {})
    assert counters.is_xla(jitted) and not counters.is_xla(_square())
    assert found.xla_functions == ("jitted",) and found.xla_compilations == 2


def test_a_retrace_while_timed_is_a_failure_naming_the_function():
    found = Counters(traces={"step": 5, "inner": 5}, retraces={"step": 4, "inner": 0},
                     xla_functions=("step",))
    assert found.failure("w") == (
        "w retraced while timed: step 4 time(s) (a compiled step must not trace after its "
        "warm-up; each trace re-runs tracing and an XLA compilation inside a timed round)")
    assert Counters(traces={"step": 1}, retraces={"step": 0}).failure("w") is None


@pytest.mark.parametrize("fields, quoted", [
    ({"traces": {"f": -1}, "retraces": {}}, "traces['f'] must be a non-negative int, got -1"),
    ({"traces": {"f": 1.5}, "retraces": {}}, "traces['f'] must be a non-negative int, got 1.5"),
    ({"traces": [1], "retraces": {}}, "traces must map function names to counts, got [1]"),
    ({"traces": {"": 1}, "retraces": {}}, "traces has a key '', not a function name"),
    ({"traces": {"f": 1}, "retraces": {"g": 0}}, "'g' has no trace count (traces: ['f'])"),
    ({"traces": {"f": 1}, "retraces": {"f": 2}}, "'f' retraced 2 times while timed but traced "
                                                 "1 times in all"),
    ({"traces": {"f": 1}, "retraces": {}, "xla_functions": "f"},
     "xla_functions must be a list of function names, got 'f'"),
])
def test_bad_counters_are_refused_quoting_the_value(fields, quoted):
    with pytest.raises(CountersError) as info:
        Counters(**fields)
    assert quoted in str(info.value)


def test_counters_round_trip_and_bad_documents_name_the_record():
    found = Counters(traces={"f": 2}, retraces={"f": 0}, graph_nodes={"f": 30},
                     xla_functions=("f",))
    assert Counters.from_dict(found.to_dict()) == found
    with pytest.raises(CountersError, match=r"^k: counters must be an object, got 3"):
        Counters.from_dict(3, "k")
    with pytest.raises(CountersError, match=r"^k: bad counters .*unexpected keyword"):
        Counters.from_dict({"traces": {}, "retraces": {}, "colour": 1}, "k")
    with pytest.raises(CountersError, match=r"^k: counters: traces\['f'\] must be"):
        Counters.from_dict({"traces": {"f": "x"}, "retraces": {}}, "k")


def test_the_tracing_clock_reads_tensorflows_counter_and_is_none_without_it():
    class Cell:
        def value(self):
            return 2_500_000  # microseconds

    class Counter:
        def get_cell(self):
            return Cell()

    assert counters.tracing_clock(SimpleNamespace(_graph_building_time_counter=Counter()))() == 2.5
    assert counters.tracing_clock(SimpleNamespace()) is None
    clock = counters.tracing_clock()  # this TensorFlow's, which has it
    before = clock()
    square = _square()
    square(tf.constant(2.0))  # traces
    traced = clock()
    square(tf.constant(3.0))  # does not
    assert traced > before and clock() == traced

"""Exact signals of a training run, which noise cannot move: how often each compiled
step function traced (in all, and while timed), how many XLA compilations that made,
and how big each traced graph is.

TensorFlow counts traces itself (``tf.function.experimental_get_tracing_count``).
A function that traces again after its warm-up (a Python scalar argument that
changes every step, a shape that varies) pays tracing, and for XLA a
compilation, inside the timed rounds: the benchmark then times TensorFlow's
compiler, not training, so such a record is invalid. The graph size is the
number of nodes of every concrete function a step traced, the bodies of the
functions it calls included: for one TensorFlow version and workflow it is the
same on every run, so a change is a change of TensorFlow or of the workflow.

Keras 3's ``model.train_function`` is a plain Python function whose closure
holds the ``tf.function`` objects (``multi_step_on_iterator`` and
``one_step_on_data`` in Keras 3.15): :func:`compiled_functions` finds them
there, whatever their names, and finds none for an eager run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Callable

from kbench import _validate

__all__ = ["CLOSURE_DEPTH", "TRACING_COUNTER", "Counters", "CountersError", "compiled_functions",
           "graph_nodes", "is_xla", "tracing_clock", "tracing_counts"]

# How deep compiled_functions looks into closures (Keras 3.15's train_function
# holds its tf.functions one level down, behind a wrapper at most two).
CLOSURE_DEPTH = 3


class CountersError(ValueError):
    """Counters that cannot be built or read; the message names the field and value."""


def _is_compiled(value: Any) -> bool:
    return callable(getattr(value, "experimental_get_tracing_count", None))


def _name(fn: Any) -> str:
    return str(getattr(fn, "__name__", None) or getattr(fn, "_name", None) or type(fn).__name__)


def compiled_functions(*roots: Any, depth: int = CLOSURE_DEPTH) -> dict[str, Any]:
    """The ``tf.function`` objects among ``roots`` and in their closures, by name.

    A root may be a ``tf.function`` itself or a Python function (a closure, a
    bound method) that calls them. Two functions of one name are told apart
    with a ``#2`` suffix, in the order found.
    """
    found: dict[int, Any] = {}

    def visit(value: Any, level: int) -> None:
        if value is None or id(value) in found:
            return
        if _is_compiled(value):
            found[id(value)] = value
        if level >= depth:
            return
        python = getattr(value, "__func__", value)  # a bound method's function
        for cell in getattr(python, "__closure__", None) or ():
            try:
                visit(cell.cell_contents, level + 1)
            except ValueError:  # an empty cell
                continue
        wrapped = getattr(python, "__wrapped__", None)
        if wrapped is not None:
            visit(wrapped, level + 1)

    for root in roots:
        visit(root, 0)
    named: dict[str, Any] = {}
    for fn in found.values():
        name, n = _name(fn), 1
        while (key := name if n == 1 else f"{name}#{n}") in named:
            n += 1
        named[key] = fn
    return named


def tracing_counts(functions: Mapping[str, Any]) -> dict[str, int]:
    """How many times each function has traced so far."""
    return {name: int(fn.experimental_get_tracing_count()) for name, fn in functions.items()}


# TensorFlow's monitoring counter of the microseconds tf.function has spent building
# graphs (tracing), process-wide; a nested function's tracing counts once, with
# its caller's. In tracing_compilation.py of TF 2.19.1, 2.20.0 and 2.21.0 (checked).
TRACING_COUNTER = "/tensorflow/core/tf_function/graph_building_time_usecs"


def tracing_clock(module: Any = None) -> Callable[[], float] | None:
    """A clock of the seconds ``tf.function`` has spent tracing in this process so far
    (TensorFlow's own counter, :data:`TRACING_COUNTER`), or None where this
    TensorFlow has no such counter: it is private
    (``tracing_compilation._graph_building_time_counter``), so it may go.

    The difference of two readings is the tracing between them. TensorFlow
    clocks neither Grappler's optimization nor XLA's compilation, which happen
    in the function's first call after tracing.

    Args:
        module: where the counter lives (for tests; TensorFlow's module by default).
    """
    if module is None:
        try:
            from tensorflow.python.eager.polymorphic_function import tracing_compilation as module
        except ImportError:
            return None
    counter = getattr(module, "_graph_building_time_counter", None)
    cell = getattr(counter, "get_cell", None)
    if cell is None:
        return None
    cell = cell()
    return lambda: cell.value() / 1e6


def is_xla(fn: Any) -> bool:
    """Whether ``fn`` is compiled with XLA (``tf.function(jit_compile=True)``)."""
    return bool(getattr(fn, "_jit_compile", False))


def graph_nodes(fn: Any) -> int | None:
    """Nodes in every concrete function ``fn`` traced, with the bodies of the functions
    they call (their graph's function library); None where TensorFlow does not list
    the concrete functions (a private API, ``_list_all_concrete_functions``)."""
    lister = getattr(fn, "_list_all_concrete_functions", None)
    if lister is None:
        return None
    total = 0
    for concrete in lister():
        graph_def = concrete.graph.as_graph_def()
        total += len(graph_def.node) + sum(len(f.node_def) for f in graph_def.library.function)
    return total


def _counts(name: str, value: Any, where: str) -> Mapping[str, int]:
    if not isinstance(value, Mapping):
        raise CountersError(f"{where}: {name} must map function names to counts, got "
                            f"{value!r:.80}")
    out = {}
    for key, count in value.items():
        if not isinstance(key, str) or not key:
            raise CountersError(f"{where}: {name} has a key {key!r}, not a function name")
        out[key] = _validate.check_int(f"{name}[{key!r}]", count, minimum=0,
                                       error=CountersError, where=where)
    return MappingProxyType(out)


@dataclasses.dataclass(frozen=True)
class Counters:
    """The exact counters of one benchmark's training run.

    Attributes:
        traces: each compiled function's traces by the end of the run.
        retraces: of those, the traces during the timed rounds (0 for every
            function once warmed up).
        graph_nodes: each function's graph size (:func:`graph_nodes`);
            functions whose size TensorFlow does not list are absent.
        xla_functions: the functions compiled with XLA: each of their traces
            is one XLA compilation.
    """

    traces: Mapping[str, int]
    retraces: Mapping[str, int]
    graph_nodes: Mapping[str, int] = dataclasses.field(default_factory=dict)
    xla_functions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        where = "counters"
        for name in ("traces", "retraces", "graph_nodes"):
            object.__setattr__(self, name, _counts(name, getattr(self, name), where))
        xla = self.xla_functions
        if isinstance(xla, str) or not all(isinstance(n, str) for n in xla):
            raise CountersError(f"{where}: xla_functions must be a list of function names, "
                                f"got {xla!r:.80}")
        object.__setattr__(self, "xla_functions", tuple(xla))
        for name in (*self.retraces, *self.graph_nodes, *self.xla_functions):
            if name not in self.traces:
                raise CountersError(f"{where}: {name!r} has no trace count (traces: "
                                    f"{sorted(self.traces)})")
        for name, count in self.retraces.items():
            if count > self.traces[name]:
                raise CountersError(f"{where}: {name!r} retraced {count} times while timed but "
                                    f"traced {self.traces[name]} times in all")

    @classmethod
    def between(cls, functions: Mapping[str, Any], before: Mapping[str, int]) -> "Counters":
        """The counters of ``functions`` now, with ``before`` the trace counts when the
        timed rounds began (a function missing there had not traced yet). A function
        that never traced (e.g. the multi-step call of a run of one step a call) is
        left out."""
        traces = {name: n for name, n in tracing_counts(functions).items() if n}
        functions = {name: functions[name] for name in traces}
        sizes = {name: graph_nodes(fn) for name, fn in functions.items()}
        return cls(traces=traces,
                   retraces={name: n - before.get(name, 0) for name, n in traces.items()},
                   graph_nodes={name: n for name, n in sizes.items() if n is not None},
                   xla_functions=tuple(name for name, fn in functions.items() if is_xla(fn)))

    @property
    def xla_compilations(self) -> int | None:
        """XLA compilations in the run (None: nothing is XLA-compiled)."""
        if not self.xla_functions:
            return None
        return sum(self.traces[name] for name in self.xla_functions)

    def failure(self, workflow: str) -> str | None:
        """Why the timed rounds did not time training alone (None if nothing retraced)."""
        again = {name: n for name, n in self.retraces.items() if n}
        if not again:
            return None
        listed = ", ".join(f"{name} {n} time(s)" for name, n in sorted(again.items()))
        return (f"{workflow} retraced while timed: {listed} (a compiled step must not trace "
                f"after its warm-up; each trace re-runs tracing"
                f"{' and an XLA compilation' if set(again) & set(self.xla_functions) else ''} "
                "inside a timed round)")

    def to_dict(self) -> dict:
        return {"traces": dict(self.traces), "retraces": dict(self.retraces),
                "graph_nodes": dict(self.graph_nodes), "xla_functions": list(self.xla_functions)}

    @classmethod
    def from_dict(cls, value: Any, where: str = "record") -> "Counters":
        return _validate.from_mapping(cls, "counters", value, error=CountersError, where=where)

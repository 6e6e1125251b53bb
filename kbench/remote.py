"""A lockstep runner in a child process: a variant the parent process cannot run itself.

Some settings are fixed once per process when TensorFlow starts, e.g. the
number of intra-op threads, or the TensorFlow version itself. A variant that
needs another value runs in a child Python process (``python -m
kbench.remote``) that builds the workflow from data (a WorkflowSpec and the
training input's pipeline options) and is driven round by round over its
stdin/stdout, one JSON object a line, so it can take its turn in a lockstep
group beside in-process variants (:class:`kbench.interleaved.Remote`).

Protocol (parent -> child, child -> parent):

- ``{"open": request}`` -> ``{"ready": info}`` once the run has started up
  (traced, calibrated): request = {"spec", "pipeline", "profile", "device",
  "rounds", "intra_op_threads", "slowdown", "steps_per_round"} (the last three
  optional; slowdown and steps_per_round: see
  :class:`kbench.measure.SteadyStateRun`); info = {"tf_version",
  "intra_op_threads", "fingerprint"} as the child's TensorFlow reports them,
  and {"steps_per_round", "batch_size", "startup_s"} as the run calibrated;
- ``{"do": "warm_up"}`` -> ``{"ok": true}``;
- ``{"do": "round"}`` -> ``{"seconds": s, "cpu_s": [at request, at answer]}``
  (the child's process CPU time: what it used between rounds is what it
  took from whatever ran meanwhile);
- ``{"do": "record", "labels": {...}}`` -> ``{"record": extra_info}``;
- ``{"do": "close"}`` -> ``{"ok": true}``, then the child exits.

Any failure in the child answers ``{"error": "Type: message"}``; the parent
raises :class:`RemoteError` with it and the tail of the child's stderr.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from typing import Any

from kbench.profiles import Profile

# How long the child may take to start (import TensorFlow, build, trace,
# calibrate) or to run one round before the parent gives up on it.
START_TIMEOUT_S = 300.0
ROUND_TIMEOUT_S = 600.0
# Lines of the child's stderr quoted in an error.
STDERR_TAIL_LINES = 15


class RemoteError(RuntimeError):
    """The child process failed, answered nonsense or took too long; the message says which."""


def profile_to_dict(profile: Profile) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(profile).items()}


def profile_from_dict(fields: Mapping) -> Profile:
    return Profile(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


class RemoteRun:
    """The parent's handle on one child run; a lockstep runner and a context manager.

    Args:
        request: what the child builds (see the module docstring).
        python: the interpreter the child runs (default: this one).
        env: extra environment variables for the child.
    """

    def __init__(self, request: Mapping[str, Any], *, python: str | None = None,
                 env: Mapping[str, str] | None = None, start_timeout_s: float = START_TIMEOUT_S,
                 round_timeout_s: float = ROUND_TIMEOUT_S):
        self.request, self.python = dict(request), python or sys.executable
        self.env = {**os.environ, **(env or {})}
        self.start_timeout_s, self.round_timeout_s = start_timeout_s, round_timeout_s
        self._proc: subprocess.Popen | None = None
        self._stderr = None
        self._killed = False  # kill() came first: a child started after it is killed
        self.info: dict = {}  # what the child reported when ready
        # Per round: the child's CPU time when it got the request and when it answered.
        self.cpu_marks: list[tuple[float, float]] = []

    @property
    def name(self) -> str:
        return self.request.get("spec", {}).get("name", "remote run")

    def __enter__(self) -> "RemoteRun":
        self._stderr = tempfile.TemporaryFile(mode="w+")
        try:
            self._proc = subprocess.Popen([self.python, "-m", "kbench.remote"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=self._stderr, text=True, env=self.env,
                                          # its own process group: Ctrl-C reaches the
                                          # parent, which then stops the child itself
                                          start_new_session=True)
        except OSError as err:
            raise RemoteError(f"cannot start {self.python!r} -m kbench.remote: {err}") from err
        if self._killed:  # killed from another thread while it started
            self._kill()
            raise RemoteError(f"{self.name}: stopped while it started")
        try:
            self.info = self._ask({"open": self.request}, "ready", self.start_timeout_s)
        except BaseException:
            self._kill()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            if self._proc.poll() is None:
                self._ask({"do": "close"}, "ok", self.round_timeout_s)
                self._proc.wait(timeout=self.round_timeout_s)
        except (RemoteError, subprocess.TimeoutExpired):
            pass  # the run's own error, if any, is what the caller sees
        finally:
            self._kill()

    def kill(self) -> None:
        """Stop the child now, in whatever state (safe from another thread, and before
        or after ``__enter__``)."""
        self._killed = True
        self._kill()

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            try:  # its whole process group: whatever the child started dies with it
                os.killpg(self._proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self._proc.kill()
            self._proc.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _stderr_tail(self) -> str:
        stderr = self._stderr
        if stderr is None:
            return ""
        try:
            stderr.seek(0)
            lines = stderr.read().splitlines()[-STDERR_TAIL_LINES:]
        except (ValueError, OSError):  # closed by a kill() from another thread
            return ""
        return "\n".join(lines)

    def _fail(self, what: str) -> RemoteError:
        tail = self._stderr_tail()
        return RemoteError(f"{self.name} in {self.python}: {what}"
                           + (f"\n--- its stderr (last lines) ---\n{tail}" if tail else ""))

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def _ask(self, message: Mapping, key: str, timeout_s: float) -> Any:
        return self._answer(message, key, timeout_s)[key]

    def _answer(self, message: Mapping, key: str, timeout_s: float) -> dict:
        try:
            self._proc.stdin.write(json.dumps(message) + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._fail(f"the child exited (code {self._proc.poll()})") from None
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout_s)
        if not ready:
            raise self._fail(f"no answer to {message.get('do', 'open')!r} within {timeout_s} s")
        line = self._proc.stdout.readline()
        if not line:
            raise self._fail(f"the child exited (code {self._proc.wait()}) without answering")
        try:
            answer = json.loads(line)
        except json.JSONDecodeError:
            raise self._fail(f"the child answered {line[:200]!r}, not JSON") from None
        if "error" in answer:
            raise self._fail(answer["error"])
        if not isinstance(answer, dict) or key not in answer:
            raise self._fail(f"the child answered {answer!r:.200}, without {key!r}")
        return answer

    def warm_up(self) -> None:
        self._ask({"do": "warm_up"}, "ok", self.round_timeout_s)

    def next_round(self) -> float:
        answer = self._answer({"do": "round"}, "seconds", self.round_timeout_s)
        before, after = answer.get("cpu_s", (float("nan"), float("nan")))
        self.cpu_marks.append((float(before), float(after)))
        return float(answer["seconds"])

    def record(self, **labels):
        from kbench.record import BenchmarkRecord

        extra = self._ask({"do": "record", "labels": labels}, "record", self.round_timeout_s)
        return BenchmarkRecord.from_extra_info(extra)


# --------------------------------------------------------------------------- the child


def _open(request: Mapping):
    """The child's run, built from the request, and what its TensorFlow reports. The
    spec and profile are read first, so a bad request fails before TensorFlow's import
    (10 s on a 2-core VM), and TensorFlow is imported before anything else of it."""
    from kbench.workflows import WorkflowSpec

    spec = WorkflowSpec.from_dict(request["spec"])
    profile = profile_from_dict(request["profile"])
    threads = request.get("intra_op_threads")
    import tensorflow as tf

    if threads is not None:  # before TensorFlow runs any op
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
    from kbench import fingerprint, inputs
    from kbench.measure import SteadyStateRun

    train_data = inputs.training_input(spec, **dict(request.get("pipeline") or {}))
    run = SteadyStateRun(spec, train_data, profile,
                         device=request.get("device", "/CPU:0"), rounds=int(request["rounds"]),
                         slowdown=float(request.get("slowdown") or 0.0),
                         steps_per_round=request.get("steps_per_round")).__enter__()
    info = {"tf_version": tf.__version__,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "steps_per_round": run.steps_per_round, "batch_size": spec.batch_size,
            "startup_s": run.startup_s, "fingerprint": fingerprint.fingerprint()}
    return run, info


def _serve(lines, reply, open_run=_open) -> None:
    """Answer the parent's requests from ``lines`` until it says close (or stdin ends)."""
    run = None
    try:
        for line in lines:
            try:
                message = json.loads(line)
                if not isinstance(message, dict):
                    raise ValueError(f"a request must be a JSON object, got {line.strip()!r:.200}")
                if "open" in message:
                    run, info = open_run(message["open"])
                    reply({"ready": info})
                    continue
                do = message.get("do")
                if run is None and do != "close":
                    reply({"error": f"{do!r} before open"})
                elif do == "warm_up":
                    run.warm_up()
                    reply({"ok": True})
                elif do == "round":
                    before = time.process_time()
                    seconds = run.next_round()
                    reply({"seconds": seconds, "cpu_s": [before, time.process_time()]})
                elif do == "record":
                    record = run.measurement().record(**message.get("labels", {}))
                    reply({"record": record.to_extra_info()})
                elif do == "close":
                    reply({"ok": True})
                    return
                else:
                    reply({"error": f"unknown request {message!r:.200}"})
            except Exception as err:  # answered, so the parent can say what went wrong
                reply({"error": f"{type(err).__name__}: {err}"})
    finally:
        if run is not None:
            run.__exit__(None, None, None)


def main() -> None:
    # Replies go to the real stdout; anything else that prints goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    def reply(answer: Mapping) -> None:
        out.write(json.dumps(answer) + "\n")
        out.flush()

    _serve(sys.stdin, reply)


if __name__ == "__main__":
    main()

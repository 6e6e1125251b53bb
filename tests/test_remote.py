"""Tests for kbench.remote: a lockstep runner in a child process, and its protocol."""

import json

import pytest

from kbench import profiles, remote
from kbench.workflows import WorkflowSpec

SMALL = profiles.Profile("test", rounds=2, steps_per_round=4, min_round_s=0.0, warmup_rounds=1,
                         batch_sizes=(32,), families=("mlp",), max_cycles=3)


def request(**changes):
    spec = WorkflowSpec(batch_size=32)
    return {"spec": spec.to_dict(), "pipeline": {}, "profile": remote.profile_to_dict(SMALL),
            "device": "/CPU:0", "rounds": 3, "intra_op_threads": None, **changes}


def test_a_profile_crosses_the_process_boundary_intact():
    for profile in profiles.PROFILES.values():
        fields = json.loads(json.dumps(remote.profile_to_dict(profile)))
        assert remote.profile_from_dict(fields) == profile


# --------------------------------------------------------------------------- the child's loop


class FakeRun:
    def __init__(self):
        self.rounds, self.closed = 0, False

    def warm_up(self):
        pass

    def next_round(self):
        self.rounds += 1
        return 0.25 * self.rounds

    def __exit__(self, *exc_info):
        self.closed = True


def serve(*messages):
    replies, run = [], FakeRun()
    lines = [m if isinstance(m, str) else json.dumps(m) for m in messages]
    remote._serve(lines, replies.append, open_run=lambda req: (run, {"tf_version": "x"}))
    return replies, run


def test_the_child_answers_each_request_in_turn_and_closes_its_run():
    replies, run = serve({"open": {}}, {"do": "warm_up"}, {"do": "round"}, {"do": "round"},
                         {"do": "close"}, {"do": "round"})
    rounds = [r.pop("cpu_s") for r in replies[2:4]]
    assert replies == [{"ready": {"tf_version": "x"}}, {"ok": True}, {"seconds": 0.25},
                       {"seconds": 0.5}, {"ok": True}]  # nothing after close
    assert run.closed
    # Each round answer carries the child's CPU time at the request and at the answer.
    (start, end), (next_start, _) = rounds
    assert 0 <= start <= end <= next_start


def test_the_child_answers_a_bad_request_with_an_error_and_carries_on():
    replies, _ = serve({"do": "round"}, "not json", "[1]", {"open": {}}, {"do": "dance"},
                       {"do": "round"})
    assert replies[0] == {"error": "'round' before open"}
    assert replies[1]["error"].startswith("JSONDecodeError")
    assert replies[2] == {"error": "ValueError: a request must be a JSON object, got '[1]'"}
    assert replies[4]["error"].startswith("unknown request {'do': 'dance'}")
    assert replies[5]["seconds"] == 0.25


# --------------------------------------------------------------------------- a real child


def test_a_child_run_takes_rounds_and_returns_its_record():
    with remote.RemoteRun(request(intra_op_threads=1)) as run:
        assert run.info["intra_op_threads"] == 1  # set before the child's TF ran an op
        run.warm_up()
        seconds = [run.next_round(), run.next_round()]
        record = run.record(variant="one thread", comparison="c")
    assert record.variant == "one thread" and record.round_s == tuple(seconds)
    assert record.spec == WorkflowSpec(batch_size=32) and len(record.round_noise) == 2
    assert run._proc.poll() == 0  # closed cleanly


def test_a_child_that_cannot_build_its_run_says_why_with_its_stderr():
    bad = request(spec={**WorkflowSpec().to_dict(), "loop": "sideways"})
    with pytest.raises(remote.RemoteError, match=r"WorkflowError: .*sideways"):
        with remote.RemoteRun(bad):
            pass


def test_a_missing_interpreter_is_named():
    with pytest.raises(remote.RemoteError, match="cannot start '/no/such/python'"):
        with remote.RemoteRun(request(), python="/no/such/python"):
            pass


def test_a_child_that_dies_is_reported_not_waited_for():
    with pytest.raises(remote.RemoteError, match="the child exited"):
        with remote.RemoteRun(request()) as run:
            run._proc.kill()
            run._proc.wait()
            run.next_round()


def test_a_child_that_does_not_answer_in_time_is_reported_and_killed(tmp_path):
    silent = tmp_path / "silent-python"
    silent.write_text("#!/bin/sh\nsleep 60\n")
    silent.chmod(0o755)
    run = remote.RemoteRun(request(), python=str(silent), start_timeout_s=0.5)
    with pytest.raises(remote.RemoteError, match=r"no answer to 'open' within 0.5 s"):
        with run:
            pass
    assert run._proc.poll() is not None  # killed, not left behind


def test_kill_stops_a_starting_child_from_another_thread_and_is_safe_before_it(tmp_path):
    import threading

    silent = tmp_path / "silent-python"
    silent.write_text("#!/bin/sh\nsleep 60\n")
    silent.chmod(0o755)
    early = remote.RemoteRun(request(), python=str(silent))
    early.kill()  # before __enter__: nothing to stop, and it never starts
    with pytest.raises(remote.RemoteError, match="stopped while it started"):
        early.__enter__()
    assert early._proc.poll() is not None

    run = remote.RemoteRun(request(), python=str(silent), start_timeout_s=30.0)
    errors = []
    thread = threading.Thread(target=lambda: _enter_expecting_failure(run, errors))
    thread.start()
    while run.pid is None:
        threading.Event().wait(0.01)
    run.kill()  # what kbench.lockstep_ab does to a start it abandons
    thread.join(10.0)
    assert not thread.is_alive() and errors and run._proc.poll() is not None


def _enter_expecting_failure(run, errors):
    try:
        run.__enter__()
    except remote.RemoteError as err:
        errors.append(err)

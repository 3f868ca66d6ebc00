"""ProcessHost: events cross the process boundary in order; crashes, kills and stops are reported."""
from __future__ import annotations

import os

import pytest

from engine.events import Failed, Finished, Notice, TrainMetric
from gui.process_host import ProcessHost

FAKE = "tests.fake_worker:replay_main"


def run_host(qtbot, script, timeout_ms=20000, **kwargs):
    host = ProcessHost(FAKE, args=(script,), name="test", **kwargs)
    received, logs = [], []
    host.eventReceived.connect(received.append)
    host.logText.connect(logs.append)
    with qtbot.waitSignal(host.ended, timeout=timeout_ms) as blocker:
        host.start()
    host.wait(5000)
    return blocker.args[0], received, "".join(logs), host


def test_events_arrive_in_order_and_finished_is_the_outcome(qtbot):
    metrics = [TrainMetric(step=i, loss=3.0 - i / 10, lr=1e-4, grad_norm=1.0, tokens_per_s=100.0) for i in range(1, 6)]
    done = Finished(run_dir="r", output_path="r/adapter", reason="completed", step=5)
    script = [("print", "hello from the child")] + [("event", m) for m in metrics] + [("event", done)]
    outcome, received, logs, host = run_host(qtbot, script)
    assert [e.step for e in received if isinstance(e, TrainMetric)] == [1, 2, 3, 4, 5]
    assert outcome == done
    assert "hello from the child" in logs


def test_an_exception_in_the_worker_becomes_failed_with_the_log_tail(qtbot):
    outcome, _, _, _ = run_host(qtbot, [("print", "loading the model"), ("raise", "weights are damaged")])
    assert isinstance(outcome, Failed)
    assert "weights are damaged" in outcome.reason
    assert "loading the model" in outcome.log_tail and "Traceback" in outcome.log_tail


def test_a_killed_worker_is_reported_as_out_of_memory_with_the_log_tail(qtbot):
    script = [("event", Notice(message="step 1")), ("print", "allocating 80 GB"), ("kill_self", None)]
    outcome, received, _, _ = run_host(qtbot, script)
    assert isinstance(outcome, Failed)
    assert "killed" in outcome.reason and "ran out of memory" in outcome.hint
    assert "allocating 80 GB" in outcome.log_tail
    assert received == [Notice(message="step 1", time=received[0].time)]


def test_a_crash_with_an_exit_code_is_reported(qtbot):
    outcome, _, _, _ = run_host(qtbot, [("print", "native code aborted"), ("exit", 3)])
    assert isinstance(outcome, Failed) and "exit code 3" in outcome.reason
    assert "native code aborted" in outcome.log_tail


def test_stop_is_passed_to_the_worker_which_finishes_cleanly(qtbot):
    stopped = Finished(run_dir="r", output_path="r/adapter", reason="stopped", step=2)
    host = ProcessHost(FAKE, args=([("until_stop", stopped)],), name="test")
    with qtbot.waitSignal(host.ended, timeout=20000) as blocker:
        host.start()
        qtbot.wait(300)
        host.request_stop()
    host.wait(5000)
    assert blocker.args[0] == stopped


def test_a_worker_that_ignores_stop_is_terminated_then_killed(qtbot):
    host = ProcessHost(FAKE, args=([("ignore_stop", 60)],), name="test", stop_grace_s=0.2, terminate_grace_s=0.3)
    with qtbot.waitSignal(host.ended, timeout=20000) as blocker:
        host.start()
        qtbot.wait(300)
        host.request_stop()
    host.wait(5000)
    outcome = blocker.args[0]
    assert isinstance(outcome, Failed) and "ended forcibly" in outcome.reason


def test_a_target_that_does_not_exist_fails_in_plain_words(qtbot):
    host = ProcessHost("tests.fake_worker:no_such_function", name="test")
    with qtbot.waitSignal(host.ended, timeout=20000) as blocker:
        host.start()
    host.wait(5000)
    assert isinstance(blocker.args[0], Failed) and "no_such_function" in blocker.args[0].reason


def test_a_clean_exit_without_a_result_ends_with_none(qtbot):
    outcome, _, _, _ = run_host(qtbot, [("exit", 0)])
    assert outcome is None


@pytest.mark.skipif(not hasattr(os, "nice"), reason="POSIX priorities")
def test_a_background_worker_runs_at_a_lower_priority(qtbot, tmp_path):
    out = tmp_path / "nice.txt"
    host = ProcessHost("tests.fake_worker:report_priority", args=(str(out),), name="test", background=True)
    with qtbot.waitSignal(host.ended, timeout=20000):
        host.start()
    host.wait(5000)
    assert int(out.read_text()) > os.nice(0)  # nicer than this (the window's) process

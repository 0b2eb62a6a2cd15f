"""Small C drivers (tests/drivers/*.c, built by the tests) that each show one behaviour of the
kernel model a driver can run into, beyond the TestDriver builds."""
from conftest import run_cli, run_subprocess


def _driver_threads(rep):
    return [t for t in rep["threads"] if t["kind"] == "driver"]


# ------------------------------------------------------------------ stalls that DriverUnload ends

def test_wait_on_stop_event_set_by_unload_is_not_a_deadlock(cdriver, tmp_path):
    """A worker waits on an event only DriverUnload sets: it waits, unload sets it, the worker ends,
    unload waits for it and returns. Completed, no finding."""
    code, rep = run_cli([cdriver("stop_event"), "--strict"], tmp_path)
    assert (code, rep["outcome"], rep["deadlock"]) == (0, "completed", None)
    [worker] = _driver_threads(rep)
    assert worker["state"] == "Terminated" and worker["exit"] == "PsTerminateSystemThread(STATUS_SUCCESS)"
    assert rep["unload"]["returned"] is True
    assert [p["text"] for p in rep["dbgprint"]] == ["worker: stop event set, ending\n"]
    assert rep["verifier"] == [] and rep["references_not_released"] == []
    assert not any("deadlock" in e["text"] for e in rep["events"])


def test_wait_on_stop_event_without_unload_is_a_deadlock(cdriver, tmp_path):
    """The same driver never unloaded: nothing will ever set the event."""
    code, rep = run_cli([cdriver("stop_event"), "--unload", "never"], tmp_path)
    assert (code, rep["outcome"]) == (3, "deadlock")
    [w] = rep["deadlock"]["waits"]
    assert w["thread"] == "Worker" and "nothing can signal" in w["why"]
    p = run_subprocess(["run", cdriver("stop_event"), "--no-report"])
    assert p.returncode == 0 and "DEADLOCK" not in p.stdout and "Outcome: completed" in p.stdout

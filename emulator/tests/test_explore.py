"""tdemu run --explore: every schedule within a preemption bound (CHESS-style), grouped by outcome."""
import hashlib
import json

import pytest
from conftest import run_subprocess

from tdemu.cli import run


def _folder_digest(folder, files):
    """explore's digest of a folder, computed here: lower-case path, NUL, data, NUL per file in name order."""
    d = hashlib.sha256()
    for name, data in files:
        d.update(f"{folder}\\{name}".lower().encode() + b"\0" + data + b"\0")
    return d.hexdigest()[:16]


# C:\Temp2 when the fixed build is done: NewFile_0..999.txt, each "Hello, World!\r\n" x 100 (1500 bytes)
TEMP2_SHA256 = _folder_digest("C:\\Temp2", [(f"NewFile_{i}.txt", b"Hello, World!\r\n" * 100) for i in range(1000)])


def explore(args, tmp_path, code=None):
    """Runs --explore in-process; returns (exit code, explore.json, explore.txt)."""
    got = run(["run", *args, "--explore", "--report-dir", str(tmp_path), "--quiet"])
    if code is not None:
        assert got == code
    return got, json.load(open(tmp_path / "explore.json"))["explore"], (tmp_path / "explore.txt").read_text()


def test_seed_deadlocks_in_every_schedule(driver, tmp_path):
    code, x, text = explore([driver], tmp_path, 3)
    assert x["complete"] and x["preemption_bound"] == 2 and x["schedules"] >= 3
    assert f"Schedules run: {x['schedules']} in " in text
    assert sum(o["schedules"] for o in x["outcomes"]) == x["schedules"]
    assert {o["outcome"]["outcome"] for o in x["outcomes"]} == {"deadlock"}
    states = {(fm["Count"], fm["Contention"]) for o in x["outcomes"] for fm in o["outcome"]["deadlock"]["fast_mutexes"]}
    # creation first: both wait (8, 2); move first: creation waits alone (4, 1); creation preempted while
    # FileMoveThread holds the mutex: it waits once for it, then for itself (4, 2)
    assert {(8, 2), (4, 1)} <= states <= {(8, 2), (4, 1), (4, 2)}
    for o in x["outcomes"]:
        assert o["outcome"]["files"]["C:\\Temp"]["files"] == 0 and o["outcome"]["files"]["C:\\Temp2"]["files"] == 0
    default = next(o for o in x["outcomes"] if o["schedule"] == "0")
    assert default["outcome"]["deadlock"]["fast_mutexes"][0]["Count"] == 8


@pytest.mark.parametrize("extra", [[], ["--fault", "no-temp"], ["--fault", "no-temp2"], ["--fault", "create-every=7"],
                                   ["--fault", "thread=1"], ["--fault", "thread=2"],
                                   ["--fault", "thread=2", "--unload", "early"],
                                   ["--fault", "iocreatedevice=0xC0000035"]],
                         ids=["no_fault", "no_temp", "no_temp2", "create_every_7", "thread1", "thread2",
                              "thread2_early", "iocreatedevice"])
def test_fixed_build_one_outcome_in_every_schedule(fixed_driver, tmp_path, extra):
    code, x, text = explore([fixed_driver, "--strict", *extra], tmp_path)
    assert x["complete"]
    [o] = x["outcomes"]
    assert "Distinct outcomes: 1\n" in text
    assert o["outcome"]["findings"] == [] and o["outcome"]["deadlock"] is None and o["outcome"]["fatal"] is None
    if not extra:
        assert code == 0 and x["schedules"] >= 2  # both threads first, and the event set before or after the wait
        assert o["outcome"]["files"]["C:\\Temp2"] == {"files": 1000, "bytes": 1_500_000, "sha256": TEMP2_SHA256}
        assert o["outcome"]["files"]["C:\\Temp"]["files"] == 0


def test_mutex_without_order_has_two_outcomes_each_replayable(cdriver, tmp_path):
    """The fixed build's earlier shape (mutex, no event): who takes the mutex first decides
    whether the files end in C:\\Temp2 or stay in C:\\Temp."""
    drv = cdriver("mutex_no_order")
    code, x, text = explore([drv, "--strict"], tmp_path, 0)
    assert "the result depends on the order of the threads" in text
    where = {}
    for o in x["outcomes"]:
        f = o["outcome"]["files"]
        assert o["outcome"]["outcome"] == "completed" and o["outcome"]["findings"] == []
        where[(f["C:\\Temp"]["files"], f["C:\\Temp2"]["files"])] = o["schedule"]
    assert set(where) == {(0, 3), (3, 0)}
    for (temp, temp2), schedule in where.items():
        p = run_subprocess(["run", drv, "--schedule", schedule, "--json", "--no-report"])
        assert p.returncode == 0, p.stderr
        rep = json.loads(p.stdout)
        assert (len(rep["files"]["C:\\Temp"]), len(rep["files"]["C:\\Temp2"])) == (temp, temp2)
        assert rep["schedule"]["replayed"] == schedule


@pytest.mark.parametrize("use", [1, 2], ids=["fast_mutex", "spin_lock"])
def test_abba_deadlock_needs_one_preemption(cdriver, tmp_path, use):
    drv = cdriver("abba", USE=use)
    code, x, text = explore([drv, "--preemptions", "0"], tmp_path / "k0", 0)
    assert [o["outcome"]["outcome"] for o in x["outcomes"]] == ["completed"]  # run-to-block never deadlocks
    code, x, text = explore([drv, "--preemptions", "1"], tmp_path / "k1", 3)
    dead = [o for o in x["outcomes"] if o["outcome"]["outcome"] == "deadlock"]
    assert len(dead) == 1 and dead[0]["preemptions"] == 1
    assert all("cycle" in w for w in dead[0]["outcome"]["deadlock"]["waits"])
    assert any(c.startswith("preempt ") for c in dead[0]["choices"])
    p = run_subprocess(["run", drv, "--schedule", dead[0]["schedule"], "--no-report"])
    assert p.returncode == 3 and "cycle: AThenB -> BThenA -> AThenB" in p.stdout
    assert f"Schedule {dead[0]['schedule']} replayed (1 preemption(s))" in p.stdout


def test_stop_event_never_deadlocks_in_any_schedule(cdriver, tmp_path):
    code, x, _text = explore([cdriver("stop_event"), "--strict"], tmp_path, 0)
    assert [o["outcome"]["outcome"] for o in x["outcomes"]] == ["completed"]


def test_explore_json_on_stdout(cdriver, tmp_path):
    p = run_subprocess(["run", cdriver("abba", USE=1), "--explore", "--json", "--no-report"])
    assert p.returncode == 3
    x = json.loads(p.stdout)["explore"]
    assert x["schedules"] == sum(o["schedules"] for o in x["outcomes"]) and len(x["outcomes"]) == 2


def test_max_schedules_stops_and_says_so(cdriver, tmp_path):
    code, x, text = explore([cdriver("abba", USE=1), "--max-schedules", "2"], tmp_path)
    assert x["schedules"] == 2 and x["complete"] is False
    assert "stopped at --max-schedules 2" in text


@pytest.mark.parametrize("args,needle", [
    (["--explore", "--order", "move"], "--order with --explore"),
    (["--preemptions", "1"], "--preemptions is the bound of --explore"),
    (["--explore", "--preemptions", "-1"], "K >= 0"),
    (["--explore", "--max-schedules", "0"], "N >= 1"),
    (["--schedule", "1,x"], "choice numbers"),
    (["--schedule", "0,7"], "the schedule asks for option 7"),
    (["--schedule", "0,0,0,0,0,0,0,0,0,0,1"], "the schedule has 11"),
    (["--explore", "--schedule", "1"], "--explore and --schedule"),
    (["--schedule", "1", "--order", "move"], "--order with --schedule"),
], ids=["order", "bound_alone", "negative", "zero_schedules", "garbage", "no_such_option", "too_long", "both",
        "schedule_order"])
def test_bad_exploration_arguments(cdriver, tmp_path, args, needle):
    p = run_subprocess(["run", cdriver("abba", USE=1), *args, "--report-dir", str(tmp_path / "rep")])
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert needle in p.stderr and not (tmp_path / "rep").exists()

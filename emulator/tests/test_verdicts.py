"""Verdicts of the kernel model on paths the two TestDriver builds never reach: who a wake-up wakes,
what a wait returns, which findings appear (and which do not), the exact explanation of a deadlock,
and the schedules `--explore` runs within its bound. Each test was checked to fail with a plausible
wrong version of the code it covers (emulator/tests/mutants.py lists them and runs them)."""
import gc
import json

import pytest
from conftest import run_cli

from tdemu.cli import run


def _dbg(rep):
    return [p["text"] for p in rep["dbgprint"]]


def _rules(rep):
    return [v["rule"] for v in rep["verifier"]]


# ------------------------------------------------------------------ events (nt/ke.py)

@pytest.mark.parametrize("use,printed", [
    (1, ["First woken: 0\n", "Second woken: 0\n", "event state 1\n"]),
    (2, ["First woken: 0\n", "Second woken: 0\n", "event state 0\n"]),
    (3, ["Second woken: 102\n", "First woken: 102\n", "event state 0\n"]),
], ids=["notification_set_once", "synchronization_set_twice", "timeouts_in_order"])
def test_who_an_event_wakes(cdriver, tmp_path, use, printed):
    """A notification event set once wakes every waiter and stays signalled; a synchronization event
    wakes one waiter per set and is left not signalled; time-outs end earliest first, with
    STATUS_TIMEOUT (0x102)."""
    code, rep = run_cli([cdriver("two_waiters", USE=use), "--strict"], tmp_path)
    assert (code, rep["outcome"], rep["deadlock"]) == (0, "completed", None)
    assert _dbg(rep) == printed
    assert rep["verifier"] == [] and rep["unload"]["returned"] is True


def test_a_satisfied_wait_resets_a_synchronization_event_only(cdriver, tmp_path):
    code, rep = run_cli([cdriver("event_reset"), "--strict"], tmp_path)
    assert (code, rep["outcome"]) == (0, "completed")
    # STATUS_TIMEOUT (0x102) for the second wait on the synchronization event; the notification event
    # stays signalled
    assert _dbg(rep) == ["synchronization: 0 then 102, state 0\n", "notification: 0 then 0, state 1\n"]


# ------------------------------------------------------------------ IRQL (nt/ke.py)

def test_irql_raise_and_lower_report_the_wrong_direction_only(cdriver, tmp_path):
    code, rep = run_cli([cdriver("raise_irql")], tmp_path)
    assert (code, rep["outcome"]) == (0, "completed")
    # through the imports, not mingw-w64's inlines
    assert (rep["api_calls"]["KfRaiseIrql"], rep["api_calls"]["KeLowerIrql"]) == (3, 3)
    assert _dbg(rep) == ["raised from 0, then from 1; now 0\n"]
    assert [(v["rule"], v["text"]) for v in rep["verifier"]] == [
        ("raise_irql_lower", "KfRaiseIrql(0) below current IRQL 1"),
        ("lower_irql_higher", "KeLowerIrql(1) above current IRQL 0")]
    code, rep = run_cli([cdriver("raise_irql"), "--strict"], tmp_path / "strict")
    assert code == 6


def test_leaving_a_region_never_entered_is_reported_once_each(cdriver, tmp_path):
    code, rep = run_cli([cdriver("region_underflow")], tmp_path)
    assert (code, rep["outcome"]) == (0, "completed")
    assert _rules(rep) == ["critical_region_underflow", "guarded_region_underflow"]
    assert [v["count"] for v in rep["verifier"]] == [2, 1]  # the same call site twice: counted, listed once
    loader = next(t for t in rep["threads"] if t["kind"] == "loader")
    assert loader["kernel_apc_disable"] == 0


def test_fast_mutex_under_a_spin_lock_is_above_its_max_irql(cdriver, tmp_path):
    code, rep = run_cli([cdriver("fm_under_spin")], tmp_path)
    assert (code, rep["outcome"]) == (0, "completed")
    v = {x["api"]: (x["irql_name"], x["max_irql_name"]) for x in rep["irql_violations"]}
    assert v == {"ExAcquireFastMutex": ("DISPATCH_LEVEL", "APC_LEVEL"),
                 "ExReleaseFastMutex": ("DISPATCH_LEVEL", "APC_LEVEL")}
    assert _rules(rep) == ["fast_mutex_release_irql"]


# ------------------------------------------------------------------ the report's fast mutexes

@pytest.mark.parametrize("name,defines", [("fm_under_spin", {}), ("abba", {"USE": 2}), ("spinlock_io", {})],
                         ids=["fm_under_spin", "abba_spin", "spinlock_io"])
def test_spin_locks_are_not_listed_as_fast_mutexes(cdriver, tmp_path, name, defines):
    """A KSPIN_LOCK is 8 bytes: read as a FAST_MUTEX it shows Count 0 and an Owner of 1 (the lock's
    value), with the bytes after it as Contention and Event."""
    code, rep = run_cli([cdriver(name, **defines)], tmp_path)
    assert rep["outcome"] == "completed"
    spin = {a["mutex"] for t in rep["threads"] for a in t["acquires"]} - {m["address"] for m in rep["fast_mutexes"]}
    assert spin, "the driver took a spin lock"
    assert all(m["Event"]["Type"] == 1 and m["Event"]["Size"] == 6 for m in rep["fast_mutexes"])
    assert len(rep["fast_mutexes"]) == (1 if name == "fm_under_spin" else 0)


# ------------------------------------------------------------------ fast mutex arithmetic (nt/ex.py)

def test_a_release_while_a_waiter_is_being_woken_neither_wakes_nor_signals(cdriver, tmp_path):
    code, rep = run_cli([cdriver("woken_bit"), "--strict"], tmp_path)
    assert (code, rep["outcome"]) == (0, "completed")
    assert _dbg(rep) == ["Count 1, Contention 1, gate 0\n"]
    [fm] = rep["fast_mutexes"]
    assert (fm["Count"], fm["Owner"], fm["Event"]["SignalState"], fm["waiters"]) == (1, "0x0", 0, [])


# ------------------------------------------------------------------ deadlock explanations (nt/verifier.py)

def test_a_thread_waiting_on_a_cycle_names_the_cycle_only(cdriver, tmp_path):
    code, rep = run_cli([cdriver("thread_cycle")], tmp_path)
    assert (code, rep["outcome"]) == (3, "deadlock")
    why = {w["thread"]: (w["why"], w["chain"]) for w in rep["deadlock"]["waits"]}
    assert why == {"T1": ("cycle: T1 -> T2 -> T1", ["T1", "T2", "T1"]),
                   "T2": ("cycle: T2 -> T1 -> T2", ["T2", "T1", "T2"]),
                   "T3": ("cycle: T1 -> T2 -> T1", ["T3", "T1", "T2", "T1"])}


def test_a_mutex_whose_owner_ended_is_explained(cdriver, tmp_path):
    code, rep = run_cli([cdriver("owner_ended")], tmp_path)
    assert (code, rep["outcome"]) == (3, "deadlock")
    [w] = rep["deadlock"]["waits"]
    assert (w["thread"], w["why"], w["chain"]) == ("Waiter", "the owner Taker ended without releasing it",
                                                   ["Waiter", "Taker"])
    assert _rules(rep) == ["thread_exit_holding_fast_mutex", "thread_exit_irql"]


def test_a_lock_order_cycle_through_three_locks_is_found(cdriver, tmp_path):
    code, rep = run_cli([cdriver("lock_cycle")], tmp_path)
    assert (code, rep["outcome"]) == (0, "completed")
    [v] = rep["verifier"]
    assert v["rule"] == "lock_order_violation" and v["thread"] == "CThenA"
    assert "the opposite order of: AThenB acquired" in v["text"] and "; BThenC acquired" in v["text"]
    code, rep = run_cli([cdriver("lock_cycle"), "--strict"], tmp_path / "strict")
    assert code == 6


@pytest.mark.parametrize("use", [1, 2], ids=["fast_mutex", "spin_lock"])
def test_the_abba_deadlock_keeps_its_lock_order_finding(cdriver, tmp_path, use):
    """In the deadlocking schedule both second acquires are contended: the lock-order edges come from
    the contended path."""
    run(["run", cdriver("abba", USE=use), "--explore", "--preemptions", "1", "--report-dir", str(tmp_path),
         "--quiet"])
    x = json.load(open(tmp_path / "explore.json"))["explore"]
    [dead] = [o for o in x["outcomes"] if o["outcome"]["outcome"] == "deadlock"]
    assert dead["outcome"]["findings"] == ["lock_order_violation"]


# ------------------------------------------------------------------ stall before unload (nt/kernel.py)

def test_a_waiter_unload_woke_is_not_reported_deadlocked(cdriver, tmp_path):
    code, rep = run_cli([cdriver("stall_mixed")], tmp_path)
    assert (code, rep["outcome"]) == (3, "deadlock")
    assert _rules(rep) == ["recursive_fast_mutex_acquire"]  # not also a lock-order cycle of one lock
    dl = rep["deadlock"]
    assert [(w["thread"], w["why"]) for w in dl["waits"]] == [
        ("Recurser", "the owner is the waiting thread itself (recursive acquire)")]
    assert [e["thread"] for e in dl["edges"]] == ["Recurser"]
    assert [w["thread"] for w in dl["after_unload"]["waits"]] == ["Recurser"]
    stopper = next(t for t in rep["threads"] if t["name"] == "Stopper")
    assert stopper["state"] == "Terminated"


def test_a_waiter_unload_woke_that_waits_again_is_reported_on_its_new_wait(cdriver, tmp_path):
    code, rep = run_cli([cdriver("stall_mixed", USE=2)], tmp_path)
    assert (code, rep["outcome"]) == (3, "deadlock")
    edges = {e["thread"]: (e["kind"], e["owner"]) for e in rep["deadlock"]["edges"]}
    assert edges == {"Stopper": ("mutex", "Recurser"), "Recurser": ("mutex", "Recurser")}
    why = {w["thread"]: w["why"] for w in rep["deadlock"]["waits"]}
    assert why["Stopper"] == "the owner Recurser is blocked for ever: it waits for itself (recursive acquire)"


# ------------------------------------------------------------------ the preemption bound (explore.py)

def _schedules_within(path, bound):
    """Every schedule of the driver with at most BOUND preemptions, enumerated here rather than by
    explore.py: a depth-first walk of the choice tree that counts a schedule's preemptions from its
    own decisions. Returns the preemption count of each schedule."""
    from tdemu.explore import Chooser
    from tdemu.nt.kernel import Kernel, Options
    from tdemu.pecheck import load_driver_image

    image = load_driver_image(path)
    found = []
    stack = [[]]
    while stack:
        prefix = stack.pop()
        chooser = Chooser(prefix)
        Kernel(image, Options(chooser=chooser)).run()
        gc.collect()
        decisions = chooser.decisions
        cost = [1 if d.kind == "preempt" and d.chosen else 0 for d in decisions]
        found.append(sum(cost))
        for j in range(len(prefix), len(decisions)):
            extra = 1 if decisions[j].kind == "preempt" else 0
            if sum(cost[:j]) + extra <= bound:
                stack += [[d.chosen for d in decisions[:j]] + [alt] for alt in range(1, len(decisions[j].options))]
    return found


def test_explore_runs_exactly_the_schedules_within_the_bound(cdriver, tmp_path):
    """lock_cycle deadlocks only with two preemptions: at --preemptions 1 every schedule completes,
    and explore runs as many schedules as there are with at most one preemption (30: the whole
    tree has 78, 6 + 24 + 36 + 12 with 0, 1, 2 and 3 preemptions)."""
    drv = cdriver("lock_cycle")
    expected = _schedules_within(drv, 1)
    assert max(expected) == 1 and len(expected) == 30
    run(["run", drv, "--explore", "--preemptions", "1", "--report-dir", str(tmp_path), "--quiet"])
    x = json.load(open(tmp_path / "explore.json"))["explore"]
    assert x["complete"] and x["schedules"] == len(expected)
    assert all(o["preemptions"] <= 1 for o in x["outcomes"])
    assert {o["outcome"]["outcome"] for o in x["outcomes"]} == {"completed"}

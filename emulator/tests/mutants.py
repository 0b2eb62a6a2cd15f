"""A repeatable mutation run over the code that decides tdemu's verdicts and over src/nt.rs.

Each mutation below is one small, plausible mistake (a file, its exact old text, the new text, why
someone could write it), applied to a copy of the repository in target/mutants/; the tests that cover
the file run against the copy: the mutant is *killed* if they fail. What it needs, how long it takes
and why a listed set rather than mutmut or cargo-mutants: emulator/README.md, "Mutation run".

    .venv/bin/python emulator/tests/mutants.py                 # every mutation
    .venv/bin/python emulator/tests/mutants.py --list          # the mutations, without running anything
    .venv/bin/python emulator/tests/mutants.py --only ke-,ex-  # those whose id starts with ke- or ex-
    .venv/bin/python emulator/tests/mutants.py --python-only   # skip src/nt.rs; --rust-only: those only

Exit status: 0 when the score is at least --min-score (default 90), 1 below it, 2 for bad usage, a
missing build or a mutation that no longer applies (its old text is not found exactly once).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

EMU = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(EMU)
DRIVERS = (os.path.join(REPO, "out", "TestDriver.sys"), os.path.join(REPO, "out", "fixed", "TestDriver.sys"))
WORK = os.path.join(REPO, "target", "mutants")

KE, EX, VERIFIER, KERNEL, EXPLORE = ("emulator/tdemu/nt/ke.py", "emulator/tdemu/nt/ex.py",
                                     "emulator/tdemu/nt/verifier.py", "emulator/tdemu/nt/kernel.py",
                                     "emulator/tdemu/explore.py")
NT_RS = "src/nt.rs"

# The emulator tests a mutant of the kernel model runs against, quickest and most likely to fail first.
PY_TESTS = ("tests/test_verdicts.py", "tests/test_small_drivers.py", "tests/test_deadlock.py", "tests/test_faults.py",
            "tests/test_units.py", "tests/test_loops.py", "tests/test_explore.py", "tests/test_fixed.py")
TIMEOUT = 1200  # seconds; a mutant whose tests run longer (a hang) counts as killed, as mutmut counts it


@dataclass
class Mutation:
    id: str
    file: str
    old: str
    new: str
    why: str


MUTATIONS = [
    # ---------------------------------------------------------------- nt/ke.py
    Mutation("ke-set-event-wakes-one", KE, "        while waiters:\n            k.sched.wake(waiters.pop(0), 0)",
             "        if waiters:\n            k.sched.wake(waiters.pop(0), 0)",
             "KeSetEvent of a notification event wakes only the first waiter (a loop written as an if)"),
    Mutation("ke-sync-event-stays-signalled", KE,
             "            if typ == SYNCHRONIZATION_EVENT:\n                k.cpu.mem_write(obj + 4, struct.pack(\"<i\", 0))\n"
             "            return 0",
             "            return 0",
             "a satisfied wait does not reset a synchronization event"),
    Mutation("ke-set-sync-event-keeps-signal", KE,
             "            k.cpu.mem_write(ev + 4, struct.pack(\"<i\", 0))\n            return prev\n        while",
             "        while",
             "KeSetEvent of a synchronization event with a waiter also leaves it signalled"),
    Mutation("ke-zero-timeout-succeeds", KE,
             "        if at == k.ke.virtual_time:\n            return st.STATUS_TIMEOUT\n        k.ke.event_waiters",
             "        if at == k.ke.virtual_time:\n            return 0\n        k.ke.event_waiters",
             "a zero time-out on an event that is not signalled returns STATUS_SUCCESS"),
    Mutation("ke-raise-check-flipped", KE, "    if new < old:", "    if new > old:",
             "KfRaiseIrql reports a raise and lets a lowering through"),
    Mutation("ke-lower-check-flipped", KE, "    if new > t.irql:", "    if new < t.irql:",
             "KeLowerIrql reports a lowering and lets a raise through"),
    Mutation("ke-timer-ends-latest", KE, "    t = min(timed, key=lambda x: x.wait.timeout_at)",
             "    t = max(timed, key=lambda x: x.wait.timeout_at)",
             "the virtual clock jumps to the latest timed wait, not the earliest"),
    Mutation("ke-timeout-status", KE, "st.STATUS_TIMEOUT if t.wait.kind != \"delay\" else st.STATUS_SUCCESS",
             "st.STATUS_SUCCESS", "a timed-out wait returns STATUS_SUCCESS as if signalled"),
    Mutation("ke-critical-region-underflow", KE, "    if n <= 0:", "    if n < 0:",
             "KeLeaveCriticalRegion without KeEnterCriticalRegion is not reported (off by one)"),
    Mutation("ke-spin-lock-no-order", KE, "    lock_acquire(k, t, lock, \"spin lock\", site)\n", "",
             "spin locks skip the lock-order bookkeeping"),
    Mutation("ke-spin-owner-ignored", KE, "    if owner is None:\n        _take_spin", "    if True:\n        _take_spin",
             "a spin lock held by another thread is taken anyway"),
    # ---------------------------------------------------------------- nt/ex.py
    Mutation("ex-release-ignores-woken-bit", EX, "    if old != 0 and not old & FM_LOCK_WAITER_WOKEN:",
             "    if old != 0:", "release wakes (or signals) again while a woken waiter has not run yet"),
    Mutation("ex-contended-no-order", EX,
             "    lock_acquire(k, t, fm, \"FAST_MUTEX\", site)\n    # contended", "    # contended",
             "the contended acquire path skips the lock-order bookkeeping"),
    Mutation("ex-uncontended-no-order", EX,
             "        lock_acquire(k, t, fm, \"FAST_MUTEX\", site)\n        k.cpu.w32(fm, count & ~FM_LOCK_BIT)",
             "        k.cpu.w32(fm, count & ~FM_LOCK_BIT)", "the uncontended acquire skips the lock-order bookkeeping"),
    Mutation("ex-no-contention", EX, "    k.cpu.w32(fm + 0x10, k.cpu.u32(fm + 0x10) + 1)\n", "",
             "a contended acquire is not counted in Contention"),
    Mutation("ex-woken-retry-as-new", EX, "FM_LOCK_WAITER_WOKEN) if woken else", "FM_LOCK_WAITER_WOKEN) if not woken else",
             "a woken waiter retries as a new waiter (and a new one as woken)"),
    Mutation("ex-release-no-woken-swap", EX, "        new += FM_LOCK_WAITER_WOKEN - FM_LOCK_WAITER_INC\n", "",
             "release wakes a waiter without turning its count into the woken bit"),
    Mutation("ex-release-no-gate", EX, "        else:\n            k.cpu.w32(fm + FM_GATE, 1)", "",
             "release with waiters counted but none asleep does not signal the gate"),
    Mutation("ex-recursion-by-tid", EX, "    if owner == t.ethread:\n        if k.opts", "    if owner == t.tid:\n        if k.opts",
             "the recursive-acquire check compares the owner with the thread id"),
    Mutation("ex-release-owner-check-flipped", EX, "    elif owner != t.ethread:", "    elif owner == t.ethread:",
             "release by the owner is reported, release by another thread is not"),
    Mutation("ex-initialized-count-zero", EX, "ev_size == 6 and count >= 0)", "ev_size == 6 and count > 0)",
             "a taken mutex (Count 0) is reported as never initialised"),
    Mutation("ex-pool-fill-check", EX, "if b != POOL_FILL), None)", "if b != 0), None)",
             "the overrun check compares the bytes after a block with 0, not the fill pattern"),
    Mutation("ex-pool2-zeroing", EX, "not flags & POOL_FLAG_UNINITIALIZED)", "flags & POOL_FLAG_UNINITIALIZED)",
             "ExAllocatePool2 zeroes exactly when asked not to"),
    Mutation("ex-double-free", EX, "    e = k.ex.pool.pop(p, None)", "    e = k.ex.pool.get(p)",
             "a freed block stays allocated: a double free is not reported"),
    # ---------------------------------------------------------------- nt/verifier.py
    Mutation("verifier-cycle-whole-path", VERIFIER, "            cyc = path[path.index(o):] + [o]",
             "            cyc = path + [o]", "the cycle named includes the threads that lead to it"),
    Mutation("verifier-owner-ended-dropped", VERIFIER,
             "        if o.state == \"Terminated\":\n            return names, f\"the owner {o.name} ended without "
             "releasing it\"\n", "", "a mutex whose owner ended is explained as the owner's state"),
    Mutation("verifier-lock-path-direct", VERIFIER, "                stack.append(path + [nxt])",
             "                pass", "the lock-order search follows direct edges only"),
    Mutation("verifier-no-recursion-case", VERIFIER, "    if owner is t:\n        return [t.name, t.name]",
             "    if False:\n        return [t.name, t.name]", "a self-deadlock is explained as a cycle"),
    Mutation("verifier-spin-owner-unknown", VERIFIER, "        return k.ke.spinlocks.get(w.obj)", "        return None",
             "a spin lock's owner is not known to the deadlock analysis"),
    Mutation("verifier-self-edge", VERIFIER, "        if held == lock or (held, lock) in k.verifier.lock_edges:",
             "        if (held, lock) in k.verifier.lock_edges:", "re-acquiring a held lock is a lock-order edge to itself"),
    Mutation("verifier-count-duplicates", VERIFIER, "        v[\"count\"] += 1\n        return\n", "        v[\"count\"] += 1\n",
             "a repeated finding is listed again as well as counted"),
    # ---------------------------------------------------------------- nt/kernel.py: stall and deadlock detection
    Mutation("kernel-stall-any", KERNEL, "        if stall is not None and all(", "        if stall is not None and any(",
             "the stall seen before DriverUnload is kept if any (not all) of its waits remain"),
    Mutation("kernel-stall-any-object", KERNEL,
             "(t.state == \"Waiting\" and t.wait is not None and t.wait.obj == e[\"waits_on\"])",
             "(t.state == \"Waiting\" and t.wait is not None)",
             "the stall is kept when the same threads wait, on other objects"),
    Mutation("kernel-no-stall-snapshot", KERNEL,
             "                if waiting:\n                    self.stall_before_unload", "                if False:\n"
             "                    self.stall_before_unload", "no snapshot of the waits when DriverUnload is called"),
    Mutation("kernel-unload-regardless", KERNEL, "not self.io.unload_started and self.opts.unload == \"end\"",
             "not self.io.unload_started", "DriverUnload is called even with --unload never"),
    Mutation("kernel-no-after-unload", KERNEL, "        if self.io.unload_started:\n            # the state after",
             "        if not self.io.unload_started:\n            # the state after",
             "the state after unload is recorded only when unload never started"),
    # ---------------------------------------------------------------- explore.py
    Mutation("explore-prefix-one-short", EXPLORE, "chooser.decisions[:len(prefix)]",
             "chooser.decisions[:len(prefix) - 1]",
             "a preemption at the end of a prefix is not counted: bound K allows K+1"),
    Mutation("explore-bound-strict", EXPLORE, "if used + (1 if d.kind == \"preempt\" else 0) <= bound:",
             "if used + (1 if d.kind == \"preempt\" else 0) < bound:", "bound K allows K-1 preemptions (and no switch at 0)"),
    Mutation("explore-skip-first-alternative", EXPLORE, "for alt in range(1, len(d.options))]",
             "for alt in range(2, len(d.options))]", "the first other option at each choice point is never run"),
    Mutation("explore-switches-counted", EXPLORE, "if d.kind == \"preempt\" and d.chosen)\n\n\nclass SchedulePolicy",
             "if d.chosen)\n\n\nclass SchedulePolicy", "a schedule's preemptions count its switches too"),
    Mutation("explore-no-preemption-points", EXPLORE, "        deps = [r for r in ready if dependent(fp, r.pending[1])]",
             "        deps = []", "the policy never offers a preemption (only switches)"),
    Mutation("explore-positioned-not-ready", EXPLORE, "                r.state = \"Ready\"\n                sched.ready.insert(idx, r)",
             "                r.state = \"Ready\"", "a thread positioned at its next call is not put back in the ready queue"),
    # ---------------------------------------------------------------- src/nt.rs
    Mutation("nt-printf-exact-fit", NT_RS, "    if text.count() > capacity {", "    if text.count() >= capacity {",
             "an exactly full destination is reported as an overflow"),
    Mutation("nt-oa-swapped", NT_RS,
             "        RootDirectory: root_directory,\n        ObjectName: object_name,\n        Attributes: attributes,\n"
             "        SecurityDescriptor: security_descriptor,",
             "        RootDirectory: security_descriptor,\n        ObjectName: object_name,\n        Attributes: attributes,\n"
             "        SecurityDescriptor: root_directory,", "RootDirectory and SecurityDescriptor swapped"),
    Mutation("nt-fm-contention-kept", NT_RS, "    fm.Contention = 0;\n", "",
             "ExInitializeFastMutex leaves Contention as it was"),
    Mutation("nt-fm-notification-event", NT_RS, "KeInitializeEvent(&raw mut fm.Event, SynchronizationEvent,",
             "KeInitializeEvent(&raw mut fm.Event, NotificationEvent,",
             "the FAST_MUTEX's gate initialised as a notification event"),
    Mutation("nt-printf-no-terminator-room", NT_RS, "dest.iter_mut().take(capacity)", "dest.iter_mut().take(capacity + 1)",
             "a truncated result fills the last slot and loses its NUL"),
    Mutation("nt-wcslen-flipped", NT_RS, "position(|&unit| unit == 0)", "position(|&unit| unit != 0)",
             "wcslen stops at the first non-NUL"),
    Mutation("nt-rename-no-header", NT_RS, "        header + file_name_length\n", "        file_name_length\n",
             "the rename length leaves out the FILE_RENAME_INFORMATION header"),
    Mutation("nt-rename-no-replace", NT_RS, "ReplaceIfExists = BOOLEAN::from(true);",
             "ReplaceIfExists = BOOLEAN::from(false);", "the rename does not replace an existing file"),
]


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "-C", REPO, "ls-files", "-co", "--exclude-standard"], capture_output=True, text=True,
                         check=True).stdout
    return [p for p in out.splitlines() if os.path.isfile(os.path.join(REPO, p))]


def make_tree(tree: str) -> None:
    """A copy of the repository's files (tracked and new, not ignored) at tree."""
    for p in tracked_files():
        dst = os.path.join(tree, p)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(os.path.join(REPO, p), dst)


def check(mutations: list[Mutation]) -> list[str]:
    problems = []
    for m in mutations:
        n = open(os.path.join(REPO, m.file)).read().count(m.old)
        if n != 1:
            problems.append(f"{m.id}: the old text occurs {n} times in {m.file} (must be exactly once)")
    return problems


def run_tests(m: Mutation, tree: str, log) -> bool:
    """True if the tests pass with the mutation applied (the mutant survives)."""
    if m.file.endswith(".rs"):
        script = 'source linux/env.sh && "$CARGO" test "${LINUX_CARGO_ARGS[@]}" "${HOST_TEST_CARGO_ARGS[@]}"'
        env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(WORK, "cargo"))
        cmd = ["bash", "-c", script]
    else:
        env = dict(os.environ, TDEMU_DRIVER=DRIVERS[0], TDEMU_FIXED_DRIVER=DRIVERS[1], PYTHONDONTWRITEBYTECODE="1")
        env.pop("PYTHONPATH", None)
        cmd = [sys.executable, "-m", "pytest", "-c", "emulator/pyproject.toml", "--rootdir", "emulator", "-x", "-q",
               "-p", "no:cacheprovider", *[os.path.join("emulator", t) for t in PY_TESTS]]
    try:
        p = subprocess.run(cmd, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        log.write(f"\nmutants.py: the tests ran longer than {TIMEOUT} s: killed (a hang)\n")
        return False
    return p.returncode == 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="emulator/tests/mutants.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--only", metavar="PREFIX[,PREFIX...]", help="run the mutations whose id starts with a PREFIX")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--python-only", action="store_true", help="skip the mutations of src/nt.rs")
    group.add_argument("--rust-only", action="store_true", help="only the mutations of src/nt.rs")
    ap.add_argument("--min-score", type=float, default=90.0, metavar="PERCENT")
    ap.add_argument("--log-dir", default=os.path.join(WORK, "logs"),
                    help="one test log per mutant (default: target/mutants/logs)")
    args = ap.parse_args(argv)
    prefixes = tuple(args.only.split(",")) if args.only else ("",)
    chosen = [m for m in MUTATIONS if m.id.startswith(prefixes)
              and not (args.python_only and m.file.endswith(".rs")) and not (args.rust_only and not m.file.endswith(".rs"))]
    if not chosen:
        print(f"mutants.py: no mutation id starts with {args.only!r} (see --list)", file=sys.stderr)
        return 2
    problems = check(chosen)
    if problems:
        print("mutants.py: the list no longer fits the code:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    if args.list:
        for m in chosen:
            print(f"{m.id:34} {m.file}: {m.why}")
        return 0
    for p in DRIVERS:
        if not os.path.isfile(p):
            print(f"mutants.py: {p} is missing: run bash linux/build.sh and bash linux/build.sh --fixed first",
                  file=sys.stderr)
            return 2
    # its own copy per kind, so a Python-only and a Rust-only run can go side by side
    tree = os.path.join(WORK, "tree" + ("-py" if args.python_only else "-rs" if args.rust_only else ""))
    shutil.rmtree(tree, ignore_errors=True)
    make_tree(tree)
    os.makedirs(args.log_dir, exist_ok=True)
    survivors = []
    t0 = time.perf_counter()
    for i, m in enumerate(chosen, 1):
        path = os.path.join(tree, m.file)
        original = open(path).read()
        with open(path, "w") as f:
            f.write(original.replace(m.old, m.new, 1))
        t = time.perf_counter()
        try:
            with open(os.path.join(args.log_dir, m.id + ".log"), "w") as log:
                survived = run_tests(m, tree, log)
        finally:
            with open(path, "w") as f:
                f.write(original)
        print(f"[{i}/{len(chosen)}] {'SURVIVED' if survived else 'killed  '} {m.id} ({time.perf_counter() - t:.0f} s)",
              flush=True)
        if survived:
            survivors.append(m)
    killed = len(chosen) - len(survivors)
    score = 100.0 * killed / len(chosen)
    print(f"\nmutation score: {killed}/{len(chosen)} killed = {score:.1f}% "
          f"({time.perf_counter() - t0:.0f} s; logs in {args.log_dir})")
    for m in survivors:
        print(f"  survived: {m.id} ({m.file}): {m.why}")
    return 0 if score >= args.min_score else 1


if __name__ == "__main__":
    sys.exit(main())

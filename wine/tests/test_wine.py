"""TestDriver.sys under Wine: loaded by sc.exe into winedevice.exe, on real threads and files.

One throwaway prefix serves the whole session (wine/winerun.py makes it and
removes it). The default build is started once: it must reach RUNNING, write
nothing, and leave its threads blocked in ExAcquireFastMutex at the return
addresses tdemu reports; `sc stop` is then observed. The fixed build is
started several times in a row: each run must end with NewFile_0..999.txt
(1500 bytes of "Hello, World!\\r\\n" x 100) in C:\\Temp2 and C:\\Temp empty,
whatever order Wine's scheduler gives the two threads; half the runs are
stopped with `sc stop` right after `sc start`, while the threads still work.

What is asserted is behaviour Wine really has: files, service states, thread
stacks, what `sc stop` does. Not FAST_MUTEX fields: Wine's ExAcquireFastMutex
decrements Count and never writes Owner, Contention or OldIrql.

Before `sc stop`, each build's winedevice.exe is dumped once (out/fulldump.exe,
full memory) and read back with lldb (lldb/analyze.py, as linux/analyze-dump.sh
runs it): the waiters, their return addresses (equal to winedbg's and tdemu's),
the mutex's Count as Wine keeps it; the fixed build's dump shows no waiter.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "wine"))
import winerun as W  # noqa: E402

BUILDS = {"default": REPO / "out" / "TestDriver.sys", "fixed": REPO / "out" / "fixed" / "TestDriver.sys"}
# Runs of the fixed build in one session: even runs complete on their own,
# odd runs are stopped right after sc start. ~1.2 s each (measured).
FIXED_RUNS = 10
SETTLE = 2.0  # seconds the folders must stay unchanged before the default build is looked at
# The thread routines, whatever module path the symbols give them (TestDriver::seed::file_move_thread).
CREATION, MOVE = "file_creation_thread", "file_move_thread"


@pytest.fixture(scope="session")
def builds(tmp_path_factory) -> dict[str, Path]:
    """Private copies of both builds (.sys, .pdb, .map), so a rebuild during the session changes nothing."""
    out = {}
    for name, sys_path in BUILDS.items():
        if not sys_path.is_file():
            pytest.fail(f"{sys_path} is missing: run linux/build.sh (and linux/build.sh --fixed) first")
        d = tmp_path_factory.mktemp(name)
        for suffix in (".sys", ".pdb", ".map"):
            src = sys_path.with_suffix(suffix)
            if src.is_file():
                shutil.copy2(src, d / src.name)
        out[name] = d / sys_path.name
    return out


@pytest.fixture(scope="session")
def prefix():
    if not W.WINE64.exists():
        pytest.fail(f"{W.WINE64} is missing: install Wine (source linux/env.sh; ensure_debian_packages wine)")
    p = W.Prefix()
    try:
        p.create()
        yield p
    finally:
        p.close()
        assert not p.root.exists(), f"{p.root} was not removed"


def recreate_service(prefix: W.Prefix, sys_path: Path) -> None:
    prefix.sc("stop", W.SERVICE)
    prefix.sc("delete", W.SERVICE)
    prefix.install(sys_path)
    r = prefix.create_service()
    assert r.returncode == 0, f"sc create: {r.describe_error()}\n{r.stderr}"
    prefix.clear_folders()


@dataclass
class Stopped:
    """What `sc stop` did."""

    result: W.Result
    unload_logged: bool
    host_exited: bool | None
    files_before: W.Files | None = None
    files_after: W.Files | None = None
    host_pid: int | None = None


def stop_service(prefix: W.Prefix, host_pid: int | None = None, started_at: int | None = None) -> Stopped:
    """sc stop, with the folders listed just before and after it; then, if the host winedevice.exe is
    known (`host_pid`, or found in the log from line `started_at` on, after the stop), whether it exited.
    Nothing here runs winedbg before sc stop."""
    before = prefix.files()
    r, unloaded = prefix.stop_service()
    after = prefix.files()
    if host_pid is None and started_at is not None:
        host_pid = prefix.driver_host_pid(started_at)
    exited = W.wait_processes_gone(prefix, {host_pid}, 10) if host_pid is not None else None
    return Stopped(r, unloaded, exited, before, after, host_pid)


@dataclass
class DefaultRun:
    run: W.Run
    load_lines: list[str]
    stop: Stopped
    services_after_stop: int | None
    delete: W.Result
    query_after_delete: W.Result
    dump: Path | None = None  # the host's full-memory dump, taken before sc stop


def write_dump(prefix: W.Prefix, run: W.Run, sys_path: Path, directory: Path) -> Path:
    assert run.host_pid is not None, "no 'Loaded ...TestDriver.sys' line names the winedevice.exe to dump"
    dump, _ = prefix.write_dump(run.host_pid, directory, sys_path)
    return dump


@pytest.fixture(scope="session")
def default_run(prefix, builds, tmp_path_factory) -> DefaultRun:
    recreate_service(prefix, builds["default"])
    run = W.run_once(prefix, settle=SETTLE, wait=SETTLE * 3)
    loaded = [line for line in run.driver_lines if "Loaded" in line]
    dump = write_dump(prefix, run, builds["default"], tmp_path_factory.mktemp("default-dump"))
    stop = stop_service(prefix, run.host_pid)
    services = prefix.query("PlugPlay")[0]
    delete = prefix.sc("delete", W.SERVICE)
    return DefaultRun(run, loaded, stop, services, delete, prefix.query()[1], dump)


@dataclass
class FixedRuns:
    runs: list[W.Run] = field(default_factory=list)  # even runs: left to finish
    stops: list[Stopped] = field(default_factory=list)  # odd runs: sc stop right after sc start
    natural_stops: list[Stopped] = field(default_factory=list)
    seconds: float = 0.0
    dump: Path | None = None  # the first run's host, dumped after its threads ended, before sc stop


@pytest.fixture(scope="session")
def fixed_runs(prefix, builds, tmp_path_factory) -> FixedRuns:
    recreate_service(prefix, builds["fixed"])
    result = FixedRuns()
    t0 = time.monotonic()
    for i in range(FIXED_RUNS):
        prefix.clear_folders()
        detail = i < 2  # threads and host process are looked at in the first two runs only (winedbg)
        if i % 2 == 0:
            run = W.run_once(prefix, settle=SETTLE, wait=30, stacks=detail)
            result.runs.append(run)
            if i == 0:
                t_dump = time.monotonic()
                result.dump = write_dump(prefix, run, builds["fixed"], tmp_path_factory.mktemp("fixed-dump"))
                t0 += time.monotonic() - t_dump  # the runs' time, without the dump's
            result.natural_stops.append(stop_service(prefix, run.host_pid))
        else:
            # Nothing between sc start and sc stop but the folder listing: the host winedevice.exe is
            # found in the log afterwards, and winedbg (about 0.5 s a call) only runs after sc stop.
            mark = len(prefix.log())
            start, _ = W.start_service(prefix)
            previous = (result.natural_stops or [None])[-1]
            assert W.state_of(start.stdout) == 4, (
                f"run {i}: sc start: {start.describe_error()}\n{start.stdout}\n"
                f"the previous run's sc stop: " + (
                    f"exit {previous.result.returncode}, state {W.state_of(previous.result.stdout)}, "
                    f"unload logged {previous.unload_logged}, host exited {previous.host_exited}\n"
                    if previous else "none\n") +
                "Wine's services log since this sc start:\n" + "\n".join(prefix.log()[mark:][-40:]))
            result.stops.append(stop_service(prefix, started_at=mark if detail else None))
    result.seconds = time.monotonic() - t0
    prefix.sc("delete", W.SERVICE)
    return result


def tdemu_report(sys_path: Path, order: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO / "emulator"))
    p = subprocess.run([sys.executable, "-m", "tdemu", "run", str(sys_path), "--json", "--no-report",
                        "--order", order], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 3, f"tdemu did not report the deadlock (exit {p.returncode}): {p.stderr[-2000:]}"
    return json.loads(p.stdout)


def role(function: str | None) -> str | None:
    """CREATION or MOVE for a thread routine's symbol, else the symbol."""
    name = (function or "").split("!")[-1]
    return next((r for r in (CREATION, MOVE) if name.endswith("::" + r) or name == r), function)


def by_function(stacks: list[W.Stack]) -> dict[str, W.Stack]:
    return {role(s.thread_function): s for s in stacks}


# -- default build -----------------------------------------------------------------


def test_default_build_loads_natively_and_reaches_running(default_run):
    run = default_run.run
    assert W.state_of(run.start.stdout) == 4, run.start.stdout + run.start.stderr
    assert run.state == 4, "the service left RUNNING while its threads were blocked"
    assert default_run.load_lines, "winedevice.exe logged no load of TestDriver.sys"
    assert re.search(r'Loaded L".*\\\\drivers\\\\TestDriver\.sys" at [0-9A-F]{16}: native',
                     default_run.load_lines[0]), default_run.load_lines[0]


def test_default_build_writes_nothing(default_run):
    files = default_run.run.files
    assert files.temp == {} and files.temp2 == {}, files.summary()
    assert default_run.run.last_file_seconds is None


def test_default_build_threads_blocked_in_exacquirefastmutex(default_run):
    run = default_run.run
    threads = by_function(run.stacks)
    assert run.outcome == "deadlock"
    # FileCreationThread always ends in its second acquire. FileMoveThread waits behind it, or, when the
    # scheduler ran it first, found no file, released the mutex and ended (tdemu's --order move).
    assert CREATION in threads, f"no thread in {CREATION}: {list(threads)}"
    assert set(threads) <= {CREATION, MOVE}, list(threads)
    assert run.blocked == run.stacks, "a driver thread is somewhere else than ExAcquireFastMutex"
    for s in run.stacks:
        called = s.called_routine()
        assert called is not None and called.function == "ExAcquireFastMutex" and called.module == "ntoskrnl"
        # The wait is Wine's: KeWaitForSingleObject on the mutex's event, below ExAcquireFastMutex.
        assert any(f.function == "KeWaitForSingleObject" for f in s.frames if f.index < called.index)
        assert s.pid == run.host_pid, "a blocked thread is not in the winedevice.exe that loaded the driver"


def test_default_build_stacks_are_named_from_the_pdb(default_run):
    for s in default_run.run.stacks:
        drv = s.driver_frame()
        assert drv.module == W.DRIVER_MODULE
        assert drv.offset is not None and drv.source and drv.source.split(":")[0].endswith(".rs"), drv


def test_blocked_return_addresses_equal_tdemus(default_run, builds):
    run = default_run.run
    wine = by_function(run.stacks)
    order = "creation" if MOVE in wine else "move"
    report = tdemu_report(builds["default"], order)
    tdemu = {role(t["name"]): t for t in report["threads"] if t["kind"] == "driver" and t["state"] == "Waiting"}
    assert set(tdemu) == set(wine), f"blocked threads: tdemu {sorted(tdemu)}, Wine {sorted(wine)} ({order} first)"
    wine_base = int(re.search(r" at ([0-9A-F]{16}): native", default_run.load_lines[0]).group(1), 16)
    tdemu_base = int(report["driver"]["image_base"], 16)
    for name, s in wine.items():
        drv = s.driver_frame()
        emulated = tdemu[name]
        assert drv.address - wine_base == int(emulated["return_address"], 16) - tdemu_base, (
            f"{name}: Wine returns to 0x{drv.address:x}, tdemu to {emulated['return_address']}")
        assert emulated["call_site"] == f"TestDriver!{drv.name}", (emulated["call_site"], drv.name)
        assert emulated["wait_function"] == "nt!ExAcquireFastMutex"


def test_sc_stop_of_the_deadlocked_build(default_run):
    """Wine runs DriverUnload (IoDeleteDevice), unloads the image under the two blocked threads, reports
    STOPPED at once, and ends the winedevice.exe that hosted them; the service manager keeps working.
    (On Windows this unload is the use-after-free the README warns about.)"""
    stop = default_run.stop
    assert stop.result.returncode == 0 and W.state_of(stop.result.stdout) == 1, stop.result.stdout
    assert stop.result.seconds < 10
    assert stop.unload_logged, "no 'Unloaded module ...TestDriver.sys' after sc stop"
    assert default_run.run.host_pid is not None, "the winedevice.exe made for TestDriver.sys was not found"
    assert stop.host_exited, "the winedevice.exe with the blocked threads is still running"
    assert stop.files_after.temp == {} and stop.files_after.temp2 == {}
    assert default_run.services_after_stop == 4, "services.exe no longer answers after sc stop"
    assert default_run.delete.returncode == 0, default_run.delete.describe_error()
    assert default_run.query_after_delete.error == 1060


# -- fixed build ---------------------------------------------------------------------


def test_fixed_build_moves_the_1000_files_in_every_run(fixed_runs, prefix):
    results = []
    for i, run in enumerate(fixed_runs.runs):
        results.append(f"run {2 * i}: {run.files.summary()}")
    for i, stop in enumerate(fixed_runs.stops):
        results.append(f"run {2 * i + 1} (stopped at once): {stop.files_after.summary()}")
    bad = [r for r, ok in zip(results, [r.files.moved_ok() for r in fixed_runs.runs]
                              + [s.files_after.moved_ok() for s in fixed_runs.stops]) if not ok]
    assert not bad, "not NewFile_0..999.txt of 1500 bytes in C:\\Temp2 with C:\\Temp empty:\n" + "\n".join(bad)
    print(f"\n{FIXED_RUNS} fixed-build runs under Wine in {fixed_runs.seconds:.1f} s")


def test_fixed_build_writes_the_seeds_bytes(fixed_runs, prefix):
    # The folders hold the last run's files.
    assert prefix.files().moved_ok()
    assert prefix.file_data_ok(), "a file in C:\\Temp2 does not hold 'Hello, World!\\r\\n' x 100"


def test_fixed_build_completes_and_its_threads_end(fixed_runs):
    first = fixed_runs.runs[0]
    assert W.state_of(first.start.stdout) == 4
    assert first.last_file_seconds is not None and first.last_file_seconds < 30
    # No driver frame means something only if winedbg walked the host's threads (it exits 0 either way).
    assert first.host_pid is not None, "no 'Loaded ...TestDriver.sys' line names the host winedevice.exe"
    assert first.host_stacks and any(s.frames for s in first.host_stacks), (
        f"winedbg walked no thread of the host winedevice.exe 0x{first.host_pid:x}: "
        "then no driver stack proves nothing")
    assert first.stacks == [], "a thread is still in TestDriver.sys after the 1000 files were moved"
    assert first.outcome == "completed"
    assert all(r.last_file_seconds is not None for r in fixed_runs.runs)


def test_sc_stop_of_the_fixed_build_waits_for_the_threads(fixed_runs):
    """sc stop right after sc start: DriverUnload waits for both threads, so when sc stop returns
    STOPPED the work is complete, and it was not when sc stop was issued."""
    for i, stop in enumerate(fixed_runs.stops):
        assert stop.result.returncode == 0 and W.state_of(stop.result.stdout) == 1, stop.result.stdout
        assert not stop.files_before.moved_ok(), (
            f"run {2 * i + 1}: the threads had finished before sc stop was issued; nothing was waited for")
        assert stop.files_after.moved_ok(), f"run {2 * i + 1}: sc stop returned before the threads' work " \
                                            f"was done: {stop.files_after.summary()}"
        assert stop.unload_logged
    assert fixed_runs.stops[0].host_pid is not None, "no 'Loaded ...TestDriver.sys' line names the host"
    assert fixed_runs.stops[0].host_exited, "the winedevice.exe of the fixed build is still running after sc stop"


def test_sc_stop_of_the_finished_fixed_build(fixed_runs):
    for stop in fixed_runs.natural_stops:
        assert stop.result.returncode == 0 and W.state_of(stop.result.stdout) == 1, stop.result.stdout
        assert stop.unload_logged
        assert stop.files_after.moved_ok(), "sc stop changed the files"
    assert fixed_runs.natural_stops[0].host_exited


# -- the command line ------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["run", "/nonexistent/TestDriver.sys"], "no such file"),
    (["run", "{notpe}"], "not a PE image"),
    (["run", "{sys}", "--bogus"], "unrecognized arguments"),
    (["run", "{sys}", "--settle", "soon"], "not a number of seconds"),
    (["bench", "{sys}", "--runs", "0"], "expected a number of runs"),
    ([], "required"),
])
def test_bad_input_is_refused_before_any_prefix(tmp_path, builds, args, message):
    notpe = tmp_path / "notpe.sys"
    notpe.write_bytes(b"not a driver")
    argv = [a.format(notpe=notpe, sys=builds["default"]) for a in args]
    env = dict(os.environ, TMPDIR=str(tmp_path))
    p = subprocess.run([sys.executable, str(REPO / "wine" / "winerun.py"), *argv], capture_output=True,
                       text=True, env=env, timeout=60)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert message in p.stderr, p.stderr
    assert p.stdout == ""
    assert sorted(x.name for x in tmp_path.iterdir()) == ["notpe.sys"], "a prefix was made for bad input"


# -- winerun's reading of winedbg and of the log, without Wine -------------------------


class CannedPrefix(W.Prefix):
    """A Prefix (never created) whose wine commands all answer `stdout` with exit code `returncode`."""

    def __init__(self, parent: Path, stdout: str, returncode: int = 0):
        super().__init__(str(parent))
        self.canned = W.Result([], returncode, stdout, "", 0.0)

    def run(self, args, timeout, debug="fixme-all"):
        return self.canned


# What winedbg 8.0 printed, with exit code 0, for a script whose `attach` failed (measured).
ATTACH_FAILED = ("Can't attach process 0124: error 87\n"
                 "No process loaded, cannot execute 'print 0x128'\n"
                 "You must be attached to a process to run this command.\n"
                 "No process loaded, cannot execute 'detach'\n")


@pytest.mark.parametrize("stdout, returncode", [(ATTACH_FAILED, 0), ("", 0), ("", 1)],
                         ids=["attach_failed", "no_output", "exit_1"])
def test_winedbg_failures_are_errors_not_empty_listings(tmp_path, stdout, returncode):
    """An empty stack list is how "no thread left in the driver" reads: winedbg failing must not read so."""
    with CannedPrefix(tmp_path, stdout, returncode) as p:
        with pytest.raises(W.WineError, match="did not walk the threads of pid 0x124"):
            p.backtraces(0x124, [0x128, 0x130])
        with pytest.raises(W.WineError, match="`info thread` listed no process"):
            p.threads()
        with pytest.raises(W.WineError, match="`info process` listed no process"):
            p.processes()  # else wait_processes_gone would take every process for gone
    assert not p.root.exists()


@pytest.mark.parametrize("failures, runs, returncode", [(1, 2, 0), (5, 3, 1)], ids=["once", "always"])
def test_a_process_wine_could_not_start_is_started_again(tmp_path, monkeypatch, failures, runs, returncode):
    """Wine 8.0's start failure (KUSER_SHARED_DATA's address taken) is retried, twice at most; the
    command's own failures are not (the fake wine64 counts its runs)."""
    count = tmp_path / "runs"
    fake = tmp_path / "wine64"
    fake.write_text(f"""#!/bin/sh
echo x >>'{count}'
if [ "$(wc -l <'{count}')" -le {failures} ]; then
  echo 'err:virtual:virtual_alloc_first_teb wine: {W.NOT_STARTED}: c0000018' >&2; exit 1
fi
echo ran; exit 0
""")
    fake.chmod(0o755)
    monkeypatch.setattr(W, "WINE64", fake)
    with W.Prefix(str(tmp_path)) as p:
        r = p.run(["sc", "query"], timeout=10)
        assert (r.returncode, len(count.read_text().splitlines())) == (returncode, runs)
        assert (r.stdout == "ran\n") == (returncode == 0) and (W.NOT_STARTED in r.stderr) == (returncode == 1)
        count.unlink()
        fake.write_text("#!/bin/sh\necho x >>'" + str(count) + "'\necho 'err:sc:StopService failed 1062' >&2; exit 1\n")
        assert p.run(["sc", "stop", "TestDrv"], timeout=10).returncode == 1
        assert len(count.read_text().splitlines()) == 1, "a command that ran and failed was run again"


def test_the_host_pid_is_read_from_the_load_line(tmp_path):
    with CannedPrefix(tmp_path, "") as p:
        p.log_path.write_text(
            '0124:0128:trace:loaddll:build_module Loaded L"C:\\windows\\system32\\ntoskrnl.exe" at '
            '000000031CA90000: builtin\n'
            '0124:0130:trace:loaddll:build_module Loaded L"C:\\windows\\system32\\drivers\\TestDriver.sys" at '
            '0000000180000000: native\n'
            '0124:0130:trace:loaddll:free_modref Unloaded module L"C:\\windows\\system32\\drivers\\'
            'TestDriver.sys" : native\n')
        assert p.driver_host_pid(0) == 0x124
        assert p.driver_host_pid(2) is None  # only the unload after line 2


# -- the full-memory dumps, read with lldb (lldb/analyze.py) ------------------------------------

ANALYZE = REPO / "lldb" / "analyze.py"
_ROW = re.compile(r"^#(\d+)\s+0x([0-9a-f]+)\s+(\S+)\s+(0x[0-9a-f]+|unknown)\s+.*?(TestDriver!\S+)")
_RET = re.compile(r"^#(\d+): .*return address 0x([0-9a-f]+)$")


@dataclass
class Analysis:
    code: int
    out: str
    err: str
    rows: dict[str, dict] = field(default_factory=dict)  # role -> tid, wait site, mutex, caller, return address


def analyze(dump: Path, *args: str) -> Analysis:
    p = subprocess.run([sys.executable, str(ANALYZE), str(dump), *args], capture_output=True, text=True,
                       timeout=300)
    a = Analysis(p.returncode, p.stdout, p.stderr)
    returns = {m.group(1): int(m.group(2), 16) for m in map(_RET.match, p.stdout.splitlines()) if m}
    for m in map(_ROW.match, p.stdout.splitlines()):
        if m:
            caller = m.group(5)
            a.rows[role(caller.split("!", 1)[1].rsplit("+", 1)[0])] = {
                "tid": int(m.group(2), 16), "wait_site": m.group(3), "mutex": m.group(4), "caller": caller,
                "return_address": returns.get(m.group(1))}
    return a


@pytest.fixture(scope="session")
def default_analysis(default_run) -> Analysis:
    return analyze(default_run.dump)


def test_default_dump_shows_the_deadlock_as_the_seeds_walkthrough(default_run, default_analysis):
    a = default_analysis
    assert a.code == 3, a.out + a.err
    assert "Runtime: Wine (" in a.out
    walked = by_function(default_run.run.stacks)
    assert set(a.rows) == set(walked), f"lldb: {sorted(a.rows)}, winedbg: {sorted(walked)}"
    for name, row in a.rows.items():
        assert row["wait_site"].startswith("ntoskrnl!ExAcquireFastMutex+0x"), row
        assert row["tid"] == walked[name].tid
    assert len({row["mutex"] for row in a.rows.values()}) == 1, "the waiters wait on different mutexes"
    for step in ("(lldb) wrfastmutex", "(lldb) thread backtrace ", "(lldb) register read",
                 "(lldb) memory read --size 8 --format x --count 7 ", "(lldb) fastmutex "):
        assert step in a.out, f"the walk-through lacks {step!r}"
    # Wine's Count: 1 free, 0 held, -N held with N waiters; Owner, Contention, OldIrql never written
    count = re.search(r"\+0x000 Count\s+: 0n(-?\d+)", a.out)
    assert count and int(count.group(1)) == -len(a.rows), a.out
    assert re.search(r"\+0x008 Owner\s+: 0x0 ", a.out) and "not recorded (Wine" in a.out
    assert f"WaitListHead.Flink {len(a.rows)} (Wine: threads waiting on it)" in a.out


def test_lldb_return_addresses_equal_winedbgs_and_tdemus(default_run, default_analysis, builds):
    walked = by_function(default_run.run.stacks)
    lldb_ret = {name: row["return_address"] for name, row in default_analysis.rows.items()}
    winedbg_ret = {name: s.driver_frame().address for name, s in walked.items()}
    assert lldb_ret == winedbg_ret, f"lldb {lldb_ret} != winedbg {winedbg_ret}"
    report = tdemu_report(builds["default"], "creation" if MOVE in walked else "move")
    tdemu = {role(t["name"]): int(t["return_address"], 16) - int(report["driver"]["image_base"], 16)
             for t in report["threads"] if t["kind"] == "driver" and t["state"] == "Waiting"}
    base = int(re.search(r" at ([0-9A-F]{16}): native", default_run.load_lines[0]).group(1), 16)
    assert {n: r - base for n, r in lldb_ret.items()} == tdemu, "lldb's return addresses differ from tdemu's"


def test_fixed_dump_shows_no_waiter(fixed_runs):
    a = analyze(fixed_runs.dump)
    assert a.code == 0, a.out + a.err
    assert "Runtime: Wine (" in a.out and "No thread waits in ExAcquireFastMutex" in a.out
    assert a.rows == {}
    assert fixed_runs.runs[0].files.moved_ok(), "the dumped run did not move the 1000 files"


def test_truncated_dump_is_refused(default_run, tmp_path):
    cut = tmp_path / "TestDriver.dmp"
    data = default_run.dump.read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    for name in ("TestDriver.sys", "TestDriver.pdb"):
        shutil.copy(default_run.dump.parent / name, tmp_path / name)
    before = sorted(tmp_path.iterdir())
    a = analyze(cut)
    assert a.code == 2 and "truncated" in a.err and a.out == "", a.err
    assert sorted(tmp_path.iterdir()) == before


def test_dump_with_the_other_builds_pdb_is_refused(default_run, builds, tmp_path):
    """The fixed build's PDB beside the default build's dump does not match its CodeView record."""
    for name in ("TestDriver.sys", "TestDriver.pdb"):
        shutil.copy(builds["fixed"].parent / name, tmp_path / name)
    a = analyze(default_run.dump, "--symbols", str(tmp_path))
    # the default build's own PDB is beside the dump: found there
    assert a.code == 3, a.err
    lone = tmp_path / "alone"
    lone.mkdir()
    shutil.copy(default_run.dump, lone / "TestDriver.dmp")
    a = analyze(lone / "TestDriver.dmp", "--symbols", str(tmp_path))
    assert a.code == 2 and "no TestDriver.pdb matching the dump's TestDriver.sys" in a.err, a.err
    assert sorted(p.name for p in lone.iterdir()) == ["TestDriver.dmp"]


def test_fulldump_refuses_bad_input(prefix):
    """fulldump.exe: a message, exit 2, no file, for bad arguments, a process that does not host
    TestDriver.sys, and a file that exists already."""
    exe = prefix.root / "fulldump-test.exe"
    shutil.copyfile(W.FULLDUMP, exe)
    drive_c = prefix.path / "drive_c"
    services = next(pid for pid, name in prefix.processes() if name.lower() == "services.exe")
    (drive_c / "exists.dmp").write_bytes(b"keep")
    cases = [
        ([], "expected a process id and a file name"),
        (["abc", "C:\\x.dmp"], "the process id must be a number"),
        ([f"0x{services:x}", "C:\\x.dmp", "TestDriver.sys"], "has no module TestDriver.sys"),
        ([f"0x{services:x}", "C:\\exists.dmp"], "it exists already"),
    ]
    for args, message in cases:
        r = prefix.run([str(exe), *args], timeout=120)
        assert r.returncode == 2 and message in r.stderr, (args, r.returncode, r.stderr[-500:])
        assert not (drive_c / "x.dmp").exists(), f"{args}: a dump was written"
    assert (drive_c / "exists.dmp").read_bytes() == b"keep"
    (drive_c / "exists.dmp").unlink()

"""The fixed build, when out/fixed/TestDriver.sys exists, and the same checks on the default build.

The fixed build orders its two threads with a notification event (FileCreationThread sets it when its loop
ends, on every path; FileMoveThread waits for it before taking the mutex), so both thread orders give one
outcome; every fault scenario runs in both orders to show it. A thread DriverEntry cannot reference is waited
for by DriverEntry through its handle; if that wait fails too, the driver clears DriverUnload (never unloaded).

Every scenario runs once (module-scoped cache). Fixed-build runs go through the CLI (exit code, report.json)
with a Kernel subclass that also keeps the emulated kernel (file contents) and a trace of the calls that
matter for the proofs: IRQL and critical region at each Zw call, the handle kind at each ZwClose, and the
order of unload's KeWaitForSingleObject / ObfDereferenceObject / IoDeleteDevice relative to thread ends.
"""
import gc
import json
import struct
from collections import Counter
from types import SimpleNamespace

import pytest
from conftest import norm, run_cli
from unicorn.x86_const import UC_X86_REG_R8, UC_X86_REG_R9, UC_X86_REG_RCX

import tdemu.nt.kernel as K
from tdemu.machine import BLOCK

CONTENT = b"Hello, World!\r\n" * 100
N = 1000
CREATE_LOG = "TestDriver: ZwCreateFile(\\DosDevices\\C:\\Temp\\file_{}.txt) failed: {:08x}\n"
OPEN_LOG = "TestDriver: ZwOpenFile(\\DosDevices\\C:\\Temp\\file_{}.txt) failed: {:08x}\n"
RENAME_LOG = "TestDriver: renaming \\DosDevices\\C:\\Temp\\file_{}.txt failed: {:08x}\n"
THREAD_LOG = "TestDriver: PsCreateSystemThread failed: {:08x}\n"
REFERENCE_LOG = "TestDriver: ObReferenceObjectByHandle failed: {:08x}\n"
ZWWAIT_LOG = "TestDriver: ZwWaitForSingleObject failed: {:08x}, the driver stays loaded\n"
LOADER = "DriverEntry (System worker, IopLoadDriver)"
FILE_IO = ("ZwCreateFile", "ZwOpenFile", "ZwWriteFile", "ZwSetInformationFile", "ZwClose")
NOT_FOUND, PATH_NOT_FOUND, ACCESS_DENIED = 0xC0000034, 0xC000003A, 0xC0000022
INSUFFICIENT_RESOURCES, TOO_MANY_THREADS, NAME_COLLISION = 0xC000009A, 0xC0000129, 0xC0000035
OBJECT_TYPE_MISMATCH, INVALID_HANDLE = 0xC0000024, 0xC0000008

# name -> (CLI arguments after the driver path, expected exit code)
FIXED = {
    "creation": (["--order", "creation"], 0),
    "move": (["--order", "move"], 0),
    "early": (["--unload", "early"], 0),
    "early_move": (["--unload", "early", "--order", "move"], 0),
    "recursion_switch": (["--allow-recursive-acquire"], 0),
}
FAULTS = {
    "no_temp": (["--fault", "no-temp"], 0),
    "no_temp2": (["--fault", "no-temp2"], 0),
    "create_every_7": (["--fault", "create-every=7"], 0),
    "iocreatedevice": (["--fault", f"iocreatedevice={NAME_COLLISION:#x}"], 5),
    "thread2": (["--fault", "thread=2"], 0),
    "thread2_early": (["--fault", f"thread=2:{TOO_MANY_THREADS:#x}", "--unload", "early"], 0),
    "thread1": (["--fault", "thread=1"], 0),
    # the Nth ObReferenceObjectByHandle fails (STATUS_OBJECT_TYPE_MISMATCH): DriverEntry waits for that thread
    "reference1": (["--fault", "reference=1"], 0),
    "reference2": (["--fault", "reference=2"], 0),
    "reference1_early": (["--fault", "reference=1", "--unload", "early"], 0),
    "reference2_early": (["--fault", "reference=2", "--unload", "early"], 0),
    # ... and DriverEntry's wait through the handle fails too (STATUS_INVALID_HANDLE): the driver stays loaded,
    # keeping its reference to the other thread for good (exit 6 with --strict: that reference is a finding)
    "pinned1": (["--fault", "reference=1", "--fault", "zwwait=1"], 6),
    "pinned2": (["--fault", "reference=2", "--fault", "zwwait=1"], 6),
}
for _name, (_args, _code) in FAULTS.items():  # every fault, in both thread orders
    FIXED[_name] = (_args, _code)
    FIXED[_name + "_move"] = ([*_args, "--order", "move"], _code)
COMPLETED = [k for k, (_a, code) in FIXED.items() if code == 0]
TRACED = ("ZwCreateFile", "ZwOpenFile", "ZwSetInformationFile", "ZwClose", "PsCreateSystemThread",
          "ObReferenceObjectByHandle", "ObfDereferenceObject", "KeWaitForSingleObject", "IoDeleteDevice",
          "ExAcquireFastMutexUnsafe", "ExReleaseFastMutexUnsafe", "KeEnterCriticalRegion", "KeLeaveCriticalRegion",
          "KeSetEvent", "ZwWaitForSingleObject")


class Run:
    def __init__(self, code, rep, m):
        self.code, self.rep, self.m = code, rep, m

    def calls(self, api):
        return self.rep["api_calls"].get(api, 0)

    def trace(self, *apis, kind=None):
        return [c for c in self.m.trace if (not apis or c["api"] in apis) and (kind is None or c["kind"] == kind)]

    def data(self, d):
        return {f.path.rsplit("\\", 1)[-1]: bytes(f.data) for f in self.m.vfs.listdir(d)}

    def ethread(self, needle):
        return next(t.ethread for t in self.m.threads if t.kind == "driver" and needle in norm(t.name))

    def name(self, needle):
        return next(t.name for t in self.m.threads if t.kind == "driver" and needle in norm(t.name))


def _shared(m, states: dict) -> dict:
    """The same states as the previous record: the same dict (thousands of records, one copy)."""
    last = getattr(m, "_last_states", None)
    if last == states:
        return last
    m._last_states = states
    return states


def _wrap(m, api):
    orig = m.handlers[api]
    uc = m.cpu.uc

    def traced():
        t = m.current
        rcx = uc.reg_read(UC_X86_REG_RCX)
        target = m.ke.by_ethread.get(rcx)
        h = m.ob.handles.get(rcx)
        rec = {"api": api, "thread": t.name, "kind": t.kind, "irql": t.irql, "apc_disable": t.apc_disable,
               "arg": rcx, "target": target.name if target else None,
               "target_ended": target.state == "Terminated" if target else None,
               "handle_kind": h.kind if h else None,
               "handle_thread": h.obj.name if h and h.kind == "thread" else None,
               "driver_threads": _shared(m, {x.name: x.state for x in m.threads if x.kind == "driver"})}
        if m.io.devices:
            ext = next(iter(m.io.devices.values()))["extension"]
            rec["mutex_owner_is_self"] = m.cpu.u64(ext + 8) == t.ethread
        if api == "ZwSetInformationFile":
            info, length = uc.reg_read(UC_X86_REG_R8), uc.reg_read(UC_X86_REG_R9) & 0xFFFFFFFF
            nlen = struct.unpack("<I", m.cpu.mem(info + 0x10, 4))[0]
            rec.update(length=length, name_length=nlen, name=m.cpu.wstr(info + 0x14, nlen))
        rv = orig()
        rec["blocked"] = rv is BLOCK
        rec["rv"] = rv if isinstance(rv, int) else None
        m.trace.append(rec)
        return rv

    m.handlers[api] = traced


def traced_run(args, report_dir) -> Run:
    """tdemu.cli.run (exit code, report.json) on a Kernel that also keeps a trace and stays reachable."""
    base = K.Kernel
    box = {}

    class TracedKernel(K.Kernel):
        def __init__(self, image, opts):
            super().__init__(image, opts)
            self.trace = []
            self.opened = Counter()  # handles created, by kind
            for api in TRACED:
                if api in self.handlers:
                    _wrap(self, api)
            box["m"] = self

        def new_handle(self, kind, *a, **kw):
            self.opened[kind] += 1
            return super().new_handle(kind, *a, **kw)

    setattr(K, "Kernel", TracedKernel)  # cli.run builds its Kernel from this module
    try:
        code, rep = run_cli(args, report_dir)
    finally:
        setattr(K, "Kernel", base)
    # keep what the tests read, not the emulator (unicorn and speakeasy: ~12 MB per run cached)
    m = box.pop("m")
    for t in m.threads:
        t.ctx = None
    kept = SimpleNamespace(trace=m.trace, vfs=m.io.vfs, threads=list(m.threads), devices=m.io.devices, refs=m.ob.refs,
                           opened=m.opened)
    del m
    gc.collect()
    return Run(code, rep, kept)


@pytest.fixture(scope="module")
def fixed(fixed_driver, tmp_path_factory):
    cache = {}

    def get(name):
        if name not in cache:
            args, _code = FIXED[name]
            cache[name] = traced_run([fixed_driver, *args, "--strict"], tmp_path_factory.mktemp(name))
        return cache[name]
    return get


@pytest.fixture(scope="module")
def default(driver, tmp_path_factory):
    cache = {}

    def get(*args):
        if args not in cache:
            cache[args] = run_cli([driver, *args], tmp_path_factory.mktemp("default"))
        return cache[args]
    return get


def _clean(rep):
    """No Verifier-style finding of any kind."""
    assert rep["fatal"] is None
    assert rep["irql_violations"] == [], rep["irql_violations"]
    assert rep["verifier"] == [], rep["verifier"]
    assert rep["use_after_free"] == []
    assert rep["handles"] == {"leaked": [], "invalid_closes": []}
    assert rep["references_not_released"] == [] and rep["pool_leaks"] == []


# ------------------------------------------------------------------ both orders

def test_fixed_completes_clean(fixed):
    r = fixed("creation")
    assert r.code == 0 and r.rep["outcome"] == "completed" and r.rep["deadlock"] is None
    _clean(r.rep)
    assert r.rep["unload"]["called"] is True and r.rep["unload"]["returned"] is True
    assert [t["state"] for t in r.rep["threads"]] == ["Terminated"] * 4  # DriverEntry, 2 threads, DriverUnload
    assert r.rep["dbgprint"] == []


def test_creation_first_moves_every_file_with_exact_bytes(fixed):
    r = fixed("creation")
    moved = r.data("C:\\Temp2")
    assert sorted(moved) == sorted(f"NewFile_{i}.txt" for i in range(N))
    assert all(data == CONTENT for data in moved.values())
    assert len(CONTENT) == 1500
    assert r.data("C:\\Temp") == {} and r.rep["files"]["C:\\Temp"] == []
    assert [f["size"] for f in r.rep["files"]["C:\\Temp2"]] == [1500] * N
    assert r.m.vfs.renames == [(f"C:\\Temp\\file_{i}.txt", f"C:\\Temp2\\NewFile_{i}.txt") for i in range(N)]
    assert {a: r.calls(a) for a in FILE_IO} == {"ZwCreateFile": N, "ZwOpenFile": N, "ZwWriteFile": 100 * N,
                                                  "ZwSetInformationFile": N, "ZwClose": 2 * N + 2}


def test_move_first_waits_for_the_files_then_moves_them(fixed):
    """--order move: FileMoveThread runs first, waits on the event (not holding the mutex) until
    FileCreationThread has written the 1000 files and set it, then moves them: the same outcome
    as creation first."""
    r = fixed("move")
    assert r.code == 0 and r.rep["outcome"] == "completed" and r.rep["deadlock"] is None
    _clean(r.rep)
    assert r.rep["dbgprint"] == []
    move, creation = r.name("filemovethread"), r.name("filecreationthread")
    first = r.trace(kind="driver")[0]
    waits = [c for c in r.trace("KeWaitForSingleObject") if c["thread"] == move]
    assert [(c["blocked"], c["apc_disable"], c["mutex_owner_is_self"]) for c in waits] == [(True, 0, False)]
    assert r.m.trace.index(waits[0]) < r.m.trace.index(r.trace("ZwCreateFile")[0])
    assert first["thread"] == move  # the first traced call of a system thread is FileMoveThread's wait
    [set_event] = r.trace("KeSetEvent")
    assert set_event["thread"] == creation
    assert r.m.trace.index(r.trace("ZwCreateFile")[-1]) < r.m.trace.index(set_event) < \
        r.m.trace.index(r.trace("ZwOpenFile")[0])
    assert set_event["driver_threads"][move] == "Waiting"
    moved = r.data("C:\\Temp2")
    assert sorted(moved) == sorted(f"NewFile_{i}.txt" for i in range(N)) and all(d == CONTENT for d in moved.values())
    assert r.data("C:\\Temp") == {} and r.rep["renames"] == N
    assert {a: r.calls(a) for a in FILE_IO} == {"ZwCreateFile": N, "ZwOpenFile": N, "ZwWriteFile": 100 * N,
                                                  "ZwSetInformationFile": N, "ZwClose": 2 * N + 2}


def test_both_orders_one_outcome(fixed):
    a, b = fixed("creation"), fixed("move")
    assert (a.code, a.rep["files"], a.data("C:\\Temp2")) == (b.code, b.rep["files"], b.data("C:\\Temp2"))


@pytest.mark.parametrize("scenario", ["creation", "move"])
def test_one_acquire_per_thread(fixed, scenario):
    """Defect 1: no recursive acquire; the Unsafe pair replaces ExAcquire/ReleaseFastMutex."""
    r = fixed(scenario)
    imports = r.rep["driver"]["imports"]["ntoskrnl.exe"]
    assert "ExAcquireFastMutexUnsafe" in imports and "ExAcquireFastMutex" not in imports
    for api in ("ExAcquireFastMutexUnsafe", "ExReleaseFastMutexUnsafe", "KeEnterCriticalRegion",
                "KeLeaveCriticalRegion"):
        assert Counter(c["thread"] for c in r.trace(api)) == {
            r.name("filecreationthread"): 1, r.name("filemovethread"): 1}, api
    assert [len(t["acquires"]) for t in r.rep["threads"] if t["kind"] == "driver"] == [1, 1]
    [fm] = r.rep["fast_mutexes"]
    assert (fm["Count"], fm["Owner"], fm["Contention"]) == (1, "0x0", 0)  # released, never contended


@pytest.mark.parametrize("scenario", ["creation", "move"])
def test_file_io_at_passive_level_in_critical_region(fixed, scenario):
    """Defect 2: every Zw file call at PASSIVE_LEVEL, normal kernel APCs disabled, the mutex held."""
    r = fixed(scenario)
    io = r.trace("ZwCreateFile", "ZwOpenFile", "ZwSetInformationFile", "ZwClose", kind="driver")
    assert len(io) == 5 * N
    assert {(c["irql"], c["apc_disable"], c["mutex_owner_is_self"]) for c in io} == {(0, 1, True)}
    assert r.rep["irql_violations"] == []
    assert all(t["irql"] == 0 and t["kernel_apc_disable"] == 0 for t in r.rep["threads"])


def test_fixed_build_same_switch_zero_violations(fixed):
    r = fixed("recursion_switch")
    assert r.code == 0
    _clean(r.rep)  # no recursive_acquire_ignored finding: nothing was acquired twice
    assert r.rep["options"]["allow_recursive_acquire"] is True
    assert len(r.data("C:\\Temp2")) == N and r.calls("ZwWriteFile") == 100 * N


def test_rename_buffer_holds_the_whole_name(fixed):
    """Defect 3: FileNameLength is the full name, and the buffer passed is that long."""
    r = fixed("creation")
    sets = r.trace("ZwSetInformationFile")
    assert len(sets) == N
    for i, c in enumerate(sets):
        name = f"\\DosDevices\\C:\\Temp2\\NewFile_{i}.txt"
        assert (c["name"], c["name_length"], c["length"], c["rv"]) == (name, 2 * len(name), 24 + 2 * len(name), 0)


# ------------------------------------------------------------------ handles and unload

@pytest.mark.parametrize("scenario", COMPLETED)
def test_every_handle_closed(fixed, scenario):
    r = fixed(scenario)
    _clean(r.rep)
    closes = r.trace("ZwClose")
    assert all(c["handle_kind"] is not None and c["rv"] == 0 for c in closes)  # no close of a bad handle
    assert Counter(c["handle_kind"] for c in closes) == r.m.opened
    ok_opens = sum(1 for c in r.trace("ZwCreateFile", "ZwOpenFile") if c["rv"] == 0)
    ok_threads = sum(1 for c in r.trace("PsCreateSystemThread") if c["rv"] == 0)
    assert r.calls("ZwClose") == ok_opens + ok_threads
    assert r.m.opened == Counter({k: v for k, v in (("file", ok_opens), ("thread", ok_threads)) if v})
    # one reference taken per thread started, released by unload (a failed one is not taken)
    referenced = [c["handle_thread"] for c in r.trace("ObReferenceObjectByHandle") if c["rv"] == 0]
    assert r.calls("ObReferenceObjectByHandle") == ok_threads and r.calls("ObfDereferenceObject") == len(referenced)
    assert {o: v["count"] for o, v in r.m.refs.items()} == {r.ethread(norm(name)): 0 for name in referenced}


@pytest.mark.parametrize("scenario", ["creation", "move", "early", "early_move"])
def test_unload_waits_for_both_threads_before_iodeletedevice(fixed, scenario):
    r = fixed(scenario)
    creation, move = r.ethread("filecreationthread"), r.ethread("filemovethread")
    seq = [(c["api"], c["arg"]) for c in r.trace(kind="unload")]
    dev = r.m.devices and next(iter(r.m.devices))
    assert seq == [("KeWaitForSingleObject", creation), ("ObfDereferenceObject", creation),
                   ("KeWaitForSingleObject", move), ("ObfDereferenceObject", move), ("IoDeleteDevice", dev)]
    [delete] = r.trace("IoDeleteDevice")
    assert set(delete["driver_threads"].values()) == {"Terminated"}
    assert r.rep["use_after_free"] == [] and r.rep["verifier"] == []
    assert r.rep["unload"]["returned"] is True and r.rep["devices"][0]["deleted"] is True


@pytest.mark.parametrize("scenario", ["early", "early_move"])
def test_fixed_unload_early_waits_for_threads(fixed, scenario):
    """--unload early: DriverUnload starts before the threads; it blocks until both ended, then frees."""
    r = fixed(scenario)
    assert r.code == 0 and r.rep["outcome"] == "completed"
    _clean(r.rep)
    first_wait = r.trace("KeWaitForSingleObject")[0]
    assert first_wait["kind"] == "unload" and first_wait["blocked"] is True
    assert first_wait["target"] == r.name("filecreationthread") and first_wait["target_ended"] is False
    assert set(first_wait["driver_threads"].values()) == {"Ready"}  # neither thread has run yet
    unload = next(t for t in r.m.threads if t.kind == "unload")
    assert unload.cswitches == 2 and unload.state == "Terminated"
    assert len(r.data("C:\\Temp2")) == N and all(d == CONTENT for d in r.data("C:\\Temp2").values())
    assert r.data("C:\\Temp") == {}


# ------------------------------------------------------------------ faults

@pytest.mark.parametrize("scenario", list(FIXED))
def test_no_fault_crashes_the_emulator(fixed, scenario):
    r = fixed(scenario)
    expected = FIXED[scenario][1]
    assert r.code == expected, (r.rep["outcome"], r.rep["fatal"], r.rep["verifier"])
    assert r.rep["outcome"] == {0: "completed", 5: "driver_entry_failed", 6: "completed"}[expected]
    assert r.rep["fatal"] is None and r.rep["deadlock"] is None
    assert [t["state"] for t in r.rep["threads"]] == ["Terminated"] * len(r.rep["threads"])


ORDERS = pytest.mark.parametrize("order", ["", "_move"], ids=["creation_first", "move_first"])


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_same_outcome_in_both_orders(fixed, fault):
    a, b = fixed(fault), fixed(fault + "_move")
    assert (a.code, a.rep["outcome"]) == (b.code, b.rep["outcome"])
    assert a.rep["files"] == b.rep["files"]
    for d in ("C:\\Temp", "C:\\Temp2"):
        assert a.data(d) == b.data(d)
    assert [(p["thread"], p["text"]) for p in a.rep["dbgprint"]] == [(p["thread"], p["text"]) for p in b.rep["dbgprint"]]
    assert a.rep["verifier"] == b.rep["verifier"] == []
    assert a.rep["references_not_released"] == b.rep["references_not_released"]


@ORDERS
def test_fault_no_temp(fixed, order):
    r = fixed("no_temp" + order)
    _clean(r.rep)
    assert "C:\\Temp" not in r.rep["files"] and r.data("C:\\Temp2") == {}
    assert [p["text"] for p in r.rep["dbgprint"]] == (
        [CREATE_LOG.format(i, PATH_NOT_FOUND) for i in range(N)] + [OPEN_LOG.format(i, PATH_NOT_FOUND) for i in range(N)])
    assert {a: r.calls(a) for a in FILE_IO} == {"ZwCreateFile": N, "ZwOpenFile": N, "ZwWriteFile": 0,
                                                  "ZwSetInformationFile": 0, "ZwClose": 2}


@ORDERS
def test_fault_no_temp2(fixed, order):
    r = fixed("no_temp2" + order)
    _clean(r.rep)
    assert "C:\\Temp2" not in r.rep["files"] and r.rep["renames"] == 0
    left = r.data("C:\\Temp")
    assert sorted(left) == sorted(f"file_{i}.txt" for i in range(N)) and all(d == CONTENT for d in left.values())
    assert [(p["thread"], p["text"]) for p in r.rep["dbgprint"]] == [
        (r.name("filemovethread"), RENAME_LOG.format(i, PATH_NOT_FOUND)) for i in range(N)]
    assert [c["rv"] for c in r.trace("ZwSetInformationFile")] == [PATH_NOT_FOUND] * N
    assert r.calls("ZwClose") == 2 * N + 2


@ORDERS
def test_fixed_reports_failures(fixed, order):
    """create-every=7: ZwCreateFile #7, #14, ... #994 fail: 142 files are never written, 858 are moved."""
    r = fixed("create_every_7" + order)
    _clean(r.rep)
    failed = [i for i in range(N) if (i + 1) % 7 == 0]
    assert len(failed) == 142
    assert [p["text"] for p in r.rep["dbgprint"]] == (
        [CREATE_LOG.format(i, ACCESS_DENIED) for i in failed] + [OPEN_LOG.format(i, NOT_FOUND) for i in failed])
    moved = r.data("C:\\Temp2")
    assert sorted(moved) == sorted(f"NewFile_{i}.txt" for i in range(N) if i not in failed)
    assert len(moved) == 858 and all(d == CONTENT for d in moved.values())
    assert r.data("C:\\Temp") == {}
    assert {a: r.calls(a) for a in FILE_IO} == {"ZwCreateFile": N, "ZwOpenFile": N, "ZwWriteFile": 85800,
                                                  "ZwSetInformationFile": 858, "ZwClose": 858 * 2 + 2}


@ORDERS
def test_fault_iocreatedevice(fixed, order):
    r = fixed("iocreatedevice" + order)
    assert r.code == 5 and r.rep["outcome"] == "driver_entry_failed"
    assert r.rep["driver_entry_status"] == f"{NAME_COLLISION:#010x}"
    assert [(p["thread"], p["text"], p["call_site"].split("+")[0]) for p in r.rep["dbgprint"]] == [
        ("DriverEntry (System worker, IopLoadDriver)", f"TestDriver: IoCreateDevice failed: {NAME_COLLISION:08x}\n",
         "TestDriver!DriverEntry")]
    assert r.rep["api_calls"] == {"IoCreateDevice": 1, "DbgPrintEx": 1}  # no PsCreateSystemThread, no ZwClose
    assert [t for t in r.rep["threads"] if t["kind"] != "loader"] == []
    assert r.rep["unload"]["called"] is False and r.rep["devices"] == []
    _clean(r.rep)


@ORDERS
@pytest.mark.parametrize("scenario,status", [("thread2", INSUFFICIENT_RESOURCES), ("thread2_early", TOO_MANY_THREADS)],
                         ids=["thread2", "thread2_early"])
def test_fault_second_thread_creation(fixed, scenario, status, order):
    r = fixed(scenario + order)
    assert r.code == 0 and r.rep["driver_entry_status"] == "0x00000000"
    _clean(r.rep)
    assert [(c["rv"] == 0) for c in r.trace("PsCreateSystemThread")] == [True, False]
    assert [t["name"] for t in r.rep["threads"] if t["kind"] == "driver"] == [r.name("filecreationthread")]
    thread_closes = [c for c in r.trace("ZwClose") if c["handle_kind"] == "thread"]
    assert len(thread_closes) == 1 and thread_closes[0]["kind"] == "loader"
    assert r.rep["handles"]["invalid_closes"] == [] and r.calls("ZwClose") == N + 1
    assert [p["text"] for p in r.rep["dbgprint"]] == [THREAD_LOG.format(status)]
    creation = r.ethread("filecreationthread")
    waits = r.trace("KeWaitForSingleObject")
    assert [(c["kind"], c["arg"], c["blocked"]) for c in waits] == [("unload", creation, scenario == "thread2_early")]
    assert [(c["api"], c["arg"]) for c in r.trace(kind="unload")][1:] == [
        ("ObfDereferenceObject", creation), ("IoDeleteDevice", next(iter(r.m.devices)))]
    assert r.calls("ObReferenceObjectByHandle") == r.calls("ObfDereferenceObject") == 1
    assert r.rep["use_after_free"] == [] and r.rep["unload"]["returned"] is True
    # FileMoveThread never ran: the files stay where FileCreationThread wrote them
    assert len(r.data("C:\\Temp")) == N and r.data("C:\\Temp2") == {}


@ORDERS
def test_fault_first_thread_creation(fixed, order):
    """FileCreationThread cannot start: DriverEntry sets the event itself, so FileMoveThread does not
    wait for ever; it finds no file (1000 failures logged) and ends."""
    r = fixed("thread1" + order)
    assert r.code == 0 and r.rep["driver_entry_status"] == "0x00000000"
    _clean(r.rep)
    [set_event] = r.trace("KeSetEvent")
    assert set_event["kind"] == "loader"
    [wait] = [c for c in r.trace("KeWaitForSingleObject") if c["kind"] == "driver"]
    assert wait["blocked"] is False  # already set
    assert [p["text"] for p in r.rep["dbgprint"]] == (
        [THREAD_LOG.format(INSUFFICIENT_RESOURCES)] + [OPEN_LOG.format(i, NOT_FOUND) for i in range(N)])
    assert r.data("C:\\Temp") == {} and r.data("C:\\Temp2") == {}


REFERENCE = pytest.mark.parametrize("which", [1, 2], ids=["creation_thread_unreferenced", "move_thread_unreferenced"])
THREAD_NAMES = {1: "filecreationthread", 2: "filemovethread"}


def _moved_all(r):
    moved = r.data("C:\\Temp2")
    assert sorted(moved) == sorted(f"NewFile_{i}.txt" for i in range(N)) and all(d == CONTENT for d in moved.values())
    assert r.data("C:\\Temp") == {} and r.rep["renames"] == N


def _driver_entry_waited_for(r, which):
    """DriverEntry's one ZwWaitForSingleObject: on the thread it could not reference, through the thread's
    handle, before it closed that handle; it blocked until the thread had ended."""
    unref = r.name(THREAD_NAMES[which])
    [wait] = r.trace("ZwWaitForSingleObject")
    assert (wait["kind"], wait["handle_kind"], wait["handle_thread"]) == ("loader", "thread", unref)
    assert wait["blocked"] is True and wait["driver_threads"][unref] != "Terminated"
    [close] = [c for c in r.trace("ZwClose") if c["handle_thread"] == unref]
    assert close["kind"] == "loader" and close["driver_threads"][unref] == "Terminated"
    assert r.m.trace.index(wait) < r.m.trace.index(close)
    loader = next(t for t in r.m.threads if t.kind == "loader")
    assert loader.cswitches == 2  # DriverEntry ran, waited, ran again until it returned
    if which == 1:  # FileMoveThread was started only once FileCreationThread had ended
        assert r.trace("PsCreateSystemThread")[1]["driver_threads"] == {unref: "Terminated"}
    return unref


@ORDERS
@REFERENCE
def test_fault_reference_driver_entry_waits_for_the_thread(fixed, which, order):
    """ObReferenceObjectByHandle fails for one thread (it cannot on Windows, but the driver handles it): the
    failure is logged, DriverEntry waits for that thread through its handle (no deadlock in either order),
    and unload waits only for the other thread before IoDeleteDevice: every file moved, nothing freed
    under a running thread, no finding."""
    r = fixed(f"reference{which}{order}")
    assert r.code == 0 and r.rep["outcome"] == "completed" and r.rep["deadlock"] is None
    _clean(r.rep)
    _moved_all(r)
    assert [(p["thread"], p["text"]) for p in r.rep["dbgprint"]] == [(LOADER, REFERENCE_LOG.format(OBJECT_TYPE_MISMATCH))]
    assert [c["rv"] for c in r.trace("ObReferenceObjectByHandle")] == [
        OBJECT_TYPE_MISMATCH if i == which else 0 for i in (1, 2)]
    unref = _driver_entry_waited_for(r, which)
    other = r.ethread(THREAD_NAMES[3 - which])
    dev = next(iter(r.m.devices))
    assert [(c["api"], c["arg"]) for c in r.trace(kind="unload")] == [
        ("KeWaitForSingleObject", other), ("ObfDereferenceObject", other), ("IoDeleteDevice", dev)]
    [delete] = r.trace("IoDeleteDevice")
    assert delete["driver_threads"] == {unref: "Terminated", r.name(THREAD_NAMES[3 - which]): "Terminated"}
    assert r.rep["use_after_free"] == [] and r.rep["unload"]["returned"] is True and r.rep["devices"][0]["deleted"]


@ORDERS
@REFERENCE
def test_fault_reference_with_early_unload(fixed, which, order):
    """--unload early: DriverUnload starts as soon as DriverEntry returns; the unreferenced thread has ended
    by then, and unload blocks on the other one until it ends, then deletes the device."""
    r = fixed(f"reference{which}_early{order}")
    assert r.code == 0 and r.rep["outcome"] == "completed"
    _clean(r.rep)
    _moved_all(r)
    _driver_entry_waited_for(r, which)
    [wait] = r.trace("KeWaitForSingleObject", kind="unload")
    assert wait["target"] == r.name(THREAD_NAMES[3 - which])
    [delete] = r.trace("IoDeleteDevice")
    assert set(delete["driver_threads"].values()) == {"Terminated"} and r.rep["use_after_free"] == []


@ORDERS
@REFERENCE
def test_fault_reference_and_wait_the_driver_stays_loaded(fixed, which, order):
    """The reference fails and DriverEntry's wait through the handle fails too: nothing tells when that
    thread ends, so the driver clears DriverUnload and is never unloaded: the device (and the extension
    the threads use) is never deleted. Both failures are logged; the one finding is the reference to the
    other thread, which no unload will release."""
    r = fixed(f"pinned{which}{order}")
    assert r.code == 6 and r.rep["outcome"] == "completed" and r.rep["deadlock"] is None
    assert [(p["thread"], p["text"]) for p in r.rep["dbgprint"]] == [
        (LOADER, REFERENCE_LOG.format(OBJECT_TYPE_MISMATCH)), (LOADER, ZWWAIT_LOG.format(INVALID_HANDLE))]
    assert r.rep["unload"]["called"] is True and r.rep["unload"]["routine"] is None  # DriverUnload is NULL
    assert r.calls("IoDeleteDevice") == 0 and r.rep["devices"][0]["deleted"] is False
    assert r.trace(kind="unload") == []
    [wait] = r.trace("ZwWaitForSingleObject")
    assert wait["rv"] == INVALID_HANDLE and wait["handle_thread"] == r.name(THREAD_NAMES[which])
    other = r.name(THREAD_NAMES[3 - which])
    assert [(x["what"], x["count"]) for x in r.rep["references_not_released"]] == [(f"ETHREAD of {other}", 1)]
    assert r.rep["use_after_free"] == [] and r.rep["verifier"] == [] and r.rep["irql_violations"] == []
    assert r.rep["handles"] == {"leaked": [], "invalid_closes": []}
    _moved_all(r)


@pytest.mark.parametrize("faults", [["reference=1"], ["reference=2"], ["reference=2", "zwwait=1"]],
                         ids=["creation_thread_unreferenced", "move_thread_unreferenced", "pinned"])
def test_fault_reference_every_schedule_frees_nothing_under_a_thread(fixed_driver, tmp_path, faults):
    """The run-to-block runs above let a thread run until it blocks, so DriverUnload rarely meets a running
    thread; --explore --unload early runs DriverUnload right after DriverEntry and tries every order and
    preemption (bound 2): one outcome, every file moved, no use-after-free, no finding but the pinned
    driver's reference. (The driver before DriverEntry waited for an unreferenced thread: with
    --fault reference=2 --unload early --preemptions 1, device_deleted_threads_running and use_after_free
    in 10 of 27 schedules.)"""
    from tdemu.cli import run

    code = run(["run", fixed_driver, "--strict", "--explore", "--unload", "early",
                *[a for f in faults for a in ("--fault", f)], "--report-dir", str(tmp_path), "--quiet"])
    x = json.load(open(tmp_path / "explore.json"))["explore"]
    assert x["complete"] and x["schedules"] >= 2
    [o] = x["outcomes"]
    out = o["outcome"]
    assert (out["outcome"], out["deadlock"], out["fatal"], out["findings"]) == ("completed", None, None, []), out
    assert out["files"]["C:\\Temp"]["files"] == 0 and out["files"]["C:\\Temp2"]["files"] == N
    assert code == (6 if "zwwait=1" in faults else 0)


# ------------------------------------------------------------------ the default build, same checks

@pytest.mark.parametrize("args", [(), ("--order", "move"), ("--unload", "early"), ("--fault", "no-temp"),
                                  ("--fault", "create-every=7"), ("--fault", "thread=2")],
                         ids=["creation", "move", "early", "no_temp", "create_every_7", "thread2"])
def test_default_build_deadlocks(default, args):
    code, rep = default(*args)
    assert code == 3 and rep["outcome"] == "deadlock"
    assert rep["api_calls"].get("ZwCreateFile", 0) == 0 and rep["files"].get("C:\\Temp", []) == []
    rules = {v["rule"] for v in rep["verifier"]}
    assert "recursive_fast_mutex_acquire" in rules
    creation = next(t for t in rep["deadlock"]["threads"] if "filecreationthread" in norm(t["name"]))
    assert creation["state"] == "Waiting" and creation["owner_ethread"] == creation["ethread"]
    if "early" in args:  # the seed's unload frees the extension under its threads
        assert rep["use_after_free"] and "device_deleted_threads_running" in rules


def test_default_build_irql_violations_with_recursion_switch(default):
    code, rep = default("--allow-recursive-acquire")
    assert code == 0
    got = Counter()
    for v in rep["irql_violations"]:
        assert (v["irql_name"], v["max_irql_name"]) == ("APC_LEVEL", "PASSIVE_LEVEL")
        fn = v["call_site"].rsplit("+", 1)[0]
        assert fn.startswith("TestDriver!TestDriver::"), fn
        got[(v["api"], fn.rsplit("::", 1)[1])] += v["count"]
    c, mv = "file_creation_thread", "file_move_thread"
    assert got == {("ZwCreateFile", c): N, ("ZwWriteFile", c): 100 * N, ("ZwClose", c): N,
                   ("ZwOpenFile", mv): N, ("ZwSetInformationFile", mv): N, ("ZwClose", mv): N}
    assert [v["rule"] for v in rep["verifier"]] == ["recursive_acquire_ignored"]

"""Small C drivers (tests/drivers/*.c, built by the tests) that each show one behaviour of the
kernel model a driver can run into, beyond the TestDriver builds."""
import pytest
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


# ------------------------------------------------------------------ every import is modelled or refused

def test_zwreadfile_and_query_on_a_file_of_the_model(cdriver, tmp_path):
    code, rep = run_cli([cdriver("read_back"), "--strict"], tmp_path)
    assert (code, rep["outcome"]) == (0, "completed")
    assert [p["text"] for p in rep["dbgprint"]] == ["size 13, read 13 bytes: hello, tdemu!\n",
                                                    "read at the end: c0000011\n"]  # STATUS_END_OF_FILE
    assert rep["files"]["C:\\Temp"] == [{"name": "read_back.txt", "size": 13}]
    assert rep["api_calls"]["ZwReadFile"] == 2 and rep["api_calls"]["ZwQueryInformationFile"] == 1


def test_spin_lock_raises_irql_so_file_io_under_it_is_reported(cdriver, tmp_path):
    code, rep = run_cli([cdriver("spinlock_io")], tmp_path)
    assert (code, rep["outcome"]) == (0, "completed")
    assert [p["text"] for p in rep["dbgprint"]] == ["IRQL under the spin lock: 2 (was 0)\n", "IRQL after release: 0\n"]
    v = {x["api"]: x for x in rep["irql_violations"]}
    assert set(v) == {"ZwCreateFile", "ZwClose"}
    assert (v["ZwCreateFile"]["irql_name"], v["ZwCreateFile"]["max_irql_name"]) == ("DISPATCH_LEVEL", "PASSIVE_LEVEL")
    assert v["ZwCreateFile"]["call_site"].startswith("spinlock_io!DriverEntry+0x")
    code, rep = run_cli([cdriver("spinlock_io"), "--strict"], tmp_path / "strict")
    assert code == 6


@pytest.mark.parametrize("use,what,calls", [
    (1, "ntoskrnl.exe!ExInitializeResourceLite is not modelled", {"DbgPrint": 1, "ExInitializeResourceLite": 1}),
    (2, "reads ntoskrnl.exe!KdDebuggerEnabled as data", {"DbgPrint": 1}),
    (3, "hal.dll!HalMakeBeep is not modelled", {"DbgPrint": 1, "KeStallExecutionProcessor": 1, "HalMakeBeep": 1}),
], ids=["eresource", "data_export", "hal"])
def test_unmodelled_routine_is_refused_naming_its_module(cdriver, tmp_path, use, what, calls):
    drv = cdriver("unmodelled", hal=("HalMakeBeep", "KeStallExecutionProcessor"), USE=use)
    code, rep = run_cli([drv], tmp_path)
    assert (code, rep["outcome"], rep["fatal"]["kind"]) == (4, "fault", "unsupported_api")
    assert what in rep["fatal"]["text"]
    assert rep["fatal"]["where"].startswith("unmodelled!DriverEntry+0x")
    assert rep["api_calls"] == calls
    assert [p["text"] for p in rep["dbgprint"]] == ["before\n"]  # stopped there, "after" never printed
    p = run_subprocess(["run", drv, "--no-report"])
    assert p.returncode == 4 and "DRIVER FAULT (unsupported_api)" in p.stdout and what in p.stdout


# ------------------------------------------------------------------ a deadlock, then a fault in DriverUnload

def test_fault_in_unload_after_a_deadlock_shows_both(cdriver, tmp_path):
    code, rep = run_cli([cdriver("fault_in_unload")], tmp_path)
    assert (code, rep["outcome"]) == (4, "fault")
    f = rep["fatal"]
    assert f["kind"] == "page_fault" and f["thread"].startswith("DriverUnload") and f["where"] == "fault_in_unload!Unload"
    dl = rep["deadlock"]
    assert dl["before_fault"] is True and "after_unload" not in dl
    [w] = dl["waits"]
    assert w["thread"] == "Worker" and "recursive acquire" in w["why"]
    [fm] = dl["fast_mutexes"]
    assert (fm["Count"], fm["Contention"]) == (4, 1)
    text = (tmp_path / "report.txt").read_text()
    assert text.index("*** DRIVER FAULT (page_fault)") < text.index("*** DEADLOCK (when DriverUnload was called")
    assert "DriverUnload fault_in_unload!Unload: did NOT return: it faulted (the DRIVER FAULT above)" in text
    assert "after_unload" not in text  # no pointer to a key the report does not have


# ------------------------------------------------------------------ fast mutex arithmetic as Windows does it

def test_release_without_acquire_corrupts_the_mutex_and_the_next_acquire_hangs(cdriver, tmp_path):
    """Windows adds 1 to Count on release whatever it was: 1 (free) becomes 0 (taken, no owner) and
    the gate is signalled; the next acquire counts itself a waiter (4), takes the stray signal,
    retries (6) and waits for ever."""
    code, rep = run_cli([cdriver("release_unowned")], tmp_path)
    assert (code, rep["outcome"]) == (3, "deadlock")
    assert [p["text"] for p in rep["dbgprint"]] == ["released without acquiring; IRQL now 0\n"]
    rules = [v["rule"] for v in rep["verifier"]]
    assert rules == ["fast_mutex_release_not_acquired"]
    [fm] = rep["deadlock"]["fast_mutexes"]
    assert (fm["Count"], fm["Owner"], fm["Contention"], fm["Event"]["SignalState"]) == (6, "0x0", 1, 0)
    [w] = rep["deadlock"]["waits"]
    assert w["why"] == "the FAST_MUTEX has no owner, yet no thread will release it"


# ------------------------------------------------------------------ what Windows bug-checks ends the run

@pytest.mark.parametrize("use,regions", [(1, "1 critical region(s)"), (2, "1 guarded region(s)")],
                         ids=["critical", "guarded"])
def test_thread_exit_inside_a_critical_region_is_bugcheck_0x20(cdriver, tmp_path, use, regions):
    code, rep = run_cli([cdriver("bad_exit", USE=use)], tmp_path)
    assert (code, rep["outcome"]) == (4, "fault")
    f = rep["fatal"]
    assert f["kind"] == "bugcheck" and f["bugcheck"]["code"] == 0x20
    assert f["bugcheck"]["name"] == "KERNEL_APC_PENDING_DURING_EXIT" and f["bugcheck"]["parameters"][1] == 1
    assert f["thread"] == "Worker" and regions in f["text"] and f["where"] == "nt!PspSystemThreadStartup"
    assert [p["text"] for p in rep["dbgprint"]] == ["worker returns\n"]


def test_closing_a_handle_twice_is_bugcheck_0x93(cdriver, tmp_path):
    code, rep = run_cli([cdriver("bad_exit", USE=3)], tmp_path)
    assert (code, rep["outcome"]) == (4, "fault")
    f = rep["fatal"]
    assert (f["kind"], f["bugcheck"]["code"], f["bugcheck"]["name"]) == ("bugcheck", 0x93, "INVALID_KERNEL_HANDLE")
    [closed] = rep["handles"]["invalid_closes"]
    assert f["bugcheck"]["parameters"][:2] == [int(closed["handle"], 16), 1]
    assert f["where"].startswith("bad_exit!DriverEntry+0x") and rep["dbgprint"] == []  # never returned


@pytest.mark.parametrize("use,where", [(1, "src/fixed.rs:231:17"), (2, "an unknown location"),
                                       (3, "<unreadable file name at 0x10>:5:9")],
                         ids=["location", "no-location", "unmapped-name"])
def test_a_rust_panic_bugcheck_names_the_panic_location(cdriver, tmp_path, use, where):
    code, rep = run_cli([cdriver("rust_panic", USE=use)], tmp_path)
    assert (code, rep["outcome"]) == (4, "fault")
    f = rep["fatal"]
    assert (f["kind"], f["bugcheck"]["code"], f["thread"]) == ("bugcheck", 0x52504E43, "Worker")
    assert f["text"].endswith(f": Rust panic at {where} (wdk-panic's bug check)"), f["text"]
    assert f["where"].startswith("rust_panic!")  # the call site, in the driver
    assert [p["text"] for p in rep["dbgprint"]] == ["worker panics\n"]
    if use == 1:
        assert f["bugcheck"]["parameters"][1:] == [12, 231, 17]
        text = (tmp_path / "report.txt").read_text()
        assert "*** DRIVER FAULT (bugcheck): bugcheck 0x52504e43 (" in text and "Rust panic at src/fixed.rs:231:17" in text


def test_closing_null_is_an_error_status_not_a_bugcheck(cdriver, tmp_path):
    code, rep = run_cli([cdriver("bad_exit", USE=4)], tmp_path)
    assert (code, rep["outcome"], rep["fatal"]) == (0, "completed", None)
    assert "ZwClose(NULL): c0000008\n" in [p["text"] for p in rep["dbgprint"]]
    assert [v["rule"] for v in rep["verifier"]] == ["invalid_handle_close"]


# ------------------------------------------------------------------ labels, damaged input, leaks, messages

def test_imports_are_labelled_with_their_own_module(cdriver, tmp_path):
    from tdemu.nt.kernel import Kernel, Options
    from tdemu.pecheck import load_driver_image

    drv = cdriver("unmodelled", hal=("HalMakeBeep", "KeStallExecutionProcessor"), USE=3)
    code, rep = run_cli([drv], tmp_path)
    assert rep["driver"]["imports"] == {"ntoskrnl.exe": ["DbgPrint"],
                                        "hal.dll": ["HalMakeBeep", "KeStallExecutionProcessor"]}
    k = Kernel(load_driver_image(drv), Options())
    labels = {k.sym.fmt(a) for a in k.stub_names}
    assert labels == {"nt!DbgPrint", "hal!HalMakeBeep", "hal!KeStallExecutionProcessor"}


def test_damaged_import_directory_is_bad_input(cdriver, tmp_path):
    import struct

    import pefile

    data = bytearray(open(cdriver("stop_event"), "rb").read())
    pe = pefile.PE(data=bytes(data), fast_load=True)
    imp = pe.OPTIONAL_HEADER.DATA_DIRECTORY[1]
    desc = pe.get_offset_from_rva(imp.VirtualAddress)
    cases = {"outside": (imp.get_file_offset(), 0x7FFF0000, "outside the image"),
             "thunks": (desc + 16, 0x7FFF0000, "Error parsing the import table"),
             "name": (desc + 12, 0x7FFF0000, "no readable import descriptor")}
    for label, (offset, value, needle) in cases.items():
        bad = bytearray(data)
        struct.pack_into("<I", bad, offset, value)
        if label == "thunks":
            struct.pack_into("<I", bad, desc, value)
        f = tmp_path / f"{label}.sys"
        f.write_bytes(bytes(bad))
        p = run_subprocess(["run", str(f), "--report-dir", str(tmp_path / "rep")])
        assert p.returncode == 2, (label, p.stdout, p.stderr)
        assert "damaged import directory" in p.stderr and needle in p.stderr, (label, p.stderr)
        assert "imports nothing" not in p.stderr and not (tmp_path / "rep").exists()


def test_fast_mutex_never_initialised_is_flagged(cdriver, tmp_path):
    code, rep = run_cli([cdriver("zeroed_mutex")], tmp_path)
    assert (code, rep["outcome"]) == (3, "deadlock")
    [v] = rep["verifier"]
    assert v["rule"] == "fast_mutex_not_initialized" and "Event type 0 size 0" in v["text"]
    assert v["call_site"].startswith("zeroed_mutex!Worker+0x")


@pytest.mark.parametrize("use,code,when", [(1, 6, "DriverUnload returned"),
                                           (2, 5, "DriverEntry failed (STATUS_INSUFFICIENT_RESOURCES)")],
                         ids=["unload", "entry_failed"])
def test_device_never_deleted_is_reported(cdriver, tmp_path, use, code, when):
    got, rep = run_cli([cdriver("device_leak", USE=use), "--strict"], tmp_path)
    assert got == code
    [v] = rep["verifier"]
    assert v["rule"] == "device_not_deleted" and v["text"].startswith(when)
    assert [d["deleted"] for d in rep["devices"]] == [False]


@pytest.mark.parametrize("size,text", [(1, "invalid read of 1 byte at 0x10"), (8, "invalid read of 8 bytes at 0x10")])
def test_page_fault_gives_the_size_of_the_access(cdriver, tmp_path, size, text):
    code, rep = run_cli([cdriver("page_fault", SIZE=size)], tmp_path)
    assert (code, rep["fatal"]["kind"]) == (4, "page_fault")
    assert rep["fatal"]["text"].startswith(text) and rep["fatal"]["where"].startswith("page_fault!DriverEntry+0x")


# ------------------------------------------------------------------ lock order (Verifier's deadlock detection)

@pytest.mark.parametrize("use,kind", [(1, "FAST_MUTEX"), (2, "spin lock")], ids=["fast_mutex", "spin_lock"])
def test_opposite_lock_orders_are_reported_though_the_run_completed(cdriver, tmp_path, use, kind):
    """AThenB runs to its end before BThenA starts, so this run does not deadlock; the two orders
    still conflict, and another schedule deadlocks (see test_explore)."""
    code, rep = run_cli([cdriver("abba", USE=use)], tmp_path)
    assert (code, rep["outcome"], rep["deadlock"]) == (0, "completed", None)
    assert [p["text"] for p in rep["dbgprint"]] == ["AThenB holds both\n", "BThenA holds both\n"]
    [v] = [v for v in rep["verifier"] if v["rule"] == "lock_order_violation"]
    assert v["thread"] == "BThenA" and v["call_site"].startswith("abba!BThenA+0x")
    assert f"holding {kind} " in v["text"] and "the opposite order of: AThenB acquired" in v["text"]
    edges = {(e["thread"], e["held_kind"], e["acquired_kind"]) for e in rep["lock_order"]}
    assert edges == {("AThenB", kind, kind), ("BThenA", kind, kind)}
    a_then_b, b_then_a = rep["lock_order"]
    assert (a_then_b["held"], a_then_b["acquired"]) == (b_then_a["acquired"], b_then_a["held"])
    code, _rep = run_cli([cdriver("abba", USE=use), "--strict"], tmp_path / "strict")
    assert code == 6


# ------------------------------------------------------------------ the object types behind the data imports

@pytest.mark.parametrize("deref,status,finding", [
    (1, "00000000", None),
    (0, "c0000024", None),  # STATUS_OBJECT_TYPE_MISMATCH: the address of the variable is no type
    # one dereference too many reads OBJECT_TYPE.TypeList.Flink: the type itself while the list is empty, so
    # Windows (and the model) accept it by accident; the read of the opaque structure is the finding
    (2, "00000000", "driver read of OBJECT_TYPE 'Thread' at +0x0, an opaque kernel structure"),
])
def test_thread_type_passed_with_each_number_of_dereferences(cdriver, tmp_path, deref, status, finding):
    code, rep = run_cli([cdriver("thread_type", DEREF=deref), "--strict"], tmp_path)
    assert [p["text"] for p in rep["dbgprint"]] == [f"ObReferenceObjectByHandle: {status}\n"]
    assert rep["outcome"] == "completed" and rep["references_not_released"] == []
    if finding is None:
        assert (code, rep["verifier"]) == (0, [])
    else:
        [v] = rep["verifier"]
        assert v["rule"] == "opaque_object" and v["text"].startswith(finding)
        assert v["call_site"].startswith("thread_type!DriverEntry+0x") and code != 0


# ------------------------------------------------------------------ pool contents

def test_uninitialised_pool_holds_the_fill_pattern_zeroing_pool_zeroes(cdriver, tmp_path):
    """Windows leaves ExAllocatePoolWithTag, ExAllocatePool and ExAllocatePool2(POOL_FLAG_UNINITIALIZED)
    blocks as they were (Driver Verifier's special pool fills them with a byte pattern); only
    ExAllocatePool2 without that flag zeroes. A driver that relies on fresh pool being zero must not pass."""
    code, rep = run_cli([cdriver("pool_fill"), "--strict"], tmp_path)
    assert (code, rep["outcome"], rep["verifier"], rep["pool_leaks"]) == (0, "completed", [], [])
    assert [p["text"] for p in rep["dbgprint"]] == [
        "ExAllocatePoolWithTag: a5a5a5a5..a5a5a5a5\n",
        "ExAllocatePool: a5a5a5a5..a5a5a5a5\n",
        "ExAllocatePool2 uninitialized: a5a5a5a5..a5a5a5a5\n",
        "ExAllocatePool2: 00000000..00000000\n"]


def test_write_past_a_pool_block_is_found_when_it_is_freed(cdriver, tmp_path):
    """The bytes after each block hold the pattern; ExFreePool(WithTag) checks them, as special pool does."""
    code, rep = run_cli([cdriver("pool_fill", OVERRUN=1), "--strict"], tmp_path)
    assert (code, rep["outcome"]) == (6, "completed")
    [v] = rep["verifier"]
    assert v["rule"] == "pool_overrun" and v["call_site"].startswith("pool_fill!DriverEntry+0x")
    assert v["text"].startswith("pool block 'Pool' of 24 bytes: written past its end at +0x18")

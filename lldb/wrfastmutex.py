"""lldb commands that read TestDriver's fast-mutex deadlock from a minidump, as the seed's WinDbg session does.

    (lldb) command script import lldb/wrfastmutex.py
    (lldb) wrfastmutex            # ~ !WrFastMutex: threads waiting in ExAcquireFastMutex, their mutex, caller, owner
    (lldb) fastmutex ADDRESS      # ~ dt nt!_FAST_MUTEX ADDRESS, decoded with the runtime's own meaning

The runtime is recognised from the dump itself; what a dump must offer: lldb/README.md.
"""

from __future__ import annotations

import os
import struct
import sys
from collections import namedtuple

import lldb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import minidump as M  # noqa: E402

WAIT_FUNCTION = "ExAcquireFastMutex"
DRIVER = "TestDriver.sys"
FAST_MUTEX_SIZE = 0x38
# Names of the mutex in the debug information of a frame that has it: Wine's ntoskrnl.exe
# (`ExAcquireFastMutex(FAST_MUTEX *mutex)`, DWARF) and TestDriver's thread routines (the PDB).
MUTEX_VARIABLES = ("mutex", "FastMutex", "fast_mutex", "file_mutex")


class Runtime(namedtuple("Runtime", "name evidence records_owner")):
    """What kind of kernel wrote the dump ("Wine", "tdemu", "Windows"), why it is taken for it, and
    whether its ExAcquireFastMutex writes Owner, Contention and OldIrql."""

    @property
    def wine(self) -> bool:
        return self.name == "Wine"


def recognise(dump: M.Minidump) -> Runtime:
    """The runtime, from the dump: tdemu names itself in a comment stream; Wine's ntoskrnl.exe
    carries "Wine builtin DLL" in its DOS header (read from the dump's memory); else Windows."""
    if comment := next((c for c in dump.comments if c.startswith("tdemu")), None):
        return Runtime("tdemu", f"comment stream: {comment.splitlines()[0][:100]!r}", True)
    nt = dump.module("ntoskrnl.exe")
    if nt is not None:
        marker = dump.read(nt.base + 0x40, 16)
        if marker == b"Wine builtin DLL":
            return Runtime("Wine", f"ntoskrnl.exe at 0x{nt.base:x} is Wine's builtin DLL "
                                   f"(\"Wine builtin DLL\" in its DOS header, read from the dump)", False)
        if marker is None and dump.module("winedevice.exe") is not None:
            return Runtime("Wine", "the process is winedevice.exe with an ntoskrnl.exe module "
                                   "(its image is not in the dump)", False)
    return Runtime("Windows", "neither tdemu's comment stream nor Wine's builtin ntoskrnl.exe", True)


def _load_dump(target: lldb.SBTarget) -> M.Minidump:
    """The minidump behind lldb's process (its core file), read with the standard-library reader."""
    core = target.GetProcess().GetCoreFile()
    path = core.fullpath if core.IsValid() else None
    if not path or not os.path.isfile(path):
        raise M.BadDump("this process was not loaded from a dump: open one with `target create --core FILE`")
    return M.read_minidump(path)


def function_name(frame: lldb.SBFrame) -> str | None:
    """The frame's concrete function (an inlined frame belongs to the function it is inlined in):
    from debug information when there is some, else the module's symbol (its exports)."""
    fn = frame.GetFunction()
    if fn.IsValid() and fn.GetName():
        return fn.GetName()
    sym = frame.GetSymbol()
    return sym.GetName() if sym.IsValid() else None


def _start(frame: lldb.SBFrame, target: lldb.SBTarget) -> int | None:
    fn = frame.GetFunction()
    addr = fn.GetStartAddress() if fn.IsValid() else frame.GetSymbol().GetStartAddress()
    load = addr.GetLoadAddress(target) if addr.IsValid() else lldb.LLDB_INVALID_ADDRESS
    return None if load == lldb.LLDB_INVALID_ADDRESS else load


def module_name(frame: lldb.SBFrame) -> str:
    return frame.GetModule().GetFileSpec().GetFilename() or "?"


def module_stem(frame: lldb.SBFrame) -> str:
    return module_name(frame).rsplit(".", 1)[0]


def location(frame: lldb.SBFrame, target: lldb.SBTarget) -> str:
    """module!function+0xoffset, as WinDbg writes a call site (TestDriver!...file_creation_thread+0x6a)."""
    name, start = function_name(frame), _start(frame, target)
    if name is None or start is None:
        return f"{module_stem(frame)}+0x{frame.GetPC() - frame.GetModule().GetObjectFileHeaderAddress().GetLoadAddress(target):x}"
    return f"{module_stem(frame)}!{name}+0x{frame.GetPC() - start:x}"


def source_line(frame: lldb.SBFrame) -> str | None:
    le = frame.GetLineEntry()
    name = le.GetFileSpec().GetFilename() if le.IsValid() else None
    return f"{name}:{le.GetLine()}" if name else None


class Waiter(namedtuple("Waiter", "thread wait_frame wait_site caller source return_address mutex mutex_from "
                                  "disagreements")):
    """A driver thread blocked in ExAcquireFastMutex: `wait_frame` is the innermost frame of it (its pc is
    the real one: inlined frames share it); `mutex` (None if unknown) with the sources that agree on it
    (`mutex_from`) and those that do not (`disagreements`)."""

    @property
    def tid(self) -> int:
        return self.thread.GetThreadID()


def _mutex_candidates(thread: lldb.SBThread, first: int, caller: int) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for i in range(first, caller + 1):
        frame = thread.GetFrameAtIndex(i)
        module = module_name(frame)
        symbols = "TestDriver.pdb" if module.lower() == DRIVER.lower() else f"{module}'s debug info"
        for name in MUTEX_VARIABLES:
            var = frame.FindVariable(name)
            value = var.GetValueAsUnsigned(0) if var.IsValid() and var.GetError().Success() else 0
            text = f"`{name}` in {module_stem(frame)}!{frame.GetFunctionName()} ({symbols})"
            if value and (value, text) not in found:
                found.append((value, text))
    top = thread.GetFrameAtIndex(0)
    target = thread.GetProcess().GetTarget()
    if first == 0 and _start(top, target) == top.GetPC():
        rcx = top.FindRegister("rcx")
        if rcx.IsValid():
            found.append((rcx.GetValueAsUnsigned(0), "rcx at ExAcquireFastMutex's entry (its first argument)"))
    return found


def find_waiters(process: lldb.SBProcess) -> list[Waiter]:
    """Every thread with a frame in ExAcquireFastMutex called from TestDriver.sys, in lldb's thread order."""
    target = process.GetTarget()
    waiters = []
    for thread in process:
        n = thread.GetNumFrames()
        names = [function_name(thread.GetFrameAtIndex(i)) for i in range(n)]
        if WAIT_FUNCTION not in names:
            continue
        first = names.index(WAIT_FUNCTION)
        outer = next((i for i in range(first, n) if names[i] != WAIT_FUNCTION), n)  # the frame that called it
        caller = thread.GetFrameAtIndex(outer)
        if outer == n or module_name(caller).lower() != DRIVER.lower():
            continue
        candidates = _mutex_candidates(thread, first, outer)
        mutex = candidates[0][0] if candidates else None
        waiters.append(Waiter(thread, first, location(thread.GetFrameAtIndex(first), target), location(caller, target),
                              source_line(caller), caller.GetPC(), mutex,
                              [src for value, src in candidates if value == mutex],
                              [f"{src} says 0x{value:x}" for value, src in candidates if value != mutex]))
    return waiters


# -- the fields -----------------------------------------------------------------------------


class FastMutex(namedtuple("FastMutex", "address count owner contention event_type event_signal event_flink "
                                        "event_blink old_irql")):
    """The 0x38 bytes: Count +0x0 (signed), Owner +0x8, Contention +0x10, Event +0x18 (Type, SignalState
    +0x1C, WaitListHead +0x20), OldIrql +0x30."""

    @classmethod
    def parse(cls, address: int, raw: bytes) -> FastMutex:
        return cls(address, *struct.unpack("<i4xQI4xB3xiQQI4x", raw))

    def holders_and_waiters(self, runtime: Runtime) -> tuple[bool, int]:
        """(held, waiters) as the runtime's ExAcquireFastMutex counts them."""
        if runtime.wine:  # 1 free; each acquire decrements, a result below 0 waits
            return self.count < 1, max(0, -self.count)
        # Windows (and tdemu, which keeps its rules): bit 0 set = free, bit 1 = a waiter was woken, +4 a waiter
        return not self.count & 1, self.count >> 2


def read_fast_mutex(process: lldb.SBProcess, address: int) -> FastMutex | str:
    err = lldb.SBError()
    raw = process.ReadMemory(address, FAST_MUTEX_SIZE, err)
    if not err.Success() or raw is None or len(raw) != FAST_MUTEX_SIZE:
        return (f"the dump does not hold the {FAST_MUTEX_SIZE} bytes at 0x{address:x} "
                f"({err.GetCString() or 'no memory there'}): a dump without full memory has stacks only")
    return FastMutex.parse(address, raw)


def owner_text(process: lldb.SBProcess, dump: M.Minidump, runtime: Runtime, owner: int) -> str:
    if not runtime.records_owner:
        return f"not recorded ({runtime.name} does not write Owner)"
    if owner == 0:
        return "none (Owner is 0)"
    t = next((t for t in dump.threads if t.teb == owner), None)
    if t is None:
        return f"0x{owner:x} (no thread of the dump has this TEB/ETHREAD address)"
    th = process.GetThreadByID(t.tid)
    return f"0x{owner:x} = {f'thread #{th.GetIndexID()} ' if th.IsValid() else ''}tid 0x{t.tid:x}"


def describe_fields(m: FastMutex, runtime: Runtime, owner: str) -> list[str]:
    held, waiters = m.holders_and_waiters(runtime)
    state = f"{'held' if held else 'free'}, {waiters} waiter{'s' if waiters != 1 else ''}"
    event_type = {0: "NotificationEvent", 1: "SynchronizationEvent"}.get(m.event_type, f"type {m.event_type}")
    if runtime.wine:
        return [
            f"   +0x000 Count            : 0n{m.count} (0x{m.count & 0xffffffff:08x})  Wine counts down from 1: "
            f"1 free, 0 held, -N held with N waiters -> {state}",
            f"   +0x008 Owner            : 0x{m.owner:x}  {owner}",
            f"   +0x010 Contention       : {m.contention}  not recorded (Wine never writes it)",
            f"   +0x018 Event            : _KEVENT {event_type}, SignalState {m.event_signal}; "
            f"WaitListHead.Flink {m.event_flink} (Wine: threads waiting on it), "
            f"WaitListHead.Blink 0x{m.event_blink:x} (Wine: the handle of its event object)",
            f"   +0x030 OldIrql          : {m.old_irql}  not recorded (Wine has no IRQL)",
        ]
    woken = " a waiter was woken," if m.count & 2 else ""
    return [
        f"   +0x000 Count            : 0n{m.count}  bit 0 (lock) {m.count & 1}: {'free' if not held else 'held'},"
        f"{woken} waiters (Count >> 2): {waiters}",
        f"   +0x008 Owner            : 0x{m.owner:x}  {owner.removeprefix(f'0x{m.owner:x} ')}",
        f"   +0x010 Contention       : {m.contention}  times an acquire had to wait",
        f"   +0x018 Event            : _KEVENT {event_type}, SignalState {m.event_signal}",
        f"   +0x030 OldIrql          : {m.old_irql}  the owner's IRQL before its acquire"
        + (" (PASSIVE_LEVEL)" if m.old_irql == 0 else ""),
    ]


# -- the commands ----------------------------------------------------------------------------


def _context(debugger: lldb.SBDebugger):
    target = debugger.GetSelectedTarget()
    process = target.GetProcess()
    if not process.IsValid():
        raise M.BadDump("no process: open a dump first (target create --core FILE)")
    return target, process, _load_dump(target)


def not_recorded(runtime: Runtime) -> str:
    if runtime.wine:
        return ("Not recorded by Wine: its ExAcquireFastMutex writes no Owner, Contention or OldIrql (and Wine "
                "has no IRQL), so no owner can be named: Count (counting down from 1) and the event's "
                "waiter count say how many wait.")
    return f"{runtime.name} records Owner, Contention and OldIrql" + (
        " as Windows does." if runtime.name == "tdemu" else ".")


def wrfastmutex_lines(debugger: lldb.SBDebugger) -> tuple[list[str], list[Waiter], Runtime, M.Minidump]:
    target, process, dump = _context(debugger)
    runtime = recognise(dump)
    waiters = find_waiters(process)
    out = [f"Runtime: {runtime.name} ({runtime.evidence})"]
    if not waiters:
        driver_threads = [t for t in process if any(
            module_name(t.GetFrameAtIndex(i)).lower() == DRIVER.lower() for i in range(t.GetNumFrames()))]
        out += [f"No thread waits in {WAIT_FUNCTION} ({len(driver_threads)} of the dump's "
                f"{process.GetNumThreads()} threads have a {DRIVER} frame).", "Count: 0"]
        return out, waiters, runtime, dump
    rows = [("Thread", "Tid", "Waiting in", "Fast mutex", "Owner", "Caller")]
    for w in waiters:
        owner = "?"
        if w.mutex is not None:
            m = read_fast_mutex(process, w.mutex)
            owner = owner_text(process, dump, runtime, m.owner) if isinstance(m, FastMutex) else "not in the dump"
        caller = w.caller + (f" ({w.source})" if w.source else "")
        rows.append((f"#{w.thread.GetIndexID()}", f"0x{w.tid:x}", w.wait_site,
                     f"0x{w.mutex:x}" if w.mutex is not None else "unknown", owner, caller))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    rows.insert(1, tuple("=" * w for w in widths) + ("=" * len(rows[0][-1]),))  # the header's underline
    out += [" ".join(c.ljust(widths[j]) for j, c in enumerate(r[:-1])) + " " + r[-1] for r in rows]
    out.append(f"Count: {len(waiters)}")
    for w in waiters:
        if w.mutex_from:
            out.append(f"#{w.thread.GetIndexID()}: the mutex is {', '.join(w.mutex_from)}; "
                       f"return address 0x{w.return_address:x}")
        else:
            out.append(f"#{w.thread.GetIndexID()}: the mutex is unknown: no frame names it in debug information "
                       f"and the thread is not stopped at {WAIT_FUNCTION}'s entry")
        out += [f"#{w.thread.GetIndexID()}: WARNING: {d}" for d in w.disagreements]
    out.append(not_recorded(runtime))
    return out, waiters, runtime, dump


def wrfastmutex(debugger, command, result, _internal_dict):
    """wrfastmutex: the threads waiting in ExAcquireFastMutex (as WinDbg's !WrFastMutex), the mutex
    each waits on, its caller in TestDriver.sys (function+offset and source line from TestDriver.pdb)
    and the owner where the runtime records one."""
    if command.strip():
        result.SetError("wrfastmutex takes no arguments")
    else:
        _reply(result, lambda: wrfastmutex_lines(debugger)[0])


def _reply(result, make_lines) -> None:
    """The lines as the command's output, or the BadDump's message as its error."""
    try:
        result.AppendMessage("\n".join(make_lines()))
    except M.BadDump as e:
        result.SetError(str(e))


def fastmutex_lines(debugger: lldb.SBDebugger, address: int) -> list[str]:
    _, process, dump = _context(debugger)
    runtime = recognise(dump)
    m = read_fast_mutex(process, address)
    if not isinstance(m, FastMutex):
        raise M.BadDump(m)
    meaning = "Wine 8's dlls/ntoskrnl.exe/sync.c" if runtime.wine else (
        "tdemu, with Windows's fields" if runtime.name == "tdemu" else "Windows")
    return ([f"_FAST_MUTEX at 0x{address:x} ({meaning}):"]
            + describe_fields(m, runtime, owner_text(process, dump, runtime, m.owner)))


def fastmutex(debugger, command, result, _internal_dict):
    """fastmutex ADDRESS: the FAST_MUTEX at ADDRESS decoded with the runtime's meaning (dt nt!_FAST_MUTEX)."""
    text = command.strip()
    try:
        address = int(text, 0)
    except ValueError:
        result.SetError(f"fastmutex: expected an address (e.g. 0x34d0f0), got {text!r}")
        return
    _reply(result, lambda: fastmutex_lines(debugger, address))


def __lldb_init_module(debugger, _internal_dict):
    for command in ("wrfastmutex", "fastmutex"):
        debugger.HandleCommand(f"command script add -o -f {__name__}.{command} {command}")

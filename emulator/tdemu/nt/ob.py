"""ob: the object manager (ReactOS ntoskrnl/ob): the kernel handle table, object references,
waits through a handle, and object types (the data imports `*PsThreadType`, `*IoFileObjectType`, ...)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .. import ntstatus as st
from ..machine import BLOCK, phys
from .api import FILE_SYSTEM, Component, arg0_object
from .defs import DISPATCH_LEVEL, NT_CURRENT_THREAD, PASSIVE_LEVEL
from .ke import timeout_at, wait_for_thread

ob = Component("ob")

NTDATA_BASE = 0xFFFFF8032861A000
DATA_IMPORTS = {"PsThreadType": "Thread", "PsProcessType": "Process", "IoFileObjectType": "File",
                "ExEventObjectType": "Event", "IoDeviceObjectType": "Device", "IoDriverObjectType": "Driver",
                "SeTokenObjectType": "Token", "ExSemaphoreObjectType": "Semaphore"}


@dataclass
class Handle:
    value: int
    kind: str  # file | thread
    obj: object
    api: str
    site: int
    thread: str
    access: int = 0
    path: str = ""


@dataclass
class ObState:
    """The handle table, object references, the object types of the data imports."""
    handles: dict[int, Handle] = field(default_factory=dict)
    next_handle: int = 0xFFFFFFFF80000F24
    closed_invalid: list[dict] = field(default_factory=list)
    refs: dict[int, dict] = field(default_factory=dict)  # object addr -> {count, sites}
    object_types: dict[int, str] = field(default_factory=dict)
    opaque_seen: set[tuple[int, int]] = field(default_factory=set)  # (pc, address) reported
    type_cells: dict[str, int] = field(default_factory=dict)
    thread_type: int | None = None  # the OBJECT_TYPE PsThreadType points to


def init(k) -> ObState:
    k.cpu.map(NTDATA_BASE, 0x1000, "tdemu.ntdata")
    return ObState()


OBJECT_TYPE_SIZE = 0x80  # the fields a debugger shows first: TypeList, Name, DefaultObject, Index
TYPES_BASE = NTDATA_BASE + 0x100  # the OBJECT_TYPEs, one after the other


def setup_object_types(k) -> None:
    """Each data import (PsThreadType, ...) points at a pointer to an OBJECT_TYPE with Windows's first
    fields: TypeList (+0x0, empty: pointing at itself), Name (+0x10), Index (+0x28). Drivers may not
    read it: the CPU watches it for `opaque_access` (emulator/README.md says why)."""
    cell = NTDATA_BASE + 0x800
    obj = TYPES_BASE
    for rva, (_dll, name) in k.image.iat.items():
        if name in DATA_IMPORTS:
            tname = DATA_IMPORTS[name]
            if tname not in k.ob.type_cells:
                k.cpu.mem_write(cell, struct.pack("<Q", obj))
                text = tname.encode("utf-16le")
                name_buffer = obj + 0x60
                k.cpu.mem_write(obj, struct.pack("<QQHHIQQB", obj, obj, len(text), len(text) + 2, 0, name_buffer, 0,
                                             2 + len(k.ob.object_types)))
                k.cpu.mem_write(name_buffer, text + b"\0\0")
                k.ob.object_types[obj] = tname
                k.ob.type_cells[tname] = cell
                cell += 8
                obj += OBJECT_TYPE_SIZE
            sentinel = k.cpu.u64(k.base + rva)
            k.cpu.mem_write(k.base + rva, struct.pack("<Q", k.ob.type_cells[tname]))
            # the slot now points at the type, not at the sentinel page: the sentinel is no import
            k.stub_names.pop(sentinel, None)
            k.stub_dlls.pop(sentinel, None)
            k.sym.labels.pop(sentinel, None)
    k.ob.thread_type = next((o for o, n in k.ob.object_types.items() if n == "Thread"), None)
    if k.ob.object_types:
        k.cpu.watch(TYPES_BASE, obj)


def opaque_access(k, write: bool, address: int, pc: int) -> bool:
    """A watched guest access (at the masked alias): if it is inside an OBJECT_TYPE, an `opaque_object`
    finding (once per site and address) and True."""
    offset = address - phys(TYPES_BASE)
    if not 0 <= offset < OBJECT_TYPE_SIZE * len(k.ob.object_types):
        return False
    address = TYPES_BASE + offset
    if (pc, address) not in k.ob.opaque_seen:
        k.ob.opaque_seen.add((pc, address))
        field_offset = offset % OBJECT_TYPE_SIZE
        k.violation("opaque_object", f"driver {'write' if write else 'read'} of OBJECT_TYPE "
                    f"{k.ob.object_types[address - field_offset]!r} at +{field_offset:#x}, an opaque kernel structure "
                    "(a dereference too many of a data import such as *PsThreadType?)", pc, k.current)
    return True


def new_handle(k, kind: str, obj, api: str, site: int, access: int = 0, path: str = "") -> int:
    h = k.ob.next_handle
    k.ob.next_handle += 4
    cur = k.sched.current
    k.ob.handles[h] = Handle(h, kind, obj, api, site, cur.name if cur else "", access, path)
    return h


# ---------------------------------------------------------------- handles (ob/obhandle.c)

def arg0_handle_and_file(k) -> frozenset:
    h = k.ob.handles.get(k.cpu.arg0())
    return frozenset({("handle", k.cpu.arg0())}) | (FILE_SYSTEM if h is not None and h.kind == "file" else frozenset())


@ob.export(max_irql=PASSIVE_LEVEL, aliases={"NtClose": PASSIVE_LEVEL}, footprint=arg0_handle_and_file)
def ZwClose(k):
    h = k.cpu.arg0()
    e = k.ob.handles.pop(h, None)
    t = k.sched.current
    if e is None:
        site = k.ret_site()
        k.ob.closed_invalid.append({"handle": h, "call_site": k.sym.fmt(site), "thread": t.name, "call": k.total_calls})
        if h == 0 or h >= 0xFFFFFFFFFFFFFFFA:  # NULL or a pseudo-handle (NtCurrentThread, ...): no bug check
            k.violation("invalid_handle_close", f"ZwClose({h:#x}): not an open handle", site, t)
            return st.STATUS_INVALID_HANDLE if h == 0 else 0
        # ObpCloseHandle from kernel mode: bug check 0x93, as Windows does with Driver Verifier or a
        # kernel debugger attached (without them, STATUS_INVALID_HANDLE and the handle may be reused)
        k.bugcheck(0x93, (h, 1, 0, 0), f"ZwClose({h:#x}): not an open handle (closed twice, or never opened)")
        return None
    if e.kind == "file":
        k.io.vfs.close(e.obj)
    return 0


# ---------------------------------------------------------------- references (ob/obref.c)

def _reference(k, obj: int, site: int) -> None:
    t = k.ke.by_ethread.get(obj)
    r = k.ob.refs.setdefault(obj, {"object": obj, "what": f"ETHREAD of {t.name}" if t else f"object {obj:#x}",
                                   "count": 0, "sites": []})
    r["count"] += 1
    r["sites"].append(k.sym.fmt(site))


def arg0_handle(k) -> frozenset:
    return frozenset({("handle", k.cpu.arg0())})


def _lookup(k, api: str, handle: int, site: int) -> Handle | None:
    """The entry of a handle (NtCurrentThread(): the calling thread), or None: not open, reported."""
    t = k.sched.current
    if handle == NT_CURRENT_THREAD:
        return Handle(handle, "thread", t, api, site, t.name)
    h = k.ob.handles.get(handle)
    if h is None:
        k.violation("invalid_handle", f"{api} on invalid handle {handle:#x}", site, t)
    return h


@ob.export(max_irql=PASSIVE_LEVEL, footprint=arg0_handle)
def ObReferenceObjectByHandle(k):
    handle, _access, otype, _mode, pobj, _hinfo = k.cpu.args(6)
    site = k.ret_site()
    failed = k.injected_fault("reference")
    if failed is not None:
        k.cpu.w64(pobj, 0)  # ObReferenceObjectByHandle clears *Object first
        return failed
    h = _lookup(k, "ObReferenceObjectByHandle", handle, site)
    if h is None:
        return st.STATUS_INVALID_HANDLE
    if h.kind != "thread" or (otype and k.ob.thread_type and otype != k.ob.thread_type):
        return st.STATUS_OBJECT_TYPE_MISMATCH
    _reference(k, h.obj.ethread, site)
    k.cpu.w64(pobj, h.obj.ethread)
    return 0


@ob.export(max_irql=DISPATCH_LEVEL, footprint=arg0_object)
def ObfReferenceObject(k):
    obj = k.cpu.arg0()
    _reference(k, obj, k.ret_site())
    return obj


@ob.export(max_irql=DISPATCH_LEVEL, aliases={"ObDereferenceObject": DISPATCH_LEVEL}, footprint=arg0_object)
def ObfDereferenceObject(k):
    obj = k.cpu.arg0()
    r = k.ob.refs.get(obj)
    if r is None or r["count"] <= 0:
        k.violation("dereference_unreferenced", f"ObfDereferenceObject({obj:#x}) without a matching reference "
                    "taken by the driver", k.ret_site(), k.sched.current)
        return 0
    r["count"] -= 1
    return r["count"]


# ---------------------------------------------------------------- waits through a handle (ob/obwait.c)

def arg0_handle_and_object(k) -> frozenset:
    """The handle, and the thread object behind it (the thread's end signals it)."""
    handle = k.cpu.arg0()
    h = k.ob.handles.get(handle)
    if handle == NT_CURRENT_THREAD:
        return frozenset({("handle", handle), ("obj", k.sched.current.ethread)})
    if h is not None and h.kind == "thread":
        return frozenset({("handle", handle), ("obj", h.obj.ethread)})
    return frozenset({("handle", handle)})


@ob.export(max_irql=PASSIVE_LEVEL, footprint=arg0_handle_and_object)
def ZwWaitForSingleObject(k):
    """NtWaitForSingleObject: the object behind the handle, then a wait on it (UserRequest). Thread
    handles are modelled: the wait ends when the thread does. The model has no APCs, so Alertable
    changes nothing."""
    handle, _alertable, tptr = k.cpu.args(3)
    site = k.ret_site()
    failed = k.injected_fault("zwwait")
    if failed is not None:
        return failed
    h = _lookup(k, "ZwWaitForSingleObject", handle, site)
    if h is None:
        return st.STATUS_INVALID_HANDLE
    if h.kind != "thread":
        k.crash("unsupported_object", f"ZwWaitForSingleObject on a {h.kind} handle ({handle:#x}): only thread "
                "handles are modelled", site)
        return BLOCK
    return wait_for_thread(k, h.obj.ethread, "UserRequest", site, timeout_at(k, tptr), "nt!ZwWaitForSingleObject")

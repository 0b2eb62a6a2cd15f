"""io: the I/O manager (ReactOS ntoskrnl/io/iomgr): loading and unloading the driver (DriverEntry,
DriverUnload), device objects, and the file routines (NtCreateFile, NtWriteFile, ...) that hand
their requests to the file system (`fs`)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .. import ntstatus as st
from ..machine.cpu import STUB_BASE
from . import fs as V
from .api import Component, everything, file_system
from .defs import OBJ_KERNEL_HANDLE, PASSIVE_LEVEL, SYSTEM_PROCESS
from .ke import create_thread
from .mm import free_memory

io = Component("io")

ENTRY_RETURN = STUB_BASE + 1  # DriverEntry returns here: nt!IopLoadDriver
UNLOAD_RETURN = STUB_BASE + 2  # DriverUnload returns here: nt!IopUnloadDriver
LOADER_ETHREAD, LOADER_TID = 0xFFFF9709A5581040, 0x1F4
UNLOAD_ETHREAD, UNLOAD_TID = 0xFFFF9709A55A4040, 0x218
DEVICE_PAGE = 0xFFFF9709AC3D4000
DEVICE_OFFSET = 0xDD0  # DEVICE_OBJECT here, extension at +0x150 -> FAST_MUTEX at ...4f20 like the seed
DEVICE_OBJECT_SIZE = 0x150
DEVICES = frozenset({("devices",)})

FileStandardInformation, FileRenameInformation, FilePositionInformation, FileRenameInformationEx = 5, 10, 14, 65
FILE_WRITE_TO_END_OF_FILE, FILE_USE_FILE_POINTER_POSITION = 0xFFFFFFFF, 0xFFFFFFFE


@dataclass
class IoState:
    """The driver's life (DriverEntry's status, DriverUnload), its devices and the file system."""
    vfs: V.VFS
    devices: dict[int, dict] = field(default_factory=dict)
    driver_entry_status: int | None = None
    unload_started: bool = False
    unload_done: bool = False
    unload_routine: int | None = None
    create_count: int = 0  # ZwCreateFile calls, for --fault create-every=N


def init(k) -> IoState:
    vfs = V.VFS()
    for d in k.opts.faults.missing_dirs:
        vfs.rmdir(d)
    return IoState(vfs)


# ---------------------------------------------------------------- driver load and unload (io/iomgr/driver.c)

def start_driver_entry(k):
    """IopLoadDriver: DriverEntry(DriverObject, RegistryPath) on a system worker thread."""
    loader = create_thread(k, "DriverEntry (System worker, IopLoadDriver)", k.base + k.image.entry_rva, "loader",
                           ENTRY_RETURN, [k.driver_object, k.registry_path], LOADER_ETHREAD, LOADER_TID)
    k.sched.make_ready(loader)
    return loader


def after_driver_entry(k) -> None:
    s = k.io.driver_entry_status
    k.event(f"DriverEntry returned {st.name(s)}")
    if not st.is_success(s):
        if k.ps.pending_driver_threads:
            k.violation("driver_entry_failed_with_threads",
                        f"DriverEntry failed ({st.name(s)}) after starting {len(k.ps.pending_driver_threads)} system "
                        "thread(s): the image is unloaded while they run", 0)
        # Windows unloads the image and never calls DriverUnload; the threads are not run (further).
        for t in k.ps.pending_driver_threads:
            if t in k.sched.ready:
                k.sched.ready.remove(t)
        return
    if k.opts.unload == "early":
        start_unload(k)
    start_pending_threads(k)
    k.ps.pending_driver_threads = []


def start_pending_threads(k) -> None:
    """The system threads DriverEntry created and that have not run yet become ready, in creation order
    (or reversed): when DriverEntry returns, or when it waits (they run meanwhile, as on Windows)."""
    order = list(k.ps.pending_driver_threads)
    if k.opts.order == "reverse":
        order.reverse()
    for t in order:
        if not t.started and t not in k.sched.ready:  # (exploring: already ready since created)
            k.sched.make_ready(t)


def start_unload(k) -> None:
    """IopUnloadDriver: DriverUnload(DriverObject) on a system worker thread, if the driver set one."""
    k.io.unload_started = True
    unload = k.io.unload_routine = k.cpu.u64(k.driver_object + 0x68) or None  # DRIVER_OBJECT.DriverUnload
    if unload is None:
        k.event("DriverUnload is NULL: driver cannot be unloaded")
        return
    t = create_thread(k, "DriverUnload (System worker, IopUnloadDriver)", unload, "unload", UNLOAD_RETURN,
                      [k.driver_object], UNLOAD_ETHREAD, UNLOAD_TID)
    k.event(f"calling DriverUnload {k.sym.fmt(unload)}")
    k.sched.make_ready(t)


def check_devices_deleted(k) -> None:
    """A driver deletes its devices before DriverUnload returns, or before DriverEntry returns an error."""
    if k.io.unload_done:
        when = "DriverUnload returned"
    elif k.io.driver_entry_status is not None and not st.is_success(k.io.driver_entry_status):
        when = f"DriverEntry failed ({st.name(k.io.driver_entry_status)})"
    else:
        return
    for d in k.io.devices.values():
        if not d["deleted"]:
            k.violation("device_not_deleted", f"{when} but DEVICE_OBJECT {d['address']:#x} (created at "
                        f"{d['created_at']}) was never deleted with IoDeleteDevice", 0)


# ---------------------------------------------------------------- devices (io/iomgr/device.c)

def device_list(_k) -> frozenset:
    return DEVICES


@io.export(max_irql=PASSIVE_LEVEL, footprint=device_list)
def IoCreateDevice(k):
    drv, ext_size, name_ptr, dtype, chars, _exclusive, out = k.cpu.args(7)
    ext_size &= 0xFFFFFFFF
    site = k.ret_site()
    faults = k.opts.faults
    if faults.iocreatedevice_status is not None:
        if out:
            k.cpu.w64(out, 0)
        k.event(f"fault injected: IoCreateDevice fails with {st.name(faults.iocreatedevice_status)}", k.sched.current)
        return faults.iocreatedevice_status
    n = len(k.io.devices)
    page = DEVICE_PAGE + n * 0x100000
    dev = page + DEVICE_OFFSET
    total = DEVICE_OFFSET + DEVICE_OBJECT_SIZE + ext_size
    k.cpu.map(page, (total + 0xFFF) & ~0xFFF, f"tdemu.device{n}")
    ext = dev + DEVICE_OBJECT_SIZE if ext_size else 0
    old_first = k.cpu.u64(drv + 8)
    hdr = struct.pack("<HHIQQQQQIIQQIB", 3, (DEVICE_OBJECT_SIZE + ext_size) & 0xFFFF, 1, drv, old_first, 0, 0, 0,
                      0x80, chars & 0xFFFFFFFF, 0, ext, dtype & 0xFFFFFFFF, 1)
    k.cpu.mem_write(dev, hdr)
    k.cpu.w64(drv + 8, dev)  # DRIVER_OBJECT.DeviceObject: new devices go first
    name = k.cpu.unicode_string(name_ptr) if name_ptr else ""
    k.io.devices[dev] = {"address": dev, "extension": ext, "extension_size": ext_size, "name": name or None,
                      "created_at": k.sym.fmt(site), "deleted": False, "deleted_at": None}
    if out:
        k.cpu.w64(out, dev)
    k.event(f"IoCreateDevice -> DEVICE_OBJECT {dev:#x}, extension {ext:#x} ({ext_size:#x} bytes)", k.sched.current)
    return 0


@io.export(max_irql=PASSIVE_LEVEL, footprint=everything)
def IoDeleteDevice(k):
    dev = k.cpu.arg0()
    t = k.sched.current
    site = k.ret_site()
    d = k.io.devices.get(dev)
    if d is None or d["deleted"]:
        k.violation("delete_unknown_device", f"IoDeleteDevice({dev:#x}) on a device that "
                    f"{'was already deleted' if d else 'does not exist'}", site, t)
        return None
    link = k.cpu.u64(dev + 8) + 8  # DRIVER_OBJECT.DeviceObject, then each DEVICE_OBJECT.NextDevice (+0x10)
    while (p := k.cpu.u64(link)) and p != dev:
        link = p + 0x10
    if p:
        k.cpu.w64(link, k.cpu.u64(dev + 0x10))
    d["deleted"] = True
    d["deleted_at"] = k.sym.fmt(site)
    start, end = dev, dev + DEVICE_OBJECT_SIZE + d["extension_size"]
    what = "DEVICE_OBJECT" + (" and its extension" if d["extension_size"] else "")
    # threads still waiting on, or owning, a FAST_MUTEX inside the freed memory
    for fm, waiters in k.ex.mutex_waiters.items():
        if start <= fm < end and waiters:
            k.violation("freed_while_waited_on",
                        f"IoDeleteDevice frees FAST_MUTEX {fm:#x} in the device extension while "
                        f"{len(waiters)} thread(s) wait on it: " + ", ".join(w.name for w in waiters), site, t)
    live = [th for th in k.sched.threads if th.kind == "driver" and th.state != "Terminated"]
    for th in live:
        for fm in th.held:
            if start <= fm < end:
                k.violation("freed_while_owned", f"IoDeleteDevice frees FAST_MUTEX {fm:#x} still owned "
                            f"by {th.name}", site, t)
    if live:
        k.violation("device_deleted_threads_running", "IoDeleteDevice while the driver's system thread(s) still "
                    f"exist: {', '.join(th.name for th in live)} (they use the device extension)", site, t)
    free_memory(k, start, end, what)
    k.event(f"IoDeleteDevice({dev:#x}) at {k.sym.fmt(site)}", t)
    return None


@io.export()
def IoGetCurrentProcess(k):
    return SYSTEM_PROCESS


# ---------------------------------------------------------------- files (io/iomgr/file.c, iofunc.c)

def _iosb(k, addr: int, status: int, info: int = 0) -> int:
    """Writes the IO_STATUS_BLOCK (if any); returns the status."""
    if addr:
        k.cpu.mem_write(addr, struct.pack("<QQ", status & 0xFFFFFFFF, info))
    return status


def _object_name(k, oa: int) -> str:
    if not oa:
        return ""
    root, name_ptr = struct.unpack("<QQ", k.cpu.mem(oa + 8, 16))
    name = k.cpu.unicode_string(name_ptr)
    if root:
        h = k.ob.handles.get(root)
        if h is not None and h.path:
            name = h.path.rstrip("\\") + "\\" + name
    return name


def _create(k, name: str, fh: int, access: int, oa: int, iosb_p: int, share: int, disp: int, opts: int, api: str):
    t = k.sched.current
    site = k.ret_site()
    faults = k.opts.faults
    if api == "ZwCreateFile":
        k.io.create_count += 1
        if faults.create_fail_every and k.io.create_count % faults.create_fail_every == 0:
            _iosb(k, iosb_p, faults.create_fail_status)
            k.event(f"fault injected: ZwCreateFile #{k.io.create_count} ({name}) fails with "
                    f"{st.name(faults.create_fail_status)}", t)
            return faults.create_fail_status
    status, info, of = k.io.vfs.create(name, access, share, disp, opts)
    _iosb(k, iosb_p, status, info)
    if status == 0:
        if not (k.cpu.u32(oa + 0x18) if oa else 0) & OBJ_KERNEL_HANDLE:  # OBJECT_ATTRIBUTES.Attributes
            k.violation("handle_not_kernel", f"{api} without OBJ_KERNEL_HANDLE: the handle is usable from the "
                        "current process", site, t)
        h = k.new_handle("file", of, api, site, V.map_generic(access), of.file.path)
        k.cpu.w64(fh, h)
    return status


@io.export(max_irql=PASSIVE_LEVEL, aliases={"NtCreateFile": None}, footprint=file_system)
def ZwCreateFile(k):
    fh, access, oa, iosb_p, _alloc, _attrs, share, disp, opts, _ea, _ealen = k.cpu.args(11)
    return _create(k, _object_name(k, oa), fh, access & 0xFFFFFFFF, oa, iosb_p, share & 0xFFFFFFFF,
                   disp & 0xFFFFFFFF, opts & 0xFFFFFFFF, "ZwCreateFile")


@io.export(max_irql=PASSIVE_LEVEL, aliases={"NtOpenFile": None}, footprint=file_system)
def ZwOpenFile(k):
    fh, access, oa, iosb_p, share, opts = k.cpu.args(6)
    return _create(k, _object_name(k, oa), fh, access & 0xFFFFFFFF, oa, iosb_p, share & 0xFFFFFFFF, V.FILE_OPEN,
                   opts & 0xFFFFFFFF, "ZwOpenFile")


def _file_args(k, api: str, n: int):
    """A file routine's n arguments, the open file in place of its handle (None, reported: not a file handle)."""
    h, *rest = k.cpu.args(n)
    e = k.ob.handles.get(h)
    if e is None or e.kind != "file":
        k.violation("invalid_handle", f"{api} on invalid file handle {h:#x}", k.ret_site(), k.sched.current)
        return None, *rest
    return e.obj, *rest


@io.export(max_irql=PASSIVE_LEVEL, aliases={"NtWriteFile": None}, footprint=file_system)
def ZwWriteFile(k):
    of, _event, _apc, _apc_context, iosb_p, buf, length, off_p, _key = _file_args(k, "ZwWriteFile", 9)
    if of is None:
        return st.STATUS_INVALID_HANDLE
    length &= 0xFFFFFFFF
    status, n = k.io.vfs.write(of, k.cpu.mem(buf, length) if length else b"", _offset(k, of, off_p))
    return _iosb(k, iosb_p, status, n)


def _offset(k, of, off_p: int):
    """A ByteOffset argument: None (the file pointer), or where to read or write."""
    if not off_p:
        return None
    lo, hi = struct.unpack("<II", k.cpu.mem(off_p, 8))
    if hi == 0xFFFFFFFF and lo == FILE_WRITE_TO_END_OF_FILE:
        return len(of.file.data)
    if hi == 0xFFFFFFFF and lo == FILE_USE_FILE_POINTER_POSITION:
        return None
    return lo | (hi << 32)


@io.export(max_irql=PASSIVE_LEVEL, aliases={"NtReadFile": None}, footprint=file_system)
def ZwReadFile(k):
    of, _event, _apc, _apc_context, iosb_p, buf, length, off_p, _key = _file_args(k, "ZwReadFile", 9)
    if of is None:
        return st.STATUS_INVALID_HANDLE
    status, data = k.io.vfs.read(of, length & 0xFFFFFFFF, _offset(k, of, off_p))
    if data:
        k.cpu.mem_write(buf, data)
    return _iosb(k, iosb_p, status, len(data))


def _information_args(k, api: str):
    """Zw(Query|Set)InformationFile's arguments: the open file (None, reported: not a file handle),
    IoStatusBlock, FileInformation, Length, FileInformationClass."""
    of, iosb_p, info, length, klass = _file_args(k, api, 5)
    return of, iosb_p, info, length & 0xFFFFFFFF, klass & 0xFFFFFFFF


def _unsupported_class(k, api: str, klass: int):
    k.crash("unsupported_api", f"{api}: FileInformationClass {klass} is not modelled by tdemu (modelled: "
            "FileStandardInformation, FilePositionInformation, FileRenameInformation)", k.ret_site())


@io.export(max_irql=PASSIVE_LEVEL, aliases={"NtQueryInformationFile": None}, footprint=file_system)
def ZwQueryInformationFile(k):
    of, iosb_p, info, length, klass = _information_args(k, "ZwQueryInformationFile")
    if of is None:
        return st.STATUS_INVALID_HANDLE
    if klass == FileStandardInformation:
        size = len(of.file.data)
        # AllocationSize, EndOfFile, NumberOfLinks, DeletePending, Directory
        data = struct.pack("<qqIBBxx", (size + 0xFFF) & ~0xFFF, size, 1, 0, 0)
    elif klass == FilePositionInformation:
        data = struct.pack("<q", of.position)
    else:
        return _unsupported_class(k, "ZwQueryInformationFile", klass)
    if length < len(data):
        return _iosb(k, iosb_p, st.STATUS_INFO_LENGTH_MISMATCH)
    k.cpu.mem_write(info, data)
    return _iosb(k, iosb_p, 0, len(data))


@io.export(max_irql=PASSIVE_LEVEL, aliases={"NtSetInformationFile": None}, footprint=file_system)
def ZwSetInformationFile(k):
    of, iosb_p, info, length, klass = _information_args(k, "ZwSetInformationFile")
    if of is None:
        return st.STATUS_INVALID_HANDLE
    if klass in (FileRenameInformation, FileRenameInformationEx):
        if length < 0x18:
            return _iosb(k, iosb_p, st.STATUS_INFO_LENGTH_MISMATCH)
        flags, _pad, _root, nlen = struct.unpack("<IIQI", k.cpu.mem(info, 0x14))
        replace = bool(flags & 0xFF) if klass == FileRenameInformation else bool(flags & 1)
        if 0x14 + nlen > length:
            return _iosb(k, iosb_p, st.STATUS_INVALID_PARAMETER)
        return _iosb(k, iosb_p, k.io.vfs.rename(of, k.cpu.wstr(info + 0x14, nlen), replace))
    if klass == FilePositionInformation:
        if length < 8:
            return _iosb(k, iosb_p, st.STATUS_INFO_LENGTH_MISMATCH)
        of.position = struct.unpack("<q", k.cpu.mem(info, 8))[0]
        return _iosb(k, iosb_p, 0)
    return _unsupported_class(k, "ZwSetInformationFile", klass)

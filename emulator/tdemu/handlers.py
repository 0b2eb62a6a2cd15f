"""ntoskrnl API handlers of the kernel model. Each handler reads its arguments (x64 ABI: rcx, rdx,
r8, r9, then the stack), acts on the model, and returns RAX (None for VOID, BLOCK when the thread
blocks; the machine then switches threads)."""

from __future__ import annotations

import struct

from unicorn import UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE
from unicorn.x86_const import UC_X86_REG_CR8, UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_RSP

from . import ntstatus as st
from . import vfs as V
from .machine import (APC_LEVEL, BLOCK, DEVICE_OBJECT_SIZE, DEVICE_OFFSET, DEVICE_PAGE, DISPATCH_LEVEL,
                      FM_LOCK_WAITER_INC, FM_LOCK_WAITER_WOKEN, IRQL_NAMES, NOTIFICATION_EVENT, POOL_BASE,
                      POOL_SIZE, SYNCHRONIZATION_EVENT, SYSTEM_PROCESS, THREAD_OBJECT, WAIT_REASONS, KThread, phys)
from .printf import format_printf

FileRenameInformation, FileRenameInformationEx = 10, 65
FILE_WRITE_TO_END_OF_FILE, FILE_USE_FILE_POINTER_POSITION = 0xFFFFFFFF, 0xFFFFFFFE
NT_CURRENT_THREAD = 0xFFFFFFFFFFFFFFFE


def table(m) -> dict:  # noqa: C901 - one closure per API keeps the hot path short
    uc = m.uc
    u32, u64, w32, w64, mem, mw = m.u32, m.u64, m.w32, m.w64, m.mem, m.mem_write
    faults = m.opts.faults

    def cur() -> KThread:
        return m.current

    def set_irql(t: KThread, irql: int) -> None:
        t.irql = irql
        uc.reg_write(UC_X86_REG_CR8, irql)

    def iosb(addr: int, status: int, info: int) -> None:
        if addr:
            mw(addr, struct.pack("<QQ", status & 0xFFFFFFFF, info))

    def object_name(oa: int) -> str:
        if not oa:
            return ""
        root, name_ptr = struct.unpack("<QQ", mem(oa + 8, 16))
        name = m.unicode_string(name_ptr)
        if root:
            h = m.handles.get(root)
            if h is not None and h.path:
                name = h.path.rstrip("\\") + "\\" + name
        return name

    def oa_attributes(oa: int) -> int:
        return u32(oa + 0x18) if oa else 0

    # ---------------------------------------------------------------- fast mutex
    def fm_acquire(fm: int, unsafe: bool, fn: str):
        t = cur()
        site = m.ret_site()
        if m.freed:
            m.check_freed(fm, 0x38, fn)
        if unsafe and t.irql < APC_LEVEL and t.apc_disable == 0:
            m._violation("fast_mutex_unsafe_apcs_enabled",
                         f"{fn} called with normal kernel APCs enabled (needs KeEnterCriticalRegion or APC_LEVEL)",
                         site, t)
        old_irql = t.irql
        count = struct.unpack("<i", mem(fm, 4))[0]
        if count & 1:
            w32(fm, count & ~1)
            w64(fm + 8, t.ethread)
            if not unsafe:
                w32(fm + 0x30, old_irql)
                if t.irql < APC_LEVEL:
                    set_irql(t, APC_LEVEL)
            t.acquires.append((fm, site))
            t.held.append(fm)
            return None
        owner = u64(fm + 8)
        if owner == t.ethread:
            if m.opts.allow_recursive_acquire:
                m._violation("recursive_acquire_ignored",
                             f"{fn}: recursive acquire of FAST_MUTEX {fm:#x} ignored (--allow-recursive-acquire)",
                             site, t)
                return None
            m._violation("recursive_fast_mutex_acquire",
                         f"{fn}: thread acquires FAST_MUTEX {fm:#x} it already owns (fast mutexes are not "
                         "recursive: the thread waits for itself forever)", site, t)
            m.event(f"{t.name} calls {fn} on FAST_MUTEX {fm:#x} that it already owns: self-deadlock "
                    f"at {m.fmt_sym(site)}", t)
        if count < 0 or count > 0x10000:
            m._violation("fast_mutex_not_initialized", f"{fn} on FAST_MUTEX {fm:#x} with Count={count}", site, t)
        # contended: the waiter is counted in Count and Contention, and waits at APC_LEVEL
        if not unsafe and t.irql < APC_LEVEL:
            set_irql(t, APC_LEVEL)
        w32(fm, count + FM_LOCK_WAITER_INC)
        w32(fm + 0x10, u32(fm + 0x10) + 1)
        m.mutex_waiters.setdefault(fm, []).append(t)
        m.event(f"{t.name} waits for FAST_MUTEX {fm:#x} (owner {owner:#x}) at {m.fmt_sym(site)}", t)
        return m._block(t, "mutex", "WrFastMutex", fm, "nt!" + fn, old_irql=old_irql, unsafe=unsafe)

    def fm_retry(t: KThread) -> bool:
        """A woken waiter tries again (it runs before the thread continues)."""
        w = t.last_wait
        fm = w.obj
        count = struct.unpack("<i", mem(fm, 4))[0]
        if count & 1:
            count &= ~1
            count &= ~FM_LOCK_WAITER_WOKEN
            w32(fm, count)
            w64(fm + 8, t.ethread)
            if not w.unsafe:
                w32(fm + 0x30, w.old_irql)
            t.acquires.append((fm, w.ret_addr))
            t.held.append(fm)
            return True
        # lost the race: wait again
        w32(fm, (count & ~FM_LOCK_WAITER_WOKEN) + FM_LOCK_WAITER_INC)
        m.mutex_waiters.setdefault(fm, []).append(t)
        t.wait, t.state = w, "Waiting"
        return False

    def fm_release(fm: int, unsafe: bool, fn: str):
        t = cur()
        site = m.ret_site()
        if m.freed:
            m.check_freed(fm, 0x38, fn)
        owner = u64(fm + 8)
        count = struct.unpack("<i", mem(fm, 4))[0]
        if count & 1:
            m._violation("fast_mutex_release_not_acquired", f"{fn} on FAST_MUTEX {fm:#x} that is not acquired",
                         site, t)
        elif owner != t.ethread:
            m._violation("fast_mutex_release_not_owner",
                         f"{fn} on FAST_MUTEX {fm:#x} owned by {owner:#x}, not by the caller", site, t)
        if not unsafe and t.irql != APC_LEVEL:
            m._violation("fast_mutex_release_irql",
                         f"{fn} at {IRQL_NAMES.get(t.irql, t.irql)}: must be called at APC_LEVEL", site, t)
        old_irql = u32(fm + 0x30)
        w64(fm + 8, 0)
        count = (count | 1)
        waiters = m.mutex_waiters.get(fm)
        if waiters and not count & FM_LOCK_WAITER_WOKEN and count >= FM_LOCK_WAITER_INC:
            count = count - FM_LOCK_WAITER_INC + FM_LOCK_WAITER_WOKEN
            w = waiters.pop(0)
            m._wake(w, 0, fm_retry)
            m.event(f"{t.name} releases FAST_MUTEX {fm:#x}, wakes {w.name}", t)
        w32(fm, count)
        if fm in t.held:
            t.held.remove(fm)
        if not unsafe:
            set_irql(t, old_irql)
        return None

    def ExAcquireFastMutex():
        return fm_acquire(uc.reg_read(UC_X86_REG_RCX), False, "ExAcquireFastMutex")

    def ExReleaseFastMutex():
        return fm_release(uc.reg_read(UC_X86_REG_RCX), False, "ExReleaseFastMutex")

    def ExAcquireFastMutexUnsafe():
        return fm_acquire(uc.reg_read(UC_X86_REG_RCX), True, "ExAcquireFastMutexUnsafe")

    def ExReleaseFastMutexUnsafe():
        return fm_release(uc.reg_read(UC_X86_REG_RCX), True, "ExReleaseFastMutexUnsafe")

    def ExTryToAcquireFastMutex():
        fm = uc.reg_read(UC_X86_REG_RCX)
        t = cur()
        count = struct.unpack("<i", mem(fm, 4))[0]
        if count & 1:
            w32(fm, count & ~1)
            w64(fm + 8, t.ethread)
            w32(fm + 0x30, t.irql)
            if t.irql < APC_LEVEL:
                set_irql(t, APC_LEVEL)
            t.acquires.append((fm, m.ret_site()))
            t.held.append(fm)
            return 1
        return 0

    # ---------------------------------------------------------------- APC / IRQL
    def KeEnterCriticalRegion():
        cur().apc_disable += 1

    def KeLeaveCriticalRegion():
        t = cur()
        if t.apc_disable <= 0:
            m._violation("critical_region_underflow", "KeLeaveCriticalRegion without KeEnterCriticalRegion",
                         m.ret_site(), t)
            return None
        t.apc_disable -= 1

    def KeGetCurrentIrql():
        return cur().irql

    def KfRaiseIrql():
        t = cur()
        new = uc.reg_read(UC_X86_REG_RCX) & 0xFF
        old = t.irql
        if new < old:
            m._violation("raise_irql_lower", f"KfRaiseIrql({new}) below current IRQL {old}", m.ret_site(), t)
        set_irql(t, new)
        return old

    def KeLowerIrql():
        t = cur()
        new = uc.reg_read(UC_X86_REG_RCX) & 0xFF
        if new > t.irql:
            m._violation("lower_irql_higher", f"KeLowerIrql({new}) above current IRQL {t.irql}", m.ret_site(), t)
        set_irql(t, new)

    def KeRaiseIrqlToDpcLevel():
        t = cur()
        old = t.irql
        set_irql(t, DISPATCH_LEVEL)
        return old

    # ---------------------------------------------------------------- threads / objects
    def PsCreateSystemThread():
        ph, access, oa, hproc, cid, start, ctx = m.args(7)
        m._thread_create_count += 1
        if faults.thread_fail_nth and m._thread_create_count == faults.thread_fail_nth:
            m.event(f"fault injected: PsCreateSystemThread #{m._thread_create_count} fails with "
                    f"{st.name(faults.thread_fail_status)}", cur())
            return faults.thread_fail_status
        sym = m.fmt_sym(start)
        name = sym.split("!", 1)[-1]
        if name.endswith("+0x0"):
            name = name[:-4]
        t = m._new_thread(name, start, ctx, "driver")
        t.created_by_site = m.ret_site()
        h = m.new_handle("thread", t, "PsCreateSystemThread", t.created_by_site, access)
        w64(ph, h)
        if cid:
            mw(cid, struct.pack("<QQ", 4, t.tid))
        m.event(f"PsCreateSystemThread -> {t.name} (ETHREAD {t.ethread:#x}, Id {t.tid:x}), handle {h:#x}", cur())
        if m.driver_entry_status is None and cur().kind == "loader":
            m.pending_driver_threads.append(t)
        else:
            m._make_ready(t)
        return 0

    def PsTerminateSystemThread():
        status = uc.reg_read(UC_X86_REG_RCX) & 0xFFFFFFFF
        t = cur()
        if t.kind != "driver":
            m._violation("terminate_non_system_thread", "PsTerminateSystemThread from a thread the driver did "
                         "not create", m.ret_site(), t)
        m._stop = ("exit", status, f"PsTerminateSystemThread({st.name(status)})")
        uc.emu_stop()
        return BLOCK

    def PsGetCurrentThread():
        return cur().ethread

    def PsGetCurrentThreadId():
        return cur().tid

    def PsGetCurrentProcess():
        return SYSTEM_PROCESS

    def PsGetCurrentProcessId():
        return 4

    def ObReferenceObjectByHandle():
        handle, access, otype, mode, pobj, hinfo = m.args(6)
        t = cur()
        site = m.ret_site()
        if handle == NT_CURRENT_THREAD:
            target = t
        else:
            h = m.handles.get(handle)
            if h is None:
                m._violation("invalid_handle", f"ObReferenceObjectByHandle on invalid handle {handle:#x}", site, t)
                return st.STATUS_INVALID_HANDLE
            if h.kind != "thread":
                if otype and otype == m.thread_type:
                    return st.STATUS_OBJECT_TYPE_MISMATCH
                target = None
            else:
                target = h.obj
        if target is None:
            return st.STATUS_OBJECT_TYPE_MISMATCH
        if otype and m.thread_type and otype != m.thread_type:
            return st.STATUS_OBJECT_TYPE_MISMATCH
        r = m.refs.setdefault(target.ethread, {"object": target.ethread, "what": f"ETHREAD of {target.name}",
                                               "count": 0, "sites": []})
        r["count"] += 1
        r["sites"].append(m.fmt_sym(site))
        w64(pobj, target.ethread)
        return 0

    def ObfReferenceObject():
        obj = uc.reg_read(UC_X86_REG_RCX)
        r = m.refs.setdefault(obj, {"object": obj, "what": _obj_name(obj), "count": 0, "sites": []})
        r["count"] += 1
        r["sites"].append(m.fmt_sym(m.ret_site()))
        return obj

    def ObfDereferenceObject():
        obj = uc.reg_read(UC_X86_REG_RCX)
        r = m.refs.get(obj)
        if r is None or r["count"] <= 0:
            m._violation("dereference_unreferenced", f"ObfDereferenceObject({obj:#x}) without a matching reference "
                         "taken by the driver", m.ret_site(), cur())
            return 0
        r["count"] -= 1
        return r["count"]

    def _obj_name(obj: int) -> str:
        t = m.by_ethread.get(obj)
        return f"ETHREAD of {t.name}" if t else f"object {obj:#x}"

    # ---------------------------------------------------------------- dispatcher objects
    def KeInitializeEvent():
        ev, typ, state = m.args(3)
        if m.freed:
            m.check_freed(ev, 0x18, "KeInitializeEvent")
        typ &= 0xFF
        mw(ev, struct.pack("<BBBBiQQ", typ, 0, 6, 0, 1 if state & 0xFF else 0, ev + 8, ev + 8))

    def _signal_state(obj: int) -> int:
        return struct.unpack("<i", mem(obj + 4, 4))[0]

    def KeSetEvent():
        ev, inc, wait = m.args(3)
        if m.freed:
            m.check_freed(ev, 0x18, "KeSetEvent")
        prev = _signal_state(ev)
        typ = mem(ev, 1)[0]
        waiters = m.event_waiters.get(ev, [])
        if waiters:
            if typ == SYNCHRONIZATION_EVENT:
                t = waiters.pop(0)
                m._wake(t, 0)
                mw(ev + 4, struct.pack("<i", 0))
                return prev
            while waiters:
                m._wake(waiters.pop(0), 0)
        mw(ev + 4, struct.pack("<i", 1))
        return prev

    def KeResetEvent():
        ev = uc.reg_read(UC_X86_REG_RCX)
        prev = _signal_state(ev)
        mw(ev + 4, struct.pack("<i", 0))
        return prev

    def KeClearEvent():
        mw(uc.reg_read(UC_X86_REG_RCX) + 4, struct.pack("<i", 0))

    def KeReadStateEvent():
        return _signal_state(uc.reg_read(UC_X86_REG_RCX))

    def _timeout_at(ptr: int):
        if not ptr:
            return None
        v = struct.unpack("<q", mem(ptr, 8))[0]
        return m.virtual_time + (-v) if v <= 0 else max(v, m.virtual_time)

    def KeWaitForSingleObject():
        obj, reason, mode, alertable, tptr = m.args(5)
        t = cur()
        site = m.ret_site()
        if m.freed:
            m.check_freed(obj, 0x18, "KeWaitForSingleObject")
        timeout_at = _timeout_at(tptr)
        if t.irql >= DISPATCH_LEVEL and timeout_at != m.virtual_time:
            m._violation("wait_at_dispatch", "KeWaitForSingleObject at DISPATCH_LEVEL with a non-zero timeout",
                         site, t)
        typ = mem(obj, 1)[0]
        rname = WAIT_REASONS.get(reason & 0xFFFFFFFF, f"WaitReason{reason}")
        if typ == THREAD_OBJECT:
            target = m.by_ethread.get(obj)
            signalled = (target.state == "Terminated") if target else _signal_state(obj) > 0
            if signalled:
                return 0
            if target is t:
                m._violation("wait_for_self", "thread waits for its own thread object", site, t)
            if timeout_at == m.virtual_time:
                return st.STATUS_TIMEOUT
            m.thread_waiters.setdefault(obj, []).append(t)
            m.event(f"{t.name} waits for thread {target.name if target else hex(obj)} to end at "
                    f"{m.fmt_sym(site)}", t)
            return m._block(t, "thread", rname, obj, "nt!KeWaitForSingleObject", timeout_at=timeout_at)
        if typ in (NOTIFICATION_EVENT, SYNCHRONIZATION_EVENT):
            if _signal_state(obj) > 0:
                if typ == SYNCHRONIZATION_EVENT:
                    mw(obj + 4, struct.pack("<i", 0))
                return 0
            if timeout_at == m.virtual_time:
                return st.STATUS_TIMEOUT
            m.event_waiters.setdefault(obj, []).append(t)
            return m._block(t, "event", rname, obj, "nt!KeWaitForSingleObject", timeout_at=timeout_at)
        m._fatal("unsupported_object", f"KeWaitForSingleObject on dispatcher object type {typ} at {obj:#x}", site)
        return BLOCK

    def KeDelayExecutionThread():
        mode, alertable, iptr = m.args(3)
        t = cur()
        at = _timeout_at(iptr)
        if at is None or at <= m.virtual_time:
            m._stop = ("yield",)
            t.pending_rax = 0
            uc.emu_stop()
            return BLOCK
        return m._block(t, "delay", "DelayExecution", 0, "nt!KeDelayExecutionThread", timeout_at=at)

    # ---------------------------------------------------------------- devices
    def IoCreateDevice():
        drv, ext_size, name_ptr, dtype, chars, exclusive, out = m.args(7)
        ext_size &= 0xFFFFFFFF
        site = m.ret_site()
        if faults.iocreatedevice_status is not None:
            if out:
                w64(out, 0)
            m.event(f"fault injected: IoCreateDevice fails with {st.name(faults.iocreatedevice_status)}", cur())
            return faults.iocreatedevice_status
        n = len(m.devices)
        page = DEVICE_PAGE + n * 0x100000
        dev = page + DEVICE_OFFSET
        total = DEVICE_OFFSET + DEVICE_OBJECT_SIZE + ext_size
        m._map(page, (total + 0xFFF) & ~0xFFF, f"tdemu.device{n}")
        ext = dev + DEVICE_OBJECT_SIZE if ext_size else 0
        old_first = u64(drv + 8)
        hdr = struct.pack("<HHIQQQQQIIQQIB", 3, (DEVICE_OBJECT_SIZE + ext_size) & 0xFFFF, 1, drv, old_first, 0, 0, 0,
                          0x80, chars & 0xFFFFFFFF, 0, ext, dtype & 0xFFFFFFFF, 1)
        mw(dev, hdr)
        w64(drv + 8, dev)  # DRIVER_OBJECT.DeviceObject: new devices go first
        name = m.unicode_string(name_ptr) if name_ptr else ""
        m.devices[dev] = {"address": dev, "extension": ext, "extension_size": ext_size, "name": name or None,
                          "created_at": m.fmt_sym(site), "deleted": False, "deleted_at": None}
        if out:
            w64(out, dev)
        m.event(f"IoCreateDevice -> DEVICE_OBJECT {dev:#x}, extension {ext:#x} ({ext_size:#x} bytes)", cur())
        return 0

    def IoDeleteDevice():
        dev = uc.reg_read(UC_X86_REG_RCX)
        t = cur()
        site = m.ret_site()
        d = m.devices.get(dev)
        if d is None or d["deleted"]:
            m._violation("delete_unknown_device", f"IoDeleteDevice({dev:#x}) on a device that "
                         f"{'was already deleted' if d else 'does not exist'}", site, t)
            return None
        drv = u64(dev + 8)
        nxt = u64(dev + 0x10)
        if u64(drv + 8) == dev:
            w64(drv + 8, nxt)
        else:
            p = u64(drv + 8)
            while p:
                if u64(p + 0x10) == dev:
                    w64(p + 0x10, nxt)
                    break
                p = u64(p + 0x10)
        d["deleted"] = True
        d["deleted_at"] = m.fmt_sym(site)
        start, end = dev, dev + DEVICE_OBJECT_SIZE + d["extension_size"]
        d["snapshot"] = mem(start, end - start)
        what = "DEVICE_OBJECT" + (" and its extension" if d["extension_size"] else "")
        m.freed.append({"start": start, "end": end, "what": what})
        # threads still waiting on, or owning, a FAST_MUTEX inside the freed memory
        for fm, waiters in m.mutex_waiters.items():
            if start <= fm < end and waiters:
                m._violation("freed_while_waited_on",
                             f"IoDeleteDevice frees FAST_MUTEX {fm:#x} in the device extension while "
                             f"{len(waiters)} thread(s) wait on it: " + ", ".join(w.name for w in waiters), site, t)
        for th in m.threads:
            if th.state not in ("Terminated",) and th.kind == "driver":
                for fm in th.held:
                    if start <= fm < end:
                        m._violation("freed_while_owned", f"IoDeleteDevice frees FAST_MUTEX {fm:#x} still owned "
                                     f"by {th.name}", site, t)
        live = [th.name for th in m.threads if th.kind == "driver" and th.state != "Terminated"]
        if live:
            m._violation("device_deleted_threads_running",
                         f"IoDeleteDevice while the driver's system thread(s) still exist: {', '.join(live)} "
                         "(they use the device extension)", site, t)
        uc.hook_add(UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, m._on_freed_access, begin=phys(start), end=phys(end) - 1)
        m.event(f"IoDeleteDevice({dev:#x}) at {m.fmt_sym(site)}", t)
        return None

    # ---------------------------------------------------------------- files
    def _create(name: str, fh: int, access: int, oa: int, iosb_p: int, share: int, disp: int, opts: int,
                api: str):
        t = cur()
        site = m.ret_site()
        if api == "ZwCreateFile":
            m._create_count += 1
            if faults.create_fail_every and m._create_count % faults.create_fail_every == 0:
                iosb(iosb_p, faults.create_fail_status, 0)
                m.event(f"fault injected: ZwCreateFile #{m._create_count} ({name}) fails with "
                        f"{st.name(faults.create_fail_status)}", t)
                return faults.create_fail_status
        status, info, of = m.vfs.create(name, access, share, disp, opts)
        iosb(iosb_p, status, info)
        if status == 0:
            if not oa_attributes(oa) & 0x200:
                m._violation("handle_not_kernel", f"{api} without OBJ_KERNEL_HANDLE: the handle is usable from the "
                             "current process", site, t)
            h = m.new_handle("file", of, api, site, V.map_generic(access), of.file.path)
            w64(fh, h)
        return status

    def ZwCreateFile():
        fh, access, oa, iosb_p, alloc, attrs, share, disp, opts, ea, ealen = m.args(11)
        return _create(object_name(oa), fh, access & 0xFFFFFFFF, oa, iosb_p, share & 0xFFFFFFFF,
                       disp & 0xFFFFFFFF, opts & 0xFFFFFFFF, "ZwCreateFile")

    def ZwOpenFile():
        fh, access, oa, iosb_p, share, opts = m.args(6)
        return _create(object_name(oa), fh, access & 0xFFFFFFFF, oa, iosb_p, share & 0xFFFFFFFF, V.FILE_OPEN,
                       opts & 0xFFFFFFFF, "ZwOpenFile")

    def _file(h: int, api: str):
        e = m.handles.get(h)
        if e is None or e.kind != "file":
            m._violation("invalid_handle", f"{api} on invalid file handle {h:#x}", m.ret_site(), cur())
            return None
        return e.obj

    def ZwWriteFile():
        rsp = uc.reg_read(UC_X86_REG_RSP)
        h = uc.reg_read(UC_X86_REG_RCX)
        iosb_p, buf, length, off_p, _key = struct.unpack("<5Q", uc.mem_read(rsp + 0x28, 40))
        of = _file(h, "ZwWriteFile")
        if of is None:
            return st.STATUS_INVALID_HANDLE
        length &= 0xFFFFFFFF
        data = bytes(uc.mem_read(buf, length)) if length else b""
        offset = None
        if off_p:
            lo, hi = struct.unpack("<II", mem(off_p, 8))
            if hi == 0xFFFFFFFF and lo == FILE_WRITE_TO_END_OF_FILE:
                offset = len(of.file.data)
            elif not (hi == 0xFFFFFFFF and lo == FILE_USE_FILE_POINTER_POSITION):
                offset = lo | (hi << 32)
        status, n = m.vfs.write(of, data, offset)
        iosb(iosb_p, status, n)
        return status

    def ZwSetInformationFile():
        h, iosb_p, info, length, klass = m.args(5)
        klass &= 0xFFFFFFFF
        length &= 0xFFFFFFFF
        of = _file(h, "ZwSetInformationFile")
        if of is None:
            return st.STATUS_INVALID_HANDLE
        if klass in (FileRenameInformation, FileRenameInformationEx):
            if length < 0x18:
                iosb(iosb_p, st.STATUS_INFO_LENGTH_MISMATCH, 0)
                return st.STATUS_INFO_LENGTH_MISMATCH
            flags, _pad, root, nlen = struct.unpack("<IIQI", mem(info, 0x14))
            replace = bool(flags & 0xFF) if klass == FileRenameInformation else bool(flags & 1)
            if 0x14 + nlen > length:
                iosb(iosb_p, st.STATUS_INVALID_PARAMETER, 0)
                return st.STATUS_INVALID_PARAMETER
            new = m.wstr(info + 0x14, nlen)
            status = m.vfs.rename(of, new, replace)
            iosb(iosb_p, status, 0)
            return status
        m.event(f"ZwSetInformationFile class {klass} not modelled -> STATUS_INVALID_INFO_CLASS", cur())
        return st.STATUS_INVALID_INFO_CLASS

    def ZwClose():
        h = uc.reg_read(UC_X86_REG_RCX)
        e = m.handles.pop(h, None)
        t = cur()
        if e is None:
            site = m.ret_site()
            m.closed_invalid.append({"handle": h, "call_site": m.fmt_sym(site), "thread": t.name,
                                     "call": m.total_calls})
            m._violation("invalid_handle_close", f"ZwClose({h:#x}): not an open handle (a kernel-mode caller gets "
                         "bugcheck 0x93 INVALID_KERNEL_HANDLE on Windows)", site, t)
            return st.STATUS_INVALID_HANDLE
        if e.kind == "file":
            m.vfs.close(e.obj)
        return 0

    # ---------------------------------------------------------------- pool
    def _alloc(size: int, tag: int, zero: bool):
        site = m.ret_site()
        size = max(size, 1)
        addr = (m._pool_next + 15) & ~15
        if addr + size > POOL_BASE + POOL_SIZE:
            return 0
        m._pool_next = addr + size + 16
        if zero:
            mw(addr, b"\0" * size)
        tag_s = struct.pack("<I", tag & 0xFFFFFFFF).decode("latin-1")
        m.pool[addr] = (size, tag_s, m.fmt_sym(site))
        return addr

    def ExAllocatePool2():
        flags, size, tag = m.args(3)
        return _alloc(size, tag, not flags & 0x2)  # POOL_FLAG_UNINITIALIZED

    def ExAllocatePoolWithTag():
        ptype, size, tag = m.args(3)
        return _alloc(size, tag, False)

    def ExAllocatePool():
        ptype, size = m.args(2)
        return _alloc(size, 0x656E6F4E, False)

    def _free(p: int):
        t = cur()
        site = m.ret_site()
        e = m.pool.pop(p, None)
        if e is None:
            m._violation("bad_pool_free", f"free of {p:#x}: not an allocated pool block (double free?)", site, t)
            return None
        m.freed.append({"start": p, "end": p + e[0], "what": f"pool block '{e[1]}'"})
        uc.hook_add(UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, m._on_freed_access, begin=phys(p), end=phys(p + e[0]) - 1)
        return None

    def ExFreePoolWithTag():
        return _free(uc.reg_read(UC_X86_REG_RCX))

    def ExFreePool():
        return _free(uc.reg_read(UC_X86_REG_RCX))

    # ---------------------------------------------------------------- strings / CRT
    def RtlInitUnicodeString():
        dst, src = uc.reg_read(UC_X86_REG_RCX), uc.reg_read(UC_X86_REG_RDX)
        if src:
            n = len(m.cwstr(src)) * 2
            mw(dst, struct.pack("<HHIQ", min(n, 0xFFFC), min(n + 2, 0xFFFE), 0, src))
        else:
            mw(dst, struct.pack("<HHIQ", 0, 0, 0, 0))

    def RtlInitAnsiString():
        dst, src = uc.reg_read(UC_X86_REG_RCX), uc.reg_read(UC_X86_REG_RDX)
        n = len(m.cstr(src)) if src else 0
        mw(dst, struct.pack("<HHIQ", n, n + 1 if src else 0, 0, src))

    def _ansi_string(addr: int) -> str:
        length, _mx, _p, buf = struct.unpack("<HHIQ", mem(addr, 16))
        return mem(buf, length).decode("latin-1") if buf else ""

    def _fmt(fmt: str, next_arg, wide: bool) -> str:
        return format_printf(fmt, next_arg, m.cstr, m.cwstr, m.unicode_string, _ansi_string, wide)

    def _varargs(first_index: int):
        """Iterator over variadic args starting at position first_index (0-based)."""
        rsp = uc.reg_read(UC_X86_REG_RSP)
        regs = m.args(4)
        idx = [first_index]

        def nxt():
            i = idx[0]
            idx[0] += 1
            if i < 4:
                return regs[i]
            return u64(rsp + 0x28 + 8 * (i - 4))
        return nxt

    def _valist(ptr: int):
        idx = [0]

        def nxt():
            v = u64(ptr + 8 * idx[0])
            idx[0] += 1
            return v
        return nxt

    def DbgPrint():
        fmt = m.cstr(uc.reg_read(UC_X86_REG_RCX))
        text = _fmt(fmt, _varargs(1), False)
        m.dbgprint.append({"thread": cur().name, "text": text, "call_site": m.fmt_sym(m.ret_site())})
        return 0

    def DbgPrintEx():
        comp, level, fmtp = m.args(3)
        text = _fmt(m.cstr(fmtp), _varargs(3), False)
        m.dbgprint.append({"thread": cur().name, "text": text, "call_site": m.fmt_sym(m.ret_site())})
        return 0

    def _store_w(buf: int, count: int, s: str) -> int:
        enc = s.encode("utf-16le")
        n = len(s)
        if n >= count:
            if count:
                mw(buf, enc[: count * 2])
            return -1 & 0xFFFFFFFF
        mw(buf, enc + b"\0\0")
        return n

    def _store_a(buf: int, count: int, s: str) -> int:
        enc = s.encode("latin-1", "replace")
        if len(enc) >= count:
            if count:
                mw(buf, enc[:count])
            return -1 & 0xFFFFFFFF
        mw(buf, enc + b"\0")
        return len(enc)

    def _vsnwprintf():
        buf, count, fmtp, va = m.args(4)
        return _store_w(buf, count, _fmt(m.cwstr(fmtp), _valist(va), True))

    def _vsnprintf():
        buf, count, fmtp, va = m.args(4)
        return _store_a(buf, count, _fmt(m.cstr(fmtp), _valist(va), False))

    def _snwprintf():
        buf, count, fmtp = m.args(3)
        return _store_w(buf, count, _fmt(m.cwstr(fmtp), _varargs(3), True))

    def _snprintf():
        buf, count, fmtp = m.args(3)
        return _store_a(buf, count, _fmt(m.cstr(fmtp), _varargs(3), False))

    def memset():
        d, c, n = m.args(3)
        if n:
            mw(d, bytes([c & 0xFF]) * n)
        return d

    def memcpy():
        d, s, n = m.args(3)
        if n:
            mw(d, mem(s, n))
        return d

    def wcslen():
        return len(m.cwstr(uc.reg_read(UC_X86_REG_RCX)))

    def strlen():
        return len(m.cstr(uc.reg_read(UC_X86_REG_RCX)))

    def KeQuerySystemTimePrecise():
        p = uc.reg_read(UC_X86_REG_RCX)
        w64(p, 133450000000000000 + m.virtual_time)

    h = {k: v for k, v in locals().items() if callable(v) and not k.startswith("_") or k in (
        "_vsnwprintf", "_vsnprintf", "_snwprintf", "_snprintf")}
    for internal in ("cur", "set_irql", "iosb", "object_name", "oa_attributes", "fm_acquire", "fm_retry",
                     "fm_release", "table"):
        h.pop(internal, None)
    h["memmove"] = memcpy
    h["NtClose"] = ZwClose
    h["NtCreateFile"] = ZwCreateFile
    h["NtWriteFile"] = ZwWriteFile
    h["NtOpenFile"] = ZwOpenFile
    h["NtSetInformationFile"] = ZwSetInformationFile
    h["KeGetCurrentThread"] = PsGetCurrentThread
    h["IoGetCurrentProcess"] = PsGetCurrentProcess
    h["ObDereferenceObject"] = ObfDereferenceObject
    h["KeQuerySystemTime"] = KeQuerySystemTimePrecise
    return h

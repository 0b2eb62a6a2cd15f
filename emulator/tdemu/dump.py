"""`tdemu run ... --dump FILE`: the emulated kernel's state after the run as a full-memory minidump,
with ntoskrnl.exe (tdemu's kernel stub), the driver and its PDB beside it (emulator/README.md, "The
dump"). The only module that reads the kernel model for the dump; `tdemu.minidump` writes it.
"""

from __future__ import annotations

import os
import shutil
import struct
import time

from . import __version__
from . import minidump as MD
from .machine.cpu import STUB_BASE, STUB_SIZE

NT_NAME = "ntoskrnl.exe"
SYSTEM_PID = 4
PAGE = 0x1000
STUB_DATA = STUB_BASE + STUB_SIZE // 2  # sentinels of imported variables start here (kernel.py)
STUB_THUNK = STUB_BASE - PAGE  # a page before the sentinels: PspSystemThreadStartup
STUB_IMAGE_BASE = STUB_BASE - 2 * PAGE  # the stub image's headers
STUB_TIMESTAMP = 0x5E5E5E5E  # the stub's TimeDateStamp: fixed, its GUID says which stub it is
CALL_RAX = b"\xff\xd0"

REG_NAMES = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
             "r14", "r15", "rip", "rflags", "cs", "ds", "es", "fs", "gs", "ss")


def path_problem(path: str, driver: str | None = None) -> str | None:
    """Why --dump PATH could not be written, or None. Nothing is created here."""
    from .cli import report_dir_problem

    if not path:
        return "empty path"
    if os.path.isdir(path):
        return "is a directory (give a file name, e.g. report/tdemu/TestDriver.dmp)"
    if os.path.lexists(path) and not os.path.isfile(path):
        return "exists and is not a regular file"
    if os.path.isfile(path) and not os.access(path, os.W_OK):
        return "exists and is not writable"
    name = os.path.basename(path)
    if name.lower() in (NT_NAME, (os.path.basename(driver) if driver else "").lower()) or \
            name.lower().endswith(".pdb"):
        return f"{name} is the name of a file written beside the dump"
    return report_dir_problem(os.path.dirname(os.path.abspath(path)))


def _registers(read) -> dict[str, int]:
    from unicorn import x86_const as X

    return {n: read(getattr(X, f"UC_X86_REG_{'EFLAGS' if n == 'rflags' else n.upper()}")) for n in REG_NAMES}


def _thread_registers(k, t) -> dict[str, int] | None:
    """The registers the dump shows for thread t, or None for a thread that has none (not started)."""
    if t is k.sched.current and t.state in ("Running", "Crashed"):
        return _registers(k.cpu.uc.reg_read)
    if t.ctx is None:
        return None
    regs = _registers(t.ctx.reg_read)
    w = t.wait
    if w is not None:
        # the scheduler completed the call (rip = return address, rsp above it): show the thread inside
        # the routine it called instead, at its entry, as a debugger sees a thread blocked there
        routine = w.function.split("!", 1)[-1]
        entry = next((a for a, n in k.stub_names.items() if n == routine), None)
        if entry is not None and k.cpu.u64(w.rsp) == w.ret_addr:
            regs["rip"], regs["rsp"] = entry, w.rsp
    return regs


def _read_pages(k, pages: dict[int, bytes], start: int, end: int) -> None:
    """Adds the mapped pages of [start, end) (rounded out to pages) that `pages` does not hold yet."""
    for a in range(start & ~(PAGE - 1), end, PAGE):
        if a not in pages:
            try:
                pages[a] = k.cpu.mem(a, PAGE)
            except Exception:  # noqa: BLE001 - an unmapped page is left out
                pass


def _runs(pages: dict[int, bytes]) -> list[MD.Range]:
    """The pages as ranges, adjacent pages joined."""
    runs: list[tuple[int, bytearray]] = []
    for a in sorted(pages):
        if runs and runs[-1][0] + len(runs[-1][1]) == a:
            runs[-1][1].extend(pages[a])
        else:
            runs.append((a, bytearray(pages[a])))
    return [MD.Range(base, bytes(data)) for base, data in runs]


def kernel_stub(k) -> tuple[bytes, MD.Module]:
    """The ntoskrnl.exe stub image (its bytes) and its module entry."""
    from .nt.kernel import STUB_NAMES
    from .nt.ps import THREAD_RETURN

    thunk = bytearray(b"\xcc" * PAGE)
    thunk[-len(CALL_RAX):] = CALL_RAX  # PspSystemThreadStartup calls the start routine; it returns to THREAD_RETURN
    code = bytes(thunk) + k.cpu.mem(STUB_BASE, STUB_SIZE)
    routines = [MD.StubRoutine("PspSystemThreadStartup", THREAD_RETURN - 0x10, 0x10)]
    for addr, name in sorted(STUB_NAMES.items()):
        if addr != THREAD_RETURN:
            routines.append(MD.StubRoutine(name.split("!", 1)[-1], addr - 1, 1))  # the byte before the return site
    seen = {r.name for r in routines}
    for addr, name in sorted(k.stub_names.items()):
        if addr < STUB_DATA and name not in seen:
            routines.append(MD.StubRoutine(name, addr, 8))
            seen.add(name)
    image = MD.stub_image(NT_NAME, STUB_IMAGE_BASE, STUB_THUNK, code, routines, STUB_TIMESTAMP)
    stamp, checksum, size, cv = MD.pe_identity(image)
    return image, MD.Module(f"\\SystemRoot\\system32\\{NT_NAME}", STUB_IMAGE_BASE, size, stamp, checksum, cv)


def collect(k, outcome: str) -> tuple[MD.Dump, bytes]:
    """The dump of kernel k after its run, and the ntoskrnl.exe stub image to write beside it."""
    image = k.image
    stamp, checksum, size, cv = MD.pe_identity(image.data)
    driver = MD.Module(f"\\SystemRoot\\system32\\drivers\\{os.path.basename(image.path)}", k.base,
                       image.size_of_image, stamp, checksum, cv)
    stub, nt = kernel_stub(k)

    pages = {STUB_IMAGE_BASE + off: stub[off:off + PAGE] for off in range(0, len(stub), PAGE)}
    _read_pages(k, pages, k.base, k.base + image.size_of_image)
    for base, size_, tag in k.cpu.kernel_maps:
        if tag == "tdemu.pool":  # only what was handed out: the rest was never used
            size_ = k.ex.pool_next - base
        _read_pages(k, pages, base, base + size_)
    for addr, n in ((k.driver_object, 0x150), (k.registry_path, 16), (0xFFFFF78000000000, PAGE)):
        _read_pages(k, pages, addr, addr + n)
    if k.registry_path:
        length, _max, _pad, buf = struct.unpack("<HHIQ", k.cpu.mem(k.registry_path, 16))
        _read_pages(k, pages, buf, buf + length)

    threads = []
    for t in k.threads:
        if t.state == "Terminated":
            continue
        regs = _thread_registers(k, t)
        if regs is None:
            continue
        threads.append(MD.Thread(t.tid, t.ethread, regs, t.stack_top, name=t.name))
    waiting = sum(1 for t in k.threads if t.state == "Waiting")
    comment = (f"tdemu {__version__}: the emulated Windows kernel after running {os.path.basename(image.path)} "
               f"(outcome: {outcome}; {len(threads)} thread(s) left, {waiting} waiting). Threads are the "
               f"driver's system threads (TEB field: their ETHREAD); {NT_NAME} is tdemu's kernel stub "
               "(exports at the addresses the driver's imports are bound to), written beside this dump.")
    dump = MD.Dump(threads=threads, modules=[driver, nt], memory=_runs(pages), process_id=SYSTEM_PID,
                   comment=comment, timestamp=int(time.time()))
    return dump, stub


def write(k, outcome: str, path: str) -> dict:
    """Writes the dump to PATH, and beside it ntoskrnl.exe (the stub) and copies of the driver and its
    PDB (when the PDB is beside the driver). Returns what was written, its size and the time taken."""
    t0 = time.perf_counter()
    dump, stub = collect(k, outcome)
    out_dir = os.path.dirname(os.path.abspath(path))
    os.makedirs(out_dir, exist_ok=True)
    size = MD.write(path, dump)
    beside = [os.path.join(out_dir, NT_NAME)]
    with open(beside[0], "wb") as f:
        f.write(stub)
    drv = k.image.path
    pdb_name = _pdb_name(dump.modules[0].codeview) or os.path.splitext(os.path.basename(drv))[0] + ".pdb"
    for src in (drv, os.path.join(os.path.dirname(drv), pdb_name)):
        dst = os.path.join(out_dir, os.path.basename(src))
        if os.path.isfile(src) and not (os.path.exists(dst) and os.path.samefile(src, dst)):
            shutil.copyfile(src, dst)
            beside.append(dst)
        elif os.path.isfile(src):
            beside.append(dst)
    return {"path": os.path.abspath(path), "bytes": size, "seconds": round(time.perf_counter() - t0, 4),
            "threads": len(dump.threads), "ranges": len(dump.memory),
            "memory_bytes": sum(len(r.data) for r in dump.memory), "beside": beside}


def _pdb_name(cv: bytes) -> str | None:
    if len(cv) < 25 or cv[:4] != b"RSDS":
        return None
    name = cv[24:].split(b"\0", 1)[0].decode("utf-8", "replace")
    return name.replace("\\", "/").rsplit("/", 1)[-1] or None

"""A writer of the Windows minidump format (MINIDUMP_* in Microsoft's minidumpapiset.h documentation),
x64, full memory: SystemInfo, MiscInfo, ThreadList, ThreadNames, ModuleList, a comment, Memory64List.
It knows nothing of the kernel model (`tdemu.dump` hands it plain data). Also here: a module's
identity for its entry, and a minimal PE image for routines that exist only as addresses. No
maintained Python package writes minidumps (PyPI's `minidump` reads them; the tests use it).
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass

import pefile

MINIDUMP_SIGNATURE = 0x504D444D  # 'MDMP'
MINIDUMP_VERSION = 0xA793
# MINIDUMP_STREAM_TYPE
THREAD_LIST_STREAM = 3
MODULE_LIST_STREAM = 4
SYSTEM_INFO_STREAM = 7
MEMORY64_LIST_STREAM = 9
COMMENT_STREAM_A = 10
MISC_INFO_STREAM = 15
THREAD_NAMES_STREAM = 24
# MINIDUMP_TYPE: what the dump holds
MINI_DUMP_WITH_FULL_MEMORY = 0x2

PROCESSOR_ARCHITECTURE_AMD64 = 9
VER_PLATFORM_WIN32_NT = 2
VER_NT_WORKSTATION = 1
MINIDUMP_MISC1_PROCESS_ID = 0x1

# CONTEXT (AMD64), 0x4d0 bytes, 16-byte aligned
CONTEXT_SIZE = 0x4D0
CONTEXT_AMD64 = 0x00100000
CONTEXT_CONTROL, CONTEXT_INTEGER, CONTEXT_SEGMENTS = CONTEXT_AMD64 | 1, CONTEXT_AMD64 | 2, CONTEXT_AMD64 | 4
GPR_ORDER = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
SEGMENT_ORDER = ("cs", "ds", "es", "fs", "gs", "ss")

THREAD_SIZE = 48  # MINIDUMP_THREAD


@dataclass
class Thread:
    """A thread: its id, the address a debugger takes for its TEB (for a kernel thread: its ETHREAD),
    its registers (names as in GPR_ORDER, rip, rflags, the segment registers; missing ones are 0) and
    the lowest address of its stack memory that the dump holds (the stack's bytes are in a Range)."""
    tid: int
    teb: int
    registers: dict[str, int]
    stack_base: int  # the first address above the stack (its top)
    name: str = ""


@dataclass
class Module:
    name: str  # the full path a debugger shows; its file name is what it looks for on disk
    base: int
    size: int
    timestamp: int
    checksum: int
    codeview: bytes = b""  # the CodeView record (RSDS), as the image's debug directory holds it


@dataclass
class Range:
    base: int
    data: bytes


@dataclass
class Dump:
    threads: list[Thread]
    modules: list[Module]
    memory: list[Range]
    process_id: int = 4
    comment: str = ""
    timestamp: int = 0


class DumpError(ValueError):
    pass


def context_record(regs: dict[str, int]) -> bytes:
    """An AMD64 CONTEXT with the control, integer and segment registers (ContextFlags says which)."""
    ctx = bytearray(CONTEXT_SIZE)
    struct.pack_into("<II", ctx, 0x30, CONTEXT_CONTROL | CONTEXT_INTEGER | CONTEXT_SEGMENTS, regs.get("mxcsr", 0x1F80))
    struct.pack_into("<6H", ctx, 0x38, *(regs.get(s, 0) & 0xFFFF for s in SEGMENT_ORDER))
    struct.pack_into("<I", ctx, 0x44, regs.get("rflags", 0) & 0xFFFFFFFF)
    struct.pack_into("<16Q", ctx, 0x78, *(regs.get(r, 0) & 0xFFFFFFFFFFFFFFFF for r in GPR_ORDER))
    struct.pack_into("<Q", ctx, 0xF8, regs.get("rip", 0) & 0xFFFFFFFFFFFFFFFF)
    struct.pack_into("<I", ctx, 0x100 + 0x18, regs.get("mxcsr", 0x1F80))  # FltSave.MxCsr
    return bytes(ctx)


def _minidump_string(text: str) -> bytes:
    raw = text.encode("utf-16-le")
    return struct.pack("<I", len(raw)) + raw + b"\0\0"


class _Blob:
    """The file being laid out: appends keep 4-byte alignment (8 where asked), RVAs are offsets."""

    def __init__(self, start: int):
        self.buf = bytearray(start)

    def add(self, data: bytes, align: int = 4) -> int:
        pad = -len(self.buf) % align
        self.buf += b"\0" * pad
        rva = len(self.buf)
        self.buf += data
        if len(self.buf) >= 1 << 32:
            raise DumpError("the dump's streams exceed 4 GiB (32-bit RVAs)")
        return rva


def _check(d: Dump) -> list[Range]:
    """The ranges sorted, with no overlap (Memory64List describes each byte once)."""
    ranges = sorted((r for r in d.memory if r.data), key=lambda r: r.base)
    for a, b in zip(ranges, ranges[1:]):
        if a.base + len(a.data) > b.base:
            raise DumpError(f"memory ranges overlap: {a.base:#x}+{len(a.data):#x} and {b.base:#x}")
    ids = [t.tid for t in d.threads]
    if len(set(ids)) != len(ids):
        raise DumpError(f"thread ids repeat: {ids}")
    return ranges


def _locate(ranges: list[Range], mem_rvas: list[int], address: int) -> tuple[int, int] | None:
    """(file offset, bytes up to the range's end) of address inside the Memory64List data, or None."""
    for r, rva in zip(ranges, mem_rvas):
        if r.base <= address < r.base + len(r.data):
            return rva + address - r.base, r.base + len(r.data) - address
    return None


def build(d: Dump) -> bytes:
    """The minidump as bytes. Thread stacks point into the Memory64List data (no second copy), as a
    full-memory dump's do."""
    ranges = _check(d)
    streams: list[tuple[int, int, int]] = []  # type, size, rva
    n_streams = 6 + (1 if d.comment else 0)
    blob = _Blob(32 + 12 * n_streams)

    # the seed's system: processor level 6, revision 0, one processor, a workstation, Windows 10.0.22621,
    # suite VER_SUITE_TERMINAL | VER_SUITE_SINGLEUSERTS
    csd = blob.add(_minidump_string(""))
    sysinfo = struct.pack("<HHHBBIIIIIHH", PROCESSOR_ARCHITECTURE_AMD64, 6, 0, 1, VER_NT_WORKSTATION, 10, 0, 22621,
                          VER_PLATFORM_WIN32_NT, csd, 0x110, 0) + b"\0" * 24  # CPU_INFORMATION: no features claimed
    streams.append((SYSTEM_INFO_STREAM, len(sysinfo), blob.add(sysinfo)))

    misc = struct.pack("<IIIIII", 24, MINIDUMP_MISC1_PROCESS_ID, d.process_id, 0, 0, 0)
    streams.append((MISC_INFO_STREAM, len(misc), blob.add(misc)))

    if d.comment:
        text = d.comment.encode("ascii", "replace") + b"\0"
        streams.append((COMMENT_STREAM_A, len(text), blob.add(text)))

    # modules: names and CodeView records first, then the list
    entries = []
    for m in d.modules:
        name_rva = blob.add(_minidump_string(m.name))
        cv = (len(m.codeview), blob.add(m.codeview)) if m.codeview else (0, 0)
        entries.append(struct.pack("<QIIII", m.base, m.size, m.checksum, m.timestamp, name_rva) + b"\0" * 52
                       + struct.pack("<IIIIQQ", *cv, 0, 0, 0, 0))
    mod_list = struct.pack("<I", len(entries)) + b"".join(entries)
    streams.append((MODULE_LIST_STREAM, len(mod_list), blob.add(mod_list)))

    # The Memory64List data goes last (its BaseRva is 64-bit; everything else must stay below 4 GiB), so
    # the thread list, whose stack descriptors point into that data, is filled in once it is laid out.
    contexts = [blob.add(context_record(t.registers), 16) for t in d.threads]
    names = [blob.add(_minidump_string(t.name)) for t in d.threads]
    thread_list_size = 4 + THREAD_SIZE * len(d.threads)
    thread_list_rva = blob.add(bytes(thread_list_size))
    streams.append((THREAD_LIST_STREAM, thread_list_size, thread_list_rva))
    # MINIDUMP_THREAD_NAME_LIST: ThreadId, RvaOfThreadName (64-bit) for each thread
    name_list = struct.pack("<I", len(d.threads)) + b"".join(
        struct.pack("<IQ", t.tid, rva_) for t, rva_ in zip(d.threads, names))
    streams.append((THREAD_NAMES_STREAM, len(name_list), blob.add(name_list)))
    mem_list_size = 16 + 16 * len(ranges)
    mem_list_rva = blob.add(bytes(mem_list_size), 8)
    blob.buf[mem_list_rva:] = struct.pack("<QQ", len(ranges), mem_list_rva + mem_list_size) + b"".join(
        struct.pack("<QQ", r.base, len(r.data)) for r in ranges)
    streams.append((MEMORY64_LIST_STREAM, mem_list_size, mem_list_rva))
    mem_rvas = []
    for r in ranges:
        mem_rvas.append(len(blob.buf))
        blob.buf += r.data

    threads = []
    for t, ctx_rva in zip(d.threads, contexts):
        sp = t.registers.get("rsp", 0)
        where = _locate(ranges, mem_rvas, sp)
        if where is None or sp >= t.stack_base:
            stack = struct.pack("<QII", sp, 0, 0)
        else:
            off, avail = where
            stack = struct.pack("<QII", sp, min(avail, t.stack_base - sp), off)
        # SuspendCount 0, PriorityClass NORMAL_PRIORITY_CLASS, Priority 8, the TEB
        threads.append(struct.pack("<IIIIQ", t.tid, 0, 0x20, 8, t.teb) + stack
                       + struct.pack("<II", CONTEXT_SIZE, ctx_rva))
    blob.buf[thread_list_rva:thread_list_rva + thread_list_size] = struct.pack("<I", len(threads)) + b"".join(threads)
    out = blob.buf

    assert len(streams) == n_streams
    flags = MINI_DUMP_WITH_FULL_MEMORY  # no handle data, no ThreadInfoList: the flags claim only what is there
    struct.pack_into("<IIIIIIQ", out, 0, MINIDUMP_SIGNATURE, MINIDUMP_VERSION, n_streams, 32, 0,
                     d.timestamp & 0xFFFFFFFF, flags)
    for i, (kind, size, srva) in enumerate(streams):
        struct.pack_into("<III", out, 32 + 12 * i, kind, size, srva)
    return bytes(out)


def write(path: str, d: Dump) -> int:
    """Writes the dump to path (a temporary file renamed into place); returns its size."""
    data = build(d)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return len(data)


# ---------------------------------------------------------------- PE helpers

IMAGE_DEBUG_TYPE_CODEVIEW = 2


def pe_identity(data: bytes) -> tuple[int, int, int, bytes]:
    """(TimeDateStamp, CheckSum, SizeOfImage, CodeView record) of a PE32+ image file; the record is
    b"" when the image has none."""
    try:
        pe = pefile.PE(data=data, fast_load=True)
        pe.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_DEBUG"]])
    except pefile.PEFormatError as e:
        raise DumpError(f"not a PE image: {e}") from None
    if pe.OPTIONAL_HEADER.Magic != pefile.OPTIONAL_HEADER_MAGIC_PE_PLUS:
        raise DumpError("not a PE32+ image")
    cv = next((data[d.struct.PointerToRawData:d.struct.PointerToRawData + d.struct.SizeOfData]
               for d in getattr(pe, "DIRECTORY_ENTRY_DEBUG", []) if d.struct.Type == IMAGE_DEBUG_TYPE_CODEVIEW
               and data[d.struct.PointerToRawData:d.struct.PointerToRawData + 4] == b"RSDS"), b"")
    return pe.FILE_HEADER.TimeDateStamp, pe.OPTIONAL_HEADER.CheckSum, pe.OPTIONAL_HEADER.SizeOfImage, bytes(cv)


@dataclass
class StubRoutine:
    name: str
    address: int
    size: int


def stub_image(name: str, base: int, code_base: int, code: bytes, routines: list[StubRoutine],
               timestamp: int) -> bytes:
    """A minimal PE32+ image (native subsystem) mapped at `base` whose code section holds `code` at
    `code_base` (both page-aligned), exporting each routine at its address, with a RUNTIME_FUNCTION
    and an UNWIND_INFO without prolog for each (so a debugger unwinds a thread stopped in one: the
    return address is at [rsp]), and a CodeView record (GUID from a hash of the rest) naming NAME.pdb.
    The file's layout is its memory layout (FileAlignment = SectionAlignment = 0x1000)."""
    page = 0x1000
    if base % page or code_base % page or code_base <= base:
        raise DumpError("stub image: base and code must be page-aligned, code above the headers")
    code_rva = code_base - base
    code_size = (len(code) + page - 1) & ~(page - 1)
    rdata_rva = code_rva + code_size
    routines = sorted(routines, key=lambda r: r.address)
    for r in routines:
        if not code_base <= r.address < code_base + len(code):
            raise DumpError(f"stub image: {r.name} at {r.address:#x} is outside its code")
    # .rdata: export directory, names, debug directory, CodeView, unwind info, .pdata
    rd = bytearray()
    by_name = sorted(routines, key=lambda r: r.name.encode())
    dll_name = f"{name}\0".encode()
    exp_dir_off = 0
    rd += b"\0" * 40
    funcs_off = len(rd)
    rd += b"".join(struct.pack("<I", r.address - base) for r in routines)
    names_off = len(rd)
    rd += b"\0" * (4 * len(by_name))
    ords_off = len(rd)
    index = {id(r): i for i, r in enumerate(routines)}
    rd += b"".join(struct.pack("<H", index[id(r)]) for r in by_name)
    name_rvas = []
    for r in by_name:
        name_rvas.append(rdata_rva + len(rd))
        rd += r.name.encode() + b"\0"
    dll_name_rva = rdata_rva + len(rd)
    rd += dll_name
    struct.pack_into(f"<{len(name_rvas)}I", rd, names_off, *name_rvas)
    struct.pack_into("<IIHHIIIIIII", rd, exp_dir_off, 0, timestamp, 0, 0, dll_name_rva, 1, len(routines),
                     len(by_name), rdata_rva + funcs_off, rdata_rva + names_off, rdata_rva + ords_off)
    export_size = len(rd)
    rd += b"\0" * (-len(rd) % 4)
    unwind_rva = rdata_rva + len(rd)
    rd += bytes([1, 0, 0, 0])  # UNWIND_INFO: version 1, no flags, no prolog, no codes, no frame register
    pdata_rva = rdata_rva + len(rd)
    for r in routines:
        rd += struct.pack("<III", r.address - base, r.address - base + r.size, unwind_rva)
    pdata_size = 12 * len(routines)
    rd += b"\0" * (-len(rd) % 4)
    debug_rva = rdata_rva + len(rd)
    rd += b"\0" * 28
    cv_rva = rdata_rva + len(rd)
    pdb = f"{name.rsplit('.', 1)[0]}.pdb\0".encode()
    guid = hashlib.sha256(bytes(code) + bytes(rd) + name.encode() + struct.pack("<Q", base)).digest()[:16]
    cv = b"RSDS" + guid + struct.pack("<I", 1) + pdb
    rd += cv
    struct.pack_into("<IIHHIIII", rd, debug_rva - rdata_rva, 0, timestamp, 0, 0, IMAGE_DEBUG_TYPE_CODEVIEW,
                     len(cv), cv_rva, cv_rva)
    rdata_size = (len(rd) + page - 1) & ~(page - 1)
    size_of_image = rdata_rva + rdata_size

    img = bytearray(size_of_image)
    img[0:2] = b"MZ"
    struct.pack_into("<I", img, 0x3C, 0x80)
    img[0x40:0x40 + 39] = b"tdemu kernel stub: exports and unwind\0\0"
    pe = 0x80
    img[pe:pe + 4] = b"PE\0\0"
    # EXECUTABLE_IMAGE | LARGE_ADDRESS_AWARE | DLL: a DLL may have no entry point, and the stub has none
    struct.pack_into("<HHIIIHH", img, pe + 4, 0x8664, 2, timestamp, 0, 0, 0xF0, 0x2022)
    opt = pe + 24
    struct.pack_into("<HBBIIIII", img, opt, 0x20B, 14, 0, code_size, rdata_size, 0, 0, code_rva)
    struct.pack_into("<QIIHHHHHHIIIIHHQQQQII", img, opt + 24, base, page, page, 10, 0, 10, 0, 10, 0, 0,
                     size_of_image, page, 0, 1, 0x160, 0x80000, 0x2000, 0x100000, 0x1000, 0, 16)
    dirs = opt + 112
    struct.pack_into("<II", img, dirs + 8 * 0, rdata_rva, export_size)
    struct.pack_into("<II", img, dirs + 8 * 3, pdata_rva, pdata_size)
    struct.pack_into("<II", img, dirs + 8 * 6, debug_rva, 28)
    sec = opt + 0xF0
    struct.pack_into("<8sIIIIIIHHI", img, sec, b".text", code_size, code_rva, code_size, code_rva, 0, 0, 0, 0,
                     0x60000020)
    struct.pack_into("<8sIIIIIIHHI", img, sec + 40, b".rdata", rdata_size, rdata_rva, rdata_size, rdata_rva, 0, 0,
                     0, 0, 0x40000040)
    img[code_rva:code_rva + len(code)] = code
    img[rdata_rva:rdata_rva + len(rd)] = rd
    struct.pack_into("<I", img, opt + 64, pefile.PE(data=bytes(img), fast_load=True).generate_checksum())
    return bytes(img)

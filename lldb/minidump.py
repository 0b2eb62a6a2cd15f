"""A small reader of Microsoft's minidump format (minidumpapiset.h), standard library only.

It checks a file before lldb opens it and reads what lldb's Python API does not expose: each
thread's TEB field, the modules' CodeView records, the comment streams. Every offset and size is
checked against the file: a truncated dump is a `BadDump`, never a short read.
"""

from __future__ import annotations

import struct
from collections import namedtuple
from dataclasses import dataclass, field
from pathlib import Path

SIGNATURE = b"MDMP"
THREAD_LIST, MODULE_LIST, MEMORY_LIST, MEMORY64_LIST, COMMENT_A, COMMENT_W = 3, 4, 5, 9, 10, 11  # stream types


class BadDump(ValueError):
    """The file is not a usable minidump (the message says why)."""


class CodeView(namedtuple("CodeView", "guid age pdb_name")):
    """An RSDS CodeView record: the PDB a module was linked with."""

    @property
    def guid_text(self) -> str:
        d1, d2, d3 = struct.unpack_from("<IHH", self.guid)
        return f"{d1:08X}-{d2:04X}-{d3:04X}-{self.guid[8:10].hex().upper()}-{self.guid[10:].hex().upper()}"


class Module(namedtuple("Module", "base size timestamp name codeview")):
    """A MINIDUMP_MODULE: `name` is the full path the dump records; `codeview` a CodeView or None."""

    @property
    def file_name(self) -> str:
        return self.name.replace("\\", "/").rsplit("/", 1)[-1]


Thread = namedtuple("Thread", "tid teb")  # tdemu writes its emulated ETHREAD in the TEB field


@dataclass
class Minidump:
    path: Path
    threads: list[Thread] = field(default_factory=list)
    modules: list[Module] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    ranges: list[tuple[int, int, int]] = field(default_factory=list)  # (address, size, file offset)
    full_memory: bool = False  # a Memory64List (MiniDumpWithFullMemory) rather than stacks only

    def module(self, file_name: str) -> Module | None:
        return next((m for m in self.modules if m.file_name.lower() == file_name.lower()), None)

    def read(self, address: int, size: int) -> bytes | None:
        """`size` bytes at `address` if the dump holds all of them, else None."""
        for start, length, offset in self.ranges:
            if start <= address and address + size <= start + length:
                with open(self.path, "rb") as f:
                    f.seek(offset + address - start)
                    return f.read(size)
        return None


def _within(data: bytes, offset: int, size: int, what: str) -> None:
    if offset < 0 or offset + size > len(data):
        raise BadDump(f"truncated: {what} at offset 0x{offset:x} ({size} bytes) ends past the end of the "
                      f"file ({len(data)} bytes)")


def _u(fmt: str, data: bytes, offset: int, what: str):
    _within(data, offset, struct.calcsize(fmt), what)
    return struct.unpack_from(fmt, data, offset)


def _string(data: bytes, rva: int) -> str:
    (length,) = _u("<I", data, rva, "a module name")
    _within(data, rva + 4, length, "a module name")
    return data[rva + 4:rva + 4 + length].decode("utf-16-le", "replace")


def _rsds(raw: bytes | None) -> CodeView | None:
    """An RSDS CodeView record ('RSDS', GUID, age, the PDB's path), else None."""
    if raw is None or len(raw) < 25 or raw[:4] != b"RSDS":
        return None
    (age,) = struct.unpack_from("<I", raw, 20)
    return CodeView(raw[4:20], age, raw[24:].split(b"\0", 1)[0].decode("utf-8", "replace"))


def _codeview(data: bytes, size: int, rva: int) -> CodeView | None:
    _within(data, rva, size, "a CodeView record")
    return _rsds(data[rva:rva + size]) if size else None


def read_minidump(path: str | Path) -> Minidump:
    """Reads and checks the header, the stream directory and the thread, module, memory and
    comment streams. Raises BadDump for anything else than a complete minidump."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadDump(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BadDump(f"{path}: a directory, not a minidump") from None
    except OSError as e:
        raise BadDump(f"{path}: cannot read it: {e.strerror}") from None
    if data[:4] != SIGNATURE:
        raise BadDump(f"{path}: not a minidump (it does not start with 'MDMP')")
    sig, version, nstreams, dir_rva = _u("<4sIII", data, 0, "the header")
    if version & 0xFFFF != 0xA793:
        raise BadDump(f"{path}: not a minidump (version 0x{version & 0xFFFF:04x}, expected 0xa793)")
    dump = Minidump(path)
    try:
        _streams(data, nstreams, dir_rva, dump)
    except BadDump as e:
        raise BadDump(f"{path}: {e}") from None
    return dump


def _streams(data: bytes, nstreams: int, dir_rva: int, dump: Minidump) -> None:
    streams: dict[int, tuple[int, int]] = {}  # the first stream of each type: (size, rva)
    for i in range(nstreams):
        kind, size, rva = _u("<III", data, dir_rva + 12 * i, f"stream directory entry {i}")
        _within(data, rva, size, f"stream {i} (type {kind})")
        if kind and kind not in streams:
            streams[kind] = (size, rva)
    if THREAD_LIST not in streams or MODULE_LIST not in streams:
        raise BadDump("no thread list or no module list: not a process dump lldb can read")
    _, rva = streams[THREAD_LIST]
    (n,) = _u("<I", data, rva, "the thread list")
    for i in range(n):
        tid, _, _, _, teb, start, size, mrva, csize, crva = _u("<IIIIQQIIII", data, rva + 4 + 48 * i, f"thread {i}")
        _within(data, mrva, size, f"thread 0x{tid:x}'s stack")
        _within(data, crva, csize, f"thread 0x{tid:x}'s context")
        dump.threads.append(Thread(tid, teb))
        if size:
            dump.ranges.append((start, size, mrva))
    _, rva = streams[MODULE_LIST]
    (n,) = _u("<I", data, rva, "the module list")
    for i in range(n):
        at = rva + 4 + 108 * i
        base, size, _, stamp, name_rva = _u("<QIIII", data, at, f"module {i}")
        cv_size, cv_rva = _u("<II", data, at + 24 + 52, f"module {i}'s CodeView location")
        dump.modules.append(Module(base, size, stamp, _string(data, name_rva), _codeview(data, cv_size, cv_rva)))
    if MEMORY64_LIST in streams:
        _, rva = streams[MEMORY64_LIST]
        n, offset = _u("<QQ", data, rva, "the memory list")
        for i in range(n):
            start, size = _u("<QQ", data, rva + 16 + 16 * i, f"memory range {i}")
            _within(data, offset, size, f"memory range {i} (0x{start:x})")
            dump.ranges.append((start, size, offset))
            offset += size
        dump.full_memory = True
    if MEMORY_LIST in streams:
        _, rva = streams[MEMORY_LIST]
        (n,) = _u("<I", data, rva, "the memory list")
        for i in range(n):
            start, size, mrva = _u("<QII", data, rva + 4 + 16 * i, f"memory range {i}")
            _within(data, mrva, size, f"memory range {i} (0x{start:x})")
            dump.ranges.append((start, size, mrva))
    for kind, encoding in ((COMMENT_A, "latin-1"), (COMMENT_W, "utf-16-le")):
        if kind in streams:
            size, rva = streams[kind]
            dump.comments.append(data[rva:rva + size].decode(encoding, "replace").rstrip("\0"))


def pdb_identity(path: str | Path) -> tuple[bytes, int]:
    """(GUID, age) from a PDB's info stream (stream 1 of the MSF 7.00 container).
    Raises BadDump when the file is not such a PDB."""
    path = Path(path)
    data = path.read_bytes()
    magic = b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0"
    if not data.startswith(magic):
        raise BadDump(f"{path}: not a PDB (no MSF 7.00 header)")
    try:
        block, _, nblocks, dir_bytes, _, map_block = struct.unpack_from("<IIIIII", data, len(magic))
        if block not in (512, 1024, 2048, 4096) or nblocks * block > len(data):
            raise BadDump(f"{path}: truncated or damaged PDB (block size {block}, {nblocks} blocks)")

        def blocks(indices, size: int) -> bytes:
            return b"".join(data[i * block:(i + 1) * block] for i in indices)[:size]

        directory = blocks(struct.unpack_from(f"<{-(-dir_bytes // block)}I", data, map_block * block), dir_bytes)
        (nstreams,) = struct.unpack_from("<I", directory, 0)
        if nstreams > 1:  # the info stream's block list follows stream 0's
            sizes = [0 if s == 0xFFFFFFFF else s for s in struct.unpack_from("<2I", directory, 4)]
            n0, n1 = (-(-s // block) for s in sizes)
            info = blocks(struct.unpack_from(f"<{n1}I", directory, 4 + 4 * nstreams + 4 * n0), sizes[1])
            _, _, age = struct.unpack_from("<III", info, 0)
            return info[12:28], age
    except struct.error:
        pass
    raise BadDump(f"{path}: truncated or damaged PDB (no info stream)")


def pe_identity(read, mapped: bool) -> tuple[int, int, CodeView | None]:
    """(TimeDateStamp, SizeOfImage, CodeView) of a PE32+ image. `read(offset, size)` reads the image;
    it returns None or short bytes past what it holds. The CodeView record is looked for only in an
    image `mapped` in memory (its debug data found by RVA), else None. Raises BadDump when it is no
    PE32+ image."""
    def get(fmt: str, offset: int):
        raw = read(offset, struct.calcsize(fmt))
        if raw is None or len(raw) < struct.calcsize(fmt):
            raise BadDump(f"the image ends before offset 0x{offset:x}")
        return struct.unpack(fmt, raw)

    if get("<2s", 0)[0] != b"MZ":
        raise BadDump("not a PE image (no MZ header)")
    (pe,) = get("<I", 0x3C)
    sig, _, _, stamp = get("<4sHHI", pe)
    if sig != b"PE\0\0":
        raise BadDump("not a PE image (no PE signature)")
    opt = pe + 24
    if get("<H", opt)[0] != 0x20B:
        raise BadDump("not a PE32+ image")
    (size_of_image,) = get("<I", opt + 56)
    debug_rva, debug_size = get("<II", opt + 112 + 8 * 6)
    codeview = None
    for i in range(debug_size // 28 if mapped and debug_rva else 0):
        kind, size, rva, _ = get("<IIII", debug_rva + 28 * i + 12)
        if kind == 2:  # IMAGE_DEBUG_TYPE_CODEVIEW
            raw = read(rva, size)
            codeview = _rsds(raw if raw is not None and len(raw) == size else None) or codeview
    return stamp, size_of_image, codeview


def file_identity(path: str | Path) -> tuple[int, int]:
    """(TimeDateStamp, SizeOfImage) of a PE32+ file."""
    data = Path(path).read_bytes()
    return pe_identity(lambda offset, size: data[offset:offset + size], mapped=False)[:2]


def module_codeview(dump: Minidump, module: Module) -> CodeView | None:
    """The module's CodeView record: the dump's own (MINIDUMP_MODULE.CvRecord), else the one in
    the image's debug directory when the dump holds the image's memory (Wine writes no CvRecord)."""
    if module.codeview is not None:
        return module.codeview
    try:
        return pe_identity(lambda offset, size: dump.read(module.base + offset, size), mapped=True)[2]
    except BadDump:
        return None

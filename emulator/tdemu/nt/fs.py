"""fs: the file system behind the Zw* file routines (the I/O manager, `io`, hands it the requests):
a small virtual file system of directories and files with contents, share modes and renames.

Paths are NT paths as a driver passes them (\\DosDevices\\C:\\Temp\\x, \\??\\C:\\Temp\\x);
they are normalized to DOS form (C:\\Temp\\x) and compared case-insensitively.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import ntstatus as st

# Access rights
FILE_READ_DATA = 0x1
FILE_WRITE_DATA = 0x2
FILE_APPEND_DATA = 0x4
FILE_EXECUTE = 0x20
DELETE = 0x10000
GENERIC_READ = 0x80000000
GENERIC_WRITE = 0x40000000
GENERIC_EXECUTE = 0x20000000
GENERIC_ALL = 0x10000000
FILE_ALL_ACCESS = 0x1F01FF
FILE_GENERIC_READ = 0x120089
FILE_GENERIC_WRITE = 0x120116
FILE_GENERIC_EXECUTE = 0x1200A0

FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_SHARE_DELETE = 1, 2, 4

# CreateDisposition
FILE_SUPERSEDE, FILE_OPEN, FILE_CREATE, FILE_OPEN_IF, FILE_OVERWRITE, FILE_OVERWRITE_IF = range(6)
# IO_STATUS_BLOCK.Information for create
FILE_SUPERSEDED, FILE_OPENED, FILE_CREATED, FILE_OVERWRITTEN = 0, 1, 2, 3

FILE_DIRECTORY_FILE = 0x1
FILE_NON_DIRECTORY_FILE = 0x40


GENERIC_MAPPING = {GENERIC_READ: FILE_GENERIC_READ, GENERIC_WRITE: FILE_GENERIC_WRITE,
                   GENERIC_EXECUTE: FILE_GENERIC_EXECUTE, GENERIC_ALL: FILE_ALL_ACCESS}


def map_generic(access: int) -> int:
    """The GENERIC_* bits replaced by the file rights they stand for."""
    for generic, rights in GENERIC_MAPPING.items():
        if access & generic:
            access = access & ~generic | rights
    return access


def normalize(nt_path: str) -> str | None:
    """NT path -> 'C:\\dir\\name' (original case kept), or None if not a drive path."""
    p = nt_path.replace("/", "\\")
    low = p.lower()
    for pre in ("\\dosdevices\\", "\\??\\", "\\global??\\", "\\\\?\\", "\\\\.\\"):
        if low.startswith(pre):
            p = p[len(pre):]
            break
    if len(p) >= 2 and p[1] == ":" and p[0].isalpha():
        p = p[0].upper() + p[1:]
        parts = [x for x in p[2:].split("\\") if x]
        return p[:2] + "\\" + "\\".join(parts)
    return None


def parent_of(path: str) -> str:
    i = path.rfind("\\")
    if i <= 2:
        return path[:3]
    return path[:i]


@dataclass
class VFile:
    path: str
    data: bytearray = field(default_factory=bytearray)
    opens: list = field(default_factory=list)  # list of OpenFile


@dataclass
class OpenFile:
    file: VFile
    access: int
    share: int
    position: int = 0


class VFS:
    def __init__(self, dirs=("C:\\", "C:\\Temp", "C:\\Temp2")):
        self.dirs: dict[str, str] = {}
        self.files: dict[str, VFile] = {}
        self.renames: list[tuple[str, str]] = []
        for d in dirs:
            self.mkdir(d)

    # -- helpers
    def mkdir(self, path: str) -> None:
        path = normalize(path) or path
        self.dirs[path.lower()] = path

    def rmdir(self, path: str) -> None:
        path = normalize(path) or path
        self.dirs.pop(path.lower(), None)

    def dir_exists(self, path: str) -> bool:
        return path.lower() in self.dirs

    def listdir(self, path: str) -> list[VFile]:
        pl = path.lower().rstrip("\\")
        out = [f for k, f in self.files.items() if parent_of(k) == pl]
        return sorted(out, key=lambda f: _natural_key(f.path))

    # -- operations; each returns (status, info, OpenFile|None)
    def create(self, nt_path: str, access: int, share: int, disposition: int, options: int):
        path = normalize(nt_path)
        if path is None:
            return st.STATUS_OBJECT_PATH_SYNTAX_BAD, 0, None
        key = path.lower()
        if options & FILE_DIRECTORY_FILE or key in self.dirs:
            if key in self.dirs:
                return (st.STATUS_FILE_IS_A_DIRECTORY if options & FILE_NON_DIRECTORY_FILE else st.STATUS_ACCESS_DENIED), 0, None
            return st.STATUS_NOT_SUPPORTED, 0, None
        if not self.dir_exists(parent_of(path)):
            return st.STATUS_OBJECT_PATH_NOT_FOUND, 0, None
        access = map_generic(access)
        f = self.files.get(key)
        if f is None:
            if disposition in (FILE_OPEN, FILE_OVERWRITE):
                return st.STATUS_OBJECT_NAME_NOT_FOUND, 0, None
            if disposition > FILE_OVERWRITE_IF:
                return st.STATUS_INVALID_PARAMETER, 0, None
            f = VFile(path)
            self.files[key] = f
            info = FILE_CREATED
        else:
            if disposition == FILE_CREATE:
                return st.STATUS_OBJECT_NAME_COLLISION, 0, None
            s = self._share_check(f, access, share)
            if s:
                return s, 0, None
            if disposition in (FILE_OVERWRITE, FILE_OVERWRITE_IF):
                f.data = bytearray()
                info = FILE_OVERWRITTEN
            elif disposition == FILE_SUPERSEDE:
                f.data = bytearray()
                info = FILE_SUPERSEDED
            else:
                info = FILE_OPENED
        of = OpenFile(f, access, share)
        f.opens.append(of)
        return st.STATUS_SUCCESS, info, of

    def _share_check(self, f: VFile, access: int, share: int) -> int:
        """A new open conflicts with an existing one if either wants what the other does not share."""
        for o in f.opens:
            if _denied(access, o.share) or _denied(o.access, share):
                return st.STATUS_SHARING_VIOLATION
        return 0

    def write(self, of: OpenFile, data: bytes, offset: int | None) -> tuple[int, int]:
        if not of.access & (FILE_WRITE_DATA | FILE_APPEND_DATA):
            return st.STATUS_ACCESS_DENIED, 0
        pos = of.position if offset is None else offset
        buf = of.file.data
        end = pos + len(data)
        if end > len(buf):
            buf.extend(bytes(end - len(buf)))  # a write past the end: the gap reads as zeros
        buf[pos:end] = data
        of.position = end
        return st.STATUS_SUCCESS, len(data)

    def read(self, of: OpenFile, length: int, offset: int | None) -> tuple[int, bytes]:
        if not of.access & FILE_READ_DATA:
            return st.STATUS_ACCESS_DENIED, b""
        pos = of.position if offset is None else offset
        data = bytes(of.file.data[pos: pos + length])
        if length and not data:
            return st.STATUS_END_OF_FILE, b""
        of.position = pos + len(data)
        return st.STATUS_SUCCESS, data

    def rename(self, of: OpenFile, new_nt_path: str, replace: bool) -> int:
        if not of.access & DELETE:
            return st.STATUS_ACCESS_DENIED
        new = normalize(new_nt_path)
        if new is None:
            return st.STATUS_OBJECT_PATH_SYNTAX_BAD
        if not self.dir_exists(parent_of(new)):
            return st.STATUS_OBJECT_PATH_NOT_FOUND
        nk = new.lower()
        old = of.file.path
        if nk == old.lower():
            return st.STATUS_SUCCESS
        if nk in self.dirs:
            return st.STATUS_ACCESS_DENIED
        tgt = self.files.get(nk)
        if tgt is not None:
            if not replace:
                return st.STATUS_OBJECT_NAME_COLLISION
            if tgt.opens:
                return st.STATUS_ACCESS_DENIED
            del self.files[nk]
        del self.files[old.lower()]
        of.file.path = new
        self.files[nk] = of.file
        self.renames.append((old, new))
        return st.STATUS_SUCCESS

    def close(self, of: OpenFile) -> None:
        if of in of.file.opens:
            of.file.opens.remove(of)

    def snapshot(self) -> dict:
        return {d: [{"name": f.path.rsplit("\\", 1)[-1], "size": len(f.data)} for f in self.listdir(d)]
                for _key, d in sorted(self.dirs.items())}


def _denied(access: int, share: int) -> bool:
    return bool((access & (FILE_READ_DATA | FILE_EXECUTE) and not share & FILE_SHARE_READ)
                or (access & (FILE_WRITE_DATA | FILE_APPEND_DATA) and not share & FILE_SHARE_WRITE)
                or (access & DELETE and not share & FILE_SHARE_DELETE))


def _natural_key(s: str):
    import re

    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]

"""linux/analyze-dump.sh's refusals, checked before lldb runs: each bad input gives a message naming
the problem, exit 2, nothing on stdout and nothing written. The dumps here are built by hand to the
minidump format (minidumpapiset.h) with one defect each; the real dumps' analysis is tested with Wine
(wine/tests/test_wine.py)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "out"


def minidump(modules: list[tuple[str, bytes | None]]) -> bytes:
    """A minidump with an empty thread list and a module list of (path, CodeView record or None)."""
    header_size, dir_size = 32, 2 * 12
    threads = struct.pack("<I", 0)
    mod_list_size = 4 + 108 * len(modules)
    blobs, names = bytearray(), []
    base_blob = header_size + dir_size + len(threads) + mod_list_size
    for path, cv in modules:
        name = path.encode("utf-16-le")
        name_rva = base_blob + len(blobs)
        blobs += struct.pack("<I", len(name)) + name + b"\0\0"
        cv_rva = base_blob + len(blobs)
        blobs += cv or b""
        names.append((name_rva, len(cv or b""), cv_rva if cv else 0))
    mods = struct.pack("<I", len(modules))
    for i, (name_rva, cv_size, cv_rva) in enumerate(names):
        mods += struct.pack("<QIII", 0x180000000 + 0x100000 * i, 0x4000, 0, 0x6B11435C)
        mods += struct.pack("<I", name_rva) + b"\0" * 52 + struct.pack("<II", cv_size, cv_rva) + b"\0" * 24
    header = struct.pack("<4sIIIIIQ", b"MDMP", 0xA793, 2, header_size, 0, 0, 0)
    directory = struct.pack("<III", 3, len(threads), header_size + dir_size)
    directory += struct.pack("<III", 4, len(mods), header_size + dir_size + len(threads))
    return header + directory + threads + mods + bytes(blobs)


def rsds(guid: bytes, age: int) -> bytes:
    return b"RSDS" + guid + struct.pack("<I", age) + b"TestDriver.pdb\0"


def analyze(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "lldb" / "analyze.py"), *args], capture_output=True,
                          text=True, timeout=60)


def refused(tmp_path: Path, args: list[str], message: str) -> None:
    before = sorted(tmp_path.rglob("*"))
    p = analyze(*args)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert message in p.stderr, p.stderr
    assert p.stdout == ""
    assert sorted(tmp_path.rglob("*")) == before, "something was written"


def test_missing_file(tmp_path):
    refused(tmp_path, [str(tmp_path / "nothing.dmp")], "no such file")


def test_not_a_minidump(tmp_path):
    f = tmp_path / "TestDriver.dmp"
    f.write_bytes(b"PK\x03\x04 a zip, not a dump")
    refused(tmp_path, [str(f)], "not a minidump")


def test_truncated(tmp_path):
    f = tmp_path / "TestDriver.dmp"
    full = minidump([("C:\\windows\\system32\\drivers\\TestDriver.sys", rsds(uuid.uuid4().bytes, 1))])
    f.write_bytes(full[:60])
    refused(tmp_path, [str(f)], "truncated")


def test_no_testdriver_module(tmp_path):
    f = tmp_path / "TestDriver.dmp"
    f.write_bytes(minidump([("C:\\windows\\system32\\winedevice.exe", None),
                            ("C:\\windows\\system32\\ntoskrnl.exe", None)]))
    refused(tmp_path, [str(f)], "no TestDriver.sys module in the dump (its modules: winedevice.exe, ntoskrnl.exe)")


def test_no_matching_pdb(tmp_path):
    """The build's real TestDriver.pdb beside a dump whose TestDriver.sys names another GUID."""
    pdb = BUILD / "TestDriver.pdb"
    if not pdb.is_file():
        pytest.fail(f"{pdb} is missing: run bash linux/build.sh first")
    shutil.copy(pdb, tmp_path / "TestDriver.pdb")
    f = tmp_path / "TestDriver.dmp"
    f.write_bytes(minidump([("C:\\windows\\system32\\drivers\\TestDriver.sys", rsds(uuid.uuid4().bytes, 1))]))
    refused(tmp_path, [str(f)], "no TestDriver.pdb matching the dump's TestDriver.sys")
    refused(tmp_path, [str(f)], f"{tmp_path / 'TestDriver.pdb'} is GUID ")


def test_no_codeview_record(tmp_path):
    f = tmp_path / "TestDriver.dmp"
    f.write_bytes(minidump([("C:\\windows\\system32\\drivers\\TestDriver.sys", None)]))
    refused(tmp_path, [str(f)], "holds no CodeView record of TestDriver.sys")


@pytest.mark.parametrize("args, message", [
    ([], "the following arguments are required: dump"),
    (["x.dmp", "--bogus"], "unrecognized arguments: --bogus"),
    (["x.dmp", "--symbols", "/nonexistent/dir"], "--symbols /nonexistent/dir: not a directory"),
])
def test_bad_usage(tmp_path, args, message):
    refused(tmp_path, args, message)


def test_the_shell_entry_point_refuses_too(tmp_path):
    env = dict(os.environ)
    p = subprocess.run(["bash", str(REPO / "linux" / "analyze-dump.sh"), str(tmp_path / "none.dmp")],
                       capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 2 and "no such file" in p.stderr, p.stderr

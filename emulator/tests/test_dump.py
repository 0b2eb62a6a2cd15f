"""tdemu run --dump: a minidump of the emulated kernel, read back with PyPI's `minidump` reader and with
lldb-19 (and through lldb/analyze.py, the seed's walk-through, when it is there). The values come from
the file, and are compared with tdemu's own report of the same run."""
import logging
import os
import re
import shutil
import struct
import subprocess
import sys

import pefile
import pytest
from conftest import REPO, missing, run_cli, run_subprocess

from tdemu import minidump as MD

LLDB = "lldb-19"
ANALYZE = os.path.join(REPO, "lldb", "analyze.py")
FM = 0x38


def _hex(v):
    return int(v, 16) if isinstance(v, str) else v


@pytest.fixture(scope="module")
def seed_dump(driver, tmp_path_factory):
    out = tmp_path_factory.mktemp("seeddump")
    path = out / "tdemu" / "TestDriver.dmp"
    code, rep = run_cli([driver, "--dump", str(path)], out / "rep")
    assert code == 3, code
    return path, rep


@pytest.fixture(scope="module")
def fixed_dump(fixed_driver, tmp_path_factory):
    out = tmp_path_factory.mktemp("fixeddump")
    path = out / "TestDriver.dmp"
    code, rep = run_cli([fixed_driver, "--dump", str(path)], out / "rep")
    assert code == 0, code
    return path, rep


def _read(path):
    from minidump.minidumpfile import MinidumpFile  # type: ignore[import-untyped]

    # the reader also looks for a user-mode PEB behind the first thread's TEB; a kernel thread has
    # none (its TEB field holds the ETHREAD), which the reader logs and goes on
    logging.getLogger().setLevel(logging.CRITICAL)
    return MinidumpFile.parse(str(path))


def _streams(raw):
    n, dir_rva = struct.unpack_from("<II", raw, 8)
    return {struct.unpack_from("<I", raw, dir_rva + 12 * i)[0]: struct.unpack_from("<II", raw, dir_rva + 4 + 12 * i)
            for i in range(n)}


def _waiting(rep):
    return [t for t in rep["threads"] if t["state"] == "Waiting"]


# ---------------------------------------------------------------- read back with the `minidump` package

def test_reader_sees_the_seed_state(seed_dump, driver):
    path, rep = seed_dump
    mf = _read(path)
    assert open(path, "rb").read(4) == b"MDMP"
    assert mf.sysinfo.ProcessorArchitecture.name == "AMD64"
    # the modules: the driver as the file says, and tdemu's kernel stub
    mods = {m.name.rsplit("\\", 1)[-1]: m for m in mf.modules.modules}
    assert set(mods) == {"TestDriver.sys", "ntoskrnl.exe"}
    pe = pefile.PE(driver, fast_load=True)
    pe.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_DEBUG"]])
    m = mods["TestDriver.sys"]
    assert (m.baseaddress, m.size, m.timestamp, m.checksum) == (
        0x180000000, pe.OPTIONAL_HEADER.SizeOfImage, pe.FILE_HEADER.TimeDateStamp, pe.OPTIONAL_HEADER.CheckSum)
    cv = next(d for d in pe.DIRECTORY_ENTRY_DEBUG if d.struct.Type == 2)
    # the reader does not keep CvRecord: MINIDUMP_MODULE's own bytes say where it is
    raw = open(path, "rb").read()
    _size, rva = _streams(raw)[4]
    entries = [raw[rva + 4 + 108 * i:rva + 4 + 108 * (i + 1)] for i in range(struct.unpack_from("<I", raw, rva)[0])]
    entry = next(e for e in entries if struct.unpack_from("<Q", e)[0] == m.baseaddress)
    cv_size, cv_rva = struct.unpack_from("<II", entry, 76)
    rec = raw[cv_rva:cv_rva + cv_size]
    assert rec[:4] == b"RSDS" and rec == pe.__data__[cv.struct.PointerToRawData:][:cv.struct.SizeOfData]
    assert rec[24:].rstrip(b"\0").endswith(b"TestDriver.pdb")
    # the threads: the two that wait, with their ETHREAD in the TEB field
    waiting = _waiting(rep)
    assert sorted(t.ThreadId for t in mf.threads.threads) == sorted(int(t["tid"], 16) for t in waiting)
    assert {t.ThreadId: t.Teb for t in mf.threads.threads} == {int(t["tid"], 16): _hex(t["ethread"]) for t in waiting}
    # the FAST_MUTEX in the device extension, read from the dump's memory
    fm = rep["fast_mutexes"][0]
    reader = mf.get_reader()
    raw_fm = reader.read(_hex(fm["address"]), FM)
    (count,), (owner,), (contention,), (old_irql,) = (struct.unpack_from(f, raw_fm, o) for f, o in (
        ("<i", 0), ("<Q", 8), ("<I", 0x10), ("<I", 0x30)))
    creation = next(t for t in waiting if t["name"].endswith("file_creation_thread"))
    assert (count, owner, contention, old_irql) == (8, _hex(creation["ethread"]), 2, 0)
    # each thread sits at ExAcquireFastMutex's entry: [rsp] is the return address tdemu reports
    for t in mf.threads.threads:
        r = next(x for x in waiting if int(x["tid"], 16) == t.ThreadId)
        ctx = t.ContextObject
        assert ctx.Rcx == _hex(fm["address"])
        assert struct.unpack("<Q", reader.read(ctx.Rsp, 8))[0] == _hex(r["return_address"])
        nt = mods["ntoskrnl.exe"]
        assert nt.baseaddress <= ctx.Rip < nt.baseaddress + nt.size


def test_stub_image_beside_the_dump(seed_dump):
    path, _rep = seed_dump
    beside = path.parent
    for name in ("ntoskrnl.exe", "TestDriver.sys", "TestDriver.pdb"):
        assert (beside / name).is_file(), name
    pe = pefile.PE(str(beside / "ntoskrnl.exe"))
    exports = {e.name.decode(): pe.OPTIONAL_HEADER.ImageBase + e.address for e in pe.DIRECTORY_ENTRY_EXPORT.symbols}
    mf = _read(path)
    assert {t.ContextObject.Rip for t in mf.threads.threads} == {exports["ExAcquireFastMutex"]}
    assert pe.OPTIONAL_HEADER.CheckSum == pe.generate_checksum()
    funcs = {pe.OPTIONAL_HEADER.ImageBase + rf.struct.BeginAddress for rf in pe.DIRECTORY_ENTRY_EXCEPTION}
    assert exports["ExAcquireFastMutex"] in funcs
    # the dump's memory holds the same image the file has
    nt = next(m for m in mf.modules.modules if m.name.endswith("ntoskrnl.exe"))
    assert mf.get_reader().read(nt.baseaddress, nt.size) == open(beside / "ntoskrnl.exe", "rb").read()


def test_fixed_dump_has_no_waiter(fixed_dump):
    path, rep = fixed_dump
    assert rep["outcome"] == "completed" and rep["dump"]["threads"] == 0
    mf = _read(path)
    assert mf.threads.threads == []
    assert {m.name.rsplit("\\", 1)[-1] for m in mf.modules.modules} == {"TestDriver.sys", "ntoskrnl.exe"}


# ---------------------------------------------------------------- lldb

def _lldb(path, *commands):
    if shutil.which(LLDB) is None:
        missing(f"{LLDB} is not installed: source linux/env.sh && ensure_debian_packages dump")
    cmd = [LLDB, "--batch", "--no-lldbinit", "-o", f"settings set target.exec-search-paths {path.parent}",
           "-o", f"target create --core {path}"]
    for c in commands:
        cmd += ["-o", c]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    return p.stdout


FRAME = re.compile(r"frame #(\d+): 0x([0-9a-f]+) (\S+?)`(.*)$")


def _backtraces(out):
    threads, cur = [], None
    for line in out.splitlines():
        if re.match(r"^\s*\*? ?thread #\d+", line):
            cur = []
            threads.append(cur)
        m = FRAME.search(line)
        if m and cur is not None:
            cur.append((int(m.group(1)), int(m.group(2), 16), m.group(3), m.group(4)))
    return threads


def test_lldb_unwinds_to_the_reported_return_addresses(seed_dump):
    path, rep = seed_dump
    out = _lldb(path, "thread backtrace all")
    threads = _backtraces(out)
    assert len(threads) == 2, out
    reported = {t["name"].rsplit("::", 1)[-1]: _hex(t["return_address"]) for t in _waiting(rep)}
    seen = {}
    for frames in threads:
        _n, _pc, module, what = frames[0]
        assert (module, what) == ("ntoskrnl.exe", "ExAcquireFastMutex"), out
        _n, pc, module, what = frames[1]
        assert module == "TestDriver.sys", out
        fn = re.match(r"TestDriver::seed::(\w+)\(.*\) at seed\.rs:(\d+)$", what)
        assert fn, what
        seen[fn.group(1)] = pc
        assert "PspSystemThreadStartup" in frames[2][3], out
    assert seen == reported, (seen, reported)


def test_lldb_reads_the_mutex_and_registers(seed_dump):
    path, rep = seed_dump
    fm = rep["fast_mutexes"][0]
    out = _lldb(path, "register read rcx rsp rip", f"memory read --size 8 --format x --count 7 {fm['address']}")
    assert re.search(rf"rcx = 0x0*{fm['address'][2:]}\b", out), out
    words = [w for line in out.split("memory read", 1)[1].splitlines() if ": " in line
             for w in line.split(": ", 1)[1].split()]
    assert int(words[0], 16) & 0xFFFFFFFF == 8 and int(words[1], 16) == _hex(fm["Owner"])
    assert int(words[2], 16) & 0xFFFFFFFF == 2 and int(words[6], 16) & 0xFFFFFFFF == 0


def test_lldb_fixed_dump_no_thread_in_exacquirefastmutex(fixed_dump):
    path, _rep = fixed_dump
    out = _lldb(path, "thread list", "image list")  # no thread is left: `thread backtrace` needs one
    assert "ExAcquireFastMutex" not in out
    assert "TestDriver.sys" in out and "ntoskrnl.exe" in out


# ---------------------------------------------------------------- the seed's walk-through (lldb/)

def _analyze(path):
    if not os.path.isfile(ANALYZE):
        pytest.skip("lldb/analyze.py is not in this tree")
    if shutil.which(LLDB) is None:
        missing(f"{LLDB} is not installed: source linux/env.sh && ensure_debian_packages dump")
    return subprocess.run(["python3", ANALYZE, str(path)], capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)


def test_analysis_reads_the_windows_values(seed_dump):
    path, rep = seed_dump
    p = _analyze(path)
    assert p.returncode == 3, p.stdout + p.stderr
    creation = next(t for t in _waiting(rep) if t["name"].endswith("file_creation_thread"))
    out = p.stdout
    assert "Runtime: tdemu" in out
    assert re.search(r"Count\s+: 0n8\b", out) and re.search(r"Contention\s+: 2\b", out)
    assert re.search(r"OldIrql\s+: 0\b", out)
    assert re.search(rf"Owner\s+: {creation['ethread']}\s+= thread #\d+ tid 0x{creation['tid']}",
                     out), out
    assert "ntoskrnl.exe`ExAcquireFastMutex" in out and "seed.rs:109" in out
    for t in _waiting(rep):
        assert f"return address {t['return_address']}" in out, out


def test_analysis_fixed_dump(fixed_dump):
    path, _rep = fixed_dump
    p = _analyze(path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "No thread waits in ExAcquireFastMutex" in p.stdout


# ---------------------------------------------------------------- bad --dump: exit 2 before loading, nothing written

@pytest.mark.parametrize("case", ["directory", "parent_is_file", "stub_name", "explore"])
def test_bad_dump_path(case, tmp_path, driver):
    (tmp_path / "afile").write_text("x")
    before = sorted(os.listdir(tmp_path))
    extra = []
    if case == "directory":
        dump = tmp_path
    elif case == "parent_is_file":
        dump = tmp_path / "afile" / "x.dmp"
    elif case == "stub_name":
        dump = tmp_path / "ntoskrnl.exe"
    else:
        dump = tmp_path / "x.dmp"
        extra = ["--explore"]
    # a driver path that does not exist: the --dump check must come first (before loading)
    p = run_subprocess(["run", str(tmp_path / "missing.sys"), "--dump", str(dump), "--no-report", *extra])
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "--dump" in p.stderr and "no such file" not in p.stderr, p.stderr
    assert sorted(os.listdir(tmp_path)) == before
    # and with the real driver, nothing is run or written either
    p = run_subprocess(["run", driver, "--dump", str(dump), "--no-report", *extra])
    assert p.returncode == 2 and p.stdout == "", p.stderr
    assert sorted(os.listdir(tmp_path)) == before


# ---------------------------------------------------------------- the writer itself

def test_writer_refuses_overlapping_ranges():
    d = MD.Dump(threads=[], modules=[], memory=[MD.Range(0x1000, b"\0" * 0x1000), MD.Range(0x1800, b"\0" * 16)])
    with pytest.raises(MD.DumpError, match="overlap"):
        MD.build(d)


def test_writer_layout_is_the_documented_one(tmp_path):
    """Header, directory and a thread's stack descriptor pointing into the Memory64List data."""
    stack = bytes(range(256)) * 16
    regs = {"rip": 0x401000, "rsp": 0x7000 + 0x100, "rcx": 0x1234}
    d = MD.Dump(threads=[MD.Thread(7, 0xFFFF800000001000, regs, 0x8000, name="t")],
                modules=[MD.Module("x.sys", 0x400000, 0x2000, 0x11223344, 0x5566, b"RSDS" + b"\1" * 20 + b"x.pdb\0")],
                memory=[MD.Range(0x7000, stack)], comment="tdemu test")
    raw = MD.build(d)
    sig, ver, n, dir_rva = struct.unpack_from("<IIII", raw)
    assert (sig, ver & 0xFFFF, dir_rva) == (0x504D444D, 0xA793, 32)
    streams = _streams(raw)
    assert set(streams) == {3, 4, 7, 9, 10, 15, 24}
    size, rva = streams[3]
    (tid,) = struct.unpack_from("<I", raw, rva + 4)
    start, ssize, srva = struct.unpack_from("<QII", raw, rva + 4 + 24)
    assert (tid, start, ssize) == (7, 0x7100, 0xF00)
    assert raw[srva:srva + ssize] == stack[0x100:]
    ctx_size, ctx_rva = struct.unpack_from("<II", raw, rva + 4 + 40)
    assert ctx_size == 0x4D0 and ctx_rva % 16 == 0
    assert struct.unpack_from("<Q", raw, ctx_rva + 0xF8)[0] == 0x401000
    assert struct.unpack_from("<Q", raw, ctx_rva + 0x78 + 8)[0] == 0x1234  # Rcx
    mf_path = tmp_path / "t.dmp"
    assert MD.write(str(mf_path), d) == len(raw)
    mf = _read(mf_path)
    assert mf.threads.threads[0].ContextObject.Rip == 0x401000
    assert mf.get_reader().read(0x7000, 16) == stack[:16]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))

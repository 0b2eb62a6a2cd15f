"""Small units: printf, VFS, symbols, status names."""
import pytest

from tdemu import ntstatus as st
from tdemu.nt import fs as V
from tdemu.cli import UsageError, parse_faults
from tdemu.printf import format_printf
from tdemu.symbols import demangle


def fmt(f, *args, wide=False):
    it = iter(args)
    return format_printf(f, lambda: next(it), str, str, str, str, wide)


def test_printf():
    assert fmt("%08x", 0xC0000022) == "c0000022"
    assert fmt("file_%d.txt", 7) == "file_7.txt"
    assert fmt("%d", 0xFFFFFFFF) == "-1"
    assert fmt("%ws|%s", "a", "b") == "a|b"
    assert fmt("%p", 0xFFFF9709AC20E040) == "FFFF9709AC20E040"
    assert fmt("%I64x %%", 1 << 40) == "10000000000 %"


def test_vfs_share_and_rename():
    fs = V.VFS()
    s, info, a = fs.create(r"\DosDevices\C:\Temp\f.txt", V.GENERIC_WRITE, 0, V.FILE_OVERWRITE_IF, 0x20)
    assert s == 0 and info == V.FILE_CREATED
    s, _, _ = fs.create(r"\??\C:\temp\F.TXT", V.FILE_ALL_ACCESS, 3, V.FILE_OPEN, 0x20)
    assert s == st.STATUS_SHARING_VIOLATION
    fs.write(a, b"x" * 15, None)
    fs.close(a)
    s, _, b = fs.create(r"\??\C:\Temp\f.txt", V.FILE_ALL_ACCESS, 3, V.FILE_OPEN, 0x20)
    assert s == 0
    assert fs.rename(b, r"\DosDevices\C:\Nope\g.txt", True) == st.STATUS_OBJECT_PATH_NOT_FOUND
    assert fs.rename(b, r"\DosDevices\C:\Temp2\g.txt", True) == 0
    assert [f.path for f in fs.listdir("C:\\Temp2")] == ["C:\\Temp2\\g.txt"]
    assert fs.create(r"\??\C:\Missing\x", V.GENERIC_WRITE, 0, V.FILE_CREATE, 0)[0] == st.STATUS_OBJECT_PATH_NOT_FOUND
    assert fs.create(r"\??\C:\Temp\none", V.GENERIC_READ, 0, V.FILE_OPEN, 0)[0] == st.STATUS_OBJECT_NAME_NOT_FOUND


def test_demangle():
    assert demangle("_RNvCsdMzvrfWsJqd_10TestDriver20file_creation_thread") == "TestDriver::file_creation_thread"
    assert demangle("_ZN10TestDriver16file_move_thread17h0123456789abcdefE") == "TestDriver::file_move_thread"
    assert demangle("DriverEntry") == "DriverEntry"


def test_status_and_faults():
    assert st.parse("access_denied") == 0xC0000022 == st.parse("0xC0000022") == st.parse("STATUS_ACCESS_DENIED")
    f = parse_faults(["no-temp", "create-every=5:0xC0000043", "thread=2", "iocreatedevice=insufficient_resources"])
    assert f.missing_dirs == ["C:\\Temp"] and f.create_fail_every == 5 and f.create_fail_status == 0xC0000043
    assert f.thread_fail_nth == 2 and f.iocreatedevice_status == 0xC000009A
    with pytest.raises(UsageError):
        parse_faults(["thread=0"])

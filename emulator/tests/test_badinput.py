"""Bad input: clear message, non-zero exit, no report written."""
import os
import struct

import pytest
from conftest import run_subprocess


def _check(p, tmp_path, needle):
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert needle in p.stderr
    assert not (tmp_path / "rep").exists()


def test_missing_argument(tmp_path):
    p = run_subprocess(["run", "--report-dir", str(tmp_path / "rep")])
    assert p.returncode == 2 and "path" in p.stderr
    assert not (tmp_path / "rep").exists()


def test_missing_file(tmp_path):
    p = run_subprocess(["run", str(tmp_path / "nope.sys"), "--report-dir", str(tmp_path / "rep")])
    _check(p, tmp_path, "no such file")


def test_not_a_pe(tmp_path):
    f = tmp_path / "notes.sys"
    f.write_text("just some text, not a driver\n")
    p = run_subprocess(["run", str(f), "--report-dir", str(tmp_path / "rep")])
    _check(p, tmp_path, "not a PE file")


def test_empty_file(tmp_path):
    f = tmp_path / "empty.sys"
    f.write_bytes(b"")
    p = run_subprocess(["run", str(f), "--report-dir", str(tmp_path / "rep")])
    _check(p, tmp_path, "not a PE file")


def test_pe_not_a_driver(driver, tmp_path):
    data = bytearray(open(driver, "rb").read())
    e_lfanew = struct.unpack_from("<I", data, 0x3C)[0]
    struct.pack_into("<H", data, e_lfanew + 4 + 20 + 68, 3)  # Subsystem = Windows console
    f = tmp_path / "console.exe"
    f.write_bytes(bytes(data))
    p = run_subprocess(["run", str(f), "--report-dir", str(tmp_path / "rep")])
    _check(p, tmp_path, "not a kernel driver")


def test_truncated(driver, tmp_path):
    data = open(driver, "rb").read()
    f = tmp_path / "truncated.sys"
    f.write_bytes(data[: len(data) // 2])
    p = run_subprocess(["run", str(f), "--report-dir", str(tmp_path / "rep")])
    _check(p, tmp_path, "truncated")


def test_bad_fault_spec(driver, tmp_path):
    p = run_subprocess(["run", driver, "--fault", "bogus", "--report-dir", str(tmp_path / "rep")])
    _check(p, tmp_path, "unknown fault")


@pytest.mark.parametrize("spec", ["create-every=0", "thread=x", "iocreatedevice=NOT_A_STATUS"])
def test_bad_fault_values(driver, tmp_path, spec):
    p = run_subprocess(["run", driver, "--fault", spec, "--report-dir", str(tmp_path / "rep")])
    _check(p, tmp_path, "--fault")
    assert not os.path.exists(tmp_path / "rep")

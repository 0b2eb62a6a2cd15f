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


@pytest.mark.parametrize("explore", [[], ["--explore"]], ids=["run", "explore"])
@pytest.mark.parametrize("under", ["file", "file/deeper"], ids=["file", "below_file"])
def test_report_dir_under_a_regular_file(driver, tmp_path, explore, under):
    """Refused before the driver is loaded (no traceback after a whole run), nothing written."""
    blocker = tmp_path / "file"
    blocker.write_text("a regular file\n")
    target = tmp_path / under / "rep"
    p = run_subprocess(["run", driver, *explore, "--report-dir", str(target)])
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "--report-dir" in p.stderr and "not a directory" in p.stderr and "Traceback" not in p.stderr
    assert p.stdout == ""
    assert sorted(x.name for x in tmp_path.iterdir()) == ["file"] and blocker.read_text() == "a regular file\n"


def test_report_dir_that_is_a_regular_file(driver, tmp_path):
    f = tmp_path / "rep"
    f.write_text("x")
    p = run_subprocess(["run", driver, "--report-dir", str(f)])
    assert p.returncode == 2 and "--report-dir" in p.stderr and "not a directory" in p.stderr, p.stderr
    assert f.read_text() == "x"


@pytest.mark.parametrize("value", ["-5", "0", "nan", "inf", "-inf", "soon"])
def test_bad_max_seconds(driver, tmp_path, value):
    p = run_subprocess(["run", driver, f"--max-seconds={value}", "--report-dir", str(tmp_path / "rep")])
    _check(p, tmp_path, "--max-seconds")
    assert "Traceback" not in p.stderr and p.stdout == ""

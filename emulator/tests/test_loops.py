"""The loops, exercised with the harness's test switch (the recursive acquire is ignored by the harness)."""
import pytest
from conftest import run_cli

from tdemu.nt.kernel import Kernel, Options
from tdemu.pecheck import load_driver_image


@pytest.fixture(scope="module")
def loop_run(driver, tmp_path_factory):
    return run_cli([driver, "--allow-recursive-acquire"], tmp_path_factory.mktemp("loops"))


def test_loops_complete(loop_run):
    code, rep = loop_run
    assert code == 0
    assert rep["outcome"] == "completed"
    assert all(t["state"] == "Terminated" for t in rep["threads"])


def test_files_created_then_moved(loop_run):
    _code, rep = loop_run
    assert rep["files"]["C:\\Temp"] == []
    moved = rep["files"]["C:\\Temp2"]
    assert len(moved) == 1000
    assert {f["name"] for f in moved} == {f"NewFile_{i}.txt" for i in range(1000)}
    assert all(f["size"] == 1500 for f in moved)
    assert rep["renames"] == 1000
    calls = rep["api_calls"]
    assert calls["ZwCreateFile"] == 1000 and calls["ZwWriteFile"] == 100000
    assert calls["ZwOpenFile"] == 1000 and calls["ZwSetInformationFile"] == 1000
    assert calls["ZwClose"] == 2002
    assert rep["handles"]["leaked"] == [] and rep["handles"]["invalid_closes"] == []


def test_irql_violations_recorded(loop_run):
    _code, rep = loop_run
    v = {(x["api"], x["irql_name"]): x for x in rep["irql_violations"]}
    assert v[("ZwCreateFile", "APC_LEVEL")]["count"] == 1000
    assert v[("ZwWriteFile", "APC_LEVEL")]["count"] == 100000
    assert v[("ZwOpenFile", "APC_LEVEL")]["count"] == 1000
    assert v[("ZwSetInformationFile", "APC_LEVEL")]["count"] == 1000
    assert "TestDriver!" in v[("ZwCreateFile", "APC_LEVEL")]["call_site"]
    assert any(x["rule"] == "recursive_acquire_ignored" for x in rep["verifier"])


def test_file_contents(driver):
    m = Kernel(load_driver_image(driver), Options(allow_recursive_acquire=True, order="reverse"))
    m.run()
    # FileMoveThread ran first and found nothing; the files stay in C:\Temp
    files = m.io.vfs.listdir("C:\\Temp")
    assert len(files) == 1000
    assert bytes(files[0].data) == b"Hello, World!\r\n" * 100
    assert m.io.vfs.listdir("C:\\Temp2") == []

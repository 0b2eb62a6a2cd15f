"""Fault injection, unload timing and use-after-free detection on the seed build."""
from conftest import norm, run_cli


def test_iocreatedevice_fails(driver, tmp_path):
    code, rep = run_cli([driver, "--fault", "iocreatedevice=insufficient_resources"], tmp_path)
    assert code == 5
    assert rep["outcome"] == "driver_entry_failed"
    assert rep["driver_entry_status"] == "0xc000009a"
    assert [t for t in rep["threads"] if t["kind"] == "driver"] == []
    assert rep["unload"]["called"] is False


def test_first_thread_creation_fails(driver, tmp_path):
    code, rep = run_cli([driver, "--fault", "thread=1"], tmp_path)
    # only FileMoveThread exists: it takes the lock, finds no file, releases, ends
    assert code == 0
    [t] = [t for t in rep["threads"] if t["kind"] == "driver"]
    assert "filemovethread" in norm(t["name"]) and t["state"] == "Terminated"


def test_temp_missing(driver, tmp_path):
    code, rep = run_cli([driver, "--allow-recursive-acquire", "--fault", "no-temp"], tmp_path)
    assert code == 0
    assert "C:\\Temp" not in rep["files"]
    assert rep["files"]["C:\\Temp2"] == []
    assert rep["api_calls"]["ZwCreateFile"] == 1000 and rep["api_calls"].get("ZwWriteFile", 0) == 0


def test_temp2_missing(driver, tmp_path):
    code, rep = run_cli([driver, "--allow-recursive-acquire", "--fault", "no-temp2"], tmp_path)
    assert code == 0
    assert len(rep["files"]["C:\\Temp"]) == 1000
    assert rep["renames"] == 0


def test_every_nth_create_fails(driver, tmp_path):
    code, rep = run_cli([driver, "--allow-recursive-acquire", "--fault", "create-every=10:access_denied"], tmp_path)
    assert code == 0
    assert len(rep["files"]["C:\\Temp2"]) == 900
    assert rep["api_calls"]["ZwWriteFile"] == 90000


def test_unload_early_is_use_after_free(driver, tmp_path):
    code, rep = run_cli([driver, "--unload", "early"], tmp_path)
    # DriverUnload deletes the device before the threads run; they then use the freed FAST_MUTEX
    assert rep["unload"]["returned"] is True
    assert rep["use_after_free"], rep["verifier"]
    assert all("DEVICE_OBJECT" in u["what"] for u in rep["use_after_free"])
    assert code == 3  # and still deadlock


def test_unload_never(driver, tmp_path):
    code, rep = run_cli([driver, "--unload", "never"], tmp_path)
    assert code == 3
    assert rep["unload"]["called"] is False
    assert rep["devices"][0]["deleted"] is False

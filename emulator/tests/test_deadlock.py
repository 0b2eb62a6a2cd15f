"""The seed's observations, from the real TestDriver.sys: deadlock, no files, !WrFastMutex, call sites, dt."""
import re
import time
import xml.etree.ElementTree as ET

import pytest
from conftest import norm, run_cli, run_subprocess


@pytest.fixture(scope="module")
def deadlock(driver, tmp_path_factory):
    d = tmp_path_factory.mktemp("deadlock")
    t0 = time.perf_counter()
    code, rep = run_cli([driver], d)
    return code, rep, d, time.perf_counter() - t0


def _drv_threads(threads):
    ts = [t for t in threads if t["kind"] == "driver"]
    creation = next(t for t in ts if "filecreationthread" in norm(t["name"]))
    move = next(t for t in ts if "filemovethread" in norm(t["name"]))
    return creation, move


def test_deadlock_detected_promptly(deadlock):
    code, rep, _d, wall = deadlock
    assert code == 3
    assert rep["outcome"] == "deadlock"
    assert rep["driver_entry_status"] == "0x00000000"
    assert wall < 10


def test_no_files_and_no_create_calls(deadlock):
    _code, rep, _d, _w = deadlock
    assert rep["files"]["C:\\Temp"] == []
    assert rep["files"]["C:\\Temp2"] == []
    assert rep["api_calls"].get("ZwCreateFile", 0) == 0
    assert rep["api_calls"].get("ZwOpenFile", 0) == 0


def test_wrfastmutex_table(deadlock):
    _code, rep, _d, _w = deadlock
    creation, move = _drv_threads(rep["deadlock"]["threads"])
    waiting = [t for t in rep["deadlock"]["threads"] if t.get("wait_reason") == "WrFastMutex"]
    assert len(waiting) == 2
    for t in (creation, move):
        assert t["state"] == "Waiting"
        assert t["wait_reason"] == "WrFastMutex"
        assert t["wait_function"] == "nt!ExAcquireFastMutex"
        assert t["owner_ethread"] == creation["ethread"]
        assert t["ethread"].startswith("0xffff")
    assert creation["ethread"] != move["ethread"]


def test_call_sites(deadlock):
    _code, rep, _d, _w = deadlock
    creation, move = _drv_threads(rep["deadlock"]["threads"])
    # FileCreationThread: acquired once, then blocks in the second (recursive) acquire, further on
    assert len(creation["acquires"]) == 1
    first = int(creation["acquires"][0]["return_address"], 16)
    second = int(creation["return_address"], 16)
    assert second > first
    assert "filecreationthread" in norm(creation["call_site"])
    assert "filecreationthread" in norm(creation["acquires"][0]["call_site"])
    assert re.fullmatch(r"TestDriver!.+\+0x[0-9a-f]+", creation["call_site"])
    assert re.fullmatch(r"TestDriver\+0x[0-9a-f]+", creation["call_site_raw"])
    # FileMoveThread blocks in its first acquire
    assert move["acquires"] == []
    assert "filemovethread" in norm(move["call_site"])
    # stacks: nt!ExAcquireFastMutex -> driver function -> thread start
    for t in (creation, move):
        sites = [f["call_site"] for f in t["stack"]]
        assert sites[0] == "nt!ExAcquireFastMutex"
        assert sites[1] == t["call_site"]
        assert sites[-1] == "nt!PspSystemThreadStartup"


def test_fast_mutex_dump(deadlock):
    _code, rep, _d, _w = deadlock
    creation, _move = _drv_threads(rep["deadlock"]["threads"])
    [fm] = rep["deadlock"]["fast_mutexes"]
    assert fm["Count"] == 8
    assert fm["Owner"] == creation["ethread"]
    assert fm["Contention"] == 2
    assert fm["OldIrql"] == 0
    assert fm["Event"]["Type"] == 1  # SynchronizationEvent, from KeInitializeEvent
    # it lives in the device extension
    assert fm["address"] == rep["devices"][0]["extension"]


def test_report_files(deadlock):
    _code, rep, d, _w = deadlock
    text = (d / "report.txt").read_text()
    assert "!WrFastMutex" in text
    assert "dt nt!_FAST_MUTEX" in text
    assert "+0x000 Count            : 0n8" in text
    assert "+0x010 Contention       : 2" in text
    assert "Count: 2" in text
    svg = ET.parse(d / "waitgraph.svg").getroot()
    assert svg.tag.endswith("svg")
    body = (d / "waitgraph.svg").read_text()
    creation, move = _drv_threads(rep["deadlock"]["threads"])
    assert creation["ethread"][2:] in body and move["ethread"][2:] in body


def test_move_thread_first(driver, tmp_path):
    code, rep = run_cli([driver, "--order", "move"], tmp_path)
    assert code == 3
    creation, move = _drv_threads(rep["deadlock"]["threads"])
    assert move["state"] == "Terminated"
    assert creation["state"] == "Waiting"
    [fm] = rep["deadlock"]["fast_mutexes"]
    assert (fm["Count"], fm["Contention"], fm["Owner"]) == (4, 1, creation["ethread"])
    assert rep["api_calls"]["ZwOpenFile"] == 1000  # finds no file
    assert rep["files"]["C:\\Temp2"] == []


def test_cli_text_output(driver, tmp_path):
    p = run_subprocess(["run", driver, "--report-dir", str(tmp_path / "r")])
    assert p.returncode == 3, p.stderr
    assert "DEADLOCK" in p.stdout and "0n8" in p.stdout
    p = run_subprocess(["run", driver, "--no-report", "--expect", "deadlock"])
    assert p.returncode == 0

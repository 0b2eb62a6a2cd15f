"""The fixed build (issue 4), when out/fixed/TestDriver.sys exists."""
from conftest import run_cli


def test_fixed_completes_clean(fixed_driver, tmp_path):
    code, rep = run_cli([fixed_driver, "--strict"], tmp_path)
    assert code == 0, (rep["verifier"], rep["irql_violations"])
    assert rep["outcome"] == "completed"
    assert rep["irql_violations"] == [] and rep["verifier"] == []
    assert len(rep["files"]["C:\\Temp2"]) == 1000
    assert rep["handles"]["leaked"] == [] and rep["references_not_released"] == []
    assert rep["unload"]["returned"] is True and rep["use_after_free"] == []


def test_fixed_unload_early_waits_for_threads(fixed_driver, tmp_path):
    code, rep = run_cli([fixed_driver, "--unload", "early"], tmp_path)
    assert code == 0
    assert rep["use_after_free"] == []
    assert len(rep["files"]["C:\\Temp2"]) == 1000


def test_fixed_reports_failures(fixed_driver, tmp_path):
    code, rep = run_cli([fixed_driver, "--fault", "create-every=100:access_denied"], tmp_path)
    assert code == 0
    assert any("c0000022" in p["text"].lower() for p in rep["dbgprint"])
    assert len(rep["files"]["C:\\Temp2"]) == 990

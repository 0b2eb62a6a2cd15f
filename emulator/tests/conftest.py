import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
EMU = os.path.dirname(HERE)
REPO = os.path.dirname(EMU)
DRIVER = os.environ.get("TDEMU_DRIVER", os.path.join(REPO, "out", "TestDriver.sys"))
FIXED = os.environ.get("TDEMU_FIXED_DRIVER", os.path.join(REPO, "out", "fixed", "TestDriver.sys"))


def missing(what: str) -> None:
    """A build or tool the tests need is not there: the tests that need it fail, naming the command that
    provides it (a skip would let a run without it end with "0 failed"). TDEMU_ALLOW_MISSING=1 skips them."""
    if os.environ.get("TDEMU_ALLOW_MISSING") == "1":
        pytest.skip(what)
    pytest.fail(f"{what} (or set TDEMU_ALLOW_MISSING=1 to skip the tests that need it)", pytrace=False)


@pytest.fixture(scope="session")
def driver():
    if not os.path.isfile(DRIVER):
        missing(f"{DRIVER} is missing: run bash linux/build.sh first")
    return DRIVER


@pytest.fixture(scope="session")
def fixed_driver():
    if not os.path.isfile(FIXED):
        missing(f"{FIXED} is missing: run bash linux/build.sh --fixed first")
    return FIXED


def run_cli(args, report_dir):
    """Run the CLI in-process; returns (exit code, report dict or None)."""
    from tdemu.cli import run

    code = run(["run", *args, "--report-dir", str(report_dir), "--quiet"])
    path = os.path.join(str(report_dir), "report.json")
    rep = json.load(open(path)) if os.path.exists(path) else None
    return code, rep


def run_subprocess(args, cwd=None):
    env = dict(os.environ, PYTHONPATH=EMU)
    return subprocess.run([sys.executable, "-m", "tdemu", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=120)


def norm(name):
    return (name or "").replace("_", "").replace("::", "!").lower()


@pytest.fixture(scope="session")
def cdriver(tmp_path_factory):
    """cdriver(name, hal=(...), **defines) -> path of tests/drivers/NAME.c built into a .sys (cached)."""
    import cdriver as C

    tools = C.missing_tools()
    if tools:
        missing("the small test drivers need " + ", ".join(tools) + ": run "
                "bash -c 'source linux/env.sh && ensure_debian_packages build clang' first")
    out = tmp_path_factory.mktemp("cdrivers")
    cache = {}

    def get(name, hal=(), **defines):
        key = (name, tuple(hal), tuple(sorted(defines.items())))
        if key not in cache:
            tag = name + "".join(f"-{k}{v}" for k, v in sorted(defines.items()))
            cache[key] = C.build(name, str(out / tag), tuple(hal), defines)
        return cache[key]
    return get


# The files that take longest (pytest --durations), longest first: linux/test.sh spreads the files
# over two workers (pytest-xdist, --dist loadfile) in collection order, and a long file started last
# runs alone at the end. The bindings test is one long test (it compiles and runs bindgen), so it
# starts first; test_wine.py mostly waits for Wine and shares the two cores well. The hook orders
# every file collected beside emulator/tests.
SLOW_FIRST = ("test_wdk_sys_bindings.py", "test_wine.py", "test_explore.py", "test_verdicts.py", "test_fixed.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FIRST)))  # stable: the rest keep their order

"""linux/check-upstream.sh and check-upstream.py, offline: the pins it finds in this repository
(--list), how it reads each registry client's answer (fake cargo, pip and npm that print what the
real ones print), its exit codes, and that a pin file it cannot read stops it before it asks
anything. The script itself asks the registries: it is run before a release, not here."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "linux" / "check-upstream.py"
WRAPPER = REPO / "linux" / "check-upstream.sh"


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=60)


def test_lists_the_pins_of_this_repository():
    p = run("--list")
    assert (p.returncode, p.stderr) == (0, "")
    lines = p.stdout.splitlines()
    for expected in (
        "crates.io  wdk 0.5.0  [Cargo.toml]",
        "crates.io  wdk-panic 0.5.0  [Cargo.toml]",
        "crates.io  wdk-build 0.6.0  [Cargo.toml, Makefile.toml (load_script)]",
        "crates.io  cargo-wdk 0.2.0  [.github/workflows/windows.yml (CARGO_WDK_VERSION)]",
        "crates.io  cargo-make 0.37.24  [.github/workflows/windows.yml (CARGO_MAKE_VERSION)]",
        "npm        acorn 8.19.0  [windbg/package.json]",
    ):
        assert expected in lines, expected
    assert any(line.startswith("PyPI       pytest ") and "emulator/requirements.txt" in line for line in lines)
    assert any(line.startswith("unchecked  WDK_VERSION 10.0.") and "NuGet is not reachable here" in line
               for line in lines)
    assert not [line for line in lines if "a range, not an exact pin" in line]


def tree(tmp_path, cargo='wdk-panic = "=0.4.1"', requirements="pefile==2023.2.7\n",
         package='{"devDependencies": {"acorn": "8.18.0"}}'):
    root = tmp_path / "repo"
    (root / "windbg").mkdir(parents=True)
    (root / "emulator").mkdir()
    (root / "target" / "x").mkdir(parents=True)
    (root / "Cargo.toml").write_text(f'[package]\nname = "x"\nversion = "0.1.0"\n\n[dependencies]\n{cargo}\n'
                                     'local = { path = "local" }\n')
    (root / "emulator" / "requirements.txt").write_text(requirements)
    (root / "windbg" / "package.json").write_text(package)
    (root / "target" / "x" / "requirements.txt").write_text("not looked at\n")  # build outputs are skipped
    return root


def client(tmp_path, name, body):
    """A fake registry client: logs its arguments, then runs BODY (bash) with them."""
    path = tmp_path / name
    path.write_text(f'#!/usr/bin/env bash\necho "{name} $*" >>"{tmp_path}/asked.log"\n{body}\n')
    path.chmod(0o755)
    return path


CARGO_NEWER = 'printf "wdk-panic #panic\\nversion: 0.4.1 (latest 0.5.0)\\nlicense: MIT\\n"'
CARGO_SAME = 'printf "wdk-panic #panic\\nversion: 0.4.1\\n"'
PIP_NEWER = 'printf "pefile (2024.8.26)\\nAvailable versions: 2024.8.26, 2023.2.7, 2022.5.30\\n"'
PIP_SAME = 'printf "pefile (2023.2.7)\\nAvailable versions: 2023.2.7, 2022.5.30\\n"'
NPM_NEWER = "echo '[\"8.17.0\", \"8.18.0\", \"8.19.0-beta.1\", \"8.19.0\", \"9.0.0\"]'"
NPM_SAME = "echo '[\"8.17.0\", \"8.18.0\"]'"


def ask(tmp_path, root, cargo, pip, npm):
    return run("--root", root, "--cargo", client(tmp_path, "cargo", cargo), "--pip", client(tmp_path, "pip", pip),
               "--npm", client(tmp_path, "npm", npm))


def test_newer_releases_are_listed_newest_first_exit_1(tmp_path):
    p = ask(tmp_path, tree(tmp_path), CARGO_NEWER, PIP_NEWER, NPM_NEWER)
    assert p.returncode == 1, p.stderr
    assert p.stdout.splitlines() == [
        "PyPI       pefile 2023.2.7: newer: 2024.8.26  [emulator/requirements.txt:1]",
        "crates.io  wdk-panic 0.4.1: newer: 0.5.0  [Cargo.toml]",
        "npm        acorn 8.18.0: newer: 9.0.0, 8.19.0  [windbg/package.json]",  # no pre-release for a release pin
        "check-upstream: 3 pin(s) asked, 3 with newer releases, 0 not answered, 0 not checkable here",
    ]
    assert (tmp_path / "asked.log").read_text().splitlines() == [
        "pip --disable-pip-version-check index versions pefile",
        "cargo info wdk-panic@0.4.1", "npm view acorn versions --json"]


def test_nothing_newer_exit_0(tmp_path):
    p = ask(tmp_path, tree(tmp_path), CARGO_SAME, PIP_SAME, NPM_SAME)
    assert p.returncode == 0, p.stderr
    assert [line.split(":")[1].split("[")[0].strip() for line in p.stdout.splitlines()[:3]] == ["newest"] * 3


def test_a_pre_release_pin_is_compared_with_pre_releases(tmp_path):
    root = tree(tmp_path, requirements="speakeasy-emulator-refined==2.0.0b1\n")
    pip = 'printf "x (2.0.0b2)\\nAvailable versions: 2.0.0b2, 2.0.0b1, 1.6.1\\n"'
    p = ask(tmp_path, root, CARGO_SAME, pip, NPM_SAME)
    assert "PyPI       speakeasy-emulator-refined 2.0.0b1: newer: 2.0.0b2" in p.stdout
    assert "pip --disable-pip-version-check index versions --pre speakeasy-emulator-refined" in \
        (tmp_path / "asked.log").read_text()


@pytest.mark.parametrize("which,body,needle", [
    ("cargo", 'echo "error: could not find wdk-panic@0.4.1 in registry" >&2; exit 101',
     "crates.io  wdk-panic 0.4.1: NOT CHECKED: ", ),
    ("pip", 'printf "pefile (2024.8.26)\\nAvailable versions: 2024.8.26\\n"',
     "PyPI       pefile 2023.2.7: NOT CHECKED: PyPI does not list pefile 2023.2.7"),
    ("npm", "echo 'not json'", "npm        acorn 8.18.0: NOT CHECKED: npm view acorn versions printed no JSON"),
], ids=["cargo fails", "pin not served", "garbled answer"])
def test_a_registry_that_does_not_answer_is_named_exit_3(tmp_path, which, body, needle):
    bodies = {"cargo": CARGO_SAME, "pip": PIP_SAME, "npm": NPM_SAME, which: body}
    p = ask(tmp_path, tree(tmp_path), bodies["cargo"], bodies["pip"], bodies["npm"])
    assert p.returncode == 3
    assert needle in p.stderr
    assert "3 pin(s) asked, 0 with newer releases, 1 not answered" in p.stdout


@pytest.mark.parametrize("change,needle", [
    ({"cargo": 'wdk-panic = "=0.4'}, "check-upstream: Cargo.toml: "),
    ({"cargo": "wdk-panic = { features = [] }"}, "check-upstream: Cargo.toml: dependency wdk-panic has no version"),
    ({"requirements": "pytest\n"}, "check-upstream: emulator/requirements.txt:1: 'pytest' is not NAME==VERSION"),
    ({"package": "{"}, "check-upstream: windbg/package.json: "),
], ids=["bad TOML", "no version", "no pin", "bad JSON"])
def test_a_pin_file_it_cannot_read_stops_it_before_it_asks(tmp_path, change, needle):
    p = ask(tmp_path, tree(tmp_path, **change), CARGO_SAME, PIP_SAME, NPM_SAME)
    assert (p.returncode, p.stdout) == (2, "")
    assert p.stderr.startswith(needle)
    assert not (tmp_path / "asked.log").exists()


def test_a_range_is_flagged(tmp_path):
    root = tree(tmp_path, cargo='wdk-panic = "0.4.1"', package=json.dumps({"dependencies": {"acorn": "^8.18.0"}}))
    p = run("--root", root, "--list")
    assert "crates.io  wdk-panic 0.4.1 (a range, not an exact pin)  [Cargo.toml]" in p.stdout
    assert "npm        acorn 8.18.0 (a range, not an exact pin)  [windbg/package.json]" in p.stdout


def test_usage_errors_exit_2(tmp_path):
    p = run()
    assert p.returncode == 2 and "give --list, or --cargo, --pip and --npm" in p.stderr
    p = run("--root", tmp_path / "missing", "--list")
    assert p.returncode == 2 and "not a directory" in p.stderr
    w = subprocess.run(["bash", str(WRAPPER), "--bogus"], capture_output=True, text=True, timeout=60)
    assert w.returncode == 2 and w.stderr.startswith("check-upstream.sh: unknown argument(s): --bogus\n")
    assert "A script to run before a release, not a test" in w.stderr
    w = subprocess.run(["bash", str(WRAPPER), "--help"], capture_output=True, text=True, timeout=60)
    assert w.returncode == 0 and w.stdout.startswith("Lists the newer releases of every version the project pins")
    w = subprocess.run(["bash", str(WRAPPER), "--list"], capture_output=True, text=True, timeout=60)
    assert w.returncode == 0 and w.stdout == run("--list").stdout

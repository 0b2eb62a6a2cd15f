""".github/lint/lint-workflows.sh on small workflows: it passes a correct one and
reports each kind of mistake it is there to catch, at the right line.

The project's own workflows are linted by the step of linux/test.sh that runs
the script on .github/workflows.
"""

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().parent / "lint-workflows.sh"

CHECKOUT = "actions/checkout@d23441a48e516b6c34aea4fa41551a30e30af803 # v6.1.0"

# A correct workflow: a Windows job whose steps run in pwsh unless they say
# otherwise, a value passed into PowerShell through env:, one bash step.
GOOD = """\
name: Example
on: push
permissions:
  contents: read
jobs:
  build:
    runs-on: windows-2025
    env:
      FEATURE: fixed
    steps:
      - uses: {checkout}
        with:
          persist-credentials: false
      - name: Build
        run: |
          cargo build --release --features $env:FEATURE
          if ($LASTEXITCODE -ne 0) {{ throw "cargo build failed with $LASTEXITCODE" }}
      - name: List
        shell: bash
        run: |
          for file in a b; do
            echo "$file"
          done
"""


def workflow(tmp_path, text, old=None, new=None):
    """Writes TEXT (with OLD replaced by NEW, both literal) to example.yml."""
    text = text.format(checkout=CHECKOUT)
    if old is not None:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "example.yml"
    path.write_text(text, encoding="utf-8")
    return path


def lint(*paths):
    return subprocess.run(["bash", str(SCRIPT), *map(str, paths)], capture_output=True, text=True,
                          timeout=300, check=False)


def line_of(path, fragment):
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if fragment in line:
            return number
    raise AssertionError(fragment)


def test_correct_workflow_passes(tmp_path):
    path = workflow(tmp_path, GOOD)
    result = lint(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 workflow file(s), 1 pwsh step(s), 0 finding(s)" in result.stdout


# One planted fault per rule: OLD replaced by NEW, where it is reported (a fragment of its line and,
# when it matters, the column; None: anywhere) and what the report says. Each fails the lint (exit 1).
FAULTS = {
    "action by tag": (CHECKOUT, "actions/checkout@v6", ("uses:", ""),
                      ["'actions/checkout@v6' is not pinned to a full commit SHA", "[pin]"]),
    "action by short SHA": (CHECKOUT, "actions/checkout@d23441a", ("uses:", ""),
                            ["is not pinned to a full commit SHA", "[pin]"]),
    "SHA pin without version comment": (CHECKOUT, CHECKOUT.split(" #")[0], ("uses:", ""),
                                        ["is pinned without a comment naming its version", "[pin]"]),
    "docker image by tag": (CHECKOUT, "docker://alpine:3.20", ("uses:", ""),
                            ["'docker://alpine:3.20' is not pinned by digest", "[pin]"]),
    # actionlint knows actions/checkout's inputs by version: the comment's v6.
    "unknown input of a pinned action": ("persist-credentials:", "persist-credential:", ("persist-credential:", ""),
                                         ['input "persist-credential" is not defined in action '
                                          '"actions/checkout@v6"']),
    "PowerShell syntax error": ("if ($LASTEXITCODE -ne 0) {", "if ($LASTEXITCODE -ne 0 {", ("if ($LASTEXITCODE", ""),
                                ["pwsh step 'Build' of job 'build'", "[pwsh]"]),
    # check-ps1-syntax.py's rule: "$name:" in a double-quoted string.
    "drive-qualified variable in a string": ('with $LASTEXITCODE"', 'with $LASTEXITCODE: see above"',
                                             ("failed with", ""), ["'$LASTEXITCODE:' in a double-quoted string is "
                                                                   "not valid PowerShell", "[pwsh]"]),
    "expression in a PowerShell script": ("$env:FEATURE", "${{ github.ref_name }}", ("--features", "1:"),
                                          ["a ${{ }} expression in a PowerShell script", "[pwsh]"]),
    "shellcheck finding in a bash step": ('echo "$file"', "ls -l $RUNNER_TEMP/$file", ("ls -l", ""),
                                          ["SC2086", "[actionlint shellcheck]"]),
    "workflow syntax": ("runs-on:", "runs_on:", None, ['"runs-on" section is missing in job "build"']),
}


@pytest.mark.parametrize("old, new, where, messages", FAULTS.values(), ids=FAULTS.keys())
def test_planted_fault_is_reported(tmp_path, old, new, where, messages):
    path = workflow(tmp_path, GOOD, old, new)
    result = lint(path)
    assert result.returncode == 1, result.stdout + result.stderr
    if where is not None:
        assert "%s:%d:%s" % (path, line_of(path, where[0]), where[1]) in result.stdout
    for message in messages:
        assert message in result.stdout


def test_not_a_workflow(tmp_path):
    path = tmp_path / "list.yml"
    path.write_text("- just\n- a list\n", encoding="utf-8")
    result = lint(path)
    assert result.returncode == 1
    assert "[actionlint syntax-check]" in result.stdout


def test_missing_file_is_bad_usage(tmp_path):
    result = lint(tmp_path / "missing.yml")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "lint-workflows: no such file: %s" % (tmp_path / "missing.yml") in result.stderr
    assert list(tmp_path.iterdir()) == []

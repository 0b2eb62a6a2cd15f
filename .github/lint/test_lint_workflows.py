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


@pytest.mark.parametrize("uses, message", [
    ("actions/checkout@v6", "'actions/checkout@v6' is not pinned to a full commit SHA"),
    ("actions/checkout@d23441a", "is not pinned to a full commit SHA"),
    ("actions/checkout@d23441a48e516b6c34aea4fa41551a30e30af803",
     "is pinned without a comment naming its version"),
])
def test_action_not_pinned_to_a_commit(tmp_path, uses, message):
    path = workflow(tmp_path, GOOD, CHECKOUT, uses)
    result = lint(path)
    assert result.returncode == 1
    assert "%s:%d:" % (path, line_of(path, "uses:")) in result.stdout
    assert message in result.stdout and "[pin]" in result.stdout


def test_unknown_input_of_a_pinned_action(tmp_path):
    # actionlint knows actions/checkout's inputs by version: the comment's v6.
    path = workflow(tmp_path, GOOD, "persist-credentials: false", "persist-credential: false")
    result = lint(path)
    assert result.returncode == 1
    assert "%s:%d:" % (path, line_of(path, "persist-credential:")) in result.stdout
    assert 'input "persist-credential" is not defined in action "actions/checkout@v6"' in result.stdout


def test_powershell_syntax_error(tmp_path):
    path = workflow(tmp_path, GOOD, "if ($LASTEXITCODE -ne 0) {", "if ($LASTEXITCODE -ne 0 {")
    result = lint(path)
    assert result.returncode == 1
    assert "%s:%d:" % (path, line_of(path, "if ($LASTEXITCODE")) in result.stdout
    assert "pwsh step 'Build' of job 'build'" in result.stdout and "[pwsh]" in result.stdout


def test_powershell_drive_qualified_variable_in_string(tmp_path):
    # check-ps1-syntax.py's rule: "$name:" in a double-quoted string.
    path = workflow(tmp_path, GOOD, 'failed with $LASTEXITCODE"', 'failed with $LASTEXITCODE: see above"')
    result = lint(path)
    assert result.returncode == 1
    assert "'$LASTEXITCODE:' in a double-quoted string is not valid PowerShell" in result.stdout


def test_expression_in_a_powershell_script(tmp_path):
    path = workflow(tmp_path, GOOD, "--features $env:FEATURE", "--features ${{ github.ref_name }}")
    result = lint(path)
    assert result.returncode == 1
    assert "%s:%d:1:" % (path, line_of(path, "--features")) in result.stdout
    assert "a ${{ }} expression in a PowerShell script" in result.stdout


def test_shellcheck_finding_in_a_bash_step(tmp_path):
    path = workflow(tmp_path, GOOD, 'echo "$file"', "ls -l $RUNNER_TEMP/$file")
    result = lint(path)
    assert result.returncode == 1
    assert "%s:%d:" % (path, line_of(path, "ls -l")) in result.stdout
    assert "SC2086" in result.stdout and "[actionlint shellcheck]" in result.stdout


def test_workflow_syntax_error(tmp_path):
    path = workflow(tmp_path, GOOD, "runs-on: windows-2025", "runs_on: windows-2025")
    result = lint(path)
    assert result.returncode == 1
    assert '"runs-on" section is missing in job "build"' in result.stdout


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

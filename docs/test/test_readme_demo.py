"""README.md's excerpt of `bash linux/demo.sh` is what tdemu prints for the default build today:
every line it shows is a line of the run's output, in the same order ("..." marks a cut)."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EMU = os.path.join(REPO, "emulator")
DRIVER = os.environ.get("TDEMU_DRIVER", os.path.join(REPO, "out", "TestDriver.sys"))


def readme_excerpt():
    """The lines of README.md's code block that starts with the deadlock line."""
    lines = open(os.path.join(REPO, "README.md")).read().split("\n")
    starts = [i for i, line in enumerate(lines) if line.startswith("*** DEADLOCK") and lines[i - 1] == "```"]
    assert len(starts) == 1, "README.md has one code block that starts with tdemu's '*** DEADLOCK' line"
    end = lines.index("```", starts[0])
    return lines[starts[0]:end]


def unmatched(excerpt, output):
    """The excerpt's lines that are not, in order, lines of output. A line ending in '...' is a
    prefix; a line that is only '...' (a cut) and blank lines match nothing and are skipped."""
    out = [line.rstrip() for line in output.split("\n")]
    at = 0
    missing = []
    for line in excerpt:
        shown = line.rstrip()
        if shown.strip() in ("", "..."):
            continue
        prefix = shown.endswith("...")
        want = shown[:-3].rstrip() if prefix else shown
        found = next((i for i in range(at, len(out)) if (out[i].startswith(want) if prefix else out[i] == want)), None)
        if found is None:
            missing.append(line)
        else:
            at = found + 1
    return missing


def test_the_matcher_needs_each_line_in_order():
    output = "a\nb: c d\ne\n"
    assert unmatched(["a", "...", "b: c ...", "e"], output) == []
    assert unmatched(["e", "a"], output) == ["a"]
    assert unmatched(["b: c"], output) == ["b: c"]
    assert unmatched(["a", "x ..."], output) == ["x ..."]


def test_readme_demo_excerpt_is_what_tdemu_prints():
    if not os.path.isfile(DRIVER):
        message = f"{DRIVER} is missing: run bash linux/build.sh first"
        if os.environ.get("TDEMU_ALLOW_MISSING") == "1":
            pytest.skip(message)
        pytest.fail(message + " (or set TDEMU_ALLOW_MISSING=1 to skip the tests that need it)", pytrace=False)
    run = subprocess.run([sys.executable, "-m", "tdemu", "run", DRIVER, "--no-report"], capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=EMU), timeout=120)
    assert run.returncode == 3, run.stderr  # the deadlock
    assert unmatched(readme_excerpt(), run.stdout) == []

"""mypy (pinned in requirements.txt, configured in pyproject.toml) finds nothing in emulator/."""
import os
import subprocess
import sys

EMU = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# mypy's incremental cache, kept in the venv that holds mypy: a run after a small change rechecks only
# what the change reaches. mypy drops an entry whose source, options, Python or mypy version changed,
# and never caches a module with errors, so every error is reported again.
CACHE = os.path.join(sys.prefix, "mypy-cache")


def test_mypy_is_clean():
    p = subprocess.run([sys.executable, "-m", "mypy", "--config-file", "pyproject.toml", "--cache-dir", CACHE],
                       cwd=EMU, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Success: no issues found" in p.stdout

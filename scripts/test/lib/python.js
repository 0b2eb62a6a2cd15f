"use strict";
// The Python that has the pinned PowerShell parser (scripts/requirements-ps1-check.txt):
// PS1_CHECK_PYTHON when set (windbg/test.sh sets it to the venv it installs into), else
// windbg/.venv. Used by the syntax check's tests and by pslite.py, the scripts' runner.
const assert = require("node:assert/strict");
const path = require("node:path");
const { spawnSync } = require("node:child_process");

const REPO = path.join(__dirname, "..", "..", "..");
let found = null;

function python() {
    if (found) {
        return found;
    }
    const candidates = [process.env.PS1_CHECK_PYTHON, path.join(REPO, "windbg", ".venv", "bin", "python")]
        .filter(Boolean);
    for (const candidate of candidates) {
        const probe = spawnSync(candidate, ["-c", "import tree_sitter, tree_sitter_powershell"], { encoding: "utf8" });
        if (probe.status === 0) {
            found = candidate;
            return found;
        }
    }
    assert.fail("no Python with tree_sitter_powershell (tried " + candidates.join(", ") +
        "): run windbg/test.sh, which installs scripts/requirements-ps1-check.txt into windbg/.venv");
}

module.exports = { REPO, python };

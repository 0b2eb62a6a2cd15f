"use strict";
// Runs scripts/check-ps1-syntax.py (tree-sitter PowerShell grammar, pinned in
// scripts/requirements-ps1-check.txt) over every scripts/*.ps1 and scripts/*.psm1, and proves on
// deliberately broken scripts that the check can fail.
// The parser lives in windbg/.venv, which windbg/test.sh creates; PS1_CHECK_PYTHON
// can point at another interpreter that has it (lib/python.js).
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { spawnSync } = require("node:child_process");
const { python } = require("./lib/python.js");

const REPO = path.join(__dirname, "..", "..");
const CHECKER = path.join(REPO, "scripts", "check-ps1-syntax.py");
const SCRIPTS = path.join(REPO, "scripts");

function check(args) {
    const result = spawnSync(python(), [CHECKER].concat(args), { encoding: "utf8" });
    return { status: result.status, out: result.stdout + result.stderr };
}

test("every scripts/*.ps1 and scripts/*.psm1 parses without errors", () => {
    const files = fs.readdirSync(SCRIPTS).filter((f) => f.endsWith(".ps1") || f.endsWith(".psm1"));
    assert.ok(files.filter((f) => f.endsWith(".ps1")).length >= 5, "the five workflow scripts exist: " + files.join(", "));
    assert.ok(files.includes("TestDriver.Common.psm1"), "the shared module is checked too: " + files.join(", "));
    const r = check([SCRIPTS]);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, new RegExp("check-ps1-syntax: " + files.length + " file\\(s\\), 0 problem\\(s\\)"));
});

test("broken scripts are caught with file:line", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ps1-broken-"));
    const broken = {
        "unclosed-brace.ps1": "function Test-It {\n    if ($a) {\n        $b = 1\n}\n",
        "unclosed-string.ps1": "$ok = 1\n$a = \"never closed\n$b = 2\n",
        "missing-paren.ps1": "$ok = 1\nif ($a -eq 1 {\n    $b\n}\n",
        "colon-after-variable.ps1": "$ok = 1\nWrite-Host \"binPath is $Path: wrong\"\n",
        "unclosed-array.ps1": "$ok = 1\n$x = @(1, 2\n",
        "unclosed-function.psm1": "$ok = 1\nfunction Test-It {\n    $a = 1\n"
    };
    const expectedLine = {
        "unclosed-brace.ps1": 4, "unclosed-string.ps1": 2, "missing-paren.ps1": 2,
        "colon-after-variable.ps1": 2, "unclosed-array.ps1": 2, "unclosed-function.psm1": 3
    };
    try {
        for (const name of Object.keys(broken)) {
            fs.writeFileSync(path.join(dir, name), broken[name]);
        }
        fs.writeFileSync(path.join(dir, "fine.ps1"), "$a = \"at ${Path}: $env:TEMP\"\nif ($a) {\n    $a\n}\n");
        fs.writeFileSync(path.join(dir, "ignored.txt"), "function {\n");
        const r = check([dir]);
        assert.equal(r.status, 1, r.out);
        for (const name of Object.keys(broken)) {
            const re = new RegExp(name.replace(/[.]/g, "\\.") + ":(\\d+):\\d+: ");
            const match = r.out.match(re);
            assert.ok(match, name + " must be reported:\n" + r.out);
            assert.equal(Number(match[1]), expectedLine[name], name + " line:\n" + r.out);
        }
        assert.ok(!/fine\.ps1:/.test(r.out), "a valid file is not reported:\n" + r.out);
        assert.ok(!/ignored\.txt:/.test(r.out), "only .ps1 and .psm1 files are picked from a folder:\n" + r.out);
        assert.match(r.out, /check-ps1-syntax: 7 file\(s\)/);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

test("nothing to check is an error, not a pass", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ps1-empty-"));
    try {
        const r = check([dir]);
        assert.equal(r.status, 2, r.out);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

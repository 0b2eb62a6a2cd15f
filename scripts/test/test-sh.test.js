"use strict";
// windbg/test.sh's own arguments: a mistyped call is refused before anything is
// installed (no "==>" step runs), and --help prints the usage.
const test = require("node:test");
const assert = require("node:assert/strict");
const { spawnSync } = require("node:child_process");
const path = require("node:path");

const TEST_SH = path.join(__dirname, "..", "..", "windbg", "test.sh");

function run(args) {
    return spawnSync("bash", [TEST_SH].concat(args), { encoding: "utf8", timeout: 30000 });
}

test("test.sh refuses an unknown argument with exit 2, before installing anything", () => {
    for (const arg of ["--bogus", "windbg/test/", ""]) {
        const r = run([arg]);
        assert.equal(r.status, 2, JSON.stringify(arg) + ": " + r.stderr);
        assert.match(r.stderr, /^windbg\/test\.sh: unknown argument '.*' \(it takes none; --help for usage\)$/m);
        assert.equal(r.stdout, "", "no step ran");
    }
});

test("test.sh --help prints the usage and runs nothing", () => {
    for (const arg of ["--help", "-h"]) {
        const r = run([arg]);
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stdout, /^Usage: bash windbg\/test\.sh \[--help\]$/m);
        assert.doesNotMatch(r.stdout, /^==>/m, "no step ran");
    }
});

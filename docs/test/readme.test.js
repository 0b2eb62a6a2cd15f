"use strict";
// README.md is the front door: small, and its first bash block is the promise
// linux/fresh-check.sh runs on a fresh machine (it runs exactly that block's commands).
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");

const README = path.join(__dirname, "..", "..", "README.md");
const README_MAX_BYTES = 12000;

test("README.md is at most 12,000 bytes", () => {
    const size = fs.statSync(README).size;
    assert.ok(size <= README_MAX_BYTES,
        `README.md is ${size} bytes, more than ${README_MAX_BYTES}: move the details to docs/ and link them`);
});

test("README.md's first bash block is the two Linux commands, as fresh-check.sh reads it", () => {
    // As fresh-check.sh's awk reads it: from the first line that starts with ```bash to the next
    // line that starts with ```, each line cut at its first '#', blank lines left out.
    const lines = fs.readFileSync(README, "utf8").split("\n");
    const start = lines.findIndex((l) => l.startsWith("```bash"));
    assert.ok(start >= 0, "README.md has a ```bash block");
    const end = lines.findIndex((l, i) => i > start && l.startsWith("```"));
    assert.ok(end > start, "the block closes");
    const commands = lines.slice(start + 1, end).map((l) => l.replace(/\s*#.*/, "").trim()).filter((l) => l !== "");
    assert.deepEqual(commands, ["bash linux/demo.sh", "bash linux/test.sh"]);
});

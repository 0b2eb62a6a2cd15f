"use strict";
// docs/windows.md labels the extension's outputs it shows as [computed]: printed by
// this repository's code from the seed's values. These tests keep that true.
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { reportLines } = require("../../windbg/testlib/report.js");
const seed = require("../../windbg/testlib/seed-dump.js");

const DOC = fs.readFileSync(path.join(__dirname, "..", "windows.md"), "utf8").split("\n");

// The report's lines without the empty one its final newline leaves, as the page shows them.
function report(dump, options) {
    return reportLines(dump, options).join("\n").replace(/\n$/, "").split("\n");
}

// The lines of the page's code block that follow the line `first`, up to its closing fence.
function blockAfter(first) {
    const at = DOC.indexOf(first);
    assert.ok(at >= 0, "docs/windows.md has the line: " + first);
    const end = DOC.indexOf("```", at);
    assert.ok(end > at, "the code block closes");
    return DOC.slice(at + 1, end);
}

test("windows.md's [computed] !WrFastMutexJs table is the extension's report on the seed's dump", () => {
    assert.deepEqual(blockAfter("0: kd> !WrFastMutexJs"), report(seed.seedDump(), {}));
});

test("windows.md's [computed] answer lines are the extension's lines, picked as the script picks them", () => {
    const answers = DOC.map((line, i) => [line, i]).filter(([line]) => line === "Answer (from the log):");
    assert.equal(answers.length, 2, "two Answer blocks: the verdict and the unreadable dump");
    const seedVerdict = report(seed.seedDump(), {}).filter((l) => l.startsWith("Verdict: "));
    assert.equal(DOC[answers[0][1] + 1], "  " + seedVerdict[0]);
    const noSymbols = report(seed.seedDump(), { symbols: "none" });
    assert.equal(noSymbols.length, 1);
    assert.equal(DOC[answers[1][1] + 1], "  " + noSymbols[0]);
});

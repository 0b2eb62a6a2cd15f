"use strict";
// README.md labels the extension's outputs it shows as [computed]: printed by
// this repository's code from the seed's values. These tests keep that true.
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { reportLines } = require("../testlib/report.js");
const seed = require("../testlib/seed-dump.js");

const README = fs.readFileSync(path.join(__dirname, "..", "..", "README.md"), "utf8").split("\n");

// The report's lines without the empty one its final newline leaves, as README shows them.
function report(dump, options) {
    return reportLines(dump, options).join("\n").replace(/\n$/, "").split("\n");
}

// The lines of the README code block that follow the line `first`, up to its closing fence.
function blockAfter(first) {
    const at = README.indexOf(first);
    assert.ok(at >= 0, "README has the line: " + first);
    const end = README.indexOf("```", at);
    assert.ok(end > at, "the code block closes");
    return README.slice(at + 1, end);
}

test("README's [computed] !WrFastMutexJs table is the extension's report on the seed's dump", () => {
    assert.deepEqual(blockAfter("0: kd> !WrFastMutexJs"), report(seed.seedDump(), {}));
});

test("README's [computed] answer lines are the extension's lines, picked as the script picks them", () => {
    const answers = README.map((line, i) => [line, i]).filter(([line]) => line === "Answer (from the log):");
    assert.equal(answers.length, 2, "two Answer blocks: the verdict and the unreadable dump");
    const seedVerdict = report(seed.seedDump(), {}).filter((l) => l.startsWith("Verdict: "));
    assert.equal(README[answers[0][1] + 1], "  " + seedVerdict[0]);
    const noSymbols = report(seed.seedDump(), { symbols: "none" });
    assert.equal(noSymbols.length, 1);
    assert.equal(README[answers[1][1] + 1], "  " + noSymbols[0]);
});

"use strict";
// What the scripts must not do or must agree on, read from their text where running them
// cannot show it: no translated tool output is parsed (an absence), the patterns the
// analysis matches the debugger's log with agree with what windbg/WrFastMutex.js really
// prints, and Remove-TestDriver's help explains why it never stops the driver. What the
// scripts do is run under pslite.py in the *-behaviour tests.
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const { SCRIPTS, readScript } = require("./lib/ps-text.js");
const { reportLines } = require("../../windbg/testlib/report.js");
const seed = require("../../windbg/testlib/seed-dump.js");

// The text without comment-based help and # comments (strings kept).
function withoutComments(text) {
    return text.replace(/<#[\s\S]*?#>/g, "").replace(/^\s*#.*$/gm, "");
}

// A single-quoted PowerShell string assigned to $name.
function psString(text, name) {
    const match = text.match(new RegExp("^\\$" + name + " = '((?:[^']|'')*)'$", "m"));
    assert.ok(match, "$" + name + " = '...'");
    return match[1].replace(/''/g, "'");
}

// .NET inline options (?im) -> JavaScript flags.
function dotNetRegex(pattern) {
    const inline = pattern.match(/^\(\?([imsx]+)\)/);
    return inline ? new RegExp(pattern.slice(inline[0].length), inline[1]) : new RegExp(pattern);
}

const scripts = fs.readdirSync(SCRIPTS).filter((f) => /\.ps1$|\.psm1$/.test(f));

test("no script reads the translated text of sc.exe, bcdedit or the storage subsystem's name", () => {
    for (const file of scripts) {
        const code = withoutComments(readScript(file));
        assert.doesNotMatch(code, /STATE\\s|'STATE|STATE\s+:/, file + ": sc.exe STATE text");
        assert.doesNotMatch(code, /-eq 'Yes'|testsigning\\s\+\(/i, file + ": bcdedit Yes/No text");
        assert.doesNotMatch(code, /'\/enum'/, file + ": bcdedit /enum output");
        assert.doesNotMatch(code, /FriendlyName -like|'Windows Storage/, file + ": the storage subsystem's English name");
        assert.doesNotMatch(code, /@\('query'/, file + ": sc.exe query output");
    }
});

test("Invoke-DumpAnalysis's .chain check matches a loaded mex.dll and nothing else", () => {
    const loaded = dotNetRegex(psString(readScript("Invoke-DumpAnalysis.ps1"), "MEX_LOADED_PATTERN"));
    // the shape of Microsoft's .load page: "<path>: image <version>, API <version>, built <date>"
    assert.match("Extension DLL chain:\n    C:\\Program Files (x86)\\Windows Kits\\10\\Debuggers\\x64\\winext\\mex.dll: " +
        "image 18.0.0.0, API 1.0.0, built Mon Jan  1 00:00:00 2024\n", loaded);
    assert.doesNotMatch("Extension DLL search Path:\n    C:\\dbg\\winext;C:\\dbg\\mex\n" +
        "Extension DLL chain:\n    C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\SOS.dll: image 4.8.4084.0, API 1.0.0\n",
    loaded);
    assert.doesNotMatch("The call to LoadLibrary(mex) failed, Win32 error 0n2\n", loaded);
});

// Every report windbg/WrFastMutex.js can print, from the fake data model.
function reports() {
    const scenarios = [
        [seed.seedDump(), {}],
        [seed.cleanDump(), {}],
        [seed.cleanDump(), { symbols: "none" }],
        [seed.withSystemThreads(seed.seedDump(), [seed.UNREADABLE_THREAD]), {}],
        [seed.seedDump(), { unreadable: [seed.MUTEX] }],
        [seed.seedDump(), { processesThrowAt: 0, processIndex: "none" }]
    ];
    return scenarios.map(([dump, options]) => reportLines(dump, options));
}

test("Invoke-DumpAnalysis picks exactly the extension's answer lines, and warns on the incomplete ones", () => {
    const text = readScript("Invoke-DumpAnalysis.ps1");
    const answer = dotNetRegex(psString(text, "ANSWER_PATTERN"));
    const warn = text.match(/\$_\.Line -match '([^']+)'/);
    assert.ok(warn, "the incomplete-answer check");
    const incomplete = new RegExp(warn[1]);
    const picked = [];
    for (const lines of reports()) {
        const answers = lines.filter((l) => answer.test(l));
        assert.ok(answers.length >= 1, "every report has an answer line:\n" + lines.join("\n"));
        for (const l of lines) {
            const isAnswer = /^(Verdict: |No thread is waiting|Cannot tell |Incomplete: )/.test(l);
            assert.equal(answer.test(l), isAnswer, "answer or not: " + l);
        }
        picked.push(answers);
    }
    assert.match(picked[0][0], /^Verdict: the owner ffff9709`ac20e040 is itself waiting on the fast mutex it owns/);
    assert.deepEqual(picked[1], ["No thread is waiting with reason WrFastMutex (34)."]);
    assert.match(picked[2][0], /^Cannot tell whether any thread waits on a fast mutex: cannot read 7 thread\(s\)/);
    assert.match(picked[3][1], /^Incomplete: cannot read 1 thread\(s\)/);
    assert.match(picked[4][0], /^Verdict: cannot read the fast mutex/);
    assert.match(picked[5][0], /^Cannot tell .*System process \(PID 4\).* was not found/);
    // the warning fires for exactly the reports that could not read everything
    assert.deepEqual(picked.map((a) => a.some((l) => incomplete.test(l))), [false, false, true, true, false, true]);
});

test("Remove-TestDriver explains sc stop as freed memory under waiting threads, not an immediate crash", () => {
    const text = readScript("Remove-TestDriver.ps1");
    assert.doesNotMatch(text, /crashes the machine/);
    assert.match(text, /does not crash at once/);
    assert.match(text, /undefined behaviour/);
    assert.match(text, /IoDeleteDevice frees the\s+device object and with it the device extension that holds the FAST_MUTEX/);
});

"use strict";
// What running the scripts cannot show, read from their text: no translated tool output is
// parsed anywhere (an absence), and Remove-TestDriver's help explains why it never stops the
// driver. What the scripts do is run under pslite.py in the *-behaviour tests.
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const { SCRIPTS, readScript } = require("./lib/ps-text.js");

// The text without comment-based help and # comments (strings kept).
function withoutComments(text) {
    return text.replace(/<#[\s\S]*?#>/g, "").replace(/^\s*#.*$/gm, "");
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

test("Remove-TestDriver explains sc stop as freed memory under waiting threads, not an immediate crash", () => {
    const text = readScript("Remove-TestDriver.ps1");
    assert.doesNotMatch(text, /crashes the machine/);
    assert.match(text, /does not crash at once/);
    assert.match(text, /undefined behaviour/);
    assert.match(text, /IoDeleteDevice frees the\s+device object and with it the device extension that holds the FAST_MUTEX/);
});

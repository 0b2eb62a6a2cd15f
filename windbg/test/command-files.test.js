"use strict";
// The debugger command files windbg/analyze-mex.txt and analyze-builtin.txt: the seed's
// steps in order, one walk per analysis, and only !aliases WrFastMutex.js registers.
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");

const WINDBG = path.join(__dirname, "..");

function read(file) {
    return fs.readFileSync(file, "utf8");
}

test("the debugger scripts follow the seed's steps in order", () => {
    const mex = read(path.join(WINDBG, "analyze-mex.txt"));
    const builtin = read(path.join(WINDBG, "analyze-builtin.txt"));
    function inOrder(text, steps) {
        let at = -1;
        for (const step of steps) {
            const i = text.indexOf("\n" + step + "\n", at + 1);
            assert.ok(i > at, "step '" + step + "' in order");
            at = i;
        }
    }
    inOrder(mex, ["!mex.di", "!WrFastMutex", "!WrFastMutexWalk 1"]);
    inOrder(builtin, ["vertarget", ".bugcheck", "!stacks 2 ExAcquireFastMutex", "!WrFastMutexWalk"]);
    // one walk over every thread per analysis: !WrFastMutexWalk prints the table itself
    for (const text of [mex, builtin]) {
        assert.equal((text.match(/^!WrFastMutex(Js|Walk)\b/gm) || []).length, 1, "one walking command:\n" + text);
    }
    assert.match(builtin, /\ndx -g @\$cursession\.Processes\[4\]\.Threads\.Where\(t => t\.KernelObject\.Tcb\.State == 5 && t\.KernelObject\.Tcb\.WaitReason == 34\)/);
    for (const text of [mex, builtin]) {
        for (const line of text.split("\n")) {
            if (line.startsWith("$$") || line.startsWith(".echo")) {
                assert.ok(!line.includes(";"), "a semicolon would end this comment/echo early: " + line);
            }
        }
        assert.ok(!/^q$/m.test(text), "the command files do not quit: Invoke-DumpAnalysis.ps1 adds q");
    }
});

test("every !alias the command files use is registered by WrFastMutex.js", () => {
    const previous = global.host;
    global.host = {
        apiVersionSupport: function () {},
        functionAlias: function (fn, name) {
            this.name = name;
        }
    };
    let names;
    try {
        names = require("../WrFastMutex.js").initializeScript().map((r) => r.name).filter(Boolean);
    } finally {
        global.host = previous;
    }
    const used = new Set();
    for (const file of ["analyze-mex.txt", "analyze-builtin.txt"]) {
        const re = /^!(WrFastMutex\w+)/gm;
        let m;
        const text = read(path.join(WINDBG, file));
        while ((m = re.exec(text)) !== null) {
            used.add(m[1]);
        }
    }
    assert.deepEqual([...used].sort(), ["WrFastMutexWalk"]);
    for (const name of used) {
        assert.ok(names.includes(name), name + " is registered");
    }
});

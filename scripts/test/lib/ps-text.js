"use strict";
// Reading the PowerShell scripts as text, for the tests that check them without
// running PowerShell (scripts/test/scripts-static.test.js, scripts-windows.test.js).
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");

const SCRIPTS = path.join(__dirname, "..", "..");

function read(file) {
    return fs.readFileSync(file, "utf8");
}

// A file of scripts/, by name.
function readScript(name) {
    return read(path.join(SCRIPTS, name));
}

// The top-level functions of a script or module: name -> body (from "function" to the closing "}").
function functionsOf(text) {
    const result = new Map();
    const re = /^function ([A-Za-z-]+) \{\n([\s\S]*?)^\}$/gm;
    let m;
    while ((m = re.exec(text)) !== null) {
        assert.ok(!result.has(m[1]), m[1] + " is defined once");
        result.set(m[1], m[2]);
    }
    return result;
}

// The body of a top-level "function Name {" ... "}" of a script or module.
function functionBody(text, name) {
    const body = functionsOf(text).get(name);
    assert.ok(body !== undefined, "function " + name);
    return body;
}

module.exports = { SCRIPTS, read, readScript, functionsOf, functionBody };

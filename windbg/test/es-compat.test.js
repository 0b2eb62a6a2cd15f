"use strict";
// WinDbg runs WrFastMutex.js in its own JavaScript provider (Chakra, documented
// as ECMAScript 6), not in node. These tests keep the file inside what that
// engine is documented to run, and keep `host` out of the pure logic.
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");

const SOURCE_PATH = path.join(__dirname, "..", "WrFastMutex.js");
const source = fs.readFileSync(SOURCE_PATH, "utf8");

function loadAcorn() {
    try {
        return require("acorn");
    } catch (e) {
        assert.fail("acorn is not installed: run windbg/test.sh (it runs npm ci in windbg/) - " + e.message);
    }
}

test("WrFastMutex.js parses as an ECMAScript 2015 script", () => {
    const acorn = loadAcorn();
    assert.doesNotThrow(() => acorn.parse(source, { ecmaVersion: 2015, sourceType: "script" }));
});

test("the ES2015 check can fail: newer syntax is rejected", () => {
    const acorn = loadAcorn();
    for (const newer of ["var a = b?.c;", "var a = b ?? c;", "var a = 10n;", "var a = 2 ** 3;",
        "async function f() {}", "var o = { ...p };"]) {
        assert.throws(() => acorn.parse(newer, { ecmaVersion: 2015, sourceType: "script" }), SyntaxError, newer);
    }
});

test("no library calls newer than ES2015, no require()", () => {
    const acorn = loadAcorn();
    const banned = new Set(["BigInt", "padStart", "padEnd", "includes", "flat", "flatMap", "fromEntries",
        "matchAll", "replaceAll", "trimStart", "trimEnd", "globalThis", "require", "values", "entries"]);
    const found = [];
    for (const token of acorn.tokenizer(source, { ecmaVersion: 2015, locations: true })) {
        if (token.type.label === "name" && banned.has(token.value)) {
            found.push(token.value + " at line " + token.loc.start.line);
        }
    }
    assert.deepEqual(found, []);
});

test("the pure logic never touches host; only the adapter does", () => {
    const acorn = loadAcorn();
    const ast = acorn.parse(source, { ecmaVersion: 2015, sourceType: "script" });
    const adapter = new Set(["hostValueToHex", "forEachGuarded", "eventOffsetFromSymbols",
        "lookupProcess", "newCoverage", "readThreadRecord", "collectProcessThreads", "collectThreadRecords",
        "readFastMutexFromTarget", "readFastMutexRaw", "log", "gatherAndReport", "WrFastMutexJs", "WrFastMutexWalk",
        "initializeScript"]);
    const usesHost = [];
    function walk(node, fn) {
        if (!node || typeof node.type !== "string") {
            return;
        }
        if (node.type === "Identifier" && node.name === "host") {
            usesHost.push(fn);
        }
        for (const key of Object.keys(node)) {
            const child = node[key];
            if (Array.isArray(child)) {
                child.forEach((c) => walk(c, fn));
            } else if (child && typeof child.type === "string") {
                walk(child, fn);
            }
        }
    }
    const declared = [];
    for (const stmt of ast.body) {
        if (stmt.type === "FunctionDeclaration") {
            declared.push(stmt.id.name);
            walk(stmt.body, stmt.id.name);
        }
    }
    const offenders = [...new Set(usesHost)].filter((name) => !adapter.has(name));
    assert.deepEqual(offenders, []);
    for (const name of adapter) {
        assert.ok(declared.includes(name), "adapter function " + name + " exists");
    }
    assert.ok(declared.includes("findFastMutexWaiters") && declared.includes("formatReport"));
});

test("loading the file needs no host (root code only defines functions)", () => {
    const saved = global.host;
    delete global.host;
    try {
        delete require.cache[require.resolve(SOURCE_PATH)];
        const m = require(SOURCE_PATH);
        assert.equal(typeof m.initializeScript, "function");
    } finally {
        if (saved !== undefined) {
            global.host = saved;
        }
    }
});

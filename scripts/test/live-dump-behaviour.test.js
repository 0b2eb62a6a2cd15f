"use strict";
// New-LiveKernelDump.ps1 under pslite.py against fakes of the Storage module and the file
// system: how it asks for the dump and what it returns.
const test = require("node:test");
const assert = require("node:assert/strict");
const { runScenario } = require("./lib/pslite.js");

const DEST = "C:\\Dumps\\t1";
const SUBSYSTEM = { FriendlyName: "Stockage Windows sur VM", UniqueId: "{s-1}" };
const DUMP = { FullName: DEST + "\\localhost\\LiveDump.dmp", Length: 867135488, LastWriteTime: "2026-12-03 10:00" };

function machine({ subsystems = [SUBSYSTEM], dumps = [DUMP], destExists = false, storageModule = true } = {}) {
    return [
        { command: "Test-Administrator", output: [true] },
        { command: "Get-Command", when: { Name: "Get-StorageDiagnosticInfo" }, output: storageModule ? [{ Name: "Get-StorageDiagnosticInfo" }] : [] },
        { command: "Get-StorageSubSystem", output: subsystems },
        { command: "Test-Path", when: { LiteralPath: DEST }, output: [destExists] },
        { command: "New-Item", output: [{}] },
        { command: "Get-StorageDiagnosticInfo", output: [] },
        { command: "Get-ChildItem", when: { Filter: "*.dmp" }, output: dumps },
        { command: "Get-ChildItem", output: [] }
    ];
}

function liveDump(options, parameters) {
    return runScenario({ script: "New-LiveKernelDump.ps1", run: { parameters: Object.assign({ DestinationPath: DEST }, parameters || {}) },
        fakes: machine(options) });
}

test("the only storage subsystem is passed as the object Get-StorageSubSystem returned, never by its translated name", () => {
    const r = liveDump();
    assert.equal(r.error, null);
    const asked = r.called("Get-StorageDiagnosticInfo");
    assert.equal(asked.length, 1);
    assert.deepEqual(asked[0].named, {
        InputObject: SUBSYSTEM, IncludeLiveDump: true, DestinationPath: DEST, ExcludeOperationalLog: true, ExcludeDiagnosticLog: true
    });
    assert.deepEqual(r.output, [DUMP.FullName]);
    assert.ok(r.host.includes("Dump: " + DUMP.FullName + " (827 MB, written 2026-12-03 10:00)"), r.host.join("\n"));
});

test("-IncludeLogs keeps the storage logs; several subsystems are listed and none is guessed", () => {
    const logs = liveDump({}, { IncludeLogs: true });
    assert.deepEqual(Object.keys(logs.called("Get-StorageDiagnosticInfo")[0].named).sort(), ["DestinationPath", "IncludeLiveDump", "InputObject"]);
    const two = liveDump({ subsystems: [SUBSYSTEM, { FriendlyName: "Clustered Windows Storage" }] });
    assert.equal(two.error, "Get-StorageSubSystem lists 2 storage subsystem(s) ('Stockage Windows sur VM', " +
        "'Clustered Windows Storage'): pass the one to use with -StorageSubSystemFriendlyName.");
    assert.equal(two.called("Get-StorageDiagnosticInfo").length, 0);
});

test("no .dmp written: the error says live dumps are throttled and need memory; -WhatIf asks for nothing", () => {
    const none = liveDump({ dumps: [] });
    assert.match(none.error, /^Get-StorageDiagnosticInfo finished but wrote no \.dmp under C:\\Dumps\\t1\. Live dumps are throttled/);
    const whatIf = runScenario({ script: "New-LiveKernelDump.ps1", run: { parameters: { DestinationPath: DEST } }, fakes: machine(), whatIf: true });
    assert.equal(whatIf.called("Get-StorageDiagnosticInfo").length, 0);
    assert.equal(whatIf.called("New-Item").length, 0);
});

test("-FromTaskManager changes nothing and returns the newest dump; without the folder it says to run Task Manager as administrator", () => {
    const folder = "C:\\Users\\a\\AppData\\Local\\Microsoft\\Windows\\TaskManager\\LiveKernelDumps";
    const fakes = [
        { command: "Test-Administrator", output: [true] },
        { command: "Get-Date", output: ["20261203-100000"] },
        { command: "Test-Path", when: { LiteralPath: folder }, output: [true] },
        { command: "Get-ChildItem", when: { LiteralPath: folder }, output: [
            { FullName: folder + "\\old.dmp", Length: 1048576, LastWriteTime: "2026-12-01 09:00" },
            { FullName: folder + "\\new.dmp", Length: 2097152, LastWriteTime: "2026-12-03 09:00" }] }
    ];
    const env = { LOCALAPPDATA: "C:\\Users\\a\\AppData\\Local" };
    const r = runScenario({ script: "New-LiveKernelDump.ps1", run: { parameters: { FromTaskManager: true } }, fakes, env });
    assert.equal(r.error, null);
    assert.deepEqual(r.output, [folder + "\\new.dmp"]);
    assert.equal(r.called("Get-StorageDiagnosticInfo").length, 0);
    const missing = runScenario({ script: "New-LiveKernelDump.ps1", run: { parameters: { FromTaskManager: true } }, env,
        fakes: [fakes[0], fakes[1], { command: "Test-Path", output: [false] }] });
    assert.match(missing.error, /no live kernel dump was made with Task Manager by this user\. Start Task Manager as administrator/);
});

"use strict";
// Install-TestDriver.ps1 run under pslite.py against fakes of the file system, WMI,
// Authenticode, the registry and sc.exe: what it explains and what it runs.
const test = require("node:test");
const assert = require("node:assert/strict");
const { runScenario, nativeFake, programsExist } = require("./lib/pslite.js");

const DRIVER = "C:\\drv\\TestDriver.sys";

function errorText(code) {
    const r = runScenario({ script: "Install-TestDriver.ps1", call: { function: "Get-StartErrorText", arguments: { Code: code } } });
    assert.equal(r.error, null);
    assert.equal(r.output.length, 1);
    return r.output[0];
}

test("Get-StartErrorText: 1072 says the service is marked for deletion and a reboot clears it", () => {
    const text = errorText(1072);
    assert.match(text, /^ERROR_SERVICE_MARKED_FOR_DELETE: /);
    assert.match(text, /already marked for deletion/);
    assert.match(text, /Reboot, then run this again\.$/);
});

test("Get-StartErrorText: 577 names both causes and no certificate import; an unknown code points at net helpmsg", () => {
    const text = errorText(577);
    assert.match(text, /^ERROR_INVALID_IMAGE_HASH: /);
    assert.match(text, /the \.sys is not signed .* or test signing is not on in this boot/);
    assert.doesNotMatch(text, /certificate|ImportCertificate/i);
    assert.equal(errorText(1234), "Win32 error 1234 (see: net helpmsg 1234).");
});

// The machine: TestDrv's WMI record (or none) before anything runs, what WMI says after each
// lookup that follows (the last one repeats: by default the driver running from DRIVER), and
// what sc.exe answers.
function machine({ driver, later, startCode = 0, configCode = 0, filesAfter = [] }) {
    const running = Object.assign({}, driver, { State: "Running", PathName: "\\??\\" + DRIVER });
    const lookups = [driver].concat(later || [running]);
    return [
        { command: "Test-Administrator", output: [true] },
        { command: "Test-Path", when: { LiteralPath: DRIVER }, output: [true] },
        { command: "Test-Path", when: { LiteralPath: "C:\\Temp" }, output: [true] },
        { command: "Resolve-Path", when: { LiteralPath: DRIVER }, output: [{ ProviderPath: DRIVER }] },
        { command: "Get-AuthenticodeSignature", output: [{ Status: "UnknownError", SignerCertificate: { Subject: "CN=WDKTestCert" } }] },
        { command: "Get-ItemProperty", output: [{ SystemStartOptions: " TESTSIGNING  NOEXECUTE=OPTIN" }] },
        ...lookups.map((record, i) => Object.assign(
            { command: "Get-CimInstance", when: { ClassName: "Win32_SystemDriver" }, output: record ? [record] : [] },
            i < lookups.length - 1 ? { times: 1 } : {})),
        { command: "Get-CimInstance", when: { ClassName: "Win32_Service" }, output: [] },
        nativeFake("sc.exe", ["start", "TestDrv"], startCode, startCode ? ["[SC] StartService FAILED " + startCode + ":"] : []),
        nativeFake("sc.exe", ["config", "TestDrv", "binPath=", DRIVER], configCode, []),
        { command: "Start-Sleep" },
        { command: "Get-ChildItem", when: { LiteralPath: "C:\\Temp" }, output: filesAfter }
    ].concat(programsExist(["sc.exe"]));
}

function stopped(path) {
    return { Name: "TestDrv", ServiceType: "Kernel Driver", State: "Stopped", PathName: "\\??\\" + path };
}

function install(options, parameters) {
    return runScenario({
        script: "Install-TestDriver.ps1", run: { parameters: Object.assign({ DriverPath: DRIVER, WaitSeconds: 1 }, parameters || {}) },
        fakes: machine(options)
    });
}

function scRuns(r) {
    return r.called("sc.exe").map((c) => c.positional.join(" "));
}

test("the service exists, stopped, for this driver: sc.exe start, then C:\\Temp stays empty: deadlocked", () => {
    const r = install({ driver: stopped(DRIVER) });
    assert.equal(r.error, null);
    assert.deepEqual(scRuns(r), ["start TestDrv"]);
    assert.ok(r.host.includes("Service TestDrv: binPath already points to this driver."), r.host.join("\n"));
    assert.deepEqual(r.output, [{ Service: "TestDrv", Driver: DRIVER, WatchFolder: "C:\\Temp", FilesAfterRun: 0, Deadlocked: true }]);
    assert.deepEqual(r.warnings, []);
});

test("sc.exe start answers 1072: the error says the service is marked for deletion and to reboot", () => {
    const r = install({ driver: stopped(DRIVER), startCode: 1072 });
    assert.match(r.error, /^sc\.exe start TestDrv failed with exit code 1072: ERROR_SERVICE_MARKED_FOR_DELETE: .*Reboot, then run this again\.$/);
    assert.equal(r.called("Get-ChildItem").length, 0, "no folder check after a failed start");
});

test("a stopped service for another file is re-pointed with sc.exe config; its 1072 is explained too", () => {
    const repointed = stopped(DRIVER);
    const ok = install({ driver: stopped("C:\\old\\TestDriver.sys"), later: [repointed, Object.assign({}, repointed, { State: "Running" })] });
    assert.equal(ok.error, null);
    assert.deepEqual(scRuns(ok), ["config TestDrv binPath= " + DRIVER, "start TestDrv"]);
    const marked = install({ driver: stopped("C:\\old\\TestDriver.sys"), configCode: 1072 });
    assert.match(marked.error, /^sc\.exe config failed with exit code 1072: ERROR_SERVICE_MARKED_FOR_DELETE: /);
    assert.deepEqual(scRuns(marked), ["config TestDrv binPath= " + DRIVER]);
});

test("a loaded service for another file is not touched: reboot first", () => {
    const driver = Object.assign(stopped("C:\\old\\TestDriver.sys"), { State: "Running" });
    const r = install({ driver });
    assert.match(r.error, /^TestDrv is loaded from C:\\old\\TestDriver\.sys, not from C:\\drv\\TestDriver\.sys\. A loaded TestDriver cannot be replaced/);
    assert.deepEqual(scRuns(r), []);
});

test("already running: not started again, only the folder is checked; files there are a warning, not the deadlock", () => {
    const driver = Object.assign(stopped(DRIVER), { State: "Running" });
    const r = install({ driver, filesAfter: [{ Name: "file_0.txt" }] });
    assert.equal(r.error, null);
    assert.deepEqual(scRuns(r), []);
    assert.equal(r.output[0].Deadlocked, false);
    assert.match(r.warnings[0], /^C:\\Temp holds 1 file\(s\) after 1 s, e\.g\. file_0\.txt\./);
});

test("test signing off in this boot: stops before any service change unless -Force", () => {
    const fakes = machine({ driver: stopped(DRIVER) }).map((f) =>
        f.command === "Get-ItemProperty" ? { command: "Get-ItemProperty", output: [{ SystemStartOptions: " NOEXECUTE=OPTIN" }] } : f);
    const r = runScenario({ script: "Install-TestDriver.ps1", run: { parameters: { DriverPath: DRIVER } }, fakes });
    assert.match(r.error, /^Test signing is not active in this boot\. .*\(Use -Force to try anyway\.\)$/);
    assert.deepEqual(scRuns(r), []);
});

function resolveDriver(fakes) {
    return runScenario({ script: "Install-TestDriver.ps1", modules: ["TestDriver.Common.psm1"],
        call: { function: "Resolve-DriverPath", arguments: { Path: "" } }, fakes });
}

test("Resolve-DriverPath takes the newest package build (cargo wdk or cargo make), names the older ones, and asks for the repository root", () => {
    const builds = [
        { FullName: "C:\\src\\target\\release\\TestDriver_package\\TestDriver.sys", LastWriteTime: "2026-12-02 10:00" },
        { FullName: "C:\\src\\target\\debug\\TestDriver_package\\TestDriver.sys", LastWriteTime: "2026-12-01 10:00" }
    ];
    const r = resolveDriver([{ command: "Find-TestDriverBuild", when: { FileName: "TestDriver.sys" }, output: builds }]);
    assert.equal(r.error, null);
    assert.deepEqual(r.output, [builds[0].FullName]);
    assert.match(r.host[0], /^Driver: C:\\src\\target\\release\\TestDriver_package\\TestDriver\.sys \(written 2026-12-02 10:00: the newest of 2 package build\(s\) of cargo wdk or cargo make\)$/);
    assert.match(r.host[1], /not used, older: C:\\src\\target\\debug\\TestDriver_package\\TestDriver\.sys .*pass -DriverPath to choose it/);
    assert.equal(r.called("Find-TestDriverBuild")[0].named.RepositoryRoot.replace(/\\/g, "/"),
        require("node:path").join(__dirname, "..", ".."), "the repository root is scripts/'s parent");
});

test("Resolve-DriverPath falls back to the unsigned Linux build only without a package build, else names both ways to build", () => {
    const linux = resolveDriver([
        { command: "Find-TestDriverBuild", output: [] },
        { command: "Test-Path", output: [true] },
        { command: "Resolve-Path", output: [{ ProviderPath: "C:\\src\\out\\TestDriver.sys" }] }
    ]);
    assert.deepEqual(linux.output, ["C:\\src\\out\\TestDriver.sys"]);
    assert.match(linux.host[0], /the Linux build: no cargo wdk or cargo make package build under target\\\)$/);
    const none = resolveDriver([{ command: "Find-TestDriverBuild", output: [] }, { command: "Test-Path", output: [false] }]);
    assert.match(none.error, new RegExp('^TestDriver\\.sys not found under .*: "cargo wdk build --profile release ' +
        '--target-platform windows" or "cargo make default --release" \\(both write target\\\\release\\\\TestDriver_package\\), ' +
        "or pass -DriverPath\\.$"));
});

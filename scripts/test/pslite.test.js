"use strict";
// pslite.py, the interpreter the scripts' behaviour tests run on, is no looser than
// PowerShell under Set-StrictMode -Version 2.0 where the scripts rely on it, and stops
// (exit 3) on anything it does not model instead of guessing.
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { spawnScenario, runScenario } = require("./lib/pslite.js");

function withScript(text, body) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pslite-"));
    const file = path.join(dir, "t.ps1");
    fs.writeFileSync(file, text);
    try {
        return body(file);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

test("an unset variable and a missing property are errors, as under strict mode", () => {
    withScript("Write-Host $neverSet\n", (script) => {
        assert.match(runScenario({ script, run: {} }).error, /variable '\$neverSet' cannot be retrieved/);
    });
    withScript("$o = [pscustomobject]@{ A = 1 }\nWrite-Host $o.B\n", (script) => {
        assert.match(runScenario({ script, run: {} }).error, /property 'B' cannot be found/);
    });
});

test("a command that is neither defined, built in nor faked stops the run with exit 3, even inside try/catch", () => {
    withScript("try { Get-Unknown -Name x } catch { Write-Host 'caught' }\n", (script) => {
        const r = spawnScenario({ script, run: {} });
        assert.equal(r.status, 3, r.stdout + r.stderr);
        assert.match(r.stderr, /command 'Get-Unknown' \(line 1\) is not defined, not built in here and not faked/);
    });
});

test("functions bind named, positional, switch and -Switch:$value arguments and enforce their validation", () => {
    const text = [
        "function Show-It {",
        "    param([ValidatePattern('^[a-z]+$')][string]$Name, [int]$Count = 2, [switch]$Loud)",
        "    Write-Host \"$Name $Count $Loud\"",
        "}",
        "Show-It abc",
        "Show-It -Name def -Count 3 -Loud",
        "$off = $false",
        "Show-It -Name ghi -Loud:$off",
        "Show-It -Name 'a b'",
        ""
    ].join("\n");
    withScript(text, (script) => {
        const r = runScenario({ script, run: {} });
        assert.deepEqual(r.host, ["abc 2 False", "def 3 True", "ghi 2 False"]);
        assert.match(r.error, /Cannot validate argument on parameter 'Name'\. The argument "a b" does not match/);
    });
});

test("-match fills $Matches; a throw is caught by catch with $_; fakes answer by their arguments", () => {
    const text = [
        "if ('x=42' -match '^x=(\\d+)$') { Write-Host $Matches[1] }",
        "try { throw 'boom' } catch { Write-Host \"caught $_\" } finally { Write-Host 'finally' }",
        "$a = Get-Thing -Kind one",
        "$b = Get-Thing -Kind two",
        "Write-Host \"$a $b\"",
        ""
    ].join("\n");
    withScript(text, (script) => {
        const r = runScenario({
            script, run: {}, fakes: [
                { command: "Get-Thing", when: { Kind: "two" }, output: ["second"] },
                { command: "Get-Thing", output: ["first"] }
            ]
        });
        assert.equal(r.error, null);
        assert.deepEqual(r.host, ["42", "caught boom", "finally", "first second"]);
        assert.deepEqual(r.commandLines.filter((l) => l.startsWith("Get-Thing")),
            ["Get-Thing -Kind \"one\"", "Get-Thing -Kind \"two\""]);
    });
});

test("a native program's fake sets $LASTEXITCODE; one called with other arguments is not answered", () => {
    withScript("$out = & 'tool.exe' 'a' 2>&1\nWrite-Host \"$LASTEXITCODE $out\"\n& 'tool.exe' 'b'\n", (script) => {
        const r = spawnScenario({ script, run: {}, fakes: [{ command: "tool.exe", when: { args: ["a"] }, exitCode: 7, output: ["hi"] }] });
        assert.equal(r.status, 3, r.stdout);
        assert.match(r.stderr, /command 'tool\.exe' \(line 3\).*positional \["b"\]/);
    });
});

test("bad input: no script or no JSON is refused with exit 2", () => {
    assert.equal(spawnScenario({ script: "/nonexistent/x.ps1", run: {} }).status, 2);
});

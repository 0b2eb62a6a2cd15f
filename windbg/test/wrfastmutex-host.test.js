"use strict";
// windbg/WrFastMutex.js run end to end against a fake WinDbg data model
// (windbg/testlib/fake-host.js) that encodes the seed's dump.
const test = require("node:test");
const assert = require("node:assert/strict");
const { makeHost, FakeInt64 } = require("../testlib/fake-host.js");
const seed = require("../testlib/seed-dump.js");
const m = require("../WrFastMutex.js");

function withHost(dump, options, body) {
    const fake = makeHost(dump, options);
    const previous = global.host;
    global.host = fake.host;
    try {
        return body(fake);
    } finally {
        global.host = previous;
    }
}

test("initializeScript registers API 1.7 and the two aliases", () => {
    withHost(seed.seedDump(), {}, () => {
        const registrations = m.initializeScript();
        assert.deepEqual(registrations.map((r) => r.kind), ["apiVersionSupport", "functionAlias", "functionAlias"]);
        assert.deepEqual([registrations[0].major, registrations[0].minor], [1, 7]);
        assert.equal(registrations[1].name, "WrFastMutexJs");
        assert.equal(registrations[1].fn, m.WrFastMutexJs);
        assert.equal(registrations[2].name, "WrFastMutexWalk");
        assert.equal(registrations[2].fn, m.WrFastMutexWalk);
    });
});

test("hostValueToHex reads Int64 (with or without 0x), pointers and numbers", () => {
    assert.equal(m.hostValueToHex(new FakeInt64("ffff9709ac20e040")), "ffff9709ac20e040");
    assert.equal(m.hostValueToHex(new FakeInt64("ffff9709ac20e040", "bare")), "ffff9709ac20e040");
    assert.equal(m.hostValueToHex({ address: new FakeInt64("ffff9709ac3d4f38") }), "ffff9709ac3d4f38");
    assert.equal(m.hostValueToHex(0x1000), "0000000000001000");
    assert.throws(() => m.hostValueToHex(undefined), /no value/);
});

for (const style of ["0x", "bare"]) {
    test(`!WrFastMutexJs on the seed dump prints the table and returns two rows (Int64 style ${style})`, () => {
        withHost(seed.seedDump(), { int64Style: style }, (fake) => {
            const rows = m.WrFastMutexJs();
            assert.equal(rows.length, 2);
            assert.equal(String(rows[0]),
                "ffff9709ac20e040 waits on fast mutex ffff9709ac3d4f20 owned by ffff9709ac20e040");
            assert.equal(String(rows[1]),
                "ffff9709ab278040 waits on fast mutex ffff9709ac3d4f20 owned by ffff9709ac20e040");
            assert.equal(rows[1].tid, 0xc80);
            assert.equal(rows[0].count, 8);
            assert.equal(rows[0].contention, 2);
            assert.equal(rows[0].oldIrql, 0);
            const out = fake.log.join("");
            assert.ok(out.includes(
                "System    4 ffff9709ac20e040 dd8 Waiting WrFastMutex ffff9709ac3d4f20 ffff9709ac20e040 " +
                "nt!ExAcquireFastMutex+0x122 TestDriver+0x113d\n"), out);
            assert.ok(out.includes("Count: 2\n"));
            assert.ok(out.includes("   Owner      : ffff9709`ac20e040\n"));
            assert.ok(out.includes("Verdict: the owner ffff9709`ac20e040 is itself waiting on the fast mutex it owns"));
            // the one KTHREAD that is not in the dump is skipped and reported, not fatal
            assert.ok(out.endsWith("(1 thread(s) could not be read and were skipped)\n"));
            // the fast mutex was read through createTypedObject("nt", "_FAST_MUTEX") at event - 0x18
            assert.deepEqual(fake.typedReads, ["ffff9709ac3d4f20"]);
        });
    });
}

test("!WrFastMutexJs with nobody waiting: empty result and a clear message", () => {
    withHost(seed.cleanDump(), {}, (fake) => {
        const rows = m.WrFastMutexJs();
        assert.deepEqual(rows, []);
        assert.equal(fake.log[0], "No thread is waiting with reason WrFastMutex (34).\n");
        assert.deepEqual(fake.typedReads, []);
    });
});

test("!WrFastMutexWalk runs the seed's commands and prints their output", () => {
    const dump = seed.seedDump();
    dump.commandOutput = (cmd) => (cmd.indexOf("dt nt!_FAST_MUTEX") === 0
        ? ["   +0x000 Count            : 0n8", "   +0x008 Owner            : 0xffff9709`ac20e040 Void"]
        : ["(output of " + cmd + ")"]);
    withHost(dump, {}, (fake) => {
        m.WrFastMutexWalk();
        assert.deepEqual(fake.commands, seed.walkthroughCommands("!thread"));
        const out = fake.log.join("");
        assert.ok(out.includes("kd> dt nt!_FAST_MUTEX ffff9709ac3d4f20\n   +0x000 Count            : 0n8\n"));
    });
    withHost(seed.seedDump(), {}, (fake) => {
        m.WrFastMutexWalk(1);
        assert.equal(fake.commands[0], "!mex.t ffff9709ac20e040");
    });
    withHost(seed.cleanDump(), {}, (fake) => {
        m.WrFastMutexWalk();
        assert.deepEqual(fake.commands, []);
        assert.equal(fake.log[0], "No thread is waiting with reason WrFastMutex (34): nothing to walk through.\n");
    });
});

test("collectThreadRecords reads state, reason and wait object only through the data model", () => {
    withHost(seed.seedDump(), {}, (fake) => {
        const collected = m.collectThreadRecords(fake.host.currentSession);
        assert.equal(collected.unreadable, 1);
        const owner = collected.records.find((r) => r.thread === seed.OWNER);
        assert.equal(owner.state, 5);
        assert.equal(owner.waitReason, 34);
        assert.equal(owner.waitObject, seed.EVENT);
        assert.equal(owner.frames.length, 9);
        // stacks are only walked for WrFastMutex waiters
        const worker = collected.records.find((r) => r.thread === "ffff9709a5a3c040");
        assert.deepEqual(worker.frames, []);
        assert.equal(worker.waitObject, null);
    });
});

"use strict";

// WrFastMutex.js - a WinDbg JavaScript extension that answers the question the
// MEX command !WrFastMutex answers in the TestDriver walk-through, with nothing
// but WinDbg (no MEX):
//
//   which threads are waiting with wait reason WrFastMutex, on which FAST_MUTEX,
//   who owns that mutex, and what its Count / Contention / OldIrql say.
//
// Usage (kernel dump or live kernel session):
//
//   .scriptload C:\path\to\repo\windbg\WrFastMutex.js
//   !WrFastMutexJs                        table of waiters + one summary per mutex
//   dx @$scriptContents.WrFastMutexJs()   the same rows as data-model objects
//   !WrFastMutexWalk                      the seed's walk-through with built-in commands
//                                         (!thread, .thread /r /p, .frame /r, dt nt!_FAST_MUTEX)
//   !WrFastMutexWalk 1                    the same, but with MEX's !mex.t (MEX loaded)
//
// How the fast mutex is found. A thread that blocks in ExAcquireFastMutex waits,
// through KeWaitForSingleObject, on the KEVENT embedded in the FAST_MUTEX. So
// for a thread with _KTHREAD.State == Waiting (5) and _KTHREAD.WaitReason ==
// WrFastMutex (34 = 0x22 in _KWAIT_REASON on Windows 10 1607 .. Windows 11),
// _KTHREAD.WaitBlockList->Object is the address of FAST_MUTEX.Event, and the
// FAST_MUTEX starts Event's offset (0x18 on x64) before it.
//
// Structure. Everything that only computes (hex arithmetic on 64-bit addresses,
// filtering, the Count decoding, the report text, the list of commands for the
// walk-through) is plain JavaScript in the "pure logic" section and never
// touches `host`. The "WinDbg adapter" section is the only code that reads the
// data model. The pure functions, and the adapter run against a fake `host`,
// are unit-tested with node (windbg/test/). The last lines export them for node
// only: WinDbg's JavaScript provider has no `module`, so the guard skips it.
//
// Language level: WinDbg's provider (JsProvider.dll, Chakra) is documented as
// ECMAScript 6. This file keeps to ES2015 syntax and library (checked by
// windbg/test/es-compat.test.js): no BigInt, no ?. or ??, no padStart.
// 64-bit values are kept as 16-digit hex strings in the pure logic because
// JavaScript numbers hold only 53 bits and kernel addresses need 64.

// ---------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------

var KTHREAD_STATE_WAITING = 5;           // _KTHREAD_STATE::Waiting
var WAIT_REASON_WR_FAST_MUTEX = 34;      // _KWAIT_REASON::WrFastMutex (0x22)
var FAST_MUTEX_EVENT_OFFSET = 0x18;      // FIELD_OFFSET(FAST_MUTEX, Event) on x64
var FM_LOCK_BIT = 0x1;                   // Count bit 0: 1 = free, 0 = held
var FM_LOCK_WAITER_WOKEN = 0x2;          // Count bit 1: a waiter has been woken
var FM_LOCK_WAITER_INC = 0x4;            // each waiter adds 4 to Count
var MAX_FRAMES = 24;

// ---------------------------------------------------------------------------
// Pure logic: 64-bit addresses as hex strings
// ---------------------------------------------------------------------------

function repeatChar(ch, n) {
    var s = "";
    for (var i = 0; i < n; i++) {
        s += ch;
    }
    return s;
}

function padLeft(text, width, ch) {
    var s = String(text);
    return s.length >= width ? s : repeatChar(ch === undefined ? " " : ch, width - s.length) + s;
}

function padRight(text, width) {
    var s = String(text);
    return s.length >= width ? s : s + repeatChar(" ", width - s.length);
}

// Any spelling of a 64-bit address -> 16 lowercase hex digits.
// Accepts "ffff9709`ac3d4f38", "0xFFFF9709AC3D4F38", "ac3d4f38", small numbers.
function normalizeHex(value) {
    if (value === null || value === undefined) {
        throw new Error("normalizeHex: no value");
    }
    var s;
    if (typeof value === "number") {
        if (value < 0 || value > 9007199254740991 || Math.floor(value) !== value) {
            throw new Error("normalizeHex: " + value + " is not an address");
        }
        s = value.toString(16);
    } else {
        s = String(value).trim().toLowerCase();
    }
    s = s.replace(/`/g, "");
    if (s.indexOf("0x") === 0) {
        s = s.substring(2);
    }
    if (!/^[0-9a-f]{1,16}$/.test(s)) {
        throw new Error("normalizeHex: '" + value + "' is not a 64-bit hex value");
    }
    return padLeft(s, 16, "0");
}

// address + delta, modulo 2^64; delta is a JavaScript integer with |delta| < 2^32.
function hexAdd(value, delta) {
    var hex = normalizeHex(value);
    var hi = parseInt(hex.substring(0, 8), 16);
    var lo = parseInt(hex.substring(8), 16);
    lo += delta;
    while (lo < 0) {
        lo += 0x100000000;
        hi -= 1;
    }
    while (lo >= 0x100000000) {
        lo -= 0x100000000;
        hi += 1;
    }
    hi = ((hi % 0x100000000) + 0x100000000) % 0x100000000;
    return padLeft(hi.toString(16), 8, "0") + padLeft(lo.toString(16), 8, "0");
}

function hexSub(value, delta) {
    return hexAdd(value, -delta);
}

function hexEquals(a, b) {
    return normalizeHex(a) === normalizeHex(b);
}

function isNullHex(value) {
    return normalizeHex(value) === "0000000000000000";
}

// "ffff9709`ac3d4f20": how the debugger prints 64-bit pointers.
function formatPointer(value) {
    var hex = normalizeHex(value);
    return hex.substring(0, 8) + "`" + hex.substring(8);
}

// "ffff9709ac3d4f20": how MEX tables print them (and what !thread accepts).
function formatPlain(value) {
    return normalizeHex(value);
}

// ---------------------------------------------------------------------------
// Pure logic: FAST_MUTEX fields and stacks
// ---------------------------------------------------------------------------

// Count of a FAST_MUTEX (LONG) -> what it says. Bit 0 is the lock bit (1 = free),
// bit 1 says a waiter has been woken, and every waiter adds FM_LOCK_WAITER_INC.
// Seed: Count 0n8 = held, nobody woken, 2 waiters.
function decodeFastMutexCount(count) {
    var c = Number(count) >>> 0;
    return {
        count: Number(count),
        held: (c & FM_LOCK_BIT) === 0,
        waiterWoken: (c & FM_LOCK_WAITER_WOKEN) !== 0,
        waiters: Math.floor(c / FM_LOCK_WAITER_INC)
    };
}

// A data-model frame display string -> "module!symbol+0xoff".
// Tolerates "nt!KiSwapContext + 0x76 [Switch To]", "nt!KiSwapContext+0x76 (fffff803`27c6d645)".
function normalizeFrame(text) {
    var s = String(text);
    s = s.replace(/\s*\[Switch To\]\s*$/, "");
    s = s.replace(/\s*\([0-9a-fA-F`x]+\)\s*$/, "");
    s = s.replace(/\s*\+\s*/g, "+");
    return s.trim();
}

// Frames of the blocking machinery below the function that asked to wait.
var WAIT_MACHINERY = /^nt!(Ki|Ke|Exp)/;

// Index of the frame that asked for the wait (ExAcquireFastMutex in the seed: frame 5),
// or -1 if every frame is wait machinery.
function findWaitFrameIndex(frames) {
    for (var i = 0; i < frames.length; i++) {
        if (!WAIT_MACHINERY.test(normalizeFrame(frames[i]))) {
            return i;
        }
    }
    return -1;
}

// First frame above the wait function that is not in nt: the driver code that
// called ExAcquireFastMutex ("TestDriver+0x113d" without symbols).
function findCallerFrame(frames, waitIndex) {
    for (var i = waitIndex + 1; i < frames.length; i++) {
        var f = normalizeFrame(frames[i]);
        if (f.indexOf("nt!") !== 0) {
            return f;
        }
    }
    return "";
}

// ---------------------------------------------------------------------------
// Pure logic: from thread records to rows
// ---------------------------------------------------------------------------

// threads: array of records
//   { processName, pid, thread, tid, state, waitReason, waitObject, frames }
//   (thread and waitObject: any hex spelling; waitObject null if unknown)
// readFastMutex(mutexHex16) -> { count, owner, contention, oldIrql }
// options: { eventOffset }  (default 0x18)
// Returns rows sorted as the records came, one per waiting thread.
function findFastMutexWaiters(threads, readFastMutex, options) {
    var eventOffset = (options && options.eventOffset !== undefined) ? options.eventOffset : FAST_MUTEX_EVENT_OFFSET;
    var cache = {};
    var rows = [];
    for (var i = 0; i < threads.length; i++) {
        var t = threads[i];
        if (Number(t.state) !== KTHREAD_STATE_WAITING || Number(t.waitReason) !== WAIT_REASON_WR_FAST_MUTEX) {
            continue;
        }
        if (t.waitObject === null || t.waitObject === undefined || isNullHex(t.waitObject)) {
            continue;
        }
        var event = normalizeHex(t.waitObject);
        var mutex = hexSub(event, eventOffset);
        if (!cache.hasOwnProperty(mutex)) {
            var m = readFastMutex(mutex);
            cache[mutex] = {
                count: Number(m.count),
                owner: normalizeHex(m.owner),
                contention: Number(m.contention),
                oldIrql: Number(m.oldIrql)
            };
        }
        var fm = cache[mutex];
        var frames = (t.frames || []).map(normalizeFrame);
        var waitIndex = findWaitFrameIndex(frames);
        var threadHex = normalizeHex(t.thread);
        rows.push({
            processName: String(t.processName),
            pid: Number(t.pid),
            thread: threadHex,
            tid: Number(t.tid),
            state: "Waiting",
            waitReason: "WrFastMutex",
            event: event,
            mutex: mutex,
            owner: fm.owner,
            count: fm.count,
            contention: fm.contention,
            oldIrql: fm.oldIrql,
            ownsMutex: fm.owner === threadHex,
            waitFrameIndex: waitIndex,
            waitFunction: waitIndex >= 0 ? frames[waitIndex] : "",
            caller: waitIndex >= 0 ? findCallerFrame(frames, waitIndex) : ""
        });
    }
    return rows;
}

// Rows -> one entry per distinct fast mutex, in order of first appearance.
function summarizeMutexes(rows) {
    var order = [];
    var byMutex = {};
    for (var i = 0; i < rows.length; i++) {
        var r = rows[i];
        if (!byMutex.hasOwnProperty(r.mutex)) {
            byMutex[r.mutex] = {
                mutex: r.mutex,
                event: r.event,
                owner: r.owner,
                count: r.count,
                decoded: decodeFastMutexCount(r.count),
                contention: r.contention,
                oldIrql: r.oldIrql,
                waiters: [],
                ownerIsWaiting: false
            };
            order.push(r.mutex);
        }
        var s = byMutex[r.mutex];
        s.waiters.push({ thread: r.thread, tid: r.tid });
        if (r.ownsMutex) {
            s.ownerIsWaiting = true;
        }
    }
    return order.map(function (k) { return byMutex[k]; });
}

function verdictFor(summary) {
    var others = summary.waiters.length - (summary.ownerIsWaiting ? 1 : 0);
    if (isNullHex(summary.owner)) {
        return "no owner recorded: the mutex may be in the middle of a hand-over; look again at Count and the waiters' stacks.";
    }
    if (summary.ownerIsWaiting) {
        return "the owner " + formatPointer(summary.owner) + " is itself waiting on the fast mutex it owns: " +
            "recursive acquisition, a self-deadlock that nothing can end. " +
            others + " other thread(s) wait behind it.";
    }
    return "the owner " + formatPointer(summary.owner) + " is not waiting on this mutex; run !thread " +
        formatPlain(summary.owner) + " to see what it is doing. " + others + " thread(s) wait behind it.";
}

var TABLE_COLUMNS = [
    { title: "Process", width: 7, right: false },
    { title: "PID", width: 3, right: true },
    { title: "Thread", width: 16, right: false },
    { title: "Id", width: 3, right: true },
    { title: "State", width: 7, right: false },
    { title: "Reason", width: 11, right: false },
    { title: "Fast Mutex", width: 16, right: false },
    { title: "Owning Thread", width: 16, right: false },
    { title: "Wait Function", width: 27, right: false },
    { title: "Caller", width: 6, right: false }
];

function formatTableLine(cells) {
    var parts = [];
    for (var i = 0; i < TABLE_COLUMNS.length; i++) {
        var c = TABLE_COLUMNS[i];
        var text = String(cells[i]);
        var width = Math.max(c.width, c.title.length);
        parts.push(c.right ? padLeft(text, width) : padRight(text, width));
    }
    return parts.join(" ").replace(/\s+$/, "");
}

function formatReport(rows) {
    var lines = [];
    if (rows.length === 0) {
        lines.push("No thread is waiting with reason WrFastMutex (" + WAIT_REASON_WR_FAST_MUTEX + ").");
        return lines;
    }
    lines.push(formatTableLine(TABLE_COLUMNS.map(function (c) { return c.title; })));
    lines.push(formatTableLine(TABLE_COLUMNS.map(function (c) {
        return repeatChar("=", Math.max(c.width, c.title.length));
    })));
    for (var i = 0; i < rows.length; i++) {
        var r = rows[i];
        lines.push(formatTableLine([r.processName, r.pid.toString(16), formatPlain(r.thread), r.tid.toString(16),
            r.state, r.waitReason, formatPlain(r.mutex), formatPlain(r.owner), r.waitFunction, r.caller]));
    }
    lines.push("Count: " + rows.length);
    var summaries = summarizeMutexes(rows);
    for (var j = 0; j < summaries.length; j++) {
        var s = summaries[j];
        var d = s.decoded;
        lines.push("");
        lines.push("Fast mutex " + formatPointer(s.mutex) + " (waited-on event " + formatPointer(s.event) +
            " = mutex + 0x" + hexDistance(s.mutex, s.event) + ")");
        lines.push("   Count      : 0n" + s.count + "  (" + (d.held ? "held: lock bit 0 clear" : "free: lock bit 0 set") +
            ", " + d.waiters + " waiter(s) = Count >> 2" + (d.waiterWoken ? ", a waiter was woken" : "") + ")");
        lines.push("   Owner      : " + formatPointer(s.owner));
        lines.push("   Contention : " + s.contention);
        lines.push("   OldIrql    : " + s.oldIrql);
        lines.push("   Waiters    : " + s.waiters.map(function (w) {
            return formatPlain(w.thread) + " (Id " + w.tid.toString(16) + ")";
        }).join(", "));
        lines.push("Verdict: " + verdictFor(s));
    }
    return lines;
}

function hexDistance(low, high) {
    var a = normalizeHex(low);
    var b = normalizeHex(high);
    if (a.substring(0, 8) !== b.substring(0, 8)) {
        return "?";
    }
    return (parseInt(b.substring(8), 16) - parseInt(a.substring(8), 16)).toString(16);
}

// The seed's walk-through as debugger commands, for every fast mutex found:
// the owner first (the seed's !mex.t <owner>, .frame /r 0n5, dt nt!_FAST_MUTEX),
// then any other waiter. useMex: !mex.t instead of !thread.
function planWalkthrough(rows, useMex) {
    var commands = [];
    var summaries = summarizeMutexes(rows);
    for (var i = 0; i < summaries.length; i++) {
        var s = summaries[i];
        var ownerRow = null;
        for (var k = 0; k < rows.length; k++) {
            if (rows[k].mutex === s.mutex && rows[k].ownsMutex) {
                ownerRow = rows[k];
            }
        }
        var first = ownerRow ? ownerRow : rows.filter(function (r) { return r.mutex === s.mutex; })[0];
        var threadCmd = useMex ? "!mex.t " : "!thread ";
        commands.push(threadCmd + formatPlain(ownerRow ? s.owner : first.thread));
        commands.push(".thread /r /p " + formatPlain(first.thread));
        if (first.waitFrameIndex >= 0) {
            commands.push(".frame /r 0n" + first.waitFrameIndex);
        }
        commands.push("dt nt!_FAST_MUTEX " + formatPlain(s.mutex));
        for (var w = 0; w < s.waiters.length; w++) {
            if (s.waiters[w].thread !== first.thread) {
                commands.push(threadCmd + formatPlain(s.waiters[w].thread));
            }
        }
        if (!ownerRow && !isNullHex(s.owner)) {
            commands.push(threadCmd + formatPlain(s.owner));
        }
    }
    if (commands.length > 0) {
        commands.push(".thread");
    }
    return commands;
}

// ---------------------------------------------------------------------------
// WinDbg adapter: the only code that touches `host`
// ---------------------------------------------------------------------------

// A 64-bit value from the data model (host.Int64, a JavaScript number, a
// pointer object, or a location object) -> 16 hex digits.
function hostValueToHex(value) {
    if (value === null || value === undefined) {
        throw new Error("no value");
    }
    if (typeof value === "number" || typeof value === "string") {
        return normalizeHex(value);
    }
    if (value.address !== undefined && value.address !== value) {
        return hostValueToHex(value.address);
    }
    if (typeof value.toString === "function") {
        return normalizeHex(value.toString(16));
    }
    throw new Error("cannot read an address from " + value);
}

function typedObjectAddress(obj) {
    if (obj.address !== undefined) {
        return hostValueToHex(obj.address);
    }
    return hostValueToHex(obj.targetLocation);
}

function eventOffsetFromSymbols() {
    try {
        var t = host.getModuleType("nt", "_FAST_MUTEX");
        var off = t.fields.Event.offset;
        if (off !== undefined && off !== null) {
            return Number(off);
        }
    } catch (e) {
        // older debuggers or no type information: fall back to the x64 layout
    }
    return FAST_MUTEX_EVENT_OFFSET;
}

// Walk every thread of every process in `session` (host.currentSession in
// WinDbg) and return plain records for the pure logic. Threads whose kernel
// object cannot be read (paged out, partial live dump) are counted, not fatal.
function collectThreadRecords(session) {
    var records = [];
    var unreadable = 0;
    for (var process of session.Processes) {
        var processName = "";
        var pid = 0;
        try {
            processName = String(process.Name);
            pid = Number(process.Id);
        } catch (e) {
            processName = "?";
        }
        var threads;
        try {
            threads = process.Threads;
        } catch (e) {
            unreadable++;
            continue;
        }
        for (var thread of threads) {
            try {
                var ko = thread.KernelObject;
                var tcb = ko.Tcb;
                var state = Number(tcb.State);
                var reason = Number(tcb.WaitReason);
                var record = {
                    processName: processName,
                    pid: pid,
                    thread: typedObjectAddress(ko),
                    tid: Number(thread.Id),
                    state: state,
                    waitReason: reason,
                    waitObject: null,
                    frames: []
                };
                if (state === KTHREAD_STATE_WAITING && reason === WAIT_REASON_WR_FAST_MUTEX) {
                    var wbl = tcb.WaitBlockList;
                    if (!wbl.isNull) {
                        record.waitObject = hostValueToHex(wbl.dereference().Object);
                    }
                    try {
                        var n = 0;
                        for (var frame of thread.Stack.Frames) {
                            if (n++ >= MAX_FRAMES) {
                                break;
                            }
                            record.frames.push(String(frame.toString()));
                        }
                    } catch (e) {
                        record.frames = [];
                    }
                }
                records.push(record);
            } catch (e) {
                unreadable++;
            }
        }
    }
    return { records: records, unreadable: unreadable };
}

function readFastMutexFromTarget(mutexHex) {
    var m = host.createTypedObject(host.parseInt64(normalizeHex(mutexHex), 16), "nt", "_FAST_MUTEX");
    return {
        count: Number(m.Count),
        owner: hostValueToHex(m.Owner),
        contention: Number(m.Contention),
        oldIrql: Number(m.OldIrql)
    };
}

function log(line) {
    host.diagnostics.debugLog(line + "\n");
}

function WaiterRow(row) {
    for (var k in row) {
        if (row.hasOwnProperty(k)) {
            this[k] = row[k];
        }
    }
}

WaiterRow.prototype.toString = function () {
    return formatPlain(this.thread) + " waits on fast mutex " + formatPlain(this.mutex) +
        " owned by " + formatPlain(this.owner);
};

function gatherRows() {
    var collected = collectThreadRecords(host.currentSession);
    var rows = findFastMutexWaiters(collected.records, readFastMutexFromTarget,
        { eventOffset: eventOffsetFromSymbols() });
    return { rows: rows, unreadable: collected.unreadable };
}

// !WrFastMutexJs / dx @$scriptContents.WrFastMutexJs()
function WrFastMutexJs() {
    var g = gatherRows();
    var lines = formatReport(g.rows);
    for (var i = 0; i < lines.length; i++) {
        log(lines[i]);
    }
    if (g.unreadable > 0) {
        log("(" + g.unreadable + " thread(s) could not be read and were skipped)");
    }
    return g.rows.map(function (r) { return new WaiterRow(r); });
}

// !WrFastMutexWalk [useMex] / dx @$scriptContents.WrFastMutexWalk(1)
function WrFastMutexWalk(useMex) {
    var g = gatherRows();
    var commands = planWalkthrough(g.rows, Boolean(useMex && Number(useMex) !== 0));
    if (commands.length === 0) {
        log("No thread is waiting with reason WrFastMutex (" + WAIT_REASON_WR_FAST_MUTEX + "): nothing to walk through.");
        return;
    }
    var control = host.namespace.Debugger.Utility.Control;
    for (var i = 0; i < commands.length; i++) {
        log("");
        log("kd> " + commands[i]);
        var output = control.ExecuteCommand(commands[i]);
        for (var line of output) {
            log(String(line));
        }
    }
}

function initializeScript() {
    return [
        new host.apiVersionSupport(1, 7),
        new host.functionAlias(WrFastMutexJs, "WrFastMutexJs"),
        new host.functionAlias(WrFastMutexWalk, "WrFastMutexWalk")
    ];
}

// node only (WinDbg has no `module`): export for windbg/test/.
if (typeof module !== "undefined" && module.exports) {
    module.exports = {
        KTHREAD_STATE_WAITING: KTHREAD_STATE_WAITING,
        WAIT_REASON_WR_FAST_MUTEX: WAIT_REASON_WR_FAST_MUTEX,
        FAST_MUTEX_EVENT_OFFSET: FAST_MUTEX_EVENT_OFFSET,
        normalizeHex: normalizeHex,
        hexAdd: hexAdd,
        hexSub: hexSub,
        hexEquals: hexEquals,
        formatPointer: formatPointer,
        formatPlain: formatPlain,
        decodeFastMutexCount: decodeFastMutexCount,
        normalizeFrame: normalizeFrame,
        findWaitFrameIndex: findWaitFrameIndex,
        findCallerFrame: findCallerFrame,
        findFastMutexWaiters: findFastMutexWaiters,
        summarizeMutexes: summarizeMutexes,
        formatReport: formatReport,
        planWalkthrough: planWalkthrough,
        hostValueToHex: hostValueToHex,
        collectThreadRecords: collectThreadRecords,
        readFastMutexFromTarget: readFastMutexFromTarget,
        WrFastMutexJs: WrFastMutexJs,
        WrFastMutexWalk: WrFastMutexWalk,
        initializeScript: initializeScript
    };
}

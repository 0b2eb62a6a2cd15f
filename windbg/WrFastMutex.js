"use strict";

// WrFastMutex.js - a WinDbg JavaScript extension that answers, with nothing but WinDbg, the
// question MEX's !WrFastMutex answers in the TestDriver walk-through: which threads wait with
// reason WrFastMutex, on which FAST_MUTEX, who owns it, and what its Count / Contention /
// OldIrql say.
//
//   .scriptload C:\path\to\repo\windbg\WrFastMutex.js
//   !WrFastMutexJs                        table of waiters + one summary per mutex
//   dx @$scriptContents.WrFastMutexJs()   the same rows as data-model objects
//   !WrFastMutexWalk [1]                  the same table, then the seed's walk-through
//                                         (!thread or, with 1, MEX's !mex.t, .thread,
//                                         .frame /r, dt nt!_FAST_MUTEX), from one walk
//
// A thread in State Waiting (5) with WaitReason WrFastMutex (34, Windows 10 1607 .. 11) waits
// on the KEVENT inside the FAST_MUTEX: WaitBlockList->Object is FAST_MUTEX.Event, 0x18 bytes
// into the mutex on x64.
//
// The data model throws late (on a field read, on a lazy collection's next()) when a dump
// lacks pages or nt symbols. Every read is guarded and counted, so an unreadable dump is
// reported as "Cannot tell ...", never as "No thread is waiting".
//
// The pure logic (addresses as 16-digit hex strings: numbers hold 53 bits) never touches
// `host`; the adapter below it is the only code that reads the data model. Both are tested
// with node (windbg/test/) through the exports at the end, which WinDbg (no `module`) skips.
// The file keeps to ECMAScript 2015, the level WinDbg's provider documents.

var KTHREAD_STATE_WAITING = 5;           // _KTHREAD_STATE::Waiting
var WAIT_REASON_WR_FAST_MUTEX = 34;      // _KWAIT_REASON::WrFastMutex (0x22)
var FAST_MUTEX_EVENT_OFFSET = 0x18;      // FIELD_OFFSET(FAST_MUTEX, Event) on x64
var MAX_FRAMES = 24;
var SYSTEM_PID = 4;                      // the System process: PsCreateSystemThread's threads run in it

// ---------------------------------------------------------------------------
// Pure logic
// ---------------------------------------------------------------------------

function pad(text, width, right, ch) {
    var s = String(text);
    var fill = (ch || " ").repeat(Math.max(0, width - s.length));
    return right ? fill + s : s + fill;
}

// Any spelling of a 64-bit address ("ffff9709`ac3d4f38", "0xFFFF9709AC3D4F38", a number)
// -> 16 lowercase hex digits.
function normalizeHex(value) {
    if (value === null || value === undefined) {
        throw new Error("normalizeHex: no value");
    }
    if (typeof value === "number" && !(value >= 0 && Number.isSafeInteger(value))) {
        throw new Error("normalizeHex: " + value + " is not an address");
    }
    var s = (typeof value === "number" ? value.toString(16) : String(value).trim().toLowerCase())
        .replace(/`/g, "").replace(/^0x/, "");
    if (!/^[0-9a-f]{1,16}$/.test(s)) {
        throw new Error("normalizeHex: '" + value + "' is not a 64-bit hex value");
    }
    return pad(s, 16, true, "0");
}

// address + delta, modulo 2^64; |delta| < 2^32.
function hexAdd(value, delta) {
    var hex = normalizeHex(value);
    var lo = parseInt(hex.substring(8), 16) + delta;
    var carry = Math.floor(lo / 0x100000000);
    var hi = (parseInt(hex.substring(0, 8), 16) + carry + 0x100000000) % 0x100000000;
    return pad(hi.toString(16), 8, true, "0") + pad((lo - carry * 0x100000000).toString(16), 8, true, "0");
}

function hexSub(value, delta) {
    return hexAdd(value, -delta);
}

function isNullHex(value) {
    return normalizeHex(value) === "0000000000000000";
}

// "ffff9709`ac3d4f20": how the debugger prints 64-bit pointers (MEX tables and !thread take
// the plain 16 digits of normalizeHex).
function formatPointer(value) {
    var hex = normalizeHex(value);
    return hex.substring(0, 8) + "`" + hex.substring(8);
}

// Count of a FAST_MUTEX: bit 0 is the lock bit (1 = free), bit 1 says a waiter has been woken,
// every waiter adds 4. Seed: Count 0n8 = held, nobody woken, 2 waiters.
function decodeFastMutexCount(count) {
    var c = Number(count) >>> 0;
    return { count: Number(count), held: (c & 1) === 0, waiterWoken: (c & 2) !== 0, waiters: Math.floor(c / 4) };
}

// A data-model frame ("nt!KiSwapContext + 0x76 [Switch To]", "nt!KiSwapContext+0x76
// (fffff803`27c6d645)", "TestDriver!...+0x6a [C:\TestDriver\src\seed.rs @ 108]", the trailers in
// any order) -> "module!symbol+0xoff".
var FRAME_TRAILERS = /(\s*(\[Switch To\]|\([0-9a-fA-F`x]+\)|\[[^\]]*\s@\s*\d+\]))+\s*$/;

function normalizeFrame(text) {
    return String(text).replace(FRAME_TRAILERS, "").replace(/\s*\+\s*/g, "+").trim();
}

// Index of the frame that asked for the wait (ExAcquireFastMutex in the seed: frame 5), the
// first below the blocking machinery nt!Ki*, Ke*, Exp*; -1 if there is none.
function findWaitFrameIndex(frames) {
    for (var i = 0; i < frames.length; i++) {
        if (!/^nt!(Ki|Ke|Exp)/.test(normalizeFrame(frames[i]))) {
            return i;
        }
    }
    return -1;
}

// First frame above the wait function that is not in nt: the driver code that called
// ExAcquireFastMutex ("TestDriver+0x113d" without symbols).
function findCallerFrame(frames, waitIndex) {
    for (var i = waitIndex + 1; i < frames.length; i++) {
        var f = normalizeFrame(frames[i]);
        if (f.indexOf("nt!") !== 0) {
            return f;
        }
    }
    return "";
}

// The text of anything thrown (the data model throws Error objects; be ready for others).
function errorText(e) {
    if (e === null || e === undefined) {
        return "unknown error";
    }
    return typeof e.message === "string" && e.message.length > 0 ? e.message : String(e);
}

function tryRead(read, fallback) {
    try {
        return read();
    } catch (e) {
        return fallback;
    }
}

// threads: records { processName, pid, thread, tid, state, waitReason, waitObject (null if
// unknown), frames }. readFastMutex(mutexHex) -> { count, owner, contention, oldIrql }; when it
// throws (the mutex's page is not in the dump) the waiters are still reported, with
// mutexReadError set and the fields null. options: { eventOffset } (default 0x18).
// -> one row per waiting thread, in the order of the records.
function findFastMutexWaiters(threads, readFastMutex, options) {
    var eventOffset = (options && options.eventOffset !== undefined) ? options.eventOffset : FAST_MUTEX_EVENT_OFFSET;
    var cache = {};
    var rows = [];
    for (var t of threads) {
        if (Number(t.state) !== KTHREAD_STATE_WAITING || Number(t.waitReason) !== WAIT_REASON_WR_FAST_MUTEX ||
            t.waitObject === null || t.waitObject === undefined || isNullHex(t.waitObject)) {
            continue;
        }
        var event = normalizeHex(t.waitObject);
        var mutex = hexSub(event, eventOffset);
        if (!cache.hasOwnProperty(mutex)) {
            try {
                var m = readFastMutex(mutex);
                cache[mutex] = { count: Number(m.count), owner: normalizeHex(m.owner), contention: Number(m.contention),
                    oldIrql: Number(m.oldIrql), readError: null };
            } catch (e) {
                cache[mutex] = { count: null, owner: null, contention: null, oldIrql: null, readError: errorText(e) };
            }
        }
        var fm = cache[mutex];
        var frames = (t.frames || []).map(normalizeFrame);
        var waitIndex = findWaitFrameIndex(frames);
        var threadHex = normalizeHex(t.thread);
        rows.push({
            processName: String(t.processName), pid: Number(t.pid), thread: threadHex, tid: Number(t.tid),
            state: "Waiting", waitReason: "WrFastMutex", event: event, mutex: mutex,
            owner: fm.owner, count: fm.count, contention: fm.contention, oldIrql: fm.oldIrql, mutexReadError: fm.readError,
            ownsMutex: fm.owner !== null && fm.owner === threadHex,
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
    for (var r of rows) {
        if (!byMutex.hasOwnProperty(r.mutex)) {
            byMutex[r.mutex] = { mutex: r.mutex, event: r.event, owner: r.owner, count: r.count,
                decoded: r.mutexReadError === null ? decodeFastMutexCount(r.count) : null,
                contention: r.contention, oldIrql: r.oldIrql, readError: r.mutexReadError,
                rows: [], ownerRow: null };
            order.push(r.mutex);
        }
        var s = byMutex[r.mutex];
        s.rows.push(r);
        if (r.ownsMutex) {
            s.ownerRow = r;
        }
    }
    return order.map((k) => byMutex[k]);
}

var FULL_DUMP_ADVICE = "take a Full live kernel memory dump (Task Manager: \"Full live kernel memory dump\"), " +
    "not a partial or kernel-stacks-only one";
var SYMBOL_ADVICE = "check the nt symbols (.symfix+ C:\\Symbols, .reload /f nt, then lm m nt must say \"pdb symbols\")";

function verdictFor(s) {
    var others = s.rows.length - (s.ownerRow ? 1 : 0);
    if (s.readError !== null) {
        return "cannot read the fast mutex " + formatPointer(s.mutex) + " (" + s.readError + "): " +
            s.rows.length + " thread(s) wait on it, but its owner, Count and Contention are unknown. " +
            "Its page is missing from the dump: " + FULL_DUMP_ADVICE + ".";
    }
    if (isNullHex(s.owner)) {
        return "no owner recorded: the mutex may be in the middle of a hand-over; look again at Count and the waiters' stacks.";
    }
    if (s.ownerRow) {
        return "the owner " + formatPointer(s.owner) + " is itself waiting on the fast mutex it owns: " +
            "recursive acquisition, a self-deadlock that nothing can end. " + others + " other thread(s) wait behind it.";
    }
    return "the owner " + formatPointer(s.owner) + " is not waiting on this mutex; run !thread " + s.owner +
        " to see what it is doing. " + others + " thread(s) wait behind it.";
}

// What the walk over the data model could not read (coverage: see newCoverage)
// -> { complete, problems: [text] }.
function describeCoverage(coverage) {
    if (!coverage) {
        throw new Error("describeCoverage: no coverage given");
    }
    var problems = [];
    if (coverage.processListError !== null && coverage.processListError !== undefined) {
        problems.push("the process list stopped after " + coverage.processesSeen + " process(es) (" +
            coverage.processListError + ")");
    }
    if (!coverage.systemFound) {
        problems.push("the System process (PID 4), where the driver's threads run, was not found");
    }
    for (var cut of coverage.threadListsCut) {
        problems.push("the thread list of " + cut);
    }
    if (coverage.threadsUnreadable > 0) {
        problems.push("cannot read " + coverage.threadsUnreadable + " thread(s)");
    }
    if (coverage.waitBlocksUnreadable > 0) {
        problems.push("cannot read the wait block of " + coverage.waitBlocksUnreadable + " WrFastMutex waiter(s)");
    }
    if (coverage.threadsRead === 0) {
        problems.push("no thread could be read at all");
    }
    return { complete: problems.length === 0, problems: problems };
}

// The columns of MEX's !WrFastMutex table; PID and Id are right-aligned.
var COLUMNS = ["Process", "PID", "Thread", "Id", "State", "Reason", "Fast Mutex", "Owning Thread", "Wait Function", "Caller"];
var WIDTHS = [7, 3, 16, 3, 7, 11, 16, 16, 27, 6];

function formatTableLine(cells) {
    return cells.map((text, i) => pad(text, WIDTHS[i], i === 1 || i === 3)).join(" ").replace(/\s+$/, "");
}

// Lines of the report. Three endings, and only the first says that nobody waits:
//   "No thread is waiting with reason WrFastMutex (34)."    everything was read, no waiter
//   "Cannot tell whether any thread waits ...: <why>. ..."  no waiter found, not everything read
//   "Incomplete: <why> ..."                                 waiters found, others may be missing
// scripts/Invoke-DumpAnalysis.ps1 picks these lines, and the Verdict lines, out of the log.
function formatReport(rows, coverage) {
    var covered = describeCoverage(coverage);
    var advice = SYMBOL_ADVICE + ", or " + FULL_DUMP_ADVICE + ".";
    if (rows.length === 0) {
        return [covered.complete
            ? "No thread is waiting with reason WrFastMutex (" + WAIT_REASON_WR_FAST_MUTEX + ")."
            : "Cannot tell whether any thread waits on a fast mutex: " + covered.problems.join("; ") +
                ". This is not a \"no deadlock\" answer: " + advice];
    }
    var lines = [formatTableLine(COLUMNS), formatTableLine(WIDTHS.map((w) => "=".repeat(w)))];
    for (var r of rows) {
        lines.push(formatTableLine([r.processName, r.pid.toString(16), r.thread, r.tid.toString(16), r.state,
            r.waitReason, r.mutex, r.owner === null ? "?" : r.owner, r.waitFunction, r.caller]));
    }
    lines.push("Count: " + rows.length);
    for (var s of summarizeMutexes(rows)) {
        var d = s.decoded;
        var offset = s.mutex.substring(0, 8) === s.event.substring(0, 8)
            ? (parseInt(s.event.substring(8), 16) - parseInt(s.mutex.substring(8), 16)).toString(16) : "?";
        lines.push("", "Fast mutex " + formatPointer(s.mutex) + " (waited-on event " + formatPointer(s.event) +
            " = mutex + 0x" + offset + ")");
        if (d === null) {
            lines.push("   Count      : ? (unreadable)", "   Owner      : ? (unreadable)");
        } else {
            lines.push("   Count      : 0n" + s.count + "  (" + (d.held ? "held: lock bit 0 clear" : "free: lock bit 0 set") +
                ", " + d.waiters + " waiter(s) = Count >> 2" + (d.waiterWoken ? ", a waiter was woken" : "") + ")",
                "   Owner      : " + formatPointer(s.owner),
                "   Contention : " + s.contention,
                "   OldIrql    : " + s.oldIrql);
        }
        lines.push("   Waiters    : " + s.rows.map((w) => w.thread + " (Id " + w.tid.toString(16) + ")").join(", "),
            "Verdict: " + verdictFor(s));
    }
    if (!covered.complete) {
        lines.push("", "Incomplete: " + covered.problems.join("; ") +
            ". Waiters among what could not be read are missing above: " + advice);
    }
    return lines;
}

// The seed's walk-through as debugger commands, for every fast mutex found: the owner first
// (the seed's !mex.t <owner>, .frame /r 0n5, dt nt!_FAST_MUTEX), then any other waiter.
// useMex: !mex.t instead of !thread. Plain ".thread <thread>": its /p and /r switches are for
// live debugging only, and the walk usually runs on a dump.
function planWalkthrough(rows, useMex) {
    var threadCmd = useMex ? "!mex.t " : "!thread ";
    var commands = [];
    for (var s of summarizeMutexes(rows)) {
        var first = s.ownerRow || s.rows[0];
        commands.push(threadCmd + first.thread, ".thread " + first.thread);
        if (first.waitFrameIndex >= 0) {
            commands.push(".frame /r 0n" + first.waitFrameIndex);
        }
        commands.push("dt nt!_FAST_MUTEX " + s.mutex);
        for (var w of s.rows) {
            if (w.thread !== first.thread) {
                commands.push(threadCmd + w.thread);
            }
        }
        if (!s.ownerRow && s.owner !== null && !isNullHex(s.owner)) {
            commands.push(threadCmd + s.owner);
        }
    }
    return commands.length > 0 ? commands.concat([".thread"]) : commands;
}

// ---------------------------------------------------------------------------
// WinDbg adapter: the only code that touches `host`
// ---------------------------------------------------------------------------
// As Microsoft documents the data model: 64-bit values are Int64 objects; a pointer has
// .address, .isNull and .dereference(); collections have [Symbol.iterator]; one-dimensional
// indexables take object[index], others getValueAt(...); host.memory.readMemoryValues
// throws when the memory cannot be read.

// A 64-bit value (host.Int64, a number, a pointer or location object) -> 16 hex digits.
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

// Calls visit(item) for each item of a data-model collection; the collection's own errors
// (reading it, its iterator, each lazy next()) never escape, visit's do. visit returning
// false stops early, calling the iterator's return() as for-of's break would.
// -> { count: items visited, error: text or null }
function forEachGuarded(getCollection, visit) {
    var iterator;
    var count = 0;
    try {
        iterator = getCollection()[Symbol.iterator]();
    } catch (e) {
        return { count: 0, error: errorText(e) };
    }
    for (;;) {
        var step;
        try {
            step = iterator.next();
        } catch (e) {
            return { count: count, error: errorText(e) };
        }
        if (step.done) {
            return { count: count, error: null };
        }
        count++;
        if (visit(step.value) === false) {
            tryRead(() => typeof iterator.return === "function" && iterator.return());
            return { count: count, error: null };
        }
    }
}

// Event's offset from the symbols' _FAST_MUTEX; getModuleType gives null when they lack it
// (as Microsoft's ImageInfo.js sample checks), and then the x64 layout holds.
function eventOffsetFromSymbols() {
    var off = tryRead(() => host.getModuleType("nt", "_FAST_MUTEX").fields.Event.offset);
    return off === undefined || off === null ? FAST_MUTEX_EVENT_OFFSET : Number(off);
}

// The process with this PID looked up by its index, when the collection allows it.
function lookupProcess(processes, pid) {
    var p = tryRead(() => (typeof processes.getValueAt === "function" ? processes.getValueAt(pid) : processes[pid]));
    return p !== null && p !== undefined && tryRead(() => Number(p.Id)) === pid ? p : null;
}

function newCoverage() {
    return { processesSeen: 0, processListError: null, systemFound: false, threadsRead: 0, threadsUnreadable: 0,
        threadListsCut: [], waitBlocksUnreadable: 0 };
}

// One thread -> a plain record for the pure logic. Throws when the thread's kernel object
// cannot be read (no nt symbols, page not in the dump).
function readThreadRecord(thread, processName, pid, coverage) {
    var ko = thread.KernelObject;
    var tcb = ko.Tcb;
    var record = {
        processName: processName, pid: pid, thread: hostValueToHex(ko.address !== undefined ? ko.address : ko.targetLocation),
        tid: Number(thread.Id), state: Number(tcb.State), waitReason: Number(tcb.WaitReason), waitObject: null, frames: []
    };
    if (record.state === KTHREAD_STATE_WAITING && record.waitReason === WAIT_REASON_WR_FAST_MUTEX) {
        try {
            var wbl = tcb.WaitBlockList;
            if (!wbl.isNull) {
                record.waitObject = hostValueToHex(wbl.dereference().Object);
            }
        } catch (e) {
            coverage.waitBlocksUnreadable++;
        }
        // the frames read before a failing step are kept: the wait function is near the top
        forEachGuarded(() => thread.Stack.Frames, (frame) => {
            if (record.frames.length >= MAX_FRAMES) {
                return false;
            }
            record.frames.push(String(frame.toString()));
        });
    }
    return record;
}

function collectProcessThreads(process, records, coverage) {
    var processName = tryRead(() => String(process.Name), "?");
    var pid = tryRead(() => Number(process.Id), -1);
    coverage.systemFound = coverage.systemFound || pid === SYSTEM_PID;
    var walked = forEachGuarded(() => process.Threads, (thread) => {
        try {
            records.push(readThreadRecord(thread, processName, pid, coverage));
            coverage.threadsRead++;
        } catch (e) {
            coverage.threadsUnreadable++;
        }
    });
    if (walked.error !== null) {
        coverage.threadListsCut.push(processName + " (PID " + pid + ") stopped after " + walked.count +
            " thread(s) (" + walked.error + ")");
    }
}

// Every thread of every process in `session` (host.currentSession), read once, the System
// process first (it runs the driver's threads, so a process list that breaks later still
// has them) -> { records, coverage }.
function collectThreadRecords(session) {
    var records = [];
    var coverage = newCoverage();
    var system = tryRead(() => lookupProcess(session.Processes, SYSTEM_PID), null);
    if (system !== null) {
        collectProcessThreads(system, records, coverage);
    }
    var walked = forEachGuarded(() => session.Processes, (process) => {
        if (system === null || tryRead(() => Number(process.Id), -1) !== SYSTEM_PID) {
            collectProcessThreads(process, records, coverage);
        }
    });
    coverage.processesSeen = walked.count;
    coverage.processListError = walked.error;
    return { records: records, coverage: coverage };
}

// The fields of the nt!_FAST_MUTEX at mutexHex, through the symbols' type; without it
// (createTypedObject throws), by raw reads. Throws when the memory cannot be read.
function readFastMutexFromTarget(mutexHex) {
    var typedError;
    try {
        var m = host.createTypedObject(host.parseInt64(normalizeHex(mutexHex), 16), "nt", "_FAST_MUTEX");
        // createTypedObject reads nothing yet: these field reads are what can fail
        return { count: Number(m.Count), owner: hostValueToHex(m.Owner), contention: Number(m.Contention),
            oldIrql: Number(m.OldIrql) };
    } catch (e) {
        typedError = errorText(e);
    }
    try {
        return readFastMutexRaw(mutexHex);
    } catch (e) {
        throw new Error(typedError + "; raw read: " + errorText(e));
    }
}

// The x64 offsets dt nt!_FAST_MUTEX prints in the seed: +0x000 Count, +0x008 Owner,
// +0x010 Contention, +0x030 OldIrql.
function readFastMutexRaw(mutexHex) {
    function read(offset, size, signed) {
        return host.memory.readMemoryValues(host.parseInt64(hexAdd(mutexHex, offset), 16), 1, size, signed)[0];
    }
    return { count: Number(read(0x0, 4, true)), owner: hostValueToHex(read(0x8, 8, false)),
        contention: Number(read(0x10, 4, false)), oldIrql: Number(read(0x30, 4, false)) };
}

function log(line) {
    host.diagnostics.debugLog(line + "\n");
}

function WaiterRow(row) {
    Object.assign(this, row);
}

WaiterRow.prototype.toString = function () {
    return this.thread + " waits on fast mutex " + this.mutex + " owned by " + (this.owner === null ? "?" : this.owner);
};

// One walk over the data model -> the printed report; returns the rows.
function gatherAndReport() {
    var collected;
    try {
        collected = collectThreadRecords(host.currentSession);
    } catch (e) {
        collected = { records: [], coverage: newCoverage() };
        collected.coverage.processListError = errorText(e);
    }
    var rows = findFastMutexWaiters(collected.records, readFastMutexFromTarget, { eventOffset: eventOffsetFromSymbols() });
    formatReport(rows, collected.coverage).forEach(log);
    return rows;
}

// !WrFastMutexJs / dx @$scriptContents.WrFastMutexJs()
function WrFastMutexJs() {
    return gatherAndReport().map((r) => new WaiterRow(r));
}

// !WrFastMutexWalk [useMex] / dx @$scriptContents.WrFastMutexWalk(1): the table of
// !WrFastMutexJs, then the walk-through, from the same single walk.
function WrFastMutexWalk(useMex) {
    var rows = gatherAndReport();
    var commands = planWalkthrough(rows, Boolean(useMex && Number(useMex) !== 0));
    if (commands.length === 0) {
        log("Nothing to walk through.");
        return [];
    }
    var control = host.namespace.Debugger.Utility.Control;
    for (var command of commands) {
        log("");
        log("kd> " + command);
        var shown = forEachGuarded(() => control.ExecuteCommand(command), (line) => log(String(line)));
        if (shown.error !== null) {
            log("(" + command + " failed after " + shown.count + " line(s): " + shown.error + ")");
        }
    }
    return rows.map((r) => new WaiterRow(r));
}

function initializeScript() {
    // 1.2, as Microsoft's samples (CodeFlow.js, SynTypes.js) claim: nothing here needs a later API.
    return [
        new host.apiVersionSupport(1, 2),
        new host.functionAlias(WrFastMutexJs, "WrFastMutexJs"),
        new host.functionAlias(WrFastMutexWalk, "WrFastMutexWalk")
    ];
}

// node only (WinDbg has no `module`): export for windbg/test/.
if (typeof module !== "undefined" && module.exports) {
    module.exports = { KTHREAD_STATE_WAITING, WAIT_REASON_WR_FAST_MUTEX, FAST_MUTEX_EVENT_OFFSET, normalizeHex, hexAdd,
        hexSub, formatPointer, decodeFastMutexCount, normalizeFrame, findWaitFrameIndex, findCallerFrame,
        findFastMutexWaiters, summarizeMutexes, describeCoverage, formatReport, planWalkthrough, hostValueToHex,
        forEachGuarded, eventOffsetFromSymbols, collectThreadRecords, readFastMutexFromTarget, WrFastMutexJs,
        WrFastMutexWalk, initializeScript };
}

"use strict";
// A fake of the WinDbg JavaScript data model: the members windbg/WrFastMutex.js
// touches, with the behaviour Microsoft documents for them ("Native Debugger
// Objects in JavaScript Extensions" and its "Debugger Object Details" and
// "Type Objects" pages), including the awkward parts the extension must survive:
//   - 64-bit values arrive as library Int64 objects (here FakeInt64), not numbers;
//     converting one above 2^53 to a number throws;
//   - pointer objects carry .address (the pointer value), .isNull, .dereference();
//   - 8/16/32-bit fields arrive as JavaScript numbers;
//   - host.createTypedObject(location, module, type) reads nothing: a field read
//     is what reads target memory, and it throws "Unable to read memory at
//     Address ..." for a page the dump does not hold (partial or kernel-stacks
//     live dumps);
//   - host.memory.readMemoryValues(location, count, size, isSigned) reads raw
//     memory (64-bit elements as Int64) and throws the same way;
//   - collections (Processes, Threads, Stack.Frames, ExecuteCommand's output) are
//     lazy iterators: each next() reads the target and may throw part-way;
//   - without nt symbols host.getModuleType returns null (as Microsoft's
//     WinDbg-Samples ImageInfo.js expects), createTypedObject cannot resolve the
//     type, and every thread's KernelObject throws;
//   - host.getModuleType(module, type).fields.<name>.offset,
//     host.diagnostics.debugLog(...), host.namespace.Debugger.Utility.Control.ExecuteCommand(cmd),
//     new host.apiVersionSupport(major, minor), new host.functionAlias(fn, name).
// It models the documentation, not WinDbg itself: what it cannot show is listed
// in docs/windows.md ("Not run: what a first Windows run must confirm").

class FakeInt64 {
    // hex: 1..16 hex digits; style: "0x" (default) or "bare" for toString(16)
    constructor(hex, style) {
        const h = String(hex).toLowerCase().replace(/`/g, "").replace(/^0x/, "");
        if (!/^[0-9a-f]{1,16}$/.test(h)) {
            throw new Error("FakeInt64: bad hex " + hex);
        }
        this.hex = h.replace(/^0+(?=.)/, "");
        this.style = style || "0x";
    }
    toString(radix) {
        if (radix === 16) {
            return this.style === "bare" ? this.hex : "0x" + this.hex;
        }
        // the real type prints in the debugger's default radix; tests only need hex
        return "0x" + this.hex;
    }
    valueOf() {
        // like the real type: converting a value above 2^53 to a number throws
        const n = parseInt(this.hex, 16);
        if (n > Number.MAX_SAFE_INTEGER) {
            throw new Error("64 bit value loses precision on conversion to number");
        }
        return n;
    }
}

function hex16(value) {
    return (value instanceof FakeInt64 ? value.hex : String(value).replace(/^0x/, "")).padStart(16, "0");
}

function memoryError(address) {
    return new Error("Unable to read memory at Address 0x" + hex16(address).replace(/^0+(?=.)/, ""));
}

// A lazy collection: items are produced one next() at a time; with throwAt = k
// the k-th next() (0-based) throws instead, as a real iterator does when the
// list entry it follows is not in the dump. counter.walks counts the iterators
// asked for.
function lazy(items, throwAt, what, counter) {
    return {
        [Symbol.iterator]() {
            if (counter) {
                counter.walks++;
            }
            let i = 0;
            return {
                next() {
                    if (throwAt !== undefined && throwAt !== null && i === throwAt) {
                        throw memoryError("ffffdead" + String(i).padStart(8, "0"));
                    }
                    if (i >= items.length) {
                        return { done: true, value: undefined };
                    }
                    const value = typeof items[i] === "function" ? items[i]() : items[i];
                    i++;
                    return { done: false, value };
                },
                return() {
                    return { done: true, value: undefined };
                }
            };
        },
        toString() {
            return what || "[lazy collection]";
        }
    };
}

// Target memory: a sparse byte map. Writes go in with write(); reads of any
// byte not written throw memoryError.
class FakeMemory {
    constructor() {
        this.bytes = new Map();
    }
    static key(address) {
        return BigInt("0x" + hex16(address));
    }
    write(address, byteArray) {
        const base = FakeMemory.key(address);
        byteArray.forEach((b, i) => this.bytes.set(base + BigInt(i), b & 0xff));
    }
    read(address, length) {
        const base = FakeMemory.key(address);
        const out = [];
        for (let i = 0; i < length; i++) {
            const k = base + BigInt(i);
            if (!this.bytes.has(k)) {
                throw memoryError((base + BigInt(i)).toString(16));
            }
            out.push(this.bytes.get(k));
        }
        return out;
    }
    // little-endian value of `size` bytes; 8-byte values as FakeInt64
    readValue(address, size, signed, style) {
        const b = this.read(address, size);
        let v = 0n;
        for (let i = size - 1; i >= 0; i--) {
            v = (v << 8n) | BigInt(b[i]);
        }
        if (size === 8) {
            return new FakeInt64(v.toString(16), style);
        }
        if (signed && (v & (1n << BigInt(size * 8 - 1)))) {
            v -= 1n << BigInt(size * 8);
        }
        return Number(v);
    }
}

function leBytes(value, size) {
    let v = BigInt.asUintN(size * 8, BigInt(typeof value === "string" ? "0x" + hex16(value) : value));
    const out = [];
    for (let i = 0; i < size; i++) {
        out.push(Number(v & 0xffn));
        v >>= 8n;
    }
    return out;
}

// nt!_FAST_MUTEX on x64, as dt nt!_FAST_MUTEX shows it in the seed.
const FAST_MUTEX_FIELDS = {
    Count: { offset: 0x0, size: 4, signed: true },
    Owner: { offset: 0x8, size: 8, pointer: true },
    Contention: { offset: 0x10, size: 4 },
    Event: { offset: 0x18, size: 0x18 },
    OldIrql: { offset: 0x30, size: 4 }
};

// Write a FAST_MUTEX at `address` into memory (0x38 bytes): each field of FAST_MUTEX_FIELDS
// from m's property of the same name in camelCase (Count -> m.count); the Event stays zero.
function writeFastMutex(memory, address, m) {
    const bytes = new Array(0x38).fill(0);
    for (const name of Object.keys(FAST_MUTEX_FIELDS)) {
        if (name === "Event") {
            continue;
        }
        const f = FAST_MUTEX_FIELDS[name];
        const value = m[name.charAt(0).toLowerCase() + name.slice(1)];
        leBytes(value, f.size).forEach((b, i) => { bytes[f.offset + i] = b; });
    }
    memory.write(address, bytes);
}

function pointer(hex, target, style) {
    const value = new FakeInt64(hex, style);
    return {
        address: value,
        isNull: /^0*$/.test(value.hex),
        dereference() {
            if (typeof target === "function") {
                return target();
            }
            if (target === undefined) {
                throw memoryError(hex);
            }
            return target;
        }
    };
}

// One Stack.Frames entry. Its display string is the text given; with a source
// position (file, line) it carries it as the k command prints one,
// "module!symbol+0xoff [file @ line]", before a trailing "[Switch To]" link. How
// the real data model prints a frame with line information was not seen (docs/windows.md,
// "first run must confirm"); the extension strips the position either way.
function makeFrame(text, source) {
    let display = text;
    if (source) {
        const position = " [" + source[0] + " @ " + source[1] + "]";
        const link = / \[Switch To\]$/.exec(text);
        display = link ? text.slice(0, link.index) + position + link[0] : text + position;
    }
    return { toString: () => display };
}

// spec of one thread:
// { address, id, state, waitReason, waitObject (event address or null), frames: [string],
//   sources: [null or [file, line]] per frame (a PDB with line numbers),
//   unreadable (its KTHREAD is not in the dump: field reads throw),
//   waitBlockUnreadable (the wait block's page is missing), framesThrowAt (k) }
function makeThread(spec, style, symbols) {
    const unreadable = () => {
        if (spec.unreadable) {
            throw memoryError(spec.address);
        }
    };
    const waitBlock = spec.waitObject === null || spec.waitObject === undefined
        ? pointer("0", undefined, style)
        : pointer(spec.waitBlock || "ffffffffdead0000", () => ({
            get Object() {
                if (spec.waitBlockUnreadable) {
                    throw memoryError(spec.waitBlock || "ffffffffdead0000");
                }
                return pointer(spec.waitObject, undefined, style);
            }
        }), style);
    const tcb = {
        get State() { unreadable(); return spec.state; },
        get WaitReason() { unreadable(); return spec.waitReason; },
        get WaitBlockList() { unreadable(); return waitBlock; }
    };
    const kernelObject = {
        address: new FakeInt64(spec.address, style),
        get Tcb() { return tcb; }
    };
    const frames = (spec.frames || []).map((f, i) => makeFrame(f, spec.sources ? spec.sources[i] : null));
    return {
        Id: spec.id,
        get KernelObject() {
            if (symbols === "none") {
                throw new Error("Unable to find type 'nt!_ETHREAD': no symbols for nt");
            }
            return kernelObject;
        },
        get Stack() {
            return { Frames: lazy(frames, spec.framesThrowAt, "Frames") };
        }
    };
}

// dump: { processes: [{ name, id, threads: [spec], threadsThrowAt }], fastMutexes: { hex16: fields },
//         commandOutput: (cmd) => [lines], commandThrowAt: k }
// options:
//   int64Style      "0x" (default) or "bare": how Int64.toString(16) prints
//   symbols         "full" (default), "no-fast-mutex-type" (the symbols lack _FAST_MUTEX),
//                   "none" (no nt symbols at all)
//   unreadable      [hex16 addresses of fast mutexes whose page is not in the dump]
//   processesThrowAt  k: the process list's k-th next() throws
//   processIndex    "bracket" (default: Processes[4], how Microsoft's "Indexability" says an
//                   ordinal indexer reaches JavaScript), "getValueAt" (the method the JavaScript
//                   provider projects for indexers by name or in more dimensions) or "none"
//   sessionThrows   reading host.currentSession throws
function makeHost(dump, options) {
    const opts = options || {};
    const style = opts.int64Style || "0x";
    const symbols = opts.symbols || "full";
    const log = [];
    const commands = [];
    const typedReads = [];
    const rawReads = [];
    const memory = new FakeMemory();
    const unreadableMutexes = new Set(opts.unreadable || []);
    for (const key of Object.keys(dump.fastMutexes)) {
        if (!unreadableMutexes.has(key)) {
            writeFastMutex(memory, key, dump.fastMutexes[key]);
        }
    }
    const processObjects = dump.processes.map((p) => ({
        Name: p.name,
        Id: p.id,
        get Threads() {
            return lazy(p.threads.map((t) => () => makeThread(t, style, symbols)), p.threadsThrowAt,
                "Threads of " + p.name);
        }
    }));
    const processList = { walks: 0 };
    const processes = lazy(processObjects, opts.processesThrowAt, "Processes", processList);
    const indexMode = opts.processIndex || "bracket";
    if (indexMode === "getValueAt") {
        processes.getValueAt = (pid) => {
            const p = processObjects.find((x) => x.Id === pid);
            if (!p) {
                throw new RangeError("no process with id " + pid);
            }
            return p;
        };
    } else if (indexMode === "bracket") {
        for (const p of processObjects) {
            processes[p.Id] = p;
        }
    } else if (indexMode !== "none") {
        throw new Error("makeHost: processIndex must be bracket, getValueAt or none, not " + indexMode);
    }
    const session = { Processes: processes };
    function typedObject(location, typeName) {
        const fields = FAST_MUTEX_FIELDS;
        const obj = { targetLocation: location, address: location };
        for (const name of Object.keys(fields)) {
            const f = fields[name];
            const at = (BigInt("0x" + location.hex) + BigInt(f.offset)).toString(16);
            Object.defineProperty(obj, name, {
                enumerable: true,
                get() {
                    if (name === "Event") {
                        return { targetLocation: new FakeInt64(at, style) };
                    }
                    const v = memory.readValue(at, f.size, f.signed, style);
                    return f.pointer ? pointer(v.hex, undefined, style) : v;
                }
            });
        }
        obj.typeName = typeName;
        return obj;
    }
    const host = {
        get currentSession() {
            if (opts.sessionThrows) {
                throw new Error("no current session");
            }
            return session;
        },
        diagnostics: {
            debugLog(...parts) {
                log.push(parts.map(String).join(""));
            }
        },
        parseInt64(text, radix) {
            if (radix !== 16) {
                throw new Error("fake parseInt64 only does radix 16");
            }
            return new FakeInt64(text, style);
        },
        getModuleType(moduleName, typeName) {
            if (moduleName !== "nt") {
                return null;
            }
            if (symbols === "none" || (symbols === "no-fast-mutex-type" && typeName === "_FAST_MUTEX")) {
                return null;
            }
            if (typeName !== "_FAST_MUTEX") {
                return null;
            }
            const fields = {};
            for (const name of Object.keys(FAST_MUTEX_FIELDS)) {
                fields[name] = { name, offset: FAST_MUTEX_FIELDS[name].offset };
            }
            return { name: "_FAST_MUTEX", fields };
        },
        createTypedObject(location, moduleName, typeName) {
            if (!(location instanceof FakeInt64)) {
                throw new Error("createTypedObject: expected an Int64 location");
            }
            if (moduleName !== "nt" || typeName !== "_FAST_MUTEX" || symbols !== "full") {
                throw new Error("Unable to find type '" + moduleName + "!" + typeName + "'");
            }
            typedReads.push(hex16(location));
            // nothing is read here: the field getters read memory, as the real object does
            return typedObject(location, typeName);
        },
        memory: {
            readMemoryValues(location, count, elementSize, isSigned) {
                if (!(location instanceof FakeInt64)) {
                    throw new Error("readMemoryValues: expected an Int64 location");
                }
                const size = elementSize || 1;
                rawReads.push([hex16(location), count, size]);
                const out = [];
                for (let i = 0; i < count; i++) {
                    const at = (BigInt("0x" + location.hex) + BigInt(i * size)).toString(16);
                    out.push(memory.readValue(at, size, Boolean(isSigned), style));
                }
                return out;
            }
        },
        namespace: {
            Debugger: {
                Utility: {
                    Control: {
                        ExecuteCommand(cmd) {
                            commands.push(cmd);
                            const lines = dump.commandOutput ? dump.commandOutput(cmd) : [];
                            return lazy(lines, dump.commandThrowAt ? dump.commandThrowAt(cmd) : undefined,
                                "output of " + cmd);
                        }
                    }
                }
            }
        },
        apiVersionSupport: function (major, minor) {
            this.kind = "apiVersionSupport";
            this.major = major;
            this.minor = minor;
        },
        functionAlias: function (fn, name) {
            this.kind = "functionAlias";
            this.fn = fn;
            this.name = name;
        }
    };
    return { host, log, commands, typedReads, rawReads, processList };
}

// Runs body(fake) with a fake host made from dump and options installed as the global `host`
// the extension reads, and puts the previous one back afterwards.
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

module.exports = { FakeInt64, pointer, lazy, makeFrame, makeThread, makeHost, withHost };

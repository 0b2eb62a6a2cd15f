"use strict";
// A small fake of the WinDbg JavaScript data model: just the members that
// windbg/WrFastMutex.js touches, with the behaviour Microsoft's documentation
// gives them ("Native Debugger Objects in JavaScript Extensions"):
//   - 64-bit values arrive as library Int64 objects (here FakeInt64), not numbers;
//   - pointer objects carry .address (the pointer value), .isNull, .dereference();
//   - 8/16/32-bit fields arrive as JavaScript numbers;
//   - host.createTypedObject(location, module, type), host.parseInt64(text, radix),
//     host.getModuleType(module, type).fields.<name>.offset,
//     host.diagnostics.debugLog(...), host.namespace.Debugger.Utility.Control.ExecuteCommand(cmd),
//     new host.apiVersionSupport(major, minor), new host.functionAlias(fn, name).
// It is a model of the documentation, not of WinDbg: what it cannot show is
// listed in README.md (Windows, "Testing from Linux").

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

function pointer(hex, target, style) {
    const value = new FakeInt64(hex, style);
    return {
        address: value,
        isNull: /^0*$/.test(value.hex),
        dereference() {
            if (target === undefined) {
                throw new Error("memory at " + hex + " is not in the fake dump");
            }
            return target;
        }
    };
}

// spec of one thread:
// { address, id, state, waitReason, waitObject (event address or null), frames: [string], unreadable }
function makeThread(spec, style) {
    const waitBlock = spec.waitObject === null || spec.waitObject === undefined
        ? pointer("0", undefined, style)
        : pointer(spec.waitBlock || "ffffffffdead0000", { Object: pointer(spec.waitObject, undefined, style) }, style);
    const kernelObject = {
        address: new FakeInt64(spec.address, style),
        Tcb: { State: spec.state, WaitReason: spec.waitReason, WaitBlockList: waitBlock }
    };
    const thread = {
        Id: spec.id,
        Stack: { Frames: (spec.frames || []).map((f) => ({ toString: () => f })) }
    };
    Object.defineProperty(thread, "KernelObject", {
        get() {
            if (spec.unreadable) {
                throw new Error("Unable to read memory at Address " + spec.address);
            }
            return kernelObject;
        }
    });
    return thread;
}

// dump: { processes: [{ name, id, threads: [spec] }], fastMutexes: { hex16: { count, owner, contention, oldIrql } },
//         commandOutput: (cmd) => [lines] }
function makeHost(dump, options) {
    const style = (options && options.int64Style) || "0x";
    const log = [];
    const commands = [];
    const typedReads = [];
    const session = {
        Processes: dump.processes.map((p) => ({
            Name: p.name,
            Id: p.id,
            Threads: p.threads.map((t) => makeThread(t, style))
        }))
    };
    const host = {
        currentSession: session,
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
            if (moduleName !== "nt" || typeName !== "_FAST_MUTEX") {
                throw new Error("no type " + moduleName + "!" + typeName);
            }
            return { fields: { Count: { offset: 0 }, Owner: { offset: 8 }, Contention: { offset: 0x10 },
                Event: { offset: 0x18 }, OldIrql: { offset: 0x30 } } };
        },
        createTypedObject(location, moduleName, typeName) {
            if (!(location instanceof FakeInt64)) {
                throw new Error("createTypedObject: expected an Int64 location");
            }
            if (moduleName !== "nt" || typeName !== "_FAST_MUTEX") {
                throw new Error("createTypedObject: unexpected type " + moduleName + "!" + typeName);
            }
            const key = location.hex.padStart(16, "0");
            typedReads.push(key);
            const m = dump.fastMutexes[key];
            if (!m) {
                throw new Error("memory at " + key + " is not in the fake dump");
            }
            return { Count: m.count, Owner: pointer(m.owner, undefined, style), Contention: m.contention,
                Event: {}, OldIrql: m.oldIrql };
        },
        namespace: {
            Debugger: {
                Utility: {
                    Control: {
                        ExecuteCommand(cmd) {
                            commands.push(cmd);
                            return dump.commandOutput ? dump.commandOutput(cmd) : [];
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
    return { host, log, commands, typedReads };
}

module.exports = { FakeInt64, pointer, makeThread, makeHost };

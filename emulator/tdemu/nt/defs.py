"""Constants of the NT kernel the components share (wdm.h / ntddk.h values)."""

PASSIVE_LEVEL, APC_LEVEL, DISPATCH_LEVEL, HIGH_LEVEL = 0, 1, 2, 15
IRQL_NAMES = {0: "PASSIVE_LEVEL", 1: "APC_LEVEL", 2: "DISPATCH_LEVEL", 15: "HIGH_LEVEL"}

# dispatcher object types (DISPATCHER_HEADER.Type)
NOTIFICATION_EVENT, SYNCHRONIZATION_EVENT, THREAD_OBJECT = 0, 1, 6

OBJ_KERNEL_HANDLE = 0x200
NT_CURRENT_THREAD = 0xFFFFFFFFFFFFFFFE
SYSTEM_PROCESS = 0xFFFF9709A54E7040  # the System process's EPROCESS (kernel-looking address)

WAIT_REASONS = {0: "Executive", 1: "FreePage", 2: "PageIn", 3: "PoolAllocation", 4: "DelayExecution",
                5: "Suspended", 6: "UserRequest", 7: "WrExecutive", 8: "WrFreePage", 9: "WrPageIn",
                10: "WrPoolAllocation", 11: "WrDelayExecution", 12: "WrSuspended", 13: "WrUserRequest",
                14: "WrEventPair", 15: "WrQueue", 16: "WrLpcReceive", 17: "WrLpcReply", 18: "WrVirtualMemory",
                19: "WrPageOut", 20: "WrRendezvous", 21: "WrKeyedEvent", 22: "WrTerminated",
                23: "WrProcessInSwap", 24: "WrCpuRateControl", 25: "WrCalloutStack", 26: "WrKernel",
                27: "WrResource", 28: "WrPushLock", 29: "WrMutex", 30: "WrQuantumEnd", 31: "WrDispatchInt",
                32: "WrPreempted", 33: "WrYieldExecution", 34: "WrFastMutex", 35: "WrGuardedMutex"}


def irql_name(irql: int) -> str:
    return IRQL_NAMES.get(irql, str(irql))

/* KeLeaveCriticalRegion (twice, from one call site) and KeLeaveGuardedRegion with no matching Enter:
 * one finding each, counted, and the count stays at 0 (the Enter/Leave pairs that follow balance). */
#include <ntddk.h>

static __declspec(noinline) __attribute__((disable_tail_calls)) void leave_critical(void)
{
    KeLeaveCriticalRegion();
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    UNREFERENCED_PARAMETER(driver);
    UNREFERENCED_PARAMETER(path);
    leave_critical();
    leave_critical();
    KeLeaveGuardedRegion();
    KeEnterCriticalRegion();
    KeLeaveCriticalRegion();
    KeEnterGuardedRegion();
    KeLeaveGuardedRegion();
    return STATUS_SUCCESS;
}

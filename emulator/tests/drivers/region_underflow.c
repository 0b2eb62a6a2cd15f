/* KeLeaveCriticalRegion and KeLeaveGuardedRegion with no matching Enter: each is a finding, and the
 * count stays at 0 (the Enter/Leave pair that follows is balanced). */
#include <ntddk.h>

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    UNREFERENCED_PARAMETER(driver);
    UNREFERENCED_PARAMETER(path);
    KeLeaveCriticalRegion();
    KeLeaveGuardedRegion();
    KeEnterCriticalRegion();
    KeLeaveCriticalRegion();
    KeEnterGuardedRegion();
    KeLeaveGuardedRegion();
    return STATUS_SUCCESS;
}

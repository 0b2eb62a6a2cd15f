/* Routines the kernel model does not have: an ERESOURCE (ntoskrnl.exe), an exported variable read
 * as data (KdDebuggerEnabled), a HAL routine (HalMakeBeep). -DUSE=1, 2 or 3 picks one. */
#include <ntddk.h>

NTHALAPI BOOLEAN NTAPI HalMakeBeep(ULONG Frequency);

#if USE == 1
static ERESOURCE g_resource;
#endif

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    UNREFERENCED_PARAMETER(driver);
    UNREFERENCED_PARAMETER(path);
    DbgPrint("before\n");
#if USE == 1
    ExInitializeResourceLite(&g_resource);
    KeEnterCriticalRegion();
    ExAcquireResourceExclusiveLite(&g_resource, TRUE);
#elif USE == 2
    if (KD_DEBUGGER_ENABLED)
        DbgPrint("debugger\n");
#else
    KeStallExecutionProcessor(10);
    HalMakeBeep(440);
#endif
    DbgPrint("after\n");
    return STATUS_SUCCESS;
}

/* T1 and T2 each wait for the other's thread object (a cycle); T3 waits for T1, outside the cycle. */
#include <ntddk.h>
#include "wdk_data.h"
#include "threads.h"

static PVOID g_t[3];

static VOID NTAPI T1(PVOID context)
{
    UNREFERENCED_PARAMETER(context);
    KeWaitForSingleObject(g_t[1], Executive, KernelMode, FALSE, NULL);
}

static VOID NTAPI T2(PVOID context)
{
    UNREFERENCED_PARAMETER(context);
    KeWaitForSingleObject(g_t[0], Executive, KernelMode, FALSE, NULL);
}

static VOID NTAPI T3(PVOID context)
{
    UNREFERENCED_PARAMETER(context);
    KeWaitForSingleObject(g_t[0], Executive, KernelMode, FALSE, NULL);
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    NTSTATUS status;
    UNREFERENCED_PARAMETER(driver);
    UNREFERENCED_PARAMETER(path);
    status = start_thread(T1, &g_t[0]);
    if (NT_SUCCESS(status))
        status = start_thread(T2, &g_t[1]);
    if (NT_SUCCESS(status))
        status = start_thread(T3, &g_t[2]);
    return status;
}

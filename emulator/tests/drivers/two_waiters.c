/* Two workers wait on one notification event that DriverUnload sets once, then DriverUnload waits
 * for both: one KeSetEvent of a notification event wakes every thread waiting on it. */
#include <ntddk.h>
#include "wdk_data.h"
#include "threads.h"

static KEVENT g_stop;
static PVOID g_workers[2];

static VOID NTAPI First(PVOID context)
{
    UNREFERENCED_PARAMETER(context);
    KeWaitForSingleObject(&g_stop, Executive, KernelMode, FALSE, NULL);
    DbgPrint("First woken\n");
}

static VOID NTAPI Second(PVOID context)
{
    UNREFERENCED_PARAMETER(context);
    KeWaitForSingleObject(&g_stop, Executive, KernelMode, FALSE, NULL);
    DbgPrint("Second woken\n");
}

static VOID NTAPI Unload(PDRIVER_OBJECT driver)
{
    int i;
    UNREFERENCED_PARAMETER(driver);
    KeSetEvent(&g_stop, 0, FALSE);
    for (i = 0; i < 2; i++) {
        KeWaitForSingleObject(g_workers[i], Executive, KernelMode, FALSE, NULL);
        ObDereferenceObject(g_workers[i]);
    }
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    NTSTATUS status;
    UNREFERENCED_PARAMETER(path);
    KeInitializeEvent(&g_stop, NotificationEvent, FALSE);
    status = start_thread(First, &g_workers[0]);
    if (NT_SUCCESS(status))
        status = start_thread(Second, &g_workers[1]);
    if (!NT_SUCCESS(status))
        return status;
    driver->DriverUnload = Unload;
    return STATUS_SUCCESS;
}

/* Two workers, First and Second, wait on one event.
 * USE=1: a notification event DriverUnload sets once: one KeSetEvent wakes both.
 * USE=2: a synchronization event DriverUnload sets twice: each set wakes one waiter and leaves the
 *        event not signalled (the waiter took the signal); DriverUnload prints its state.
 * USE=3: nothing sets it: First waits at most 20 ms, Second 10 ms; each prints what the wait returned
 *        (Second's time-out ends first). */
#include <ntddk.h>
#include "wdk_data.h"
#include "threads.h"

#ifndef USE
#define USE 1
#endif

static KEVENT g_event;
static PVOID g_workers[2];

static void wait_and_print(const char *name, LONGLONG ms)
{
    LARGE_INTEGER timeout;
    NTSTATUS status;
    timeout.QuadPart = -10000 * ms;
    status = KeWaitForSingleObject(&g_event, Executive, KernelMode, FALSE, USE == 3 ? &timeout : NULL);
    DbgPrint("%s woken: %x\n", name, status);
}

static VOID NTAPI First(PVOID context)
{
    UNREFERENCED_PARAMETER(context);
    wait_and_print("First", 20);
}

static VOID NTAPI Second(PVOID context)
{
    UNREFERENCED_PARAMETER(context);
    wait_and_print("Second", 10);
}

static VOID NTAPI Unload(PDRIVER_OBJECT driver)
{
    int i;
    UNREFERENCED_PARAMETER(driver);
    if (USE != 3)
        KeSetEvent(&g_event, 0, FALSE);
    if (USE == 2)
        KeSetEvent(&g_event, 0, FALSE);
    for (i = 0; i < 2; i++) {
        KeWaitForSingleObject(g_workers[i], Executive, KernelMode, FALSE, NULL);
        ObDereferenceObject(g_workers[i]);
    }
    DbgPrint("event state %d\n", KeReadStateEvent(&g_event));
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    NTSTATUS status;
    UNREFERENCED_PARAMETER(path);
    KeInitializeEvent(&g_event, USE == 2 ? SynchronizationEvent : NotificationEvent, FALSE);
    status = start_thread(First, &g_workers[0]);
    if (NT_SUCCESS(status))
        status = start_thread(Second, &g_workers[1]);
    if (!NT_SUCCESS(status))
        return status;
    driver->DriverUnload = Unload;
    return STATUS_SUCCESS;
}

/* The usual stop-event pattern: a worker thread waits on an event that DriverUnload sets, then
 * DriverUnload waits for the worker to end. Nothing deadlocks: the worker waits until unload. */
#include <ntddk.h>
#include "wdk_data.h"

static KEVENT g_stop;
static PVOID g_worker;

static VOID NTAPI Worker(PVOID context)
{
    UNREFERENCED_PARAMETER(context);
    KeWaitForSingleObject(&g_stop, Executive, KernelMode, FALSE, NULL);
    DbgPrint("worker: stop event set, ending\n");
    PsTerminateSystemThread(STATUS_SUCCESS);
}

static VOID NTAPI Unload(PDRIVER_OBJECT driver)
{
    UNREFERENCED_PARAMETER(driver);
    KeSetEvent(&g_stop, 0, FALSE);
    KeWaitForSingleObject(g_worker, Executive, KernelMode, FALSE, NULL);
    ObDereferenceObject(g_worker);
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    HANDLE thread;
    OBJECT_ATTRIBUTES oa;
    NTSTATUS status;
    UNREFERENCED_PARAMETER(path);
    KeInitializeEvent(&g_stop, NotificationEvent, FALSE);
    InitializeObjectAttributes(&oa, NULL, OBJ_KERNEL_HANDLE, NULL, NULL);
    status = PsCreateSystemThread(&thread, THREAD_ALL_ACCESS, &oa, NULL, NULL, Worker, NULL);
    if (!NT_SUCCESS(status))
        return status;
    status = ObReferenceObjectByHandle(thread, SYNCHRONIZE, *WdkPsThreadType, KernelMode, &g_worker, NULL);
    ZwClose(thread);
    if (!NT_SUCCESS(status))
        return status;
    driver->DriverUnload = Unload;
    return STATUS_SUCCESS;
}

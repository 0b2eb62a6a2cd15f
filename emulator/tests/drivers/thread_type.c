/* DriverEntry references its own system thread through ObReferenceObjectByHandle, passing the thread
 * type with DEREF dereferences of the WDK's PsThreadType (see wdk_data.h): 1 is right, 0 passes the
 * address of ntoskrnl's variable, 2 reads the OBJECT_TYPE's first field (a dereference too many, what
 * mingw-w64's dllimport declaration gives). */
#include <ntddk.h>
#include "wdk_data.h"

static VOID NTAPI Worker(PVOID context)
{
    UNREFERENCED_PARAMETER(context);
    PsTerminateSystemThread(STATUS_SUCCESS);
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    HANDLE thread;
    OBJECT_ATTRIBUTES oa;
    PVOID object;
    POBJECT_TYPE type;
    NTSTATUS status;
    UNREFERENCED_PARAMETER(driver);
    UNREFERENCED_PARAMETER(path);
#if DEREF == 0
    type = (POBJECT_TYPE)WdkPsThreadType;
#elif DEREF == 1
    type = *WdkPsThreadType;
#else
    type = *(POBJECT_TYPE volatile *)*WdkPsThreadType;
#endif
    InitializeObjectAttributes(&oa, NULL, OBJ_KERNEL_HANDLE, NULL, NULL);
    status = PsCreateSystemThread(&thread, THREAD_ALL_ACCESS, &oa, NULL, NULL, Worker, NULL);
    if (!NT_SUCCESS(status))
        return status;
    status = ObReferenceObjectByHandle(thread, SYNCHRONIZE, type, KernelMode, &object, NULL);
    ZwClose(thread);
    DbgPrint("ObReferenceObjectByHandle: %08x\n", status);
    if (NT_SUCCESS(status))
        ObDereferenceObject(object);
    return STATUS_SUCCESS;
}

/* Starts a system thread running ROUTINE; if OBJECT is not NULL, keeps a referenced pointer to the
 * thread object there (to wait for it or name it). Include after ntddk.h and wdk_data.h. */
#pragma once

static NTSTATUS start_thread(PKSTART_ROUTINE routine, PVOID *object)
{
    HANDLE thread;
    NTSTATUS status = PsCreateSystemThread(&thread, THREAD_ALL_ACCESS, NULL, NULL, NULL, routine, NULL);
    if (!NT_SUCCESS(status))
        return status;
    if (object != NULL)
        status = ObReferenceObjectByHandle(thread, SYNCHRONIZE, *WdkPsThreadType, KernelMode, object, NULL);
    ZwClose(thread);
    return status;
}

/* The fixed build's earlier shape: FileCreationThread writes N files into C:\Temp and
 * FileMoveThread moves them to C:\Temp2, each holding the FAST_MUTEX (critical region + Unsafe
 * acquire), with nothing that orders the two threads. Unload waits for both. */
#include <ntifs.h>
#include <ntstrsafe.h>
#include "wdk_data.h"
#include "threads.h"

#ifndef N
#define N 3
#endif

static FAST_MUTEX g_mutex;
static PVOID g_threads[2];

/* NAME <- FMT with I; US and OA describe it. */
static void attributes(PWCHAR name, PCWSTR fmt, int i, PUNICODE_STRING us, POBJECT_ATTRIBUTES oa)
{
    RtlStringCchPrintfW(name, 64, fmt, i);
    RtlInitUnicodeString(us, name);
    InitializeObjectAttributes(oa, us, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, NULL, NULL);
}

static VOID NTAPI Creation(PVOID context)
{
    WCHAR name[64];
    UNICODE_STRING us;
    OBJECT_ATTRIBUTES oa;
    IO_STATUS_BLOCK iosb;
    HANDLE file;
    int i;
    UNREFERENCED_PARAMETER(context);
    KeEnterCriticalRegion();
    ExAcquireFastMutexUnsafe(&g_mutex);
    for (i = 0; i < N; i++) {
        attributes(name, L"\\DosDevices\\C:\\Temp\\file_%d.txt", i, &us, &oa);
        if (NT_SUCCESS(ZwCreateFile(&file, GENERIC_WRITE, &oa, &iosb, NULL, FILE_ATTRIBUTE_NORMAL, 0,
                                    FILE_OVERWRITE_IF, FILE_SYNCHRONOUS_IO_NONALERT, NULL, 0))) {
            ZwWriteFile(file, NULL, NULL, NULL, &iosb, (PVOID)"data", 4, NULL, NULL);
            ZwClose(file);
        }
    }
    ExReleaseFastMutexUnsafe(&g_mutex);
    KeLeaveCriticalRegion();
}

static VOID NTAPI Move(PVOID context)
{
    struct { FILE_RENAME_INFORMATION info; WCHAR more[64]; } rename;
    WCHAR name[64];
    UNICODE_STRING us;
    OBJECT_ATTRIBUTES oa;
    IO_STATUS_BLOCK iosb;
    HANDLE file;
    int i;
    UNREFERENCED_PARAMETER(context);
    KeEnterCriticalRegion();
    ExAcquireFastMutexUnsafe(&g_mutex);
    for (i = 0; i < N; i++) {
        attributes(name, L"\\DosDevices\\C:\\Temp\\file_%d.txt", i, &us, &oa);
        if (!NT_SUCCESS(ZwOpenFile(&file, DELETE | SYNCHRONIZE, &oa, &iosb, 0, FILE_SYNCHRONOUS_IO_NONALERT)))
            continue;
        RtlZeroMemory(&rename, sizeof(rename));
        RtlStringCchPrintfW(rename.info.FileName, 64, L"\\DosDevices\\C:\\Temp2\\NewFile_%d.txt", i);
        RtlInitUnicodeString(&us, rename.info.FileName);
        rename.info.FileNameLength = us.Length;
        ZwSetInformationFile(file, &iosb, &rename, sizeof(rename), FileRenameInformation);
        ZwClose(file);
    }
    ExReleaseFastMutexUnsafe(&g_mutex);
    KeLeaveCriticalRegion();
}

static VOID NTAPI Unload(PDRIVER_OBJECT driver)
{
    int i;
    UNREFERENCED_PARAMETER(driver);
    for (i = 0; i < 2; i++) {
        KeWaitForSingleObject(g_threads[i], Executive, KernelMode, FALSE, NULL);
        ObDereferenceObject(g_threads[i]);
    }
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING reg)
{
    NTSTATUS status;
    UNREFERENCED_PARAMETER(reg);
    ExInitializeFastMutex(&g_mutex);
    status = start_thread(Creation, &g_threads[0]);
    if (NT_SUCCESS(status))
        status = start_thread(Move, &g_threads[1]);
    if (NT_SUCCESS(status))
        driver->DriverUnload = Unload;
    return status;
}

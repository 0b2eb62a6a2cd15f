/* Writes a file, asks its size (ZwQueryInformationFile), reads it back from offset 0 (ZwReadFile)
 * and prints what it read. */
#include <ntddk.h>

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    static const char text[] = "hello, tdemu!";
    UNICODE_STRING name;
    OBJECT_ATTRIBUTES oa;
    IO_STATUS_BLOCK iosb;
    FILE_STANDARD_INFORMATION info;
    LARGE_INTEGER zero;
    HANDLE file;
    char buf[32];
    NTSTATUS status;
    UNREFERENCED_PARAMETER(driver);
    UNREFERENCED_PARAMETER(path);
    RtlInitUnicodeString(&name, L"\\DosDevices\\C:\\Temp\\read_back.txt");
    InitializeObjectAttributes(&oa, &name, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, NULL, NULL);
    status = ZwCreateFile(&file, GENERIC_READ | GENERIC_WRITE, &oa, &iosb, NULL, FILE_ATTRIBUTE_NORMAL, 0,
                          FILE_OVERWRITE_IF, FILE_SYNCHRONOUS_IO_NONALERT, NULL, 0);
    if (!NT_SUCCESS(status))
        return status;
    status = ZwWriteFile(file, NULL, NULL, NULL, &iosb, (PVOID)text, sizeof(text) - 1, NULL, NULL);
    if (NT_SUCCESS(status))
        status = ZwQueryInformationFile(file, &iosb, &info, sizeof(info), FileStandardInformation);
    if (NT_SUCCESS(status)) {
        zero.QuadPart = 0;
        status = ZwReadFile(file, NULL, NULL, NULL, &iosb, buf, sizeof(buf) - 1, &zero, NULL);
    }
    if (NT_SUCCESS(status)) {
        buf[iosb.Information] = 0;
        DbgPrint("size %d, read %d bytes: %s\n", (int)info.EndOfFile.QuadPart, (int)iosb.Information, buf);
        status = ZwReadFile(file, NULL, NULL, NULL, &iosb, buf, sizeof(buf) - 1, NULL, NULL);
        DbgPrint("read at the end: %08x\n", status);
        status = STATUS_SUCCESS;
    }
    ZwClose(file);
    return status;
}

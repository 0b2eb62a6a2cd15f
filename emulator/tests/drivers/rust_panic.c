/* A worker thread panics the way wdk-panic 0.5.0's handler does: KeBugCheckEx with 0x52504E43
 * ("RPNC") and the panic's file name (pointer, length, not NUL-terminated), line and column.
 * -DUSE=1: a location in the image; 2: no location (all zeros); 3: a file name that is not mapped. */
#include <ntddk.h>
#include "wdk_data.h"
#include "threads.h"

#define RUST_PANIC_BUGCHECK 0x52504E43

#if USE == 1
/* Rust's file names are string slices: the bytes after the name are not a NUL. */
static const char names[] = "src/fixed.rsXYZ";
#endif

static DECLSPEC_NOINLINE VOID RustPanic(const char *file, SIZE_T length, ULONG line, ULONG column)
{
    KeBugCheckEx(RUST_PANIC_BUGCHECK, (ULONG_PTR)file, length, line, column);
}

static VOID NTAPI Worker(PVOID context)
{
    UNREFERENCED_PARAMETER(context);
    DbgPrint("worker panics\n");
#if USE == 1
    RustPanic(names, 12, 231, 17);
#elif USE == 2
    RustPanic(NULL, 0, 0, 0);
#else
    RustPanic((const char *)(ULONG_PTR)0x10, 12, 5, 9);
#endif
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    UNREFERENCED_PARAMETER(driver);
    UNREFERENCED_PARAMETER(path);
    return start_thread(Worker, NULL);
}

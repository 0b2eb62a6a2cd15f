/* Prints the first and last 4 bytes of pool blocks that Windows leaves uninitialised
 * (ExAllocatePoolWithTag, ExAllocatePool, ExAllocatePool2 with POOL_FLAG_UNINITIALIZED) and of one it
 * zeroes (ExAllocatePool2 without that flag), then frees them. OVERRUN=1 writes one byte past the end
 * of the ExAllocatePoolWithTag block before freeing it. */
#define POOL_TAGGING 1  /* mingw-w64's wdm.h maps ExAllocatePoolWithTag to ExAllocatePool without it */
#include <ntddk.h>

#ifndef OVERRUN
#define OVERRUN 0
#endif

/* Not in mingw-w64's wdm.h (WDK 10.0.19041 and later). */
#define POOL_FLAG_UNINITIALIZED 0x0000000000000002ULL
#define POOL_FLAG_NON_PAGED 0x0000000000000040ULL
NTKERNELAPI PVOID NTAPI ExAllocatePool2(ULONG64 Flags, SIZE_T NumberOfBytes, ULONG Tag);

#define SIZE 24
#define TAG 0x6C6F6F50 /* 'Pool' */

static void show(const char *what, PUCHAR p)
{
    if (p == NULL) {
        DbgPrint("%s: NULL\n", what);
        return;
    }
    DbgPrint("%s: %08lx..%08lx\n", what, *(ULONG *)p, *(ULONG *)(p + SIZE - 4));
}

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    PUCHAR with_tag, plain, uninit, zeroed;
    UNREFERENCED_PARAMETER(driver);
    UNREFERENCED_PARAMETER(path);
    with_tag = ExAllocatePoolWithTag(NonPagedPool, SIZE, TAG);
    plain = ExAllocatePool(NonPagedPool, SIZE);
    uninit = ExAllocatePool2(POOL_FLAG_NON_PAGED | POOL_FLAG_UNINITIALIZED, SIZE, TAG);
    zeroed = ExAllocatePool2(POOL_FLAG_NON_PAGED, SIZE, TAG);
    show("ExAllocatePoolWithTag", with_tag);
    show("ExAllocatePool", plain);
    show("ExAllocatePool2 uninitialized", uninit);
    show("ExAllocatePool2", zeroed);
    if (OVERRUN && with_tag != NULL)
        with_tag[SIZE] = 0;
    if (with_tag != NULL)
        ExFreePoolWithTag(with_tag, TAG);
    if (plain != NULL)
        ExFreePool(plain);
    if (uninit != NULL)
        ExFreePoolWithTag(uninit, TAG);
    if (zeroed != NULL)
        ExFreePoolWithTag(zeroed, TAG);
    return STATUS_SUCCESS;
}

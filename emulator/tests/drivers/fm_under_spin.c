/* A FAST_MUTEX acquired while holding a spin lock (DISPATCH_LEVEL, above ExAcquireFastMutex's
 * APC_LEVEL), and released there. */
#include <ntddk.h>

static KSPIN_LOCK g_lock;
static FAST_MUTEX g_mutex;

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT driver, PUNICODE_STRING path)
{
    KIRQL old;
    UNREFERENCED_PARAMETER(driver);
    UNREFERENCED_PARAMETER(path);
    KeInitializeSpinLock(&g_lock);
    ExInitializeFastMutex(&g_mutex);
    KeAcquireSpinLock(&g_lock, &old);
    ExAcquireFastMutex(&g_mutex);
    ExReleaseFastMutex(&g_mutex);
    KeReleaseSpinLock(&g_lock, old);
    return STATUS_SUCCESS;
}

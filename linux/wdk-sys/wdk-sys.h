/*
 * Input of the Linux stand-in for wdk-sys: the headers the real wdk-sys reads
 * for a WDM driver (ntifs.h, ntddk.h, ntstrsafe.h), taken from mingw-w64's DDK,
 * followed by the declarations where the modern WDK differs from mingw-w64.
 * Every override below has the WDK's shape, so a driver that compiles against
 * these bindings compiles against the real wdk-sys too.
 */

/*
 * FILE_RENAME_INFORMATION: mingw-w64 has `BOOLEAN ReplaceIfExists;` first; the
 * WDK (since Windows 10 RS1) has a union of ReplaceIfExists and Flags. Move
 * mingw's definition out of the way under another name (blocklisted by
 * build.rs) and declare the WDK's after the includes.
 */
#define _FILE_RENAME_INFORMATION _MINGW_FILE_RENAME_INFORMATION
#define FILE_RENAME_INFORMATION MINGW_FILE_RENAME_INFORMATION
#define PFILE_RENAME_INFORMATION PMINGW_FILE_RENAME_INFORMATION

#include <ntifs.h>
#include <ntddk.h>
#include <ntstrsafe.h>

#undef _FILE_RENAME_INFORMATION
#undef FILE_RENAME_INFORMATION
#undef PFILE_RENAME_INFORMATION

/* ntifs.h, WDK 10.0.22621 */
typedef struct _FILE_RENAME_INFORMATION {
    union {
        BOOLEAN ReplaceIfExists;  /* FileRenameInformation */
        ULONG Flags;              /* FileRenameInformationEx */
    };
    HANDLE RootDirectory;
    ULONG FileNameLength;
    WCHAR FileName[1];
} FILE_RENAME_INFORMATION, *PFILE_RENAME_INFORMATION;

/*
 * ExAllocatePool2 and its POOL_FLAGS (Windows 10 2004), used by wdk-alloc, are
 * newer than mingw-w64's wdm.h. wdm.h, WDK 10.0.22621:
 */
typedef ULONG64 POOL_FLAGS;
#define POOL_FLAG_USE_QUOTA           0x0000000000000001ULL
#define POOL_FLAG_UNINITIALIZED       0x0000000000000002ULL
#define POOL_FLAG_SESSION             0x0000000000000004ULL
#define POOL_FLAG_CACHE_ALIGNED       0x0000000000000008ULL
#define POOL_FLAG_RAISE_ON_FAILURE    0x0000000000000020ULL
#define POOL_FLAG_NON_PAGED           0x0000000000000040ULL
#define POOL_FLAG_NON_PAGED_EXECUTE   0x0000000000000080ULL
#define POOL_FLAG_PAGED               0x0000000000000100ULL

NTKERNELAPI
PVOID
NTAPI
ExAllocatePool2(
    POOL_FLAGS Flags,
    SIZE_T NumberOfBytes,
    ULONG Tag);

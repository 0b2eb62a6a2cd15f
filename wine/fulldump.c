/* fulldump.exe: writes a full-memory minidump of one Windows process, the way
 * Task Manager's "Create dump file" does, so that a debugger can read the
 * process's memory (a FAST_MUTEX in a device extension) and not only its stacks.
 *
 *   fulldump.exe PID FILE [MODULE]
 *
 * PID: decimal or 0x-hex process id. FILE: the dump to create; it must not
 * exist. MODULE (e.g. TestDriver.sys): refuse unless the process has loaded
 * a module of that name, so the dump is of the process that hosts the driver.
 * Exit 0 written; 2 bad input (message on stderr, nothing written); 1 the
 * dump failed (the partial file is deleted).
 *
 * Built on Linux with mingw-w64 (linux/build.sh: x86_64-w64-mingw32-gcc
 * -ldbghelp -lpsapi) and run with wine64 in the prefix whose winedevice.exe
 * hosts TestDriver.sys. */
#include <windows.h>
#include <dbghelp.h>
#include <psapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(const char *why)
{
    fprintf(stderr, "fulldump: %s\nusage: fulldump.exe PID FILE [MODULE]\n", why);
    return 2;
}

/* 1 if `process` has loaded a module whose file name (no directory) is `name`. */
static int has_module(HANDLE process, const char *name)
{
    HMODULE mods[1024];
    DWORD needed = 0, i;
    char path[MAX_PATH];
    if (!EnumProcessModules(process, mods, sizeof(mods), &needed))
        return -1;
    for (i = 0; i < needed / sizeof(HMODULE) && i < 1024; i++) {
        const char *base;
        if (!GetModuleFileNameExA(process, mods[i], path, sizeof(path)))
            continue;
        base = strrchr(path, '\\');
        base = base ? base + 1 : path;
        if (!_stricmp(base, name))
            return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    char *end;
    unsigned long pid;
    HANDLE process, file;
    BOOL ok;
    DWORD err;
    const MINIDUMP_TYPE type = MiniDumpWithFullMemory | MiniDumpWithHandleData | MiniDumpWithThreadInfo;

    if (argc < 3 || argc > 4)
        return usage("expected a process id and a file name");
    pid = strtoul(argv[1], &end, 0);
    if (*argv[1] == '\0' || *end != '\0' || pid == 0)
        return usage("the process id must be a number > 0 (decimal or 0x...)");
    process = OpenProcess(PROCESS_ALL_ACCESS, FALSE, (DWORD)pid);
    if (!process) {
        fprintf(stderr, "fulldump: cannot open process %lu (0x%lx): error %lu\n", pid, pid, GetLastError());
        return 2;
    }
    if (argc == 4) {
        int has = has_module(process, argv[3]);
        if (has != 1) {
            if (has < 0)
                fprintf(stderr, "fulldump: cannot list the modules of process 0x%lx: error %lu\n", pid, GetLastError());
            else
                fprintf(stderr, "fulldump: process 0x%lx has no module %s: not the process to dump\n", pid, argv[3]);
            CloseHandle(process);
            return 2;
        }
    }
    file = CreateFileA(argv[2], GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_NEW, FILE_ATTRIBUTE_NORMAL, NULL);
    if (file == INVALID_HANDLE_VALUE) {
        err = GetLastError();
        fprintf(stderr, "fulldump: cannot create %s: %s (error %lu)\n", argv[2],
                err == ERROR_FILE_EXISTS ? "it exists already" : "see winerror.h", err);
        CloseHandle(process);
        return 2;
    }
    ok = MiniDumpWriteDump(process, (DWORD)pid, file, type, NULL, NULL, NULL);
    err = GetLastError();
    CloseHandle(file);
    CloseHandle(process);
    if (!ok) {
        DeleteFileA(argv[2]);
        fprintf(stderr, "fulldump: MiniDumpWriteDump of process 0x%lx failed: error 0x%lx; nothing written\n", pid, err);
        return 1;
    }
    printf("fulldump: wrote %s (process 0x%lx, full memory, handles, thread info)\n", argv[2], pid);
    return 0;
}

"""The NT kernel model, laid out by NT's own components (as ReactOS's ntoskrnl is): `ke` (dispatcher,
IRQL, waits), `ex` (fast mutexes, pool), `io` (driver load/unload, devices, file routines), `ob`
(handles, references), `ps` (system threads), `rtl` (strings, DbgPrint, C run-time), `fs` (the file
system behind the Zw* routines), `mm` (freed memory, watched for use-after-free), Driver Verifier-style
checks in `verifier`, and `kernel`, which binds the driver's imports to the components' handlers and
runs it on the machine (`tdemu.machine`)."""

"""The NT kernel model, laid out by NT's own components as ReactOS's ntoskrnl is (emulator/README.md,
"The kernel model", says what each module models); `kernel` runs the driver on `tdemu.machine`."""

//! `TestDriver`: a Rust port of a WDM teaching driver that shows a thread
//! deadlocking on a `FAST_MUTEX` it already holds.
//!
//! `DriverEntry` creates an unnamed device whose extension holds a `FAST_MUTEX`,
//! then starts two system threads. `FileCreationThread` acquires the mutex
//! twice: fast mutexes cannot be acquired recursively, so it waits forever for
//! itself. `FileMoveThread` then waits forever behind it. Nothing is ever
//! written to `C:\Temp`.
//!
//! The routines below follow the C driver routine by routine, in its order,
//! with the same calls, flags, paths, counts and bytes. Where this port departs
//! from the C, a comment names what the C did.
//!
//! The `fixed` feature builds the same demo without the C's defects: one
//! acquire, the file I/O at `PASSIVE_LEVEL` (a critical region and
//! `ExAcquireFastMutexUnsafe`), an unload that waits for both threads, and
//! every failure logged with its `NTSTATUS` through `DbgPrint`.

#![no_std]
#![allow(
    non_snake_case,
    reason = "the crate is named TestDriver, like the seed's TestDriver.sys"
)]

#[cfg(not(test))]
extern crate wdk_panic;

#[cfg(not(test))]
use wdk_alloc::WdkAllocator;

#[cfg(not(test))]
#[global_allocator]
static GLOBAL_ALLOCATOR: WdkAllocator = WdkAllocator;

mod nt;

#[cfg(test)]
mod layout_tests;

use core::ptr::null_mut;

use nt::{
    PATH_CCH,
    PathBuffer,
    RenameBuffer,
    ascii_utf16,
    ex_initialize_fast_mutex,
    initialize_object_attributes,
    rtl_string_cch_printf_w,
};
use wdk_sys::{
    _FILE_INFORMATION_CLASS::FileRenameInformation,
    FAST_MUTEX,
    FILE_ALL_ACCESS,
    FILE_ATTRIBUTE_NORMAL,
    FILE_DEVICE_SECURE_OPEN,
    FILE_DEVICE_UNKNOWN,
    FILE_OVERWRITE_IF,
    FILE_SHARE_READ,
    FILE_SHARE_WRITE,
    FILE_SYNCHRONOUS_IO_NONALERT,
    GENERIC_WRITE,
    HANDLE,
    IO_STATUS_BLOCK,
    NT_SUCCESS,
    NTSTATUS,
    OBJ_CASE_INSENSITIVE,
    OBJ_KERNEL_HANDLE,
    PCUNICODE_STRING,
    PDEVICE_OBJECT,
    PDRIVER_OBJECT,
    PFAST_MUTEX,
    PVOID,
    STATUS_SUCCESS,
    ULONG,
    UNICODE_STRING,
    WCHAR,
    ntddk::{
        IoCreateDevice,
        IoDeleteDevice,
        PsCreateSystemThread,
        RtlInitUnicodeString,
        ZwClose,
        ZwCreateFile,
        ZwOpenFile,
        ZwSetInformationFile,
        ZwWriteFile,
    },
};
#[cfg(not(feature = "fixed"))]
use wdk_sys::ntddk::{ExAcquireFastMutex, ExReleaseFastMutex};
#[cfg(feature = "fixed")]
use wdk_sys::{
    _KWAIT_REASON::Executive,
    _MODE::KernelMode,
    KPROCESSOR_MODE,
    SYNCHRONIZE,
    ntddk::{
        ExAcquireFastMutexUnsafe,
        ExReleaseFastMutexUnsafe,
        KeEnterCriticalRegion,
        KeLeaveCriticalRegion,
        KeWaitForSingleObject,
        ObReferenceObjectByHandle,
        ObfDereferenceObject,
    },
};

/// `KernelMode` as the `KPROCESSOR_MODE` the wait and reference routines take.
#[cfg(feature = "fixed")]
#[allow(clippy::cast_possible_truncation, reason = "MODE values are 0 and 1")]
const KERNEL_MODE: KPROCESSOR_MODE = KernelMode as KPROCESSOR_MODE;

/// `L"\\DosDevices\\C:\\Temp\\file_"`: the files `FileCreationThread` writes.
pub const TEMP_FILE_PREFIX: [WCHAR; 25] = ascii_utf16(r"\DosDevices\C:\Temp\file_");
/// `L"\\DosDevices\\C:\\Temp2\\NewFile_"`: where `FileMoveThread` moves them.
pub const MOVED_FILE_PREFIX: [WCHAR; 29] = ascii_utf16(r"\DosDevices\C:\Temp2\NewFile_");
/// `L".txt"`.
pub const TXT_SUFFIX: [WCHAR; 4] = ascii_utf16(".txt");
/// Number of files each thread handles (`for (int i = 0; i < 1000; i++)`).
pub const FILE_COUNT: u32 = 1000;
/// Number of writes per file (`for (int j = 0; j < 100; j++)`).
pub const WRITES_PER_FILE: u32 = 100;
/// `char dataToWrite[] = "Hello, World!\r\n";` with its NUL.
pub const DATA_TO_WRITE: [u8; 16] = *b"Hello, World!\r\n\0";

/// `SYNC_RESOURCES`: the device extension, shared by both threads.
#[repr(C)]
pub struct SyncResources {
    /// `FAST_MUTEX` object for synchronized access to the files.
    pub file_mutex: FAST_MUTEX,
    /// The two threads, referenced, so that unload can wait for them.
    #[cfg(feature = "fixed")]
    pub threads: [PVOID; 2],
}

/// Takes the `FAST_MUTEX`: `ExAcquireFastMutex`, which raises the IRQL to
/// `APC_LEVEL` until the release.
///
/// # Safety
///
/// `mutex` points to an initialised `FAST_MUTEX`; IRQL <= `APC_LEVEL`.
#[cfg(not(feature = "fixed"))]
unsafe fn acquire(mutex: PFAST_MUTEX) {
    // SAFETY: guaranteed by the caller.
    unsafe { ExAcquireFastMutex(mutex) };
}

/// Gives the `FAST_MUTEX` back: `ExReleaseFastMutex`.
///
/// # Safety
///
/// The current thread holds `mutex`, acquired with [`acquire`].
#[cfg(not(feature = "fixed"))]
unsafe fn release(mutex: PFAST_MUTEX) {
    // SAFETY: guaranteed by the caller.
    unsafe { ExReleaseFastMutex(mutex) };
}

/// Takes the `FAST_MUTEX` and stays at `PASSIVE_LEVEL`.
///
/// The C's `ExAcquireFastMutex` raises the IRQL to `APC_LEVEL`, and the thread
/// then calls `ZwCreateFile` and the other Zw file routines, which must be
/// called at `PASSIVE_LEVEL` with special kernel APCs enabled (I/O completion
/// is delivered by one). `KeEnterCriticalRegion` disables only normal kernel
/// APCs, so the thread cannot be suspended while it holds the mutex, which is
/// what `ExAcquireFastMutexUnsafe` requires, and the IRQL stays `PASSIVE_LEVEL`.
/// An `ERESOURCE` would do as well, but the `FAST_MUTEX` stays the object the
/// demo is about (`dt nt!_FAST_MUTEX` reads the same structure).
///
/// # Safety
///
/// `mutex` points to an initialised `FAST_MUTEX`; IRQL `PASSIVE_LEVEL`.
#[cfg(feature = "fixed")]
unsafe fn acquire(mutex: PFAST_MUTEX) {
    // SAFETY: no precondition beyond IRQL <= APC_LEVEL, which the caller
    // guarantees.
    unsafe { KeEnterCriticalRegion() };
    // SAFETY: normal kernel APCs are disabled (critical region) and `mutex`
    // is initialised, as ExAcquireFastMutexUnsafe requires.
    unsafe { ExAcquireFastMutexUnsafe(mutex) };
}

/// Gives the `FAST_MUTEX` back and leaves the critical region [`acquire`]
/// entered.
///
/// # Safety
///
/// The current thread holds `mutex`, acquired with [`acquire`].
#[cfg(feature = "fixed")]
unsafe fn release(mutex: PFAST_MUTEX) {
    // SAFETY: the caller holds `mutex` from ExAcquireFastMutexUnsafe, still
    // inside the critical region.
    unsafe { ExReleaseFastMutexUnsafe(mutex) };
    // SAFETY: pairs with the KeEnterCriticalRegion of `acquire`.
    unsafe { KeLeaveCriticalRegion() };
}

/// Logs a failure and its `NTSTATUS` with `DbgPrint` in the `fixed` build; the
/// C logs nothing, so the default build neither. The format is a C string
/// literal whose conversions match the arguments.
macro_rules! log_failure {
    ($format:literal $(, $argument:expr)* $(,)?) => {
        #[cfg(feature = "fixed")]
        // SAFETY: a NUL-terminated format whose conversions (%ws: a
        // NUL-terminated wide string, %08x: a 32-bit value) match the
        // arguments; DbgPrint is callable at any IRQL.
        let _ = unsafe { wdk_sys::ntddk::DbgPrint($format.as_ptr(), $($argument),*) };
    };
}

/// `FileCreationThread`: takes the `FAST_MUTEX` twice, then would write 1000
/// files of 100 lines each into `C:\Temp`. The second acquire never returns.
///
/// The C declares it `NTSTATUS FileCreationThread(PVOID)` and passes it as a
/// `KSTART_ROUTINE`, which returns `VOID`; here it has the `KSTART_ROUTINE`
/// signature.
///
/// # Safety
///
/// `context` is the device extension ([`SyncResources`]) set up by
/// [`driver_entry`]; called by the kernel at `PASSIVE_LEVEL`.
unsafe extern "C" fn file_creation_thread(context: PVOID) {
    let sync_res = context.cast::<SyncResources>();
    // SAFETY: `context` is the live device extension (the device is only
    // deleted by unload); taking a field's address reads nothing.
    let mutex = unsafe { &raw mut (*sync_res).file_mutex };
    let mut uni_file_path = UNICODE_STRING::default();
    let mut file_path_buffer: PathBuffer = [0; PATH_CCH];
    let mut data_to_write = DATA_TO_WRITE;
    let mut io_status_block = IO_STATUS_BLOCK::default();

    // Acquire the FAST_MUTEX
    // SAFETY: `mutex` was initialised by driver_entry; system threads start
    // at PASSIVE_LEVEL.
    unsafe { acquire(mutex) };

    // Attempt to acquire the FAST_MUTEX recursively: this is the seed's
    // deadlock, reproduced on purpose. (The fixed build acquires once: a fast
    // mutex cannot be acquired recursively.)
    #[cfg(not(feature = "fixed"))]
    // SAFETY: as above; the call blocks forever, which is the demonstration.
    unsafe {
        acquire(mutex);
    }

    for i in 0..FILE_COUNT {
        // The C ignores RtlStringCchPrintfW's status; the buffer always fits.
        let _ = rtl_string_cch_printf_w(&mut file_path_buffer, &TEMP_FILE_PREFIX, i, &TXT_SUFFIX);
        // SAFETY: `file_path_buffer` is NUL-terminated by the call above and
        // outlives every use of `uni_file_path` in this iteration.
        unsafe { RtlInitUnicodeString(&raw mut uni_file_path, file_path_buffer.as_ptr()) };

        let mut obj_attributes = initialize_object_attributes(
            &raw mut uni_file_path,
            OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
            null_mut(),
            null_mut(),
        );

        let mut h_file: HANDLE = null_mut();
        // SAFETY: every pointer refers to a live local of this frame.
        let status = unsafe {
            ZwCreateFile(
                &raw mut h_file,
                GENERIC_WRITE,
                &raw mut obj_attributes,
                &raw mut io_status_block,
                null_mut(),
                FILE_ATTRIBUTE_NORMAL,
                0,
                FILE_OVERWRITE_IF,
                FILE_SYNCHRONOUS_IO_NONALERT,
                null_mut(),
                0,
            )
        };

        if NT_SUCCESS(status) {
            for _ in 0..WRITES_PER_FILE {
                // The C ignores ZwWriteFile's status.
                // SAFETY: `h_file` is open for writing; the buffer holds at
                // least the 15 bytes written and outlives the synchronous call.
                let status = unsafe {
                    ZwWriteFile(
                        h_file,
                        null_mut(),
                        None,
                        null_mut(),
                        &raw mut io_status_block,
                        data_to_write.as_mut_ptr().cast(),
                        DATA_LENGTH,
                        null_mut(),
                        null_mut(),
                    )
                };
                if !NT_SUCCESS(status) {
                    log_failure!(
                        c"TestDriver: ZwWriteFile(%ws) failed: %08x\n",
                        file_path_buffer.as_ptr(),
                        status,
                    );
                    #[cfg(feature = "fixed")]
                    break;
                }
            }
            // SAFETY: `h_file` is a kernel handle this thread opened.
            let _ = unsafe { ZwClose(h_file) };
        } else {
            log_failure!(
                c"TestDriver: ZwCreateFile(%ws) failed: %08x\n",
                file_path_buffer.as_ptr(),
                status,
            );
        }
    }

    // The code will not reach this point due to the deadlock
    // SAFETY: this thread holds `mutex`.
    unsafe { release(mutex) };
}

/// `sizeof(dataToWrite) - 1`: the 15 bytes of `Hello, World!\r\n`.
#[allow(clippy::cast_possible_truncation, reason = "15 bytes")]
const DATA_LENGTH: ULONG = (DATA_TO_WRITE.len() - 1) as ULONG;

/// `FileMoveThread`: takes the `FAST_MUTEX`, then moves each
/// `C:\Temp\file_<i>.txt` to `C:\Temp2\NewFile_<i>.txt`. Blocks forever
/// behind `FileCreationThread`.
///
/// # Safety
///
/// As [`file_creation_thread`].
unsafe extern "C" fn file_move_thread(context: PVOID) {
    let sync_res = context.cast::<SyncResources>();
    // SAFETY: `context` is the live device extension; taking a field's
    // address reads nothing.
    let mutex = unsafe { &raw mut (*sync_res).file_mutex };
    let mut io_status_block = IO_STATUS_BLOCK::default();
    let mut old_file_path_buffer: PathBuffer = [0; PATH_CCH];
    let mut new_file_path_buffer: PathBuffer = [0; PATH_CCH];
    let mut rename_info = RenameBuffer::new();

    // Acquire the FAST_MUTEX
    // SAFETY: `mutex` was initialised by driver_entry; PASSIVE_LEVEL.
    unsafe { acquire(mutex) };

    for i in 0..FILE_COUNT {
        let _ =
            rtl_string_cch_printf_w(&mut old_file_path_buffer, &TEMP_FILE_PREFIX, i, &TXT_SUFFIX);
        let _ =
            rtl_string_cch_printf_w(&mut new_file_path_buffer, &MOVED_FILE_PREFIX, i, &TXT_SUFFIX);

        let mut old_file_path = UNICODE_STRING::default();
        let mut new_file_path = UNICODE_STRING::default();
        // SAFETY: both buffers are NUL-terminated and outlive the strings.
        unsafe { RtlInitUnicodeString(&raw mut old_file_path, old_file_path_buffer.as_ptr()) };
        // SAFETY: as above. The C initialises this string and never uses it.
        unsafe { RtlInitUnicodeString(&raw mut new_file_path, new_file_path_buffer.as_ptr()) };

        let mut obj_attributes = initialize_object_attributes(
            &raw mut old_file_path,
            OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
            null_mut(),
            null_mut(),
        );

        let mut h_file: HANDLE = null_mut();
        // SAFETY: every pointer refers to a live local of this frame.
        let status = unsafe {
            ZwOpenFile(
                &raw mut h_file,
                FILE_ALL_ACCESS,
                &raw mut obj_attributes,
                &raw mut io_status_block,
                FILE_SHARE_READ | FILE_SHARE_WRITE,
                FILE_SYNCHRONOUS_IO_NONALERT,
            )
        };

        if NT_SUCCESS(status) {
            // The C copies the name into a one-WCHAR FILE_RENAME_INFORMATION on
            // its stack (a buffer overflow); RenameBuffer has room for it.
            let length = rename_info.fill(&new_file_path_buffer);
            // The C ignores ZwSetInformationFile's status.
            // SAFETY: `h_file` is open; the buffer holds `length` bytes of a
            // FILE_RENAME_INFORMATION and its name.
            let status = unsafe {
                ZwSetInformationFile(
                    h_file,
                    &raw mut io_status_block,
                    rename_info.as_mut_ptr(),
                    length,
                    FileRenameInformation,
                )
            };
            if !NT_SUCCESS(status) {
                log_failure!(
                    c"TestDriver: renaming %ws failed: %08x\n",
                    old_file_path_buffer.as_ptr(),
                    status,
                );
            }
            // SAFETY: `h_file` is a kernel handle this thread opened.
            let _ = unsafe { ZwClose(h_file) };
        } else {
            log_failure!(
                c"TestDriver: ZwOpenFile(%ws) failed: %08x\n",
                old_file_path_buffer.as_ptr(),
                status,
            );
        }
    }

    // Release the FAST_MUTEX
    // SAFETY: this thread holds `mutex`.
    unsafe { release(mutex) };
}

/// `UnloadDriver`: deletes the device.
///
/// # Safety
///
/// Called by the I/O manager with the driver object whose device
/// [`driver_entry`] created.
unsafe extern "C" fn unload_driver(driver_object: PDRIVER_OBJECT) {
    // SAFETY: the I/O manager passes a valid driver object; its DeviceObject
    // is the device driver_entry created.
    let device_object = unsafe { (*driver_object).DeviceObject };

    // The C deletes the device while its threads may still run and use the
    // extension (and their code, once the driver is unmapped): the fixed build
    // first waits for both threads to end and releases its references.
    #[cfg(feature = "fixed")]
    {
        // SAFETY: the device is not deleted yet; its extension is the
        // SyncResources driver_entry initialised.
        let sync_res = unsafe { (*device_object).DeviceExtension }.cast::<SyncResources>();
        // SAFETY: as above; only unload touches `threads` after driver_entry.
        let threads = unsafe { &mut (*sync_res).threads };
        for thread in threads.iter_mut().filter(|thread| !thread.is_null()) {
            // SAFETY: a referenced thread object (a dispatcher object, signalled
            // when the thread ends); unload runs at PASSIVE_LEVEL, no timeout.
            let status = unsafe {
                KeWaitForSingleObject(*thread, Executive, KERNEL_MODE, 0, null_mut())
            };
            if !NT_SUCCESS(status) {
                log_failure!(c"TestDriver: waiting for a thread failed: %08x\n", status);
            }
            // SAFETY: releases the reference driver_entry took; not used after.
            let _ = unsafe { ObfDereferenceObject(*thread) };
            *thread = null_mut();
        }
    }

    // SAFETY: `device_object` was created by IoCreateDevice and not deleted.
    unsafe { IoDeleteDevice(device_object) };
}

/// Starts one of the two threads on the device extension: `PsCreateSystemThread`
/// then `ZwClose` of the handle, as the C does. The fixed build first takes a
/// reference to the thread object, kept in the extension for unload to wait on.
///
/// # Safety
///
/// `sync_res` is the initialised device extension; IRQL `PASSIVE_LEVEL`.
unsafe fn start_thread(
    sync_res: *mut SyncResources,
    start_routine: unsafe extern "C" fn(PVOID),
    #[cfg_attr(not(feature = "fixed"), allow(unused_variables))] slot: usize,
) {
    let mut thread_handle: HANDLE = null_mut();
    // SAFETY: the routine has the KSTART_ROUTINE signature and its context,
    // the device extension, lives until unload.
    let status = unsafe {
        PsCreateSystemThread(
            &raw mut thread_handle,
            0,
            null_mut(),
            null_mut(),
            null_mut(),
            Some(start_routine),
            sync_res.cast(),
        )
    };
    if !NT_SUCCESS(status) {
        log_failure!(c"TestDriver: PsCreateSystemThread failed: %08x\n", status);
        return;
    }

    #[cfg(feature = "fixed")]
    {
        let mut thread: PVOID = null_mut();
        // ObjectType NULL: wdk-sys cannot link the data export *PsThreadType
        // (windows-drivers-rs issue 338), and this kernel handle was just
        // returned by PsCreateSystemThread, so its type is known.
        // SAFETY: a valid kernel handle; `thread` is a live local.
        let status = unsafe {
            ObReferenceObjectByHandle(
                thread_handle,
                SYNCHRONIZE,
                null_mut(),
                KERNEL_MODE,
                &raw mut thread,
                null_mut(),
            )
        };
        if NT_SUCCESS(status) {
            // SAFETY: the extension is live; unload reads `threads` only after
            // driver_entry returned.
            unsafe { (*sync_res).threads[slot] = thread };
        } else {
            log_failure!(c"TestDriver: ObReferenceObjectByHandle failed: %08x\n", status);
        }
    }

    // SAFETY: a kernel handle PsCreateSystemThread just returned.
    let _ = unsafe { ZwClose(thread_handle) };
}

/// `DriverEntry`: creates the device holding the `FAST_MUTEX` and starts the
/// two threads.
///
/// # Safety
///
/// Called once by the I/O manager at `PASSIVE_LEVEL` with a valid driver
/// object.
#[unsafe(export_name = "DriverEntry")]
pub unsafe extern "system" fn driver_entry(
    driver_object: PDRIVER_OBJECT,
    _registry_path: PCUNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: the I/O manager passes a valid, writable driver object.
    unsafe { (*driver_object).DriverUnload = Some(unload_driver) };

    let mut device_object: PDEVICE_OBJECT = null_mut();
    #[allow(clippy::cast_possible_truncation, reason = "56 bytes")]
    let extension_size = size_of::<SyncResources>() as ULONG;
    // SAFETY: valid driver object, no device name (an unnamed device), and
    // `device_object` is a live local.
    let status = unsafe {
        IoCreateDevice(
            driver_object,
            extension_size,
            null_mut(),
            FILE_DEVICE_UNKNOWN,
            FILE_DEVICE_SECURE_OPEN,
            0,
            &raw mut device_object,
        )
    };

    if !NT_SUCCESS(status) {
        log_failure!(c"TestDriver: IoCreateDevice failed: %08x\n", status);
        return status;
    }

    // SAFETY: IoCreateDevice succeeded, so `device_object` is valid and its
    // extension is `extension_size` bytes of non-paged memory.
    let sync_res = unsafe { (*device_object).DeviceExtension }.cast::<SyncResources>();

    // SAFETY: the extension is `extension_size` bytes; taking a field's
    // address reads nothing.
    let file_mutex = unsafe { &raw mut (*sync_res).file_mutex };
    // Initialize the FAST_MUTEX
    // SAFETY: the extension is fresh, writable and used by nobody yet.
    unsafe { ex_initialize_fast_mutex(file_mutex) };
    #[cfg(feature = "fixed")]
    // SAFETY: as above.
    unsafe {
        (*sync_res).threads = [null_mut(); 2];
    }

    // The C spells out PsCreateSystemThread and ZwClose for each thread;
    // start_thread does the same, once.
    // SAFETY: the extension is initialised; DriverEntry runs at PASSIVE_LEVEL.
    unsafe { start_thread(sync_res, file_creation_thread, 0) };
    // SAFETY: as above.
    unsafe { start_thread(sync_res, file_move_thread, 1) };

    STATUS_SUCCESS
}

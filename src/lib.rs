//! TestDriver: a Rust port of a WDM teaching driver that shows a thread
//! deadlocking on a FAST_MUTEX it already holds.
//!
//! `DriverEntry` creates an unnamed device whose extension holds a FAST_MUTEX,
//! then starts two system threads. `FileCreationThread` acquires the mutex
//! twice: fast mutexes cannot be acquired recursively, so it waits forever for
//! itself. `FileMoveThread` then waits forever behind it. Nothing is ever
//! written to `C:\Temp`.
//!
//! The routines below follow the C driver routine by routine, in its order,
//! with the same calls, flags, paths, counts and bytes. Where this port departs
//! from the C, a comment names what the C did. The `fixed` feature builds the
//! same demo without the C's defects.

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
        ExAcquireFastMutex,
        ExReleaseFastMutex,
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
    /// FAST_MUTEX object for synchronized access to the files.
    pub file_mutex: FAST_MUTEX,
}

/// Takes the FAST_MUTEX: `ExAcquireFastMutex`, which raises the IRQL to
/// `APC_LEVEL` until the release.
///
/// # Safety
///
/// `mutex` points to an initialised FAST_MUTEX; IRQL <= `APC_LEVEL`.
unsafe fn acquire(mutex: PFAST_MUTEX) {
    // SAFETY: guaranteed by the caller.
    unsafe { ExAcquireFastMutex(mutex) };
}

/// Gives the FAST_MUTEX back: `ExReleaseFastMutex`.
///
/// # Safety
///
/// The current thread holds `mutex`, acquired with [`acquire`].
unsafe fn release(mutex: PFAST_MUTEX) {
    // SAFETY: guaranteed by the caller.
    unsafe { ExReleaseFastMutex(mutex) };
}

/// `FileCreationThread`: takes the FAST_MUTEX twice, then would write 1000
/// files of 100 lines each into `C:\Temp`. The second acquire never returns.
///
/// The C declares it `NTSTATUS FileCreationThread(PVOID)` and passes it as a
/// `KSTART_ROUTINE`, which returns VOID; here it has the KSTART_ROUTINE
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
    // deadlock, reproduced on purpose.
    // SAFETY: as above; the call blocks forever, which is the demonstration.
    unsafe { acquire(mutex) };

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
                let _ = unsafe {
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
            }
            // SAFETY: `h_file` is a kernel handle this thread opened.
            let _ = unsafe { ZwClose(h_file) };
        }
    }

    // The code will not reach this point due to the deadlock
    // SAFETY: this thread holds `mutex`.
    unsafe { release(mutex) };
}

/// `sizeof(dataToWrite) - 1`: the 15 bytes of `Hello, World!\r\n`.
#[allow(clippy::cast_possible_truncation, reason = "15 bytes")]
const DATA_LENGTH: ULONG = (DATA_TO_WRITE.len() - 1) as ULONG;

/// `FileMoveThread`: takes the FAST_MUTEX, then moves each
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
            let _ = unsafe {
                ZwSetInformationFile(
                    h_file,
                    &raw mut io_status_block,
                    rename_info.as_mut_ptr(),
                    length,
                    FileRenameInformation,
                )
            };
            // SAFETY: `h_file` is a kernel handle this thread opened.
            let _ = unsafe { ZwClose(h_file) };
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
    // SAFETY: `device_object` was created by IoCreateDevice and not deleted.
    unsafe { IoDeleteDevice(device_object) };
}

/// `DriverEntry`: creates the device holding the FAST_MUTEX and starts the
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
        return status;
    }

    // SAFETY: IoCreateDevice succeeded, so `device_object` is valid and its
    // extension is `extension_size` bytes of non-paged memory.
    let sync_res = unsafe { (*device_object).DeviceExtension }.cast::<SyncResources>();

    // Initialize the FAST_MUTEX
    // SAFETY: the extension is fresh, writable and used by nobody yet.
    unsafe { ex_initialize_fast_mutex(&raw mut (*sync_res).file_mutex) };

    let mut thread_handle1: HANDLE = null_mut();
    let mut thread_handle2: HANDLE = null_mut();

    // SAFETY: the routine has the KSTART_ROUTINE signature and its context,
    // the device extension, lives until unload.
    let status = unsafe {
        PsCreateSystemThread(
            &raw mut thread_handle1,
            0,
            null_mut(),
            null_mut(),
            null_mut(),
            Some(file_creation_thread),
            sync_res.cast(),
        )
    };
    if NT_SUCCESS(status) {
        // SAFETY: a kernel handle PsCreateSystemThread just returned.
        let _ = unsafe { ZwClose(thread_handle1) };
    }

    // SAFETY: as for the first thread.
    let status = unsafe {
        PsCreateSystemThread(
            &raw mut thread_handle2,
            0,
            null_mut(),
            null_mut(),
            null_mut(),
            Some(file_move_thread),
            sync_res.cast(),
        )
    };
    if NT_SUCCESS(status) {
        // SAFETY: a kernel handle PsCreateSystemThread just returned.
        let _ = unsafe { ZwClose(thread_handle2) };
    }

    STATUS_SUCCESS
}

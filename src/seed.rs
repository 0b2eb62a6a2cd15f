//! The seed driver, ported from its C routine by routine.
//!
//! Same order, calls, flags, paths, counts and bytes as the C:
//! `FileCreationThread` acquires the `FAST_MUTEX` twice and waits for itself
//! forever, `FileMoveThread` waits behind it, and nothing is ever written to
//! `C:\Temp`.
//!
//! Where this port departs from the C, a comment says what the C did.
//! `src/fixed.rs` is the same driver without the seed's defects; `diff
//! src/seed.rs src/fixed.rs` lists the fixes.

use core::ptr::null_mut;

use wdk::nt_success;
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
    NTSTATUS,
    OBJ_CASE_INSENSITIVE,
    OBJ_KERNEL_HANDLE,
    PCUNICODE_STRING,
    PDEVICE_OBJECT,
    PDRIVER_OBJECT,
    PVOID,
    STATUS_SUCCESS,
    ULONG,
    UNICODE_STRING,
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

use crate::nt::{
    DATA_LENGTH,
    DATA_TO_WRITE,
    FILE_COUNT,
    MOVED_FILE_PREFIX,
    PATH_CCH,
    PathBuffer,
    RenameBuffer,
    TEMP_FILE_PREFIX,
    TXT_SUFFIX,
    WRITES_PER_FILE,
    ex_initialize_fast_mutex,
    initialize_object_attributes,
    rtl_string_cch_printf_w,
};

/// `SYNC_RESOURCES`: the device extension, shared by both threads.
#[repr(C)]
pub struct SyncResources {
    /// `FAST_MUTEX` object for synchronized access to the files.
    pub file_mutex: FAST_MUTEX,
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
    // SAFETY: `context` is the live device extension; taking a field's
    // address reads nothing.
    let file_mutex = unsafe { &raw mut (*sync_res).file_mutex };
    // The C leaves these locals uninitialised; Rust requires a value, so zeros.
    let mut uni_file_path = UNICODE_STRING::default();
    let mut file_path_buffer: PathBuffer = [0; PATH_CCH];
    let mut data_to_write = DATA_TO_WRITE;
    let mut io_status_block = IO_STATUS_BLOCK::default();

    // Acquire the FAST_MUTEX
    // SAFETY: `context` is the live device extension, whose mutex driver_entry
    // initialised; system threads start at PASSIVE_LEVEL.
    unsafe { ExAcquireFastMutex(file_mutex) };

    // Attempt to acquire the FAST_MUTEX recursively
    // SAFETY: the mutex is valid as above, but this thread already owns it and
    // runs at APC_LEVEL since the first call: the C breaks ExAcquireFastMutex's
    // rule here on purpose, and the call waits for itself forever (the
    // deadlock the seed demonstrates).
    unsafe { ExAcquireFastMutex(file_mutex) };

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

        if nt_success(status) {
            for _ in 0..WRITES_PER_FILE {
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
    // SAFETY: this thread holds the mutex.
    unsafe { ExReleaseFastMutex(file_mutex) };
}

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
    let file_mutex = unsafe { &raw mut (*sync_res).file_mutex };
    // The C leaves these locals uninitialised; Rust requires a value, so zeros.
    let mut io_status_block = IO_STATUS_BLOCK::default();
    let mut old_file_path_buffer: PathBuffer = [0; PATH_CCH];
    let mut new_file_path_buffer: PathBuffer = [0; PATH_CCH];

    // Acquire the FAST_MUTEX
    // SAFETY: `context` is the live device extension, whose mutex driver_entry
    // initialised; PASSIVE_LEVEL.
    unsafe { ExAcquireFastMutex(file_mutex) };

    for i in 0..FILE_COUNT {
        let _ =
            rtl_string_cch_printf_w(&mut old_file_path_buffer, &TEMP_FILE_PREFIX, i, &TXT_SUFFIX);
        let _ =
            rtl_string_cch_printf_w(&mut new_file_path_buffer, &MOVED_FILE_PREFIX, i, &TXT_SUFFIX);

        // Uninitialised in the C too; RtlInitUnicodeString fills each one.
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

        if nt_success(status) {
            // The C copies the name into a one-WCHAR FILE_RENAME_INFORMATION on
            // its stack (a buffer overflow); RenameBuffer has room for it.
            let mut rename_info = RenameBuffer::new();
            let length = rename_info.fill(&new_file_path_buffer);

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
    // SAFETY: this thread holds the mutex.
    unsafe { ExReleaseFastMutex(file_mutex) };
}

/// `UnloadDriver`: deletes the device, while the two threads still wait on
/// the mutex inside its extension.
///
/// # Safety
///
/// Called by the I/O manager with the driver object whose device
/// [`driver_entry`] created.
unsafe extern "C" fn unload_driver(driver_object: PDRIVER_OBJECT) {
    // SAFETY: the I/O manager passes a valid driver object.
    let device_object = unsafe { (*driver_object).DeviceObject };
    // The C deletes the device while both threads still wait on the mutex in
    // its extension (they are never woken, and their code is unmapped next).
    // SAFETY: the device driver_entry created, not deleted yet; what the
    // waiting threads do with it afterwards is the C's defect, kept.
    unsafe { IoDeleteDevice(device_object) };
}

/// `DriverEntry`: creates the device holding the `FAST_MUTEX` and starts the
/// two threads.
///
/// # Safety
///
/// Called once by the I/O manager at `PASSIVE_LEVEL` with a valid driver
/// object.
// Host unit tests do not export it: the dev-dependency's wdk-sys test-stubs
// define `DriverEntry`, and an export would pull the kernel routines into the
// test binary.
#[cfg_attr(not(test), unsafe(export_name = "DriverEntry"))]
pub unsafe extern "system" fn driver_entry(
    driver_object: PDRIVER_OBJECT,
    // The C has `PUNICODE_STRING`: the same pointer, const as neither uses it.
    _registry_path: PCUNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: the I/O manager passes a valid, writable driver object.
    unsafe { (*driver_object).DriverUnload = Some(unload_driver) };

    let mut device_object: PDEVICE_OBJECT = null_mut();
    #[allow(clippy::cast_possible_truncation, reason = "56 bytes")]
    let extension_size = size_of::<SyncResources>() as ULONG;
    // SAFETY: valid driver object, no device name (an unnamed device), and
    // `device_object` is a live local.
    let mut status = unsafe {
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

    if !nt_success(status) {
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

    let mut thread_handle1: HANDLE = null_mut();
    let mut thread_handle2: HANDLE = null_mut();

    // The thread routines have the KSTART_ROUTINE signature (the C casts
    // routines that return NTSTATUS).
    // SAFETY: the routine's context, the device extension, is initialised and
    // lives until unload deletes the device (which the C does under the
    // threads); PASSIVE_LEVEL.
    status = unsafe {
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
    if nt_success(status) {
        // SAFETY: a kernel handle PsCreateSystemThread just returned.
        let _ = unsafe { ZwClose(thread_handle1) };
    }

    // SAFETY: as above.
    status = unsafe {
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
    if nt_success(status) {
        // SAFETY: a kernel handle PsCreateSystemThread just returned.
        let _ = unsafe { ZwClose(thread_handle2) };
    }

    STATUS_SUCCESS
}

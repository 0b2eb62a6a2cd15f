//! The fixed driver: the seed's demo without the seed's defects.
//!
//! `src/seed.rs`'s routines in its order, so that `diff src/seed.rs src/fixed.rs`
//! lists the fixes, each saying what the seed did; `docs/fixed-driver.md` says why.

use core::ptr::null_mut;

use wdk::nt_success;
use wdk_sys::{
    _DPFLTR_TYPE::DPFLTR_IHVDRIVER_ID,
    _EVENT_TYPE::NotificationEvent,
    _FILE_INFORMATION_CLASS::FileRenameInformation,
    _KWAIT_REASON::Executive,
    _MODE::KernelMode,
    BOOLEAN,
    DPFLTR_ERROR_LEVEL,
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
    IO_NO_INCREMENT,
    IO_STATUS_BLOCK,
    KEVENT,
    KPRIORITY,
    KPROCESSOR_MODE,
    NTSTATUS,
    OBJ_CASE_INSENSITIVE,
    OBJ_KERNEL_HANDLE,
    PCUNICODE_STRING,
    PDEVICE_OBJECT,
    PDRIVER_OBJECT,
    PFAST_MUTEX,
    POBJECT_TYPE,
    PVOID,
    STATUS_SUCCESS,
    SYNCHRONIZE,
    ULONG,
    UNICODE_STRING,
    ntddk::{
        DbgPrintEx,
        ExAcquireFastMutexUnsafe,
        ExReleaseFastMutexUnsafe,
        IoCreateDevice,
        IoDeleteDevice,
        KeEnterCriticalRegion,
        KeInitializeEvent,
        KeLeaveCriticalRegion,
        KeSetEvent,
        KeWaitForSingleObject,
        ObReferenceObjectByHandle,
        ObfDereferenceObject,
        PsCreateSystemThread,
        RtlInitUnicodeString,
        ZwClose,
        ZwCreateFile,
        ZwOpenFile,
        ZwSetInformationFile,
        ZwWaitForSingleObject,
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
    /// Set by `FileCreationThread` once the files are written; `FileMoveThread` waits for it.
    pub files_created: KEVENT,
    /// The two threads, referenced for unload to wait on; NULL if not started or not referenced.
    pub threads: [PVOID; 2],
}

#[cfg_attr(not(test), link(name = "ntoskrnl"))]
unsafe extern "C" {
    /// The kernel's thread object type, read through `__imp_PsThreadType`.
    static PsThreadType: POBJECT_TYPE;
}

/// `KernelMode` as the `KPROCESSOR_MODE` the wait and reference routines take.
#[allow(clippy::cast_possible_truncation, reason = "MODE values are 0 and 1")]
const KERNEL_MODE: KPROCESSOR_MODE = KernelMode as KPROCESSOR_MODE;

/// `DPFLTR_IHVDRIVER_ID`: the debug-output component of independent drivers.
#[allow(clippy::cast_sign_loss, reason = "DPFLTR_IHVDRIVER_ID is 77")]
const IHV_DRIVER: ULONG = DPFLTR_IHVDRIVER_ID as ULONG;

/// Logs `TestDriver: <format>` and a newline with `DbgPrintEx` at error level
/// (the default debug filter drops plain `DbgPrint`); the seed logs nothing.
macro_rules! log_failure {
    ($format:literal $(, $argument:expr)* $(,)?) => {
        let format = concat!("TestDriver: ", $format, "\n\0");
        // SAFETY: a NUL-terminated format whose %ws (a NUL-terminated wide string) and
        // %08x (32 bits) match the arguments; callers run at PASSIVE_LEVEL, as %ws requires.
        let _ = unsafe {
            DbgPrintEx(IHV_DRIVER, DPFLTR_ERROR_LEVEL, format.as_ptr().cast(), $($argument),*)
        };
    };
}

/// Takes the `FAST_MUTEX` in a critical region, staying at `PASSIVE_LEVEL` for
/// the Zw routines (the seed's `ExAcquireFastMutex` raises the IRQL).
///
/// # Safety
///
/// `mutex` is initialised, nonpaged and not held by this thread; `PASSIVE_LEVEL`.
unsafe fn acquire(mutex: PFAST_MUTEX) {
    // SAFETY: IRQL <= APC_LEVEL (the caller's contract).
    unsafe { KeEnterCriticalRegion() };
    // SAFETY: in a critical region, on a mutex this thread does not hold.
    unsafe { ExAcquireFastMutexUnsafe(mutex) };
}

/// Gives the `FAST_MUTEX` back and leaves the critical region of [`acquire`].
///
/// # Safety
///
/// The current thread holds `mutex`, taken with [`acquire`].
unsafe fn release(mutex: PFAST_MUTEX) {
    // SAFETY: this thread holds `mutex`, still in the critical region.
    unsafe { ExReleaseFastMutexUnsafe(mutex) };
    // SAFETY: pairs with the KeEnterCriticalRegion of `acquire`.
    unsafe { KeLeaveCriticalRegion() };
}

/// Sets `files_created`, which `FileMoveThread` waits for.
///
/// # Safety
///
/// `files_created` is the initialised event of a live extension; IRQL `<= DISPATCH_LEVEL`.
unsafe fn signal_files_created(files_created: *mut KEVENT) {
    #[allow(clippy::cast_possible_wrap, reason = "IO_NO_INCREMENT is 0")]
    // SAFETY: an initialised event (the caller's contract); Wait FALSE.
    let _ =
        unsafe { KeSetEvent(files_created, IO_NO_INCREMENT as KPRIORITY, BOOLEAN::from(false)) };
}

/// Starts `routine` on the extension and returns the thread referenced for
/// unload to wait on, or NULL after waiting for one it could not reference (if
/// that wait fails, the driver stays loaded).
///
/// # Safety
///
/// `sync_res` is `driver_object`'s initialised extension, outliving the thread;
/// `PASSIVE_LEVEL`.
unsafe fn start_thread(
    driver_object: PDRIVER_OBJECT,
    routine: unsafe extern "C" fn(PVOID),
    sync_res: *mut SyncResources,
) -> Result<PVOID, NTSTATUS> {
    let mut thread_handle: HANDLE = null_mut();
    // The thread routines have the KSTART_ROUTINE signature (the C casts
    // routines that return NTSTATUS).
    // SAFETY: the context outlives the thread (the caller's contract); PASSIVE_LEVEL.
    let status = unsafe {
        PsCreateSystemThread(
            &raw mut thread_handle,
            0,
            null_mut(),
            null_mut(),
            null_mut(),
            Some(routine),
            sync_res.cast(),
        )
    };
    if !nt_success(status) {
        log_failure!("PsCreateSystemThread failed: %08x", status);
        return Err(status);
    }

    let mut thread: PVOID = null_mut();
    // SAFETY: reads PsThreadType, set at boot and never written afterwards.
    let thread_type = unsafe { PsThreadType };
    // SAFETY: a handle to the thread just started; `thread` is a live local.
    let status = unsafe {
        ObReferenceObjectByHandle(
            thread_handle,
            SYNCHRONIZE,
            thread_type,
            KERNEL_MODE,
            &raw mut thread,
            null_mut(),
        )
    };
    if !nt_success(status) {
        log_failure!("ObReferenceObjectByHandle failed: %08x", status);
        thread = null_mut();
        // SAFETY: an open handle, PASSIVE_LEVEL; the thread waits for nothing of ours.
        let status =
            unsafe { ZwWaitForSingleObject(thread_handle, BOOLEAN::from(false), null_mut()) };
        // STATUS_SUCCESS (STATUS_WAIT_0) alone says that the thread has ended.
        if status != STATUS_SUCCESS {
            log_failure!("ZwWaitForSingleObject failed: %08x, the driver stays loaded", status);
            // SAFETY: the writable driver object, read after DriverEntry returns.
            unsafe { (*driver_object).DriverUnload = None };
        }
    }
    // SAFETY: a kernel handle PsCreateSystemThread returned, closed once.
    let _ = unsafe { ZwClose(thread_handle) };
    Ok(thread)
}

/// `FileCreationThread`: takes the `FAST_MUTEX` once, writes 1000 files of 100
/// lines each into `C:\Temp`, gives the mutex back and sets `files_created`.
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
    // SAFETY: as above.
    let files_created = unsafe { &raw mut (*sync_res).files_created };
    // The C leaves these locals uninitialised; Rust requires a value, so zeros.
    let mut uni_file_path = UNICODE_STRING::default();
    let mut file_path_buffer: PathBuffer = [0; PATH_CCH];
    let mut data_to_write = DATA_TO_WRITE;
    let mut io_status_block = IO_STATUS_BLOCK::default();

    // Acquire the FAST_MUTEX once: the seed takes it twice and waits for itself forever.
    // SAFETY: `context` is the live device extension (unload waits for this
    // thread), whose mutex driver_entry initialised; PASSIVE_LEVEL, not held.
    unsafe { acquire(file_mutex) };

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
                // The seed ignores a failed write and tries the next 99.
                if !nt_success(status) {
                    log_failure!(
                        "ZwWriteFile(%ws) failed: %08x",
                        file_path_buffer.as_ptr(),
                        status
                    );
                    break;
                }
            }
            // SAFETY: `h_file` is a kernel handle this thread opened.
            let _ = unsafe { ZwClose(h_file) };
        } else {
            log_failure!("ZwCreateFile(%ws) failed: %08x", file_path_buffer.as_ptr(), status);
        }
    }

    // Release the FAST_MUTEX
    // SAFETY: this thread holds the mutex, taken by `acquire`.
    unsafe { release(file_mutex) };

    // The seed gives the threads no order: FileMoveThread may run first and find no file.
    // SAFETY: the extension's initialised event; the extension outlives this thread.
    unsafe { signal_files_created(files_created) };
}

/// `FileMoveThread`: waits for `files_created`, takes the `FAST_MUTEX`, then
/// moves each `C:\Temp\file_<i>.txt` to `C:\Temp2\NewFile_<i>.txt`.
///
/// # Safety
///
/// As [`file_creation_thread`].
unsafe extern "C" fn file_move_thread(context: PVOID) {
    let sync_res = context.cast::<SyncResources>();
    // SAFETY: `context` is the live device extension; taking a field's
    // address reads nothing.
    let file_mutex = unsafe { &raw mut (*sync_res).file_mutex };
    // SAFETY: as above.
    let files_created = unsafe { &raw mut (*sync_res).files_created };
    // The C leaves these locals uninitialised; Rust requires a value, so zeros.
    let mut io_status_block = IO_STATUS_BLOCK::default();
    let mut old_file_path_buffer: PathBuffer = [0; PATH_CCH];
    let mut new_file_path_buffer: PathBuffer = [0; PATH_CCH];

    // The seed takes the mutex at once, whether the files exist or not.
    // SAFETY: the extension's initialised event; PASSIVE_LEVEL, holding nothing.
    let status = unsafe {
        KeWaitForSingleObject(
            files_created.cast(),
            Executive,
            KERNEL_MODE,
            BOOLEAN::from(false),
            null_mut(),
        )
    };
    if !nt_success(status) {
        log_failure!("waiting for the files failed: %08x", status);
    }

    // Acquire the FAST_MUTEX
    // SAFETY: `context` is the live device extension (unload waits for this
    // thread), whose mutex driver_entry initialised; PASSIVE_LEVEL, not held.
    unsafe { acquire(file_mutex) };

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
            let status = unsafe {
                ZwSetInformationFile(
                    h_file,
                    &raw mut io_status_block,
                    rename_info.as_mut_ptr(),
                    length,
                    FileRenameInformation,
                )
            };
            if !nt_success(status) {
                log_failure!("renaming %ws failed: %08x", old_file_path_buffer.as_ptr(), status);
            }
            // SAFETY: `h_file` is a kernel handle this thread opened.
            let _ = unsafe { ZwClose(h_file) };
        } else {
            log_failure!("ZwOpenFile(%ws) failed: %08x", old_file_path_buffer.as_ptr(), status);
        }
    }

    // Release the FAST_MUTEX
    // SAFETY: this thread holds the mutex, taken by `acquire`.
    unsafe { release(file_mutex) };
}

/// `UnloadDriver`: waits for both threads to end and releases them, then
/// deletes the device.
///
/// # Safety
///
/// Called by the I/O manager with the driver object whose device
/// [`driver_entry`] created.
unsafe extern "C" fn unload_driver(driver_object: PDRIVER_OBJECT) {
    // SAFETY: the I/O manager passes a valid driver object.
    let device_object = unsafe { (*driver_object).DeviceObject };
    // The seed deletes the device while both threads still use its extension.
    // SAFETY: the device driver_entry created, not deleted yet; its extension
    // is the SyncResources driver_entry initialised.
    let sync_res = unsafe { (*device_object).DeviceExtension }.cast::<SyncResources>();
    // SAFETY: as above; the threads' slots, written by driver_entry only.
    let threads = unsafe { &(*sync_res).threads };
    // NULL: a thread not started, or one start_thread waited for.
    for &thread in threads.iter().filter(|thread| !thread.is_null()) {
        // SAFETY: a referenced thread object, signalled when the thread ends.
        let status = unsafe {
            KeWaitForSingleObject(thread, Executive, KERNEL_MODE, BOOLEAN::from(false), null_mut())
        };
        if !nt_success(status) {
            log_failure!("waiting for a thread failed: %08x", status);
        }
        // SAFETY: releases the reference start_thread took; not used after.
        let _ = unsafe { ObfDereferenceObject(thread) };
    }
    // SAFETY: the device driver_entry created, not deleted yet; the threads
    // that used its extension have ended.
    unsafe { IoDeleteDevice(device_object) };
}

/// `DriverEntry`: creates the device holding the `FAST_MUTEX` and the
/// `files_created` event, and starts the two threads.
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
    #[allow(clippy::cast_possible_truncation, reason = "96 bytes")]
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

    if !nt_success(status) {
        log_failure!("IoCreateDevice failed: %08x", status);
        return status;
    }

    // SAFETY: IoCreateDevice succeeded, so `device_object` is valid and its
    // extension is `extension_size` bytes of non-paged memory.
    let sync_res = unsafe { (*device_object).DeviceExtension }.cast::<SyncResources>();
    // SAFETY: the extension is `extension_size` bytes; taking a field's
    // address reads nothing.
    let file_mutex = unsafe { &raw mut (*sync_res).file_mutex };
    // SAFETY: as above.
    let files_created = unsafe { &raw mut (*sync_res).files_created };
    // SAFETY: as above.
    let threads = unsafe { &raw mut (*sync_res).threads };

    // Initialize the FAST_MUTEX
    // SAFETY: the extension is fresh, writable and used by nobody yet.
    unsafe { ex_initialize_fast_mutex(file_mutex) };
    // SAFETY: as above; a notification event, not signalled.
    unsafe { KeInitializeEvent(files_created, NotificationEvent, BOOLEAN::from(false)) };

    // SAFETY: the mutex and event are initialised; the extension outlives the thread
    // (unload waits for it, or start_thread did, or the driver stays loaded).
    let creation = unsafe { start_thread(driver_object, file_creation_thread, sync_res) };
    if creation.is_err() {
        // No FileCreationThread will set the event FileMoveThread waits for.
        // SAFETY: the event is initialised; PASSIVE_LEVEL.
        unsafe { signal_files_created(files_created) };
    }
    // SAFETY: as above.
    let moving = unsafe { start_thread(driver_object, file_move_thread, sync_res) };
    // SAFETY: the live extension; no thread reads `threads`, unload only after DriverEntry returns.
    unsafe { threads.write([creation.unwrap_or(null_mut()), moving.unwrap_or(null_mut())]) };

    // Succeeds even if a thread could not start: the other already runs.
    STATUS_SUCCESS
}

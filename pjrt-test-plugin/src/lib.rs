//! A PJRT plugin for bv's tests. It computes nothing real; it stands in for a multi-host
//! accelerator plugin so that everything bv does on the host side is checked on every CI
//! run, without accelerators:
//!
//! - **Several processes, one device list.** Each process that loads the plugin is one
//!   node: `node_id` and `num_nodes` (int64 create options, as the GPU plugin takes them) say
//!   which, and each node owns `devices_per_node` devices (option, or `BV_TEST_PLUGIN_DEVICES`,
//!   default 4). At client creation every node puts its device count into the key-value
//!   store and reads the others', as the GPU plugin exchanges topologies, and then presents
//!   the global device list: node-major ids, addressable only where owned.
//! - **The key-value store after creation.** Each launch of a program that spans nodes
//!   meets the other nodes through the store (every node puts `pjrt_test/launch/...` and
//!   waits for the others'), as collectives exchange their ids when they first run; a
//!   process that skips or adds a launch times out with an error saying which.
//! - **Argument checks as XLA does them.** Programs are StableHLO text; the plugin reads
//!   `@main`'s parameter and result types and their Shardy shardings (`sdy.mesh`,
//!   `#sdy.sharding`), and the compile options' partition count and device assignment.
//!   Execution checks every argument (a live buffer of this client, on the right device,
//!   of the per-device type), marks donated arguments deleted, and fills every output
//!   element on device `d` with the value `d + 1`.
//! - **A record.** Each client appends one line per call to a file ([`record`]): the
//!   `record_path` option, or `process-<node>.log` in `BV_TEST_PLUGIN_RECORD`.
//! - **Faults on request.** The `fail` option (comma-separated entry names) makes those
//!   entries fail; `zero_copy_without_event` makes zero-copy transfers alias the host bytes
//!   and return no done event.
//!
//! Executables serialize to their text and options, so deserializing works (without a
//! signature on bv's side). Entries the plugin lacks are null in its table.

mod buffer;
mod client;
mod error;
mod event;
mod executable;
mod program;
pub mod record;

use std::ffi::c_char;
use std::path::PathBuf;
use std::sync::OnceLock;

use xla_sys as sys;

/// Environment variable: a folder where each client writes `process-<node>.log`, unless
/// the `record_path` option names a file.
pub const RECORD_ENV: &str = "BV_TEST_PLUGIN_RECORD";
/// Environment variable: the devices each node owns (default 4).
pub const DEVICES_ENV: &str = "BV_TEST_PLUGIN_DEVICES";

/// The plugin file cargo built beside the running test binary (`target/<profile>/deps`,
/// where cargo puts a dependency's `cdylib`), or one level up.
pub fn library_path() -> PathBuf {
    let name = format!(
        "{}pjrt_test_plugin{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dirs = exe.ancestors().skip(1).take(2);
    let near = dirs.next().map(|d| d.join(&name)).unwrap_or_default();
    match dirs.next().map(|d| d.join(&name)) {
        Some(up) if !near.is_file() && up.is_file() => up,
        _ => near,
    }
}

/// Defines an entry point: `$body` runs with `$a` bound to the argument struct and returns
/// `Result<()>`; an error is handed to the caller, a panic becomes an INTERNAL error.
#[macro_export]
#[doc(hidden)]
macro_rules! entry {
    ($name:ident($args:ident) $a:ident => $body:expr) => {
        pub(crate) unsafe extern "C" fn $name(
            args: *mut xla_sys::$args,
        ) -> *mut xla_sys::PJRT_Error {
            let run = std::panic::AssertUnwindSafe(|| -> $crate::error::Result<()> {
                // SAFETY: the caller passes a valid argument struct for this entry.
                let $a = unsafe { &mut *args };
                $body
            });
            match std::panic::catch_unwind(run) {
                Ok(Ok(())) => std::ptr::null_mut(),
                Ok(Err(e)) => e.into_raw(),
                Err(_) => $crate::error::Error::new(
                    xla_sys::PJRT_Error_Code_INTERNAL,
                    concat!(stringify!($name), " panicked"),
                )
                .into_raw(),
            }
        }
    };
}

/// Copies a (pointer, length) string.
///
/// # Safety
/// Unless null or empty, `ptr` must point at `len` readable bytes.
pub(crate) unsafe fn string(ptr: *const c_char, len: usize) -> String {
    String::from_utf8_lossy(slice(ptr.cast::<u8>(), len)).into_owned()
}

/// A (pointer, length) list; null or empty is `&[]`.
///
/// # Safety
/// Unless null or empty, `ptr` must point at `len` values valid for `'a`.
pub(crate) unsafe fn slice<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(ptr, len)
    }
}

struct Table(sys::PJRT_Api);

// SAFETY: the table is immutable once built and its entries are thread-safe.
unsafe impl Send for Table {}
unsafe impl Sync for Table {}

/// The plugin's entry point.
#[no_mangle]
pub extern "C" fn GetPjrtApi() -> *const sys::PJRT_Api {
    static API: OnceLock<Table> = OnceLock::new();
    &API.get_or_init(table).0
}

fn table() -> Table {
    // SAFETY: all-zero is a valid PJRT_Api (null entries are entries the plugin lacks).
    let mut t: sys::PJRT_Api = unsafe { std::mem::zeroed() };
    t.struct_size = sys::PJRT_Api_STRUCT_SIZE as usize;
    t.pjrt_api_version.struct_size = sys::PJRT_Api_Version_STRUCT_SIZE as usize;
    t.pjrt_api_version.major_version = sys::PJRT_API_MAJOR as i32;
    t.pjrt_api_version.minor_version = sys::PJRT_API_MINOR as i32;
    t.PJRT_Error_Destroy = Some(error::destroy);
    t.PJRT_Error_Message = Some(error::message);
    t.PJRT_Error_GetCode = Some(error::get_code);
    t.PJRT_Plugin_Initialize = Some(client::initialize);
    t.PJRT_Plugin_Attributes = Some(client::attributes);
    t.PJRT_Event_Destroy = Some(event::destroy);
    t.PJRT_Event_IsReady = Some(event::is_ready);
    t.PJRT_Event_Error = Some(event::error);
    t.PJRT_Event_Await = Some(event::wait);
    t.PJRT_Event_OnReady = Some(event::on_ready);
    t.PJRT_Client_Create = Some(client::create);
    t.PJRT_Client_Destroy = Some(client::destroy);
    t.PJRT_Client_PlatformName = Some(client::platform_name);
    t.PJRT_Client_ProcessIndex = Some(client::process_index);
    t.PJRT_Client_PlatformVersion = Some(client::platform_version);
    t.PJRT_Client_Devices = Some(client::devices);
    t.PJRT_Client_AddressableDevices = Some(client::addressable_devices);
    t.PJRT_Client_Compile = Some(executable::compile);
    t.PJRT_Client_BufferFromHostBuffer = Some(buffer::from_host);
    t.PJRT_DeviceDescription_Id = Some(client::device_id);
    t.PJRT_DeviceDescription_ProcessIndex = Some(client::device_process_index);
    t.PJRT_DeviceDescription_Kind = Some(client::device_kind);
    t.PJRT_DeviceDescription_DebugString = Some(client::device_debug_string);
    t.PJRT_DeviceDescription_ToString = Some(client::device_to_string);
    t.PJRT_Device_GetDescription = Some(client::device_description);
    t.PJRT_Device_IsAddressable = Some(client::device_is_addressable);
    t.PJRT_Device_LocalHardwareId = Some(client::device_local_hardware_id);
    t.PJRT_Executable_Destroy = Some(executable::destroy_view);
    t.PJRT_Executable_Name = Some(executable::name);
    t.PJRT_Executable_NumOutputs = Some(executable::num_outputs);
    t.PJRT_Executable_OutputElementTypes = Some(executable::output_types);
    t.PJRT_Executable_OutputDimensions = Some(executable::output_dims);
    t.PJRT_Executable_Serialize = Some(executable::serialize);
    t.PJRT_Executable_DeserializeAndLoad = Some(executable::deserialize);
    t.PJRT_LoadedExecutable_Destroy = Some(executable::destroy);
    t.PJRT_LoadedExecutable_GetExecutable = Some(executable::view);
    t.PJRT_LoadedExecutable_AddressableDevices = Some(executable::addressable_devices);
    t.PJRT_LoadedExecutable_Execute = Some(executable::execute);
    t.PJRT_Buffer_Destroy = Some(buffer::destroy);
    t.PJRT_Buffer_ElementType = Some(buffer::element_type);
    t.PJRT_Buffer_Dimensions = Some(buffer::dimensions);
    t.PJRT_Buffer_OnDeviceSizeInBytes = Some(buffer::size_in_bytes);
    t.PJRT_Buffer_Device = Some(buffer::device);
    t.PJRT_Buffer_IsDeleted = Some(buffer::is_deleted);
    t.PJRT_Buffer_CopyToDevice = Some(buffer::copy_to_device);
    t.PJRT_Buffer_ToHostBuffer = Some(buffer::to_host);
    t.PJRT_Buffer_ReadyEvent = Some(buffer::ready_event);
    Table(t)
}

//! `PJRT_Client` and `PJRT_Device`: the nodes of a job, their devices, and the key-value
//! store the client keeps from its creation on.

use std::collections::{HashMap, HashSet};
use std::ffi::c_char;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use xla_sys as sys;

use crate::error::{Error, Result};
use crate::record::{list, Recorder};

/// How long a node waits for the others, at creation and at each launch.
pub(crate) const RENDEZVOUS_MS: i32 = 120_000;

pub(crate) struct Device {
    pub(crate) id: i32,
    pub(crate) node: i32,
    pub(crate) local: i32,
    pub(crate) addressable: bool,
    kind: String,
    debug: String,
}

/// The key-value callbacks of `PJRT_Client_Create`, kept for the client's life.
struct Kv {
    get: sys::PJRT_KeyValueGetCallback,
    get_arg: *mut std::ffi::c_void,
    put: sys::PJRT_KeyValuePutCallback,
    put_arg: *mut std::ffi::c_void,
}

pub(crate) struct Client {
    pub(crate) node: usize,
    pub(crate) num_nodes: usize,
    /// Every device of the job; the list is complete before handles into it are taken.
    pub(crate) devices: Vec<Device>,
    raw_devices: Vec<*mut sys::PJRT_Device>,
    raw_addressable: Vec<*mut sys::PJRT_Device>,
    kv: Option<Kv>,
    pub(crate) record: Recorder,
    fail: HashSet<String>,
    pub(crate) zero_copy_without_event: bool,
    /// Addresses of this client's live buffers, to check arguments against.
    pub(crate) live_buffers: Mutex<HashSet<usize>>,
    /// Launches so far of each spanning program, by fingerprint.
    pub(crate) launches: Mutex<HashMap<u64, u64>>,
    next_id: AtomicU64,
}

// SAFETY: the raw pointers are handles into this client's own boxes, and the key-value
// callbacks are thread-safe by the PJRT contract.
unsafe impl Send for Client {}
unsafe impl Sync for Client {}

impl Client {
    /// Fails with `entry`'s error when the `fail` option names it.
    pub(crate) fn check_fault(&self, entry: &str) -> Result<()> {
        if self.fail.contains(entry) {
            return Err(Error::new(
                sys::PJRT_Error_Code_INTERNAL,
                format!("{entry} failed on request (option fail)"),
            ));
        }
        Ok(())
    }

    /// A fresh id for a buffer or executable of this client.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The device behind a handle, if it is one of this client's.
    pub(crate) fn device(&self, raw: *mut sys::PJRT_Device) -> Result<&Device> {
        self.devices
            .iter()
            .find(|d| std::ptr::eq::<Device>(*d, raw.cast()))
            .ok_or_else(|| Error::invalid("the device belongs to another client"))
    }

    /// The handle of the device with global id `id`.
    pub(crate) fn device_by_id(&self, id: i64) -> Option<*mut sys::PJRT_Device> {
        self.devices
            .iter()
            .position(|d| i64::from(d.id) == id)
            .map(|k| self.raw_devices[k])
    }

    /// Sets `key` in the job's store.
    pub(crate) fn kv_put(&self, key: &str, value: &[u8]) -> Result<()> {
        let kv = self.kv()?;
        // SAFETY: plain C data; all-zero is valid.
        let mut a: sys::PJRT_KeyValuePutCallback_Args = unsafe { std::mem::zeroed() };
        a.struct_size = sys::PJRT_KeyValuePutCallback_Args_STRUCT_SIZE as usize;
        a.key = key.as_ptr().cast();
        a.key_size = key.len();
        a.value = value.as_ptr().cast();
        a.value_size = value.len();
        let mut make_error: sys::PJRT_CallbackError = Some(crate::error::callback_error);
        a.callback_error = &mut make_error;
        a.user_arg = kv.put_arg;
        let put = kv.put.ok_or_else(|| Error::invalid("no kv_put callback"))?;
        // SAFETY: the callback the client was created with, with its own user argument.
        let err = unsafe { put(&mut a) };
        self.record.call(
            "kv_put",
            &[("key", key.into()), ("ok", (err.is_null()).to_string())],
        );
        if err.is_null() {
            Ok(())
        } else {
            // SAFETY: the callback made the error with `callback_error`.
            Err(unsafe { Error::from_raw(err) })
        }
    }

    /// Waits up to `timeout_ms` for `key` in the job's store.
    pub(crate) fn kv_get(&self, key: &str, timeout_ms: i32) -> Result<Vec<u8>> {
        let kv = self.kv()?;
        // SAFETY: plain C data; all-zero is valid.
        let mut a: sys::PJRT_KeyValueGetCallback_Args = unsafe { std::mem::zeroed() };
        a.struct_size = sys::PJRT_KeyValueGetCallback_Args_STRUCT_SIZE as usize;
        a.key = key.as_ptr().cast();
        a.key_size = key.len();
        a.timeout_in_ms = timeout_ms;
        let mut make_error: sys::PJRT_CallbackError = Some(crate::error::callback_error);
        a.callback_error = &mut make_error;
        a.user_arg = kv.get_arg;
        let get = kv.get.ok_or_else(|| Error::invalid("no kv_get callback"))?;
        // SAFETY: as in `kv_put`.
        let err = unsafe { get(&mut a) };
        self.record.call(
            "kv_get",
            &[("key", key.into()), ("ok", (err.is_null()).to_string())],
        );
        if !err.is_null() {
            // SAFETY: as in `kv_put`.
            return Err(unsafe { Error::from_raw(err) });
        }
        // SAFETY: on success the callback returned `value_size` bytes and their deleter.
        let value = unsafe { crate::slice(a.value.cast::<u8>(), a.value_size) }.to_vec();
        if let Some(delete) = a.value_deleter_callback {
            // SAFETY: handing the value back to its own deleter, once.
            unsafe { delete(a.value) };
        }
        Ok(value)
    }

    fn kv(&self) -> Result<&Kv> {
        self.kv.as_ref().ok_or_else(|| {
            Error::new(
                sys::PJRT_Error_Code_FAILED_PRECONDITION,
                "a multi-node client needs the key-value callbacks of PJRT_Client_Create",
            )
        })
    }
}

/// The client behind a handle.
///
/// # Safety
/// `raw` must be a live client made by [`create`].
pub(crate) unsafe fn get<'a>(raw: *mut sys::PJRT_Client) -> &'a Client {
    &*raw.cast::<Client>()
}

/// The device behind a handle (a description is the same object).
///
/// # Safety
/// `raw` must be a device handle of a live client.
pub(crate) unsafe fn device<'a, T>(raw: *mut T) -> &'a Device {
    &*raw.cast::<Device>()
}

crate::entry!(initialize(PJRT_Plugin_Initialize_Args) _a => Ok(()));

crate::entry!(attributes(PJRT_Plugin_Attributes_Args) a => {
    struct Attrs(Vec<sys::PJRT_NamedValue>);
    // SAFETY: the list points at static data only.
    unsafe impl Send for Attrs {}
    unsafe impl Sync for Attrs {}
    static ATTRS: std::sync::OnceLock<Attrs> = std::sync::OnceLock::new();
    static CURRENT: [i64; 3] = [1, 13, 3];
    static MINIMUM: [i64; 3] = [0, 9, 0];
    let attrs = ATTRS.get_or_init(|| {
        let version = |name: &'static str, v: &'static [i64; 3]| {
            // SAFETY: plain C data; all-zero is valid.
            let mut nv: sys::PJRT_NamedValue = unsafe { std::mem::zeroed() };
            nv.struct_size = sys::PJRT_NamedValue_STRUCT_SIZE as usize;
            nv.name = name.as_ptr().cast::<c_char>();
            nv.name_size = name.len();
            nv.type_ = sys::PJRT_NamedValue_kInt64List;
            nv.__bindgen_anon_1.int64_array_value = v.as_ptr();
            nv.value_size = v.len();
            nv
        };
        Attrs(vec![
            version("stablehlo_current_version", &CURRENT),
            version("stablehlo_minimum_version", &MINIMUM),
        ])
    });
    a.attributes = attrs.0.as_ptr();
    a.num_attributes = attrs.0.len();
    Ok(())
});

/// The create options this plugin reads.
#[derive(Default)]
struct Options {
    node: usize,
    num_nodes: usize,
    devices_per_node: usize,
    record_path: Option<PathBuf>,
    fail: HashSet<String>,
    zero_copy_without_event: bool,
}

/// Reads the named values, refusing unknown names and wrong types as XLA's plugins do.
fn options(list: &[sys::PJRT_NamedValue]) -> Result<Options> {
    let mut o = Options {
        num_nodes: 1,
        devices_per_node: std::env::var(crate::DEVICES_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(4),
        ..Options::default()
    };
    for nv in list {
        // SAFETY: the caller's named values are valid for the call.
        let name = unsafe { crate::string(nv.name, nv.name_size) };
        let v = &nv.__bindgen_anon_1;
        let int = || -> Result<usize> {
            if nv.type_ != sys::PJRT_NamedValue_kInt64 {
                return Err(Error::invalid(format!("option {name} must be an int64")));
            }
            // SAFETY: the type says which union member is set.
            usize::try_from(unsafe { v.int64_value })
                .map_err(|_| Error::invalid(format!("option {name} is negative")))
        };
        let text = || -> Result<String> {
            if nv.type_ != sys::PJRT_NamedValue_kString {
                return Err(Error::invalid(format!("option {name} must be a string")));
            }
            // SAFETY: as above.
            Ok(unsafe { crate::string(v.string_value, nv.value_size) })
        };
        match name.as_str() {
            "node_id" => o.node = int()?,
            "num_nodes" => o.num_nodes = int()?,
            "devices_per_node" | "cpu_device_count" => o.devices_per_node = int()?,
            "record_path" => o.record_path = Some(text()?.into()),
            "fail" => o.fail = text()?.split(',').map(str::to_string).collect(),
            "zero_copy_without_event" => {
                if nv.type_ != sys::PJRT_NamedValue_kBool {
                    return Err(Error::invalid(format!("option {name} must be a bool")));
                }
                // SAFETY: as above.
                o.zero_copy_without_event = unsafe { v.bool_value };
            }
            other => return Err(Error::invalid(format!("unknown create option {other:?}"))),
        }
    }
    if o.num_nodes == 0 || o.node >= o.num_nodes || o.devices_per_node == 0 {
        return Err(Error::invalid(format!(
            "node_id {} of num_nodes {} with {} devices per node",
            o.node, o.num_nodes, o.devices_per_node
        )));
    }
    if o.record_path.is_none() {
        o.record_path = std::env::var_os(crate::RECORD_ENV)
            .map(|d| PathBuf::from(d).join(format!("process-{}.log", o.node)));
    }
    Ok(o)
}

crate::entry!(create(PJRT_Client_Create_Args) a => {
    // SAFETY: the caller's option list is valid for the call.
    let o = options(unsafe { crate::slice(a.create_options, a.num_options) })?;
    let record = Recorder::open(o.record_path.as_deref())
        .map_err(|e| Error::invalid(format!("record_path: {e}")))?;
    let kv = a.kv_get_callback.map(|_| Kv {
        get: a.kv_get_callback,
        get_arg: a.kv_get_user_arg,
        put: a.kv_put_callback,
        put_arg: a.kv_put_user_arg,
    });
    let mut client = Client {
        node: o.node,
        num_nodes: o.num_nodes,
        devices: Vec::new(),
        raw_devices: Vec::new(),
        raw_addressable: Vec::new(),
        kv,
        record,
        fail: o.fail,
        zero_copy_without_event: o.zero_copy_without_event,
        live_buffers: Mutex::new(HashSet::new()),
        launches: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
    };
    // Topology exchange: every node publishes its device count and reads the others'.
    let mut counts = vec![o.devices_per_node; o.num_nodes];
    if o.num_nodes > 1 {
        client.kv_put(
            &format!("pjrt_test/node/{}", o.node),
            o.devices_per_node.to_string().as_bytes(),
        )?;
        for (n, count) in counts.iter_mut().enumerate() {
            let v = client.kv_get(&format!("pjrt_test/node/{n}"), RENDEZVOUS_MS)?;
            *count = String::from_utf8_lossy(&v)
                .parse()
                .map_err(|_| Error::invalid(format!("node {n} published {v:?}")))?;
        }
    }
    let mut id = 0;
    for (n, &count) in counts.iter().enumerate() {
        for local in 0..count {
            client.devices.push(Device {
                id,
                node: n as i32,
                local: local as i32,
                addressable: n == o.node,
                kind: "bv test device".into(),
                debug: format!("TestDevice(id={id}, process={n})"),
            });
            id += 1;
        }
    }
    for d in &mut client.devices {
        let raw: *mut sys::PJRT_Device = (d as *mut Device).cast();
        client.raw_devices.push(raw);
        if d.addressable {
            client.raw_addressable.push(raw);
        }
    }
    let addressable: Vec<i32> = client.devices.iter().filter(|d| d.addressable).map(|d| d.id).collect();
    client.record.call(
        "PJRT_Client_Create",
        &[
            ("node", o.node.to_string()),
            ("nodes", o.num_nodes.to_string()),
            ("devices", client.devices.len().to_string()),
            ("addressable", list(addressable)),
        ],
    );
    a.client = Box::into_raw(Box::new(client)).cast();
    Ok(())
});

crate::entry!(destroy(PJRT_Client_Destroy_Args) a => {
    // SAFETY: the caller hands back a live client, once.
    let client = unsafe { Box::from_raw(a.client.cast::<Client>()) };
    let live = client.live_buffers.lock().unwrap_or_else(|e| e.into_inner()).len();
    client.record.call("PJRT_Client_Destroy", &[("live_buffers", live.to_string())]);
    Ok(())
});

const PLATFORM: &str = "bv-test";
const VERSION: &str = "pjrt-test-plugin";

crate::entry!(platform_name(PJRT_Client_PlatformName_Args) a => {
    // SAFETY: a live client.
    unsafe { get(a.client) }.check_fault("PJRT_Client_PlatformName")?;
    a.platform_name = PLATFORM.as_ptr().cast();
    a.platform_name_size = PLATFORM.len();
    Ok(())
});

crate::entry!(platform_version(PJRT_Client_PlatformVersion_Args) a => {
    a.platform_version = VERSION.as_ptr().cast();
    a.platform_version_size = VERSION.len();
    Ok(())
});

crate::entry!(process_index(PJRT_Client_ProcessIndex_Args) a => {
    // SAFETY: a live client.
    a.process_index = unsafe { get(a.client) }.node as i32;
    Ok(())
});

crate::entry!(devices(PJRT_Client_Devices_Args) a => {
    // SAFETY: a live client.
    let c = unsafe { get(a.client) };
    c.check_fault("PJRT_Client_Devices")?;
    a.devices = c.raw_devices.as_ptr();
    a.num_devices = c.raw_devices.len();
    Ok(())
});

crate::entry!(addressable_devices(PJRT_Client_AddressableDevices_Args) a => {
    // SAFETY: a live client.
    let c = unsafe { get(a.client) };
    a.addressable_devices = c.raw_addressable.as_ptr();
    a.num_addressable_devices = c.raw_addressable.len();
    Ok(())
});

crate::entry!(device_description(PJRT_Device_GetDescription_Args) a => {
    a.device_description = a.device.cast();
    Ok(())
});

crate::entry!(device_id(PJRT_DeviceDescription_Id_Args) a => {
    // SAFETY: a device handle of a live client.
    a.id = unsafe { device(a.device_description) }.id;
    Ok(())
});

crate::entry!(device_process_index(PJRT_DeviceDescription_ProcessIndex_Args) a => {
    // SAFETY: as above.
    a.process_index = unsafe { device(a.device_description) }.node;
    Ok(())
});

crate::entry!(device_kind(PJRT_DeviceDescription_Kind_Args) a => {
    // SAFETY: as above.
    let d = unsafe { device(a.device_description) };
    a.device_kind = d.kind.as_ptr().cast();
    a.device_kind_size = d.kind.len();
    Ok(())
});

crate::entry!(device_debug_string(PJRT_DeviceDescription_DebugString_Args) a => {
    // SAFETY: as above.
    let d = unsafe { device(a.device_description) };
    a.debug_string = d.debug.as_ptr().cast();
    a.debug_string_size = d.debug.len();
    Ok(())
});

crate::entry!(device_to_string(PJRT_DeviceDescription_ToString_Args) a => {
    // SAFETY: as above.
    let d = unsafe { device(a.device_description) };
    a.to_string = d.debug.as_ptr().cast();
    a.to_string_size = d.debug.len();
    Ok(())
});

crate::entry!(device_is_addressable(PJRT_Device_IsAddressable_Args) a => {
    // SAFETY: as above.
    a.is_addressable = unsafe { device(a.device) }.addressable;
    Ok(())
});

crate::entry!(device_local_hardware_id(PJRT_Device_LocalHardwareId_Args) a => {
    // SAFETY: as above.
    a.local_hardware_id = unsafe { device(a.device) }.local;
    Ok(())
});

//! `PJRT_Client`: the entry point to a platform's devices, compiler and memory.

use std::ffi::c_char;
use std::sync::Arc;

use xla_sys as sys;

use super::api::{args, call, slice_from, string_from};
use super::buffer::{Buffer, HostData};
use super::compile_options::CompileOptions;
use super::device::{Device, DeviceInfo};
use super::error::{Error, Result};
use super::executable::LoadedExecutable;
use super::kv_store::{self, KeyValueStore, KvHandle};
use super::named_value::{NamedValue, RawList};
use super::plugin::Plugin;
use super::provision;
use super::signature::Signature;
use crate::{DType, Element};

/// Named options for `PJRT_Client_Create`, and the key-value store multi-process clients
/// share.
///
/// Known names: CPU `cpu_device_count` (int, plugin default 4); GPU `platform_name`,
/// `allocator` (`default|platform|bfc|cuda_async`), `memory_fraction` (float),
/// `preallocate` (bool), `visible_devices` (ints), `node_id` and `num_nodes` (ints).
#[derive(Clone, Default)]
pub struct ClientOptions {
    values: Vec<(String, NamedValue)>,
    kv_store: Option<Arc<dyn KeyValueStore>>,
}

impl ClientOptions {
    /// No options: the plugin's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets one named option.
    pub fn set(mut self, name: &str, value: impl Into<NamedValue>) -> Self {
        self.values.retain(|(k, _)| k != name);
        self.values.push((name.to_string(), value.into()));
        self
    }

    /// True when nothing is set: the plugin's defaults.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.kv_store.is_none()
    }

    /// The number of virtual CPU devices (CPU plugins only).
    pub fn cpu_device_count(self, n: usize) -> Self {
        self.set("cpu_device_count", n as i64)
    }

    /// The store the processes of one job share (multi-host GPU/TPU).
    pub fn kv_store(mut self, store: Arc<dyn KeyValueStore>) -> Self {
        self.kv_store = Some(store);
        self
    }
}

pub(crate) struct ClientInner {
    pub(crate) plugin: &'static Plugin,
    pub(crate) raw: *mut sys::PJRT_Client,
    pub(crate) devices: Vec<DeviceInfo>,
    addressable: Vec<usize>,
    platform_name: String,
    platform_version: String,
    process_index: i32,
    _kv: Option<KvHandle>,
}

// SAFETY: PJRT clients are thread-safe by contract.
unsafe impl Send for ClientInner {}
unsafe impl Sync for ClientInner {}

impl Drop for ClientInner {
    fn drop(&mut self) {
        let mut a = args!(PJRT_Client_Destroy_Args { client: self.raw });
        let _ = call!(&self.plugin.api, PJRT_Client_Destroy, &mut a);
    }
}

impl ClientInner {
    /// Reads the platform, the process index and the devices of a new client.
    fn read_properties(&mut self) -> Result<()> {
        let (api, raw) = (&self.plugin.api, self.raw);
        let mut name = args!(PJRT_Client_PlatformName_Args { client: raw });
        call!(api, PJRT_Client_PlatformName, &mut name)?;
        let mut version = args!(PJRT_Client_PlatformVersion_Args { client: raw });
        call!(api, PJRT_Client_PlatformVersion, &mut version)?;
        let mut pi = args!(PJRT_Client_ProcessIndex_Args { client: raw });
        call!(api, PJRT_Client_ProcessIndex, &mut pi)?;
        let mut devs = args!(PJRT_Client_Devices_Args { client: raw });
        call!(api, PJRT_Client_Devices, &mut devs)?;
        // SAFETY: the device list lives as long as the client.
        for &d in unsafe { slice_from(devs.devices, devs.num_devices) } {
            self.devices.push(DeviceInfo::read(self.plugin, d)?);
        }
        let mut addr = args!(PJRT_Client_AddressableDevices_Args { client: raw });
        call!(api, PJRT_Client_AddressableDevices, &mut addr)?;
        // SAFETY: as above.
        let addr_raws =
            unsafe { slice_from(addr.addressable_devices, addr.num_addressable_devices) };
        self.addressable = addr_raws
            .iter()
            .filter_map(|r| self.devices.iter().position(|d| d.raw == *r))
            .collect();
        // SAFETY: the strings live as long as the client.
        unsafe {
            self.platform_name = string_from(name.platform_name, name.platform_name_size);
            self.platform_version =
                string_from(version.platform_version, version.platform_version_size);
        }
        self.process_index = pi.process_index;
        Ok(())
    }
}

/// A PJRT client: devices, compilation, host↔device transfers. Cheap to clone; shared
/// between threads.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<ClientInner>,
}

impl Client {
    /// Creates a client of `plugin` with `options`.
    pub fn new(plugin: &'static Plugin, options: &ClientOptions) -> Result<Client> {
        let list = RawList::new(&options.values);
        let kv: Option<KvHandle> = options.kv_store.clone().map(Box::new);
        let mut a = args!(PJRT_Client_Create_Args {
            create_options: list.raw.as_ptr(),
            num_options: list.raw.len(),
        });
        if let Some(store) = &kv {
            kv_store::install(&mut a, store);
        }
        call!(&plugin.api, PJRT_Client_Create, &mut a)?;
        // Owned from here on: an error below destroys the client (and only then frees the
        // key-value store its callbacks point at).
        let mut inner = ClientInner {
            plugin,
            raw: a.client,
            devices: Vec::new(),
            addressable: Vec::new(),
            platform_name: String::new(),
            platform_version: String::new(),
            process_index: 0,
            _kv: kv,
        };
        inner.read_properties()?;
        Ok(Client {
            inner: Arc::new(inner),
        })
    }

    /// A CPU client with one device, as JAX's default; the plugin is found or fetched by
    /// [`provision::cpu_plugin`].
    pub fn cpu() -> Result<Client> {
        Client::cpu_with_devices(1)
    }

    /// The client for the platform named by `BV_PLATFORM` (`cpu`, the default, with one
    /// device; `cuda`; `tpu`), its plugin found by [`provision::find_plugin`].
    pub fn from_env() -> Result<Client> {
        Client::for_platform(provision::Platform::from_env()?, ClientOptions::new())
    }

    /// A client of `platform`'s plugin ([`provision::find_plugin`]) with `options`; a CPU
    /// client has one device unless `options` say otherwise.
    pub fn for_platform(platform: provision::Platform, options: ClientOptions) -> Result<Client> {
        let plugin = Plugin::load(provision::find_plugin(platform)?)?;
        let has_count = options.values.iter().any(|(k, _)| k == "cpu_device_count");
        let options = if platform == provision::Platform::Cpu && !has_count {
            options.cpu_device_count(1)
        } else {
            options
        };
        Client::new(plugin, &options)
    }

    /// A CPU client with `n` virtual devices (for sharding on one machine).
    pub fn cpu_with_devices(n: usize) -> Result<Client> {
        let plugin = Plugin::load(provision::cpu_plugin()?)?;
        Client::new(plugin, &ClientOptions::new().cpu_device_count(n))
    }

    /// The plugin behind this client.
    pub fn plugin(&self) -> &'static Plugin {
        self.inner.plugin
    }

    /// The platform: `cpu`, `cuda`, `tpu`, ...
    pub fn platform_name(&self) -> &str {
        &self.inner.platform_name
    }

    /// The platform's version text (CUDA version, libtpu version, ...).
    pub fn platform_version(&self) -> &str {
        &self.inner.platform_version
    }

    /// This process's index in a multi-process job (0 when alone).
    pub fn process_index(&self) -> i32 {
        self.inner.process_index
    }

    /// Every device of the job, addressable or not.
    pub fn devices(&self) -> Vec<Device> {
        (0..self.inner.devices.len())
            .map(|index| Device {
                client: self.inner.clone(),
                index,
            })
            .collect()
    }

    /// The devices this process can use.
    pub fn addressable_devices(&self) -> Vec<Device> {
        self.inner
            .addressable
            .iter()
            .map(|&index| Device {
                client: self.inner.clone(),
                index,
            })
            .collect()
    }

    /// Compiles a StableHLO module given as MLIR text. A malformed program fails with the
    /// compiler's diagnostics verbatim.
    pub fn compile(&self, mlir: &str, options: &CompileOptions) -> Result<LoadedExecutable> {
        let signature = Signature::parse(mlir).ok();
        let format = b"mlir";
        let program = args!(PJRT_Program {
            code: mlir.as_ptr().cast_mut().cast::<c_char>(),
            code_size: mlir.len(),
            format: format.as_ptr().cast::<c_char>(),
            format_size: format.len(),
        });
        let opts = options.encode();
        let mut a = args!(PJRT_Client_Compile_Args {
            client: self.inner.raw,
            program: &program,
            compile_options: opts.as_ptr().cast::<c_char>(),
            compile_options_size: opts.len(),
        });
        call!(&self.inner.plugin.api, PJRT_Client_Compile, &mut a)?;
        LoadedExecutable::from_raw(self.clone(), a.executable, signature)
    }

    /// Loads an executable written by [`LoadedExecutable::serialize`] with the same plugin
    /// version.
    pub fn deserialize_executable(&self, bytes: &[u8]) -> Result<LoadedExecutable> {
        let mut a = args!(PJRT_Executable_DeserializeAndLoad_Args {
            client: self.inner.raw,
            serialized_executable: bytes.as_ptr().cast::<c_char>(),
            serialized_executable_size: bytes.len(),
        });
        call!(
            &self.inner.plugin.api,
            PJRT_Executable_DeserializeAndLoad,
            &mut a
        )?;
        LoadedExecutable::from_raw(self.clone(), a.loaded_executable, None)
    }

    /// [`Client::deserialize_executable`] for an executable compiled from `mlir`, whose
    /// signature then checks the arguments of every call as after [`Client::compile`].
    pub fn deserialize_executable_for(&self, bytes: &[u8], mlir: &str) -> Result<LoadedExecutable> {
        let exe = self.deserialize_executable(bytes)?;
        Ok(exe.with_signature(Signature::parse(mlir).ok()))
    }

    /// Copies typed host data to `device`. Returns once the plugin no longer needs `data`
    /// (the transfer itself may still be running).
    pub fn buffer_from_host<T: Element>(
        &self,
        data: &[T],
        dims: &[i64],
        device: &Device,
    ) -> Result<Buffer> {
        self.buffer_from_host_bytes(crate::dtype::as_bytes(data), T::DTYPE, dims, device)
    }

    /// Copies dense row-major host bytes of element type `dtype` to `device`, waiting only
    /// until the plugin is done with `bytes`.
    pub fn buffer_from_host_bytes(
        &self,
        bytes: &[u8],
        dtype: DType,
        dims: &[i64],
        device: &Device,
    ) -> Result<Buffer> {
        Buffer::from_host(self, HostData::Borrowed(bytes), dtype, dims, device)
    }

    /// Moves host bytes to `device` without waiting or copying where the plugin can alias
    /// them (CPU); `bytes` lives until the plugin signals it is done with them.
    pub fn buffer_from_host_owned(
        &self,
        bytes: Vec<u8>,
        dtype: DType,
        dims: &[i64],
        device: &Device,
    ) -> Result<Buffer> {
        Buffer::from_host(self, HostData::Owned(bytes), dtype, dims, device)
    }

    /// Checks that `device` belongs to this client.
    pub(crate) fn check_device(&self, op: &'static str, device: &Device) -> Result<()> {
        if Arc::ptr_eq(&device.client, &self.inner) {
            Ok(())
        } else {
            Err(Error::invalid(
                op,
                format!("device {} belongs to another client", device.id()),
            ))
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("platform", &self.inner.platform_name)
            .field("devices", &self.inner.devices.len())
            .field("plugin", &self.inner.plugin.path())
            .finish()
    }
}

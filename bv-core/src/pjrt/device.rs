//! `PJRT_Device`: one accelerator (or one virtual CPU device) of a client.

use std::fmt;
use std::sync::Arc;

use xla_sys as sys;

use super::api::{args, call, string_from};
use super::client::ClientInner;
use super::error::Result;
use super::plugin::Plugin;

/// What a device reports about itself, read once when the client is created.
#[derive(Clone, Debug)]
pub(crate) struct DeviceInfo {
    pub(crate) raw: *mut sys::PJRT_Device,
    pub(crate) id: i32,
    pub(crate) process_index: i32,
    pub(crate) kind: String,
    pub(crate) debug: String,
    pub(crate) local_hardware_id: i32,
    pub(crate) addressable: bool,
}

impl DeviceInfo {
    pub(crate) fn read(plugin: &'static Plugin, raw: *mut sys::PJRT_Device) -> Result<DeviceInfo> {
        let api = &plugin.api;
        let mut d = args!(PJRT_Device_GetDescription_Args { device: raw });
        call!(api, PJRT_Device_GetDescription, &mut d)?;
        let desc = d.device_description;
        let mut id = args!(PJRT_DeviceDescription_Id_Args {
            device_description: desc
        });
        call!(api, PJRT_DeviceDescription_Id, &mut id)?;
        let mut pi = args!(PJRT_DeviceDescription_ProcessIndex_Args {
            device_description: desc
        });
        call!(api, PJRT_DeviceDescription_ProcessIndex, &mut pi)?;
        let mut kind = args!(PJRT_DeviceDescription_Kind_Args {
            device_description: desc
        });
        call!(api, PJRT_DeviceDescription_Kind, &mut kind)?;
        let mut dbg = args!(PJRT_DeviceDescription_DebugString_Args {
            device_description: desc
        });
        call!(api, PJRT_DeviceDescription_DebugString, &mut dbg)?;
        let mut addressable = args!(PJRT_Device_IsAddressable_Args { device: raw });
        call!(api, PJRT_Device_IsAddressable, &mut addressable)?;
        let mut hw = args!(PJRT_Device_LocalHardwareId_Args { device: raw });
        let local_hardware_id = match call!(api, PJRT_Device_LocalHardwareId, &mut hw) {
            Ok(()) => hw.local_hardware_id,
            Err(_) => -1,
        };
        // SAFETY: description strings live as long as the device.
        let (kind, debug) = unsafe {
            (
                string_from(kind.device_kind, kind.device_kind_size),
                string_from(dbg.debug_string, dbg.debug_string_size),
            )
        };
        Ok(DeviceInfo {
            raw,
            id: id.id,
            process_index: pi.process_index,
            kind,
            debug,
            local_hardware_id,
            addressable: addressable.is_addressable,
        })
    }
}

/// A device of a [`super::Client`]; cheap to clone, keeps its client alive.
#[derive(Clone)]
pub struct Device {
    pub(crate) client: Arc<ClientInner>,
    pub(crate) index: usize,
}

impl Device {
    pub(crate) fn info(&self) -> &DeviceInfo {
        &self.client.devices[self.index]
    }

    pub(crate) fn raw(&self) -> *mut sys::PJRT_Device {
        self.info().raw
    }

    /// The global device id (unique across processes).
    pub fn id(&self) -> i32 {
        self.info().id
    }

    /// The index of the process that owns the device.
    pub fn process_index(&self) -> i32 {
        self.info().process_index
    }

    /// The kind of device, e.g. `cpu`, `NVIDIA H100 80GB HBM3`, `TPU v4`.
    pub fn kind(&self) -> &str {
        &self.info().kind
    }

    /// The plugin's hardware id of the device on its host, or -1 when unknown.
    pub fn local_hardware_id(&self) -> i32 {
        self.info().local_hardware_id
    }

    /// True when this process can put data on the device and run on it.
    pub fn is_addressable(&self) -> bool {
        self.info().addressable
    }
}

impl PartialEq for Device {
    fn eq(&self, other: &Self) -> bool {
        self.raw() == other.raw()
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.info().debug)
    }
}

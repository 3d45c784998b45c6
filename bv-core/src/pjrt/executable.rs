//! `PJRT_LoadedExecutable`: a compiled program, ready to run on its devices.

use std::collections::BTreeMap;

use xla_sys as sys;

use super::api::{args, call, slice_from, string_from};
use super::buffer::{from_pjrt, Buffer};
use super::client::Client;
use super::device::Device;
use super::error::{offered, Error, Result};
use super::event::Event;
use super::in_flight;
use super::named_value::{read_list, NamedValue};
use super::plugin::Plugin;
use super::signature::Signature;
use crate::DType;

/// Options for one execution.
#[derive(Clone, Debug, Default)]
pub struct ExecuteOptions {
    /// Parameters that must not be donated even if the program aliases them (for a buffer
    /// passed twice in one call).
    pub non_donatable_input_indices: Vec<i64>,
    /// An id shared by the processes of a multi-host launch of the same step.
    pub launch_id: i32,
}

/// What the compiler reports about an executable's memory, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    pub generated_code_size: i64,
    pub argument_size: i64,
    pub output_size: i64,
    pub alias_size: i64,
    pub temp_size: i64,
    pub peak_memory: i64,
}

/// A compiled program on its addressable devices. Freed on drop.
pub struct LoadedExecutable {
    raw: *mut sys::PJRT_LoadedExecutable,
    client: Client,
    signature: Option<Signature>,
    devices: Vec<Device>,
    num_outputs: usize,
}

// SAFETY: PJRT executables may be run and freed from any thread.
unsafe impl Send for LoadedExecutable {}
unsafe impl Sync for LoadedExecutable {}

impl LoadedExecutable {
    pub(crate) fn from_raw(
        client: Client,
        raw: *mut sys::PJRT_LoadedExecutable,
        signature: Option<Signature>,
    ) -> Result<LoadedExecutable> {
        let mut exe = LoadedExecutable {
            raw,
            client,
            signature,
            devices: Vec::new(),
            num_outputs: 0,
        };
        let api = &exe.client.inner.plugin.api;
        let mut a = args!(PJRT_LoadedExecutable_AddressableDevices_Args { executable: raw });
        call!(api, PJRT_LoadedExecutable_AddressableDevices, &mut a)?;
        // SAFETY: the device list lives as long as the executable.
        let raws = unsafe { slice_from(a.addressable_devices, a.num_addressable_devices) };
        let all = exe.client.devices();
        exe.devices =
            raws.iter()
                .map(|r| {
                    all.iter().find(|d| d.raw() == *r).cloned().ok_or_else(|| {
                        Error::invalid("compile", "the plugin named an unknown device")
                    })
                })
                .collect::<Result<_>>()?;
        exe.num_outputs = exe.with_executable(|e| {
            let mut n = args!(PJRT_Executable_NumOutputs_Args { executable: e });
            call!(api, PJRT_Executable_NumOutputs, &mut n)?;
            Ok(n.num_outputs)
        })?;
        Ok(exe)
    }

    /// Runs `f` with the executable's `PJRT_Executable` view, freeing it afterwards.
    fn with_executable<T>(
        &self,
        f: impl FnOnce(*mut sys::PJRT_Executable) -> Result<T>,
    ) -> Result<T> {
        let api = &self.client.inner.plugin.api;
        let mut g = args!(PJRT_LoadedExecutable_GetExecutable_Args {
            loaded_executable: self.raw
        });
        call!(api, PJRT_LoadedExecutable_GetExecutable, &mut g)?;
        let out = f(g.executable);
        let mut d = args!(PJRT_Executable_Destroy_Args {
            executable: g.executable
        });
        call!(api, PJRT_Executable_Destroy, &mut d)?;
        out
    }

    /// The devices the program runs on, in the order `execute_sharded` takes arguments.
    pub fn addressable_devices(&self) -> &[Device] {
        &self.devices
    }

    /// The number of outputs per device.
    pub fn num_outputs(&self) -> usize {
        self.num_outputs
    }

    /// The parameter types of `@main`, when compiled from text.
    pub fn signature(&self) -> Option<&Signature> {
        self.signature.as_ref()
    }

    pub(crate) fn with_signature(mut self, signature: Option<Signature>) -> Self {
        self.signature = signature;
        self
    }

    /// The program's name.
    pub fn name(&self) -> Result<String> {
        self.with_executable(|e| {
            let mut a = args!(PJRT_Executable_Name_Args { executable: e });
            call!(&self.client.inner.plugin.api, PJRT_Executable_Name, &mut a)?;
            // SAFETY: the name lives as long as the executable.
            Ok(unsafe { string_from(a.executable_name, a.executable_name_size) })
        })
    }

    /// The element type of each output.
    pub fn output_dtypes(&self) -> Result<Vec<DType>> {
        self.with_executable(|e| {
            let mut a = args!(PJRT_Executable_OutputElementTypes_Args { executable: e });
            call!(
                &self.client.inner.plugin.api,
                PJRT_Executable_OutputElementTypes,
                &mut a
            )?;
            // SAFETY: the list lives as long as the executable.
            unsafe { slice_from(a.output_types, a.num_output_types) }
                .iter()
                .map(|t| from_pjrt(*t))
                .collect()
        })
    }

    /// The dimensions of each output (per device for a partitioned program).
    pub fn output_dims(&self) -> Result<Vec<Vec<i64>>> {
        self.with_executable(|e| {
            let mut a = args!(PJRT_Executable_OutputDimensions_Args { executable: e });
            call!(
                &self.client.inner.plugin.api,
                PJRT_Executable_OutputDimensions,
                &mut a
            )?;
            // SAFETY: both lists live as long as the executable.
            let sizes = unsafe { slice_from(a.dim_sizes, a.num_outputs) };
            let total: usize = sizes.iter().sum();
            let flat = unsafe { slice_from(a.dims, total) };
            let mut at = 0;
            Ok(sizes
                .iter()
                .map(|n| {
                    at += n;
                    flat[at - n..at].to_vec()
                })
                .collect())
        })
    }

    /// The compiler's cost estimates (`flops`, `bytes accessed`, ...), or `None` where the
    /// plugin does not offer them (XLA's CPU plugins do not).
    pub fn cost_analysis(&self) -> Result<Option<BTreeMap<String, NamedValue>>> {
        let api = &self.client.inner.plugin.api;
        self.with_executable(|e| {
            let mut a = args!(PJRT_Executable_GetCostAnalysis_Args { executable: e });
            if offered(call!(api, PJRT_Executable_GetCostAnalysis, &mut a))?.is_none() {
                return Ok(None);
            }
            // SAFETY: the properties live as long as the executable.
            Ok(Some(unsafe { read_list(a.properties, a.num_properties) }))
        })
    }

    /// The compiled program's memory use, or `None` where the plugin does not offer it.
    pub fn memory_stats(&self) -> Result<Option<MemoryStats>> {
        let api = &self.client.inner.plugin.api;
        self.with_executable(|e| {
            let mut a = args!(PJRT_Executable_GetCompiledMemoryStats_Args { executable: e });
            if offered(call!(api, PJRT_Executable_GetCompiledMemoryStats, &mut a))?.is_none() {
                return Ok(None);
            }
            Ok(Some(MemoryStats {
                generated_code_size: a.generated_code_size_in_bytes,
                argument_size: a.argument_size_in_bytes,
                output_size: a.output_size_in_bytes,
                alias_size: a.alias_size_in_bytes,
                temp_size: a.temp_size_in_bytes,
                peak_memory: a.peak_memory_in_bytes,
            }))
        })
    }

    /// The compiled program as bytes, for an on-disk cache; load it with
    /// [`Client::deserialize_executable`] on the same plugin version.
    pub fn serialize(&self) -> Result<Vec<u8>> {
        self.with_executable(|e| {
            let mut a = args!(PJRT_Executable_Serialize_Args { executable: e });
            call!(
                &self.client.inner.plugin.api,
                PJRT_Executable_Serialize,
                &mut a
            )?;
            // SAFETY: the bytes live until the deleter runs.
            let bytes =
                unsafe { slice_from(a.serialized_bytes.cast::<u8>(), a.serialized_bytes_size) }
                    .to_vec();
            if let Some(deleter) = a.serialized_executable_deleter {
                // SAFETY: handing the plugin's object back to its own deleter, once.
                unsafe { deleter(a.serialized_executable) };
            }
            Ok(bytes)
        })
    }

    /// Runs a single-device program; returns its outputs without waiting for them.
    pub fn execute(&self, args: &[&Buffer]) -> Result<Vec<Buffer>> {
        if self.devices.len() != 1 {
            return Err(Error::invalid(
                "execute",
                format!(
                    "the program runs on {} devices; use execute_sharded with one argument list per device",
                    self.devices.len()
                ),
            ));
        }
        let mut out = self.execute_sharded_with(&[args.to_vec()], &ExecuteOptions::default())?;
        Ok(out.remove(0))
    }

    /// Runs on every addressable device: `args[d]` are the arguments of device `d` in
    /// [`Self::addressable_devices`] order; returns the outputs per device.
    pub fn execute_sharded(&self, args: &[Vec<&Buffer>]) -> Result<Vec<Vec<Buffer>>> {
        self.execute_sharded_with(args, &ExecuteOptions::default())
    }

    /// [`Self::execute_sharded`] with options.
    pub fn execute_sharded_with(
        &self,
        args: &[Vec<&Buffer>],
        options: &ExecuteOptions,
    ) -> Result<Vec<Vec<Buffer>>> {
        self.check_args(args)?;
        let num_args = args.first().map_or(0, |a| a.len());
        let raw_args: Vec<Vec<*mut sys::PJRT_Buffer>> = args
            .iter()
            .map(|a| a.iter().map(|b| b.raw()).collect())
            .collect();
        let arg_ptrs: Vec<*const *mut sys::PJRT_Buffer> =
            raw_args.iter().map(|a| a.as_ptr()).collect();
        let mut outputs: Vec<Vec<*mut sys::PJRT_Buffer>> =
            vec![vec![std::ptr::null_mut(); self.num_outputs]; self.devices.len()];
        let out_ptrs: Vec<*mut *mut sys::PJRT_Buffer> =
            outputs.iter_mut().map(|o| o.as_mut_ptr()).collect();
        let mut done: Vec<*mut sys::PJRT_Event> = vec![std::ptr::null_mut(); self.devices.len()];
        let mut opts = args!(PJRT_ExecuteOptions {
            launch_id: options.launch_id,
            non_donatable_input_indices: options.non_donatable_input_indices.as_ptr(),
            num_non_donatable_input_indices: options.non_donatable_input_indices.len(),
        });
        let mut a = args!(PJRT_LoadedExecutable_Execute_Args {
            executable: self.raw,
            options: &mut opts,
            argument_lists: arg_ptrs.as_ptr(),
            num_devices: self.devices.len(),
            num_args: num_args,
            output_lists: out_ptrs.as_ptr(),
            device_complete_events: done.as_mut_ptr(),
        });
        let plugin: &'static Plugin = self.client.inner.plugin;
        call!(&plugin.api, PJRT_LoadedExecutable_Execute, &mut a)?;
        in_flight::track(
            done.into_iter()
                .filter(|e| !e.is_null())
                .map(|e| Event::from_raw(e, &plugin.api)),
        );
        outputs
            .into_iter()
            .map(|per_device| {
                per_device
                    .into_iter()
                    .map(|b| Buffer::from_raw(&self.client, b))
                    .collect()
            })
            .collect()
    }

    /// Checks argument counts, devices, element types and (unpartitioned) shapes.
    fn check_args(&self, args: &[Vec<&Buffer>]) -> Result<()> {
        if args.len() != self.devices.len() {
            return Err(Error::invalid(
                "execute",
                format!(
                    "got argument lists for {} devices, the program runs on {}",
                    args.len(),
                    self.devices.len()
                ),
            ));
        }
        // The plugin reads `num_args` buffers from every list, so all must have that many
        // (a deserialized executable has no signature to check them against).
        let num_args = args.first().map_or(0, Vec::len);
        if let Some((d, list)) = args.iter().enumerate().find(|(_, l)| l.len() != num_args) {
            return Err(Error::invalid(
                "execute",
                format!(
                    "argument list {d} has {} arguments, list 0 has {num_args}; every device takes the same arguments",
                    list.len()
                ),
            ));
        }
        let partitioned = self.devices.len() > 1;
        for (d, (list, device)) in args.iter().zip(&self.devices).enumerate() {
            if let Some(sig) = &self.signature {
                if list.len() != sig.params.len() {
                    return Err(Error::invalid(
                        "execute",
                        format!(
                            "the program takes {} arguments, got {}",
                            sig.params.len(),
                            list.len()
                        ),
                    ));
                }
            }
            for (i, buf) in list.iter().enumerate() {
                if buf.is_deleted() {
                    return Err(Error::invalid(
                        "execute",
                        format!("argument {i} was donated to an earlier call (or deleted) and can no longer be used"),
                    ));
                }
                if let Some(p) = self.signature.as_ref().and_then(|s| s.params.get(i)) {
                    let shape_ok = partitioned || buf.dims() == p.dims.as_slice();
                    if buf.dtype() != p.dtype || !shape_ok || buf.dims().len() != p.dims.len() {
                        return Err(Error::invalid(
                            "execute",
                            format!(
                                "argument {i} is {}{:?}, the program expects {p}",
                                buf.dtype(),
                                buf.dims()
                            ),
                        ));
                    }
                }
                let on = buf.device()?;
                if on != *device {
                    let message = if std::sync::Arc::ptr_eq(&on.client, &device.client) {
                        format!("argument {i} for device list {d} is on device {}, the program runs it on device {}", on.id(), device.id())
                    } else {
                        format!("argument {i} for device list {d} belongs to another client than the program")
                    };
                    return Err(Error::invalid("execute", message));
                }
            }
        }
        Ok(())
    }
}

impl Drop for LoadedExecutable {
    fn drop(&mut self) {
        let mut a = args!(PJRT_LoadedExecutable_Destroy_Args {
            executable: self.raw
        });
        let _ = call!(
            &self.client.inner.plugin.api,
            PJRT_LoadedExecutable_Destroy,
            &mut a
        );
    }
}

impl std::fmt::Debug for LoadedExecutable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedExecutable")
            .field("devices", &self.devices.len())
            .field("outputs", &self.num_outputs)
            .finish()
    }
}

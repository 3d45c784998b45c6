//! The PJRT runtime: plugins, clients, devices, buffers, executables and events.
//!
//! Everything bv runs goes through a PJRT plugin loaded with `dlopen`: a CPU plugin from
//! PyPI (fetched automatically, see [`provision`]), `xla_cuda_plugin.so` from
//! `jax-cuda*-pjrt`, or `libtpu`. This module is a thin, safe layer over the C API in
//! `xla-sys`: handles free themselves on drop, errors carry the plugin's message and code,
//! and nothing blocks except the calls that say so.
//!
//! ```no_run
//! use bv_core::pjrt::{Client, CompileOptions};
//! let client = Client::cpu()?;
//! let exe = client.compile(
//!     "func.func public @main(%x: tensor<3xf32>) -> tensor<3xf32> {
//!        %y = stablehlo.add %x, %x : tensor<3xf32>
//!        return %y : tensor<3xf32>
//!      }",
//!     &CompileOptions::default(),
//! )?;
//! let x = client.buffer_from_host(&[1f32, 2., 3.], &[3], &client.addressable_devices()[0])?;
//! let y = exe.execute(&[&x])?;
//! assert_eq!(y[0].to_vec::<f32>()?, vec![2., 4., 6.]);
//! # Ok::<(), bv_core::pjrt::Error>(())
//! ```

mod api;
mod buffer;
mod client;
mod compile_options;
mod device;
mod error;
mod event;
mod executable;
mod host_view;
mod in_flight;
mod kv_store;
mod named_value;
mod plugin;
pub mod provision;
mod signature;

pub use buffer::Buffer;
pub use client::{Client, ClientOptions};
pub use compile_options::{CompileOptions, OptionOverride};
pub use device::Device;
pub use error::{Error, ErrorCode, Result};
pub use event::Event;
pub use executable::{ExecuteOptions, LoadedExecutable, MemoryStats};
pub use host_view::HostView;
pub use in_flight::{drain_executions, executions_in_flight};
pub use kv_store::KeyValueStore;
pub use named_value::NamedValue;
pub use plugin::Plugin;
pub use signature::{Signature, TensorType};

//! Reading a CPU buffer in place, without a copy (what `np.asarray` does for JAX's CPU
//! arrays).

use std::ops::Deref;

use super::api::{args, call};
use super::buffer::Buffer;
use super::error::{offered, Result};

/// The bytes of a CPU-resident buffer, borrowed in place: dense, row-major. While a view
/// lives the plugin keeps the memory alive (an external reference).
pub struct HostView<'a> {
    buffer: &'a Buffer,
    bytes: &'a [u8],
}

impl Buffer {
    /// Borrows the buffer's memory directly when it lives in host memory with a dense
    /// row-major layout; `None` otherwise (use [`Buffer::to_host_bytes`]). Waits until the
    /// value is computed.
    pub fn host_view(&self) -> Result<Option<HostView<'_>>> {
        let api = &self.client().inner.plugin.api;
        let mut on_cpu = args!(PJRT_Buffer_IsOnCpu_Args { buffer: self.raw() });
        if offered(call!(api, PJRT_Buffer_IsOnCpu, &mut on_cpu))?.is_none() || !on_cpu.is_on_cpu {
            return Ok(None);
        }
        self.block_until_ready()?;
        let mut layout = args!(PJRT_Buffer_GetMemoryLayout_Args { buffer: self.raw() });
        if offered(call!(api, PJRT_Buffer_GetMemoryLayout, &mut layout))?.is_none()
            || !is_row_major(&layout.layout, self.dims().len())
        {
            return Ok(None);
        }
        let len = self.element_count() * self.dtype().size_in_bytes();
        if len == 0 {
            return Ok(Some(HostView {
                buffer: self,
                bytes: &[],
            }));
        }
        let mut inc = args!(PJRT_Buffer_IncreaseExternalReferenceCount_Args { buffer: self.raw() });
        if offered(call!(
            api,
            PJRT_Buffer_IncreaseExternalReferenceCount,
            &mut inc
        ))?
        .is_none()
        {
            return Ok(None);
        }
        let mut ptr = args!(PJRT_Buffer_OpaqueDeviceMemoryDataPointer_Args { buffer: self.raw() });
        if let Err(e) = call!(api, PJRT_Buffer_OpaqueDeviceMemoryDataPointer, &mut ptr) {
            release(self);
            return Err(e);
        }
        // SAFETY: a CPU buffer's device memory is `len` host bytes, kept alive by the
        // external reference until the view is dropped.
        let bytes = unsafe { std::slice::from_raw_parts(ptr.device_memory_ptr.cast::<u8>(), len) };
        Ok(Some(HostView {
            buffer: self,
            bytes,
        }))
    }
}

/// True for a tiled layout without tiles whose minor-to-major order is `rank-1, ..., 0`.
fn is_row_major(layout: &xla_sys::PJRT_Buffer_MemoryLayout, rank: usize) -> bool {
    if layout.type_ != xla_sys::PJRT_Buffer_MemoryLayout_Type_Tiled {
        return false;
    }
    // SAFETY: the union holds the tiled variant, per `type_`.
    let tiled = unsafe { &layout.__bindgen_anon_1.tiled };
    if tiled.num_tiles != 0 || tiled.minor_to_major_size != rank {
        return false;
    }
    if rank == 0 {
        return true;
    }
    // SAFETY: the plugin filled `minor_to_major_size` entries.
    let m2m = unsafe { std::slice::from_raw_parts(tiled.minor_to_major, rank) };
    m2m.iter()
        .enumerate()
        .all(|(i, d)| *d as usize == rank - 1 - i)
}

fn release(buffer: &Buffer) {
    let api = &buffer.client().inner.plugin.api;
    let mut dec = args!(PJRT_Buffer_DecreaseExternalReferenceCount_Args {
        buffer: buffer.raw()
    });
    let _ = call!(api, PJRT_Buffer_DecreaseExternalReferenceCount, &mut dec);
}

impl Deref for HostView<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes
    }
}

impl Drop for HostView<'_> {
    fn drop(&mut self) {
        if !self.bytes.is_empty() {
            release(self.buffer);
        }
    }
}

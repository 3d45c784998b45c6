//! `PJRT_Buffer`: an array on one device.

use std::ffi::c_void;
use std::sync::Arc;

use xla_sys as sys;

use super::api::{args, call, slice_from};
use super::client::Client;
use super::device::Device;
use super::error::{Error, Result};
use super::event::Event;
use crate::{DType, Element};

/// Host bytes for a transfer: borrowed ones are waited for, owned ones travel with it.
pub(crate) enum HostData<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

/// A dense array on one device. Dropping it frees the device memory.
pub struct Buffer {
    raw: *mut sys::PJRT_Buffer,
    client: Client,
    dtype: DType,
    dims: Vec<i64>,
    /// Host bytes the plugin may still read (zero-copy) with no event saying when it stops:
    /// freed only after the buffer is destroyed (fields drop after `Drop::drop`).
    host: Option<Arc<Vec<u8>>>,
}

// SAFETY: PJRT buffers may be used and freed from any thread.
unsafe impl Send for Buffer {}
unsafe impl Sync for Buffer {}

/// The PJRT element type of a bv element type.
pub(crate) fn to_pjrt(dtype: DType) -> sys::PJRT_Buffer_Type {
    match dtype {
        DType::Bool => sys::PJRT_Buffer_Type_PRED,
        DType::I8 => sys::PJRT_Buffer_Type_S8,
        DType::I16 => sys::PJRT_Buffer_Type_S16,
        DType::I32 => sys::PJRT_Buffer_Type_S32,
        DType::I64 => sys::PJRT_Buffer_Type_S64,
        DType::U8 => sys::PJRT_Buffer_Type_U8,
        DType::U16 => sys::PJRT_Buffer_Type_U16,
        DType::U32 => sys::PJRT_Buffer_Type_U32,
        DType::U64 => sys::PJRT_Buffer_Type_U64,
        DType::F16 => sys::PJRT_Buffer_Type_F16,
        DType::BF16 => sys::PJRT_Buffer_Type_BF16,
        DType::F32 => sys::PJRT_Buffer_Type_F32,
        DType::F64 => sys::PJRT_Buffer_Type_F64,
    }
}

/// The bv element type of a PJRT element type.
pub(crate) fn from_pjrt(t: sys::PJRT_Buffer_Type) -> Result<DType> {
    DType::ALL
        .into_iter()
        .find(|d| to_pjrt(*d) == t)
        .ok_or(Error::UnsupportedElementType(t))
}

/// Checks that `len` bytes hold a dense array of `dims` × `dtype`.
fn check_host_size(dtype: DType, dims: &[i64], len: usize) -> Result<()> {
    if let Some(d) = dims.iter().find(|d| **d < 0) {
        return Err(Error::invalid(
            "buffer_from_host",
            format!("dimension {d} in {dims:?} is negative"),
        ));
    }
    let want = dims
        .iter()
        .try_fold(dtype.size_in_bytes(), |acc, &d| acc.checked_mul(d as usize));
    match want {
        Some(w) if w == len => Ok(()),
        Some(w) => Err(Error::invalid(
            "buffer_from_host",
            format!("a {dtype}{dims:?} array needs {w} bytes, the host data has {len}"),
        )),
        None => Err(Error::invalid(
            "buffer_from_host",
            format!("a {dtype}{dims:?} array is too large to address"),
        )),
    }
}

impl Buffer {
    pub(crate) fn from_host(
        client: &Client,
        data: HostData<'_>,
        dtype: DType,
        dims: &[i64],
        device: &Device,
    ) -> Result<Buffer> {
        let bytes: &[u8] = match &data {
            HostData::Borrowed(b) => b,
            HostData::Owned(v) => v,
        };
        check_host_size(dtype, dims, bytes.len())?;
        client.check_device("buffer_from_host", device)?;
        let api = &client.inner.plugin.api;
        // A zero-size array still needs a valid, aligned pointer.
        static EMPTY: [u64; 1] = [0];
        let ptr: *const c_void = if bytes.is_empty() {
            EMPTY.as_ptr().cast()
        } else {
            bytes.as_ptr().cast()
        };
        // Owned bytes may be aliased by the device buffer (CPU plugins do, when aligned):
        // the done event then fires only when the buffer is freed, and the bytes live
        // until then. Borrowed bytes are copied before this call returns.
        let semantics = match data {
            HostData::Borrowed(_) => sys::PJRT_HostBufferSemantics_kImmutableUntilTransferCompletes,
            HostData::Owned(_) => sys::PJRT_HostBufferSemantics_kImmutableZeroCopy,
        };
        let mut a = args!(PJRT_Client_BufferFromHostBuffer_Args {
            client: client.inner.raw,
            data: ptr,
            type_: to_pjrt(dtype),
            dims: dims.as_ptr(),
            num_dims: dims.len(),
            host_buffer_semantics: semantics,
            device: device.raw(),
        });
        call!(api, PJRT_Client_BufferFromHostBuffer, &mut a)?;
        let mut buffer = Buffer {
            raw: a.buffer,
            client: client.clone(),
            dtype,
            dims: dims.to_vec(),
            host: None,
        };
        let done = (!a.done_with_host_buffer.is_null())
            .then(|| Event::from_raw(a.done_with_host_buffer, &client.inner.plugin.api));
        match (data, done) {
            (HostData::Borrowed(_), Some(done)) => done.wait()?,
            // Without a done event the plugin reads the bytes until the transfer completes,
            // which is when the buffer becomes ready.
            (HostData::Borrowed(_), None) => buffer.block_until_ready()?,
            (HostData::Owned(v), Some(done)) => {
                let v = Arc::new(v);
                let held = v.clone();
                if done.on_ready(move |_| drop(held)).is_err() {
                    buffer.host = Some(v);
                }
            }
            (HostData::Owned(v), None) => buffer.host = Some(Arc::new(v)),
        }
        Ok(buffer)
    }

    /// Takes ownership of a buffer returned by the plugin, reading its type and shape.
    pub(crate) fn from_raw(client: &Client, raw: *mut sys::PJRT_Buffer) -> Result<Buffer> {
        let api = &client.inner.plugin.api;
        let mut t = args!(PJRT_Buffer_ElementType_Args { buffer: raw });
        let mut d = args!(PJRT_Buffer_Dimensions_Args { buffer: raw });
        let read = call!(api, PJRT_Buffer_ElementType, &mut t)
            .and_then(|()| call!(api, PJRT_Buffer_Dimensions, &mut d));
        // Own the handle before anything can fail, so it is freed either way.
        let mut buffer = Buffer {
            raw,
            client: client.clone(),
            dtype: DType::F32,
            dims: Vec::new(),
            host: None,
        };
        read?;
        buffer.dtype = from_pjrt(t.type_)?;
        if !d.dims.is_null() {
            // SAFETY: the dimensions live as long as the buffer.
            buffer.dims = unsafe { slice_from(d.dims, d.num_dims) }.to_vec();
        }
        Ok(buffer)
    }

    pub(crate) fn raw(&self) -> *mut sys::PJRT_Buffer {
        self.raw
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The dimensions.
    pub fn dims(&self) -> &[i64] {
        &self.dims
    }

    /// The number of elements.
    pub fn element_count(&self) -> usize {
        self.dims.iter().map(|d| *d as usize).product()
    }

    /// The client that owns the buffer.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The device holding the buffer.
    pub fn device(&self) -> Result<Device> {
        let mut a = args!(PJRT_Buffer_Device_Args { buffer: self.raw });
        call!(&self.client.inner.plugin.api, PJRT_Buffer_Device, &mut a)?;
        self.client
            .inner
            .devices
            .iter()
            .position(|d| d.raw == a.device)
            .map(|index| Device {
                client: self.client.inner.clone(),
                index,
            })
            .ok_or_else(|| Error::invalid("Buffer::device", "the plugin named an unknown device"))
    }

    /// Bytes the buffer occupies on its device.
    pub fn on_device_size_in_bytes(&self) -> Result<usize> {
        let mut a = args!(PJRT_Buffer_OnDeviceSizeInBytes_Args { buffer: self.raw });
        call!(
            &self.client.inner.plugin.api,
            PJRT_Buffer_OnDeviceSizeInBytes,
            &mut a
        )?;
        Ok(a.on_device_size_in_bytes)
    }

    /// An event that fires when the buffer's value has been computed.
    pub fn ready_event(&self) -> Result<Event> {
        let mut a = args!(PJRT_Buffer_ReadyEvent_Args { buffer: self.raw });
        call!(
            &self.client.inner.plugin.api,
            PJRT_Buffer_ReadyEvent,
            &mut a
        )?;
        Ok(Event::from_raw(a.event, &self.client.inner.plugin.api))
    }

    /// Blocks until the value is computed; returns the computation's error, if any.
    pub fn block_until_ready(&self) -> Result<()> {
        self.ready_event()?.wait()
    }

    /// True once the buffer was donated to a computation or deleted.
    pub fn is_deleted(&self) -> bool {
        let mut a = args!(PJRT_Buffer_IsDeleted_Args { buffer: self.raw });
        call!(&self.client.inner.plugin.api, PJRT_Buffer_IsDeleted, &mut a).is_ok() && a.is_deleted
    }

    /// Copies the value to host memory, dense and row-major; blocks until it is there.
    pub fn to_host_bytes(&self) -> Result<Vec<u8>> {
        let len = self.element_count() * self.dtype.size_in_bytes();
        let mut out = Vec::<u8>::with_capacity(len);
        if len == 0 {
            self.block_until_ready()?;
            return Ok(Vec::new());
        }
        let mut a = args!(PJRT_Buffer_ToHostBuffer_Args {
            src: self.raw,
            dst: out.as_mut_ptr().cast::<c_void>(),
            dst_size: len,
        });
        call!(
            &self.client.inner.plugin.api,
            PJRT_Buffer_ToHostBuffer,
            &mut a
        )?;
        Event::from_raw(a.event, &self.client.inner.plugin.api).wait()?;
        // SAFETY: the completed copy wrote all `len` bytes.
        unsafe { out.set_len(len) };
        Ok(out)
    }

    /// Copies the value to a host vector of `T`, which must be the buffer's element type.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        if T::DTYPE != self.dtype {
            return Err(Error::ElementTypeMismatch {
                actual: self.dtype,
                requested: T::DTYPE,
            });
        }
        let bytes = self.to_host_bytes()?;
        if T::DTYPE == DType::Bool && bytes.iter().any(|b| *b > 1) {
            return Err(Error::invalid(
                "Buffer::to_vec",
                "a pred buffer holds bytes other than 0 and 1",
            ));
        }
        let n = self.element_count();
        let mut out = Vec::<T>::with_capacity(n);
        // SAFETY: `bytes` holds exactly n values of T's size, and every bit pattern read is
        // valid for T (booleans were checked above).
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                out.as_mut_ptr().cast::<u8>(),
                bytes.len(),
            );
            out.set_len(n);
        }
        Ok(out)
    }

    /// Copies the buffer to another device of the same client.
    pub fn copy_to_device(&self, device: &Device) -> Result<Buffer> {
        self.client.check_device("Buffer::copy_to_device", device)?;
        let mut a = args!(PJRT_Buffer_CopyToDevice_Args {
            buffer: self.raw,
            dst_device: device.raw(),
        });
        call!(
            &self.client.inner.plugin.api,
            PJRT_Buffer_CopyToDevice,
            &mut a
        )?;
        Buffer::from_raw(&self.client, a.dst_buffer)
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let mut a = args!(PJRT_Buffer_Destroy_Args { buffer: self.raw });
        let _ = call!(&self.client.inner.plugin.api, PJRT_Buffer_Destroy, &mut a);
    }
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buffer({}{:?})", self.dtype, self.dims)
    }
}

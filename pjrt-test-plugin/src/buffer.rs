//! `PJRT_Buffer`: bytes on a device of this process (host memory; copied, or aliased for a
//! zero-copy transfer when asked to).

use std::sync::atomic::{AtomicBool, Ordering};

use xla_sys as sys;

use crate::client::{self, Client};
use crate::error::Error;
use crate::program::{elem_size, type_name};
use crate::record::{fnv1a, list};

enum Data {
    Owned(Vec<u8>),
    /// The caller's bytes, read in place.
    Aliased(*const u8, usize),
}

pub(crate) struct Buffer {
    pub(crate) id: u64,
    client: *const Client,
    pub(crate) device: *mut sys::PJRT_Device,
    pub(crate) dtype: sys::PJRT_Buffer_Type,
    pub(crate) dims: Vec<i64>,
    data: Data,
    pub(crate) deleted: AtomicBool,
}

impl Buffer {
    /// A new buffer of `client` on `device`, registered as live.
    pub(crate) fn create(
        client: &Client,
        device: *mut sys::PJRT_Device,
        dtype: sys::PJRT_Buffer_Type,
        dims: Vec<i64>,
        data: Vec<u8>,
    ) -> *mut sys::PJRT_Buffer {
        Buffer::register(client, device, dtype, dims, Data::Owned(data))
    }

    fn register(
        client: &Client,
        device: *mut sys::PJRT_Device,
        dtype: sys::PJRT_Buffer_Type,
        dims: Vec<i64>,
        data: Data,
    ) -> *mut sys::PJRT_Buffer {
        let b = Box::into_raw(Box::new(Buffer {
            id: client.next_id(),
            client,
            device,
            dtype,
            dims,
            data,
            deleted: AtomicBool::new(false),
        }));
        client
            .live_buffers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(b as usize);
        b.cast()
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        match &self.data {
            Data::Owned(v) => v,
            // SAFETY: the caller promised (zero-copy semantics) to keep the bytes alive
            // until the buffer is destroyed.
            Data::Aliased(p, n) => unsafe { crate::slice(*p, *n) },
        }
    }

    pub(crate) fn client(&self) -> &Client {
        // SAFETY: a client outlives its buffers (the PJRT contract).
        unsafe { &*self.client }
    }

    pub(crate) fn device_id(&self) -> i32 {
        // SAFETY: a device handle of the live client.
        unsafe { client::device(self.device) }.id
    }
}

/// The buffer behind a handle.
///
/// # Safety
/// `raw` must be a live buffer.
pub(crate) unsafe fn get<'a>(raw: *mut sys::PJRT_Buffer) -> &'a Buffer {
    &*raw.cast::<Buffer>()
}

fn shape(dims: &[i64]) -> String {
    if dims.is_empty() {
        "scalar".into()
    } else {
        dims.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x")
    }
}

crate::entry!(from_host(PJRT_Client_BufferFromHostBuffer_Args) a => {
    // SAFETY: a live client.
    let c = unsafe { client::get(a.client) };
    c.check_fault("PJRT_Client_BufferFromHostBuffer")?;
    let device = c.device(a.device)?;
    if !device.addressable {
        return Err(Error::invalid(format!(
            "device {} belongs to process {}, not to this process ({})",
            device.id, device.node, c.node
        )));
    }
    if !a.memory.is_null() || !a.device_layout.is_null() {
        return Err(Error::unimplemented("memories and layouts"));
    }
    // SAFETY: the caller's dims are valid for the call.
    let dims = unsafe { crate::slice(a.dims, a.num_dims) }.to_vec();
    let size = elem_size(a.type_);
    if size == 0 || dims.iter().any(|d| *d < 0) {
        return Err(Error::invalid(format!("element type {} of shape {dims:?}", a.type_)));
    }
    let len = dims.iter().product::<i64>() as usize * size;
    // SAFETY: the strides, if any, are valid for the call.
    let strides = unsafe { crate::slice(a.byte_strides, a.num_byte_strides) };
    let mut dense = size as i64;
    for (s, d) in strides.iter().zip(&dims).rev() {
        if *s != dense {
            return Err(Error::unimplemented("strided host buffers"));
        }
        dense *= d;
    }
    let alias = a.host_buffer_semantics == sys::PJRT_HostBufferSemantics_kImmutableZeroCopy
        && c.zero_copy_without_event;
    // SAFETY: the caller's data holds the dense array.
    let host = unsafe { crate::slice(a.data.cast::<u8>(), len) };
    let hash = fnv1a(host);
    let data = if alias {
        Data::Aliased(a.data.cast(), len)
    } else {
        Data::Owned(host.to_vec())
    };
    a.buffer = Buffer::register(c, a.device, a.type_, dims.clone(), data);
    a.done_with_host_buffer = if alias {
        std::ptr::null_mut()
    } else {
        crate::event::ready(None)
    };
    // SAFETY: just made.
    let id = unsafe { get(a.buffer) }.id;
    c.record.call(
        "PJRT_Client_BufferFromHostBuffer",
        &[
            ("buffer", id.to_string()),
            ("device", device.id.to_string()),
            ("dtype", type_name(a.type_).into()),
            ("shape", shape(&dims)),
            ("fnv", hash),
            ("zero_copy_alias", alias.to_string()),
        ],
    );
    Ok(())
});

crate::entry!(destroy(PJRT_Buffer_Destroy_Args) a => {
    // SAFETY: the caller hands back a live buffer, once.
    let b = unsafe { Box::from_raw(a.buffer.cast::<Buffer>()) };
    b.client()
        .live_buffers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&(a.buffer as usize));
    Ok(())
});

crate::entry!(element_type(PJRT_Buffer_ElementType_Args) a => {
    // SAFETY: a live buffer.
    a.type_ = unsafe { get(a.buffer) }.dtype;
    Ok(())
});

crate::entry!(dimensions(PJRT_Buffer_Dimensions_Args) a => {
    // SAFETY: a live buffer.
    let b = unsafe { get(a.buffer) };
    a.dims = b.dims.as_ptr();
    a.num_dims = b.dims.len();
    Ok(())
});

crate::entry!(size_in_bytes(PJRT_Buffer_OnDeviceSizeInBytes_Args) a => {
    // SAFETY: a live buffer.
    a.on_device_size_in_bytes = unsafe { get(a.buffer) }.bytes().len();
    Ok(())
});

crate::entry!(device(PJRT_Buffer_Device_Args) a => {
    // SAFETY: a live buffer.
    a.device = unsafe { get(a.buffer) }.device;
    Ok(())
});

crate::entry!(is_deleted(PJRT_Buffer_IsDeleted_Args) a => {
    // SAFETY: a live buffer.
    a.is_deleted = unsafe { get(a.buffer) }.deleted.load(Ordering::Relaxed);
    Ok(())
});

crate::entry!(ready_event(PJRT_Buffer_ReadyEvent_Args) a => {
    a.event = crate::event::ready(None);
    Ok(())
});

crate::entry!(to_host(PJRT_Buffer_ToHostBuffer_Args) a => {
    // SAFETY: a live buffer.
    let b = unsafe { get(a.src) };
    if !a.host_layout.is_null() {
        return Err(Error::unimplemented("host layouts"));
    }
    if b.deleted.load(Ordering::Relaxed) {
        return Err(Error::invalid(format!("buffer {} was donated or deleted", b.id)));
    }
    let bytes = b.bytes();
    if a.dst.is_null() {
        a.dst_size = bytes.len();
        return Ok(());
    }
    if a.dst_size < bytes.len() {
        return Err(Error::invalid(format!("{} bytes do not hold {}", a.dst_size, bytes.len())));
    }
    // SAFETY: the caller's destination holds `dst_size` bytes.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), a.dst.cast::<u8>(), bytes.len()) };
    b.client().record.call(
        "PJRT_Buffer_ToHostBuffer",
        &[
            ("buffer", b.id.to_string()),
            ("device", b.device_id().to_string()),
            ("fnv", fnv1a(bytes)),
        ],
    );
    a.event = crate::event::ready(None);
    Ok(())
});

crate::entry!(copy_to_device(PJRT_Buffer_CopyToDevice_Args) a => {
    // SAFETY: a live buffer.
    let b = unsafe { get(a.buffer) };
    let c = b.client();
    let dst = c.device(a.dst_device)?;
    if !dst.addressable {
        return Err(Error::invalid(format!("device {} is not addressable", dst.id)));
    }
    a.dst_buffer = Buffer::create(c, a.dst_device, b.dtype, b.dims.clone(), b.bytes().to_vec());
    c.record.call(
        "PJRT_Buffer_CopyToDevice",
        &[("from", b.device_id().to_string()), ("to", list([dst.id]))],
    );
    Ok(())
});

//! `PJRT_LoadedExecutable`: compiling (reading the program), and executing: every argument
//! checked as XLA checks it, other nodes met through the key-value store for a program that
//! spans them, and each output on device `d` filled with `d + 1`.

use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use xla_sys as sys;

use crate::buffer::{self, Buffer};
use crate::client::{self, Client, RENDEZVOUS_MS};
use crate::error::{Error, Result};
use crate::program::{elem_size, Program};
use crate::record::list;

pub(crate) struct Loaded {
    id: u64,
    client: *const Client,
    program: Arc<Program>,
    /// This node's devices of the assignment, in assignment order.
    addressable: Vec<*mut sys::PJRT_Device>,
    /// Whether the assignment includes other nodes' devices.
    spans_nodes: bool,
    fingerprint: u64,
}

/// The `PJRT_Executable` view of a loaded executable, with its output lists laid out.
struct View {
    program: Arc<Program>,
    types: Vec<sys::PJRT_Buffer_Type>,
    dims: Vec<i64>,
    dim_sizes: Vec<usize>,
}

/// # Safety
/// `raw` must be a live loaded executable.
unsafe fn get<'a>(raw: *mut sys::PJRT_LoadedExecutable) -> &'a Loaded {
    &*raw.cast::<Loaded>()
}

/// # Safety
/// `raw` must be a live view.
unsafe fn view_of<'a>(raw: *mut sys::PJRT_Executable) -> &'a View {
    &*raw.cast::<View>()
}

fn load(c: &Client, text: &str, options: &[u8]) -> Result<*mut sys::PJRT_LoadedExecutable> {
    let ids: Vec<i64> = c.devices.iter().map(|d| i64::from(d.id)).collect();
    let program = Program::parse(text, options, &ids)?;
    let mut addressable = Vec::new();
    let mut spans_nodes = false;
    for &id in &program.assignment {
        let raw = c
            .device_by_id(id)
            .ok_or_else(|| Error::invalid(format!("no device {id}")))?;
        // SAFETY: a device handle of the live client.
        if unsafe { client::device(raw) }.addressable {
            addressable.push(raw);
        } else {
            spans_nodes = true;
        }
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (text, options).hash(&mut h);
    let loaded = Loaded {
        id: c.next_id(),
        client: c,
        program: Arc::new(program),
        addressable,
        spans_nodes,
        fingerprint: h.finish(),
    };
    let ids_here: Vec<i32> = loaded
        .addressable
        .iter()
        // SAFETY: as above.
        .map(|d| unsafe { client::device(*d) }.id)
        .collect();
    c.record.call(
        "PJRT_Client_Compile",
        &[
            ("exe", loaded.id.to_string()),
            ("name", loaded.program.name.clone()),
            ("devices", list(&loaded.program.assignment)),
            ("addressable", list(ids_here)),
            ("params", loaded.program.params.len().to_string()),
            ("outputs", loaded.program.results.len().to_string()),
        ],
    );
    Ok(Box::into_raw(Box::new(loaded)).cast())
}

crate::entry!(compile(PJRT_Client_Compile_Args) a => {
    // SAFETY: a live client and a valid program for the call.
    let (c, program) = unsafe { (client::get(a.client), &*a.program) };
    c.check_fault("PJRT_Client_Compile")?;
    // SAFETY: as above.
    let format = unsafe { crate::string(program.format, program.format_size) };
    if format != "mlir" {
        return Err(Error::unimplemented(format!("program format {format:?}")));
    }
    // SAFETY: as above.
    let (text, options) = unsafe {
        (
            crate::string(program.code, program.code_size),
            crate::slice(a.compile_options.cast::<u8>(), a.compile_options_size),
        )
    };
    a.executable = load(c, &text, options)?;
    Ok(())
});

const MAGIC: &[u8] = b"pjrt-test-plugin executable\n";

crate::entry!(serialize(PJRT_Executable_Serialize_Args) a => {
    // SAFETY: a live view.
    let p = &unsafe { view_of(a.executable.cast_mut()) }.program;
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&(p.options.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&p.options);
    bytes.extend_from_slice(p.text.as_bytes());
    let boxed = Box::new(bytes);
    a.serialized_bytes = boxed.as_ptr().cast();
    a.serialized_bytes_size = boxed.len();
    a.serialized_executable = Box::into_raw(boxed).cast();
    a.serialized_executable_deleter = Some(free_serialized);
    Ok(())
});

unsafe extern "C" fn free_serialized(p: *mut sys::PJRT_SerializedExecutable) {
    drop(Box::from_raw(p.cast::<Vec<u8>>()));
}

crate::entry!(deserialize(PJRT_Executable_DeserializeAndLoad_Args) a => {
    // SAFETY: a live client and the caller's bytes, valid for the call.
    let (c, bytes) = unsafe {
        (
            client::get(a.client),
            crate::slice(a.serialized_executable.cast::<u8>(), a.serialized_executable_size),
        )
    };
    let body = bytes
        .strip_prefix(MAGIC)
        .filter(|b| b.len() >= 8)
        .ok_or_else(|| Error::invalid("not a serialized test-plugin executable"))?;
    let n = u64::from_le_bytes(body[..8].try_into().unwrap_or_default()) as usize;
    let rest = &body[8..];
    if rest.len() < n {
        return Err(Error::invalid("truncated serialized executable"));
    }
    let text = String::from_utf8_lossy(&rest[n..]);
    a.loaded_executable = load(c, &text, &rest[..n])?;
    Ok(())
});

crate::entry!(destroy(PJRT_LoadedExecutable_Destroy_Args) a => {
    // SAFETY: the caller hands back a live executable, once.
    drop(unsafe { Box::from_raw(a.executable.cast::<Loaded>()) });
    Ok(())
});

crate::entry!(view(PJRT_LoadedExecutable_GetExecutable_Args) a => {
    // SAFETY: a live executable.
    let program = unsafe { get(a.loaded_executable) }.program.clone();
    let v = View {
        types: program.results.iter().map(|r| r.dtype).collect(),
        dims: program.results.iter().flat_map(|r| r.local_dims.clone()).collect(),
        dim_sizes: program.results.iter().map(|r| r.local_dims.len()).collect(),
        program,
    };
    a.executable = Box::into_raw(Box::new(v)).cast();
    Ok(())
});

crate::entry!(destroy_view(PJRT_Executable_Destroy_Args) a => {
    // SAFETY: the caller hands back a live view, once.
    drop(unsafe { Box::from_raw(a.executable.cast::<View>()) });
    Ok(())
});

crate::entry!(name(PJRT_Executable_Name_Args) a => {
    // SAFETY: a live view.
    let v = unsafe { view_of(a.executable) };
    a.executable_name = v.program.name.as_ptr().cast();
    a.executable_name_size = v.program.name.len();
    Ok(())
});

crate::entry!(num_outputs(PJRT_Executable_NumOutputs_Args) a => {
    // SAFETY: a live view.
    a.num_outputs = unsafe { view_of(a.executable) }.types.len();
    Ok(())
});

crate::entry!(output_types(PJRT_Executable_OutputElementTypes_Args) a => {
    // SAFETY: a live view.
    let v = unsafe { view_of(a.executable) };
    a.output_types = v.types.as_ptr().cast_mut();
    a.num_output_types = v.types.len();
    Ok(())
});

crate::entry!(output_dims(PJRT_Executable_OutputDimensions_Args) a => {
    // SAFETY: a live view.
    let v = unsafe { view_of(a.executable) };
    a.num_outputs = v.dim_sizes.len();
    a.dims = v.dims.as_ptr();
    a.dim_sizes = v.dim_sizes.as_ptr();
    Ok(())
});

crate::entry!(addressable_devices(PJRT_LoadedExecutable_AddressableDevices_Args) a => {
    // SAFETY: a live executable.
    let e = unsafe { get(a.executable) };
    a.addressable_devices = e.addressable.as_ptr();
    a.num_addressable_devices = e.addressable.len();
    Ok(())
});

/// `value` in `dtype`'s little-endian bytes.
fn element(dtype: sys::PJRT_Buffer_Type, value: i64) -> Vec<u8> {
    match dtype {
        sys::PJRT_Buffer_Type_PRED => vec![1],
        sys::PJRT_Buffer_Type_F16 => half::f16::from_f64(value as f64).to_le_bytes().to_vec(),
        sys::PJRT_Buffer_Type_BF16 => half::bf16::from_f64(value as f64).to_le_bytes().to_vec(),
        sys::PJRT_Buffer_Type_F32 => (value as f32).to_le_bytes().to_vec(),
        sys::PJRT_Buffer_Type_F64 => (value as f64).to_le_bytes().to_vec(),
        t => value.to_le_bytes()[..elem_size(t)].to_vec(),
    }
}

/// Checks argument `i` of device list `d` as XLA does, before reading it.
fn check_arg(e: &Loaded, c: &Client, d: usize, i: usize, raw: *mut sys::PJRT_Buffer) -> Result<()> {
    let live = c
        .live_buffers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&(raw as usize));
    if !live {
        return Err(Error::invalid(format!(
            "argument {i} of device list {d} is not a live buffer of this client"
        )));
    }
    // SAFETY: checked live just above.
    let b = unsafe { buffer::get(raw) };
    let want = &e.program.params[i];
    if b.deleted.load(Ordering::Relaxed) {
        return Err(Error::invalid(format!(
            "argument {i} of device list {d} was donated"
        )));
    }
    if b.device != e.addressable[d] {
        return Err(Error::invalid(format!(
            "argument {i} of device list {d} is on device {}, the program runs list {d} on device {}",
            b.device_id(),
            // SAFETY: a device handle of the live client.
            unsafe { client::device(e.addressable[d]) }.id
        )));
    }
    if b.dtype != want.dtype || b.dims != want.local_dims {
        return Err(Error::invalid(format!(
            "argument {i} of device list {d} has type {} {:?}, the program takes {} {:?}",
            b.dtype, b.dims, want.dtype, want.local_dims
        )));
    }
    Ok(())
}

crate::entry!(execute(PJRT_LoadedExecutable_Execute_Args) a => {
    // SAFETY: a live executable; its client outlives it.
    let e = unsafe { get(a.executable) };
    let c = unsafe { &*e.client };
    c.check_fault("PJRT_LoadedExecutable_Execute")?;
    if !a.execute_device.is_null() {
        return Err(Error::unimplemented("execute_device"));
    }
    if a.num_devices != e.addressable.len() {
        return Err(Error::invalid(format!(
            "{} argument lists for a program on {} devices of this process",
            a.num_devices,
            e.addressable.len()
        )));
    }
    if a.num_args != e.program.params.len() {
        return Err(Error::invalid(format!(
            "the program takes {} arguments, got {}",
            e.program.params.len(),
            a.num_args
        )));
    }
    // SAFETY: the caller passes `num_devices` lists of `num_args` buffers.
    let lists = unsafe { crate::slice(a.argument_lists, a.num_devices) };
    let mut args = Vec::with_capacity(lists.len());
    for (d, &l) in lists.iter().enumerate() {
        // SAFETY: as above.
        let list = unsafe { crate::slice(l, a.num_args) };
        for (i, &raw) in list.iter().enumerate() {
            check_arg(e, c, d, i, raw)?;
        }
        args.push(list);
    }
    let launch = {
        let mut launches = c.launches.lock().unwrap_or_else(|e| e.into_inner());
        let n = launches.entry(e.fingerprint).or_default();
        *n += 1;
        *n - 1
    };
    if e.spans_nodes {
        let key = |node: usize| format!("pjrt_test/launch/{:016x}/{launch}/{node}", e.fingerprint);
        c.kv_put(&key(c.node), b"1")?;
        for node in (0..c.num_nodes).filter(|n| *n != c.node) {
            c.kv_get(&key(node), RENDEZVOUS_MS).map_err(|err| {
                Error::new(
                    sys::PJRT_Error_Code_DEADLINE_EXCEEDED,
                    format!(
                        "process {node} did not launch {} (launch {launch}) with this process: {}",
                        e.program.name, err.message
                    ),
                )
            })?;
        }
    }
    // SAFETY: the options, if given, are valid for the call.
    let keep: &[i64] = match unsafe { a.options.as_ref() } {
        Some(o) => unsafe { crate::slice(o.non_donatable_input_indices, o.num_non_donatable_input_indices) },
        None => &[],
    };
    for list in &args {
        for (i, &raw) in list.iter().enumerate() {
            if e.program.params[i].alias.is_some() && !keep.contains(&(i as i64)) {
                // SAFETY: checked live above.
                unsafe { buffer::get(raw) }.deleted.store(true, Ordering::Relaxed);
            }
        }
    }
    // SAFETY: the caller passes `num_devices` output lists of `num_outputs` slots.
    let outs = unsafe { crate::slice(a.output_lists, a.num_devices) };
    let mut ids = Vec::new();
    for (d, &out) in outs.iter().enumerate() {
        // SAFETY: a device handle of the live client.
        let id = unsafe { client::device(e.addressable[d]) }.id;
        ids.push(id);
        for (k, r) in e.program.results.iter().enumerate() {
            let n = r.local_bytes() / elem_size(r.dtype).max(1);
            let bytes = element(r.dtype, i64::from(id) + 1).repeat(n);
            // SAFETY: slot k of list d.
            unsafe { *out.add(k) = Buffer::create(c, e.addressable[d], r.dtype, r.local_dims.clone(), bytes) };
        }
        if !a.device_complete_events.is_null() {
            // SAFETY: the caller passes one event slot per device.
            unsafe { *a.device_complete_events.add(d) = crate::event::ready(None) };
        }
    }
    c.record.call(
        "PJRT_LoadedExecutable_Execute",
        &[
            ("exe", e.id.to_string()),
            ("name", e.program.name.clone()),
            ("launch", launch.to_string()),
            ("devices", list(ids)),
            ("args", a.num_args.to_string()),
        ],
    );
    Ok(())
});

//! `Array`: a concrete value on devices (JAX's `jax.Array`): a global shape and element type
//! plus its buffers: one whole-array buffer on one device, or, for a sharded array, one
//! buffer per mesh device of this process, in the mesh's canonical order, laid out by a
//! [`NamedSharding`]. In a multi-process job the mesh spans every process's devices and
//! each process holds only its own shards, as a global `jax.Array` does.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use ndarray::{ArrayBase, ArrayD, Data, Dimension, IxDyn};

use crate::client::default_client;
use crate::dtype::{DType, Element};
use crate::pjrt::{self, Buffer, Client, Device};
use crate::sharding::{Mesh, NamedSharding};
use crate::trace::{Aval, Spec};

/// Why an array operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ArrayError {
    /// The array was donated to a jitted function, which reused its memory for an output.
    /// Use that function's output instead, or do not donate this argument.
    #[error("array {aval} was donated to `{function}` and can no longer be used; use the function's output instead, or do not donate it")]
    Donated {
        /// The array's abstract value.
        aval: Aval,
        /// The jitted function it was donated to.
        function: String,
    },
    /// Host data does not fill the shape.
    #[error("{len} elements do not fill shape {shape:?} ({expected} elements)")]
    Length {
        /// Elements given.
        len: usize,
        /// The requested shape.
        shape: Vec<usize>,
        /// Elements the shape needs.
        expected: usize,
    },
    /// The array was read as another element type.
    #[error(
        "array holds {actual}, not {requested}; convert it inside a jitted function with astype"
    )]
    DType {
        /// The array's element type.
        actual: DType,
        /// The type asked for.
        requested: DType,
    },
    /// The runtime failed (transfer, allocation, execution error surfacing at a read).
    #[error(transparent)]
    Runtime(#[from] pjrt::Error),
    /// The sharding does not fit the array or the client's devices.
    #[error(transparent)]
    Sharding(#[from] crate::sharding::ShardingError),
    /// A mesh names a device the client does not have.
    #[error("the mesh names device {0}, which the client does not have")]
    Device(i64),
    /// The values asked for live on other processes' devices.
    #[error("{what} lives on devices of other processes (this process holds {held} of its {total} shards); read its shards with `Array::shards` and `Array::shard_to_bytes`, or replicate it first")]
    NotAddressable {
        /// What was asked for.
        what: String,
        /// Shards held here.
        held: usize,
        /// Shards in all.
        total: usize,
    },
    /// Process-local data does not fit the sharding.
    #[error("process-local data of shape {shape:?}: {reason}")]
    LocalData {
        /// The local shape.
        shape: Vec<usize>,
        /// Why it does not fit.
        reason: String,
    },
}

enum State {
    Live(Vec<Arc<Buffer>>),
    Donated(String),
}

struct Inner {
    aval: Aval,
    sharding: Option<NamedSharding>,
    /// The mesh position of each buffer (this process's devices of the mesh, in order).
    positions: Vec<usize>,
    state: Mutex<State>,
}

/// Where one buffer of an [`Array`] lives: the id of its device and the index ranges of the
/// global array it holds.
pub type ShardPlace = (i64, Vec<std::ops::Range<i64>>);

/// A concrete array on devices. Cloning is cheap and shares the buffers.
#[derive(Clone)]
pub struct Array {
    inner: Arc<Inner>,
}

crate::tree::leaf!(Array);

impl Array {
    /// Wraps one whole-array buffer.
    pub(crate) fn from_buffers(shape: Vec<usize>, dtype: DType, buffers: Vec<Buffer>) -> Array {
        Array::from_parts(shape, dtype, None, vec![0], buffers)
    }

    /// Wraps buffers that lay out `shape` over a mesh: buffer `k` is the shard of the mesh
    /// device at position `positions[k]` (`None`: one whole-array buffer).
    pub(crate) fn from_parts(
        shape: Vec<usize>,
        dtype: DType,
        sharding: Option<NamedSharding>,
        positions: Vec<usize>,
        buffers: Vec<Buffer>,
    ) -> Array {
        let state = State::Live(buffers.into_iter().map(Arc::new).collect());
        Array {
            inner: Arc::new(Inner {
                aval: Aval::new(shape, dtype),
                sharding,
                positions,
                state: Mutex::new(state),
            }),
        }
    }

    /// Splits row-major host data of `shape` over the mesh of `sharding` (default client):
    /// each mesh device gets the slice [`NamedSharding::shard_slices`] assigns it.
    pub fn from_slice_sharded<T: Element>(
        data: &[T],
        shape: &[usize],
        sharding: &NamedSharding,
    ) -> Result<Array, ArrayError> {
        Array::from_bytes_sharded(crate::dtype::as_bytes(data), T::DTYPE, shape, sharding)
    }

    /// [`Array::from_slice_sharded`] for little-endian bytes of `dtype`. In a multi-process
    /// job every process passes the whole array and puts only its own shards on devices
    /// (JAX's `device_put` of a host array).
    pub fn from_bytes_sharded(
        bytes: &[u8],
        dtype: DType,
        shape: &[usize],
        sharding: &NamedSharding,
    ) -> Result<Array, ArrayError> {
        check_len(bytes, dtype, shape)?;
        let client = default_client()?;
        let local = mesh_devices(&client, &sharding.mesh)?;
        let origin = vec![0; shape.len()];
        put_block(
            &client,
            local,
            (bytes, shape, &origin),
            dtype,
            shape,
            sharding,
        )
    }

    /// A global array from each process's part of it (JAX's
    /// `make_array_from_process_local_data`): `bytes` of `local_shape` is the block that
    /// this process's mesh devices hold, and each of them gets its shard of it. Along each
    /// dimension the global size is the local size times the number of shards the
    /// sharding cuts it into, over the number of those this process holds; e.g. a local
    /// batch of 8 under `P("data")` on a mesh of 8 devices, 4 of them here, is a global
    /// batch of 16. With one process it is [`Array::from_bytes_sharded`].
    pub fn from_process_local_data(
        bytes: &[u8],
        dtype: DType,
        local_shape: &[usize],
        sharding: &NamedSharding,
    ) -> Result<Array, ArrayError> {
        check_len(bytes, dtype, local_shape)?;
        let client = default_client()?;
        let local = mesh_devices(&client, &sharding.mesh)?;
        let bad = |reason: String| ArrayError::LocalData {
            shape: local_shape.to_vec(),
            reason,
        };
        if local.is_empty() {
            return Err(bad("no device of the mesh belongs to this process".into()));
        }
        // Each device's shard index along each dimension: the slices of an array with one
        // element per shard.
        let parts: Vec<i64> = (0..local_shape.len())
            .map(|i| sharding.parts(i) as i64)
            .collect();
        let index = sharding.shard_slices(&parts)?;
        let mut global = Vec::with_capacity(local_shape.len());
        let mut offset = Vec::with_capacity(local_shape.len());
        for (i, &size) in local_shape.iter().enumerate() {
            let held: std::collections::BTreeSet<i64> =
                local.iter().map(|(p, _)| index[*p][i].start).collect();
            let (first, n) = (held.first().copied().unwrap_or(0), held.len() as i64);
            if held.last().copied().unwrap_or(0) - first + 1 != n {
                return Err(bad(format!(
                    "this process holds shards {held:?} of dimension {i}, which are not contiguous"
                )));
            }
            if size as i64 % n != 0 {
                return Err(bad(format!(
                    "dimension {i} of size {size} does not split into the {n} shards this process holds"
                )));
            }
            let shard = size as i64 / n;
            global.push((shard * parts[i]) as usize);
            offset.push(first * shard);
        }
        put_block(
            &client,
            local,
            (bytes, local_shape, &offset),
            dtype,
            &global,
            sharding,
        )
    }

    /// How the array is laid out over a mesh (`None`: whole on one device).
    pub fn sharding(&self) -> Option<&NamedSharding> {
        self.inner.sharding.as_ref()
    }

    /// True when this process holds every element (always, in a one-process job).
    pub fn is_fully_addressable(&self) -> bool {
        match &self.inner.sharding {
            Some(sh) => self.inner.positions.len() == sh.mesh.size(),
            None => true,
        }
    }

    /// The dimensions of each of this process's device buffers, in mesh order.
    pub fn shard_shapes(&self) -> Result<Vec<Vec<usize>>, ArrayError> {
        Ok(self
            .buffers()?
            .iter()
            .map(|b| b.dims().iter().map(|&d| d as usize).collect())
            .collect())
    }

    /// Where the array lives, over the whole job, one entry per mesh device in mesh order
    /// (one entry when unsharded): the device's id and the index ranges of the global array
    /// it holds. [`Array::shard_to_bytes`] reads those held by this process.
    pub fn shards(&self) -> Result<Vec<ShardPlace>, ArrayError> {
        let bufs = self.buffers()?;
        let global: Vec<i64> = self.shape().iter().map(|&d| d as i64).collect();
        match &self.inner.sharding {
            Some(sh) => Ok(sh
                .mesh
                .device_ids()
                .iter()
                .copied()
                .zip(sh.shard_slices(&global)?)
                .collect()),
            None => bufs
                .iter()
                .map(|b| {
                    let id = i64::from(b.device()?.id());
                    Ok((id, global.iter().map(|&d| 0..d).collect()))
                })
                .collect(),
        }
    }

    /// Copies shard `k` (the `k`-th of [`Array::shards`]) to the host as little-endian
    /// bytes; it must be on a device of this process.
    pub fn shard_to_bytes(&self, k: usize) -> Result<Vec<u8>, ArrayError> {
        let bufs = self.buffers()?;
        let total = self.inner.sharding.as_ref().map_or(1, |s| s.mesh.size());
        match self.inner.positions.iter().position(|&p| p == k) {
            Some(i) => Ok(bufs[i].to_host_bytes()?),
            None if k < total => Err(ArrayError::NotAddressable {
                what: format!("shard {k} of array {}", self.inner.aval),
                held: bufs.len(),
                total,
            }),
            None => Err(ArrayError::Runtime(pjrt::Error::InvalidArgument {
                op: "Array::shard_to_bytes",
                message: format!("shard {k} of an array with {total} shards"),
            })),
        }
    }

    /// Copies row-major host data of `shape` to the default client's first device.
    pub fn from_slice<T: Element>(data: &[T], shape: &[usize]) -> Result<Array, ArrayError> {
        let client = default_client()?;
        let device = first_device(&client)?;
        Array::from_slice_on(&client, &device, data, shape)
    }

    /// Copies row-major host data of `shape` to `device` of `client`.
    pub fn from_slice_on<T: Element>(
        client: &Client,
        device: &Device,
        data: &[T],
        shape: &[usize],
    ) -> Result<Array, ArrayError> {
        check_len(crate::dtype::as_bytes(data), T::DTYPE, shape)?;
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let buf = client.buffer_from_host(data, &dims, device)?;
        Ok(Array::from_buffers(shape.to_vec(), T::DTYPE, vec![buf]))
    }

    /// Copies little-endian host bytes of `dtype` and `shape` to the default client's first
    /// device.
    pub fn from_bytes(bytes: &[u8], dtype: DType, shape: &[usize]) -> Result<Array, ArrayError> {
        check_len(bytes, dtype, shape)?;
        let client = default_client()?;
        let device = first_device(&client)?;
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let buf = client.buffer_from_host_bytes(bytes, dtype, &dims, &device)?;
        Ok(Array::from_buffers(shape.to_vec(), dtype, vec![buf]))
    }

    /// A rank-0 array.
    pub fn scalar<T: Element>(v: T) -> Result<Array, ArrayError> {
        Array::from_slice(&[v], &[])
    }

    /// Copies an `ndarray` array (any layout) to the default client's first device.
    pub fn from_ndarray<T: Element, S: Data<Elem = T>, D: Dimension>(
        a: &ArrayBase<S, D>,
    ) -> Result<Array, ArrayError> {
        let shape = a.shape().to_vec();
        let std = a.as_standard_layout();
        match std.as_slice() {
            Some(s) => Array::from_slice(s, &shape),
            None => Array::from_slice(&std.iter().copied().collect::<Vec<T>>(), &shape),
        }
    }

    /// The abstract value (shape and element type).
    pub fn aval(&self) -> &Aval {
        &self.inner.aval
    }

    /// Dimension sizes.
    pub fn shape(&self) -> &[usize] {
        &self.inner.aval.shape
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.inner.aval.dtype
    }

    /// The shape and type as a [`Spec`].
    pub fn spec(&self) -> Spec {
        Spec::new(self.shape().to_vec(), self.dtype())
    }

    /// True once the array was donated to a jitted function.
    pub fn is_donated(&self) -> bool {
        matches!(*self.state(), State::Donated(_))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked while holding it; the state
        // itself is always consistent.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The per-device buffers, or why they are gone.
    pub(crate) fn buffers(&self) -> Result<Vec<Arc<Buffer>>, ArrayError> {
        match &*self.state() {
            State::Live(b) => Ok(b.clone()),
            State::Donated(f) => Err(self.donated_error(f)),
        }
    }

    /// Takes the buffers out for donation to `function`; later uses report it.
    pub(crate) fn donate(&self, function: &str) -> Result<Vec<Arc<Buffer>>, ArrayError> {
        let mut st = self.state();
        match std::mem::replace(&mut *st, State::Donated(function.to_string())) {
            State::Live(b) => Ok(b),
            State::Donated(f) => {
                let err = self.donated_error(&f);
                *st = State::Donated(f);
                Err(err)
            }
        }
    }

    fn donated_error(&self, function: &str) -> ArrayError {
        ArrayError::Donated {
            aval: self.inner.aval.clone(),
            function: function.to_string(),
        }
    }

    /// Waits until the value is computed; returns the computation's error, if any.
    pub fn block_until_ready(&self) -> Result<(), ArrayError> {
        for b in self.buffers()? {
            b.block_until_ready()?;
        }
        Ok(())
    }

    /// Copies the value to the host as little-endian bytes, assembling a sharded array
    /// from its shards (blocks). In a multi-process job this process must hold every
    /// element (a replicated array, say).
    pub fn to_bytes(&self) -> Result<Vec<u8>, ArrayError> {
        let bufs = self.buffers()?;
        let Some(sharding) = &self.inner.sharding else {
            return match bufs.first() {
                Some(b) => Ok(b.to_host_bytes()?),
                None => Ok(Vec::new()),
            };
        };
        let elem = self.dtype().size_in_bytes();
        let mut out = vec![0u8; self.aval().size() * elem];
        let global: Vec<i64> = self.shape().iter().map(|&d| d as i64).collect();
        let slices = sharding.shard_slices(&global)?;
        let mut filled = std::collections::BTreeSet::new();
        for (&p, buf) in self.inner.positions.iter().zip(&bufs) {
            // Replicas hold the same data: read each distinct shard once.
            if filled.insert(slices[p].iter().map(|r| r.start).collect::<Vec<_>>()) {
                place_shard(
                    &mut out,
                    self.shape(),
                    &slices[p],
                    &buf.to_host_bytes()?,
                    elem,
                );
            }
        }
        let distinct: std::collections::BTreeSet<Vec<i64>> = slices
            .iter()
            .map(|s| s.iter().map(|r| r.start).collect())
            .collect();
        if filled.len() < distinct.len() {
            return Err(ArrayError::NotAddressable {
                what: format!("array {}", self.inner.aval),
                held: bufs.len(),
                total: sharding.mesh.size(),
            });
        }
        Ok(out)
    }

    /// Copies the value to the host, row-major (blocks).
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>, ArrayError> {
        if T::DTYPE != self.dtype() {
            return Err(ArrayError::DType {
                actual: self.dtype(),
                requested: T::DTYPE,
            });
        }
        let bytes = self.to_bytes()?;
        Ok(bytes
            .chunks_exact(T::DTYPE.size_in_bytes())
            .map(T::read_le)
            .collect())
    }

    /// Copies the value to a host `ndarray` (blocks).
    pub fn to_ndarray<T: Element>(&self) -> Result<ArrayD<T>, ArrayError> {
        let v = self.to_vec::<T>()?;
        let expected = v.len();
        ArrayD::from_shape_vec(IxDyn(self.shape()), v).map_err(|_| ArrayError::Length {
            len: expected,
            shape: self.shape().to_vec(),
            expected: self.aval().size(),
        })
    }

    /// Copies a rank-0 (or one-element) value to the host (blocks).
    pub fn item<T: Element>(&self) -> Result<T, ArrayError> {
        let v = self.to_vec::<T>()?;
        match v.first() {
            Some(&x) if v.len() == 1 => Ok(x),
            _ => Err(ArrayError::Length {
                len: v.len(),
                shape: vec![],
                expected: 1,
            }),
        }
    }
}

/// The array of `global` shape laid out by `sharding`, made from one block of it held on
/// the host (`bytes` of `shape`, starting at index `offset`): each of this process's mesh
/// devices (`local`, with their positions) gets its shard, which must lie in the block.
fn put_block(
    client: &Client,
    local: Vec<(usize, Device)>,
    (bytes, shape, offset): (&[u8], &[usize], &[i64]),
    dtype: DType,
    global: &[usize],
    sharding: &NamedSharding,
) -> Result<Array, ArrayError> {
    let global_i64: Vec<i64> = global.iter().map(|&d| d as i64).collect();
    let shard_dims = sharding.shard_shape(&global_i64)?;
    let slices = sharding.shard_slices(&global_i64)?;
    let mut buffers = Vec::with_capacity(local.len());
    for (p, device) in &local {
        let within: Vec<std::ops::Range<i64>> = slices[*p]
            .iter()
            .zip(offset)
            .map(|(r, o)| r.start - o..r.end - o)
            .collect();
        let part = shard_bytes(bytes, shape, &within, dtype.size_in_bytes());
        buffers.push(client.buffer_from_host_owned(part, dtype, &shard_dims, device)?);
    }
    Ok(Array::from_parts(
        global.to_vec(),
        dtype,
        Some(sharding.clone()),
        local.into_iter().map(|(p, _)| p).collect(),
        buffers,
    ))
}

/// Checks that `bytes` of `dtype` fill `shape` exactly.
fn check_len(bytes: &[u8], dtype: DType, shape: &[usize]) -> Result<(), ArrayError> {
    let expected: usize = shape.iter().product();
    if bytes.len() == expected * dtype.size_in_bytes() {
        return Ok(());
    }
    Err(ArrayError::Length {
        len: bytes.len() / dtype.size_in_bytes(),
        shape: shape.to_vec(),
        expected,
    })
}

/// This process's devices of `mesh` with their mesh positions, in mesh order; an error if
/// the mesh names a device the client does not have at all.
pub(crate) fn mesh_devices(
    client: &Client,
    mesh: &Mesh,
) -> Result<Vec<(usize, Device)>, ArrayError> {
    let devices = client.devices();
    let mut out = Vec::new();
    for (p, &id) in mesh.device_ids().iter().enumerate() {
        let d = devices
            .iter()
            .find(|d| i64::from(d.id()) == id)
            .ok_or(ArrayError::Device(id))?;
        if d.is_addressable() {
            out.push((p, d.clone()));
        }
    }
    Ok(out)
}

/// Calls `f(offset_in_global, offset_in_block, run)` for each contiguous innermost run of
/// the block `slices` of a row-major array of `shape` (offsets and run in elements).
fn for_each_run(
    shape: &[usize],
    slices: &[std::ops::Range<i64>],
    mut f: impl FnMut(usize, usize, usize),
) {
    let rank = shape.len();
    if rank == 0 {
        f(0, 0, 1);
        return;
    }
    let block: Vec<usize> = slices.iter().map(|r| (r.end - r.start) as usize).collect();
    if block.contains(&0) {
        return;
    }
    let run = block[rank - 1];
    let rows: usize = block[..rank - 1].iter().product();
    let mut idx = vec![0usize; rank - 1];
    for row in 0..rows {
        let mut g = 0;
        for d in 0..rank - 1 {
            g = g * shape[d] + slices[d].start as usize + idx[d];
        }
        g = g * shape[rank - 1] + slices[rank - 1].start as usize;
        f(g, row * run, run);
        for d in (0..rank - 1).rev() {
            idx[d] += 1;
            if idx[d] < block[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// The bytes of block `slices` of a row-major array of `shape`.
fn shard_bytes(
    global: &[u8],
    shape: &[usize],
    slices: &[std::ops::Range<i64>],
    elem: usize,
) -> Vec<u8> {
    let n: usize = slices.iter().map(|r| (r.end - r.start) as usize).product();
    let mut out = vec![0u8; n * elem];
    for_each_run(shape, slices, |g, b, run| {
        out[b * elem..(b + run) * elem].copy_from_slice(&global[g * elem..(g + run) * elem]);
    });
    out
}

/// Writes a block's bytes into its place in a row-major array of `shape`.
fn place_shard(
    global: &mut [u8],
    shape: &[usize],
    slices: &[std::ops::Range<i64>],
    block: &[u8],
    elem: usize,
) {
    for_each_run(shape, slices, |g, b, run| {
        global[g * elem..(g + run) * elem].copy_from_slice(&block[b * elem..(b + run) * elem]);
    });
}

fn first_device(client: &Client) -> Result<Device, ArrayError> {
    client
        .addressable_devices()
        .into_iter()
        .next()
        .ok_or_else(|| {
            ArrayError::Runtime(pjrt::Error::InvalidArgument {
                op: "Array",
                message: "the client has no devices".into(),
            })
        })
}

impl fmt::Debug for Array {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_donated() {
            write!(f, "Array({}, donated)", self.inner.aval)
        } else {
            write!(f, "Array({})", self.inner.aval)
        }
    }
}

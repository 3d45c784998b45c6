//! `Array`: a concrete value on devices (JAX's `jax.Array`): a global shape and element type
//! plus one buffer per addressable device. Today every array lives whole on one device;
//! sharding (several buffers covering the global shape) is a later issue and changes only
//! how `shards` is filled.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use ndarray::{ArrayBase, ArrayD, Data, Dimension, IxDyn};

use crate::dtype::{DType, Element};
use crate::jit::default_client;
use crate::pjrt::{self, Buffer, Client, Device};
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
}

enum State {
    Live(Vec<Arc<Buffer>>),
    Donated(String),
}

struct Inner {
    aval: Aval,
    state: Mutex<State>,
}

/// A concrete array on devices. Cloning is cheap and shares the buffers.
#[derive(Clone)]
pub struct Array {
    inner: Arc<Inner>,
}

impl Array {
    /// Wraps device buffers covering `shape` (one whole-array buffer today).
    pub(crate) fn from_buffers(shape: Vec<usize>, dtype: DType, buffers: Vec<Buffer>) -> Array {
        let state = State::Live(buffers.into_iter().map(Arc::new).collect());
        Array {
            inner: Arc::new(Inner {
                aval: Aval::new(shape, dtype),
                state: Mutex::new(state),
            }),
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
        let expected: usize = shape.iter().product();
        if data.len() != expected {
            return Err(ArrayError::Length {
                len: data.len(),
                shape: shape.to_vec(),
                expected,
            });
        }
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let buf = client.buffer_from_host(data, &dims, device)?;
        Ok(Array::from_buffers(shape.to_vec(), T::DTYPE, vec![buf]))
    }

    /// Copies little-endian host bytes of `dtype` and `shape` to the default client's first
    /// device.
    pub fn from_bytes(bytes: &[u8], dtype: DType, shape: &[usize]) -> Result<Array, ArrayError> {
        let expected: usize = shape.iter().product();
        if bytes.len() != expected * dtype.size_in_bytes() {
            let len = bytes.len() / dtype.size_in_bytes();
            return Err(ArrayError::Length {
                len,
                shape: shape.to_vec(),
                expected,
            });
        }
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

    /// Copies the value to the host as little-endian bytes (blocks).
    pub fn to_bytes(&self) -> Result<Vec<u8>, ArrayError> {
        let bufs = self.buffers()?;
        match bufs.first() {
            Some(b) => Ok(b.to_host_bytes()?),
            None => Ok(Vec::new()),
        }
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

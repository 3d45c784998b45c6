//! Stacking examples into a batch (a leading batch dimension on every value).

use std::sync::{Mutex, PoisonError};

use super::value::{Array, Example, Value};

/// float32 buffers of examples already copied into a batch, for ops to fill again.
static F32_BUFFERS: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());
/// Buffers smaller than this (in values) are not kept.
const RECYCLE_MIN: usize = 1 << 16;
/// At most this many buffers are kept.
const RECYCLE_MAX: usize = 16;

/// An empty float32 vector with room for `len` values, reusing the buffer of an example that
/// is already batched when one is large enough. A float32 224x224x3 image is 600 KB: freed
/// by the batcher, glibc often returns it to the OS, and the next image page-faults it back
/// in (about a tenth of the pipeline's CPU time).
pub fn f32_buffer(len: usize) -> Vec<f32> {
    if len >= RECYCLE_MIN {
        let mut pool = F32_BUFFERS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = pool.iter().position(|b| b.capacity() >= len) {
            let mut b = pool.swap_remove(i);
            b.clear();
            return b;
        }
    }
    Vec::with_capacity(len)
}

/// Keeps the large float32 buffers of an example that has been copied into a batch.
pub fn recycle(ex: Example) {
    let mut pool = F32_BUFFERS.lock().unwrap_or_else(PoisonError::into_inner);
    for v in ex.into_values() {
        if let Value::F32(a) = v {
            if a.data.capacity() >= RECYCLE_MIN && pool.len() < RECYCLE_MAX {
                pool.push(a.data);
            }
        }
    }
}

/// Below this size a batch buffer is left to the allocator as it is.
#[cfg(target_os = "linux")]
const HUGE_PAGE_MIN: usize = 8 << 20;

/// Asks Linux to back `[addr, addr + len)` with transparent huge pages. A batch of 64 float32
/// 224x224x3 images is 38 MB, larger than glibc's largest mmap threshold (32 MB), so every
/// batch is freshly mapped; faulting it in 4 KiB pages (9,400 faults) took a third of the
/// pipeline's CPU time, 2 MiB pages take 19 faults.
#[cfg(target_os = "linux")]
fn advise_huge_pages(addr: usize, len: usize) {
    const HUGE: usize = 2 << 20;
    if len < HUGE_PAGE_MIN {
        return;
    }
    let start = addr.next_multiple_of(HUGE);
    let end = (addr + len) / HUGE * HUGE;
    // SAFETY: only advice, about whole pages inside an allocation the caller owns and has not
    // written yet; the kernel ignores it where huge pages are disabled.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
    }
}

/// float32 batch buffers of batches already dropped (see [`recycle_batch`]).
static BATCH_BUFFERS: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());
/// At most this many batch buffers are kept: a batch being stacked, two prefetched, one in use.
const BATCH_POOL_MAX: usize = 4;

/// Keeps the large float32 buffers of a batch that is no longer needed, for the next batch
/// to reuse. A fresh 38 MB batch buffer costs the kernel 19 huge-page faults and zeroing
/// (about a tenth of the pipeline's CPU time); a reused one is already mapped.
pub fn recycle_batch(batch: Example) {
    let mut pool = BATCH_BUFFERS.lock().unwrap_or_else(PoisonError::into_inner);
    for v in batch.into_values() {
        if let Value::F32(a) = v {
            if a.data.capacity() >= RECYCLE_MIN && pool.len() < BATCH_POOL_MAX {
                pool.push(a.data);
            }
        }
    }
}

/// An empty float32 batch buffer with room for `n` values: a recycled one of the same
/// capacity, else a fresh one.
fn f32_batch_vec(n: usize) -> Vec<f32> {
    if n >= RECYCLE_MIN {
        let mut pool = BATCH_BUFFERS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = pool.iter().position(|b| b.capacity() == n) {
            let mut b = pool.swap_remove(i);
            b.clear();
            return b;
        }
    }
    batch_vec(n)
}

/// A vector with room for `n` elements, whose pages are advised huge when it is large.
fn batch_vec<T>(n: usize) -> Vec<T> {
    let v = Vec::with_capacity(n);
    #[cfg(target_os = "linux")]
    advise_huge_pages(v.as_ptr() as usize, v.capacity() * size_of::<T>());
    v
}

/// Builds a batch one example at a time, so that each example is copied while it is still in
/// cache and its buffers can be freed and reused right away.
pub struct Stacker {
    capacity: usize,
    len: usize,
    /// Per key: the stacked data so far, with the shape of one example.
    values: Vec<(String, Value)>,
}

impl Stacker {
    /// An empty batch with room for `capacity` examples.
    pub fn new(capacity: usize) -> Self {
        Stacker {
            capacity,
            len: 0,
            values: Vec::new(),
        }
    }

    /// Number of examples pushed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no example was pushed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends an example; it must have the keys, dtypes and shapes of the first one.
    pub fn push(&mut self, ex: &Example) -> Result<(), String> {
        if self.len == 0 {
            self.values = ex
                .iter()
                .map(|(k, v)| (k.clone(), empty(v, self.capacity)))
                .collect();
        } else {
            self.check(ex)?;
        }
        for ((_, dst), src) in self.values.iter_mut().zip(ex.values()) {
            match (dst, src) {
                (Value::U8(d), Value::U8(s)) => d.data.extend_from_slice(&s.data),
                (Value::I64(d), Value::I64(s)) => d.data.extend_from_slice(&s.data),
                (Value::F32(d), Value::F32(s)) => d.data.extend_from_slice(&s.data),
                (Value::Bytes(d), Value::Bytes(s)) => d.data.extend_from_slice(&s.data),
                _ => unreachable!("dtypes checked above"),
            }
        }
        self.len += 1;
        Ok(())
    }

    /// The error for the first key, dtype or shape of `ex` that differs from example 0.
    fn check(&self, ex: &Example) -> Result<(), String> {
        let i = self.len;
        if ex.len() != self.values.len() || !ex.keys().eq(self.values.iter().map(|(k, _)| k)) {
            return Err(format!(
                "example {i} of the batch has keys {:?}, example 0 has {:?}; use keep(...) to \
                 select the same keys",
                ex.keys().collect::<Vec<_>>(),
                self.values.iter().map(|(k, _)| k).collect::<Vec<_>>()
            ));
        }
        for ((k, f), v) in self.values.iter().zip(ex.values()) {
            if v.dtype() != f.dtype() || v.shape() != f.shape() {
                return Err(format!(
                    "'{k}' is {} {:?} in example {i} but {} {:?} in example 0; resize or crop \
                     to a fixed size before batching",
                    v.dtype(),
                    v.shape(),
                    f.dtype(),
                    f.shape()
                ));
            }
        }
        Ok(())
    }

    /// The batch: every value with a leading dimension of [`Stacker::len`].
    pub fn finish(self) -> Example {
        let n = self.len;
        self.values
            .into_iter()
            .map(|(k, mut v)| {
                let shape = match &mut v {
                    Value::U8(a) => &mut a.shape,
                    Value::I64(a) => &mut a.shape,
                    Value::F32(a) => &mut a.shape,
                    Value::Bytes(a) => &mut a.shape,
                };
                shape.insert(0, n);
                (k, v)
            })
            .collect()
    }
}

/// No data yet, room for `n` values like `v`, and `v`'s shape.
fn empty(v: &Value, n: usize) -> Value {
    fn e<T>(a: &Array<T>, n: usize, vec: fn(usize) -> Vec<T>) -> Array<T> {
        Array {
            shape: a.shape.clone(),
            data: vec(n * a.data.len()),
        }
    }
    match v {
        Value::U8(a) => Value::U8(e(a, n, batch_vec)),
        Value::I64(a) => Value::I64(e(a, n, batch_vec)),
        Value::F32(a) => Value::F32(e(a, n, f32_batch_vec)),
        Value::Bytes(a) => Value::Bytes(e(a, n, batch_vec)),
    }
}

/// Stacks examples that share keys, dtypes and shapes; the error names the first mismatch.
pub fn stack_examples(examples: &[Example]) -> Result<Example, String> {
    if examples.is_empty() {
        return Err("cannot batch zero examples".into());
    }
    let mut s = Stacker::new(examples.len());
    for ex in examples {
        s.push(ex)?;
    }
    Ok(s.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(label: i64, image: Vec<f32>) -> Example {
        let mut ex = Example::new();
        ex.insert("label".into(), Value::I64(Array::scalar(label)));
        let n = image.len();
        ex.insert("image".into(), Value::F32(Array::new(vec![1, n], image)));
        ex
    }

    #[test]
    fn stacks_with_a_leading_dimension() {
        let batch =
            stack_examples(&[example(3, vec![1.0, 2.0]), example(4, vec![5.0, 6.0])]).unwrap();
        assert_eq!(
            batch["image"],
            Value::F32(Array::new(vec![2, 1, 2], vec![1.0, 2.0, 5.0, 6.0]))
        );
        assert_eq!(batch["label"], Value::I64(Array::new(vec![2], vec![3, 4])));
    }

    #[test]
    fn mismatches_name_the_example() {
        let bad_shape = [example(0, vec![1.0, 2.0]), example(1, vec![1.0])];
        let err = stack_examples(&bad_shape).unwrap_err();
        assert!(
            err.contains("'image' is float32 [1, 1] in example 1 but float32 [1, 2] in example 0"),
            "{err}"
        );
        let mut extra = example(1, vec![1.0, 2.0]);
        extra.insert("mask".into(), Value::U8(Array::scalar(1)));
        let err = stack_examples(&[example(0, vec![1.0, 2.0]), extra]).unwrap_err();
        assert!(
            err.contains(r#"example 1 of the batch has keys ["image", "label", "mask"]"#),
            "{err}"
        );
        assert!(stack_examples(&[]).is_err());
    }
}

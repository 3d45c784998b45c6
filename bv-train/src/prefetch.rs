//! `prefetch_to_device`: batches copied to the devices ahead of the step that uses them, as
//! flax's `jax_utils.prefetch_to_device` that big_vision's input pipeline uses: while step
//! `k` runs, the batches of steps `k+1 .. k+depth-1` are already on the devices (`depth` 1,
//! the default, copies each batch just before its step).

use std::collections::VecDeque;

/// An iterator that applies `put` (the copy to the devices) to `depth` items ahead.
pub struct Ahead<I: Iterator, F, T> {
    inner: I,
    put: F,
    queue: VecDeque<T>,
    depth: usize,
}

impl<I: Iterator, F: FnMut(I::Item) -> T, T> Ahead<I, F, T> {
    /// Items of `inner` passed through `put`, `depth` (at least 1) at a time.
    pub fn new(inner: I, depth: usize, put: F) -> Self {
        Ahead {
            inner,
            put,
            queue: VecDeque::new(),
            depth: depth.max(1),
        }
    }
}

impl<I: Iterator, F: FnMut(I::Item) -> T, T> Iterator for Ahead<I, F, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        while self.queue.len() < self.depth {
            match self.inner.next() {
                Some(x) => self.queue.push_back((self.put)(x)),
                None => break,
            }
        }
        self.queue.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn puts_depth_items_ahead_in_order() {
        let pulled = Cell::new(0);
        let source = (0..5).inspect(|_| pulled.set(pulled.get() + 1));
        let mut it = Ahead::new(source, 3, |x| x * 10);
        assert_eq!(it.next(), Some(0));
        assert_eq!(
            pulled.get(),
            3,
            "two batches wait on the devices behind the first"
        );
        assert_eq!(it.next(), Some(10));
        assert_eq!(pulled.get(), 4);
        assert_eq!(it.collect::<Vec<_>>(), vec![20, 30, 40]);
        let mut one = Ahead::new(0..2, 1, |x| x);
        assert_eq!(
            (one.next(), one.next(), one.next()),
            (Some(0), Some(1), None)
        );
    }
}

//! One host's endless, shuffled record stream of one dataset split, with a small saved position.
//!
//! Each epoch reads the host's shard reads (in an order shuffled per epoch when
//! `shuffle_files`) through a tf.data-style shuffle buffer: fill `buffer` records, then emit a
//! uniformly chosen one and put the next record in its place. The epoch's randomness comes from
//! `(seed, epoch)` only, so a position is just `(epoch, records emitted in that epoch)`:
//! restoring replays that epoch's buffer on record locations (no payloads, unless corrupted
//! records are being skipped) and then loads the buffered records.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::error::Result;
use super::split::ShardRead;
use super::tfds::{fill_records, Record, RecordStream, TfdsDataset};
use super::tfrecord::Corruption;
use crate::pp::Rng;

/// Where a source stands: the epoch and the records emitted in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePosition {
    /// Epoch, from 0.
    pub epoch: u64,
    /// Records emitted in this epoch.
    pub emitted: u64,
}

/// A shuffled, repeated record source.
pub struct ShuffledSource {
    ds: Arc<TfdsDataset>,
    reads: Vec<ShardRead>,
    buffer_size: usize,
    shuffle_files: bool,
    seed: u64,
    corruption: Corruption,
    pos: SourcePosition,
    stream: RecordStream,
    buffer: Vec<Record>,
    rng: Rng,
    epoch_started: bool,
}

const FILE_STREAM: u64 = 0x6669_6c65;

impl ShuffledSource {
    /// A source over `reads` of `ds`, positioned at `start`.
    pub fn new(
        ds: Arc<TfdsDataset>,
        reads: Vec<ShardRead>,
        buffer_size: usize,
        shuffle_files: bool,
        seed: u64,
        corruption: Corruption,
        start: SourcePosition,
    ) -> Result<Self> {
        let mut s = ShuffledSource {
            stream: RecordStream::new(Vec::new(), ds.format, corruption),
            ds,
            reads,
            buffer_size: buffer_size.max(1),
            shuffle_files,
            seed,
            corruption,
            pos: SourcePosition {
                epoch: start.epoch,
                emitted: 0,
            },
            buffer: Vec::new(),
            rng: Rng::new(seed, 0),
            epoch_started: false,
        };
        s.start_epoch();
        // Replay: location-only unless corrupted records are skipped (then payloads decide).
        let payloads = corruption == Corruption::SkipAndCount;
        for _ in 0..start.emitted {
            if s.step(payloads)?.is_none() {
                break;
            }
        }
        if !payloads {
            fill_records(&mut s.buffer, s.ds.format)?;
        }
        Ok(s)
    }

    /// The position after the records emitted so far.
    pub fn position(&self) -> SourcePosition {
        self.pos
    }

    /// Corrupted records skipped in the current epoch.
    pub fn skipped(&self) -> u64 {
        self.stream.skipped()
    }

    fn start_epoch(&mut self) {
        let mut reads = self.reads.clone();
        if self.shuffle_files {
            let mut r = Rng::new(self.seed ^ FILE_STREAM, self.pos.epoch);
            for i in (1..reads.len()).rev() {
                reads.swap(i, r.below(i as u64 + 1) as usize);
            }
        }
        self.stream = self.ds.stream(&reads, self.corruption);
        self.rng = Rng::new(self.seed, self.pos.epoch);
        self.buffer.clear();
        self.epoch_started = false;
    }

    fn pull(&mut self, payload: bool) -> Option<Result<Record>> {
        if payload {
            self.stream.next()
        } else {
            self.stream.next_location()
        }
    }

    fn step(&mut self, payload: bool) -> Result<Option<Record>> {
        if !self.epoch_started {
            while self.buffer.len() < self.buffer_size {
                match self.pull(payload).transpose()? {
                    Some(r) => self.buffer.push(r),
                    None => break,
                }
            }
            self.epoch_started = true;
        }
        if self.buffer.is_empty() {
            return Ok(None);
        }
        let j = self.rng.below(self.buffer.len() as u64) as usize;
        let out = match self.pull(payload).transpose()? {
            Some(next) => std::mem::replace(&mut self.buffer[j], next),
            None => self.buffer.swap_remove(j),
        };
        self.pos.emitted += 1;
        Ok(Some(out))
    }

    /// The next record, moving to the next epoch when one ends.
    pub fn next_record(&mut self) -> Result<Record> {
        for _ in 0..2 {
            if let Some(r) = self.step(true)? {
                return Ok(r);
            }
            self.pos = SourcePosition {
                epoch: self.pos.epoch + 1,
                emitted: 0,
            };
            self.start_epoch();
        }
        Err(super::error::DataError::Split {
            spec: format!("{:?}", self.reads.first().map(|r| &r.split)),
            msg: "this host's share of the split has no examples".into(),
        })
    }
}

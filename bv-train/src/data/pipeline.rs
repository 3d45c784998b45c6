//! The training and eval input pipelines: read, shuffle, repeat, preprocess on worker threads,
//! batch, prefetch.
//!
//! Example `i` of the stream (counted from the start of training) is preprocessed with
//! `Rng::new(seed, i)` and results are put back in order before batching, so the batches
//! depend on the seed only, never on the number of threads. Each training batch carries the
//! [`Position`] after it; [`train`] started from that position yields exactly the next batches.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread;

use crossbeam_channel::{bounded, Receiver, Sender};
use serde::{Deserialize, Serialize};

use super::batch::{recycle, recycle_batch, Stacker};
use super::error::DataError;
use super::shuffle::{ShuffledSource, SourcePosition};
use super::split::even_split;
use super::tfds::{Record, TfdsDataset};
use super::tfrecord::Corruption;
use super::value::{Array, Example, Value};
use crate::pp::{Pipeline, PpError, Rng};

/// What went wrong while producing a batch.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Reading the dataset failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A pp op failed on an example; the record is named so it can be inspected.
    #[error("{path} at byte {offset}: {source}")]
    Pp {
        /// The shard file.
        path: String,
        /// The record's byte offset.
        offset: u64,
        /// The op's error.
        source: PpError,
    },
    /// The examples of a batch do not stack, or the configuration is unusable.
    #[error("batching: {0}")]
    Batch(String),
}

/// One dataset of the training input, with its preprocessing and mixture weight.
#[derive(Clone)]
pub struct Source {
    /// The dataset.
    pub dataset: Arc<TfdsDataset>,
    /// Split string, e.g. `train[:99%]`.
    pub split: String,
    /// Preprocessing.
    pub pp: Arc<Pipeline>,
    /// Mixture weight (normalized over sources).
    pub weight: f64,
    /// Shuffle buffer size, per host.
    pub shuffle_buffer: usize,
}

/// Training input settings.
#[derive(Clone)]
pub struct TrainConfig {
    /// One source, or several mixed by weight.
    pub sources: Vec<Source>,
    /// Examples per batch on this host.
    pub batch_size: usize,
    /// Seed of shuffling, mixing and random pp ops.
    pub seed: u64,
    /// Preprocessing threads.
    pub threads: usize,
    /// Batches prepared ahead.
    pub prefetch: usize,
    /// This host's index.
    pub host_index: usize,
    /// Number of hosts (each reads an even share of every split).
    pub host_count: usize,
    /// Shuffle the order of shard reads each epoch.
    pub shuffle_files: bool,
    /// What to do with corrupted records.
    pub corruption: Corruption,
}

/// Where the training input stands after a batch; serializable for checkpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Examples drawn so far (all sources).
    pub examples: u64,
    /// Each source's epoch and offset in it.
    pub sources: Vec<SourcePosition>,
}

/// A batch: every value with a leading batch dimension.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The stacked values (eval batches also hold `_mask`, uint8 1 for real examples).
    pub data: Example,
    /// Training only: the input position after this batch.
    pub position: Option<Position>,
}

impl Drop for Batch {
    /// Hands the batch's large buffers to the next batch.
    fn drop(&mut self) {
        recycle_batch(std::mem::take(&mut self.data));
    }
}

struct Work {
    index: u64,
    source: usize,
    rec: Record,
    pos: Option<Position>,
}

type Done = (u64, Result<Example, PipelineError>, Option<Position>);

/// Batches from worker threads; dropping it stops them.
pub struct Batches {
    rx: Receiver<Result<Batch, PipelineError>>,
    steps: Option<usize>,
}

impl Batches {
    /// Number of batches (eval only; training is endless).
    pub fn steps(&self) -> Option<usize> {
        self.steps
    }
}

impl Iterator for Batches {
    type Item = Result<Batch, PipelineError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}

const MIX_STREAM: u64 = 0x6d69_7874;

/// Starts the training pipeline at `start` (the beginning when `None`).
pub fn train(cfg: &TrainConfig, start: Option<&Position>) -> Result<Batches, PipelineError> {
    let n = cfg.sources.len();
    let bad = |m: String| Err(PipelineError::Batch(m));
    if n == 0 || cfg.batch_size == 0 || cfg.threads == 0 {
        return bad("need at least one source, batch_size > 0 and threads > 0".into());
    }
    if cfg
        .sources
        .iter()
        .any(|s| s.weight.is_nan() || s.weight <= 0.0)
    {
        return bad("mixture weights must be positive".into());
    }
    let start = start.cloned().unwrap_or(Position {
        examples: 0,
        sources: vec![SourcePosition::default(); n],
    });
    if start.sources.len() != n {
        return bad(format!(
            "position has {} sources, config has {n}",
            start.sources.len()
        ));
    }
    let mut sources = Vec::new();
    for (i, s) in cfg.sources.iter().enumerate() {
        let ranges = s
            .dataset
            .host_ranges(&s.split, cfg.host_index, cfg.host_count)?;
        let reads = s.dataset.reads(&ranges);
        let seed = cfg.seed ^ (i as u64).wrapping_mul(0x9e37_79b9);
        sources.push(ShuffledSource::new(
            s.dataset.clone(),
            reads,
            s.shuffle_buffer,
            cfg.shuffle_files,
            seed,
            cfg.corruption,
            start.sources[i],
        )?);
    }
    let total: f64 = cfg.sources.iter().map(|s| s.weight).sum();
    let cum: Vec<f64> = cfg
        .sources
        .iter()
        .scan(0.0, |acc, s| {
            *acc += s.weight / total;
            Some(*acc)
        })
        .collect();
    let seed = cfg.seed;
    let (work_tx, work_rx) = bounded::<Work>(cfg.threads * 8);
    thread::spawn(move || {
        let mut index = start.examples;
        loop {
            let u = f64::from(Rng::new(seed ^ MIX_STREAM, index).uniform());
            let s = cum.iter().position(|&c| u < c).unwrap_or(n - 1);
            match sources[s].next_record() {
                Ok(rec) => {
                    index += 1;
                    let pos = Position {
                        examples: index,
                        sources: sources.iter().map(|x| x.position()).collect(),
                    };
                    let w = Work {
                        index: index - 1,
                        source: s,
                        rec,
                        pos: Some(pos),
                    };
                    if work_tx.send(w).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    // Hand the error to the batcher in order through a poisoned work item.
                    let _ = work_tx.send(Work {
                        index,
                        source: usize::MAX,
                        rec: Record {
                            path: Arc::new(e.to_string().into()),
                            offset: 0,
                            data: Vec::new(),
                        },
                        pos: None,
                    });
                    return;
                }
            }
        }
    });
    let pps: Vec<(Arc<TfdsDataset>, Arc<Pipeline>)> = cfg
        .sources
        .iter()
        .map(|s| (s.dataset.clone(), s.pp.clone()))
        .collect();
    let done_rx = spawn_workers(work_rx, pps, seed, cfg.threads);
    Ok(spawn_batcher(
        done_rx,
        cfg.batch_size,
        cfg.prefetch,
        start.examples,
        None,
    ))
}

/// Eval input settings.
pub struct EvalConfig {
    /// The dataset.
    pub dataset: Arc<TfdsDataset>,
    /// Split string.
    pub split: String,
    /// Preprocessing (random ops still get per-example seeds).
    pub pp: Arc<Pipeline>,
    /// Examples per batch on this host.
    pub batch_size: usize,
    /// Preprocessing threads.
    pub threads: usize,
    /// This host's index.
    pub host_index: usize,
    /// Number of hosts.
    pub host_count: usize,
}

/// The eval pipeline: this host's share in order, each example with `_mask` 1, padded with
/// zero examples (`_mask` 0) so every host yields `ceil(max share / batch_size)` batches.
pub fn eval(cfg: &EvalConfig) -> Result<Batches, PipelineError> {
    if cfg.batch_size == 0 || cfg.threads == 0 {
        return Err(PipelineError::Batch(
            "need batch_size > 0 and threads > 0".into(),
        ));
    }
    let ds = &cfg.dataset;
    let ranges = ds.ranges(&cfg.split)?;
    let max_share = (0..cfg.host_count)
        .map(|h| {
            even_split(&ranges, h, cfg.host_count, false)
                .iter()
                .map(|r| r.len())
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0);
    let steps = max_share.div_ceil(cfg.batch_size as u64) as usize;
    let reads = ds.reads(&ds.host_ranges(&cfg.split, cfg.host_index, cfg.host_count)?);
    let stream = ds.stream(&reads, Corruption::Error);
    let (work_tx, work_rx) = bounded::<Work>(cfg.threads * 8);
    thread::spawn(move || {
        for (index, rec) in stream.enumerate() {
            let w = match rec {
                Ok(rec) => Work {
                    index: index as u64,
                    source: 0,
                    rec,
                    pos: None,
                },
                Err(e) => Work {
                    index: index as u64,
                    source: usize::MAX,
                    rec: Record {
                        path: Arc::new(e.to_string().into()),
                        offset: 0,
                        data: Vec::new(),
                    },
                    pos: None,
                },
            };
            let stop = w.source == usize::MAX;
            if work_tx.send(w).is_err() || stop {
                return;
            }
        }
    });
    let done_rx = spawn_workers(work_rx, vec![(ds.clone(), cfg.pp.clone())], 0, cfg.threads);
    let mut b = spawn_batcher(done_rx, cfg.batch_size, 1, 0, Some(steps));
    b.steps = Some(steps);
    Ok(b)
}

fn spawn_workers(
    work_rx: Receiver<Work>,
    pps: Vec<(Arc<TfdsDataset>, Arc<Pipeline>)>,
    seed: u64,
    threads: usize,
) -> Receiver<Done> {
    let (done_tx, done_rx) = bounded::<Done>(threads * 8);
    let pps = Arc::new(pps);
    for _ in 0..threads {
        let (rx, tx, pps) = (work_rx.clone(), done_tx.clone(), pps.clone());
        thread::spawn(move || {
            for w in rx {
                let res = process(&w, &pps, seed);
                if tx.send((w.index, res, w.pos)).is_err() {
                    return;
                }
            }
        });
    }
    done_rx
}

fn process(
    w: &Work,
    pps: &[(Arc<TfdsDataset>, Arc<Pipeline>)],
    seed: u64,
) -> Result<Example, PipelineError> {
    let Some((ds, pp)) = pps.get(w.source) else {
        // A reader error travels as the record path of a poisoned item.
        return Err(PipelineError::Batch(w.rec.path.display().to_string()));
    };
    let mut ex = ds.example(&w.rec)?;
    pp.apply(&mut ex, &mut Rng::new(seed, w.index))
        .map_err(|source| PipelineError::Pp {
            path: w.rec.path.display().to_string(),
            offset: w.rec.offset,
            source,
        })?;
    Ok(ex)
}

fn spawn_batcher(
    done_rx: Receiver<Done>,
    batch_size: usize,
    prefetch: usize,
    first: u64,
    pad_to: Option<usize>,
) -> Batches {
    let (tx, rx) = bounded(prefetch.max(1));
    thread::spawn(move || batcher(done_rx, tx, batch_size, first, pad_to));
    Batches { rx, steps: None }
}

fn batcher(
    done_rx: Receiver<Done>,
    tx: Sender<Result<Batch, PipelineError>>,
    batch_size: usize,
    mut next: u64,
    pad_to: Option<usize>,
) {
    let mut pending: BTreeMap<u64, (Result<Example, PipelineError>, Option<Position>)> =
        BTreeMap::new();
    // Each example is stacked as soon as it is next in order, so its buffers are freed while
    // the workers can reuse them.
    let mut stack = Stacker::new(batch_size);
    let mut sent = 0usize;
    let mut template: Option<Example> = None;
    let push = |stack: &mut Stacker, ex: &Example| {
        stack.push(ex).map_err(|e| {
            let _ = tx.send(Err(PipelineError::Batch(e)));
        })
    };
    let emit = |stack: &mut Stacker, pos: Option<Position>| {
        let data = std::mem::replace(stack, Stacker::new(batch_size)).finish();
        tx.send(Ok(Batch {
            data,
            position: pos,
        }))
        .is_ok()
    };
    loop {
        let item = match pending.remove(&next) {
            Some(x) => x,
            None => match done_rx.recv() {
                Ok((i, r, p)) => {
                    pending.insert(i, (r, p));
                    continue;
                }
                Err(_) => break,
            },
        };
        next += 1;
        let (mut ex, pos) = match item {
            (Ok(ex), pos) => (ex, pos),
            (Err(e), _) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        if pad_to.is_some() {
            ex.insert("_mask".into(), Value::U8(Array::scalar(1)));
            if template.is_none() {
                let mut t: Example = ex
                    .iter()
                    .map(|(k, v)| (k.clone(), v.zeros_like()))
                    .collect();
                t.insert("_mask".into(), Value::U8(Array::scalar(0)));
                template = Some(t);
            }
        }
        if push(&mut stack, &ex).is_err() {
            return;
        }
        recycle(ex);
        if stack.len() == batch_size {
            sent += 1;
            if !emit(&mut stack, pos) {
                return;
            }
        }
    }
    let Some(steps) = pad_to else { return };
    let Some(t) = template else {
        if steps > 0 {
            let _ = tx.send(Err(PipelineError::Batch(
                "this host's share of the eval split is empty, so there is nothing to pad from"
                    .into(),
            )));
        }
        return;
    };
    while sent < steps {
        while stack.len() < batch_size {
            if push(&mut stack, &t).is_err() {
                return;
            }
        }
        sent += 1;
        if !emit(&mut stack, None) {
            return;
        }
    }
}

//! A quick look at a dataset split: example count, features and a content digest.

use sha2::{Digest, Sha256};

use super::error::{DataError, Result};
use super::info::FeatureKind;
use super::tfds::TfdsDataset;
use super::tfrecord::Corruption;
use super::value::{Example, Value};
use crate::pp::decode::{decode_image, Dct};

/// What `bv-train data inspect` reports for one split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitSummary {
    /// The split string.
    pub split: String,
    /// Examples read.
    pub num_examples: u64,
    /// SHA-256 over the sorted per-example digests, each over the example's keys, dtypes,
    /// shapes and values with images decoded to pixels: equal for datasets holding the same
    /// examples, whatever their record order, shard layout or PNG/JPEG encoder settings.
    pub content_sha256: String,
}

fn example_digest(ds: &TfdsDataset, ex: &Example) -> Result<[u8; 32]> {
    let mut h = Sha256::new();
    for (k, v) in ex {
        let image = ds.features.iter().find_map(|f| match &f.kind {
            FeatureKind::Image { shape, .. } if f.key == *k => Some(shape.clone()),
            _ => None,
        });
        let decoded;
        let v = match (image, v) {
            (Some(shape), Value::Bytes(b)) if b.data.len() == 1 => {
                let c = if shape.last() == Some(&1) { 1 } else { 3 };
                decoded = Value::U8(decode_image(&b.data[0], c, Dct::Fast).map_err(|msg| {
                    DataError::Feature {
                        key: k.clone(),
                        msg,
                    }
                })?);
                &decoded
            }
            _ => v,
        };
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.dtype().as_bytes());
        for d in v.shape() {
            h.update((*d as u64).to_le_bytes());
        }
        match v {
            Value::U8(a) => h.update(&a.data),
            Value::I64(a) => a.data.iter().for_each(|x| h.update(x.to_le_bytes())),
            Value::F32(a) => a.data.iter().for_each(|x| h.update(x.to_le_bytes())),
            Value::Bytes(a) => a.data.iter().for_each(|x| {
                h.update((x.len() as u64).to_le_bytes());
                h.update(x);
            }),
        }
    }
    Ok(h.finalize().into())
}

/// Reads every example of `split` and summarizes it.
pub fn summarize(ds: &TfdsDataset, split: &str) -> Result<SplitSummary> {
    let reads = ds.reads(&ds.ranges(split)?);
    let mut digests = Vec::new();
    for rec in ds.stream(&reads, Corruption::Error) {
        digests.push(example_digest(ds, &ds.example(&rec?)?)?);
    }
    digests.sort_unstable();
    let mut h = Sha256::new();
    digests.iter().for_each(|d| h.update(d));
    let content_sha256 = h
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    Ok(SplitSummary {
        split: split.to_string(),
        num_examples: digests.len() as u64,
        content_sha256,
    })
}

//! `proj.image_text.retrieval`: image→text and text→image recall@1/5/10 over a dataset whose
//! examples hold an image and one or more captions (`txt_name`, e.g. COCO's
//! `captions/text`). Similarities are dot products of the normalized embeddings; on equal
//! similarities the lower index ranks first (numpy's `argsort` on the small arrays of
//! big_vision's tests). Reports `img2txt_recall@{1,5,10}` and `txt2img_recall@{1,5,10}`.

use bv_core::sharding::Mesh;
use serde_json::Value as Json;

use super::discriminative_classifier::image_pp;
use super::{batches_of, embed_all, embedder, similarities, towers, EmbedFn, Tower};
use crate::config::{Data, Eval};
use crate::data::{Array, Corruption, DataError, EvalConfig, Example, TfdsDataset, Value};
use crate::error::TrainError;
use crate::evaluators::{Context, DeviceParams, Evaluator};
use crate::pp::{Pipeline, Rng, OPS};

/// The `k` of `Recall@k`.
pub const RECALL_THRESHOLDS: [usize; 3] = [1, 5, 10];

/// The retrieval evaluator.
pub struct Retrieval {
    /// `evals.<name>`.
    key: String,
    images: EvalConfig,
    texts: Vec<Example>,
    image: EmbedFn,
    text: EmbedFn,
    mesh: Mesh,
    batch_size: usize,
}

/// The captions of every example of `split`, in order: `(example index, caption index,
/// text)`, from feature `key` (`evals.<name>.txt_name`).
fn captions(
    ds: &TfdsDataset,
    split: &str,
    key: &str,
    name: &str,
) -> Result<Vec<(i64, i64, Vec<u8>)>, TrainError> {
    let at = |e: DataError| TrainError::at(format!("evals.{name}"), e);
    let bad = |problem| TrainError::setting(format!("evals.{name}.txt_name"), problem);
    let reads = ds.reads(&ds.ranges(split).map_err(at)?);
    let mut out = Vec::new();
    for (i, rec) in ds.stream(&reads, Corruption::Error).enumerate() {
        let ex = rec.and_then(|rec| ds.example(&rec)).map_err(at)?;
        let texts = match ex.get(key) {
            Some(Value::Bytes(a)) => a.data.clone(),
            Some(other) => {
                return Err(bad(format!("{key:?} holds {}, not strings", other.dtype())))
            }
            None => {
                let keys: Vec<&String> = ex.keys().collect();
                return Err(bad(format!(
                    "{key:?} is not a feature; the examples have {keys:?}"
                )));
            }
        };
        out.extend(
            texts
                .into_iter()
                .enumerate()
                .map(|(c, t)| (i as i64, c as i64, t)),
        );
    }
    Ok(out)
}

/// Builds `evals.<name>` of type `proj.image_text.retrieval`.
pub fn build(name: &str, cfg: &Eval, ctx: &Context) -> Result<Box<dyn Evaluator>, TrainError> {
    let towers = towers(name, "proj.image_text.retrieval", ctx)?;
    let key = |k: &str| format!("evals.{name}.{k}");
    let need = |k: &str, v: &Option<String>| {
        v.clone()
            .ok_or_else(|| TrainError::setting(key(k), "retrieval evaluators need it"))
    };
    let data = Data {
        name: need("dataset", &cfg.dataset)?,
        split: cfg.split.clone().unwrap_or_else(|| "test".into()),
        data_dir: cfg.data_dir.clone(),
    };
    let txt_name = match &cfg.txt_name {
        Some(Json::String(s)) => s.clone(),
        Some(Json::Array(parts)) if parts.iter().all(Json::is_string) => parts
            .iter()
            .filter_map(Json::as_str)
            .collect::<Vec<_>>()
            .join("/"),
        Some(other) => {
            return Err(TrainError::setting(
                key("txt_name"),
                format!("a feature name or a path of names, got {other}"),
            ))
        }
        None => {
            return Err(TrainError::setting(
                key("txt_name"),
                "retrieval evaluators need it",
            ))
        }
    };
    let pp_img = need("pp_img", &cfg.pp_img)?;
    let images = ctx.pipeline(
        name,
        cfg,
        Some(&data),
        Some(&image_pp(&pp_img, "\"image\"")),
    )?;
    let pp_txt = need("pp_txt", &cfg.pp_txt)?;
    let pp = Pipeline::build(
        &format!("{pp_txt}|keep(\"id\", \"caption_i\", \"labels\")"),
        OPS,
    )
    .map_err(|e| TrainError::at(key("pp_txt"), e))?;
    let mut texts = Vec::new();
    for (id, c, text) in captions(&images.dataset, &data.split, &txt_name, name)? {
        let mut ex = Example::new();
        ex.insert("texts".into(), Value::Bytes(Array::scalar(text)));
        ex.insert("id".into(), Value::I64(Array::scalar(id)));
        ex.insert("caption_i".into(), Value::I64(Array::scalar(c)));
        let mut rng = Rng::new(0, texts.len() as u64);
        pp.apply(&mut ex, &mut rng)
            .map_err(|e| TrainError::at(key("pp_txt"), e))?;
        texts.push(ex);
    }
    if ctx.process.1 > 1 {
        return Err(TrainError::SingleProcessOnly {
            key: format!("evals.{name}"),
            kind: "retrieval",
        });
    }
    Ok(Box::new(Retrieval {
        key: format!("evals.{name}"),
        images,
        texts,
        image: embedder(&towers, Tower::Image, &ctx.mesh, name),
        text: embedder(&towers, Tower::Text, &ctx.mesh, name),
        mesh: ctx.mesh.clone(),
        batch_size: ctx.batch_size(cfg),
    }))
}

/// The rank order of `scores` (best first; equal scores by index).
fn order(scores: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx
}

/// `image_to_text_retrieval_eval`: `sims[i][t]`, `text_image[t]` the image of text `t`;
/// recall@k is the fraction of images with one of their texts among their `k` best.
pub fn image_to_text(sims: &[Vec<f64>], text_image: &[usize]) -> Vec<(usize, f64)> {
    let ranked: Vec<Vec<usize>> = sims.iter().map(|row| order(row)).collect();
    recalls(&ranked, |i, t| text_image[t] == i)
}

/// `text_to_image_retrieval_eval`: recall@k is the fraction of texts whose image is among
/// their `k` best images.
pub fn text_to_image(sims: &[Vec<f64>], text_image: &[usize]) -> Vec<(usize, f64)> {
    let ranked: Vec<Vec<usize>> = (0..text_image.len())
        .map(|t| order(&sims.iter().map(|row| row[t]).collect::<Vec<_>>()))
        .collect();
    recalls(&ranked, |t, i| i == text_image[t])
}

/// Recall@k for each of `RECALL_THRESHOLDS`: the fraction of queries `q` with a candidate `c`
/// among the first `k` of `ranked[q]` such that `hit(q, c)`.
fn recalls(ranked: &[Vec<usize>], hit: impl Fn(usize, usize) -> bool) -> Vec<(usize, f64)> {
    RECALL_THRESHOLDS
        .iter()
        .map(|&k| {
            let wins = ranked
                .iter()
                .enumerate()
                .filter(|(q, r)| r.iter().take(k).any(|&c| hit(*q, c)))
                .count();
            (k, wins as f64 / ranked.len().max(1) as f64)
        })
        .collect()
}

impl Evaluator for Retrieval {
    fn run(&mut self, params: &DeviceParams, _step: u64) -> Result<Vec<(String, f64)>, TrainError> {
        let batches = crate::evaluators::batches(&self.images)?;
        let (zimg, _) = embed_all(&self.image, params, &self.mesh, batches, "image", &[])?;
        let text_batches = batches_of(self.texts.clone(), self.batch_size)?;
        let (ztxt, kept) = embed_all(
            &self.text,
            params,
            &self.mesh,
            text_batches.into_iter().map(Ok),
            "labels",
            &["id"],
        )?;
        let text_image: Vec<usize> = kept[0].iter().map(|v| v[0] as usize).collect();
        if let Some(&bad) = text_image.iter().find(|&&i| i >= zimg.len()) {
            return Err(TrainError::EvalData {
                key: self.key.clone(),
                problem: format!("caption of example {bad} but only {} images", zimg.len()),
            });
        }
        let sims = similarities(&zimg, &ztxt);
        let mut out = Vec::new();
        for (dir, recalls) in [
            ("img2txt", image_to_text(&sims, &text_image)),
            ("txt2img", text_to_image(&sims, &text_image)),
        ] {
            out.extend(
                recalls
                    .into_iter()
                    .map(|(k, v)| (format!("{dir}_recall@{k}"), v)),
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A float64 reference that ranks by counting (no sort): the rank of `j` in `row` is
    /// the number of entries above it plus the equal ones before it.
    fn rank(row: &[f64], j: usize) -> usize {
        row.iter()
            .enumerate()
            .filter(|&(i, &s)| s > row[j] || (s == row[j] && i < j))
            .count()
    }

    /// Embeddings with exact ties (repeated vectors) and 1 to 3 captions per image.
    fn case(seed: u64) -> (Vec<Vec<f32>>, Vec<Vec<f32>>, Vec<usize>) {
        let mut rng = crate::pp::Rng::new(seed, 0);
        let vec =
            |rng: &mut crate::pp::Rng| (0..4).map(|_| rng.range(-1.0, 1.0)).collect::<Vec<f32>>();
        let mut images: Vec<Vec<f32>> = (0..12).map(|_| vec(&mut rng)).collect();
        images[5] = images[2].clone();
        images[9] = images[2].clone();
        let (mut texts, mut owner) = (Vec::new(), Vec::new());
        for i in 0..images.len() {
            for _ in 0..1 + rng.below(3) as usize {
                texts.push(vec(&mut rng));
                owner.push(i);
            }
        }
        let t = texts.len();
        texts[t - 1] = texts[0].clone();
        texts[3] = texts[1].clone();
        (images, texts, owner)
    }

    #[test]
    fn recalls_against_a_counting_reference_with_ties_and_several_captions() {
        for seed in 0..20 {
            let (images, texts, owner) = case(seed);
            let sims = similarities(&images, &texts);
            let cols: Vec<Vec<f64>> = (0..texts.len())
                .map(|t| sims.iter().map(|r| r[t]).collect())
                .collect();
            for (k, got) in image_to_text(&sims, &owner) {
                let wins = (0..images.len())
                    .filter(|&i| (0..texts.len()).any(|t| owner[t] == i && rank(&sims[i], t) < k))
                    .count();
                assert_eq!(
                    got,
                    wins as f64 / images.len() as f64,
                    "seed {seed} img2txt@{k}"
                );
            }
            for (k, got) in text_to_image(&sims, &owner) {
                let wins = (0..texts.len())
                    .filter(|&t| rank(&cols[t], owner[t]) < k)
                    .count();
                assert_eq!(
                    got,
                    wins as f64 / texts.len() as f64,
                    "seed {seed} txt2img@{k}"
                );
            }
        }
    }
}

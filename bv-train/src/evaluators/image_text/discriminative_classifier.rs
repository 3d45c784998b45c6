//! `proj.image_text.discriminative_classifier`: zero-shot classification. Every class name
//! (canonicalized, first alias by default) is put into every prompt template, tokenized by
//! `pp_txt` and embedded; a class's embedding is the normalized mean of its texts'. An image
//! is correct when its most similar class (the first on ties) is one of its labels.
//! Reports `<dataset>_accuracy` for each of `dataset_names`.

use std::collections::BTreeMap;

use bv_core::sharding::Mesh;
use serde_json::Value as Json;

use super::{batches_of, embed_all, embedder, prompts, similarities, towers, EmbedFn, Tower};
use crate::config::{Data, Eval};
use crate::data::{Array, EvalConfig, Example, Value};
use crate::error::TrainError;
use crate::evaluators::{Context, DeviceParams, Evaluator};
use crate::pp::{Pipeline, Rng, OPS};

/// big_vision's default `dataset_names`.
pub const DATASET_NAMES: [&str; 3] = ["imagenet2012", "cifar100", "oxford_iiit_pet"];
/// big_vision's default `pp_txt`.
pub const PP_TXT: &str =
    "tokenize(max_len=16, eos='sticky', pad_value=1, inkey='texts', outkey='labels')";

/// The keys a `dataset_overrides` entry may set.
const OVERRIDES: [&str; 8] = [
    "dataset_name",
    "data_dir",
    "class_names",
    "class_names_dataset_name",
    "pp_img",
    "pp_txt",
    "split",
    "prompt_templates",
];

/// One dataset's texts (tokenized, with their class) and images.
struct Dataset {
    name: String,
    texts: Vec<Example>,
    num_classes: usize,
    images: EvalConfig,
}

/// The zero-shot evaluator.
pub struct DiscriminativeClassifier {
    /// `evals.<name>`.
    key: String,
    datasets: Vec<Dataset>,
    image: EmbedFn,
    text: EmbedFn,
    mesh: Mesh,
    batch_size: usize,
}

/// A string setting: the dataset's override, else the evaluator's, else `default`.
fn setting(
    over: &BTreeMap<String, Json>,
    key: &str,
    top: Option<&str>,
    default: &str,
) -> Result<String, String> {
    match over.get(key) {
        Some(Json::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("{key} must be a string, got {other}")),
        None => Ok(top.unwrap_or(default).to_string()),
    }
}

/// `pp_img` as big_vision's evaluator runs it on TFDS's decoded images: bv reads encoded
/// images, so `decode` is put first unless the string starts with it.
pub fn image_pp(pp_img: &str, keep: &str) -> String {
    let decode = if pp_img.trim_start().starts_with("decode") {
        ""
    } else {
        "decode|"
    };
    format!("{decode}{pp_img}|keep({keep})")
}

/// Builds `evals.<name>` of type `proj.image_text.discriminative_classifier`.
pub fn build(name: &str, cfg: &Eval, ctx: &Context) -> Result<Box<dyn Evaluator>, TrainError> {
    let kind = "proj.image_text.discriminative_classifier";
    let towers = towers(name, kind, ctx)?;
    if ctx.process.1 > 1 {
        return Err(TrainError::SingleProcessOnly {
            key: format!("evals.{name}"),
            kind,
        });
    }
    let key = |k: &str| format!("evals.{name}.{k}");
    let names: Vec<String> = cfg
        .dataset_names
        .clone()
        .unwrap_or_else(|| DATASET_NAMES.iter().map(|s| s.to_string()).collect());
    let mut overrides: BTreeMap<String, BTreeMap<String, Json>> = match &cfg.dataset_overrides {
        Some(o) => o.clone(),
        None => BTreeMap::from([(
            "imagenet2012".to_string(),
            BTreeMap::from([
                ("class_names".to_string(), Json::from("clip")),
                ("split".to_string(), Json::from("validation")),
            ]),
        )]),
    };
    let canonicalize = cfg.canonicalize.unwrap_or(true);
    let first_only = cfg.first_class_name_only.unwrap_or(true);
    let mut datasets = Vec::new();
    for ds_name in &names {
        let over = overrides.remove(ds_name).unwrap_or_default();
        if let Some(k) = over.keys().find(|k| !OVERRIDES.contains(&k.as_str())) {
            return Err(TrainError::unknown(
                key(&format!("dataset_overrides.{ds_name}")),
                "override",
                k,
                &OVERRIDES,
            ));
        }
        let at = |k: &str| key(&format!("dataset_overrides.{ds_name}.{k}"));
        let s = |k: &str, top: Option<&str>, default: &str| {
            setting(&over, k, top, default).map_err(|e| TrainError::setting(at(k), e))
        };
        let tfds = s("dataset_name", None, ds_name)?;
        let data = Data {
            name: tfds.clone(),
            split: s("split", cfg.split.as_deref(), "test")?,
            data_dir: match over.get("data_dir") {
                Some(Json::String(d)) => Some(d.clone()),
                _ => cfg.data_dir.clone(),
            },
        };
        let pp_img = s(
            "pp_img",
            cfg.pp_img.as_deref(),
            "resize(224)|value_range(-1,1)",
        )?;
        let images = ctx.pipeline(
            name,
            cfg,
            Some(&data),
            Some(&image_pp(&pp_img, "\"label\", \"image\"")),
        )?;
        let names_ds = s("class_names_dataset_name", None, &tfds)?;
        let class_source = over.get("class_names").or(cfg.class_names.as_ref());
        let mut classes: Vec<String> = match class_source {
            None => prompts::class_names(&names_ds, &images.dataset.dir, "dataset_info:label"),
            Some(Json::String(src)) => prompts::class_names(&names_ds, &images.dataset.dir, src),
            Some(Json::Array(list)) => list
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("class name {v} is not a string"))
                })
                .collect(),
            Some(other) => Err(format!(
                "expected a source name or a list of names, got {other}"
            )),
        }
        .map_err(|e| TrainError::setting(key("class_names"), e))?;
        if canonicalize {
            classes = classes
                .iter()
                .map(|c| prompts::canonicalize(c, Some(",")))
                .collect();
        }
        if first_only {
            classes = classes
                .iter()
                .map(|c| c.split(',').next().unwrap_or("").to_string())
                .collect();
        }
        let template_set = match over
            .get("prompt_templates")
            .or(cfg.prompt_templates.as_ref())
        {
            None => prompts::templates("clip_paper"),
            Some(Json::String(set)) => prompts::templates(set),
            Some(other) => Err(format!("expected a template set name, got {other}")),
        }
        .map_err(|e| TrainError::setting(key("prompt_templates"), e))?;
        let templates: Vec<String> = template_set
            .iter()
            .map(|t| {
                if canonicalize {
                    prompts::canonicalize(t, Some("{}"))
                } else {
                    t.clone()
                }
            })
            .collect();
        let pp_txt = s("pp_txt", cfg.pp_txt.as_deref(), PP_TXT)?;
        let pp = Pipeline::build(&format!("{pp_txt}|keep(\"label\", \"labels\")"), OPS)
            .map_err(|e| TrainError::at(key("pp_txt"), e))?;
        let mut texts = Vec::new();
        for (idx, class) in classes.iter().enumerate() {
            for alias in class.split(',') {
                for t in &templates {
                    let Some((before, after)) =
                        t.split_once("{}").filter(|(_, a)| !a.contains("{}"))
                    else {
                        return Err(TrainError::setting(
                            key("prompt_templates"),
                            format!("template {t:?} must hold exactly one {{}}"),
                        ));
                    };
                    let mut ex = Example::new();
                    let text = format!("{before}{alias}{after}").into_bytes();
                    ex.insert("texts".into(), Value::Bytes(Array::scalar(text)));
                    ex.insert("label".into(), Value::I64(Array::scalar(idx as i64)));
                    let mut rng = Rng::new(0, texts.len() as u64);
                    pp.apply(&mut ex, &mut rng)
                        .map_err(|e| TrainError::at(key("pp_txt"), e))?;
                    texts.push(ex);
                }
            }
        }
        datasets.push(Dataset {
            name: ds_name.clone(),
            texts,
            num_classes: classes.len(),
            images,
        });
    }
    if let Some(extra) = overrides.keys().next() {
        let default = if cfg.dataset_overrides.is_none() {
            " (big_vision's default overrides; set dataset_overrides: {} when not evaluating it)"
        } else {
            ""
        };
        return Err(TrainError::setting(
            key("dataset_overrides"),
            format!("{extra:?} is not one of dataset_names {names:?}{default}"),
        ));
    }
    Ok(Box::new(DiscriminativeClassifier {
        key: format!("evals.{name}"),
        datasets,
        image: embedder(&towers, Tower::Image, &ctx.mesh, name),
        text: embedder(&towers, Tower::Text, &ctx.mesh, name),
        mesh: ctx.mesh.clone(),
        batch_size: ctx.batch_size(cfg),
    }))
}

/// Per-class mean embeddings, each divided by `1e-8 + |mean|` (`_average_embeddings`); an
/// error names a class without texts.
pub fn class_embeddings(
    texts: &[Vec<f32>],
    labels: &[i64],
    num_classes: usize,
) -> Result<Vec<Vec<f32>>, String> {
    let dim = texts.first().map_or(0, Vec::len);
    let mut sums = vec![vec![0f64; dim]; num_classes];
    let mut counts = vec![0usize; num_classes];
    for (t, &l) in texts.iter().zip(labels) {
        let c = usize::try_from(l)
            .ok()
            .filter(|&c| c < num_classes)
            .ok_or(format!("text label {l} outside 0..{num_classes}"))?;
        counts[c] += 1;
        for (s, v) in sums[c].iter_mut().zip(t) {
            *s += f64::from(*v);
        }
    }
    if let Some(c) = counts.iter().position(|&n| n == 0) {
        return Err(format!("class {c} has no text embeddings"));
    }
    Ok(sums
        .into_iter()
        .zip(counts)
        .map(|(s, n)| {
            let mean: Vec<f64> = s.iter().map(|v| v / n as f64).collect();
            let norm = mean.iter().map(|v| v * v).sum::<f64>().sqrt();
            mean.iter().map(|v| (v / (1e-8 + norm)) as f32).collect()
        })
        .collect())
}

/// Zero-shot hits: image `i` is correct when the first class of highest similarity is
/// among `labels[i]` (negative labels are padding). Returns `(correct, count)`.
pub fn count_correct(
    images: &[Vec<f32>],
    labels: &[Vec<i64>],
    classes: &[Vec<f32>],
) -> (usize, usize) {
    let sims = similarities(images, classes);
    let mut correct = 0;
    for (row, l) in sims.iter().zip(labels) {
        let mut best = 0;
        for (j, &s) in row.iter().enumerate() {
            if s > row[best] {
                best = j;
            }
        }
        correct += usize::from(l.contains(&(best as i64)));
    }
    (correct, images.len())
}

impl Evaluator for DiscriminativeClassifier {
    fn run(&mut self, params: &DeviceParams, _step: u64) -> Result<Vec<(String, f64)>, TrainError> {
        let mut out = Vec::new();
        for ds in &self.datasets {
            let batches = batches_of(ds.texts.clone(), self.batch_size)?;
            let (ztxt, kept) = embed_all(
                &self.text,
                params,
                &self.mesh,
                batches.into_iter().map(Ok),
                "labels",
                &["label"],
            )?;
            let text_labels: Vec<i64> = kept[0].iter().map(|l| l[0]).collect();
            let classes = class_embeddings(&ztxt, &text_labels, ds.num_classes).map_err(|e| {
                TrainError::EvalData {
                    key: self.key.clone(),
                    problem: format!("{}: {e}", ds.name),
                }
            })?;
            let batches = crate::evaluators::batches(&ds.images)?;
            let (zimg, kept) = embed_all(
                &self.image,
                params,
                &self.mesh,
                batches,
                "image",
                &["label"],
            )?;
            let (correct, n) = count_correct(&zimg, &kept[0], &classes);
            out.push((
                format!("{}_accuracy", ds.name),
                correct as f64 / n.max(1) as f64,
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_means_and_accuracy_against_float64_with_ties() {
        let mut rng = crate::pp::Rng::new(7, 0);
        let mut v = |n: usize| (0..n).map(|_| rng.range(-1.0, 1.0)).collect::<Vec<f32>>();
        // Three texts per class for 5 classes; classes 1 and 3 get identical texts, so every
        // image ties between them and the first (1) must win.
        let mut texts: Vec<Vec<f32>> = (0..15).map(|_| v(6)).collect();
        let labels: Vec<i64> = (0..15).map(|i| i % 5).collect();
        for i in (0..15).filter(|i| i % 5 == 3) {
            texts[i] = texts[i - 2].clone();
        }
        let classes = class_embeddings(&texts, &labels, 5).unwrap();
        for (c, class) in classes.iter().enumerate() {
            let mut mean = [0f64; 6];
            for (t, _) in texts.iter().zip(&labels).filter(|(_, &l)| l == c as i64) {
                for (m, x) in mean.iter_mut().zip(t) {
                    *m += f64::from(*x) / 3.0;
                }
            }
            let norm = mean.iter().map(|x| x * x).sum::<f64>().sqrt();
            for (got, m) in class.iter().zip(mean) {
                assert!((f64::from(*got) - m / (norm + 1e-8)).abs() < 1e-6);
            }
        }
        assert_eq!(classes[1], classes[3]);
        let images: Vec<Vec<f32>> = (0..40).map(|_| v(6)).collect();
        // Labels: one class, or two with -1 padding (as multi-label datasets).
        let image_labels: Vec<Vec<i64>> = (0..40)
            .map(|i| {
                if i % 4 == 0 {
                    vec![(i % 5) as i64, 3]
                } else {
                    vec![(i % 5) as i64, -1]
                }
            })
            .collect();
        let (correct, n) = count_correct(&images, &image_labels, &classes);
        let want = images
            .iter()
            .zip(&image_labels)
            .filter(|(x, l)| {
                let s: Vec<f64> = classes
                    .iter()
                    .map(|c| {
                        c.iter()
                            .zip(x.iter())
                            .map(|(a, b)| f64::from(*a) * f64::from(*b))
                            .sum()
                    })
                    .collect();
                let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let best = s.iter().position(|&v| v == max).unwrap();
                assert_ne!(best, 3, "the tie goes to class 1");
                l.contains(&(best as i64))
            })
            .count();
        assert_eq!((correct, n), (want, 40));
        assert!(class_embeddings(&texts[..4], &labels[..4], 5)
            .unwrap_err()
            .contains("class 4"));
    }
}

//! `two_towers.load` and `text_transformer.load`: `config.model_init` for a two-tower
//! model, as one two-tower `.npz` (or a SigLIP / SigLIP 2 vanity name) or a map of parts
//! (`img`/`image`, `txt`/`text`, `t`/`temperature`, `b`/`bias`), each a path with an
//! optional `:subtree` suffix (`file.npz:img`), each tower merged with its own `dont_load`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bv_core::io::HostArray;
use serde_json::Value;

use super::two_towers::TwoTowers;
use crate::npz::{self, NpzError};
use crate::Params;

/// big_vision's `two_towers.VANITY_NAMES`: paper checkpoints by short name.
pub const VANITY_NAMES: [(&str, &str); 26] = [
    (
        "SigLIP B/16 224",
        "gs://big_vision/siglip/webli_en_b16_224_63724782.npz",
    ),
    (
        "SigLIP B/16 256",
        "gs://big_vision/siglip/webli_en_b16_256_60500360.npz",
    ),
    (
        "SigLIP B/16 384",
        "gs://big_vision/siglip/webli_en_b16_384_68578854.npz",
    ),
    (
        "SigLIP B/16 512",
        "gs://big_vision/siglip/webli_en_b16_512_68580893.npz",
    ),
    (
        "SigLIP L/16 256",
        "gs://big_vision/siglip/webli_en_l16_256_60552751.npz",
    ),
    (
        "SigLIP L/16 384",
        "gs://big_vision/siglip/webli_en_l16_384_63634585.npz",
    ),
    (
        "SigLIP So400m/14 224",
        "gs://big_vision/siglip/webli_en_so400m_224_57633886.npz",
    ),
    (
        "SigLIP So400m/14 384",
        "gs://big_vision/siglip/webli_en_so400m_384_58765454.npz",
    ),
    (
        "SigLIP B/16-i18n 256",
        "gs://big_vision/siglip/webli_i18n_b16_256_66117334.npz",
    ),
    (
        "SigLIP2 B/16 224",
        "gs://big_vision/siglip2/siglip2_b16_224.npz",
    ),
    (
        "SigLIP2 B/16 256",
        "gs://big_vision/siglip2/siglip2_b16_256.npz",
    ),
    (
        "SigLIP2 B/16 384",
        "gs://big_vision/siglip2/siglip2_b16_384.npz",
    ),
    (
        "SigLIP2 B/16 512",
        "gs://big_vision/siglip2/siglip2_b16_512.npz",
    ),
    (
        "SigLIP2 B/32 256",
        "gs://big_vision/siglip2/siglip2_b32_256.npz",
    ),
    (
        "SigLIP2 L/16 256",
        "gs://big_vision/siglip2/siglip2_l16_256.npz",
    ),
    (
        "SigLIP2 L/16 384",
        "gs://big_vision/siglip2/siglip2_l16_384.npz",
    ),
    (
        "SigLIP2 L/16 512",
        "gs://big_vision/siglip2/siglip2_l16_512.npz",
    ),
    (
        "SigLIP2 So400m/14 224",
        "gs://big_vision/siglip2/siglip2_so400m14_224.npz",
    ),
    (
        "SigLIP2 So400m/14 384",
        "gs://big_vision/siglip2/siglip2_so400m14_384.npz",
    ),
    (
        "SigLIP2 So400m/16 256",
        "gs://big_vision/siglip2/siglip2_so400m16_256.npz",
    ),
    (
        "SigLIP2 So400m/16 384",
        "gs://big_vision/siglip2/siglip2_so400m16_384.npz",
    ),
    (
        "SigLIP2 So400m/16 512",
        "gs://big_vision/siglip2/siglip2_so400m16_512.npz",
    ),
    (
        "SigLIP2 g-opt/16 256",
        "gs://big_vision/siglip2/siglip2_g-opt16_256.npz",
    ),
    (
        "SigLIP2 g-opt/16 384",
        "gs://big_vision/siglip2/siglip2_g-opt16_384.npz",
    ),
    (
        "SigLIP2 B/16 NaFlex",
        "gs://big_vision/siglip2/siglip2_b16_naflex.npz",
    ),
    (
        "SigLIP2 So400m/16 NaFlex",
        "gs://big_vision/siglip2/siglip2_so400m16_naflex.npz",
    ),
];

/// Where vanity-name checkpoints are looked for: `$BV_CHECKPOINT_DIR`, else
/// `~/.cache/bv/checkpoints`.
pub fn checkpoint_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BV_CHECKPOINT_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/bv/checkpoints")
}

/// A vanity name's local file (its `gs://` file name in `dir`); `Ok(None)` for a name that
/// is not a vanity name, an error saying where to download it when the file is missing.
pub fn resolve_vanity(name: &str, dir: &Path) -> Result<Option<PathBuf>, NpzError> {
    let Some((_, url)) = VANITY_NAMES.iter().find(|(n, _)| *n == name) else {
        return Ok(None);
    };
    let file = url.rsplit('/').next().unwrap_or(url);
    let path = dir.join(file);
    if path.is_file() {
        return Ok(Some(path));
    }
    let https = url.replacen("gs://", "https://storage.googleapis.com/", 1);
    Err(NpzError::ModelInit {
        reason: format!(
            "{name:?} is big_vision's {url}, not found at {}; download it \
             (`gsutil cp {url} {}/` or {https}) or set BV_CHECKPOINT_DIR to its folder",
            path.display(),
            dir.display()
        ),
    })
}

/// `path:sub/tree` split into the path and the subtree (`None` without a suffix), as
/// big_vision's `load_params` reads it (the subtree is word characters and `/`).
fn split_subtree(spec: &str) -> (&str, Option<&str>) {
    match spec.rsplit_once(':') {
        Some((path, key))
            if !path.is_empty()
                && !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '/') =>
        {
            (path, Some(key))
        }
        _ => (spec, None),
    }
}

/// The parameters of `spec` (`path` or `path:subtree`): a subtree's entries with its
/// prefix removed, or the one entry named exactly like it (a leaf such as `t`).
pub fn read_part(spec: &str) -> Result<(PathBuf, Params<HostArray>), NpzError> {
    let (path, key) = split_subtree(spec);
    let all = npz::read(path)?;
    let Some(key) = key else {
        return Ok((PathBuf::from(path), all));
    };
    let prefix = format!("{key}/");
    let part: Params<HostArray> = all
        .iter()
        .filter_map(|(k, v)| {
            let rest = if k == key {
                ""
            } else {
                k.strip_prefix(&prefix)?
            };
            Some((rest.to_string(), v.clone()))
        })
        .collect();
    if part.is_empty() {
        let mut tops: Vec<&str> = all
            .names()
            .map(|n| n.split('/').next().unwrap_or(n))
            .collect();
        tops.dedup();
        return Err(NpzError::ModelInit {
            reason: format!(
                "{path} has no `{key}` (its top-level entries: {}); a two-tower checkpoint \
                 has img/, txt/, t and b",
                tops.join(", ")
            ),
        });
    }
    Ok((PathBuf::from(path), part))
}

/// The parts `model_init` asks for, by canonical name (`img`, `txt`, `t`, `b`): one string
/// (a path or vanity name of a whole two-tower checkpoint) or a map whose keys are the
/// parts or their long names. Any other key is an error, as big_vision asserts.
pub fn parts(
    model_init: &Value,
    has_bias: bool,
    vanity_dir: &Path,
) -> Result<BTreeMap<&'static str, String>, NpzError> {
    const ALIASES: [(&str, &str); 8] = [
        ("img", "img"),
        ("image", "img"),
        ("txt", "txt"),
        ("text", "txt"),
        ("t", "t"),
        ("temperature", "t"),
        ("b", "b"),
        ("bias", "b"),
    ];
    let bad = |reason: String| NpzError::ModelInit { reason };
    match model_init {
        Value::String(s) => {
            let file = match resolve_vanity(s, vanity_dir)? {
                Some(p) => p.display().to_string(),
                None => s.clone(),
            };
            let keys: &[&'static str] = if has_bias {
                &["img", "txt", "t", "b"]
            } else {
                &["img", "txt", "t"]
            };
            Ok(keys.iter().map(|&k| (k, format!("{file}:{k}"))).collect())
        }
        Value::Object(m) => {
            let mut out = BTreeMap::new();
            for (k, v) in m {
                let Some(&(_, part)) = ALIASES.iter().find(|(a, _)| a == k) else {
                    return Err(bad(format!(
                        "unknown key {k:?} (there is something unused left in model_init; \
                         a typo?); it takes img/image, txt/text, t/temperature, b/bias"
                    )));
                };
                let Some(spec) = v.as_str() else {
                    return Err(bad(format!("{k}: expected a path, got {v}")));
                };
                if out.insert(part, spec.to_string()).is_some() {
                    return Err(bad(format!(
                        "{part} is given twice (as {k:?} and its alias)"
                    )));
                }
            }
            Ok(out)
        }
        other => Err(bad(format!(
            "expected a path, a vanity name or a map of img/txt/t/b paths, got {other}"
        ))),
    }
}

/// Natural-sort key of a name (digit runs compare as numbers), as Flax's `natural_sort`.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let digit = c.is_ascii_digit();
            match out.last_mut() {
                Some((d, run)) if *d == digit => run.push(c),
                _ => out.push((digit, c.to_string())),
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(&cb) {
        let o = match (x.0, y.0) {
            (true, true) => x.1.parse::<u128>().ok().cmp(&y.1.parse::<u128>().ok()),
            _ => x.1.cmp(&y.1),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    ca.len().cmp(&cb.len())
}

/// Flax's `convert_pre_linen` on flat names: at every level, children named `Name_N` are
/// renumbered per `Name` in natural order (a Linen checkpoint is unchanged).
pub fn convert_pre_linen(params: Params<HostArray>) -> Params<HostArray> {
    fn rename(names: &[Vec<String>], depth: usize, idx: &[usize], out: &mut [Vec<String>]) {
        let mut children: Vec<&str> = idx
            .iter()
            .filter_map(|&i| names[i].get(depth).map(String::as_str))
            .collect();
        children.sort_by(|a, b| natural_cmp(a, b));
        children.dedup();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        let mut map: HashMap<&str, String> = HashMap::new();
        for c in &children {
            let module = c
                .rsplit_once('_')
                .filter(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .map(|(m, _)| m);
            let new = match module {
                Some(m) => {
                    let n = counts.entry(m).or_insert(0);
                    *n += 1;
                    format!("{m}_{}", *n - 1)
                }
                None => c.to_string(),
            };
            map.insert(c, new);
        }
        for c in children {
            let group: Vec<usize> = idx
                .iter()
                .copied()
                .filter(|&i| names[i].get(depth).map(String::as_str) == Some(c))
                .collect();
            for &i in &group {
                out[i][depth] = map[c].clone();
            }
            rename(names, depth + 1, &group, out);
        }
    }
    let entries: Vec<(String, HostArray)> = params.into_iter().collect();
    let names: Vec<Vec<String>> = entries
        .iter()
        .map(|(k, _)| k.split('/').map(str::to_string).collect())
        .collect();
    let mut renamed = names.clone();
    let all: Vec<usize> = (0..names.len()).collect();
    rename(&names, 0, &all, &mut renamed);
    entries
        .into_iter()
        .zip(renamed)
        .map(|((_, v), n)| (n.join("/"), v))
        .collect()
}

/// `text_transformer.load`'s fixes: pre-Linen names converted, and a second position
/// embedding under `Encoder_0` (older checkpoints added it twice) added to `pos_embedding`.
pub fn fix_text_checkpoint(loaded: Params<HostArray>) -> Result<Params<HostArray>, String> {
    let params = convert_pre_linen(loaded);
    let Some(extra) = params.get("Encoder_0/pos_embedding").cloned() else {
        return Ok(params);
    };
    let pe = params
        .get("pos_embedding")
        .ok_or("`Encoder_0/pos_embedding` is there but `pos_embedding` is not")?;
    if pe.shape() != extra.shape() {
        return Err(format!(
            "`pos_embedding` {:?} and `Encoder_0/pos_embedding` {:?} differ in shape",
            pe.shape(),
            extra.shape()
        ));
    }
    let sum: Vec<f32> = pe
        .to_f64()
        .iter()
        .zip(extra.to_f64())
        .map(|(a, b)| (a + b) as f32)
        .collect();
    let sum = HostArray::from_slice(&sum, pe.shape()).map_err(|e| e.to_string())?;
    Ok(params
        .into_iter()
        .filter(|(k, _)| k != "Encoder_0/pos_embedding")
        .map(|(k, v)| {
            if k == "pos_embedding" {
                (k, sum.clone())
            } else {
                (k, v)
            }
        })
        .collect())
}

/// The entries of `params` under `prefix/`, with the prefix removed.
fn subtree(params: &Params<HostArray>, prefix: &str) -> Params<HostArray> {
    let p = format!("{prefix}/");
    params
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(&p)?.to_string(), v.clone())))
        .collect()
}

/// `two_towers.load(init, model_init, model_cfg, img_load_kw, txt_load_kw)`: the parts
/// `model_init` names ([`parts`]) loaded into `init` (the fresh parameters: `img/...`,
/// `txt/...`, `t`, `b`): the image tower through its model's fixes, resampling and
/// `img_dont_load`, the text tower through [`fix_text_checkpoint`] and `txt_dont_load`,
/// `t` and `b` as they are. Parts not named keep their init values.
pub fn load(
    model: &TwoTowers,
    init: &Params<HostArray>,
    model_init: &Value,
    img_dont_load: &[String],
    txt_dont_load: &[String],
) -> Result<Params<HostArray>, NpzError> {
    let parts = parts(model_init, model.bias_init.is_some(), &checkpoint_dir())?;
    let mut loaded: HashMap<&str, Params<HostArray>> = HashMap::new();
    for (&part, spec) in &parts {
        let (file, values) = read_part(spec)?;
        let convert = |reason| NpzError::Convert {
            file: file.clone(),
            reason,
        };
        let merged = match part {
            "img" => {
                let fixed = model.image.fix_checkpoint(values).map_err(convert)?;
                let init_img = subtree(init, "img");
                npz::merge(model.image.as_ref(), fixed, &init_img, img_dont_load, &file)?
            }
            "txt" => {
                let fixed = fix_text_checkpoint(values).map_err(convert)?;
                let none = |_: &str, _: &HostArray, _: &[usize]| None;
                npz::merge_with(&none, fixed, &subtree(init, "txt"), txt_dont_load, &file)?
            }
            leaf => {
                let want = init.get(leaf).ok_or_else(|| NpzError::ModelInit {
                    reason: format!("the model has no `{leaf}` (bias_init is not set)"),
                })?;
                let v = values.get("").or_else(|| values.get(leaf)).cloned();
                let v = v.ok_or_else(|| NpzError::ModelInit {
                    reason: format!("{}: `{spec}` is not one array", file.display()),
                })?;
                if v.shape() != want.shape() {
                    return Err(NpzError::Shape {
                        file,
                        name: leaf.to_string(),
                        expected: want.shape().to_vec(),
                        found: v.shape().to_vec(),
                    });
                }
                [(String::new(), v)].into_iter().collect()
            }
        };
        loaded.insert(part, merged);
    }
    Ok(init
        .iter()
        .map(|(name, v)| {
            let (part, rest) = name.split_once('/').unwrap_or((name, ""));
            let value = loaded.get(part).and_then(|p| p.get(rest)).unwrap_or(v);
            (name.to_string(), value.clone())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &Params<HostArray>) -> Vec<String> {
        p.names().map(str::to_string).collect()
    }

    fn scalar(v: f32) -> HostArray {
        HostArray::from_slice(&[v], &[1]).unwrap()
    }

    /// Flax's docstring example: `{Conv_0, Dense_1}` becomes `{Conv_0, Dense_0}`; numbering
    /// is natural (`block_10` after `block_2`) and per class; Linen names are unchanged.
    #[test]
    fn convert_pre_linen_renumbers_per_class() {
        let p: Params<HostArray> = [
            "Conv_0/kernel",
            "Dense_1/kernel",
            "Enc/block_10/x",
            "Enc/block_2/x",
            "Enc/Dense_3/kernel",
            "pos_embedding",
        ]
        .iter()
        .map(|n| (n.to_string(), scalar(1.0)))
        .collect();
        assert_eq!(
            names(&convert_pre_linen(p)),
            [
                "Conv_0/kernel",
                "Dense_0/kernel",
                "Enc/block_1/x",
                "Enc/block_0/x",
                "Enc/Dense_0/kernel",
                "pos_embedding"
            ]
        );
        let linen: Params<HostArray> = ["MlpBlock_0/Dense_0/kernel", "MlpBlock_0/Dense_1/kernel"]
            .iter()
            .map(|n| (n.to_string(), scalar(1.0)))
            .collect();
        assert_eq!(names(&convert_pre_linen(linen.clone())), names(&linen));
    }

    #[test]
    fn double_posemb_is_merged() {
        let p: Params<HostArray> = [
            ("pos_embedding".to_string(), scalar(1.5)),
            ("Encoder_0/pos_embedding".to_string(), scalar(0.25)),
        ]
        .into_iter()
        .collect();
        let fixed = fix_text_checkpoint(p).unwrap();
        assert_eq!(names(&fixed), ["pos_embedding"]);
        assert_eq!(fixed.get("pos_embedding").unwrap().to_f64(), [1.75]);
    }

    /// A two-tower `.npz` without one of the parts `model_init` asks for names the part,
    /// the file and what the file holds.
    #[test]
    fn a_checkpoint_missing_a_tower_is_an_error() {
        let dir = std::env::temp_dir().join(format!("bv-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("two_towers.npz");
        let p: Params<HostArray> = [
            ("img/head/bias".to_string(), scalar(1.0)),
            ("t".to_string(), scalar(2.0)),
        ]
        .into_iter()
        .collect();
        npz::write(&file, &p).unwrap();
        let (_, img) = read_part(&format!("{}:img", file.display())).unwrap();
        assert_eq!(names(&img), ["head/bias"]);
        let (_, t) = read_part(&format!("{}:t", file.display())).unwrap();
        assert_eq!(t.get("").unwrap().to_f64(), [2.0]);
        let e = read_part(&format!("{}:txt", file.display()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no `txt`") && e.contains("two_towers.npz") && e.contains("img, t"),
            "{e}"
        );
    }

    #[test]
    fn model_init_keys_and_vanity_names() {
        let dir = Path::new("/nonexistent-bv-dir");
        let p = parts(
            &serde_json::json!({"image": "a.npz:img", "txt": "b.npz"}),
            true,
            dir,
        )
        .unwrap();
        assert_eq!(p["img"], "a.npz:img");
        assert_eq!(p["txt"], "b.npz");
        assert_eq!(p.len(), 2);
        let e = parts(
            &serde_json::json!({"img": "a.npz", "txet": "b.npz"}),
            true,
            dir,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown key \"txet\""), "{e}");
        let whole = parts(&serde_json::json!("w/x.npz"), false, dir).unwrap();
        assert_eq!(
            whole.keys().copied().collect::<Vec<_>>(),
            ["img", "t", "txt"]
        );
        assert_eq!(whole["txt"], "w/x.npz:txt");
        let e = parts(&serde_json::json!("SigLIP B/16 224"), true, dir).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("webli_en_b16_224_63724782.npz"), "{msg}");
        assert!(
            msg.contains("https://storage.googleapis.com/big_vision/siglip/"),
            "{msg}"
        );
        assert_eq!(
            split_subtree("/p/f.npz:img/head"),
            ("/p/f.npz", Some("img/head"))
        );
        assert_eq!(split_subtree("gs://b/f.npz"), ("gs://b/f.npz", None));
    }
}

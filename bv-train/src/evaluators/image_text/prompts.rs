//! big_vision's `prompt_engineering.py`: class names by dataset and source, prompt
//! template sets, and `canonicalize_text`.

use std::path::Path;

use crate::pp::ops_text::{lines, CLIP_IMAGENET};

/// `CLIP_PAPER_PROMPT_TEMPLATES` (80 templates and `{}`).
pub const CLIP_PAPER: &str = include_str!("../../../data/class_names/clip_paper_templates.txt");
/// `CLIP_BEST_PROMPT_TEMPLATES`.
pub const CLIP_BEST: &str = include_str!("../../../data/class_names/clip_best_templates.txt");
const IMAGENET_A: &str = include_str!("../../../data/class_names/imagenet_a_labelset.txt");
const IMAGENET_R: &str = include_str!("../../../data/class_names/imagenet_r_labelset.txt");

/// The template set names `get_prompt_templates` knows.
pub const TEMPLATE_SETS: [&str; 3] = ["class_name_only", "clip_paper", "clip_best"];

/// The templates of a set name.
pub fn templates(name: &str) -> Result<Vec<String>, String> {
    let t = match name {
        "class_name_only" => "{}",
        "clip_paper" => CLIP_PAPER,
        "clip_best" => CLIP_BEST,
        other => {
            return Err(format!(
                "unknown prompt_templates {other:?}; big_vision's sets are {}",
                TEMPLATE_SETS.join(", ")
            ))
        }
    };
    Ok(t.lines().map(str::to_string).collect())
}

/// `canonicalize_text(text, keep_punctuation_exact_string=keep)`: `_` as space, ASCII
/// punctuation removed (except the exact string `keep`), lower case, runs of whitespace as
/// one space, trimmed.
pub fn canonicalize(text: &str, keep: Option<&str>) -> String {
    let text = text.replace('_', " ");
    let strip = |s: &str| -> String { s.chars().filter(|c| !c.is_ascii_punctuation()).collect() };
    let text = match keep {
        Some(k) => text.split(k).map(strip).collect::<Vec<_>>().join(k),
        None => strip(&text),
    };
    let text = text.to_lowercase();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `get_class_names(dataset_name, source)`: `dataset_info:<feature>` reads the dataset's
/// `<feature>.labels.txt` (TFDS's class-label names); `clip` is CLIP's ImageNet names for
/// `imagenet2012`, `imagenet_v2` (all 1000), `imagenet_a` and `imagenet_r` (their 200).
/// Errors name the source and the dataset.
pub fn class_names(dataset: &str, dataset_dir: &Path, source: &str) -> Result<Vec<String>, String> {
    if let Some(feature) = source.strip_prefix("dataset_info:") {
        let path = dataset_dir.join(format!("{feature}.labels.txt"));
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "class_names {source:?}: {}: {e} (is {feature:?} a class-label feature?)",
                path.display()
            )
        })?;
        return Ok(text.lines().map(str::to_string).collect());
    }
    let all = lines(CLIP_IMAGENET);
    let subset = |ids: &str| -> Vec<String> {
        ids.lines()
            .filter_map(|i| i.parse::<usize>().ok())
            .map(|i| all[i].to_string())
            .collect()
    };
    match (dataset, source) {
        ("imagenet2012" | "grand-vision:imagenet2012" | "imagenet_v2", "clip") => {
            Ok(all.iter().map(|s| s.to_string()).collect())
        }
        ("imagenet_a", "clip") => Ok(subset(IMAGENET_A)),
        ("imagenet_r", "clip") => Ok(subset(IMAGENET_R)),
        _ => Err(format!(
            "unknown class_names {source:?} for dataset {dataset:?}; use \"dataset_info:label\", \
             a list of names, or \"clip\" (imagenet2012, imagenet_v2, imagenet_a, imagenet_r)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values of big_vision's `canonicalize_text` (prompt_engineering_test.py and by hand).
    #[test]
    fn canonicalize_as_big_vision() {
        assert_eq!(canonicalize("T-shirt/top", Some(",")), "tshirttop");
        assert_eq!(
            canonicalize("Ankle_boot, boot", Some(",")),
            "ankle boot, boot"
        );
        assert_eq!(
            canonicalize("a bad photo of a {}.", Some("{}")),
            "a bad photo of a {}"
        );
        assert_eq!(canonicalize("  Hello\t  {World}!! ", None), "hello world");
        assert_eq!(
            canonicalize("kite (bird of prey)", Some(",")),
            "kite bird of prey"
        );
    }

    #[test]
    fn template_sets_and_unknown_class_names() {
        assert_eq!(templates("clip_paper").unwrap().len(), 81);
        assert_eq!(templates("clip_best").unwrap().len(), 8);
        assert!(templates("clip").unwrap_err().contains("clip_paper"));
        assert_eq!(
            class_names("imagenet_a", Path::new("."), "clip")
                .unwrap()
                .len(),
            200
        );
        let e = class_names("cifar10", Path::new("."), "clip").unwrap_err();
        assert!(
            e.contains("\"cifar10\"") && e.contains("dataset_info:label"),
            "{e}"
        );
    }
}

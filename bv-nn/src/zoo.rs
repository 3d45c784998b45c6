//! big_vision's short names for released checkpoints (`model_init: "howto-i21k-B/32"`):
//! `VANITY_NAMES` of `models/vit.py` and the table in `models/mlp_mixer.py`'s `load`. bv
//! reads local files only, so a name resolves to the checkpoint's file name in
//! [`models_dir`] (`~/.cache/bv/models/`), and a missing file is an error that says where to
//! download it.
//!
//! SigLIP's names are left out: they select the image tower of a two-tower checkpoint
//! (`file.npz:img`), which bv's loader does not read.

use std::fmt;
use std::path::{Path, PathBuf};

/// `(name, gs:// location)` of big_vision's ViT checkpoints (`models/vit.py`).
pub const VIT: &[(&str, &str)] = &[
    // "How to train your ViT?", https://arxiv.org/abs/2106.10270.
    (
        "howto-i21k-Ti/16",
        "gs://vit_models/augreg/Ti_16-i21k-300ep-lr_0.001-aug_none-wd_0.03-do_0.0-sd_0.0.npz",
    ),
    (
        "howto-i21k-S/32",
        "gs://vit_models/augreg/S_32-i21k-300ep-lr_0.001-aug_none-wd_0.1-do_0.0-sd_0.0.npz",
    ),
    (
        "howto-i21k-S/16",
        "gs://vit_models/augreg/S_16-i21k-300ep-lr_0.001-aug_light1-wd_0.03-do_0.0-sd_0.0.npz",
    ),
    (
        "howto-i21k-B/32",
        "gs://vit_models/augreg/B_32-i21k-300ep-lr_0.001-aug_light1-wd_0.1-do_0.0-sd_0.0.npz",
    ),
    (
        "howto-i21k-B/16",
        "gs://vit_models/augreg/B_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.0-sd_0.0.npz",
    ),
    (
        "howto-i21k-B/8",
        "gs://vit_models/augreg/B_8-i21k-300ep-lr_0.001-aug_medium2-wd_0.1-do_0.0-sd_0.0.npz",
    ),
    (
        "howto-i21k-L/16",
        "gs://vit_models/augreg/L_16-i21k-300ep-lr_0.001-aug_strong1-wd_0.1-do_0.0-sd_0.0.npz",
    ),
    // "Better plain ViT baselines for ImageNet-1k", https://arxiv.org/abs/2205.01580.
    ("i1k-s16-90ep", "gs://big_vision/vit_s16_i1k_90ep.npz"),
    ("i1k-s16-150ep", "gs://big_vision/vit_s16_i1k_150ep.npz"),
    ("i1k-s16-300ep", "gs://big_vision/vit_s16_i1k_300ep.npz"),
    // DeiT III, first layer converted to inputs in [-1, 1].
    (
        "deit3_S_224_1k",
        "gs://big_vision/zoo/deit3/bv_deit_3_small_224_1k.npz",
    ),
    (
        "deit3_S_224_21k",
        "gs://big_vision/zoo/deit3/bv_deit_3_small_224_21k.npz",
    ),
    (
        "deit3_S_384_1k",
        "gs://big_vision/zoo/deit3/bv_deit_3_small_384_1k.npz",
    ),
    (
        "deit3_S_384_21k",
        "gs://big_vision/zoo/deit3/bv_deit_3_small_384_21k.npz",
    ),
    (
        "deit3_B_224_1k",
        "gs://big_vision/zoo/deit3/bv_deit_3_base_224_1k.npz",
    ),
    (
        "deit3_B_224_21k",
        "gs://big_vision/zoo/deit3/bv_deit_3_base_224_21k.npz",
    ),
    (
        "deit3_B_384_1k",
        "gs://big_vision/zoo/deit3/bv_deit_3_base_384_1k.npz",
    ),
    (
        "deit3_B_384_21k",
        "gs://big_vision/zoo/deit3/bv_deit_3_base_384_21k.npz",
    ),
    (
        "deit3_L_224_1k",
        "gs://big_vision/zoo/deit3/bv_deit_3_large_224_1k.npz",
    ),
    (
        "deit3_L_224_21k",
        "gs://big_vision/zoo/deit3/bv_deit_3_large_224_21k.npz",
    ),
    (
        "deit3_L_384_1k",
        "gs://big_vision/zoo/deit3/bv_deit_3_large_384_1k.npz",
    ),
    (
        "deit3_L_384_21k",
        "gs://big_vision/zoo/deit3/bv_deit_3_large_384_21k.npz",
    ),
];

/// `(name, gs:// location)` of the MLP-Mixer paper's checkpoints (`models/mlp_mixer.py`).
pub const MLP_MIXER: &[(&str, &str)] = &[
    ("B-i1k/16", "gs://mixer_models/imagenet1k/Mixer-B_16.npz"),
    ("L-i1k/16", "gs://mixer_models/imagenet1k/Mixer-L_16.npz"),
    ("B-i21k/16", "gs://mixer_models/imagenet21k/Mixer-B_16.npz"),
    ("L-i21k/16", "gs://mixer_models/imagenet21k/Mixer-L_16.npz"),
];

/// The names `model_name`'s loader knows (BiT's has none).
pub fn names_for(model_name: &str) -> &'static [(&'static str, &'static str)] {
    match model_name {
        "vit" => VIT,
        "mlp_mixer" => MLP_MIXER,
        _ => &[],
    }
}

/// A checkpoint name whose file is not downloaded yet.
#[derive(Debug, Clone, PartialEq)]
pub struct NotDownloaded {
    /// big_vision's name, e.g. `howto-i21k-B/32`.
    pub name: String,
    /// Its `gs://` location.
    pub gs: String,
    /// Where bv looks for it.
    pub local: PathBuf,
}

impl NotDownloaded {
    /// The public HTTPS address of the `gs://` object.
    pub fn https(&self) -> String {
        format!(
            "https://storage.googleapis.com/{}",
            self.gs.trim_start_matches("gs://")
        )
    }
}

impl fmt::Display for NotDownloaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = self.local.parent().unwrap_or(Path::new("."));
        write!(
            f,
            "model_init {:?} is big_vision's name for {}, which is not downloaded; fetch it \
             with `mkdir -p {dir} && curl -fLo {local} {https}` (or `gsutil cp {gs} {dir}/`) \
             and run again, or give a downloaded file: --set model_init=PATH.npz",
            self.name,
            self.gs,
            dir = dir.display(),
            local = self.local.display(),
            https = self.https(),
            gs = self.gs,
        )
    }
}

impl std::error::Error for NotDownloaded {}

/// Names the folder downloaded checkpoints are looked for in.
pub const MODELS_DIR_ENV: &str = "BV_MODELS_DIR";

/// The folder downloaded checkpoints are looked for in: `$BV_MODELS_DIR`, else
/// `<bv cache>/models` (`~/.cache/bv/models`).
pub fn models_dir() -> PathBuf {
    match std::env::var_os(MODELS_DIR_ENV) {
        Some(d) => PathBuf::from(d),
        None => bv_core::pjrt::provision::cache_dir().join("models"),
    }
}

/// [`resolve_in`] the [`models_dir`]: what the trainer loads for `model_init`.
pub fn resolve(model_name: &str, model_init: &str) -> Result<PathBuf, NotDownloaded> {
    resolve_in(model_name, model_init, &models_dir())
}

/// The file `model_init` names for a `model_name` model: an existing path as given, else a
/// big_vision name's file in `dir`. Any other text is
/// returned as a path (reading it then names it in the error).
pub fn resolve_in(
    model_name: &str,
    model_init: &str,
    dir: &Path,
) -> Result<PathBuf, NotDownloaded> {
    let given = PathBuf::from(model_init);
    if given.exists() {
        return Ok(given);
    }
    let Some((name, gs)) = names_for(model_name).iter().find(|(n, _)| *n == model_init) else {
        return Ok(given);
    };
    let file = gs
        .rsplit('/')
        .next()
        .expect("a gs:// location has a file name");
    let local = dir.join(file);
    if local.is_file() {
        return Ok(local);
    }
    Err(NotDownloaded {
        name: name.to_string(),
        gs: gs.to_string(),
        local,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_to_the_downloaded_file_or_say_where_to_get_it() {
        let dir = std::env::temp_dir().join(format!("bv-zoo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = "B_32-i21k-300ep-lr_0.001-aug_light1-wd_0.1-do_0.0-sd_0.0.npz";
        let e = resolve_in("vit", "howto-i21k-B/32", &dir).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!(
                "https://storage.googleapis.com/vit_models/augreg/{file}"
            )),
            "{msg}"
        );
        assert!(msg.contains(&dir.join(file).display().to_string()), "{msg}");
        assert!(msg.contains("--set model_init=PATH.npz"), "{msg}");
        std::fs::write(dir.join(file), b"npz").unwrap();
        assert_eq!(
            resolve_in("vit", "howto-i21k-B/32", &dir).unwrap(),
            dir.join(file)
        );
        // A Mixer name is not a ViT name; paths pass through.
        assert_eq!(
            resolve_in("vit", "B-i1k/16", &dir).unwrap(),
            PathBuf::from("B-i1k/16")
        );
        assert!(resolve_in("mlp_mixer", "B-i1k/16", &dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

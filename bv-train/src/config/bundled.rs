//! The repository's `configs/*.ron`, built into the binary, so that `--config vit_s16_i1k.ron`
//! (or `vit_s16_i1k`, or `configs/vit_s16_i1k.ron`) works from any directory, e.g. on a TPU VM
//! that has only the binary. A file at the given path always wins.

use std::path::Path;

/// One bundled config.
#[derive(Debug)]
pub struct Bundled {
    /// Its file name in `configs/`.
    pub name: &'static str,
    /// Its text.
    pub text: &'static str,
}

macro_rules! bundle {
    ($($name:literal),* $(,)?) => {
        &[$(Bundled {
            name: $name,
            text: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/", $name)),
        }),*]
    };
}

/// Every config of `configs/` (a test checks that none is missing).
pub const BUNDLED: &[Bundled] = bundle!(
    "bit_i1k.ron",
    "fashion_mnist_vit.ron",
    "mlp_mixer_i1k.ron",
    "transfer_cifar10.ron",
    "transfer_flowers.ron",
    "transfer_pets.ron",
    "vit_i1k.ron",
    "vit_s16_i1k.ron",
);

impl Bundled {
    /// The header's first paragraph (what the config trains), on one line.
    pub fn summary(&self) -> String {
        self.text
            .lines()
            .map_while(|l| {
                l.strip_prefix("//")
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The bundled config a missing `path` names: a bare name (`vit_s16_i1k.ron`, `vit_s16_i1k`)
/// or one under `configs/`, as the README's commands write it.
pub fn for_path(path: &Path) -> Option<&'static Bundled> {
    let parent = path.parent().and_then(|p| p.to_str()).unwrap_or("");
    if !matches!(parent, "" | "configs" | "./configs") {
        return None;
    }
    let file = path.file_name()?.to_str()?;
    BUNDLED
        .iter()
        .find(|b| b.name == file || b.name.strip_suffix(".ron") == Some(file))
}

/// The names of the bundled configs, for messages.
pub fn names() -> String {
    BUNDLED
        .iter()
        .map(|b| b.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_and_paths_elsewhere_do_not() {
        let name = |p: &str| for_path(Path::new(p)).map(|b| b.name);
        assert_eq!(name("vit_s16_i1k.ron"), Some("vit_s16_i1k.ron"));
        assert_eq!(name("vit_s16_i1k"), Some("vit_s16_i1k.ron"));
        assert_eq!(name("configs/bit_i1k.ron"), Some("bit_i1k.ron"));
        assert_eq!(name("/home/me/vit_s16_i1k.ron"), None);
        assert_eq!(name("vit_s16.ron"), None);
    }
}

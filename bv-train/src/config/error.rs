//! Errors reading a config or applying command-line overrides.

use std::path::PathBuf;

/// A config that cannot be read, parsed or overridden.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read; check the path given to `--config`, or name a bundled
    /// config.
    #[error("cannot read the config {} (bundled configs, usable by name from any directory: {bundled})", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
        bundled: String,
    },
    /// An override sets a length in one unit while the config gives it in another, e.g.
    /// `--set total_steps=30` with `total_epochs: 90`: add `--set total_epochs=None`.
    #[error("override {arg:?}: the config also sets {other} = {value}, and a length takes one unit; add --set {other}=None")]
    LengthConflict {
        arg: String,
        other: String,
        value: String,
    },
    /// RON syntax or a value of the wrong type, at `file:line:column`.
    #[error("{file}:{line}:{col}: {msg}")]
    Syntax {
        file: String,
        line: usize,
        col: usize,
        msg: String,
    },
    /// A key the schema does not have, with the closest valid key.
    #[error("{file}:{line}:{col}: unknown key {key:?}{}; valid keys here: {}", did_you_mean(suggestion), valid.join(", "))]
    UnknownKey {
        file: String,
        line: usize,
        col: usize,
        key: String,
        suggestion: Option<String>,
        valid: Vec<String>,
    },
    /// An override is not `dotted.path=value`.
    #[error("override {arg:?}: expected dotted.path=value, e.g. lr=0.03 or input.batch_size=256")]
    OverrideSyntax { arg: String },
    /// An override names a key the config does not have.
    #[error(
        "override {arg:?}: unknown key {key:?} in {parent}{}",
        did_you_mean(suggestion)
    )]
    OverrideKey {
        arg: String,
        key: String,
        parent: String,
        suggestion: Option<String>,
    },
    /// An override's value does not fit the key's type.
    #[error("override {arg:?}: {source}")]
    OverrideType {
        arg: String,
        #[source]
        source: serde_json::Error,
    },
    /// The resolved config cannot be written to the workdir.
    #[error("{}: cannot write the resolved config: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn did_you_mean(s: &Option<String>) -> String {
    s.as_ref()
        .map(|s| format!("; did you mean {s:?}?"))
        .unwrap_or_default()
}

/// The candidate closest to `key` by edit distance, if any is reasonably close.
pub(crate) fn closest<'a>(
    key: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(key, c), c))
        .filter(|(d, c)| *d <= (key.len().max(c.len()) / 2).max(2))
        .min()
        .map(|(_, c)| c.to_string())
}

//! Reading a RON config, applying `dotted.path=value` overrides, writing `config.json`.

use std::path::Path;

use ron::extensions::Extensions;
use serde_json::Value;

use super::error::closest;
use super::{bundled, Config, ConfigError};

/// Paths whose dicts are free-form, so an override may add keys to them (`*` = any key).
const OPEN_DICTS: &[&str] = &[
    "model",
    "optax",
    "model_load",
    "student",
    "student_load",
    "distance_kw",
    "gsam",
    "teachers.*.model",
    "teachers.*.load",
    "evals",
    "evals.*.pred_kw",
    "evals.*.datasets",
];

impl Config {
    /// Reads a RON config file and applies overrides (`lr=0.03`, `input.batch_size=256`).
    /// A missing file named like a bundled config (`vit_s16_i1k.ron`, `vit_s16_i1k`,
    /// `configs/vit_s16_i1k.ron`) is read from the binary ([`super::bundled`]).
    pub fn load(path: impl AsRef<Path>, overrides: &[String]) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_str(&text, &path.display().to_string(), overrides),
            Err(source) => match bundled::for_path(path) {
                Some(b) if source.kind() == std::io::ErrorKind::NotFound => {
                    Self::from_str(b.text, &format!("{} (bundled)", b.name), overrides)
                }
                _ => Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                    bundled: bundled::names(),
                }),
            },
        }
    }

    /// Parses RON text (`file` names it in errors) and applies overrides in order. RON's
    /// `implicit_some` is on: write `lr_mults: [...]`, not `Some([...])`.
    pub fn from_str(text: &str, file: &str, overrides: &[String]) -> Result<Config, ConfigError> {
        let config: Config = ron_options()
            .from_str(text)
            .map_err(|e| from_ron(e, file))?;
        if overrides.is_empty() {
            return Ok(config);
        }
        let mut tree = serde_json::to_value(&config).expect("a config serializes to JSON");
        for arg in overrides {
            apply(&mut tree, arg)?;
            let checked = serde_json::from_value::<Config>(tree.clone())
                .map_err(|source| type_error(arg, source))?;
            // A section an override created now lists all its keys, so that the next
            // override may set another one (`evals.f.type=...`, then `evals.f.shots=...`).
            tree = serde_json::to_value(&checked).expect("a config serializes to JSON");
        }
        check_length_overrides(&tree, overrides)?;
        Ok(serde_json::from_value(tree).expect("checked after each override"))
    }

    /// The config as `config.json` holds it. Counts that hold whole numbers (`*_steps`,
    /// `*_examples`, a stair schedule's `steps`) are written as integers, as big_vision's
    /// `config.to_json()` writes a Python config's ints; free-form dicts (`model`, ...)
    /// keep their numbers as written.
    pub fn to_json(&self) -> String {
        let mut tree = serde_json::to_value(self).expect("a config serializes to JSON");
        whole_counts_as_ints(&mut tree, false);
        serde_json::to_string_pretty(&tree).expect("a JSON tree serializes")
    }

    /// Writes the config as `workdir/config.json` (locally: temporary file, fsync, rename;
    /// on a bucket: one object).
    pub fn write_json(&self, workdir: impl AsRef<Path>) -> Result<(), ConfigError> {
        let path = workdir.as_ref().join("config.json");
        let tmp = workdir.as_ref().join("config.json.tmp");
        crate::storage::write_via(&tmp, &path, self.to_json().as_bytes())
            .map_err(|source| ConfigError::Write { path, source })
    }
}

/// Rewrites whole numbers under count keys (`count` = inside one) as JSON integers.
fn whole_counts_as_ints(v: &mut Value, count: bool) {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                if !FREE_FORM.contains(&k.as_str()) {
                    let is_count =
                        k.ends_with("_steps") || k.ends_with("_examples") || k == "steps";
                    whole_counts_as_ints(x, is_count);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|x| whole_counts_as_ints(x, count)),
        Value::Number(n) if count => {
            if let Some(f) = n
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 2f64.powi(53))
            {
                *v = Value::from(f as i64);
            }
        }
        _ => {}
    }
}

/// Dicts passed through as written.
const FREE_FORM: &[&str] = &[
    "model",
    "optax",
    "model_load",
    "pred_kw",
    "student",
    "student_load",
    "distance_kw",
    "gsam",
];

/// RON as configs are read: `implicit_some` on, so optional keys take plain values.
pub fn ron_options() -> ron::Options {
    ron::Options::default().with_default_extension(Extensions::IMPLICIT_SOME)
}

fn from_ron(e: ron::error::SpannedError, file: &str) -> ConfigError {
    let (line, col) = (e.position.line, e.position.col);
    match e.code {
        ron::Error::NoSuchStructField {
            expected, found, ..
        } => ConfigError::UnknownKey {
            file: file.to_string(),
            line,
            col,
            suggestion: closest(&found, expected.iter().copied()),
            key: found,
            valid: expected.iter().map(|s| s.to_string()).collect(),
        },
        code => ConfigError::Syntax {
            file: file.to_string(),
            line,
            col,
            msg: code.to_string(),
        },
    }
}

/// Parses an override's value: RON (`0.03`, `true`, `[1, 2]`, `"text"`, `None`), with a
/// bare word or any other unparsable text taken as a string (`decay_type=cosine`).
fn parse_value(v: &str) -> Value {
    let bare = v.chars().all(|c| c.is_alphanumeric() || c == '_')
        && !v.starts_with(|c: char| c.is_ascii_digit());
    match v {
        "None" => Value::Null,
        "true" | "false" => Value::Bool(v == "true"),
        _ if bare => Value::String(v.to_string()),
        _ => ron_options()
            .from_str(v)
            .unwrap_or_else(|_| Value::String(v.to_string())),
    }
}

/// An override that does not deserialize; an unknown field inside a section the override
/// created (`schedule.decay_tpye=...` on a config without `schedule`) becomes `OverrideKey`.
fn type_error(arg: &str, source: serde_json::Error) -> ConfigError {
    let msg = source.to_string();
    let mut names = msg.split('`').skip(1).step_by(2);
    match (msg.starts_with("unknown field"), names.next()) {
        (true, Some(key)) => {
            let path = arg.split_once('=').map_or(arg, |(p, _)| p);
            ConfigError::OverrideKey {
                arg: arg.to_string(),
                key: key.to_string(),
                parent: path
                    .rsplit_once('.')
                    .map_or("the config", |(p, _)| p)
                    .to_string(),
                suggestion: closest(key, names),
            }
        }
        _ => ConfigError::OverrideType {
            arg: arg.to_string(),
            source,
        },
    }
}

/// The units of a length key (`total_steps`, `log_training_epochs`, ...).
const UNITS: [&str; 4] = ["steps", "epochs", "examples", "percent"];

/// An override that sets one unit of a length the config gives in another
/// (`--set total_steps=30` on a config with `total_epochs`) names the key to unset, unless a
/// later override unsets it.
fn check_length_overrides(tree: &Value, overrides: &[String]) -> Result<(), ConfigError> {
    let set = |v: Option<&Value>| v.and_then(Value::as_f64).is_some_and(|x| x >= 0.0);
    let paths: Vec<&str> = overrides
        .iter()
        .filter_map(|a| a.split_once('=').map(|(p, _)| p))
        .collect();
    for (arg, path) in overrides.iter().zip(&paths) {
        let (parent, key) = path.rsplit_once('.').map_or(("", *path), |(p, k)| (p, k));
        let Some((prefix, _)) = UNITS
            .iter()
            .find_map(|u| key.strip_suffix(u)?.strip_suffix('_').map(|p| (p, u)))
        else {
            continue;
        };
        let node = parent
            .split('.')
            .filter(|k| !k.is_empty())
            .try_fold(tree, |n, k| n.get(k));
        let Some(node) = node.filter(|n| set(n.get(key))) else {
            continue;
        };
        for unit in UNITS {
            let other = format!("{prefix}_{unit}");
            let other_path = if parent.is_empty() {
                other.clone()
            } else {
                format!("{parent}.{other}")
            };
            if other != key && set(node.get(&other)) && !paths.contains(&other_path.as_str()) {
                return Err(ConfigError::LengthConflict {
                    arg: arg.clone(),
                    other: other_path,
                    value: match node[&other].as_f64() {
                        Some(x) if x.fract() == 0.0 => format!("{x:.0}"),
                        _ => node[&other].to_string(),
                    },
                });
            }
        }
    }
    Ok(())
}

fn is_open(path: &[&str]) -> bool {
    OPEN_DICTS.iter().any(|p| {
        let p: Vec<&str> = p.split('.').collect();
        p.len() == path.len() && p.iter().zip(path).all(|(a, b)| *a == "*" || a == b)
    })
}

/// Sets one `dotted.path=value` in the JSON form of a config.
fn apply(tree: &mut Value, arg: &str) -> Result<(), ConfigError> {
    let (path, value) = arg
        .split_once('=')
        .filter(|(p, _)| !p.is_empty() && !p.split('.').any(str::is_empty))
        .ok_or_else(|| ConfigError::OverrideSyntax {
            arg: arg.to_string(),
        })?;
    let keys: Vec<&str> = path.split('.').collect();
    let mut node = tree;
    let mut created = false;
    for (i, key) in keys.iter().enumerate() {
        if node.is_null() {
            // An absent section: its keys are checked when the result is deserialized.
            *node = Value::Object(Default::default());
            created = true;
        }
        let parent = if i == 0 {
            "the config".to_string()
        } else {
            keys[..i].join(".")
        };
        let unknown = |suggestion| ConfigError::OverrideKey {
            arg: arg.to_string(),
            key: key.to_string(),
            parent: parent.clone(),
            suggestion,
        };
        node = match node {
            Value::Object(map) => {
                if !map.contains_key(*key) {
                    if !created && !is_open(&keys[..i]) {
                        return Err(unknown(closest(key, map.keys().map(String::as_str))));
                    }
                    map.insert(key.to_string(), Value::Null);
                }
                map.get_mut(*key).expect("present")
            }
            Value::Array(items) => {
                let len = items.len();
                match key.parse::<usize>().ok().filter(|&j| j < len) {
                    Some(j) => &mut items[j],
                    None => return Err(unknown(None)),
                }
            }
            _ => return Err(unknown(None)),
        };
    }
    *node = parse_value(value);
    Ok(())
}

//! Reading a model's free-form config map (`config.model` of a big_vision config) with
//! errors that name the model, the key and what was expected.

use bv_core::DType;
use serde_json::{Map, Value};

use crate::models::ModelError;

/// A model config: a JSON object whose keys must all be known to the model.
pub(crate) struct Cfg<'a> {
    model: &'static str,
    map: &'a Map<String, Value>,
}

impl<'a> Cfg<'a> {
    /// Checks that `value` is an object (or null: no keys) whose keys are all in `known`.
    pub fn new(
        model: &'static str,
        value: &'a Value,
        known: &[&'static str],
    ) -> Result<Cfg<'a>, ModelError> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        let map = match value {
            Value::Object(m) => m,
            Value::Null => EMPTY.get_or_init(Map::new),
            other => {
                return Err(ModelError::NotAnObject {
                    model: model.into(),
                    found: other.to_string(),
                })
            }
        };
        if let Some(key) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(ModelError::UnknownKey {
                model: model.into(),
                key: key.clone(),
                known: known.iter().map(|k| k.to_string()).collect(),
            });
        }
        Ok(Cfg { model, map })
    }

    /// The value of `key`, `None` when absent or null.
    fn raw(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// An error for `key` holding something other than `expected`.
    pub fn bad(&self, key: &str, expected: &str) -> ModelError {
        ModelError::BadValue {
            model: self.model.into(),
            key: key.into(),
            expected: expected.into(),
            found: self.map.get(key).map_or("nothing".into(), Value::to_string),
        }
    }

    /// A non-negative integer.
    pub fn usize(&self, key: &str) -> Result<Option<usize>, ModelError> {
        self.raw(key)
            .map(|v| as_usize(v).ok_or_else(|| self.bad(key, "a non-negative integer")))
            .transpose()
    }

    /// A number.
    pub fn f64(&self, key: &str) -> Result<Option<f64>, ModelError> {
        self.raw(key)
            .map(|v| v.as_f64().ok_or_else(|| self.bad(key, "a number")))
            .transpose()
    }

    /// A boolean.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ModelError> {
        self.raw(key)
            .map(|v| v.as_bool().ok_or_else(|| self.bad(key, "true or false")))
            .transpose()
    }

    /// A string.
    pub fn str(&self, key: &str) -> Result<Option<&'a str>, ModelError> {
        self.raw(key)
            .map(|v| v.as_str().ok_or_else(|| self.bad(key, "a string")))
            .transpose()
    }

    /// A list of non-negative integers (a single integer is a list of one).
    pub fn usize_list(&self, key: &str) -> Result<Option<Vec<usize>>, ModelError> {
        let Some(v) = self.raw(key) else {
            return Ok(None);
        };
        let list = match v {
            Value::Array(items) => items.iter().map(as_usize).collect(),
            single => as_usize(single).map(|n| vec![n]),
        };
        list.map(Some)
            .ok_or_else(|| self.bad(key, "a list of non-negative integers"))
    }

    /// big_vision's `dtype_mm`: `"float32"` (the default), `"bfloat16"` or `"float16"`.
    pub fn dtype_mm(&self) -> Result<DType, ModelError> {
        match self.str("dtype_mm")? {
            None | Some("float32") => Ok(DType::F32),
            Some("bfloat16") => Ok(DType::BF16),
            Some("float16") => Ok(DType::F16),
            Some(_) => Err(self.bad("dtype_mm", "\"float32\", \"bfloat16\" or \"float16\"")),
        }
    }

    /// A `(height, width)` pair: `[h, w]` or one integer for both.
    pub fn pair(&self, key: &str) -> Result<Option<(usize, usize)>, ModelError> {
        match self.usize_list(key) {
            Ok(Some(v)) if v.len() == 1 => Ok(Some((v[0], v[0]))),
            Ok(Some(v)) if v.len() == 2 => Ok(Some((v[0], v[1]))),
            Ok(None) => Ok(None),
            _ => Err(self.bad(key, "[height, width] or one integer")),
        }
    }
}

fn as_usize(v: &Value) -> Option<usize> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .and_then(|n| usize::try_from(n).ok()),
        _ => None,
    }
}

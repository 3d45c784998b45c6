//! `PJRT_NamedValue`: the key-value pairs of plugin attributes, client options and cost
//! analyses.

use std::collections::BTreeMap;
use std::ffi::c_char;

use xla_sys as sys;

use super::api::{args, slice_from, string_from};

/// A value in a PJRT key-value list.
#[derive(Clone, Debug, PartialEq)]
pub enum NamedValue {
    Str(String),
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Bool(bool),
}

impl NamedValue {
    /// The value as an integer, if it is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            NamedValue::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// The value as a float, converting integers.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            NamedValue::Float(v) => Some(f64::from(*v)),
            NamedValue::Int(v) => Some(*v as f64),
            _ => None,
        }
    }

    /// A dotted version string for integer lists (`[1, 13, 3]` → `1.13.3`), or the string.
    pub fn as_version(&self) -> Option<String> {
        match self {
            NamedValue::Ints(v) => Some(
                v.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join("."),
            ),
            NamedValue::Str(s) => Some(s.clone()),
            _ => None,
        }
    }
}

impl From<i64> for NamedValue {
    fn from(v: i64) -> Self {
        NamedValue::Int(v)
    }
}
impl From<bool> for NamedValue {
    fn from(v: bool) -> Self {
        NamedValue::Bool(v)
    }
}
impl From<f32> for NamedValue {
    fn from(v: f32) -> Self {
        NamedValue::Float(v)
    }
}
impl From<&str> for NamedValue {
    fn from(v: &str) -> Self {
        NamedValue::Str(v.to_string())
    }
}
impl From<Vec<i64>> for NamedValue {
    fn from(v: Vec<i64>) -> Self {
        NamedValue::Ints(v)
    }
}

/// Reads a plugin-owned array of named values.
///
/// # Safety
/// `ptr` must point at `n` valid `PJRT_NamedValue`s (or be null).
pub(crate) unsafe fn read_list(
    ptr: *const sys::PJRT_NamedValue,
    n: usize,
) -> BTreeMap<String, NamedValue> {
    let mut out = BTreeMap::new();
    for nv in slice_from(ptr, n) {
        let name = string_from(nv.name, nv.name_size);
        let v = &nv.__bindgen_anon_1;
        let value = match nv.type_ {
            sys::PJRT_NamedValue_kString => {
                NamedValue::Str(string_from(v.string_value, nv.value_size))
            }
            sys::PJRT_NamedValue_kInt64 => NamedValue::Int(v.int64_value),
            sys::PJRT_NamedValue_kInt64List => {
                NamedValue::Ints(slice_from(v.int64_array_value, nv.value_size).to_vec())
            }
            sys::PJRT_NamedValue_kFloat => NamedValue::Float(v.float_value),
            sys::PJRT_NamedValue_kBool => NamedValue::Bool(v.bool_value),
            _ => continue,
        };
        out.insert(name, value);
    }
    out
}

/// Named values laid out for a C call; the raw entries point into `self`, so keep it alive
/// for the duration of the call.
pub(crate) struct RawList {
    _names: Vec<Vec<u8>>,
    _values: Vec<NamedValue>,
    pub(crate) raw: Vec<sys::PJRT_NamedValue>,
}

impl RawList {
    /// Lays out `items` for a PJRT call.
    pub(crate) fn new(items: &[(String, NamedValue)]) -> RawList {
        let names: Vec<Vec<u8>> = items.iter().map(|(k, _)| k.as_bytes().to_vec()).collect();
        let values: Vec<NamedValue> = items.iter().map(|(_, v)| v.clone()).collect();
        let raw = names
            .iter()
            .zip(&values)
            .map(|(name, value)| {
                let mut nv = args!(PJRT_NamedValue {
                    name: name.as_ptr().cast::<c_char>(),
                    name_size: name.len(),
                    value_size: 1,
                });
                match value {
                    NamedValue::Str(s) => {
                        nv.type_ = sys::PJRT_NamedValue_kString;
                        nv.__bindgen_anon_1.string_value = s.as_ptr().cast::<c_char>();
                        nv.value_size = s.len();
                    }
                    NamedValue::Int(i) => {
                        nv.type_ = sys::PJRT_NamedValue_kInt64;
                        nv.__bindgen_anon_1.int64_value = *i;
                    }
                    NamedValue::Ints(v) => {
                        nv.type_ = sys::PJRT_NamedValue_kInt64List;
                        nv.__bindgen_anon_1.int64_array_value = v.as_ptr();
                        nv.value_size = v.len();
                    }
                    NamedValue::Float(f) => {
                        nv.type_ = sys::PJRT_NamedValue_kFloat;
                        nv.__bindgen_anon_1.float_value = *f;
                    }
                    NamedValue::Bool(b) => {
                        nv.type_ = sys::PJRT_NamedValue_kBool;
                        nv.__bindgen_anon_1.bool_value = *b;
                    }
                }
                nv
            })
            .collect();
        RawList {
            _names: names,
            _values: values,
            raw,
        }
    }
}

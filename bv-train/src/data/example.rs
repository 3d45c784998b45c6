//! `tf.train.Example` protos (declared with prost's derive, no protoc) and their conversion to
//! and from [`Example`] dicts, guided by the dataset's features.

use std::collections::BTreeMap;

use super::error::{DataError, Result};
use super::info::{FeatureKind, FeatureSpec};
use super::value::{Array, Example, Value};

/// `tensorflow.Example`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExampleProto {
    /// Field 1.
    #[prost(message, optional, tag = "1")]
    pub features: Option<Features>,
}

/// `tensorflow.Features`: a map from flattened key to feature.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Features {
    /// Field 1.
    #[prost(btree_map = "string, message", tag = "1")]
    pub feature: BTreeMap<String, Feature>,
}

/// `tensorflow.Feature`: one of three lists.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Feature {
    /// The list.
    #[prost(oneof = "FeatureList", tags = "1, 2, 3")]
    pub kind: Option<FeatureList>,
}

/// The `oneof kind` of `tensorflow.Feature`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum FeatureList {
    /// `BytesList`.
    #[prost(message, tag = "1")]
    BytesList(BytesList),
    /// `FloatList`.
    #[prost(message, tag = "2")]
    FloatList(FloatList),
    /// `Int64List`.
    #[prost(message, tag = "3")]
    Int64List(Int64List),
}

/// `tensorflow.BytesList`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BytesList {
    /// Field 1.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub value: Vec<Vec<u8>>,
}

/// `tensorflow.FloatList` (packed or not).
#[derive(Clone, PartialEq, prost::Message)]
pub struct FloatList {
    /// Field 1.
    #[prost(float, repeated, tag = "1")]
    pub value: Vec<f32>,
}

/// `tensorflow.Int64List` (packed or not).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Int64List {
    /// Field 1.
    #[prost(int64, repeated, tag = "1")]
    pub value: Vec<i64>,
}

fn resolve_shape(key: &str, shape: &[i64], len: usize) -> Result<Vec<usize>> {
    let known: usize = shape
        .iter()
        .filter(|&&d| d >= 0)
        .map(|&d| d as usize)
        .product();
    let unknown = shape.iter().filter(|&&d| d < 0).count();
    let bad = || DataError::Feature {
        key: key.to_string(),
        msg: format!("{len} values do not fit shape {shape:?}"),
    };
    match unknown {
        0 if known == len => Ok(shape.iter().map(|&d| d as usize).collect()),
        1 if known > 0 && len.is_multiple_of(known) => Ok(shape
            .iter()
            .map(|&d| if d < 0 { len / known } else { d as usize })
            .collect()),
        _ => Err(bad()),
    }
}

fn list_value(list: FeatureList, shape: Option<Vec<usize>>) -> Value {
    let flat = |n: usize| shape.clone().unwrap_or_else(|| vec![n]);
    match list {
        FeatureList::BytesList(b) => {
            let n = b.value.len();
            Value::Bytes(Array::new(flat(n), b.value))
        }
        FeatureList::FloatList(f) => {
            let n = f.value.len();
            Value::F32(Array::new(flat(n), f.value))
        }
        FeatureList::Int64List(i) => {
            let n = i.value.len();
            Value::I64(Array::new(flat(n), i.value))
        }
    }
}

fn list_len(list: &FeatureList) -> usize {
    match list {
        FeatureList::BytesList(b) => b.value.len(),
        FeatureList::FloatList(f) => f.value.len(),
        FeatureList::Int64List(i) => i.value.len(),
    }
}

/// Converts a parsed proto into an example dict.
///
/// Images, text and class labels become scalars (encoded bytes, bytes, int64); tensors get their
/// declared shape. Features missing from `specs` become 1-D arrays of their stored list.
/// Images stay encoded, as big_vision's `SkipDecoding`: the `decode` pp op decodes them.
pub fn to_example(proto: ExampleProto, specs: &[FeatureSpec]) -> Result<Example> {
    let mut out = Example::new();
    let feats = proto.features.map(|f| f.feature).unwrap_or_default();
    for (key, feat) in feats {
        let Some(list) = feat.kind else {
            continue;
        };
        let spec = specs.iter().find(|s| s.key == key).map(|s| &s.kind);
        let n = list_len(&list);
        let shape = match spec {
            Some(
                FeatureKind::Image { .. } | FeatureKind::ClassLabel { .. } | FeatureKind::Text,
            ) => {
                if n != 1 {
                    return Err(DataError::Feature {
                        key,
                        msg: format!("expected one value, found {n}"),
                    });
                }
                Some(vec![])
            }
            Some(FeatureKind::Tensor { shape, .. }) => Some(resolve_shape(&key, shape, n)?),
            _ => None,
        };
        out.insert(key, list_value(list, shape));
    }
    for s in specs {
        if !out.contains_key(&s.key) {
            return Err(DataError::Feature {
                key: s.key.clone(),
                msg: "missing from the example".into(),
            });
        }
    }
    Ok(out)
}

/// Converts an example dict into a proto (arrays are flattened row-major; uint8 as int64).
pub fn from_example(ex: &Example) -> ExampleProto {
    let feature = ex
        .iter()
        .map(|(k, v)| {
            let kind = match v {
                Value::U8(a) => FeatureList::Int64List(Int64List {
                    value: a.data.iter().map(|&x| x as i64).collect(),
                }),
                Value::I64(a) => FeatureList::Int64List(Int64List {
                    value: a.data.clone(),
                }),
                Value::F32(a) => FeatureList::FloatList(FloatList {
                    value: a.data.clone(),
                }),
                Value::Bytes(a) => FeatureList::BytesList(BytesList {
                    value: a.data.clone(),
                }),
            };
            (k.clone(), Feature { kind: Some(kind) })
        })
        .collect();
    ExampleProto {
        features: Some(Features { feature }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn unpacked_int64_is_accepted() {
        // Features{feature: {"l": Feature{int64_list: Int64List{value: 7, value: 9}}}}
        // with the two values unpacked (tag 1 varint each), as older writers emit.
        let int_list = [0x08, 7, 0x08, 9];
        let mut feature = vec![0x1a, int_list.len() as u8];
        feature.extend_from_slice(&int_list);
        let mut entry = vec![0x0a, 1, b'l', 0x12, feature.len() as u8];
        entry.extend_from_slice(&feature);
        let mut features = vec![0x0a, entry.len() as u8];
        features.extend_from_slice(&entry);
        let mut bytes = vec![0x0a, features.len() as u8];
        bytes.extend_from_slice(&features);
        let ex = to_example(ExampleProto::decode(bytes.as_slice()).unwrap(), &[]).unwrap();
        assert_eq!(ex["l"], Value::I64(Array::new(vec![2], vec![7, 9])));
    }

    #[test]
    fn tensor_shape_with_unknown_dim() {
        assert_eq!(resolve_shape("t", &[-1, 3], 6).unwrap(), vec![2, 3]);
        assert!(resolve_shape("t", &[2, 2], 6).is_err());
    }
}

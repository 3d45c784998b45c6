//! What the plugin reads from a program: `@main`'s parameter and result types with their
//! Shardy shardings (hence each device's part), and from the compile options the partition
//! count and the device assignment.

use std::collections::HashMap;

use xla_sys as sys;

use crate::error::{Error, Result};

/// A parameter or result of `@main`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Value {
    pub(crate) dtype: sys::PJRT_Buffer_Type,
    /// The global dimensions.
    pub(crate) dims: Vec<i64>,
    /// The dimensions of each device's part.
    pub(crate) local_dims: Vec<i64>,
    /// For a parameter, the result it is donated to (`tf.aliasing_output`).
    pub(crate) alias: Option<usize>,
}

impl Value {
    pub(crate) fn local_bytes(&self) -> usize {
        self.local_dims.iter().product::<i64>() as usize * elem_size(self.dtype)
    }
}

/// A compiled program.
#[derive(Debug)]
pub(crate) struct Program {
    pub(crate) name: String,
    pub(crate) params: Vec<Value>,
    pub(crate) results: Vec<Value>,
    /// Device ids, one per partition.
    pub(crate) assignment: Vec<i64>,
    /// The text and the options, as serialized.
    pub(crate) text: String,
    pub(crate) options: Vec<u8>,
}

/// Element types by StableHLO name, with their size.
const TYPES: [(&str, sys::PJRT_Buffer_Type, usize); 13] = [
    ("i1", sys::PJRT_Buffer_Type_PRED, 1),
    ("i8", sys::PJRT_Buffer_Type_S8, 1),
    ("i16", sys::PJRT_Buffer_Type_S16, 2),
    ("i32", sys::PJRT_Buffer_Type_S32, 4),
    ("i64", sys::PJRT_Buffer_Type_S64, 8),
    ("ui8", sys::PJRT_Buffer_Type_U8, 1),
    ("ui16", sys::PJRT_Buffer_Type_U16, 2),
    ("ui32", sys::PJRT_Buffer_Type_U32, 4),
    ("ui64", sys::PJRT_Buffer_Type_U64, 8),
    ("f16", sys::PJRT_Buffer_Type_F16, 2),
    ("bf16", sys::PJRT_Buffer_Type_BF16, 2),
    ("f32", sys::PJRT_Buffer_Type_F32, 4),
    ("f64", sys::PJRT_Buffer_Type_F64, 8),
];

/// Bytes per element of `t` (0 for types the plugin does not know).
pub(crate) fn elem_size(t: sys::PJRT_Buffer_Type) -> usize {
    TYPES.iter().find(|x| x.1 == t).map_or(0, |x| x.2)
}

/// The StableHLO name of `t`.
pub(crate) fn type_name(t: sys::PJRT_Buffer_Type) -> &'static str {
    TYPES.iter().find(|x| x.1 == t).map_or("?", |x| x.0)
}

impl Program {
    /// Reads `text` (StableHLO) under serialized `options`, for a client with `devices`
    /// (global ids in order).
    pub(crate) fn parse(text: &str, options: &[u8], devices: &[i64]) -> Result<Program> {
        let (partitions, assignment) = read_options(options)?;
        let assignment = match assignment {
            Some(a) => a,
            // XLA's default placement: the first devices of the job.
            None => devices.iter().copied().take(partitions).collect(),
        };
        if assignment.len() != partitions {
            return Err(Error::invalid(format!(
                "the device assignment has {} devices for {partitions} partitions",
                assignment.len()
            )));
        }
        if let Some(id) = assignment.iter().find(|id| !devices.contains(id)) {
            return Err(Error::invalid(format!(
                "the device assignment names unknown device {id}"
            )));
        }
        let meshes = meshes(text)?;
        let name = text
            .split_once("module @")
            .and_then(|(_, r)| r.split([' ', '{']).next())
            .unwrap_or("main")
            .to_string();
        let start = text
            .find("@main(")
            .ok_or_else(|| Error::invalid("the program has no @main"))?
            + "@main".len();
        let (params_text, rest) = group(&text[start..], '(', ')')?;
        let rest = rest.trim_start();
        let rest = rest
            .strip_prefix("->")
            .ok_or_else(|| Error::invalid("@main has no result list"))?
            .trim_start();
        let results_text = if rest.starts_with('(') {
            group(rest, '(', ')')?.0
        } else {
            rest.split('{').next().unwrap_or("").trim()
        };
        let value = |item: &str| value(item, &meshes, partitions);
        let params = split_top(params_text)
            .iter()
            .map(|p| value(p))
            .collect::<Result<Vec<_>>>()?;
        let results = split_top(results_text)
            .iter()
            .map(|r| value(r))
            .collect::<Result<Vec<_>>>()?;
        Ok(Program {
            name,
            params,
            results,
            assignment,
            text: text.to_string(),
            options: options.to_vec(),
        })
    }
}

/// The axis sizes of each `sdy.mesh @NAME = <["a"=2, "b"=4]...>`.
fn meshes(text: &str) -> Result<HashMap<String, Vec<(String, i64)>>> {
    let mut out = HashMap::new();
    for (_, rest) in text
        .match_indices("sdy.mesh @")
        .map(|(i, _)| text.split_at(i + 10))
    {
        let (name, body) = rest
            .split_once('=')
            .ok_or_else(|| Error::invalid("malformed sdy.mesh"))?;
        let axes_text = body
            .split_once('[')
            .and_then(|(_, r)| r.split_once(']'))
            .map(|(a, _)| a)
            .ok_or_else(|| Error::invalid("malformed sdy.mesh axes"))?;
        let mut axes = Vec::new();
        for part in axes_text.split(',').filter(|p| !p.trim().is_empty()) {
            let (axis, size) = part
                .split_once('=')
                .ok_or_else(|| Error::invalid(format!("malformed mesh axis {part:?}")))?;
            let size = size
                .trim()
                .parse()
                .map_err(|_| Error::invalid(format!("malformed mesh axis {part:?}")))?;
            axes.push((axis.trim().trim_matches('"').to_string(), size));
        }
        out.insert(name.trim().to_string(), axes);
    }
    Ok(out)
}

/// One `%arg0: tensor<...> {attrs}` or `tensor<...> {attrs}` of the signature.
fn value(
    item: &str,
    meshes: &HashMap<String, Vec<(String, i64)>>,
    partitions: usize,
) -> Result<Value> {
    let ty = item
        .find("tensor<")
        .map(|i| &item[i + "tensor".len()..])
        .ok_or_else(|| Error::invalid(format!("not a tensor: {item}")))?;
    let (body, attrs) = group(ty, '<', '>')?;
    let mut parts: Vec<&str> = body.split('x').collect();
    let elem = parts.pop().unwrap_or("").trim();
    let dtype = TYPES
        .iter()
        .find(|t| t.0 == elem)
        .map(|t| t.1)
        .ok_or_else(|| Error::invalid(format!("unknown element type {elem}")))?;
    let dims = parts
        .iter()
        .map(|d| d.trim().parse::<i64>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| Error::invalid(format!("dynamic or malformed shape in {item}")))?;
    if attrs.contains("mhlo.sharding") {
        return Err(Error::unimplemented(
            "the test plugin reads Shardy shardings only",
        ));
    }
    let mut local_dims = dims.clone();
    if let (Some(at), true) = (attrs.find("#sdy.sharding<@"), partitions > 1) {
        let (inner, _) = group(&attrs[at + "#sdy.sharding".len()..], '<', '>')?;
        let (mesh, dims_text) = inner
            .trim_start_matches('@')
            .split_once(',')
            .ok_or_else(|| Error::invalid(format!("malformed sharding in {item}")))?;
        let axes = meshes
            .get(mesh.trim())
            .ok_or_else(|| Error::invalid(format!("unknown mesh @{}", mesh.trim())))?;
        let (list, _) = group(dims_text.trim_start(), '[', ']')?;
        for (d, spec) in split_top(list).iter().enumerate() {
            let (names, _) = group(spec.trim(), '{', '}')?;
            let parts: i64 = names
                .split(',')
                .map(|n| n.trim().trim_matches('"'))
                .filter(|n| !n.is_empty())
                .map(|n| axes.iter().find(|(a, _)| a == n).map_or(1, |(_, s)| *s))
                .product();
            let size = local_dims
                .get_mut(d)
                .ok_or_else(|| Error::invalid(format!("sharding of rank {} on {item}", d + 1)))?;
            if *size % parts != 0 {
                return Err(Error::invalid(format!(
                    "dimension {d} of {item} does not split {parts} ways"
                )));
            }
            *size /= parts;
        }
    }
    let alias = attrs
        .split_once("tf.aliasing_output = ")
        .and_then(|(_, r)| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok());
    Ok(Value {
        dtype,
        dims,
        local_dims,
        alias,
    })
}

/// Splits `s`, which starts with `open`, at its matching `close`: (inside, after).
fn group(s: &str, open: char, close: char) -> Result<(&str, &str)> {
    let mut depth = 0usize;
    let mut in_string = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_string = !in_string,
            _ if in_string => {}
            c if c == open => depth += 1,
            c if c == close => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Ok((&s[open.len_utf8()..i], &s[i + 1..]));
                }
            }
            _ => {}
        }
    }
    Err(Error::invalid(format!(
        "unbalanced {open}{close} in {s:.60}"
    )))
}

/// Splits a list at its top-level commas (outside brackets and strings).
fn split_top(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start, mut in_string) = (Vec::new(), 0i32, 0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_string = !in_string,
            _ if in_string => {}
            '(' | '[' | '{' | '<' => depth += 1,
            ')' | ']' | '}' | '>' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.retain(|p| !p.trim().is_empty());
    out
}

/// Reads `CompileOptionsProto`: the partition count and the device assignment.
fn read_options(bytes: &[u8]) -> Result<(usize, Option<Vec<i64>>)> {
    let mut partitions = 1;
    let mut assignment = None;
    for (field, v) in fields(bytes)? {
        if let (3, Field::Bytes(build)) = (field, v) {
            for (f, v) in fields(build)? {
                match (f, v) {
                    (5, Field::Int(n)) => partitions = n.max(1) as usize,
                    (9, Field::Bytes(da)) => {
                        let mut ids = Vec::new();
                        for (f, v) in fields(da)? {
                            if let (3, Field::Bytes(comp)) = (f, v) {
                                for (f, v) in fields(comp)? {
                                    match (f, v) {
                                        (1, Field::Bytes(packed)) => ids.extend(varints(packed)?),
                                        (1, Field::Int(id)) => ids.push(id as i64),
                                        _ => {}
                                    }
                                }
                            }
                        }
                        assignment = Some(ids);
                    }
                    _ => {}
                }
            }
        }
    }
    Ok((partitions, assignment))
}

enum Field<'a> {
    Int(u64),
    Bytes(&'a [u8]),
}

fn varint(b: &[u8], at: &mut usize) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b
            .get(*at)
            .ok_or_else(|| Error::invalid("truncated compile options"))?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(v);
        }
    }
    Err(Error::invalid("malformed varint in compile options"))
}

fn varints(b: &[u8]) -> Result<Vec<i64>> {
    let (mut at, mut out) = (0, Vec::new());
    while at < b.len() {
        out.push(varint(b, &mut at)? as i64);
    }
    Ok(out)
}

/// The fields of a protobuf message (varints and length-delimited; others are skipped).
fn fields(b: &[u8]) -> Result<Vec<(u64, Field<'_>)>> {
    let (mut at, mut out) = (0, Vec::new());
    while at < b.len() {
        let key = varint(b, &mut at)?;
        match key & 7 {
            0 => out.push((key >> 3, Field::Int(varint(b, &mut at)?))),
            1 => at += 8,
            2 => {
                let len = varint(b, &mut at)? as usize;
                let end = at
                    .checked_add(len)
                    .filter(|e| *e <= b.len())
                    .ok_or_else(|| Error::invalid("truncated compile options"))?;
                out.push((key >> 3, Field::Bytes(&b[at..end])));
                at = end;
            }
            5 => at += 4,
            _ => return Err(Error::invalid("malformed compile options")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"module @jit_update attributes {mhlo.num_partitions = 8 : i32, mhlo.num_replicas = 1 : i32} {
  sdy.mesh @mesh = <["data"=4, "model"=2]>
  func.func public @main(%arg0: tensor<8x6xf32> {tf.aliasing_output = 1 : i32, sdy.sharding = #sdy.sharding<@mesh, [{"data"}, {"model"}]>}, %arg1: tensor<ui32> {sdy.sharding = #sdy.sharding<@mesh, []>}) -> (tensor<f32> {jax.result_info = "a, (b)", sdy.sharding = #sdy.sharding<@mesh, []>}, tensor<8x6xf32> {jax.result_info = "w", sdy.sharding = #sdy.sharding<@mesh, [{"data", "model"}, {}]>}) {
    return %0, %arg0 : tensor<f32>, tensor<8x6xf32>
  }
}"#;

    /// CompileOptionsProto{executable_build_options{num_partitions=8,
    /// device_assignment{computation_devices=[{ids=[7]}, {ids=[6]}, ...]}}}, by hand.
    fn options() -> Vec<u8> {
        let mut da = Vec::new();
        for id in (0..8u8).rev() {
            da.extend_from_slice(&[0x1a, 3, 0x0a, 1, id]);
        }
        let mut build = vec![0x28, 8, 0x4a, da.len() as u8];
        build.extend_from_slice(&da);
        let mut out = vec![0x1a, build.len() as u8];
        out.extend_from_slice(&build);
        out
    }

    #[test]
    fn reads_types_shardings_donation_and_assignment() {
        let devices: Vec<i64> = (0..8).collect();
        let p = Program::parse(TEXT, &options(), &devices).unwrap();
        assert_eq!(p.name, "jit_update");
        assert_eq!(p.assignment, vec![7, 6, 5, 4, 3, 2, 1, 0]);
        assert_eq!(p.params.len(), 2);
        assert_eq!(p.params[0].local_dims, vec![2, 3]);
        assert_eq!(p.params[0].alias, Some(1));
        assert_eq!(p.params[1].dtype, sys::PJRT_Buffer_Type_U32);
        assert_eq!(p.results.len(), 2);
        assert_eq!(p.results[0].local_dims, Vec::<i64>::new());
        assert_eq!(p.results[1].local_dims, vec![1, 6]);
    }

    #[test]
    fn unpartitioned_programs_use_the_first_device() {
        let p = Program::parse(
            "func.func public @main(%x: tensor<3xf32>) -> tensor<3xf32> {",
            &[],
            &[4, 5],
        )
        .unwrap();
        assert_eq!(p.assignment, vec![4]);
        assert_eq!(p.results[0].local_dims, vec![3]);
    }
}

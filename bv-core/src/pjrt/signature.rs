//! The parameter types of a StableHLO module's `@main`, read from its text so that calls
//! with the wrong arguments fail in Rust with names and shapes, not deep in the plugin.

use std::fmt;

use crate::DType;

/// A ranked tensor type: element type and dimensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorType {
    pub dtype: DType,
    pub dims: Vec<i64>,
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:?}", self.dtype, self.dims)
    }
}

impl TensorType {
    /// Parses `tensor<2x3xf32>` (or `tensor<f32>`).
    pub fn parse(text: &str) -> Option<TensorType> {
        let body = text.trim().strip_prefix("tensor<")?.strip_suffix('>')?;
        let body = body.split(',').next()?.trim();
        let mut parts: Vec<&str> = body.split('x').collect();
        let elem = parts.pop()?;
        let dtype = DType::ALL.into_iter().find(|d| d.mlir_name() == elem)?;
        let dims = parts
            .iter()
            .map(|p| p.parse::<i64>().ok())
            .collect::<Option<Vec<_>>>()?;
        Some(TensorType { dtype, dims })
    }
}

/// The parameters of `@main`, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    pub params: Vec<TensorType>,
}

impl Signature {
    /// Reads the parameter list of `func.func ... @main(...)`.
    pub fn parse(mlir: &str) -> Result<Signature, String> {
        let start = mlir.find("@main(").ok_or("no @main function")? + "@main(".len();
        let mut depth = 0usize;
        let mut params = Vec::new();
        let mut current = String::new();
        let (mut in_string, mut escaped) = (false, false);
        for c in mlir[start..].chars() {
            if in_string {
                in_string = escaped || c != '"';
                escaped = !escaped && c == '\\';
                current.push(c);
                continue;
            }
            match c {
                '"' => in_string = true,
                '(' | '<' | '{' | '[' => depth += 1,
                ')' if depth == 0 => {
                    push_param(&current, &mut params)?;
                    return Ok(Signature { params });
                }
                ')' | '>' | '}' | ']' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => {
                    push_param(&current, &mut params)?;
                    current.clear();
                    continue;
                }
                _ => {}
            }
            current.push(c);
        }
        Err("unterminated @main parameter list".into())
    }
}

fn push_param(text: &str, params: &mut Vec<TensorType>) -> Result<(), String> {
    if text.trim().is_empty() {
        return Ok(());
    }
    let ty = text.find("tensor<").ok_or("parameter is not a tensor")?;
    let rest = &text[ty..];
    let mut depth = 0usize;
    let end = rest
        .char_indices()
        .find_map(|(i, c)| match c {
            '<' => {
                depth += 1;
                None
            }
            '>' => {
                depth -= 1;
                (depth == 0).then_some(i)
            }
            _ => None,
        })
        .ok_or("unterminated tensor type")?;
    let t = TensorType::parse(&rest[..=end])
        .ok_or_else(|| format!("unknown type {}", &rest[..=end]))?;
    params.push(t);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_params_with_attributes() {
        let s = Signature::parse(
            "module {\n func.func public @main(%arg0: tensor<8x4xf32> {mhlo.sharding = \"{devices=[8,1]<=[8]}\"}, %b: tensor<i1>, %c: tensor<0x3xbf16>) -> (tensor<f32>) {",
        )
        .unwrap();
        assert_eq!(
            s.params,
            vec![
                TensorType {
                    dtype: DType::F32,
                    dims: vec![8, 4]
                },
                TensorType {
                    dtype: DType::Bool,
                    dims: vec![]
                },
                TensorType {
                    dtype: DType::BF16,
                    dims: vec![0, 3]
                },
            ]
        );
    }

    #[test]
    fn no_params() {
        assert!(Signature::parse("func.func @main() -> tensor<f32> {")
            .unwrap()
            .params
            .is_empty());
    }
}

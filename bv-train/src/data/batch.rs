//! Stacking examples into a batch (a leading batch dimension on every value).

use super::value::{Array, Example, Value};

fn stack<T: Clone>(parts: &[&Array<T>]) -> Array<T> {
    let mut shape = vec![parts.len()];
    shape.extend_from_slice(&parts[0].shape);
    let mut data = Vec::with_capacity(parts.len() * parts[0].data.len());
    for a in parts {
        data.extend_from_slice(&a.data);
    }
    Array::new(shape, data)
}

/// Stacks examples that share keys, dtypes and shapes; the error names the first mismatch.
pub fn stack_examples(examples: &[Example]) -> Result<Example, String> {
    let first = examples.first().ok_or("cannot batch zero examples")?;
    for (i, ex) in examples.iter().enumerate().skip(1) {
        if ex.len() != first.len() || !ex.keys().eq(first.keys()) {
            return Err(format!(
                "example {i} of the batch has keys {:?}, example 0 has {:?}; use keep(...) to \
                 select the same keys",
                ex.keys().collect::<Vec<_>>(),
                first.keys().collect::<Vec<_>>()
            ));
        }
        for (k, v) in ex {
            let f = &first[k];
            if v.dtype() != f.dtype() || v.shape() != f.shape() {
                return Err(format!(
                    "'{k}' is {} {:?} in example {i} but {} {:?} in example 0; resize or crop \
                     to a fixed size before batching",
                    v.dtype(),
                    v.shape(),
                    f.dtype(),
                    f.shape()
                ));
            }
        }
    }
    let mut out = Example::new();
    for k in first.keys() {
        macro_rules! gather {
            ($variant:ident) => {{
                let parts: Vec<_> = examples
                    .iter()
                    .map(|e| match &e[k] {
                        Value::$variant(a) => a,
                        _ => unreachable!("dtypes checked above"),
                    })
                    .collect();
                Value::$variant(stack(&parts))
            }};
        }
        let v = match &first[k] {
            Value::U8(_) => gather!(U8),
            Value::I64(_) => gather!(I64),
            Value::F32(_) => gather!(F32),
            Value::Bytes(_) => gather!(Bytes),
        };
        out.insert(k.clone(), v);
    }
    Ok(out)
}

//! Reading the numbers a JAX script committed beside an example, and comparing with them.

use serde_json::Value;

/// Every number of a JSON value (nested lists flattened in order) as `f32`.
pub fn floats(v: &Value) -> Vec<f32> {
    match v {
        Value::Array(a) => a.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap_or(f64::NAN) as f32],
        _ => Vec::new(),
    }
}

/// The largest difference of `ours` from `jax`, relative to `1 + |jax|` (infinite when
/// the lengths differ).
pub fn worst(ours: &[f32], jax: &[f32]) -> f64 {
    if ours.len() != jax.len() {
        return f64::INFINITY;
    }
    ours.iter()
        .zip(jax)
        .map(|(a, b)| f64::from((a - b).abs() / (1.0 + b.abs())))
        .fold(0.0, f64::max)
}

/// Prints each named largest difference from JAX's numbers; the error names the first one
/// above `tolerance`.
pub fn report(differences: &[(&str, f64)], tolerance: f64) -> Result<(), String> {
    for &(name, worst) in differences {
        println!("{name}: largest difference from JAX {worst:.2e}");
        if worst > tolerance {
            return Err(format!("{name} differs from JAX's by {worst:e}"));
        }
    }
    Ok(())
}

/// The largest difference of each of `ours` from the JSON entry its key names (`a/b` reaches
/// into nested objects), as [`worst`] measures it.
pub fn differences(
    keys: &[&'static str],
    ours: &[Vec<f32>],
    r: &Value,
) -> Vec<(&'static str, f64)> {
    keys.iter()
        .zip(ours)
        .map(|(k, o)| (*k, worst(o, &floats(k.split('/').fold(r, |v, p| &v[p])))))
        .collect()
}

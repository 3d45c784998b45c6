//! Trace, lower, compile and run a small function with `jit`.
//!
//! Run: `cargo run -p bv-core --example jit`
//!
//! Expected output (the CPU plugin is fetched on first use; compile time varies):
//! ```text
//! StableHLO:
//! module @jit_predict attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {
//! ...
//! probabilities: [[0.09003057, 0.24472848, 0.66524094], [0.33333334, 0.33333334, 0.33333334]]
//! compiles: 1, cache hits: 1
//! ```

use bv_core::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let predict =
        jit(|(x, w): (Tensor, Tensor)| np::softmax(&np::matmul(&x, &w), -1)).named("predict");
    let text = predict
        .lower(&(Spec::new([2, 2], DType::F32), Spec::new([2, 3], DType::F32)))?
        .text;
    println!("StableHLO:\n{text}");
    let x = Array::from_slice(&[1f32, 0.0, 0.0, 0.0], &[2, 2])?;
    let w = Array::from_slice(&[0f32, 1.0, 2.0, 5.0, 5.0, 5.0], &[2, 3])?;
    predict.call(&(x.clone(), w.clone()))?;
    let p = predict.call(&(x, w))?.to_ndarray::<f32>()?;
    let rows: Vec<Vec<f32>> = p
        .outer_iter()
        .map(|r| r.iter().copied().collect())
        .collect();
    println!("probabilities: {rows:?}");
    let s = predict.stats();
    println!("compiles: {}, cache hits: {}", s.compiles, s.cache_hits);
    Ok(())
}

//! Initializes big_vision's ViT-mu/8 from a seed exactly as big_vision's `train.py` does
//! (`rng_init` from `PRNGKey(0)`, Flax's per-parameter keys), runs it on a 32x32 image and
//! prints parameter names, the parameter count and the logits.
//!
//! ```text
//! cargo run -p bv-nn --example vit_forward
//! ```
//!
//! Expected output (values are bit-identical to Flax's `model.init` parameters; the head is
//! zero-initialized, so every logit is 0):
//!
//! ```text
//! 39 parameters, 32490 values
//! embedding/kernel [8, 8, 3, 32]
//! ...
//! head/bias [10]
//! logits [2, 10]: [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
//! ```

use bv_core::prelude::*;
use bv_nn::models::vit::Vit;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let vit = Vit {
        depth: 2,
        ..Vit::from_variant("mu/8", Some(10)).ok_or("unknown variant")?
    };
    let (_, rng_init) = Key::from_seed(0).split2();
    let forward = jit(move |(key, x): (Tensor, Tensor)| {
        let (_, params) = bv_nn::init(&vit, &key, (x.clone(), false));
        let (logits, _) = bv_nn::apply(&vit, &params, &[], (x, false));
        (params, logits)
    });
    let image: Vec<f32> = (0..2 * 32 * 32 * 3).map(|i| (i % 7) as f32 / 7.0).collect();
    let image = Array::from_slice(&image, &[2, 32, 32, 3])?;
    let (params, logits) = forward.call(&(rng_init.to_array()?, image))?;
    let values: usize = params
        .iter()
        .map(|(_, a)| a.shape().iter().product::<usize>())
        .sum();
    println!("{} parameters, {values} values", params.len());
    let names: Vec<(&str, &Array)> = params.iter().collect();
    for (i, (name, a)) in names.iter().enumerate() {
        if i < 1 || i + 1 == names.len() {
            println!("{name} {:?}", a.shape());
        } else if i == 1 {
            println!("...");
        }
    }
    let first = logits.to_vec::<f32>()?;
    println!("logits {:?}: {:?}", logits.shape(), &first[..10]);
    Ok(())
}

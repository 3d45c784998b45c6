//! Random pp ops: deterministic per seed, and inception crops within big_vision's ranges.

mod common;

use bv_train::data::{Array, Example, Value};
use bv_train::pp::decode::{decode_image, decode_jpeg, Dct};
use bv_train::pp::ops_image::CropDist;
use bv_train::pp::{Pipeline, Rng, OPS};

fn photo() -> Vec<u8> {
    std::fs::read(common::golden_pp_dir().join("inputs/chelsea_q90.jpg")).unwrap()
}

fn run(spec: &str, seed: u64, index: u64) -> Value {
    let mut ex = Example::new();
    ex.insert("image".into(), Value::Bytes(Array::scalar(photo())));
    Pipeline::build(spec, OPS)
        .unwrap()
        .apply(&mut ex, &mut Rng::new(seed, index))
        .unwrap();
    ex.remove("image").unwrap()
}

#[test]
fn random_ops_are_deterministic_per_seed() {
    for spec in [
        "decode_jpeg_and_inception_crop(64)|flip_lr",
        "decode|inception_crop(64)",
        "decode|random_crop(50)",
        "decode|resize(64)|randaug(2, 10)",
    ] {
        assert_eq!(run(spec, 1, 5), run(spec, 1, 5), "{spec}");
        let distinct = (0..6)
            .map(|i| format!("{:?}", run(spec, 1, i)))
            .collect::<std::collections::HashSet<_>>();
        assert!(
            distinct.len() >= 4,
            "{spec}: only {} distinct outputs",
            distinct.len()
        );
    }
}

#[test]
fn inception_crop_ranges_match_big_vision() {
    let dist = CropDist {
        area: (0.05, 1.0),
        ratio: (0.75, 1.33),
    };
    let (h, w) = (300, 451);
    let mut rng = Rng::new(3, 0);
    let (mut amin, mut amax, mut rmin, mut rmax) = (1f64, 0f64, 9f64, 0f64);
    for _ in 0..4000 {
        let c = dist.sample(h, w, &mut rng);
        assert!(c.y + c.h <= h && c.x + c.w <= w);
        let area = (c.h * c.w) as f64 / (h * w) as f64;
        let ratio = c.w as f64 / c.h as f64;
        assert!((0.05..=1.0).contains(&area), "area {area}");
        // Width is rounded from height * ratio: allow half a pixel.
        assert!(
            ratio >= 0.75 - 0.5 / c.h as f64 && ratio <= 1.33 + 0.5 / c.h as f64,
            "ratio {ratio}"
        );
        (amin, amax, rmin, rmax) = (
            amin.min(area),
            amax.max(area),
            rmin.min(ratio),
            rmax.max(ratio),
        );
    }
    assert!(amin < 0.06 && amax > 0.6, "areas {amin}..{amax}");
    assert!(rmin < 0.77 && rmax > 1.3, "ratios {rmin}..{rmax}");
}

#[test]
fn fused_jpeg_crop_is_close_to_decode_then_crop() {
    let bytes = photo();
    let full = decode_image(&bytes, 3, Dct::Fast).unwrap();
    let dist = CropDist {
        area: (0.05, 1.0),
        ratio: (0.75, 1.33),
    };
    let mut rng = Rng::new(11, 0);
    for _ in 0..30 {
        let win = dist.sample(300, 451, &mut rng);
        let fused = decode_jpeg(&bytes, 3, Dct::Fast, Some(win)).unwrap();
        let mut want = Vec::new();
        for y in win.y..win.y + win.h {
            want.extend_from_slice(
                &full.data[(y * 451 + win.x) * 3..(y * 451 + win.x + win.w) * 3],
            );
        }
        assert_eq!(fused.shape, [win.h, win.w, 3]);
        // libjpeg's skip/crop path (TensorFlow's DecodeAndCropJpeg) upsamples chroma at the
        // window edge from fewer neighbours; the golden README's JPEG tolerance applies.
        let diffs: Vec<u8> = fused
            .data
            .iter()
            .zip(&want)
            .map(|(a, b)| a.abs_diff(*b))
            .collect();
        let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
        let max = *diffs.iter().max().unwrap();
        assert!(
            mean <= 1.5 && max <= 16,
            "window {win:?}: mean {mean} max {max}"
        );
    }
}

#[test]
fn flip_lr_mirrors_about_half_the_time() {
    let plain = run("decode|central_crop(32)", 0, 0);
    let Value::U8(p) = &plain else { panic!() };
    let mut mirrored = p.clone();
    for row in mirrored.data.chunks_exact_mut(32 * 3) {
        let px: Vec<[u8; 3]> = row
            .chunks_exact(3)
            .rev()
            .map(|c| [c[0], c[1], c[2]])
            .collect();
        row.copy_from_slice(&px.concat());
    }
    let flips = (0..200)
        .filter(|&i| {
            let got = run("decode|central_crop(32)|flip_lr", 0, i);
            assert!(got == plain || got == Value::U8(mirrored.clone()));
            got != plain
        })
        .count();
    assert!((70..=130).contains(&flips), "{flips} of 200 flipped");
}

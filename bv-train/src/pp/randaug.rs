//! `randaug(num_layers=2, magnitude=10)`: big_vision's RandAugment
//! (`big_vision/pp/autoaugment.py`, from TF's EfficientNet code).
//!
//! Each layer picks one of 16 ops uniformly and always applies it at `magnitude` (out of 10),
//! filling uncovered pixels with 128. Op arithmetic follows the TF code, including its
//! quirks (contrast's "mean" is `num_pixels / 256`; blends truncate to uint8).

use super::ops_image::hwc;
use super::registry::{Args, ValueOp};
use super::rng::Rng;
use crate::data::{Array, Value};

/// The 16 operations, in big_vision's order.
pub const OPS: [&str; 16] = [
    "AutoContrast",
    "Equalize",
    "Invert",
    "Rotate",
    "Posterize",
    "Solarize",
    "Color",
    "Contrast",
    "Brightness",
    "Sharpness",
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Cutout",
    "SolarizeAdd",
];

const MAX_LEVEL: f32 = 10.0;
const FILL: u8 = 128;

/// The RandAugment op.
pub struct RandAug {
    layers: usize,
    magnitude: f32,
}

impl RandAug {
    /// Factory.
    pub fn make(a: &Args) -> Result<Box<dyn ValueOp>, String> {
        let layers = a.int("num_layers")?.unwrap_or(2);
        let magnitude = a.float("magnitude")?.unwrap_or(10.0);
        if layers < 0 || !(0.0..=30.0).contains(&magnitude) {
            return Err(format!(
                "need num_layers >= 0 and 0 <= magnitude <= 30, got {layers}, {magnitude}"
            ));
        }
        Ok(Box::new(RandAug {
            layers: layers as usize,
            magnitude: magnitude as f32,
        }))
    }
}

impl ValueOp for RandAug {
    fn apply(&self, v: &Value, rng: &mut Rng) -> Result<Value, String> {
        let (_, _, c) = hwc(v)?;
        let Value::U8(img) = v else {
            return Err("randaug needs a uint8 image".into());
        };
        if c != 3 {
            return Err(format!("randaug needs 3 channels, got {c}"));
        }
        let mut img = img.clone();
        for _ in 0..self.layers {
            let op = OPS[rng.below(16) as usize];
            img = apply_op(op, &img, self.magnitude, rng);
        }
        Ok(Value::U8(img))
    }
}

fn negate(x: f32, rng: &mut Rng) -> f32 {
    if rng.coin() {
        -x
    } else {
        x
    }
}

/// Applies one named RandAugment op at `level` (0..10).
pub fn apply_op(op: &str, img: &Array<u8>, level: f32, rng: &mut Rng) -> Array<u8> {
    let enhance = level / MAX_LEVEL * 1.8 + 0.1;
    match op {
        "AutoContrast" => autocontrast(img),
        "Equalize" => equalize(img),
        "Invert" => map(img, |x| 255 - x),
        "Rotate" => {
            let deg = negate(level / MAX_LEVEL * 30.0, rng);
            rotate(img, deg)
        }
        "Posterize" => {
            let shift = 8 - (level / MAX_LEVEL * 4.0) as u32;
            map(img, |x| ((u32::from(x) >> shift) << shift) as u8)
        }
        "Solarize" => {
            let t = (level / MAX_LEVEL * 256.0) as i32;
            map(img, |x| if i32::from(x) < t { x } else { 255 - x })
        }
        "SolarizeAdd" => {
            let add = (level / MAX_LEVEL * 110.0) as i32;
            map(img, |x| {
                if x < 128 {
                    (i32::from(x) + add).clamp(0, 255) as u8
                } else {
                    x
                }
            })
        }
        "Color" => blend(&gray3(img), img, enhance),
        "Contrast" => {
            // TF's code: the histogram sums to the pixel count, so this "mean" is count / 256.
            let mean = ((img.data.len() / 3) as f32 / 256.0).clamp(0.0, 255.0) as u8;
            let deg = Array::new(img.shape.clone(), vec![mean; img.data.len()]);
            blend(&deg, img, enhance)
        }
        "Brightness" => blend(
            &Array::new(img.shape.clone(), vec![0; img.data.len()]),
            img,
            enhance,
        ),
        "Sharpness" => blend(&smooth(img), img, enhance),
        "ShearX" => {
            let s = negate(level / MAX_LEVEL * 0.3, rng);
            transform(img, [1.0, s, 0.0, 0.0, 1.0, 0.0])
        }
        "ShearY" => {
            let s = negate(level / MAX_LEVEL * 0.3, rng);
            transform(img, [1.0, 0.0, 0.0, s, 1.0, 0.0])
        }
        "TranslateX" => {
            let p = negate(level / MAX_LEVEL * 100.0, rng);
            transform(img, [1.0, 0.0, p, 0.0, 1.0, 0.0])
        }
        "TranslateY" => {
            let p = negate(level / MAX_LEVEL * 100.0, rng);
            transform(img, [1.0, 0.0, 0.0, 0.0, 1.0, p])
        }
        "Cutout" => cutout(img, (level / MAX_LEVEL * 40.0) as usize, rng),
        other => unreachable!("unknown RandAugment op {other}"),
    }
}

fn map(img: &Array<u8>, f: impl Fn(u8) -> u8) -> Array<u8> {
    Array::new(img.shape.clone(), img.data.iter().map(|&x| f(x)).collect())
}

/// TF's `blend`: `image1 + factor * (image2 - image1)` in float32, cast to uint8 (clipped
/// unless the factor is in (0, 1)).
fn blend(a: &Array<u8>, b: &Array<u8>, factor: f32) -> Array<u8> {
    if factor == 0.0 {
        return a.clone();
    }
    if factor == 1.0 {
        return b.clone();
    }
    let data = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(&x, &y)| {
            let (x, y) = (f32::from(x), f32::from(y));
            (x + factor * (y - x)).clamp(0.0, 255.0) as u8
        })
        .collect();
    Array::new(a.shape.clone(), data)
}

/// `tf.image.rgb_to_grayscale` then back to three channels.
fn gray3(img: &Array<u8>) -> Array<u8> {
    let data = img
        .data
        .chunks_exact(3)
        .flat_map(|p| {
            let f = |x: u8| f32::from(x) / 255.0;
            let g = f(p[0]) * 0.2989 + f(p[1]) * 0.587 + f(p[2]) * 0.114;
            let g = (g * 255.5).clamp(0.0, 255.0) as u8;
            [g, g, g]
        })
        .collect();
    Array::new(img.shape.clone(), data)
}

fn autocontrast(img: &Array<u8>) -> Array<u8> {
    let mut out = img.clone();
    for c in 0..3 {
        let vals = img.data.iter().skip(c).step_by(3);
        let (lo, hi) = vals.fold((255u8, 0u8), |(l, h), &x| (l.min(x), h.max(x)));
        if hi > lo {
            let scale = 255.0 / (f32::from(hi) - f32::from(lo));
            let offset = -f32::from(lo) * scale;
            for x in out.data.iter_mut().skip(c).step_by(3) {
                *x = (f32::from(*x) * scale + offset).clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

fn equalize(img: &Array<u8>) -> Array<u8> {
    let mut out = img.clone();
    for c in 0..3 {
        let mut hist = [0i64; 256];
        img.data
            .iter()
            .skip(c)
            .step_by(3)
            .for_each(|&x| hist[x as usize] += 1);
        let last = hist.iter().rev().find(|&&h| h != 0).copied().unwrap_or(0);
        let step = (hist.iter().sum::<i64>() - last) / 255;
        if step == 0 {
            continue;
        }
        let mut lut = [0u8; 256];
        let mut cum = 0i64;
        for i in 0..256 {
            // lut = concat([0], ((cumsum + step // 2) // step)[:-1]), clipped.
            lut[i] = if i == 0 {
                0
            } else {
                ((cum + step / 2) / step).clamp(0, 255) as u8
            };
            cum += hist[i];
        }
        for x in out.data.iter_mut().skip(c).step_by(3) {
            *x = lut[*x as usize];
        }
    }
    out
}

/// The 3x3 smoothing kernel `[[1,1,1],[1,5,1],[1,1,1]] / 13` on the interior; borders kept.
fn smooth(img: &Array<u8>) -> Array<u8> {
    let (h, w) = (img.shape[0], img.shape[1]);
    let mut out = img.clone();
    if h < 3 || w < 3 {
        return out;
    }
    let px = |y: usize, x: usize, c: usize| f32::from(img.data[(y * w + x) * 3 + c]);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            for c in 0..3 {
                let mut s = 0f32;
                for dy in 0..3 {
                    for dx in 0..3 {
                        let k = if dy == 1 && dx == 1 { 5.0 } else { 1.0 } / 13.0;
                        s += px(y + dy - 1, x + dx - 1, c) * k;
                    }
                }
                out.data[(y * w + x) * 3 + c] = s.clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

/// A projective transform with nearest sampling: output (x, y) reads input
/// `(a0 x + a1 y + a2, b0 x + b1 y + b2)`; outside pixels become [`FILL`].
fn transform(img: &Array<u8>, t: [f32; 6]) -> Array<u8> {
    let (h, w) = (img.shape[0], img.shape[1]);
    let mut data = Vec::with_capacity(img.data.len());
    for y in 0..h {
        for x in 0..w {
            let (xf, yf) = (x as f32, y as f32);
            let sx = (t[0] * xf + t[1] * yf + t[2]).round();
            let sy = (t[3] * xf + t[4] * yf + t[5]).round();
            if sx >= 0.0 && sy >= 0.0 && (sx as usize) < w && (sy as usize) < h {
                let i = (sy as usize * w + sx as usize) * 3;
                data.extend_from_slice(&img.data[i..i + 3]);
            } else {
                data.extend_from_slice(&[FILL; 3]);
            }
        }
    }
    Array::new(img.shape.clone(), data)
}

/// Rotation by `deg` degrees (counter-clockwise) about the center, as `tfa.image.rotate`.
fn rotate(img: &Array<u8>, deg: f32) -> Array<u8> {
    let (h, w) = (img.shape[0] as f32, img.shape[1] as f32);
    let r = deg.to_radians();
    let (s, c) = r.sin_cos();
    let x_off = ((w - 1.0) - (c * (w - 1.0) - s * (h - 1.0))) / 2.0;
    let y_off = ((h - 1.0) - (s * (w - 1.0) + c * (h - 1.0))) / 2.0;
    transform(img, [c, -s, x_off, s, c, y_off])
}

fn cutout(img: &Array<u8>, pad: usize, rng: &mut Rng) -> Array<u8> {
    let (h, w) = (img.shape[0], img.shape[1]);
    let cy = rng.below(h as u64) as usize;
    let cx = rng.below(w as u64) as usize;
    let (y0, y1) = (cy.saturating_sub(pad), (cy + pad).min(h));
    let (x0, x1) = (cx.saturating_sub(pad), (cx + pad).min(w));
    let mut out = img.clone();
    for y in y0..y1 {
        out.data[(y * w + x0) * 3..(y * w + x1) * 3].fill(FILL);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img() -> Array<u8> {
        Array::new(vec![4, 5, 3], (0..60).map(|i| (i * 4) as u8).collect())
    }

    #[test]
    fn every_op_keeps_the_shape_and_zero_level_geometry_is_identity() {
        let mut rng = Rng::new(0, 0);
        for op in OPS {
            assert_eq!(
                apply_op(op, &img(), 10.0, &mut rng).shape,
                [4, 5, 3],
                "{op}"
            );
        }
        for op in ["Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"] {
            assert_eq!(apply_op(op, &img(), 0.0, &mut rng), img(), "{op}");
        }
    }

    #[test]
    fn simple_ops_by_hand() {
        let mut rng = Rng::new(0, 0);
        let i = img();
        assert_eq!(apply_op("Invert", &i, 10.0, &mut rng).data[1], 251);
        // Solarize at level 5: threshold 128; 132 -> 123.
        assert_eq!(apply_op("Solarize", &i, 5.0, &mut rng).data[33], 255 - 132);
        // Posterize at level 10 keeps 4 bits: 236 -> 224.
        assert_eq!(apply_op("Posterize", &i, 10.0, &mut rng).data[59], 224);
        // Brightness factor 0.1 at level 0: 200 * 0.1 = 20.
        assert_eq!(apply_op("Brightness", &i, 0.0, &mut rng).data[50], 20);
        // TranslateX by +/-100 px moves everything out of a 5-wide image.
        assert!(apply_op("TranslateX", &i, 10.0, &mut rng)
            .data
            .iter()
            .all(|&x| x == FILL));
    }
}

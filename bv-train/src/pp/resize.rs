//! TensorFlow's resize kernels, in float32 and in TensorFlow's order of operations, so that the
//! results (after big_vision's truncating cast to uint8) equal TensorFlow's bit for bit.

use crate::data::Array;

/// The interpolation method of `resize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `ResizeBilinear(half_pixel_centers=True)`.
    Bilinear,
    /// `ResizeNearestNeighbor(half_pixel_centers=True)`.
    Nearest,
    /// `ResizeArea` (box filter; `antialias` makes no difference).
    Area,
}

impl Method {
    /// Parses big_vision's method names.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "bilinear" => Ok(Method::Bilinear),
            "nearest" => Ok(Method::Nearest),
            "area" => Ok(Method::Area),
            other => Err(format!(
                "method '{other}' is not supported; use 'bilinear', 'nearest' or 'area'"
            )),
        }
    }
}

/// Pixel types the kernels read.
pub trait Pixel: Copy + Send + Sync {
    /// The value as float32.
    fn f(self) -> f32;
}

impl Pixel for u8 {
    fn f(self) -> f32 {
        f32::from(self)
    }
}

impl Pixel for f32 {
    fn f(self) -> f32 {
        self
    }
}

struct Lerp {
    lo: usize,
    hi: usize,
    t: f32,
}

fn bilinear_weights(out: usize, inp: usize) -> Vec<Lerp> {
    let scale = inp as f32 / out as f32;
    (0..out)
        .map(|o| {
            let x = (o as f32 + 0.5) * scale - 0.5;
            let xf = x.floor();
            Lerp {
                lo: (xf as i64).max(0) as usize,
                hi: (x.ceil() as i64).min(inp as i64 - 1) as usize,
                t: x - xf,
            }
        })
        .collect()
}

/// Bilinear resize of an (H, W, C) image to (`oh`, `ow`, C), float32 results.
pub fn bilinear<T: Pixel>(img: &Array<T>, oh: usize, ow: usize) -> Vec<f32> {
    match img.shape[2] {
        1 => bilinear_c::<T, 1>(img, oh, ow),
        3 => bilinear_c::<T, 3>(img, oh, ow),
        _ => bilinear_any(img, oh, ow),
    }
}

fn bilinear_c<T: Pixel, const C: usize>(img: &Array<T>, oh: usize, ow: usize) -> Vec<f32> {
    let (h, w) = (img.shape[0], img.shape[1]);
    let ys = bilinear_weights(oh, h);
    let xs = bilinear_weights(ow, w);
    let row = w * C;
    let mut out = vec![0f32; oh * ow * C];
    for (y, orow) in ys.iter().zip(out.chunks_exact_mut(ow * C)) {
        let top = &img.data[y.lo * row..(y.lo + 1) * row];
        let bot = &img.data[y.hi * row..(y.hi + 1) * row];
        for (x, o) in xs.iter().zip(orow.chunks_exact_mut(C)) {
            let (l, r) = (x.lo * C, x.hi * C);
            for ch in 0..C {
                let (tl, tr) = (top[l + ch].f(), top[r + ch].f());
                let (bl, br) = (bot[l + ch].f(), bot[r + ch].f());
                let t = tl + (tr - tl) * x.t;
                let b = bl + (br - bl) * x.t;
                o[ch] = t + (b - t) * y.t;
            }
        }
    }
    out
}

fn bilinear_any<T: Pixel>(img: &Array<T>, oh: usize, ow: usize) -> Vec<f32> {
    let (h, w, c) = (img.shape[0], img.shape[1], img.shape[2]);
    let ys = bilinear_weights(oh, h);
    let xs = bilinear_weights(ow, w);
    let d = &img.data;
    let mut out = Vec::with_capacity(oh * ow * c);
    for y in &ys {
        let (top, bot) = (&d[y.lo * w * c..], &d[y.hi * w * c..]);
        for x in &xs {
            for ch in 0..c {
                let tl = top[x.lo * c + ch].f();
                let tr = top[x.hi * c + ch].f();
                let bl = bot[x.lo * c + ch].f();
                let br = bot[x.hi * c + ch].f();
                let t = tl + (tr - tl) * x.t;
                let b = bl + (br - bl) * x.t;
                out.push(t + (b - t) * y.t);
            }
        }
    }
    out
}

/// Nearest-neighbour resize (no arithmetic on values).
pub fn nearest<T: Pixel>(img: &Array<T>, oh: usize, ow: usize) -> Array<T> {
    let (h, w, c) = (img.shape[0], img.shape[1], img.shape[2]);
    let idx = |o: usize, out: usize, inp: usize| {
        let scale = inp as f32 / out as f32;
        (((o as f32 + 0.5) * scale).floor() as usize).min(inp - 1)
    };
    let xs: Vec<usize> = (0..ow).map(|o| idx(o, ow, w)).collect();
    let mut data = Vec::with_capacity(oh * ow * c);
    for oy in 0..oh {
        let row = &img.data[idx(oy, oh, h) * w * c..];
        for &x in &xs {
            data.extend_from_slice(&row[x * c..x * c + c]);
        }
    }
    Array::new(vec![oh, ow, c], data)
}

struct Span {
    start: usize,
    end: usize,
    first: f32,
    last: f32,
}

fn area_spans(out: usize, inp: usize) -> (f32, Vec<Span>) {
    let scale = inp as f32 / out as f32;
    let weight = |v: f32, a: f32, b: f32| {
        if v < a {
            if v + 1.0 > b {
                scale
            } else {
                v + 1.0 - a
            }
        } else if v + 1.0 > b {
            b - v
        } else {
            1.0
        }
    };
    let spans = (0..out)
        .map(|o| {
            let a = o as f32 * scale;
            let b = (o + 1) as f32 * scale;
            let start = a.floor() as usize;
            let end = b.ceil() as usize;
            Span {
                start,
                end,
                first: weight(start as f32, a, b),
                last: weight((end - 1) as f32, a, b),
            }
        })
        .collect();
    (scale, spans)
}

/// TensorFlow's `ResizeArea`, float32 results.
pub fn area<T: Pixel>(img: &Array<T>, oh: usize, ow: usize) -> Vec<f32> {
    let (h, w, c) = (img.shape[0], img.shape[1], img.shape[2]);
    let (sy, ys) = area_spans(oh, h);
    let (sx, xs) = area_spans(ow, w);
    let inv = (1.0f64 / f64::from(sy * sx)) as f32;
    let px =
        |y: usize, x: usize, ch: usize| img.data[(y.min(h - 1) * w + x.min(w - 1)) * c + ch].f();
    let mut out = Vec::with_capacity(oh * ow * c);
    for ys_ in &ys {
        for xs_ in &xs {
            for ch in 0..c {
                let mut sum = 0f32;
                for i in ys_.start..ys_.end {
                    let wy = if i == ys_.start {
                        ys_.first
                    } else if i == ys_.end - 1 {
                        ys_.last
                    } else {
                        1.0
                    };
                    let mut s = px(i, xs_.start, ch) * xs_.first;
                    if xs_.start + 1 != xs_.end {
                        for x in xs_.start + 1..xs_.end - 1 {
                            s += px(i, x, ch);
                        }
                        s += px(i, xs_.end - 1, ch) * xs_.last;
                    }
                    sum += s * wy;
                }
                out.push(sum * inv);
            }
        }
    }
    out
}

/// big_vision's cast back to uint8: clip to [0, 255], then truncate.
pub fn to_u8(v: &[f32]) -> Vec<u8> {
    v.iter().map(|&x| x.clamp(0.0, 255.0) as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_sizes_keep_values() {
        let img = Array::new(vec![2, 3, 1], vec![0u8, 10, 20, 30, 40, 250]);
        assert_eq!(to_u8(&bilinear(&img, 2, 3)), img.data);
        assert_eq!(to_u8(&area(&img, 2, 3)), img.data);
        assert_eq!(nearest(&img, 2, 3), img);
    }

    #[test]
    fn area_downscale_by_two_averages() {
        let img = Array::new(vec![2, 2, 1], vec![0u8, 10, 20, 31]);
        assert_eq!(area(&img, 1, 1), vec![15.25]);
    }
}

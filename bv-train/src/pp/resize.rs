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

/// Element types the kernels write.
pub trait Store: Copy + Send + Sync {
    /// The float32 result as this type.
    fn store(v: f32) -> Self;
}

impl Store for u8 {
    /// big_vision's cast back to uint8: clip to [0, 255], then truncate.
    #[allow(clippy::manual_clamp, reason = "clamp keeps NaN, max maps it to 0")]
    fn store(v: f32) -> u8 {
        // `max`/`min` map NaN to 0.0 too, so the truncation below is always in range; the
        // unchecked conversion vectorizes, `as u8` (saturating) does not.
        let v = v.max(0.0).min(255.0);
        // SAFETY: `v` is finite and in [0, 255].
        unsafe { v.to_int_unchecked::<u8>() }
    }
}

impl Store for f32 {
    fn store(v: f32) -> f32 {
        v
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

/// `out = l + (r - l) * t` per channel, for every output column of one source row.
fn lerp_row<T: Pixel, const C: usize>(xs: &[Lerp], row: &[T], out: &mut [f32]) {
    for (x, o) in xs.iter().zip(out.chunks_exact_mut(C)) {
        let l: &[T; C] = row[x.lo * C..][..C].try_into().expect("C elements");
        let r: &[T; C] = row[x.hi * C..][..C].try_into().expect("C elements");
        for ch in 0..C {
            let (l, r) = (l[ch].f(), r[ch].f());
            o[ch] = l + (r - l) * x.t;
        }
    }
}

/// [`lerp_row`] for 3 channels, 4 lanes at a time: the 4th lane (the next pixel's first
/// channel) is a by-product that the next column overwrites. The last column, and any whose
/// 4th source element lies past the end of `row`, take the 3-lane path.
fn lerp_row3<T: Pixel>(xs: &[Lerp], row: &[T], out: &mut [f32]) {
    for (i, x) in xs.iter().enumerate() {
        let (l, r) = (x.lo * 3, x.hi * 3);
        match (
            row.get(l..l + 4),
            row.get(r..r + 4),
            out.get_mut(i * 3..i * 3 + 4),
        ) {
            (Some(l), Some(r), Some(o)) => {
                let mut v = [0f32; 4];
                for ((v, l), r) in v.iter_mut().zip(l).zip(r) {
                    let (l, r) = (l.f(), r.f());
                    *v = l + (r - l) * x.t;
                }
                o.copy_from_slice(&v);
            }
            _ => lerp_row::<T, 3>(std::slice::from_ref(x), row, &mut out[i * 3..i * 3 + 3]),
        }
    }
}

/// [`lerp_row`] for any number of channels.
fn lerp_row_any<T: Pixel>(xs: &[Lerp], row: &[T], out: &mut [f32], c: usize) {
    for (x, o) in xs.iter().zip(out.chunks_exact_mut(c)) {
        for (ch, o) in o.iter_mut().enumerate() {
            let (l, r) = (row[x.lo * c + ch].f(), row[x.hi * c + ch].f());
            *o = l + (r - l) * x.t;
        }
    }
}

/// Bilinear resize of an (H, W, C) image to (`oh`, `ow`, C).
///
/// Separable but bit-identical with TensorFlow's per-pixel kernel: TensorFlow's `top` and
/// `bottom` values are the horizontal lerps of source rows `lo` and `hi`, which depend on the
/// source row only, so each source row is interpolated once and kept while output rows use it;
/// then `top + (bottom - top) * ylerp`, converted by [`Store`].
pub fn bilinear<T: Pixel, O: Store>(img: &Array<T>, oh: usize, ow: usize) -> Vec<O> {
    let (h, w, c) = (img.shape[0], img.shape[1], img.shape[2]);
    let xs = bilinear_weights(ow, w);
    let lerp = |row: &[T], out: &mut [f32]| match c {
        1 => lerp_row::<T, 1>(&xs, row, out),
        3 => lerp_row3(&xs, row, out),
        _ => lerp_row_any(&xs, row, out, c),
    };
    let (row, n) = (w * c, ow * c);
    let mut out = Vec::with_capacity(oh * n);
    // Two interpolated source rows and their indices.
    let mut cached = [usize::MAX; 2];
    let mut bufs = [vec![0f32; n], vec![0f32; n]];
    for y in bilinear_weights(oh, h) {
        let mut slot = |src: usize, keep: usize| {
            if let Some(s) = cached.iter().position(|&r| r == src) {
                return s;
            }
            let s = if cached[0] == keep { 1 } else { 0 };
            lerp(&img.data[src * row..(src + 1) * row], &mut bufs[s]);
            cached[s] = src;
            s
        };
        let top = slot(y.lo, y.hi);
        let bot = slot(y.hi, y.lo);
        let (top, bot) = (&bufs[top], &bufs[bot]);
        out.extend(
            top.iter()
                .zip(bot)
                .map(|(&t, &b)| O::store(t + (b - t) * y.t)),
        );
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

/// big_vision's cast back to uint8 ([`Store`] for `u8`).
pub fn to_u8(v: &[f32]) -> Vec<u8> {
    v.iter().map(|&x| u8::store(x)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_sizes_keep_values() {
        let img = Array::new(vec![2, 3, 1], vec![0u8, 10, 20, 30, 40, 250]);
        assert_eq!(bilinear::<u8, u8>(&img, 2, 3), img.data);
        assert_eq!(to_u8(&area(&img, 2, 3)), img.data);
        assert_eq!(nearest(&img, 2, 3), img);
    }

    /// TensorFlow's per-pixel `ResizeBilinear` loop, as big_vision's README states it.
    fn per_pixel<T: Pixel>(img: &Array<T>, oh: usize, ow: usize) -> Vec<f32> {
        let (h, w, c) = (img.shape[0], img.shape[1], img.shape[2]);
        let (ys, xs) = (bilinear_weights(oh, h), bilinear_weights(ow, w));
        let px = |y: usize, x: usize, ch: usize| img.data[(y * w + x) * c + ch].f();
        let mut out = Vec::new();
        for y in &ys {
            for x in &xs {
                for ch in 0..c {
                    let (tl, tr) = (px(y.lo, x.lo, ch), px(y.lo, x.hi, ch));
                    let (bl, br) = (px(y.hi, x.lo, ch), px(y.hi, x.hi, ch));
                    let top = tl + (tr - tl) * x.t;
                    let bot = bl + (br - bl) * x.t;
                    out.push(top + (bot - top) * y.t);
                }
            }
        }
        out
    }

    #[test]
    fn separable_bilinear_equals_the_per_pixel_kernel() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for (h, w, c, oh, ow) in [
            (37, 53, 3, 224, 224),
            (500, 333, 3, 224, 224),
            (301, 299, 3, 100, 61),
            (17, 9, 1, 40, 3),
            (20, 30, 4, 7, 45),
            (1, 1, 3, 5, 5),
        ] {
            let img = Array::new(
                vec![h, w, c],
                (0..h * w * c).map(|_| next() as u8).collect(),
            );
            let want = per_pixel(&img, oh, ow);
            assert_eq!(bilinear::<u8, u8>(&img, oh, ow), to_u8(&want));
            assert_eq!(bits(&bilinear(&img, oh, ow)), bits(&want));
            let img = Array::new(
                img.shape.clone(),
                img.data
                    .iter()
                    .map(|&v| f32::from(v) * 0.37 - 11.0)
                    .collect(),
            );
            let want = per_pixel(&img, oh, ow);
            assert_eq!(bits(&bilinear(&img, oh, ow)), bits(&want));
        }
    }

    #[test]
    fn area_downscale_by_two_averages() {
        let img = Array::new(vec![2, 2, 1], vec![0u8, 10, 20, 31]);
        assert_eq!(area(&img, 1, 1), vec![15.25]);
    }
}

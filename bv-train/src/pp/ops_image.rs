//! big_vision's image ops (`big_vision/pp/ops_image.py`): decode, resizes, crops, flips and
//! value ranges. Each factory validates its arguments and returns a [`ValueOp`].

use super::decode::{decode_image, decode_jpeg, image_size, Dct, Window};
use super::registry::{Args, ValueOp};
use super::resize::{area, bilinear, nearest, to_u8, Method};
use super::rng::Rng;
use crate::data::batch::f32_buffer;
use crate::data::{Array, Value};

/// An (H, W, C) image value, uint8 or float32.
pub(crate) fn hwc(v: &Value) -> Result<(usize, usize, usize), String> {
    match v {
        Value::U8(a) if a.shape.len() == 3 => Ok((a.shape[0], a.shape[1], a.shape[2])),
        Value::F32(a) if a.shape.len() == 3 => Ok((a.shape[0], a.shape[1], a.shape[2])),
        other => Err(format!(
            "expected an (H, W, C) uint8 or float32 image, got {} {:?}",
            other.dtype(),
            other.shape()
        )),
    }
}

fn encoded(v: &Value) -> Result<&[u8], String> {
    match v {
        Value::Bytes(a) if a.data.len() == 1 => Ok(&a.data[0]),
        other => Err(format!(
            "expected one encoded image (bytes), got {} {:?}",
            other.dtype(),
            other.shape()
        )),
    }
}

fn crop_arr<T: Copy>(a: &Array<T>, w: Window) -> Array<T> {
    let (iw, c) = (a.shape[1], a.shape[2]);
    let mut data = Vec::with_capacity(w.h * w.w * c);
    for y in w.y..w.y + w.h {
        let row = (y * iw + w.x) * c;
        data.extend_from_slice(&a.data[row..row + w.w * c]);
    }
    Array::new(vec![w.h, w.w, c], data)
}

/// Crops an image value.
pub(crate) fn crop(v: &Value, w: Window) -> Result<Value, String> {
    let (h, iw, _) = hwc(v)?;
    if w.y + w.h > h || w.x + w.w > iw {
        return Err(format!(
            "crop {}x{} does not fit the {h}x{iw} image",
            w.h, w.w
        ));
    }
    Ok(match v {
        Value::U8(a) => Value::U8(crop_arr(a, w)),
        Value::F32(a) => Value::F32(crop_arr(a, w)),
        _ => unreachable!("hwc checked the type"),
    })
}

/// Resizes an image value, casting back to its dtype as big_vision does.
pub(crate) fn resize(v: &Value, oh: usize, ow: usize, m: Method) -> Result<Value, String> {
    let (_, _, c) = hwc(v)?;
    let shape = vec![oh, ow, c];
    Ok(match (v, m) {
        (Value::U8(a), Method::Nearest) => Value::U8(nearest(a, oh, ow)),
        (Value::F32(a), Method::Nearest) => Value::F32(nearest(a, oh, ow)),
        (Value::U8(a), Method::Bilinear) => Value::U8(Array::new(shape, bilinear(a, oh, ow))),
        (Value::F32(a), Method::Bilinear) => Value::F32(Array::new(shape, bilinear(a, oh, ow))),
        (Value::U8(a), Method::Area) => Value::U8(Array::new(shape, to_u8(&area(a, oh, ow)))),
        (Value::F32(a), Method::Area) => Value::F32(Array::new(shape, area(a, oh, ow))),
        _ => unreachable!("hwc checked the type"),
    })
}

fn method(args: &Args, default: &str, antialias_default: bool) -> Result<Method, String> {
    let m = Method::parse(&args.str("method")?.unwrap_or_else(|| default.into()))?;
    let antialias = args.bool("antialias")?.unwrap_or(antialias_default);
    if antialias && m != Method::Area {
        return Err("antialias=True is only supported with method='area'".into());
    }
    Ok(m)
}

/// `decode(channels=3, precise=False)`.
pub struct Decode {
    channels: usize,
    dct: Dct,
}

impl Decode {
    /// Factory.
    pub fn make(a: &Args) -> Result<Box<dyn ValueOp>, String> {
        let channels = a.int("channels")?.unwrap_or(3);
        if channels != 1 && channels != 3 {
            return Err(format!("channels={channels}; use 1 or 3"));
        }
        let precise = a.bool("precise")?.unwrap_or(false);
        Ok(Box::new(Decode {
            channels: channels as usize,
            dct: if precise { Dct::Accurate } else { Dct::Fast },
        }))
    }
}

impl ValueOp for Decode {
    fn apply(&self, v: &Value, _: &mut Rng) -> Result<Value, String> {
        decode_image(encoded(v)?, self.channels, self.dct).map(Value::U8)
    }
}

/// `resize(size, method='bilinear', antialias=False)`.
pub struct Resize {
    size: (usize, usize),
    method: Method,
}

impl Resize {
    /// Factory.
    pub fn make(a: &Args) -> Result<Box<dyn ValueOp>, String> {
        Ok(Box::new(Resize {
            size: a.required("size", a.size("size")?)?,
            method: method(a, "bilinear", false)?,
        }))
    }
}

impl ValueOp for Resize {
    fn apply(&self, v: &Value, _: &mut Rng) -> Result<Value, String> {
        resize(v, self.size.0, self.size.1, self.method)
    }
}

/// `resize_small(smaller_size, method='area')` and `resize_long(longer_size, method='area')`.
pub struct ResizeSide {
    size: usize,
    method: Method,
    long: bool,
}

impl ResizeSide {
    fn make(a: &Args, name: &str, long: bool) -> Result<Box<dyn ValueOp>, String> {
        let size = a.required(name, a.int(name)?)?;
        if size <= 0 {
            return Err(format!("{name}={size} must be positive"));
        }
        Ok(Box::new(ResizeSide {
            size: size as usize,
            method: method(a, "area", long)?,
            long,
        }))
    }

    /// Factory of `resize_small`.
    pub fn make_small(a: &Args) -> Result<Box<dyn ValueOp>, String> {
        Self::make(a, "smaller_size", false)
    }

    /// Factory of `resize_long`.
    pub fn make_long(a: &Args) -> Result<Box<dyn ValueOp>, String> {
        Self::make(a, "longer_size", true)
    }
}

impl ValueOp for ResizeSide {
    fn apply(&self, v: &Value, _: &mut Rng) -> Result<Value, String> {
        let (h, w, _) = hwc(v)?;
        let side = if self.long { h.max(w) } else { h.min(w) };
        let ratio = self.size as f32 / side as f32;
        let nh = (h as f32 * ratio).round_ties_even() as usize;
        let nw = (w as f32 * ratio).round_ties_even() as usize;
        resize(v, nh.max(1), nw.max(1), self.method)
    }
}

/// `central_crop(crop_size=None)`: the central (h, w) window; the central square by default.
pub struct CentralCrop {
    size: Option<(usize, usize)>,
}

impl CentralCrop {
    /// Factory.
    pub fn make(a: &Args) -> Result<Box<dyn ValueOp>, String> {
        Ok(Box::new(CentralCrop {
            size: a.size("crop_size")?,
        }))
    }
}

impl ValueOp for CentralCrop {
    fn apply(&self, v: &Value, _: &mut Rng) -> Result<Value, String> {
        let (h, w, _) = hwc(v)?;
        let (ch, cw) = self.size.unwrap_or((h.min(w), h.min(w)));
        if ch > h || cw > w {
            return Err(format!("crop {ch}x{cw} is larger than the {h}x{w} image"));
        }
        crop(
            v,
            Window {
                y: (h - ch) / 2,
                x: (w - cw) / 2,
                h: ch,
                w: cw,
            },
        )
    }
}

/// `random_crop(crop_size)`: a uniformly placed (h, w) window.
pub struct RandomCrop {
    size: (usize, usize),
}

impl RandomCrop {
    /// Factory.
    pub fn make(a: &Args) -> Result<Box<dyn ValueOp>, String> {
        Ok(Box::new(RandomCrop {
            size: a.required("crop_size", a.size("crop_size")?)?,
        }))
    }
}

impl ValueOp for RandomCrop {
    fn apply(&self, v: &Value, rng: &mut Rng) -> Result<Value, String> {
        let (h, w, _) = hwc(v)?;
        let (ch, cw) = self.size;
        if ch > h || cw > w {
            return Err(format!("crop {ch}x{cw} is larger than the {h}x{w} image"));
        }
        let y = rng.below((h - ch + 1) as u64) as usize;
        let x = rng.below((w - cw + 1) as u64) as usize;
        crop(v, Window { y, x, h: ch, w: cw })
    }
}

/// The distribution of `tf.image.sample_distorted_bounding_box` without boxes.
#[derive(Clone, Copy, Debug)]
pub struct CropDist {
    /// Area range as fractions of the image.
    pub area: (f32, f32),
    /// Aspect ratio (w / h) range.
    pub ratio: (f32, f32),
}

fn lrint(x: f32) -> i64 {
    x.round_ties_even() as i64
}

impl CropDist {
    fn try_once(&self, h: usize, w: usize, ar: f32, rng: &mut Rng) -> Option<Window> {
        let (oh, ow) = (h as i64, w as i64);
        let min_area = self.area.0 * w as f32 * h as f32;
        let max_area = self.area.1 * w as f32 * h as f32;
        let mut height = lrint((min_area / ar).sqrt());
        let mut max_height = lrint((max_area / ar).sqrt());
        if lrint(max_height as f32 * ar) > ow {
            max_height = ((ow as f64 + 0.5 - f64::from(1e-7f32)) / f64::from(ar)) as i64;
            if lrint(max_height as f32 * ar) > ow {
                max_height -= 1;
            }
        }
        max_height = max_height.min(oh);
        height = height.min(max_height);
        if height < max_height {
            height += rng.below((max_height - height + 1) as u64) as i64;
        }
        let mut width = lrint(height as f32 * ar);
        let mut area = (width * height) as f32;
        if area < min_area {
            height += 1;
            width = lrint(height as f32 * ar);
            area = (width * height) as f32;
        }
        if area < min_area {
            return None;
        }
        if area > max_area {
            height -= 1;
            width = lrint(height as f32 * ar);
            area = (width * height) as f32;
        }
        if area < min_area
            || area > max_area
            || width > ow
            || height > oh
            || width <= 0
            || height <= 0
        {
            return None;
        }
        let y = if height < oh {
            rng.below((oh - height) as u64)
        } else {
            0
        };
        let x = if width < ow {
            rng.below((ow - width) as u64)
        } else {
            0
        };
        Some(Window {
            y: y as usize,
            x: x as usize,
            h: height as usize,
            w: width as usize,
        })
    }

    /// Samples a crop of an `h`x`w` image: up to 100 attempts, then the whole image.
    pub fn sample(&self, h: usize, w: usize, rng: &mut Rng) -> Window {
        for _ in 0..100 {
            let ar = self.ratio.0 + rng.uniform() * (self.ratio.1 - self.ratio.0);
            if let Some(win) = self.try_once(h, w, ar, rng) {
                return win;
            }
        }
        Window { y: 0, x: 0, h, w }
    }
}

/// `inception_crop(size=None, area_min=5, area_max=100, method='bilinear')` and
/// `decode_jpeg_and_inception_crop(size=None, area_min=5, area_max=100, ratio_min=0.75,
/// ratio_max=1.33, method='bilinear')`.
pub struct InceptionCrop {
    size: Option<(usize, usize)>,
    dist: CropDist,
    method: Method,
    decode: bool,
}

impl InceptionCrop {
    fn make(a: &Args, decode: bool) -> Result<Box<dyn ValueOp>, String> {
        let amin = a.float("area_min")?.unwrap_or(5.0);
        let amax = a.float("area_max")?.unwrap_or(100.0);
        let (rmin, rmax) = if decode {
            (
                a.float("ratio_min")?.unwrap_or(0.75),
                a.float("ratio_max")?.unwrap_or(1.33),
            )
        } else {
            (0.75, 1.33)
        };
        if !(0.0 < amin && amin <= amax && amax <= 100.0 && 0.0 < rmin && rmin <= rmax) {
            return Err(format!(
                "need 0 < area_min <= area_max <= 100 and 0 < ratio_min <= ratio_max, got \
                 area {amin}..{amax}, ratio {rmin}..{rmax}"
            ));
        }
        Ok(Box::new(InceptionCrop {
            size: a.size("size")?,
            dist: CropDist {
                area: ((amin / 100.0) as f32, (amax / 100.0) as f32),
                ratio: (rmin as f32, rmax as f32),
            },
            method: method(a, "bilinear", false)?,
            decode,
        }))
    }

    /// Factory of `inception_crop`.
    pub fn make_plain(a: &Args) -> Result<Box<dyn ValueOp>, String> {
        Self::make(a, false)
    }

    /// Factory of `decode_jpeg_and_inception_crop`.
    pub fn make_decode(a: &Args) -> Result<Box<dyn ValueOp>, String> {
        Self::make(a, true)
    }
}

impl ValueOp for InceptionCrop {
    fn apply(&self, v: &Value, rng: &mut Rng) -> Result<Value, String> {
        let cropped = if self.decode {
            let bytes = encoded(v)?;
            let (h, w) = image_size(bytes)?;
            let win = self.dist.sample(h, w, rng);
            if bytes.starts_with(&[0xff, 0xd8]) {
                Value::U8(decode_jpeg(bytes, 3, Dct::Fast, Some(win))?)
            } else {
                crop(&Value::U8(decode_image(bytes, 3, Dct::Fast)?), win)?
            }
        } else {
            let (h, w, _) = hwc(v)?;
            let win = self.dist.sample(h, w, rng);
            crop(v, win)?
        };
        match self.size {
            Some((h, w)) => resize(&cropped, h, w, self.method),
            None => Ok(cropped),
        }
    }
}

/// `flip_lr`: mirrors left-right with probability 1/2.
pub struct FlipLr;

impl FlipLr {
    /// Factory.
    pub fn make(_: &Args) -> Result<Box<dyn ValueOp>, String> {
        Ok(Box::new(FlipLr))
    }
}

/// Mirrors each row in place: reverses its elements, then each pixel's channels back.
fn flip<T>(a: &mut Array<T>) {
    let (w, c) = (a.shape[1], a.shape[2]);
    for row in a.data.chunks_exact_mut(w * c) {
        if c == 3 {
            // One pass over whole pixels instead of reversing the row and then each pixel.
            row.as_chunks_mut::<3>().0.reverse();
        } else {
            row.reverse();
            if c > 1 {
                row.chunks_exact_mut(c).for_each(<[T]>::reverse);
            }
        }
    }
}

impl ValueOp for FlipLr {
    fn apply(&self, v: &Value, rng: &mut Rng) -> Result<Value, String> {
        self.apply_owned(v.clone(), rng)
    }

    fn apply_owned(&self, mut v: Value, rng: &mut Rng) -> Result<Value, String> {
        hwc(&v)?;
        if rng.coin() {
            match &mut v {
                Value::U8(a) => flip(a),
                Value::F32(a) => flip(a),
                _ => unreachable!("hwc checked the type"),
            }
        }
        Ok(v)
    }
}

/// float32 copy of numeric data.
fn as_f32(v: &Value) -> Result<Array<f32>, String> {
    match v {
        Value::U8(a) => Ok(Array::new(
            a.shape.clone(),
            a.data.iter().map(|&x| f32::from(x)).collect(),
        )),
        Value::F32(a) => Ok(a.clone()),
        Value::I64(a) => Ok(Array::new(
            a.shape.clone(),
            a.data.iter().map(|&x| x as f32).collect(),
        )),
        Value::Bytes(_) => Err("expected numbers, got bytes (decode the image first)".into()),
    }
}

/// `value_range(vmin=-1, vmax=1, in_min=0, in_max=255, clip_values=False)`.
pub struct ValueRange {
    vmin: f32,
    vmax: f32,
    in_min: f32,
    in_max: f32,
    clip: bool,
}

impl ValueRange {
    /// Factory.
    pub fn make(a: &Args) -> Result<Box<dyn ValueOp>, String> {
        let in_min = a.float("in_min")?.unwrap_or(0.0) as f32;
        let in_max = a.float("in_max")?.unwrap_or(255.0) as f32;
        if in_max == in_min {
            return Err("in_min and in_max must differ".into());
        }
        Ok(Box::new(ValueRange {
            vmin: a.float("vmin")?.unwrap_or(-1.0) as f32,
            vmax: a.float("vmax")?.unwrap_or(1.0) as f32,
            in_min,
            in_max,
            clip: a.bool("clip_values")?.unwrap_or(false),
        }))
    }
}

impl ValueRange {
    /// big_vision's float32 operations, in its order.
    fn affine(&self, x: f32) -> f32 {
        let t = (x - self.in_min) / (self.in_max - self.in_min);
        self.vmin + t * (self.vmax - self.vmin)
    }

    fn map(&self, x: f32) -> f32 {
        let x = self.affine(x);
        if self.clip {
            x.clamp(self.vmin.min(self.vmax), self.vmax.max(self.vmin))
        } else {
            x
        }
    }
}

impl ValueOp for ValueRange {
    fn apply(&self, v: &Value, rng: &mut Rng) -> Result<Value, String> {
        self.apply_owned(v.clone(), rng)
    }

    fn apply_owned(&self, v: Value, _: &mut Rng) -> Result<Value, String> {
        let mut a = match v {
            Value::U8(a) => {
                // Written as one straight loop so that it vectorizes (a 256-entry table is
                // twice as slow: one scalar load per value).
                let mut data = f32_buffer(a.data.len());
                if self.clip {
                    data.extend(a.data.iter().map(|&x| self.map(f32::from(x))));
                } else {
                    data.extend(a.data.iter().map(|&x| self.affine(f32::from(x))));
                }
                return Ok(Value::F32(Array::new(a.shape, data)));
            }
            Value::F32(a) => a,
            other => as_f32(&other)?,
        };
        a.data.iter_mut().for_each(|x| *x = self.map(*x));
        Ok(Value::F32(a))
    }
}

/// `vgg_value_range(mean=(0.485*255, 0.456*255, 0.406*255), std=(0.229*255, 0.224*255, 0.225*255))`.
pub struct VggValueRange {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl VggValueRange {
    /// Factory.
    pub fn make(a: &Args) -> Result<Box<dyn ValueOp>, String> {
        let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        let mean =
            f(a.floats("mean")?
                .unwrap_or(vec![0.485 * 255.0, 0.456 * 255.0, 0.406 * 255.0]));
        let std = f(a
            .floats("std")?
            .unwrap_or(vec![0.229 * 255.0, 0.224 * 255.0, 0.225 * 255.0]));
        if mean.len() != std.len() || mean.is_empty() {
            return Err("mean and std need the same number of channels".into());
        }
        Ok(Box::new(VggValueRange { mean, std }))
    }
}

impl ValueOp for VggValueRange {
    fn apply(&self, v: &Value, _: &mut Rng) -> Result<Value, String> {
        let (_, _, c) = hwc(v)?;
        if c != self.mean.len() {
            return Err(format!("{c} channels but {} means", self.mean.len()));
        }
        let mut a = as_f32(v)?;
        for (i, x) in a.data.iter_mut().enumerate() {
            *x = (*x - self.mean[i % c]) / self.std[i % c];
        }
        Ok(Value::F32(a))
    }
}

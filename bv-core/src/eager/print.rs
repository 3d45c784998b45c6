//! Printing tensors as numpy prints arrays. `Display` is `str(x)` of a JAX array (`[[1. 2.]
//!  [3. 4.]]`: numpy's element formats, line width 75, arrays over 1000 elements summarized
//! with 3 edge items); `Debug` adds the shape and element type (`Tensor(f32[2,2], [[1. 2.]
//! ...])`). A traced tensor prints its abstract value only, a tensor holding an error the
//! error.

use std::fmt;

use super::held;
use crate::dtype::DType;
use crate::trace::Tensor;

const LINE_WIDTH: usize = 75;
const THRESHOLD: usize = 1000;
const EDGE_ITEMS: usize = 3;
/// numpy's default `precision`: at most this many fractional digits.
const PRECISION: usize = 8;

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match held(self) {
            None => write!(f, "Traced<{}>", self.aval()),
            Some(Err(e)) => write!(f, "<error: {e}>"),
            Some(Ok(a)) => match a.to_bytes() {
                Ok(bytes) => f.write_str(&format_array(&bytes, a.dtype(), a.shape(), " ")),
                Err(e) => write!(f, "<error: {e}>"),
            },
        }
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match held(self) {
            None => write!(f, "Tensor({})", self.aval()),
            Some(Err(e)) => write!(f, "Tensor({}, error: {e})", self.aval()),
            Some(Ok(a)) => {
                let prefix = format!("Tensor({}, ", self.aval());
                let indent = " ".repeat(prefix.len() + 1);
                match a.to_bytes() {
                    Ok(bytes) => {
                        let body = format_array(&bytes, a.dtype(), a.shape(), &indent);
                        write!(f, "{prefix}{body})")
                    }
                    Err(e) => write!(f, "{prefix}error: {e})"),
                }
            }
        }
    }
}

/// One element read from little-endian bytes.
#[derive(Clone, Copy)]
enum Elem {
    Bool(bool),
    Int(i128),
    /// A float, with whether it is single precision or narrower (its shortest repr is then
    /// that of an f32).
    Float(f64, bool),
}

fn read(bytes: &[u8], dtype: DType) -> Vec<Elem> {
    use crate::dtype::Element;
    let w = dtype.size_in_bytes();
    bytes
        .chunks_exact(w)
        .map(|b| match dtype {
            DType::Bool => Elem::Bool(b[0] != 0),
            DType::I8 => Elem::Int(i8::read_le(b).into()),
            DType::I16 => Elem::Int(i16::read_le(b).into()),
            DType::I32 => Elem::Int(i32::read_le(b).into()),
            DType::I64 => Elem::Int(i64::read_le(b).into()),
            DType::U8 => Elem::Int(u8::read_le(b).into()),
            DType::U16 => Elem::Int(u16::read_le(b).into()),
            DType::U32 => Elem::Int(u32::read_le(b).into()),
            DType::U64 => Elem::Int(u64::read_le(b).into()),
            DType::F16 => Elem::Float(half::f16::read_le(b).to_f64(), true),
            DType::BF16 => Elem::Float(half::bf16::read_le(b).to_f64(), true),
            DType::F32 => Elem::Float(f32::read_le(b).into(), true),
            DType::F64 => Elem::Float(f64::read_le(b), false),
        })
        .collect()
}

/// numpy's `str` of an array of `shape` held in `bytes`; continuation lines start with
/// `indent` (numpy's `next_line_prefix`, one space for `str`).
pub(crate) fn format_array(bytes: &[u8], dtype: DType, shape: &[usize], indent: &str) -> String {
    let elems = read(bytes, dtype);
    if shape.is_empty() {
        return elems.first().map_or_else(String::new, |&e| scalar(e));
    }
    if elems.is_empty() {
        return "[]".into();
    }
    let summarize = elems.len() > THRESHOLD;
    let shown = shown_indices(shape, summarize);
    let fmt = Format::new(shown.iter().map(|&i| elems[i]));
    let cx = Layout {
        elems: &elems,
        shape,
        strides: strides(shape),
        summarize,
        fmt: &fmt,
    };
    cx.recurse(0, 0, indent, LINE_WIDTH)
}

/// A rank-0 value as Python prints a numpy scalar: `1.5`, `2.0`, `1e-05`, `7`, `True`.
fn scalar(e: Elem) -> String {
    match e {
        Elem::Bool(b) => if b { "True" } else { "False" }.into(),
        Elem::Int(i) => i.to_string(),
        Elem::Float(x, _) if !x.is_finite() => non_finite(x),
        Elem::Float(x, single) => {
            let a = x.abs();
            if a != 0.0 && !(1e-4..1e16).contains(&a) {
                let (m, e) = shortest_sci(x, single);
                format!(
                    "{m}e{}{:02}",
                    if e < 0 { '-' } else { '+' },
                    e.unsigned_abs()
                )
            } else {
                let s = shortest(x, single);
                if s.contains('.') {
                    s
                } else {
                    format!("{s}.0")
                }
            }
        }
    }
}

fn non_finite(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x < 0.0 {
        "-inf".into()
    } else {
        "inf".into()
    }
}

/// The shortest decimal that reads back as `x` (as an f32 when `single`), positional.
fn shortest(x: f64, single: bool) -> String {
    if single {
        format!("{}", x as f32)
    } else {
        format!("{x}")
    }
}

/// The shortest scientific form of `x`: mantissa digits and exponent.
fn shortest_sci(x: f64, single: bool) -> (String, i32) {
    let s = if single {
        format!("{:e}", x as f32)
    } else {
        format!("{x:e}")
    };
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    (m.to_string(), e.parse().unwrap_or(0))
}

/// `x` positional with its shortest digits, rounded to at most [`PRECISION`] fractional
/// digits, trailing zeros dropped but the point kept: `1.`, `0.25`, `-3.33333333`.
fn positional(x: f64, single: bool) -> String {
    let mut s = shortest(x, single);
    if let Some((_, frac)) = s.split_once('.') {
        if frac.len() > PRECISION {
            s = format!("{x:.PRECISION$}");
            s.truncate(s.trim_end_matches('0').len());
        }
    } else {
        s.push('.');
    }
    s
}

/// `x` in scientific form with its shortest digits, the mantissa rounded to at most
/// [`PRECISION`] fractional digits: `(int part, fraction digits, exponent)`.
fn scientific(x: f64, single: bool) -> (String, String, i32) {
    let (mut m, mut e) = shortest_sci(x, single);
    if m.split_once('.').is_some_and(|(_, f)| f.len() > PRECISION) {
        let s = format!("{x:.PRECISION$e}");
        let (mm, ee) = s.split_once('e').unwrap_or((&s, "0"));
        m = mm.trim_end_matches('0').to_string();
        e = ee.parse().unwrap_or(0);
    }
    let (i, f) = m.split_once('.').unwrap_or((&m, ""));
    (i.to_string(), f.to_string(), e)
}

/// numpy's per-array element format (`FloatingFormat`, `IntegerFormat`, `BoolFormat` with
/// the default options): every element padded to one width.
enum Format {
    Bool,
    Int(usize),
    Float {
        exp: bool,
        pad_left: usize,
        pad_right: usize,
        /// Exponent digits (scientific form only).
        exp_digits: usize,
        single: bool,
    },
}

impl Format {
    fn new(shown: impl Iterator<Item = Elem>) -> Format {
        let shown: Vec<Elem> = shown.collect();
        match shown.first() {
            Some(Elem::Bool(_)) => Format::Bool,
            Some(Elem::Int(_)) => Format::Int(
                shown
                    .iter()
                    .map(|e| match e {
                        Elem::Int(i) => i.to_string().len(),
                        _ => 0,
                    })
                    .max()
                    .unwrap_or(1),
            ),
            _ => {
                let vals: Vec<f64> = shown
                    .iter()
                    .filter_map(|e| match e {
                        Elem::Float(x, _) => Some(*x),
                        _ => None,
                    })
                    .collect();
                let single = matches!(shown.first(), Some(Elem::Float(_, true)));
                Format::float(&vals, single)
            }
        }
    }

    fn float(vals: &[f64], single: bool) -> Format {
        let finite: Vec<f64> = vals.iter().copied().filter(|x| x.is_finite()).collect();
        let nonzero: Vec<f64> = finite
            .iter()
            .map(|x| x.abs())
            .filter(|&a| a != 0.0)
            .collect();
        let exp = match (
            nonzero.iter().copied().reduce(f64::max),
            nonzero.iter().copied().reduce(f64::min),
        ) {
            (Some(max), Some(min)) => max >= 1e8 || min < 1e-4 || max / min > 1e3,
            _ => false,
        };
        let (mut pad_left, pad_right, exp_digits) = if exp {
            let parts: Vec<(String, String, i32)> =
                finite.iter().map(|&x| scientific(x, single)).collect();
            let digits = parts
                .iter()
                .map(|p| p.2.unsigned_abs().to_string().len().max(2))
                .max()
                .unwrap_or(2);
            let left = parts.iter().map(|p| p.0.len()).max().unwrap_or(0);
            let frac = parts.iter().map(|p| p.1.len()).max().unwrap_or(0);
            (left, frac, digits)
        } else {
            let parts: Vec<String> = finite.iter().map(|&x| positional(x, single)).collect();
            let left = parts
                .iter()
                .map(|p| p.split_once('.').map_or(p.len(), |(i, _)| i.len()))
                .max()
                .unwrap_or(0);
            let right = parts
                .iter()
                .map(|p| p.split_once('.').map_or(0, |(_, f)| f.len()))
                .max()
                .unwrap_or(0);
            (left, right, 0)
        };
        if finite.len() != vals.len() {
            // Room for `nan`, `inf` and `-inf` beside the finite values.
            let neg_inf = vals.contains(&f64::NEG_INFINITY);
            let offset = if exp {
                pad_right + exp_digits + 3
            } else {
                pad_right + 1
            };
            pad_left = pad_left
                .max(3usize.saturating_sub(offset))
                .max((3 + usize::from(neg_inf)).saturating_sub(offset));
        }
        Format::Float {
            exp,
            pad_left,
            pad_right,
            exp_digits,
            single,
        }
    }

    fn apply(&self, e: Elem) -> String {
        match (self, e) {
            (Format::Bool, Elem::Bool(b)) => if b { " True" } else { "False" }.into(),
            (Format::Int(w), Elem::Int(i)) => format!("{i:>w$}"),
            (
                &Format::Float {
                    exp,
                    pad_left,
                    pad_right,
                    exp_digits,
                    single,
                },
                Elem::Float(x, _),
            ) => {
                if !x.is_finite() {
                    let width = if exp {
                        pad_left + pad_right + exp_digits + 3
                    } else {
                        pad_left + pad_right + 1
                    };
                    return format!("{:>width$}", non_finite(x));
                }
                if exp {
                    // Every mantissa gets `pad_right` digits of the exact value (numpy's
                    // `min_digits`), so 1e-5 in float32 prints as 9.9999997e-06.
                    let s = format!("{x:.pad_right$e}");
                    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
                    let e: i32 = e.parse().unwrap_or(0);
                    let (i, f) = m.split_once('.').unwrap_or((m, ""));
                    let sign = if e < 0 { '-' } else { '+' };
                    let digits = format!("{:0exp_digits$}", e.unsigned_abs());
                    format!("{i:>pad_left$}.{f}e{sign}{digits}")
                } else {
                    let p = positional(x, single);
                    let (i, f) = p.split_once('.').unwrap_or((&p, ""));
                    format!("{i:>pad_left$}.{f:<pad_right$}")
                }
            }
            (_, e) => scalar(e),
        }
    }
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// The positions shown along a dimension of size `n`.
fn shown_along(n: usize, summarize: bool) -> Vec<usize> {
    if summarize && n > 2 * EDGE_ITEMS {
        (0..EDGE_ITEMS).chain(n - EDGE_ITEMS..n).collect()
    } else {
        (0..n).collect()
    }
}

/// Flat indices of the elements shown (all, or the edges of each dimension).
fn shown_indices(shape: &[usize], summarize: bool) -> Vec<usize> {
    let st = strides(shape);
    let mut out = vec![0usize];
    for (d, &n) in shape.iter().enumerate() {
        let along = shown_along(n, summarize);
        let step = st[d];
        out = out
            .iter()
            .flat_map(|&base| along.iter().map(move |&i| base + i * step))
            .collect();
    }
    out
}

/// numpy's `_formatArray`, for `separator = ' '`.
struct Layout<'a> {
    elems: &'a [Elem],
    shape: &'a [usize],
    strides: Vec<usize>,
    summarize: bool,
    fmt: &'a Format,
}

impl Layout<'_> {
    fn recurse(&self, axis: usize, base: usize, hanging: &str, width: usize) -> String {
        let n = self.shape[axis];
        let next_hanging = format!("{hanging} ");
        let next_width = width.saturating_sub(1);
        let summary = self.summarize && n > 2 * EDGE_ITEMS;
        let (lead, trail) = if summary {
            (EDGE_ITEMS, EDGE_ITEMS)
        } else {
            (0, n)
        };
        let index = |i: usize| base + i * self.strides[axis];
        let mut s = String::new();
        if axis + 1 == self.shape.len() {
            let elem_width = width.saturating_sub(1);
            let mut line = hanging.to_string();
            let mut words: Vec<String> = (0..lead)
                .map(|i| self.fmt.apply(self.elems[index(i)]))
                .collect();
            if summary {
                words.push("...".into());
            }
            words.extend((n - trail..n).map(|i| self.fmt.apply(self.elems[index(i)])));
            let last = words.len().saturating_sub(1);
            for (k, word) in words.iter().enumerate() {
                let needs_wrap = line.len() + word.len() > elem_width && line.len() > hanging.len();
                if needs_wrap {
                    s.push_str(line.trim_end());
                    s.push('\n');
                    line = hanging.to_string();
                }
                line.push_str(word);
                if k != last {
                    line.push(' ');
                }
            }
            s.push_str(&line);
        } else {
            let sep = "\n".repeat(self.shape.len() - axis - 1);
            let mut rows: Vec<String> = (0..lead)
                .map(|i| self.recurse(axis + 1, index(i), &next_hanging, next_width))
                .collect();
            if summary {
                rows.push("...".into());
            }
            for i in n - trail..n {
                rows.push(self.recurse(axis + 1, index(i), &next_hanging, next_width));
            }
            let parts: Vec<String> = rows.iter().map(|r| format!("{hanging}{r}")).collect();
            s = parts.join(&sep);
        }
        format!("[{}]", &s[hanging.len().min(s.len())..])
    }
}

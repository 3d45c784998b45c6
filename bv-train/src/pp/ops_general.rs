//! big_vision's general ops (`big_vision/pp/ops_general.py`): onehot, keep, drop, copy,
//! squeeze_last_dim.

use super::registry::{Args, PpOp, ValueOp};
use super::rng::Rng;
use crate::data::{Array, Example, Value};

/// `onehot(depth, key='labels', key_result=None, multi=True, on=1.0, off=0.0)`.
pub struct OneHot {
    depth: usize,
    key: String,
    key_result: Option<String>,
    multi: bool,
    on: f64,
    off: f64,
}

impl OneHot {
    /// Factory.
    pub fn make(a: &Args) -> Result<Box<dyn PpOp>, String> {
        let depth = a.required("depth", a.int("depth")?)?;
        if depth <= 0 {
            return Err(format!("depth={depth} must be positive"));
        }
        Ok(Box::new(OneHot {
            depth: depth as usize,
            key: a.str("key")?.unwrap_or_else(|| "labels".into()),
            key_result: a.str("key_result")?,
            multi: a.bool("multi")?.unwrap_or(true),
            on: a.float("on")?.unwrap_or(1.0),
            off: a.float("off")?.unwrap_or(0.0),
        }))
    }
}

impl PpOp for OneHot {
    fn apply(&self, ex: &mut Example, _: &mut Rng) -> Result<(), String> {
        let labels: Array<i64> = match ex.get(&self.key) {
            Some(Value::I64(a)) => a.clone(),
            Some(Value::U8(a)) => Array::new(
                a.shape.clone(),
                a.data.iter().map(|&x| i64::from(x)).collect(),
            ),
            Some(other) => {
                return Err(format!(
                    "'{}' holds {}, not integer labels",
                    self.key,
                    other.dtype()
                ))
            }
            None => return Err(format!("no key '{}' in the example", self.key)),
        };
        let d = self.depth;
        let out = if !labels.shape.is_empty() && self.multi {
            let mut x = vec![0f32; d];
            for &l in &labels.data {
                if l < 0 || l as usize >= d {
                    return Err(format!("label {l} is outside 0..{d}"));
                }
                x[l as usize] = 1.0;
            }
            let (scale, off) = ((self.on - self.off) as f32, self.off as f32);
            Array::new(vec![d], x.into_iter().map(|v| v * scale + off).collect())
        } else {
            let (on, off) = (self.on as f32, self.off as f32);
            let mut data = Vec::with_capacity(labels.data.len() * d);
            for &l in &labels.data {
                data.extend((0..d).map(|i| if i as i64 == l { on } else { off }));
            }
            let mut shape = labels.shape.clone();
            shape.push(d);
            Array::new(shape, data)
        };
        ex.insert(
            self.key_result.clone().unwrap_or_else(|| self.key.clone()),
            Value::F32(out),
        );
        Ok(())
    }
}

/// `keep(*keys)` and `drop(*keys)`.
pub struct KeepDrop {
    keys: Vec<String>,
    keep: bool,
}

impl KeepDrop {
    fn make(a: &Args, keep: bool) -> Result<Box<dyn PpOp>, String> {
        Ok(Box::new(KeepDrop {
            keys: a.strs("*keys")?,
            keep,
        }))
    }

    /// Factory of `keep`.
    pub fn make_keep(a: &Args) -> Result<Box<dyn PpOp>, String> {
        Self::make(a, true)
    }

    /// Factory of `drop`.
    pub fn make_drop(a: &Args) -> Result<Box<dyn PpOp>, String> {
        Self::make(a, false)
    }
}

impl PpOp for KeepDrop {
    fn apply(&self, ex: &mut Example, _: &mut Rng) -> Result<(), String> {
        ex.retain(|k, _| self.keys.contains(k) == self.keep);
        Ok(())
    }
}

/// `copy(inkey, outkey)`.
pub struct Copy {
    inkey: String,
    outkey: String,
}

impl Copy {
    /// Factory.
    pub fn make(a: &Args) -> Result<Box<dyn PpOp>, String> {
        Ok(Box::new(Copy {
            inkey: a.required("inkey", a.str("inkey")?)?,
            outkey: a.required("outkey", a.str("outkey")?)?,
        }))
    }
}

impl PpOp for Copy {
    fn apply(&self, ex: &mut Example, _: &mut Rng) -> Result<(), String> {
        let v = ex
            .get(&self.inkey)
            .cloned()
            .ok_or_else(|| format!("no key '{}' in the example", self.inkey))?;
        ex.insert(self.outkey.clone(), v);
        Ok(())
    }
}

/// `squeeze_last_dim`: drops a trailing dimension of size 1.
pub struct SqueezeLastDim;

impl SqueezeLastDim {
    /// Factory.
    pub fn make(_: &Args) -> Result<Box<dyn ValueOp>, String> {
        Ok(Box::new(SqueezeLastDim))
    }
}

impl ValueOp for SqueezeLastDim {
    fn apply(&self, v: &Value, _: &mut Rng) -> Result<Value, String> {
        if v.shape().last() != Some(&1) {
            return Err(format!("last dimension of shape {:?} is not 1", v.shape()));
        }
        let mut out = v.clone();
        match &mut out {
            Value::U8(a) => a.shape.pop(),
            Value::I64(a) => a.shape.pop(),
            Value::F32(a) => a.shape.pop(),
            Value::Bytes(a) => a.shape.pop(),
        };
        Ok(out)
    }
}

//! The registry of pp ops as small factories, and pipelines built from pp strings.
//!
//! Each [`OpDef`] names an op, its parameters (in positional order), its doc, and a factory
//! that validates the arguments and returns the op. Ops on one value (`decode`, `resize`, ...)
//! get big_vision's `key`/`inkey`/`outkey` arguments from a shared wrapper.

use std::collections::BTreeMap;

use super::error::PpError;
use super::parse::{parse, Lit, OpCall};
use super::rng::Rng;
use crate::data::{Example, Value};

/// An op on a whole example dict.
pub trait PpOp: Send + Sync {
    /// Applies the op in place.
    fn apply(&self, ex: &mut Example, rng: &mut Rng) -> Result<(), String>;
}

/// An op on one value; the registry wraps it with `key`/`inkey`/`outkey`.
pub trait ValueOp: Send + Sync {
    /// Maps the input value to the output value.
    fn apply(&self, v: &Value, rng: &mut Rng) -> Result<Value, String>;

    /// [`ValueOp::apply`] on a value the caller gives up (the op writes back to the key it
    /// reads), so that an op can reuse its buffer; the same result as `apply`.
    fn apply_owned(&self, v: Value, rng: &mut Rng) -> Result<Value, String> {
        self.apply(&v, rng)
    }
}

/// How an op is made from its arguments.
pub enum Make {
    /// A value op; `key`/`inkey`/`outkey` (default `default_key`) are added to its parameters.
    Value {
        /// The key read and written when none is given.
        default_key: &'static str,
        /// The factory.
        make: fn(&Args) -> Result<Box<dyn ValueOp>, String>,
    },
    /// A value op whose input and output keys default differently (big_vision's
    /// `InKeyOutKey(indefault, outdefault)`); `default_in: None` makes `inkey` (or `key`)
    /// required.
    InOut {
        /// The key read when none is given.
        default_in: Option<&'static str>,
        /// The key written when none is given.
        default_out: &'static str,
        /// The factory.
        make: fn(&Args) -> Result<Box<dyn ValueOp>, String>,
    },
    /// A dict op.
    Dict(fn(&Args) -> Result<Box<dyn PpOp>, String>),
}

/// One registered op.
pub struct OpDef {
    /// Name used in pp strings.
    pub name: &'static str,
    /// The big_vision pp module that registers it (`ops_image`, ...); a config's
    /// `pp_modules` must list it.
    pub module: &'static str,
    /// Parameter names in positional order; a leading `*` takes all positional arguments.
    pub params: &'static [&'static str],
    /// One-line description with the defaults.
    pub doc: &'static str,
    /// The factory.
    pub make: Make,
}

/// Arguments bound to an op's parameter names.
pub struct Args {
    vals: BTreeMap<&'static str, Lit>,
}

impl Args {
    fn bind(def: &OpDef, call: &OpCall, extra: &[&'static str]) -> Result<Args, String> {
        let mut vals = BTreeMap::new();
        let params: Vec<&'static str> = def.params.iter().chain(extra).copied().collect();
        match params.first() {
            Some(p) if p.starts_with('*') => {
                vals.insert(*p, Lit::List(call.positional.clone()));
            }
            _ => {
                if call.positional.len() > params.len() {
                    return Err(format!(
                        "takes at most {} positional arguments ({}), got {}",
                        params.len(),
                        params.join(", "),
                        call.positional.len()
                    ));
                }
                for (p, v) in params.iter().zip(&call.positional) {
                    vals.insert(*p, v.clone());
                }
            }
        }
        for (k, v) in &call.keyword {
            let Some(p) = params.iter().find(|p| **p == k) else {
                return Err(format!(
                    "unknown argument '{k}'; it takes {}",
                    params.join(", ")
                ));
            };
            if vals.insert(*p, v.clone()).is_some() {
                return Err(format!("argument '{k}' given twice"));
            }
        }
        Ok(Args { vals })
    }

    /// The raw literal, if given and not `None`.
    pub fn get(&self, name: &str) -> Option<&Lit> {
        self.vals.get(name).filter(|v| **v != Lit::None)
    }

    /// An integer argument.
    pub fn int(&self, name: &str) -> Result<Option<i64>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(Lit::Int(v)) => Ok(Some(*v)),
            Some(v) => Err(format!("{name}={v} should be an integer")),
        }
    }

    /// A number argument (integers are accepted).
    pub fn float(&self, name: &str) -> Result<Option<f64>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(Lit::Int(v)) => Ok(Some(*v as f64)),
            Some(Lit::Float(v)) => Ok(Some(*v)),
            Some(v) => Err(format!("{name}={v} should be a number")),
        }
    }

    /// A string argument.
    pub fn str(&self, name: &str) -> Result<Option<String>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(Lit::Str(v)) => Ok(Some(v.clone())),
            Some(v) => Err(format!("{name}={v} should be a string")),
        }
    }

    /// A boolean argument.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(Lit::Bool(v)) => Ok(Some(*v)),
            Some(v) => Err(format!("{name}={v} should be True or False")),
        }
    }

    /// A number or a tuple of numbers.
    pub fn floats(&self, name: &str) -> Result<Option<Vec<f64>>, String> {
        let one = |v: &Lit| match v {
            Lit::Int(i) => Ok(*i as f64),
            Lit::Float(f) => Ok(*f),
            _ => Err(format!(
                "{name}={v} should be a number or a tuple of numbers"
            )),
        };
        match self.get(name) {
            None => Ok(None),
            Some(Lit::List(v)) => v.iter().map(one).collect::<Result<_, _>>().map(Some),
            Some(v) => Ok(Some(vec![one(v)?])),
        }
    }

    /// A size: an integer (square) or an `(h, w)` tuple, each positive.
    pub fn size(&self, name: &str) -> Result<Option<(usize, usize)>, String> {
        let bad = || format!("{name} should be a positive integer or (height, width)");
        let pos = |v: &Lit| match v {
            Lit::Int(i) if *i > 0 => Ok(*i as usize),
            _ => Err(bad()),
        };
        match self.get(name) {
            None => Ok(None),
            Some(Lit::List(v)) if v.len() == 2 => Ok(Some((pos(&v[0])?, pos(&v[1])?))),
            Some(v) => pos(v).map(|s| Some((s, s))),
        }
    }

    /// A list of strings (a single string is a list of one).
    pub fn strs(&self, name: &str) -> Result<Vec<String>, String> {
        let one = |v: &Lit| match v {
            Lit::Str(s) => Ok(s.clone()),
            _ => Err(format!("{name}: {v} should be a string")),
        };
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Lit::List(v)) => v.iter().map(one).collect(),
            Some(v) => Ok(vec![one(v)?]),
        }
    }

    /// A required argument's presence check.
    pub fn required<T>(&self, name: &str, v: Option<T>) -> Result<T, String> {
        v.ok_or_else(|| format!("missing required argument '{name}'"))
    }
}

struct Keyed {
    inner: Box<dyn ValueOp>,
    inkey: String,
    outkey: String,
}

impl PpOp for Keyed {
    fn apply(&self, ex: &mut Example, rng: &mut Rng) -> Result<(), String> {
        let missing = |ex: &Example| {
            format!(
                "no key '{}' in the example (keys: {})",
                self.inkey,
                ex.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        let out = if self.inkey == self.outkey {
            let v = ex.remove(&self.inkey).ok_or_else(|| missing(ex))?;
            self.inner.apply_owned(v, rng)?
        } else {
            let v = ex.get(&self.inkey).ok_or_else(|| missing(ex))?;
            self.inner.apply(v, rng)?
        };
        ex.insert(self.outkey.clone(), out);
        Ok(())
    }
}

/// Levenshtein distance, for suggestions.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Up to three registered names close to `name`.
pub fn nearest(name: &str, registry: &[OpDef]) -> Vec<String> {
    let mut scored: Vec<(usize, &str)> = registry
        .iter()
        .map(|d| {
            let dist = distance(name, d.name);
            let related = d.name.contains(name) || name.contains(d.name);
            (if related { dist.min(2) } else { dist }, d.name)
        })
        .filter(|(d, n)| *d <= (n.len() / 2).max(2))
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(3)
        .map(|(_, n)| n.to_string())
        .collect()
}

/// A built pipeline: the ops of a pp string, in order.
pub struct Pipeline {
    spec: String,
    ops: Vec<(String, Box<dyn PpOp>)>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pipeline({:?})", self.spec)
    }
}

fn op_text(spec: &str, call: &OpCall, next_col: Option<usize>) -> String {
    let start = call.col - 1;
    let end = next_col.map_or(spec.chars().count(), |c| c - 1);
    let text: String = spec.chars().skip(start).take(end - start).collect();
    text.trim().trim_end_matches('|').trim().to_string()
}

/// A value op wrapped with `key`/`inkey`/`outkey` (`key` sets both).
fn keyed(
    def: &OpDef,
    call: &OpCall,
    default_in: Option<&str>,
    default_out: &str,
    make: fn(&Args) -> Result<Box<dyn ValueOp>, String>,
) -> Result<Box<dyn PpOp>, String> {
    let args = Args::bind(def, call, &["key", "inkey", "outkey"])?;
    let key = args.str("key")?;
    let inkey = key
        .clone()
        .or(args.str("inkey")?)
        .or(default_in.map(str::to_string));
    Ok(Box::new(Keyed {
        inner: make(&args)?,
        inkey: inkey.ok_or("missing required argument 'inkey' (or 'key')")?,
        outkey: key
            .or(args.str("outkey")?)
            .unwrap_or_else(|| default_out.to_string()),
    }))
}

impl Pipeline {
    /// Parses `spec` and builds each op from `registry`.
    pub fn build(spec: &str, registry: &[OpDef]) -> Result<Self, PpError> {
        let calls = parse(spec)?;
        let mut ops = Vec::new();
        for (i, call) in calls.iter().enumerate() {
            let def = registry
                .iter()
                .find(|d| d.name == call.name)
                .ok_or_else(|| PpError::UnknownOp {
                    spec: spec.to_string(),
                    col: call.col,
                    name: call.name.clone(),
                    suggestions: nearest(&call.name, registry),
                })?;
            let args_err = |msg: String| PpError::Args {
                spec: spec.to_string(),
                col: call.col,
                op: call.name.clone(),
                msg,
            };
            let op: Box<dyn PpOp> = match &def.make {
                Make::Dict(make) => {
                    make(&Args::bind(def, call, &[]).map_err(args_err)?).map_err(args_err)?
                }
                Make::Value { default_key, make } => {
                    keyed(def, call, Some(default_key), default_key, *make).map_err(args_err)?
                }
                Make::InOut {
                    default_in,
                    default_out,
                    make,
                } => keyed(def, call, *default_in, default_out, *make).map_err(args_err)?,
            };
            let next = calls.get(i + 1).map(|c| c.col);
            ops.push((op_text(spec, call, next), op));
        }
        Ok(Pipeline {
            spec: spec.to_string(),
            ops,
        })
    }

    /// The pp string.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// Runs every op on `ex`.
    pub fn apply(&self, ex: &mut Example, rng: &mut Rng) -> Result<(), PpError> {
        for (text, op) in &self.ops {
            op.apply(ex, rng).map_err(|msg| PpError::Apply {
                op: text.clone(),
                msg,
            })?;
        }
        Ok(())
    }
}

/// An op's signature: its parameters in positional order, with `key, inkey, outkey` for
/// ops on one value.
pub fn signature(def: &OpDef) -> String {
    let mut params: Vec<&str> = def.params.to_vec();
    if matches!(def.make, Make::Value { .. } | Make::InOut { .. }) {
        params.extend(["key", "inkey", "outkey"]);
    }
    format!("{}({})", def.name, params.join(", "))
}

/// The `bv-train pp --list` text: one entry per op with its signature, module and doc.
pub fn list(registry: &[OpDef]) -> String {
    registry
        .iter()
        .map(|d| format!("{}  [{}]\n    {}\n", signature(d), d.module, d.doc))
        .collect()
}

/// The `bv-train pp OP` text: the op's signature, module, doc and how its arguments bind.
pub fn describe(def: &OpDef) -> String {
    let mut out = format!(
        "{}\n    {}\nmodule: {} (a config's pp_modules must list it)\n",
        signature(def),
        def.doc,
        def.module
    );
    match (&def.make, def.params.first()) {
        (_, Some(p)) if p.starts_with('*') => {
            out.push_str(&format!(
                "arguments: any number of positional values ({})\n",
                &p[1..]
            ));
        }
        (Make::Value { default_key, .. }, _) => out.push_str(&format!(
            "arguments: positionally in the order above, or by name; the value under key \
             (default '{default_key}') is replaced by the result, or inkey is read and outkey \
             written\n"
        )),
        (
            Make::InOut {
                default_in,
                default_out,
                ..
            },
            _,
        ) => out.push_str(&format!(
            "arguments: positionally in the order above, or by name; inkey (default {}) is \
             read and outkey (default '{default_out}') written; key sets both\n",
            default_in.map_or("required".to_string(), |k| format!("'{k}'"))
        )),
        (Make::Dict(_), _) => {
            out.push_str("arguments: positionally in the order above, or by name\n")
        }
    }
    out
}

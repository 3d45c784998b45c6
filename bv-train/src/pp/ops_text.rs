//! big_vision's text ops (`pp/ops_text.py` and the text-related ops of
//! `pp/ops_general.py`): `tokenize` with SentencePiece, `lower`, `strfmt`, `choice`,
//! `setdefault`, `flatten`, `concat`, `coco_captions`, `clip_i1k_label_names`,
//! `i21k_label_names`. Strings are byte strings (`Value::Bytes`).

use std::path::PathBuf;
use std::sync::Arc;

use super::parse::Lit;
use super::registry::{Args, PpOp, ValueOp};
use super::rng::Rng;
use super::sentencepiece::SentencePiece;
use crate::data::{Array, Example, Value};

/// big_vision's `KNOWN_TOKENIZERS`: SentencePiece models by name.
pub const KNOWN_TOKENIZERS: [(&str, &str); 5] = [
    (
        "mc4",
        "gs://t5-data/vocabs/mc4.250000.100extra/sentencepiece.model",
    ),
    (
        "cc_all",
        "gs://t5-data/vocabs/cc_all.32000/sentencepiece.model",
    ),
    (
        "c4_en",
        "gs://t5-data/vocabs/cc_en.32000/sentencepiece.model",
    ),
    (
        "t5",
        "gs://t5-data/vocabs/cc_all.32000.100extra/sentencepiece.model",
    ),
    (
        "mt5",
        "gs://t5-data/vocabs/mc4.250000.100extra/sentencepiece.model",
    ),
];

/// Where the known tokenizers are looked for: `$BV_VOCAB_DIR`, else `~/.cache/bv/vocabs`;
/// each in the folder its `gs://` path names (`cc_en.32000/sentencepiece.model`).
pub fn vocab_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BV_VOCAB_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/bv/vocabs")
}

/// The SentencePiece model `model` names: a known name's local copy, or a path. Errors say
/// where to put a missing file, or why the file is not a model.
pub fn load_tokenizer(model: &str) -> Result<SentencePiece, String> {
    if let Some((_, url)) = KNOWN_TOKENIZERS.iter().find(|(n, _)| *n == model) {
        let rel = url.trim_start_matches("gs://t5-data/vocabs/");
        let path = vocab_dir().join(rel);
        if !path.is_file() {
            return Err(format!(
                "tokenizer {model:?} is {url}, not found at {}; download it there \
                 (`gsutil cp {url} {}`), set BV_VOCAB_DIR, or give model=\"/path/to/file.model\"",
                path.display(),
                path.display()
            ));
        }
        return SentencePiece::open(&path);
    }
    SentencePiece::open(model)
}

/// ASCII lower-casing, as `tf.strings.lower` with its default (ASCII) encoding.
fn lower_ascii(s: &[u8]) -> Vec<u8> {
    s.to_ascii_lowercase()
}

/// The byte strings of a value, or an error naming what it holds.
fn strings(v: &Value) -> Result<&Array<Vec<u8>>, String> {
    match v {
        Value::Bytes(a) => Ok(a),
        other => Err(format!(
            "expected strings, got {} {:?}",
            other.dtype(),
            other.shape()
        )),
    }
}

/// What `eos` does to a tokenized text (`tokenize(eos=...)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Eos {
    None,
    Yes,
    Sticky,
}

/// `tokenize(max_len, eos, model="c4_en", lower=True, sample_if_multi=True,
/// pad_value="<pad>", add_bos=False)`.
pub struct Tokenize {
    sp: Arc<SentencePiece>,
    max_len: usize,
    eos: Eos,
    eos_id: Option<u32>,
    bos_id: Option<u32>,
    lower: bool,
    sample_if_multi: bool,
    pad: i64,
}

impl Tokenize {
    /// Factory.
    pub fn make(a: &Args) -> Result<Box<dyn ValueOp>, String> {
        let max_len = a.required("max_len", a.int("max_len")?)?;
        if max_len <= 0 {
            return Err(format!("max_len={max_len} must be positive"));
        }
        let eos = match a.required("eos", a.str("eos")?)?.as_str() {
            "none" => Eos::None,
            "yes" => Eos::Yes,
            "sticky" => Eos::Sticky,
            other => {
                return Err(format!(
                    "invalid value for eos: '{other}' (none, yes or sticky)"
                ))
            }
        };
        let model = a.str("model")?.unwrap_or_else(|| "c4_en".into());
        let sp = load_tokenizer(&model)?;
        let eos_id = sp.control_id("</s>");
        if eos != Eos::None && eos_id.is_none() {
            return Err(format!(
                "{model}: the model has no </s> piece for eos={eos:?}"
            ));
        }
        let add_bos = a.bool("add_bos")?.unwrap_or(false);
        let bos_id = if add_bos {
            Some(
                sp.control_id("<s>")
                    .ok_or(format!("{model}: the model has no <s> for add_bos"))?,
            )
        } else {
            None
        };
        let pad = match a.get("pad_value") {
            None => i64::from(sp.piece_to_id("<pad>")),
            Some(Lit::Int(v)) => *v,
            Some(Lit::Str(p)) => i64::from(sp.piece_to_id(p)),
            Some(v) => return Err(format!("pad_value={v} should be an id or a piece")),
        };
        Ok(Box::new(Tokenize {
            sp: Arc::new(sp),
            max_len: max_len as usize,
            eos,
            eos_id: eos_id.filter(|_| eos != Eos::None),
            bos_id,
            lower: a.bool("lower")?.unwrap_or(true),
            sample_if_multi: a.bool("sample_if_multi")?.unwrap_or(true),
            pad,
        }))
    }

    /// The ids of one text, cut or padded to `max_len` as big_vision's `tokenize` does.
    pub fn tokens(&self, text: &[u8]) -> Vec<i64> {
        let text = if self.lower {
            lower_ascii(text)
        } else {
            text.to_vec()
        };
        let mut ids: Vec<i64> = self.bos_id.into_iter().map(i64::from).collect();
        ids.extend(self.sp.encode(&text).into_iter().map(i64::from));
        ids.extend(self.eos_id.map(i64::from));
        let n = self.max_len;
        if self.eos == Eos::Sticky && ids.len() >= n {
            let last = ids[ids.len() - 1];
            ids.truncate(n - 1);
            ids.push(last);
        } else {
            ids.truncate(n);
            ids.resize(n, self.pad);
        }
        ids
    }
}

impl ValueOp for Tokenize {
    fn apply(&self, v: &Value, rng: &mut Rng) -> Result<Value, String> {
        let texts = strings(v)?;
        if texts.shape.is_empty() {
            return Ok(Value::I64(Array::new(
                vec![self.max_len],
                self.tokens(&texts.data[0]),
            )));
        }
        if self.sample_if_multi {
            // `setdefault("t", "")` then `choice`: one text at random, "" when there is none.
            let empty = Vec::new();
            let rows = texts.shape[0];
            let row_len = texts.data.len() / rows.max(1);
            let text = match rows {
                0 => &empty,
                n => &texts.data[rng.below(n as u64) as usize * row_len],
            };
            return Ok(Value::I64(Array::new(
                vec![self.max_len],
                self.tokens(text),
            )));
        }
        let data: Vec<i64> = texts.data.iter().flat_map(|t| self.tokens(t)).collect();
        let mut shape = texts.shape.clone();
        shape.push(self.max_len);
        Ok(Value::I64(Array::new(shape, data)))
    }
}

/// `lower(key="text")`: ASCII lower-casing of strings.
pub struct Lower;

impl Lower {
    /// Factory.
    pub fn make(_: &Args) -> Result<Box<dyn ValueOp>, String> {
        Ok(Box::new(Lower))
    }
}

impl ValueOp for Lower {
    fn apply(&self, v: &Value, _: &mut Rng) -> Result<Value, String> {
        let a = strings(v)?;
        let data = a.data.iter().map(|s| lower_ascii(s)).collect();
        Ok(Value::Bytes(Array::new(a.shape.clone(), data)))
    }
}

/// A value as `tf.strings.format("{}", value, summarize=-1)` writes it: strings as they
/// are, numbers plainly, arrays as `[a b c]` (nested per dimension).
fn format_value(v: &Value) -> Vec<u8> {
    fn nested<T>(shape: &[usize], data: &[T], one: &dyn Fn(&T) -> Vec<u8>) -> Vec<u8> {
        let Some((&n, rest)) = shape.split_first() else {
            return one(&data[0]);
        };
        let step = data.len() / n.max(1);
        let parts: Vec<Vec<u8>> = (0..n)
            .map(|i| nested(rest, &data[i * step..], one))
            .collect();
        let mut out = b"[".to_vec();
        out.extend(parts.join(&b' '));
        out.push(b']');
        out
    }
    match v {
        Value::Bytes(a) => nested(&a.shape, &a.data, &|s| s.clone()),
        Value::I64(a) => nested(&a.shape, &a.data, &|x| x.to_string().into_bytes()),
        Value::U8(a) => nested(&a.shape, &a.data, &|x| x.to_string().into_bytes()),
        Value::F32(a) => nested(&a.shape, &a.data, &|x| x.to_string().into_bytes()),
    }
}

/// `strfmt(template, outkey="text")`: `{name}` fields filled from the example.
pub struct StrFmt {
    parts: Vec<(String, Option<String>)>,
    outkey: String,
}

impl StrFmt {
    /// Factory: parses the template (`{{`/`}}` escape braces; no format specs).
    pub fn make(a: &Args) -> Result<Box<dyn PpOp>, String> {
        let template = a.required("template", a.str("template")?)?;
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let field: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    if field.is_empty() || field.contains([':', '!', '{']) {
                        return Err(format!(
                            "template {template:?}: field {{{field}}} must be a key (no format specs)"
                        ));
                    }
                    parts.push((std::mem::take(&mut literal), Some(field)));
                }
                '}' => return Err(format!("template {template:?}: single '}}'")),
                c => literal.push(c),
            }
        }
        parts.push((literal, None));
        Ok(Box::new(StrFmt {
            parts,
            outkey: a.str("outkey")?.unwrap_or_else(|| "text".into()),
        }))
    }
}

impl PpOp for StrFmt {
    fn apply(&self, ex: &mut Example, _: &mut Rng) -> Result<(), String> {
        let mut out = Vec::new();
        for (literal, field) in &self.parts {
            out.extend_from_slice(literal.as_bytes());
            if let Some(k) = field {
                let v = ex
                    .get(k)
                    .ok_or_else(|| format!("no key '{k}' in the example"))?;
                out.extend(format_value(v));
            }
        }
        ex.insert(self.outkey.clone(), Value::Bytes(Array::scalar(out)));
        Ok(())
    }
}

/// The leading-axis rows `rows` of a value (`tf.gather(x, rows)`), or row `i` without the
/// leading axis when `single`.
fn gather_rows(v: &Value, rows: &[usize], single: bool) -> Value {
    fn g<T: Clone>(a: &Array<T>, rows: &[usize], single: bool) -> Array<T> {
        let step = a.data.len() / a.shape[0].max(1);
        let data = rows
            .iter()
            .flat_map(|&r| a.data[r * step..(r + 1) * step].iter().cloned())
            .collect();
        let mut shape = a.shape.clone();
        if single {
            shape.remove(0);
        } else {
            shape[0] = rows.len();
        }
        Array::new(shape, data)
    }
    match v {
        Value::U8(a) => Value::U8(g(a, rows, single)),
        Value::I64(a) => Value::I64(g(a, rows, single)),
        Value::F32(a) => Value::F32(g(a, rows, single)),
        Value::Bytes(a) => Value::Bytes(g(a, rows, single)),
    }
}

/// How many entries `choice` takes.
#[derive(Clone, Copy, Debug)]
enum ChoiceN {
    Single,
    Exactly(usize),
    Between(usize, usize),
}

/// `choice(n="single", key=None, fewer_ok=False, inkey=None, outkey=None)`: the same random
/// entries (along the leading axis) of every key; `single` drops the axis, otherwise the
/// chosen rows keep their order.
pub struct Choice {
    n: ChoiceN,
    inkeys: Vec<String>,
    outkeys: Vec<String>,
    fewer_ok: bool,
}

impl Choice {
    /// Factory.
    pub fn make(a: &Args) -> Result<Box<dyn PpOp>, String> {
        let n = match a.get("n") {
            None => ChoiceN::Single,
            Some(Lit::Str(s)) if s == "single" => ChoiceN::Single,
            Some(Lit::Int(k)) if *k >= 0 => ChoiceN::Exactly(*k as usize),
            Some(Lit::List(v)) => match v.as_slice() {
                [Lit::Int(lo), Lit::Int(hi)] if 0 <= *lo && lo <= hi => {
                    ChoiceN::Between(*lo as usize, *hi as usize)
                }
                _ => return Err(format!("n={} should be [min, max]", Lit::List(v.clone()))),
            },
            Some(v) => return Err(format!("n={v} should be \"single\", a count or [min, max]")),
        };
        let key = a.strs("key")?;
        let inkeys = match a.strs("inkey")? {
            v if v.is_empty() => key.clone(),
            v => v,
        };
        if inkeys.is_empty() {
            return Err("missing required argument 'key' (or 'inkey')".into());
        }
        let outkeys = match a.strs("outkey")? {
            v if v.is_empty() && key.is_empty() => inkeys.clone(),
            v if v.is_empty() => key,
            v => v,
        };
        if outkeys.len() != inkeys.len() {
            return Err(format!(
                "{} outkeys for {} inkeys",
                outkeys.len(),
                inkeys.len()
            ));
        }
        let outkeys = outkeys
            .iter()
            .zip(&inkeys)
            .map(|(o, i)| o.replace("{key}", i))
            .collect();
        Ok(Box::new(Choice {
            n,
            inkeys,
            outkeys,
            fewer_ok: a.bool("fewer_ok")?.unwrap_or(false),
        }))
    }
}

impl PpOp for Choice {
    fn apply(&self, ex: &mut Example, rng: &mut Rng) -> Result<(), String> {
        let mut lens = Vec::new();
        for k in &self.inkeys {
            let v = ex
                .get(k)
                .ok_or_else(|| format!("no key '{k}' in the example"))?;
            match v.shape().first() {
                Some(&n) => lens.push(n),
                None => {
                    return Err(format!(
                        "'{k}' is a scalar; choice picks along a leading axis"
                    ))
                }
            }
        }
        let n = lens[0];
        if let Some(k) = lens.iter().position(|&l| l != n) {
            return Err(format!(
                "'{}' has {} entries, '{}' has {n}",
                self.inkeys[k], lens[k], self.inkeys[0]
            ));
        }
        let min = match self.n {
            ChoiceN::Single => 1,
            ChoiceN::Exactly(k) => k,
            ChoiceN::Between(lo, _) => lo,
        };
        if n < min && !self.fewer_ok {
            return Err(format!(
                "'{}' has {n} entries, fewer than {min}",
                self.inkeys[0]
            ));
        }
        let (rows, single) = match self.n {
            ChoiceN::Single => {
                if n == 0 {
                    return Err(format!(
                        "'{}' has no entries to choose from",
                        self.inkeys[0]
                    ));
                }
                (vec![rng.below(n as u64) as usize], true)
            }
            ChoiceN::Exactly(k) | ChoiceN::Between(_, k) => {
                let take = match self.n {
                    ChoiceN::Between(lo, hi) => lo + rng.below((hi - lo + 1) as u64) as usize,
                    _ => k,
                };
                let mut order: Vec<usize> = (0..n).collect();
                for i in (1..n).rev() {
                    order.swap(i, rng.below(i as u64 + 1) as usize);
                }
                let mut rows: Vec<usize> = order.into_iter().take(take).collect();
                rows.sort_unstable();
                (rows, false)
            }
        };
        for (ik, ok) in self.inkeys.iter().zip(&self.outkeys) {
            let v = gather_rows(&ex[ik], &rows, single);
            ex.insert(ok.clone(), v);
        }
        Ok(())
    }
}

/// `setdefault(key, value)`: `key` set to `value` when missing or empty (an empty array
/// becomes one entry of `value`).
pub struct SetDefault {
    key: String,
    value: Lit,
}

impl SetDefault {
    /// Factory.
    pub fn make(a: &Args) -> Result<Box<dyn PpOp>, String> {
        let value = a
            .get("value")
            .cloned()
            .ok_or("missing required argument 'value'")?;
        if !matches!(value, Lit::Str(_) | Lit::Int(_) | Lit::Float(_)) {
            return Err(format!("value={value} should be a string or a number"));
        }
        Ok(Box::new(SetDefault {
            key: a.required("key", a.str("key")?)?,
            value,
        }))
    }
}

impl PpOp for SetDefault {
    fn apply(&self, ex: &mut Example, _: &mut Rng) -> Result<(), String> {
        let shape: Vec<usize> = match ex.get(&self.key) {
            Some(v) if !v.shape().contains(&0) => return Ok(()),
            Some(v) => v.shape().iter().map(|&d| d.max(1)).collect(),
            None => Vec::new(),
        };
        let n = shape.iter().product();
        let kind = ex.get(&self.key).map(Value::dtype);
        let v = match (&self.value, kind) {
            (Lit::Str(s), None | Some("bytes")) => {
                Value::Bytes(Array::new(shape, vec![s.clone().into_bytes(); n]))
            }
            (Lit::Int(i), None | Some("int64")) => Value::I64(Array::new(shape, vec![*i; n])),
            (Lit::Int(i), Some("uint8")) => Value::U8(Array::new(shape, vec![*i as u8; n])),
            (Lit::Int(i), Some("float32")) => Value::F32(Array::new(shape, vec![*i as f32; n])),
            (Lit::Float(f), None | Some("float32")) => {
                Value::F32(Array::new(shape, vec![*f as f32; n]))
            }
            (v, Some(k)) => return Err(format!("value {v} does not fit '{}' ({k})", self.key)),
            (v, None) => return Err(format!("value {v} has no dtype")),
        };
        ex.insert(self.key.clone(), v);
        Ok(())
    }
}

/// `flatten(keys=None)`: nested features joined with `/`. bv's examples are already flat
/// (`captions/text`), so this only checks that the named keys exist.
pub struct Flatten {
    keys: Vec<String>,
}

impl Flatten {
    /// Factory.
    pub fn make(a: &Args) -> Result<Box<dyn PpOp>, String> {
        Ok(Box::new(Flatten {
            keys: a.strs("keys")?,
        }))
    }
}

impl PpOp for Flatten {
    fn apply(&self, ex: &mut Example, _: &mut Rng) -> Result<(), String> {
        for k in &self.keys {
            let prefix = format!("{k}/");
            if !ex.keys().any(|e| e == k || e.starts_with(&prefix)) {
                return Err(format!("no key '{k}' in the example"));
            }
        }
        Ok(())
    }
}

/// `concat(inkeys, outkey=None, axis=-1)`: arrays of one dtype joined along `axis`.
pub struct Concat {
    inkeys: Vec<String>,
    outkey: String,
    axis: i64,
}

impl Concat {
    /// Factory.
    pub fn make(a: &Args) -> Result<Box<dyn PpOp>, String> {
        let inkeys = a.strs("inkeys")?;
        let first = inkeys
            .first()
            .cloned()
            .ok_or("missing required argument 'inkeys'")?;
        Ok(Box::new(Concat {
            outkey: a.str("outkey")?.unwrap_or(first),
            inkeys,
            axis: a.int("axis")?.unwrap_or(-1),
        }))
    }
}

impl PpOp for Concat {
    fn apply(&self, ex: &mut Example, _: &mut Rng) -> Result<(), String> {
        fn cat<T: Clone>(parts: &[&Array<T>], axis: usize) -> Result<Array<T>, String> {
            let s0 = &parts[0].shape;
            for p in parts {
                let same = p.shape.len() == s0.len()
                    && p.shape
                        .iter()
                        .zip(s0)
                        .enumerate()
                        .all(|(i, (a, b))| i == axis || a == b);
                if !same {
                    return Err(format!(
                        "shapes {:?} and {s0:?} differ off axis {axis}",
                        p.shape
                    ));
                }
            }
            let outer: usize = s0[..axis].iter().product();
            let mut data = Vec::new();
            for o in 0..outer {
                for p in parts {
                    let block = p.data.len() / outer.max(1);
                    data.extend_from_slice(&p.data[o * block..(o + 1) * block]);
                }
            }
            let mut shape = s0.clone();
            shape[axis] = parts.iter().map(|p| p.shape[axis]).sum();
            Ok(Array::new(shape, data))
        }
        let vals: Vec<&Value> = self
            .inkeys
            .iter()
            .map(|k| {
                ex.get(k)
                    .ok_or_else(|| format!("no key '{k}' in the example"))
            })
            .collect::<Result<_, _>>()?;
        let rank = vals[0].shape().len() as i64;
        let axis = if self.axis < 0 {
            self.axis + rank
        } else {
            self.axis
        };
        if !(0..rank).contains(&axis) {
            return Err(format!("axis {} is outside rank {rank}", self.axis));
        }
        let axis = axis as usize;
        macro_rules! join {
            ($variant:ident) => {{
                let parts: Vec<_> = vals
                    .iter()
                    .map(|v| match v {
                        Value::$variant(a) => Ok(a),
                        other => Err(format!(
                            "cannot concat {} with {}",
                            vals[0].dtype(),
                            other.dtype()
                        )),
                    })
                    .collect::<Result<_, _>>()?;
                Value::$variant(cat(&parts, axis)?)
            }};
        }
        let out = match vals[0] {
            Value::U8(_) => join!(U8),
            Value::I64(_) => join!(I64),
            Value::F32(_) => join!(F32),
            Value::Bytes(_) => join!(Bytes),
        };
        ex.insert(self.outkey.clone(), out);
        Ok(())
    }
}

/// `coco_captions(outkey="captions")`: the captions' texts (`captions/text`).
pub struct CocoCaptions {
    outkey: String,
}

impl CocoCaptions {
    /// Factory.
    pub fn make(a: &Args) -> Result<Box<dyn PpOp>, String> {
        Ok(Box::new(CocoCaptions {
            outkey: a.str("outkey")?.unwrap_or_else(|| "captions".into()),
        }))
    }
}

impl PpOp for CocoCaptions {
    fn apply(&self, ex: &mut Example, _: &mut Rng) -> Result<(), String> {
        let v = ex
            .get("captions/text")
            .cloned()
            .ok_or("no key 'captions/text' in the example (is it coco_captions?)")?;
        ex.insert(self.outkey.clone(), v);
        Ok(())
    }
}

/// The lines of a class-name list shipped with bv (`bv-train/data/class_names`).
pub fn lines(text: &'static str) -> Vec<&'static str> {
    text.lines().collect()
}

/// CLIP's ImageNet class names (big_vision's `CLIP_IMAGENET_CLASS_NAMES`).
pub const CLIP_IMAGENET: &str = include_str!("../../data/class_names/clip_imagenet.txt");
/// big_vision's `IMAGENET21k_CLASS_NAMES`.
pub const IMAGENET21K: &str = include_str!("../../data/class_names/imagenet21k.txt");

/// `clip_i1k_label_names` / `i21k_label_names` (inkey `label`, outkey `labels`): class ids
/// to their names.
pub struct LabelNames {
    names: Vec<&'static str>,
}

impl LabelNames {
    /// Factory of `clip_i1k_label_names`.
    pub fn make_clip_i1k(_: &Args) -> Result<Box<dyn ValueOp>, String> {
        Ok(Box::new(LabelNames {
            names: lines(CLIP_IMAGENET),
        }))
    }

    /// Factory of `i21k_label_names`.
    pub fn make_i21k(_: &Args) -> Result<Box<dyn ValueOp>, String> {
        Ok(Box::new(LabelNames {
            names: lines(IMAGENET21K),
        }))
    }
}

impl ValueOp for LabelNames {
    fn apply(&self, v: &Value, _: &mut Rng) -> Result<Value, String> {
        let (shape, ids): (Vec<usize>, Vec<i64>) = match v {
            Value::I64(a) => (a.shape.clone(), a.data.clone()),
            Value::U8(a) => (
                a.shape.clone(),
                a.data.iter().map(|&x| i64::from(x)).collect(),
            ),
            other => return Err(format!("expected integer labels, got {}", other.dtype())),
        };
        let data = ids
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| self.names.get(i))
                    .map(|n| n.as_bytes().to_vec())
                    .ok_or_else(|| format!("label {i} is outside 0..{}", self.names.len()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Value::Bytes(Array::new(shape, data)))
    }
}

/// `class_prompts(names, templates="clip_best", canonicalize=True)` (bv; inkey `label`,
/// outkey `texts`): a class id to its name put into every template of a big_vision set
/// (`clip_paper`, `clip_best`, `class_name_only`) or a list, as the zero-shot evaluator
/// builds its texts; names and templates canonicalized as it does. With
/// `choice(key="texts")` (or `tokenize`'s `sample_if_multi`) it makes captions for
/// classification datasets.
pub struct ClassPrompts {
    texts: Vec<Vec<Vec<u8>>>,
}

impl ClassPrompts {
    /// Factory.
    pub fn make(a: &Args) -> Result<Box<dyn ValueOp>, String> {
        use crate::evaluators::image_text::prompts::{canonicalize, templates};
        let names = a.strs("names")?;
        if names.is_empty() {
            return Err("missing required argument 'names' (a list of class names)".into());
        }
        let set = match a.get("templates") {
            None => templates("clip_best")?,
            Some(Lit::Str(s)) => templates(s)?,
            Some(Lit::List(_)) => a.strs("templates")?,
            Some(v) => return Err(format!("templates={v} should be a set name or a list")),
        };
        let canon = a.bool("canonicalize")?.unwrap_or(true);
        let texts = names
            .iter()
            .map(|n| {
                let name = if canon {
                    canonicalize(n, Some(","))
                } else {
                    n.clone()
                };
                let name = name.split(',').next().unwrap_or("").to_string();
                set.iter()
                    .map(|t| {
                        let t = if canon {
                            canonicalize(t, Some("{}"))
                        } else {
                            t.clone()
                        };
                        match t.split_once("{}") {
                            Some((a, b)) => Ok(format!("{a}{name}{b}").into_bytes()),
                            None => Err(format!("template {t:?} has no {{}}")),
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<_, _>>()?;
        Ok(Box::new(ClassPrompts { texts }))
    }
}

impl ValueOp for ClassPrompts {
    fn apply(&self, v: &Value, _: &mut Rng) -> Result<Value, String> {
        let label = match v {
            Value::I64(a) if a.data.len() == 1 => a.data[0],
            Value::U8(a) if a.data.len() == 1 => i64::from(a.data[0]),
            other => {
                return Err(format!(
                    "expected one integer label, got {} {:?}",
                    other.dtype(),
                    other.shape()
                ))
            }
        };
        let texts = usize::try_from(label)
            .ok()
            .and_then(|l| self.texts.get(l))
            .ok_or_else(|| format!("label {label} is outside 0..{}", self.texts.len()))?;
        Ok(Value::Bytes(Array::new(vec![texts.len()], texts.clone())))
    }
}

//! SentencePiece unigram tokenization in Rust, id for id as the SentencePiece library
//! (`sentencepiece_processor.cc`, `normalizer.cc`, `unigram_model.cc`'s optimized Viterbi):
//! the model's precompiled normalization (NFKC rules), whitespace handling, user-defined
//! symbols, unknown characters (merged runs, or UTF-8 bytes with byte fallback), and
//! decoding. big_vision tokenizes through TensorFlow Text, which runs the same library.
//!
//! ```
//! # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/golden/siglip/tokenizer/spm.model");
//! let sp = bv_train::pp::sentencepiece::SentencePiece::open(path)?;
//! let ids = sp.encode(b"a photo of a cat");
//! assert_eq!(sp.decode(&ids), "a photo of a cat");
//! # Ok::<(), String>(())
//! ```

mod charsmap;
mod proto;

use std::collections::HashMap;
use std::path::Path;

use prost::Message;

use charsmap::CharsMap;
use proto::{ModelProto, PieceType};

/// `▁`, SentencePiece's visible space.
const SPACE: &str = "\u{2581}";
/// `kUnkPenalty`: an unknown character costs the lowest piece score minus this.
const UNK_PENALTY: f32 = 10.0;

/// A loaded unigram SentencePiece model.
#[derive(Clone, Debug)]
pub struct SentencePiece {
    pieces: Vec<(String, f32, PieceType)>,
    ids: HashMap<String, u32>,
    trie: Trie,
    normalizer: Normalizer,
    denormalizer: Option<Normalizer>,
    byte_fallback: bool,
    unk_id: u32,
    unk_surface: String,
    min_score: f32,
    max_score: f32,
}

/// `Normalizer`: the rules of a `NormalizerSpec` and the user-defined symbols it keeps.
#[derive(Clone, Debug)]
struct Normalizer {
    charsmap: CharsMap,
    user_defined: Trie,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
    suffix_whitespace: bool,
}

impl Normalizer {
    fn new(spec: &proto::NormalizerSpec, suffix_whitespace: bool) -> Result<Normalizer, String> {
        Ok(Normalizer {
            charsmap: CharsMap::parse(spec.precompiled_charsmap.as_deref().unwrap_or_default())?,
            user_defined: Trie::new(),
            add_dummy_prefix: spec.add_dummy_prefix.unwrap_or(true),
            remove_extra_whitespaces: spec.remove_extra_whitespaces.unwrap_or(true),
            escape_whitespaces: spec.escape_whitespaces.unwrap_or(true),
            suffix_whitespace,
        })
    }

    /// One normalization step (`NormalizePrefix`): the replacement of the longest rule or
    /// user-defined symbol at the start of `input`, and how many bytes it consumes.
    fn normalize_prefix<'a>(&'a self, input: &'a [u8]) -> (&'a [u8], usize) {
        let ud = self.user_defined.longest_prefix(input);
        if ud > 0 {
            return (&input[..ud], ud);
        }
        if let Some((len, rep)) = self.charsmap.longest_prefix(input) {
            return (rep, len);
        }
        match valid_char_len(input) {
            Some(n) => (&input[..n], n),
            None => ("\u{FFFD}".as_bytes(), 1),
        }
    }

    /// The normalized text (`Normalizer::Normalize`).
    fn normalize(&self, mut input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() * 3);
        if self.remove_extra_whitespaces {
            while !input.is_empty() {
                let (rep, n) = self.normalize_prefix(input);
                if rep != b" " {
                    break;
                }
                input = &input[n..];
            }
        }
        if input.is_empty() {
            return out;
        }
        let ws: &[u8] = if self.escape_whitespaces {
            SPACE.as_bytes()
        } else {
            b" "
        };
        if !self.suffix_whitespace && self.add_dummy_prefix {
            out.extend_from_slice(ws);
        }
        let mut prev_space = self.remove_extra_whitespaces;
        while !input.is_empty() {
            let (mut rep, n) = self.normalize_prefix(input);
            while prev_space && rep.first() == Some(&b' ') {
                rep = &rep[1..];
            }
            if !rep.is_empty() {
                for &b in rep {
                    if self.escape_whitespaces && b == b' ' {
                        out.extend_from_slice(SPACE.as_bytes());
                    } else {
                        out.push(b);
                    }
                }
                prev_space = rep.last() == Some(&b' ');
            }
            input = &input[n..];
            if !self.remove_extra_whitespaces {
                prev_space = false;
            }
        }
        if self.remove_extra_whitespaces {
            while out.ends_with(ws) {
                out.truncate(out.len() - ws.len());
            }
        }
        if self.suffix_whitespace && self.add_dummy_prefix {
            out.extend_from_slice(ws);
        }
        out
    }
}

/// A byte trie of pieces: `children[node]` sorted by byte; `value[node]` the id ending there.
#[derive(Clone, Debug, Default)]
struct Trie {
    children: Vec<Vec<(u8, u32)>>,
    value: Vec<Option<u32>>,
}

impl Trie {
    fn new() -> Trie {
        Trie {
            children: vec![Vec::new()],
            value: vec![None],
        }
    }

    fn insert(&mut self, key: &[u8], id: u32) {
        let mut node = 0usize;
        for &b in key {
            node = match self.children[node].binary_search_by_key(&b, |c| c.0) {
                Ok(i) => self.children[node][i].1 as usize,
                Err(i) => {
                    let n = self.value.len() as u32;
                    self.children[node].insert(i, (b, n));
                    self.children.push(Vec::new());
                    self.value.push(None);
                    n as usize
                }
            };
        }
        self.value[node].get_or_insert(id);
    }

    fn step(&self, node: usize, b: u8) -> Option<usize> {
        let c = &self.children[node];
        c.binary_search_by_key(&b, |c| c.0)
            .ok()
            .map(|i| c[i].1 as usize)
    }

    /// The length of the longest key that prefixes `input` (0 for none).
    fn longest_prefix(&self, input: &[u8]) -> usize {
        let (mut node, mut best) = (0, 0);
        for (i, &b) in input.iter().enumerate() {
            match self.step(node, b) {
                Some(n) => node = n,
                None => break,
            }
            if self.value[node].is_some() {
                best = i + 1;
            }
        }
        best
    }
}

/// The byte length of the UTF-8 character starting with `b` (`OneCharLen`).
fn one_char_len(b: u8) -> usize {
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4][(b >> 4) as usize]
}

/// The length of one valid UTF-8 character at the start of `s` (`IsValidDecodeUTF8`:
/// well-formed, shortest form, no surrogates), or `None`.
fn valid_char_len(s: &[u8]) -> Option<usize> {
    let n = match s.first()? {
        b if *b < 0x80 => return Some(1),
        b if b & 0xE0 == 0xC0 => 2,
        b if b & 0xF0 == 0xE0 => 3,
        b if b & 0xF8 == 0xF0 => 4,
        _ => return None,
    };
    std::str::from_utf8(s.get(..n)?).ok().map(|_| n)
}

impl SentencePiece {
    /// Reads a `.model` file.
    pub fn open(path: impl AsRef<Path>) -> Result<SentencePiece, String> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        SentencePiece::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses a serialized `ModelProto`; errors say what is wrong with it.
    pub fn from_bytes(bytes: &[u8]) -> Result<SentencePiece, String> {
        let m =
            ModelProto::decode(bytes).map_err(|e| format!("not a SentencePiece model ({e})"))?;
        if m.pieces.is_empty() {
            return Err("not a SentencePiece model (no pieces)".into());
        }
        let trainer = m.trainer_spec.clone().unwrap_or_default();
        if let Some(t) = trainer.model_type.filter(|&t| t != 1) {
            let name = ["", "unigram", "BPE", "word", "char"]
                .get(t as usize)
                .unwrap_or(&"?");
            return Err(format!("a {name} model; only unigram models are supported"));
        }
        let norm = m.normalizer_spec.clone().unwrap_or_default();
        let mut sp = SentencePiece {
            pieces: Vec::with_capacity(m.pieces.len()),
            ids: HashMap::new(),
            trie: Trie::new(),
            normalizer: Normalizer::new(&norm, false)?,
            denormalizer: match &m.denormalizer_spec {
                Some(d)
                    if d.precompiled_charsmap
                        .as_ref()
                        .is_some_and(|c| !c.is_empty()) =>
                {
                    Some(Normalizer::new(d, false)?)
                }
                _ => None,
            },
            byte_fallback: trainer.byte_fallback.unwrap_or(false),
            unk_id: u32::MAX,
            unk_surface: trainer
                .unk_surface
                .clone()
                .unwrap_or_else(|| " \u{2047} ".into()),
            min_score: f32::MAX,
            max_score: f32::MIN_POSITIVE,
        };
        for (i, p) in m.pieces.iter().enumerate() {
            let id = i as u32;
            let piece = p.piece.clone().unwrap_or_default();
            if piece.is_empty() {
                return Err(format!("piece {i} is empty"));
            }
            let kind = PieceType::from_i32(p.kind.unwrap_or(1))
                .ok_or_else(|| format!("piece {i} ({piece:?}) has unknown type {:?}", p.kind))?;
            let score = p.score.unwrap_or(0.0);
            if sp.ids.insert(piece.clone(), id).is_some() {
                return Err(format!("piece {piece:?} is in the vocabulary twice"));
            }
            match kind {
                PieceType::Normal | PieceType::UserDefined | PieceType::Unused => {
                    sp.trie.insert(piece.as_bytes(), id)
                }
                PieceType::Unknown if sp.unk_id != u32::MAX => {
                    return Err("more than one <unk> piece".into())
                }
                PieceType::Unknown => sp.unk_id = id,
                PieceType::Byte if !sp.byte_fallback => {
                    return Err(format!("byte piece {piece:?} without byte_fallback"))
                }
                _ => {}
            }
            if kind == PieceType::UserDefined {
                sp.normalizer.user_defined.insert(piece.as_bytes(), id);
            }
            if kind == PieceType::Normal {
                sp.min_score = sp.min_score.min(score);
                sp.max_score = sp.max_score.max(score);
            }
            sp.pieces.push((piece, score, kind));
        }
        sp.normalizer.suffix_whitespace = trainer.treat_whitespace_as_suffix.unwrap_or(false);
        if sp.unk_id == u32::MAX {
            return Err("the model has no <unk> piece".into());
        }
        if sp.byte_fallback {
            if let Some(b) = (0..=255u8).find(|b| !sp.ids.contains_key(&byte_piece(*b))) {
                return Err(format!("byte_fallback without the piece {}", byte_piece(b)));
            }
        }
        Ok(sp)
    }

    /// The vocabulary size.
    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    /// Always false: a model has at least one piece.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// The id of `piece` (`PieceToId`): the unknown id for a piece not in the vocabulary.
    pub fn piece_to_id(&self, piece: &str) -> u32 {
        self.ids.get(piece).copied().unwrap_or(self.unk_id)
    }

    /// The id of the piece of type `kind` named `name` in the trainer spec's defaults
    /// (`</s>`, `<s>`, `<pad>`), if the vocabulary has it as a control piece.
    pub fn control_id(&self, name: &str) -> Option<u32> {
        self.ids
            .get(name)
            .copied()
            .filter(|&i| self.pieces[i as usize].2 == PieceType::Control)
    }

    /// The normalized text (`Normalizer::Normalize`).
    pub fn normalize(&self, input: &[u8]) -> Vec<u8> {
        self.normalizer.normalize(input)
    }

    /// The best segmentation of normalized text (`EncodeOptimized`): `(start, end, id)`
    /// spans, an unknown character as a one-character span with the unknown id.
    fn viterbi(&self, s: &[u8]) -> Vec<(usize, usize, u32)> {
        #[derive(Clone, Copy)]
        struct Best {
            id: u32,
            score: f32,
            start: Option<usize>,
        }
        let size = s.len();
        let unk_score = self.min_score - UNK_PENALTY;
        let mut best = vec![
            Best {
                id: u32::MAX,
                score: 0.0,
                start: None,
            };
            size + 1
        ];
        let mut start = 0;
        while start < size {
            let here = best[start].score;
            let mblen = one_char_len(s[start]).min(size - start);
            let mut single = false;
            let mut node = 0;
            for end in start + 1..=size {
                let Some(n) = self.trie.step(node, s[end - 1]) else {
                    break;
                };
                node = n;
                let Some(id) = self.trie.value[node] else {
                    continue;
                };
                let (_, score, kind) = &self.pieces[id as usize];
                if *kind == PieceType::Unused {
                    continue;
                }
                let len = end - start;
                let candidate = if *kind == PieceType::UserDefined {
                    (len as f32 * self.max_score) as f64 - 0.1 + f64::from(here)
                } else {
                    f64::from(score + here)
                };
                let target = &mut best[end];
                if target.start.is_none() || candidate > f64::from(target.score) {
                    *target = Best {
                        id,
                        score: candidate as f32,
                        start: Some(start),
                    };
                }
                single |= len == mblen;
            }
            if !single {
                let candidate = unk_score + here;
                let target = &mut best[start + mblen];
                if target.start.is_none() || candidate > target.score {
                    *target = Best {
                        id: self.unk_id,
                        score: candidate,
                        start: Some(start),
                    };
                }
            }
            start += mblen;
        }
        let mut spans = Vec::new();
        let mut end = size;
        while end > 0 {
            let b = best[end];
            let start = b.start.unwrap_or(0);
            spans.push((start, end, b.id));
            end = start;
        }
        spans.reverse();
        spans
    }

    /// The ids of `text` (`EncodeAsIds`): runs of unknown characters become one unknown id,
    /// or, with byte fallback, the ids of their UTF-8 bytes.
    pub fn encode(&self, text: &[u8]) -> Vec<u32> {
        let normalized = self.normalizer.normalize(text);
        let mut ids = Vec::new();
        let mut prev_unk = false;
        for (start, end, id) in self.viterbi(&normalized) {
            let unk = id == self.unk_id;
            if unk && self.byte_fallback {
                ids.extend(
                    normalized[start..end]
                        .iter()
                        .map(|&b| self.piece_to_id(&byte_piece(b))),
                );
            } else if !(unk && prev_unk) {
                ids.push(id);
            }
            prev_unk = unk;
        }
        ids
    }

    /// The text of `ids` (`DecodeIds`): pieces joined with `▁` as spaces, a leading `▁`
    /// dropped from each piece while the text is still empty, control pieces invisible,
    /// unknown ids as the unknown surface, byte pieces joined into UTF-8 (each invalid byte
    /// as U+FFFD), then the model's denormalization.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut out: Vec<u8> = Vec::new();
        let mut bytes: Vec<u8> = Vec::new();
        let flush = |bytes: &mut Vec<u8>, out: &mut Vec<u8>| {
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                match valid_char_len(rest) {
                    Some(n) => {
                        out.extend_from_slice(&rest[..n]);
                        rest = &rest[n..];
                    }
                    None => {
                        out.extend_from_slice("\u{FFFD}".as_bytes());
                        rest = &rest[1..];
                    }
                }
            }
            bytes.clear();
        };
        let strip = self.normalizer.add_dummy_prefix || self.normalizer.remove_extra_whitespaces;
        let (mut bos, mut bos_seen) = (true, false);
        for &id in ids {
            let piece = self.pieces.get(id as usize);
            if let Some((p, _, PieceType::Byte)) = piece {
                let hex = p.trim_start_matches("<0x").trim_end_matches('>');
                if let Ok(b) = u8::from_str_radix(hex, 16) {
                    bytes.push(b);
                    continue;
                }
            }
            flush(&mut bytes, &mut out);
            bos &= !bos_seen && out.is_empty();
            bos_seen = false;
            match piece {
                Some((_, _, PieceType::Control)) => {}
                None | Some((_, _, PieceType::Unknown)) => {
                    out.extend_from_slice(self.unk_surface.as_bytes())
                }
                Some((p, _, _)) => {
                    let stripped = p.strip_prefix(SPACE).filter(|_| bos && strip);
                    bos_seen = stripped.is_some() && !self.normalizer.remove_extra_whitespaces;
                    out.extend_from_slice(stripped.unwrap_or(p).replace(SPACE, " ").as_bytes());
                }
            }
        }
        flush(&mut bytes, &mut out);
        if let Some(d) = &self.denormalizer {
            out = d.normalize(&out);
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// `ByteToPiece`: `<0xAB>`.
fn byte_piece(b: u8) -> String {
    format!("<0x{b:02X}>")
}

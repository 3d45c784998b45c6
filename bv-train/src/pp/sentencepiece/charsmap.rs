//! SentencePiece's precompiled character map: a Darts double-array trie over source byte
//! strings whose values point into a blob of NUL-terminated replacements
//! (`normalizer.cc`: `DecodePrecompiledCharsMap`, `commonPrefixSearch`).

/// A precompiled normalization map.
#[derive(Clone, Debug, Default)]
pub struct CharsMap {
    units: Vec<u32>,
    normalized: Vec<u8>,
}

/// Darts unit fields.
fn has_leaf(u: u32) -> bool {
    (u >> 8) & 1 == 1
}
fn value(u: u32) -> u32 {
    u & ((1 << 31) - 1)
}
fn label(u: u32) -> u32 {
    u & ((1 << 31) | 0xFF)
}
fn offset(u: u32) -> usize {
    ((u >> 10) << ((u & (1 << 9)) >> 6)) as usize
}

impl CharsMap {
    /// Reads the blob: a little-endian `u32` trie size in bytes, the trie units, then the
    /// replacement strings. Errors name what is inconsistent.
    pub fn parse(blob: &[u8]) -> Result<CharsMap, String> {
        if blob.is_empty() {
            return Ok(CharsMap::default());
        }
        let size = blob
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or("precompiled_charsmap is shorter than its 4-byte header")?;
        if size % 4 != 0 || 4 + size > blob.len() {
            return Err(format!(
                "precompiled_charsmap: trie of {size} bytes does not fit in {} bytes",
                blob.len() - 4
            ));
        }
        let units = blob[4..4 + size]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(CharsMap {
            units,
            normalized: blob[4 + size..].to_vec(),
        })
    }

    /// The longest source string that prefixes `input`: its length and replacement; `None`
    /// when no rule applies.
    pub fn longest_prefix(&self, input: &[u8]) -> Option<(usize, &[u8])> {
        let unit = |i: usize| self.units.get(i).copied();
        let mut node = offset(unit(0)?);
        let mut best = None;
        for (i, &b) in input.iter().enumerate() {
            node ^= b as usize;
            let u = unit(node)?;
            if label(u) != u32::from(b) {
                break;
            }
            node ^= offset(u);
            if has_leaf(u) {
                let v = value(unit(node)?) as usize;
                best = Some((i + 1, v));
            }
        }
        let (len, at) = best?;
        let tail = self.normalized.get(at..)?;
        let end = tail.iter().position(|&c| c == 0).unwrap_or(tail.len());
        Some((len, &tail[..end]))
    }
}

//! ArrayRecord shards (TFDS `fileFormat: array_record`), read without the C++ library.
//!
//! An ArrayRecord file is a Riegeli/records file (google/riegeli `records_format.md`): 64 KiB
//! blocks that each begin with a 24-byte block header, and chunks (a 40-byte chunk header, then
//! data) that run across block headers. Every header and every chunk's data carries a
//! HighwayHash-64 (key "Riegeli/records\n" twice), all of which are verified. ArrayRecord
//! (google/array_record `layout.proto`) adds, after the data chunks, a footer chunk (a
//! `RiegeliFooterMetadata` record, then one `ArrayRecordFooter` record per data chunk) and, in
//! the last block, a postscript chunk holding the footer's offset. We read the postscript, then
//! the footer, then the data chunks it lists.
//!
//! Data chunks must be simple chunks (TFDS writes `transpose:false`) compressed with zstd or
//! not at all (TFDS writes `zstd:3`); brotli, snappy and transposed chunks are reported as
//! unsupported. A record's position is Riegeli's numeric record position: the chunk's offset
//! plus the record's index in the chunk.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use highway::{HighwayHash, HighwayHasher, Key};
use prost::Message;

use super::error::{DataError, Result};
use super::tfrecord::Corruption;

const BLOCK: u64 = 1 << 16;
const BLOCK_HEADER: u64 = 24;
const CHUNK_HEADER: usize = 40;
const HASH_KEY: [u64; 4] = [
    0x2f69_6c65_6765_6952,
    0x0a73_6472_6f63_6572,
    0x2f69_6c65_6765_6952,
    0x0a73_6472_6f63_6572,
];
/// The first 8 bytes of every Riegeli file (the hash of the first block header).
const SIGNATURE: [u8; 8] = [0x83, 0xaf, 0x70, 0xd1, 0x0d, 0x88, 0x4a, 0x3f];
/// `RiegeliPostscript.magic` of ArrayRecord files.
const MAGIC: u64 = 0x7193_0e70_4fda_e05e;
const SIMPLE_CHUNK: u8 = b'r';
const TRANSPOSED_CHUNK: u8 = b't';

fn hash(data: &[u8]) -> u64 {
    HighwayHasher::new(Key(HASH_KEY)).hash64(data)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[derive(Clone, PartialEq, prost::Message)]
struct Postscript {
    #[prost(uint64, optional, tag = "1")]
    footer_offset: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    magic: Option<u64>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct FooterMetadata {
    #[prost(message, optional, tag = "1")]
    array_record_metadata: Option<ArrayRecordMetadata>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ArrayRecordMetadata {
    #[prost(uint32, optional, tag = "1")]
    version: Option<u32>,
    #[prost(uint64, optional, tag = "2")]
    num_chunks: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    num_records: Option<u64>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ChunkIndex {
    #[prost(uint64, optional, tag = "1")]
    chunk_offset: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    decoded_data_size: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    num_records: Option<u64>,
}

/// One data chunk from the footer: where it starts and how many records it holds.
#[derive(Clone, Copy, Debug)]
struct Chunk {
    offset: u64,
    num_records: u64,
}

/// Reader of one ArrayRecord file, sequentially or by record position.
pub struct ArrayRecordReader {
    path: PathBuf,
    file: File,
    file_len: u64,
    chunks: Vec<Chunk>,
    corruption: Corruption,
    skipped: u64,
    /// Index into `chunks` of the chunk holding the next record.
    chunk: usize,
    /// Index of the next record within that chunk.
    in_chunk: u64,
    /// The decoded records of `chunks[chunk]`, once read.
    decoded: Option<Vec<Vec<u8>>>,
}

impl ArrayRecordReader {
    /// Opens `path` and reads its footer index.
    pub fn open(path: &Path, corruption: Corruption) -> Result<Self> {
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let file_len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
        let mut r = ArrayRecordReader {
            path: path.to_path_buf(),
            file,
            file_len,
            chunks: Vec::new(),
            corruption,
            skipped: 0,
            chunk: 0,
            in_chunk: 0,
            decoded: None,
        };
        r.chunks = r.read_index()?;
        Ok(r)
    }

    /// Number of records in the file (from the footer).
    pub fn num_records(&self) -> u64 {
        self.chunks.iter().map(|c| c.num_records).sum()
    }

    /// Records skipped so far in corrupted chunks (with [`Corruption::SkipAndCount`]).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Position of the next record (at the end, one past the last record's).
    pub fn offset(&self) -> u64 {
        match self.chunks.get(self.chunk) {
            Some(c) => c.offset + self.in_chunk,
            None => self.chunks.last().map_or(0, |c| c.offset + c.num_records),
        }
    }

    fn corrupt(&self, offset: u64, what: impl Into<String>) -> DataError {
        DataError::Corrupt {
            path: self.path.clone(),
            offset,
            what: what.into(),
        }
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let mut f = &self.file;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| DataError::io(&self.path, e))?;
        f.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.corrupt(offset, format!("file ends within {} bytes", buf.len()))
            } else {
                DataError::io(&self.path, e)
            }
        })
    }

    /// Reads `len` bytes of the chunk starting at `chunk_begin`, from file position `pos` on,
    /// checking and leaving out the block headers in between. Returns the bytes and the end.
    fn read_chunk_bytes(
        &self,
        chunk_begin: u64,
        mut pos: u64,
        len: usize,
    ) -> Result<(Vec<u8>, u64)> {
        let mut out = vec![0u8; len];
        let mut got = 0;
        while got < len {
            if pos.is_multiple_of(BLOCK) {
                let mut h = [0u8; BLOCK_HEADER as usize];
                self.read_exact_at(pos, &mut h)?;
                if hash(&h[8..]) != u64_at(&h, 0) {
                    return Err(self.corrupt(pos, "block header hash mismatch"));
                }
                // `previous_chunk`: the distance back to the start of the chunk it interrupts.
                if u64_at(&h, 8) != pos - chunk_begin {
                    return Err(self.corrupt(
                        pos,
                        format!(
                            "block header points to a chunk at byte {}, expected {chunk_begin}",
                            pos.wrapping_sub(u64_at(&h, 8))
                        ),
                    ));
                }
                pos += BLOCK_HEADER;
            }
            let n = ((BLOCK - pos % BLOCK) as usize).min(len - got);
            self.read_exact_at(pos, &mut out[got..got + n])?;
            got += n;
            pos += n as u64;
        }
        Ok((out, pos))
    }

    /// Reads, verifies and decodes the simple chunk at `begin` into its records.
    fn read_chunk(&self, begin: u64) -> Result<Vec<Vec<u8>>> {
        let (h, data_pos) = self.read_chunk_bytes(begin, begin, CHUNK_HEADER)?;
        if hash(&h[8..]) != u64_at(&h, 0) {
            return Err(self.corrupt(begin, "chunk header hash mismatch"));
        }
        let data_size = u64_at(&h, 8);
        let data_hash = u64_at(&h, 16);
        let kind = h[24];
        let num_records = u64_at(&h, 24) >> 8;
        let decoded_size = u64_at(&h, 32);
        match kind {
            SIMPLE_CHUNK => {}
            TRANSPOSED_CHUNK => {
                return Err(
                    self.unsupported(begin, "transposed chunks (written with transpose:true)")
                )
            }
            k => {
                return Err(self.corrupt(begin, format!("chunk type {k:#04x} is not a data chunk")))
            }
        }
        if data_size > self.file_len {
            return Err(self.corrupt(
                begin,
                format!("chunk data size {data_size} exceeds the file"),
            ));
        }
        let (data, _) = self.read_chunk_bytes(begin, data_pos, data_size as usize)?;
        if hash(&data) != data_hash {
            return Err(self.corrupt(begin, "chunk data hash mismatch"));
        }
        self.decode_simple(begin, &data, num_records, decoded_size)
    }

    fn unsupported(&self, offset: u64, what: &str) -> DataError {
        DataError::Unsupported {
            path: self.path.clone(),
            offset,
            what: format!(
                "{what}: not supported; rewrite the shard with TFDS's options (group_size:1, zstd)"
            ),
        }
    }

    /// Splits a simple chunk's data: compression type, sizes (varints), values.
    fn decode_simple(
        &self,
        begin: u64,
        data: &[u8],
        num_records: u64,
        decoded_size: u64,
    ) -> Result<Vec<Vec<u8>>> {
        let bad = |what: &str| self.corrupt(begin, format!("simple chunk: {what}"));
        let (&compression, rest) = data.split_first().ok_or_else(|| bad("empty data"))?;
        let (sizes_len, rest) = varint(rest).ok_or_else(|| bad("bad sizes length"))?;
        if sizes_len > rest.len() as u64 {
            return Err(bad("sizes run past the chunk"));
        }
        let (sizes, values) = rest.split_at(sizes_len as usize);
        let sizes = self.decompress(begin, compression, sizes)?;
        let values = self.decompress(begin, compression, values)?;
        if values.len() as u64 != decoded_size {
            return Err(bad(&format!(
                "{} bytes of values, the header says {decoded_size}",
                values.len()
            )));
        }
        let mut records = Vec::with_capacity(num_records.min(1 << 20) as usize);
        let (mut s, mut at) = (sizes.as_slice(), 0usize);
        for _ in 0..num_records {
            let (n, r) = varint(s).ok_or_else(|| bad("bad record size"))?;
            s = r;
            let end = at
                .checked_add(n as usize)
                .filter(|&e| e <= values.len())
                .ok_or_else(|| bad("record sizes exceed the values"))?;
            records.push(values[at..end].to_vec());
            at = end;
        }
        if !s.is_empty() || at != values.len() {
            return Err(bad("record sizes do not add up to the values"));
        }
        Ok(records)
    }

    /// A Riegeli compressed buffer: as is, or a varint decoded size then a compressed stream.
    fn decompress(&self, begin: u64, compression: u8, buf: &[u8]) -> Result<Vec<u8>> {
        let name = match compression {
            0 => return Ok(buf.to_vec()),
            b'z' => "zstd",
            b'b' => return Err(self.unsupported(begin, "brotli compression")),
            b's' => return Err(self.unsupported(begin, "snappy compression")),
            c => return Err(self.corrupt(begin, format!("unknown compression type {c:#04x}"))),
        };
        let bad = |what: String| self.corrupt(begin, format!("{name}: {what}"));
        let (size, stream) = varint(buf).ok_or_else(|| bad("bad decoded size".into()))?;
        if size > 1 << 32 {
            return Err(bad(format!("decoded size {size} is implausible")));
        }
        let out = zstd::bulk::decompress(stream, size as usize).map_err(|e| bad(e.to_string()))?;
        if out.len() as u64 != size {
            return Err(bad(format!("{} bytes decoded, {size} promised", out.len())));
        }
        Ok(out)
    }

    /// Reads the postscript (last block) and the footer it points to.
    fn read_index(&self) -> Result<Vec<Chunk>> {
        let len = self.file_len;
        let mut sig = [0u8; 8];
        self.read_exact_at(0, &mut sig)?;
        if sig != SIGNATURE {
            return Err(self.corrupt(0, "not a Riegeli/ArrayRecord file (bad signature)"));
        }
        if len < 2 * BLOCK || !len.is_multiple_of(BLOCK) {
            return Err(self.corrupt(
                len,
                format!("file size {len} is not a multiple of 64 KiB: truncated"),
            ));
        }
        let post_at = len - BLOCK;
        let post = self.read_chunk(post_at)?;
        let post = post
            .first()
            .and_then(|r| Postscript::decode(r.as_slice()).ok())
            .filter(|p| p.magic == Some(MAGIC))
            .ok_or_else(|| self.corrupt(post_at, "no ArrayRecord postscript (bad magic)"))?;
        let footer_at = post.footer_offset.unwrap_or(0);
        if footer_at >= post_at {
            return Err(self.corrupt(
                post_at,
                format!("footer offset {footer_at} is past the postscript"),
            ));
        }
        let footer = self.read_chunk(footer_at)?;
        let bad = |what: String| self.corrupt(footer_at, format!("footer: {what}"));
        let (meta, index) = footer
            .split_first()
            .ok_or_else(|| bad("no metadata record".into()))?;
        let meta = FooterMetadata::decode(meta.as_slice())
            .ok()
            .and_then(|m| m.array_record_metadata)
            .ok_or_else(|| bad("no ArrayRecord metadata".into()))?;
        if meta.version != Some(1) {
            return Err(bad(format!("version {:?}, only 1 is known", meta.version)));
        }
        if meta.num_chunks != Some(index.len() as u64) {
            return Err(bad(format!(
                "{} index records for {:?} chunks",
                index.len(),
                meta.num_chunks
            )));
        }
        let chunks = index
            .iter()
            .map(|r| {
                let c = ChunkIndex::decode(r.as_slice()).map_err(|e| bad(e.to_string()))?;
                Ok(Chunk {
                    offset: c.chunk_offset.unwrap_or(0),
                    num_records: c.num_records.unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let total: u64 = chunks.iter().map(|c| c.num_records).sum();
        if meta.num_records != Some(total) {
            return Err(bad(format!(
                "chunks hold {total} records, the metadata says {:?}",
                meta.num_records
            )));
        }
        if chunks.windows(2).any(|w| w[0].offset >= w[1].offset)
            || chunks.last().is_some_and(|c| c.offset >= footer_at)
        {
            return Err(bad("chunk offsets are not increasing".into()));
        }
        Ok(chunks)
    }

    /// Moves to the next chunk, dropping what was decoded of this one.
    fn next_chunk(&mut self) {
        self.chunk += 1;
        self.in_chunk = 0;
        self.decoded = None;
    }

    fn next_inner(&mut self, want_data: bool) -> Option<Result<(u64, Vec<u8>)>> {
        loop {
            let c = *self.chunks.get(self.chunk)?;
            if self.in_chunk == c.num_records {
                self.next_chunk();
                continue;
            }
            let pos = c.offset + self.in_chunk;
            if want_data && self.decoded.is_none() {
                match self.read_chunk(c.offset) {
                    Ok(recs) if recs.len() as u64 == c.num_records => self.decoded = Some(recs),
                    Ok(recs) => {
                        let e = self.count_mismatch(c, recs.len());
                        if let Some(e) = self.on_corrupt(e, c) {
                            return Some(Err(e));
                        }
                        continue;
                    }
                    Err(e) => {
                        if let Some(e) = self.on_corrupt(e, c) {
                            return Some(Err(e));
                        }
                        continue;
                    }
                }
            }
            let data = match &mut self.decoded {
                Some(recs) if want_data => std::mem::take(&mut recs[self.in_chunk as usize]),
                _ => Vec::new(),
            };
            self.in_chunk += 1;
            return Some(Ok((pos, data)));
        }
    }

    fn count_mismatch(&self, c: Chunk, got: usize) -> DataError {
        let n = c.num_records;
        self.corrupt(
            c.offset,
            format!("chunk holds {got} records, the footer says {n}"),
        )
    }

    /// Skips the rest of chunk `c` after a corruption, or returns the error to report.
    fn on_corrupt(&mut self, e: DataError, c: Chunk) -> Option<DataError> {
        let skippable = matches!(e, DataError::Corrupt { .. });
        if !skippable || self.corruption == Corruption::Error {
            self.chunk = self.chunks.len();
            return Some(e);
        }
        self.skipped += c.num_records - self.in_chunk;
        self.next_chunk();
        None
    }

    /// Reads the next record: `(position, payload)`, or `None` at the end of the file.
    pub fn next_record(&mut self) -> Option<Result<(u64, Vec<u8>)>> {
        self.next_inner(true)
    }

    /// Skips the next record without reading its payload; returns its position.
    pub fn skip_record(&mut self) -> Option<Result<u64>> {
        self.next_inner(false).map(|r| r.map(|(o, _)| o))
    }

    /// Reads the record at `position` (as returned by [`Self::next_record`]); the sequential
    /// position is unchanged.
    pub fn read_at(&self, position: u64) -> Result<Vec<u8>> {
        let i = self.chunks.partition_point(|c| c.offset <= position);
        let c = match i.checked_sub(1).map(|i| self.chunks[i]) {
            Some(c) if position - c.offset < c.num_records => c,
            _ => return Err(self.corrupt(position, "no record at this position")),
        };
        let mut recs = self.read_chunk(c.offset)?;
        if recs.len() as u64 != c.num_records {
            return Err(self.count_mismatch(c, recs.len()));
        }
        Ok(std::mem::take(&mut recs[(position - c.offset) as usize]))
    }
}

/// A protobuf varint64 at the start of `b`, and the rest.
fn varint(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, &x) in b.iter().enumerate().take(10) {
        v |= u64::from(x & 0x7f) << (7 * i);
        if x & 0x80 == 0 {
            return Some((v, &b[i + 1..]));
        }
    }
    None
}

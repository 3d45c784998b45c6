//! The fields of SentencePiece's `ModelProto` (`sentencepiece_model.proto`) that encoding
//! and decoding read, declared with prost's derive (no protoc). Unknown fields are skipped.

/// `sentencepiece.ModelProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    /// The vocabulary, by id.
    #[prost(message, repeated, tag = "1")]
    pub pieces: Vec<Piece>,
    /// How the model was trained (ids of special pieces, byte fallback).
    #[prost(message, optional, tag = "2")]
    pub trainer_spec: Option<TrainerSpec>,
    /// Text normalization before encoding.
    #[prost(message, optional, tag = "3")]
    pub normalizer_spec: Option<NormalizerSpec>,
    /// Normalization after decoding.
    #[prost(message, optional, tag = "5")]
    pub denormalizer_spec: Option<NormalizerSpec>,
}

/// `ModelProto.SentencePiece`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Piece {
    /// The piece (whitespace as `▁`).
    #[prost(string, optional, tag = "1")]
    pub piece: Option<String>,
    /// Its log probability (unigram).
    #[prost(float, optional, tag = "2")]
    pub score: Option<f32>,
    /// Its [`PieceType`] (default normal).
    #[prost(int32, optional, tag = "3")]
    pub kind: Option<i32>,
}

/// `ModelProto.SentencePiece.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PieceType {
    /// An ordinary piece.
    Normal = 1,
    /// `<unk>`.
    Unknown = 2,
    /// `<s>`, `</s>`, `<pad>`: never produced by encoding, invisible in decoding.
    Control = 3,
    /// A user-defined symbol: always one piece.
    UserDefined = 4,
    /// Unused: never produced.
    Unused = 5,
    /// `<0xAB>`: one byte of an unknown character (byte fallback).
    Byte = 6,
}

impl PieceType {
    /// The type of a proto value (`None` for an unknown value).
    pub fn from_i32(v: i32) -> Option<PieceType> {
        Some(match v {
            1 => PieceType::Normal,
            2 => PieceType::Unknown,
            3 => PieceType::Control,
            4 => PieceType::UserDefined,
            5 => PieceType::Unused,
            6 => PieceType::Byte,
            _ => return None,
        })
    }
}

/// `sentencepiece.TrainerSpec` (the fields that matter after training).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrainerSpec {
    /// 1 unigram, 2 BPE, 3 word, 4 char (default unigram).
    #[prost(int32, optional, tag = "3")]
    pub model_type: Option<i32>,
    /// Whitespace goes at the end of pieces instead of the start.
    #[prost(bool, optional, tag = "24")]
    pub treat_whitespace_as_suffix: Option<bool>,
    /// Unknown characters become their UTF-8 bytes (`<0xAB>` pieces).
    #[prost(bool, optional, tag = "35")]
    pub byte_fallback: Option<bool>,
    /// What `<unk>` decodes to (default `" ⁇ "`).
    #[prost(string, optional, tag = "44")]
    pub unk_surface: Option<String>,
}

/// `sentencepiece.NormalizerSpec`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NormalizerSpec {
    /// The rule set's name (`nmt_nfkc`, `identity`, ...).
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// A Darts double-array trie of source strings and the NUL-separated replacements.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub precompiled_charsmap: Option<Vec<u8>>,
    /// Prepend a space (default true).
    #[prost(bool, optional, tag = "3")]
    pub add_dummy_prefix: Option<bool>,
    /// Drop leading and trailing spaces and collapse runs of spaces (default true).
    #[prost(bool, optional, tag = "4")]
    pub remove_extra_whitespaces: Option<bool>,
    /// Write spaces as `▁` (default true).
    #[prost(bool, optional, tag = "5")]
    pub escape_whitespaces: Option<bool>,
}

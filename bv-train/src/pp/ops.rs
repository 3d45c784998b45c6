//! The table of registered pp ops, each with the big_vision module that registers it:
//! `bv-train pp --list` prints it.

use super::ops_general::{Copy, KeepDrop, OneHot, SqueezeLastDim};
use super::ops_image::{
    CentralCrop, Decode, FlipLr, InceptionCrop, RandomCrop, Resize, ResizeSide, ValueRange,
    VggValueRange,
};
use super::ops_text::{
    Choice, ClassPrompts, CocoCaptions, Concat, Flatten, LabelNames, Lower, SetDefault, StrFmt,
    Tokenize,
};
use super::randaug::RandAug;
use super::registry::{Make, OpDef};

const fn img(
    make: fn(&super::registry::Args) -> Result<Box<dyn super::registry::ValueOp>, String>,
) -> Make {
    Make::Value {
        default_key: "image",
        make,
    }
}

/// Every op, in the order of big_vision's modules.
pub const OPS: &[OpDef] = &[
    OpDef { name: "decode", module: "ops_image", params: &["channels", "precise"], make: img(Decode::make),
        doc: "Decodes a JPEG or PNG to uint8 (H, W, channels=3) as tf.io.decode_image; precise=True uses the accurate IDCT." },
    OpDef { name: "resize", module: "ops_image", params: &["size", "method", "antialias"], make: img(Resize::make),
        doc: "Resizes to size (int or (h, w)); method 'bilinear' (default), 'nearest' or 'area'; uint8 results are truncated." },
    OpDef { name: "resize_small", module: "ops_image", params: &["smaller_size", "method", "antialias"], make: img(ResizeSide::make_small),
        doc: "Resizes so the smaller side is smaller_size, keeping the aspect ratio (method 'area')." },
    OpDef { name: "resize_long", module: "ops_image", params: &["longer_size", "method", "antialias"], make: img(ResizeSide::make_long),
        doc: "Resizes so the longer side is longer_size, keeping the aspect ratio (method 'area')." },
    OpDef { name: "inception_crop", module: "ops_image", params: &["size", "area_min", "area_max", "method", "antialias"], make: img(InceptionCrop::make_plain),
        doc: "Random crop of area_min..area_max percent (5..100) and aspect 3/4..4/3, then resize to size if given." },
    OpDef { name: "decode_jpeg_and_inception_crop", module: "ops_image", params: &["size", "area_min", "area_max", "ratio_min", "ratio_max", "method", "antialias"], make: img(InceptionCrop::make_decode),
        doc: "inception_crop fused with decoding: only the crop window of the JPEG is decoded." },
    OpDef { name: "random_crop", module: "ops_image", params: &["crop_size"], make: img(RandomCrop::make),
        doc: "Uniformly placed crop of crop_size (int or (h, w))." },
    OpDef { name: "central_crop", module: "ops_image", params: &["crop_size"], make: img(CentralCrop::make),
        doc: "Central crop of crop_size (int or (h, w)); the central square when omitted." },
    OpDef { name: "flip_lr", module: "ops_image", params: &[], make: img(FlipLr::make),
        doc: "Mirrors left-right with probability 1/2." },
    OpDef { name: "value_range", module: "ops_general", params: &["vmin", "vmax", "in_min", "in_max", "clip_values"], make: img(ValueRange::make),
        doc: "Maps [in_min, in_max] (0, 255) linearly to [vmin, vmax] (-1, 1) in float32." },
    OpDef { name: "vgg_value_range", module: "ops_image", params: &["mean", "std"], make: img(VggValueRange::make),
        doc: "(x - mean) / std per channel with ImageNet's mean and std times 255, float32." },
    OpDef { name: "randaug", module: "archive.randaug", params: &["num_layers", "magnitude"], make: img(RandAug::make),
        doc: "RandAugment: num_layers (2) ops out of 16, each at magnitude (10) of 10, fill 128." },
    OpDef { name: "onehot", module: "ops_general", params: &["depth", "key", "key_result", "multi", "on", "off"], make: Make::Dict(OneHot::make),
        doc: "One-hot (or multi-hot for label vectors) float32 of depth classes from key ('labels') into key_result." },
    OpDef { name: "keep", module: "ops_general", params: &["*keys"], make: Make::Dict(KeepDrop::make_keep),
        doc: "Keeps only the named keys." },
    OpDef { name: "drop", module: "ops_general", params: &["*keys"], make: Make::Dict(KeepDrop::make_drop),
        doc: "Removes the named keys." },
    OpDef { name: "copy", module: "ops_general", params: &["inkey", "outkey"], make: Make::Dict(Copy::make),
        doc: "Copies the value of inkey to outkey." },
    OpDef { name: "squeeze_last_dim", module: "ops_general", params: &[], make: img(SqueezeLastDim::make),
        doc: "Removes a trailing dimension of size 1." },
    OpDef { name: "concat", module: "ops_general", params: &["inkeys", "outkey", "axis"], make: Make::Dict(Concat::make),
        doc: "Joins the arrays of inkeys along axis (default -1) into outkey (default the first inkey)." },
    OpDef { name: "flatten", module: "ops_general", params: &["keys"], make: Make::Dict(Flatten::make),
        doc: "Nested features as '/'-joined keys (bv's examples already are; checks the keys exist)." },
    OpDef { name: "setdefault", module: "ops_general", params: &["key", "value"], make: Make::Dict(SetDefault::make),
        doc: "Sets key to value when it is missing or empty." },
    OpDef { name: "choice", module: "ops_general", params: &["n", "key", "fewer_ok", "inkey", "outkey"], make: Make::Dict(Choice::make),
        doc: "The same random entries of every key: n=\"single\" (default; drops the axis), a count, or [min, max]." },
    OpDef { name: "tokenize", module: "ops_text", params: &["max_len", "eos", "model", "lower", "sample_if_multi", "pad_value", "add_bos"],
        make: Make::InOut { default_in: None, default_out: "labels", make: Tokenize::make },
        doc: "SentencePiece ids of a text, cut/padded to max_len; eos none/yes/sticky; model c4_en or a .model path; pad_value an id or a piece (default \"<pad>\"); lower=True." },
    OpDef { name: "coco_captions", module: "ops_text", params: &["outkey"], make: Make::Dict(CocoCaptions::make),
        doc: "The captions' texts (captions/text) into outkey (default captions)." },
    OpDef { name: "clip_i1k_label_names", module: "ops_text", params: &[],
        make: Make::InOut { default_in: Some("label"), default_out: "labels", make: LabelNames::make_clip_i1k },
        doc: "ImageNet class ids to CLIP's class names (inkey label, outkey labels)." },
    OpDef { name: "i21k_label_names", module: "ops_text", params: &[],
        make: Make::InOut { default_in: Some("label"), default_out: "labels", make: LabelNames::make_i21k },
        doc: "ImageNet-21k class ids to their names (inkey label, outkey labels)." },
    OpDef { name: "lower", module: "ops_text", params: &[], make: Make::InOut { default_in: Some("text"), default_out: "text", make: Lower::make },
        doc: "ASCII lower-casing of strings (key text), as tf.strings.lower." },
    OpDef { name: "class_prompts", module: "ops_text", params: &["names", "templates", "canonicalize"],
        make: Make::InOut { default_in: Some("label"), default_out: "texts", make: ClassPrompts::make },
        doc: "bv: a class id to its name (names list) in every template of a set (clip_best default, clip_paper, class_name_only) or list; strings in outkey texts." },
    OpDef { name: "strfmt", module: "ops_text", params: &["template", "outkey"], make: Make::Dict(StrFmt::make),
        doc: "Formats template's {key} fields from the example into outkey (default text)." },
];

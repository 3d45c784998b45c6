//! Evaluators, as big_vision's `evaluators/`: each runs a jitted prediction over an eval
//! pipeline (ordered, padded, with a `_mask`) and reports metrics under its prefix.

pub mod classification;

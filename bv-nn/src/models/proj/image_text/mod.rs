//! big_vision's image-text models (`models/proj/image_text/`): the text tower and the
//! two-tower model of LiT, SigLIP and SigLIP 2.

pub mod load;
pub mod text_transformer;
pub mod two_towers;

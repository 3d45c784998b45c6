//! FlexiViT (`big_vision/models/proj/flexi/`): one ViT for every patch size.

pub mod resample;
pub mod vit;

//! An ensemble of classifiers in probability space: big_vision's `teacher_ensemble_fwd`
//! (`trainers/proj/distill/distill.py`), which evaluators call to score the teachers
//! together.

use std::sync::Arc;

use bv_core::{numpy as np, Tensor};

use super::{ImageModel, Out, Root};
use crate::scope::Scope;

/// The mean over its members of `softmax(logits)`. Each member's parameters live under
/// its name (`prof/head/kernel`), as the distillation trainer keeps its teachers. Its
/// output is probabilities where other models give logits, as in big_vision.
#[derive(Debug, Clone)]
pub struct Ensemble {
    members: Vec<(String, Arc<dyn ImageModel>)>,
}

impl Ensemble {
    /// The ensemble of `members`, each `(name, model)`.
    pub fn new(members: Vec<(String, Arc<dyn ImageModel>)>) -> Ensemble {
        Ensemble { members }
    }
}

impl ImageModel for Ensemble {
    fn model_name(&self) -> &'static str {
        "teacher_ensemble"
    }

    fn forward(&self, s: &mut Scope, image: Tensor, train: bool) -> (Tensor, Out) {
        let probs: Vec<Tensor> = self
            .members
            .iter()
            .map(|(name, m)| {
                let (logits, _) = s.call_named(name, &Root(m.as_ref()), (image.clone(), train));
                np::softmax(&logits, -1)
            })
            .collect();
        let probs: Vec<&Tensor> = probs.iter().collect();
        (np::mean(&np::stack(&probs, 0), 0, false), Out::new())
    }
}

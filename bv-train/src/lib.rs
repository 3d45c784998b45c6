//! big_vision's trainer in Rust: configs, the TFDS input pipeline and preprocessing ops,
//! optimizers and schedules, evaluators, checkpoints and the training loop.

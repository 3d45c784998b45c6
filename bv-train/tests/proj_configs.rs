//! The distillation, FlexiViT and GSAM configs of `configs/proj/` parse and resolve: their
//! trainers, teachers, flexible arguments, GSAM blocks, evaluators and step counts (epochs ·
//! examples / batch, rounded, as big_vision's `u.steps`).

use std::path::PathBuf;

use bv_train::config::{Config, Plan};

fn load(file: &str) -> Config {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(file);
    Config::load(path, &[]).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn big_vision_ports_resolve() {
    // distill/bit_i1k.py: 1200 epochs of train[:98%] (1,255,544 images) at 4096.
    let c = load("configs/proj/distill/bit_i1k.ron");
    assert_eq!(c.trainer.as_deref(), Some("proj.distill.distill"));
    assert_eq!(c.teachers.as_ref().unwrap()["prof_m"].model["depth"], 152);
    assert_eq!(Plan::new(&c, 1_255_544).unwrap().total_steps, 367_835);
    assert_eq!(
        c.evals
            .values()
            .filter(|e| e.kind == "proj.distill.distance")
            .count(),
        4
    );

    // flexivit/i21k_sup.py: 90 epochs at 4096; ten grid sides, three evaluators each.
    let c = load("configs/proj/flexivit/i21k_sup.ron");
    assert_eq!(
        c.flexi.as_ref().unwrap()["seqhw"].v,
        [5, 6, 8, 10, 12, 15, 16, 20, 24, 30]
    );
    assert_eq!(Plan::new(&c, 13_000_000).unwrap().total_steps, 285_645);
    assert_eq!(c.evals.len(), 30);
    assert_eq!(c.evals["test08"].pred.as_deref(), Some("predict_seqhw=8"));

    // flexivit/i1k_deit3_distill.py: 90 epochs of train[:99%] (1,268,355) at 1024.
    let c = load("configs/proj/flexivit/i1k_deit3_distill.ron");
    assert_eq!(c.trainer.as_deref(), Some("proj.flexi.distill"));
    assert_eq!(Plan::new(&c, 1_268_355).unwrap().total_steps, 111_477);
    assert_eq!(c.evals.len(), 10 * 7 + 7 + 10 * 2);
    assert_eq!(
        c.evals["dist_val_16"].pred.as_deref(),
        Some("student_seqhw=16_prof")
    );

    // gsam/vit_i1k_gsam_no_aug.py: 300 epochs at 4096.
    let c = load("configs/proj/gsam/vit_i1k_gsam_no_aug.ron");
    assert_eq!(Plan::new(&c, 1_268_355).unwrap().total_steps, 92_897);
    assert_eq!(c.gsam.as_ref().unwrap()["rho_max"], 0.6);
}

#[test]
fn fashion_mnist_jobs_resolve() {
    for (file, steps) in [
        ("configs/proj/distill/fashion_mnist_distill.ron", 3281),
        ("configs/proj/distill/fashion_mnist_student.ron", 3281),
        ("configs/proj/flexivit/fashion_mnist_flexi.ron", 4219),
        ("configs/proj/gsam/fashion_mnist_gsam.ron", 1875),
    ] {
        let c = load(file);
        assert_eq!(Plan::new(&c, 60_000).unwrap().total_steps, steps, "{file}");
    }
}

#[test]
fn gsam_with_rho_min_above_rho_max_stops_before_training() {
    let c = load("configs/proj/gsam/fashion_mnist_gsam.ron");
    let mut g = c.gsam.clone().unwrap();
    g.insert("rho_min".into(), serde_json::json!(0.5));
    let c = Config { gsam: Some(g), ..c };
    let e = bv_train::trainers::gsam::settings(&c)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("rho_min (0.5)") && e.contains("rho_max (0.05)"),
        "{e}"
    );
}

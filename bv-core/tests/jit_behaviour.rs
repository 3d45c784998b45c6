//! jit's contract: one compile per signature, recompiles on new shapes, dtypes and static
//! arguments, donation consumes the argument, errors name the op, shapes and call site.

mod support;

use bv_core::numpy as np;
use bv_core::{jit, jit_static, Array, ArrayError, DType, JitError, Spec, Tensor, TraceError};
use support::*;

#[test]
fn cache_counts_compiles_and_hits() {
    let f = jit(|(x, y): (Tensor, Tensor)| &x * &y + 1.0);
    let a = array(&[1.0, 2.0], &[2], DType::F32);
    let b = array(&[3.0, 4.0], &[2], DType::F32);
    for _ in 0..3 {
        let out = f.call(&(a.clone(), b.clone())).unwrap();
        assert_eq!(read(&out), vec![4.0, 9.0]);
    }
    assert_eq!((f.stats().compiles, f.stats().cache_hits), (1, 2));
    let c = array(&[1.0, 2.0, 3.0], &[3], DType::F32);
    f.call(&(c.clone(), c)).unwrap();
    assert_eq!(f.stats().compiles, 2, "a new shape recompiles");
    let d = array(&[1.0, 2.0], &[2], DType::BF16);
    assert_eq!(read(&f.call(&(d.clone(), d)).unwrap()), vec![2.0, 5.0]);
    assert_eq!(f.stats().compiles, 3, "a new dtype recompiles");
    assert!(f.stats().compile_time > std::time::Duration::ZERO);
}

#[test]
fn static_arguments_are_part_of_the_key() {
    let f = jit_static(|k: &usize, x: Tensor| np::sum(&x, np::Axes::All, false) * (*k as f64));
    let x = array(&[1.0, 2.0, 3.0], &[3], DType::F32);
    assert_eq!(read(&f.call_static(&2, &x).unwrap()), vec![12.0]);
    assert_eq!(read(&f.call_static(&3, &x).unwrap()), vec![18.0]);
    assert_eq!(read(&f.call_static(&2, &x).unwrap()), vec![12.0]);
    assert_eq!((f.stats().compiles, f.stats().cache_hits), (2, 1));
}

#[test]
fn donated_input_is_consumed() {
    let step = jit(|(p, g): (Tensor, Tensor)| &p - &g * 0.5)
        .named("sgd")
        .donate_argnums(&[0]);
    let lowered = step
        .lower(&(Spec::new([2], DType::F32), Spec::new([2], DType::F32)))
        .unwrap();
    assert!(
        lowered
            .text
            .contains("%arg0: tensor<2xf32> {tf.aliasing_output = 0 : i32}"),
        "{}",
        lowered.text
    );
    let p = array(&[1.0, 2.0], &[2], DType::F32);
    let g = array(&[2.0, 2.0], &[2], DType::F32);
    let p2 = step.call(&(p.clone(), g.clone())).unwrap();
    assert_eq!(read(&p2), vec![0.0, 1.0]);
    assert!(p.is_donated());
    let err = p.to_vec::<f32>().unwrap_err();
    assert!(matches!(err, ArrayError::Donated { .. }));
    assert!(err.to_string().contains("donated to `sgd`"), "{err}");
    let err = step.call(&(p, g.clone())).unwrap_err();
    assert!(
        matches!(err, JitError::Argument { ref path, .. } if path == "0"),
        "{err}"
    );
    // The non-donated argument is still usable.
    assert_eq!(read(&g), vec![2.0, 2.0]);
}

#[test]
fn dispatch_does_not_block_and_results_chain() {
    let f = jit(|x: Tensor| np::tanh(&x) * 2.0);
    let mut x = Array::from_slice(&[0.5f32; 1024], &[1024]).unwrap();
    for _ in 0..5 {
        x = f.call(&x).unwrap();
    }
    let v = x.to_vec::<f32>().unwrap();
    let mut want = 0.5f64;
    for _ in 0..5 {
        want = want.tanh() * 2.0;
    }
    assert!((v[0] as f64 - want).abs() < 1e-5);
}

/// Ten ops, with a shape mismatch at the eighth.
fn ten_ops((x, w, b): (Tensor, Tensor, Tensor)) -> Tensor {
    let h = np::matmul(&x, &w);
    let h = &h + &b;
    let h = np::relu(&h);
    let h = &h * 2.0;
    let m = np::mean(&h, -1, true);
    let h = &h - &m;
    let s = np::sum(&h, 0, false);
    let bad = &h + &s.clone(); // [8,16] + [16]: fine
    let wrong = &bad + &x; // [8,16] + [8,12]: the mismatch
    np::exp(&wrong)
}

#[test]
fn shape_mismatch_deep_in_a_function_names_op_shapes_and_line() {
    let f = jit(ten_ops);
    let specs = (
        Spec::new([8, 12], DType::F32),
        Spec::new([12, 16], DType::F32),
        Spec::new([16], DType::F32),
    );
    let err = f.lower(&specs).unwrap_err();
    let JitError::Trace(TraceError::Op { op, site, .. }) = &err else {
        panic!("{err}")
    };
    assert_eq!(*op, "add");
    assert!(site.file.ends_with("jit_behaviour.rs"), "{site}");
    let line = include_str!("jit_behaviour.rs")
        .lines()
        .position(|l| l.contains("let wrong = &bad + &x;"))
        .unwrap()
        + 1;
    assert_eq!(site.line as usize, line);
    let msg = err.to_string();
    assert!(msg.contains("[8, 16]") && msg.contains("[8, 12]"), "{msg}");
    assert!(msg.contains("f32[8,16], f32[8,12]"), "{msg}");
    assert!(msg.contains(&format!("jit_behaviour.rs:{line}")), "{msg}");
}

#[test]
fn strict_prims_report_their_own_rule() {
    let f = jit(|(x, y): (Tensor, Tensor)| bv_core::prim::add(&x, &y));
    let err = f
        .lower(&(Spec::new([2], DType::F32), Spec::new([2], DType::I32)))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("add: operand element types must be equal"),
        "{err}"
    );
    assert!(err.contains("f32[2], i32[2]"), "{err}");
}

#[test]
fn leaked_tensor_is_reported() {
    use bv_core::trace::trace;
    let a = bv_core::Aval::new([2], DType::F32);
    // jit closures must be Send + Sync, so a tensor cannot be captured by one; a leaked
    // tensor can only reach another trace through the tracing API itself.
    let (leaked, _) = trace(std::slice::from_ref(&a), |p| p[0].clone());
    let (_, tr) = trace(&[a], |p| &p[0] + &leaked);
    assert!(
        matches!(tr.error, Some(TraceError::Leak { op: "add", .. })),
        "{:?}",
        tr.error
    );
}

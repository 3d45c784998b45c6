//! `vmap` composed with the other transformations, against float64 host computations:
//! per-example gradients (`vmap(grad)`), `grad(vmap)`, `jvp` of `vmap` and `vmap` of `jvp`,
//! nested `vmap`, `in_axes` prefix trees and negative axes, `out_axes`; the collectives
//! and `shard_map` on 8 CPU devices against a loop; and the errors for bad axes.

mod support;

use bv_core::autodiff::{custom_jvp, custom_vjp, grad, jvp};
use bv_core::batching::{vmap, Axes, Axis};
use bv_core::numpy::{self as np};
use bv_core::pjrt::Client;
use bv_core::prim::{
    self, all_gather, axis_index, ppermute, psum, psum_scatter, shard_map, sharding_constraint,
};
use bv_core::sharding::{Mesh, NamedSharding, PartitionSpec};
use bv_core::{impl_tree, jit, set_default_client, Array, DType, Spec, Tensor};
use support::{array, assert_close, read, rng, uniform};

/// The 8 device ids of one default client shared by every test of this binary.
fn ids() -> Vec<i64> {
    static IDS: std::sync::OnceLock<Vec<i64>> = std::sync::OnceLock::new();
    IDS.get_or_init(|| {
        let client = Client::cpu_with_devices(8).unwrap();
        let ids = client.devices().iter().map(|d| i64::from(d.id())).collect();
        set_default_client(client);
        ids
    })
    .clone()
}

fn f64s(a: &Array) -> Vec<f64> {
    ids();
    read(a)
}

fn host(v: &[f64], shape: &[usize]) -> Array {
    ids();
    array(v, shape, DType::F64)
}

const TOL: (f64, f64) = (1e-12, 1e-12);

struct Params<L> {
    w: L,
    b: L,
}
impl_tree!(Params<L> { w, b });

/// `tanh(x.w + b)^2` for one example.
fn model(p: &Params<Tensor>, x: &Tensor) -> Tensor {
    let z = np::matmul(x, &p.w) + &p.b;
    let t = np::tanh(&z);
    &t * &t
}

/// Host float64 gradient of `model` for one example: `2 t (1 - t^2) (x, 1)`.
fn model_grad(w: &[f64], b: f64, x: &[f64]) -> (Vec<f64>, f64, f64) {
    let z: f64 = x.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() + b;
    let t = z.tanh();
    let s = 2.0 * t * (1.0 - t * t);
    (x.iter().map(|xi| s * xi).collect(), s, t * t)
}

#[test]
fn vmap_of_grad_and_grad_of_vmap_match_host_gradients() {
    let (n, d) = (5, 3);
    let mut r = rng(3);
    let (w, x) = (
        uniform(&mut r, d, -1.0, 1.0),
        uniform(&mut r, n * d, -1.0, 1.0),
    );
    let b = 0.3;
    let f = jit(|(p, x): (Params<Tensor>, Tensor)| {
        let axes = || Axes::tree(&(Axis::NONE, Axis::at(0)));
        let per = vmap(
            |(p, x): (Params<Tensor>, Tensor)| grad(|p: Params<Tensor>| model(&p, &x))(&p),
            axes(),
            0,
        )(&(
            Params {
                w: p.w.clone(),
                b: p.b.clone(),
            },
            x.clone(),
        ));
        let total = grad(|p: Params<Tensor>| {
            let ys =
                vmap(|(p, x): (Params<Tensor>, Tensor)| model(&p, &x), axes(), 0)(&(p, x.clone()));
            np::sum(&ys, np::Axes::All, false)
        })(&p);
        (per.w, per.b, total.w, total.b)
    });
    let p = Params {
        w: host(&w, &[d]),
        b: host(&[b], &[]),
    };
    let (pw, pb, tw, tb) = f.call(&(p, host(&x, &[n, d]))).unwrap();
    let mut want_w = Vec::new();
    let mut want_b = Vec::new();
    for i in 0..n {
        let (gw, gb, _) = model_grad(&w, b, &x[i * d..(i + 1) * d]);
        want_w.extend(gw);
        want_b.push(gb);
    }
    assert_close("per-example dw", &f64s(&pw), &want_w, TOL);
    assert_close("per-example db", &f64s(&pb), &want_b, TOL);
    let sum_w: Vec<f64> = (0..d)
        .map(|j| (0..n).map(|i| want_w[i * d + j]).sum())
        .collect();
    assert_close("grad of vmap dw", &f64s(&tw), &sum_w, TOL);
    assert_close("grad of vmap db", &f64s(&tb), &[want_b.iter().sum()], TOL);
}

#[test]
fn jvp_of_vmap_equals_vmap_of_jvp_and_the_host_derivative() {
    let n = 4;
    let mut r = rng(5);
    let (x, t) = (
        uniform(&mut r, n * 2, -1.0, 1.0),
        uniform(&mut r, n * 2, -1.0, 1.0),
    );
    let g = |v: Tensor| np::sin(&v) * &v;
    let f = jit(move |(x, t): (Tensor, Tensor)| {
        let (_, a) = jvp(|x: Tensor| vmap(g, 1, 1)(&x), &x, &t);
        let b = vmap(
            |(x, t): (Tensor, Tensor)| jvp(g, &x, &t).1,
            Axes::All(Axis::at(-1)),
            Axes::All(Axis::at(-1)),
        )(&(x.clone(), t.clone()));
        (a, b)
    });
    let (a, b) = f.call(&(host(&x, &[2, n]), host(&t, &[2, n]))).unwrap();
    let want: Vec<f64> = x
        .iter()
        .zip(&t)
        .map(|(x, t)| (x.cos() * x + x.sin()) * t)
        .collect();
    assert_close("jvp of vmap", &f64s(&a), &want, TOL);
    assert_close("vmap of jvp", &f64s(&b), &want, TOL);
}

#[test]
fn nested_vmap_and_out_axes_place_the_batch_dimensions() {
    let mut r = rng(9);
    let (a, b) = (uniform(&mut r, 3, -1.0, 1.0), uniform(&mut r, 4, -1.0, 1.0));
    let f = jit(|(a, b): (Tensor, Tensor)| {
        // outer[i, j] = a[i] * b[j] by two vmaps of a scalar product.
        let inner = |a: Tensor| vmap(move |b: Tensor| &a * &b, 0, 0);
        let outer = vmap(
            |(a, b): (Tensor, Tensor)| inner(a)(&b),
            Axes::tree(&(Axis::at(0), Axis::NONE)),
            0,
        )(&(a.clone(), b.clone()));
        let transposed = vmap(
            |(a, b): (Tensor, Tensor)| inner(a)(&b),
            Axes::tree(&(Axis::at(0), Axis::NONE)),
            1,
        )(&(a.clone(), b.clone()));
        // An output that does not depend on the batch, left unbatched by out_axes None.
        let (s, c) = vmap(
            |(a, b): (Tensor, Tensor)| (&a * 2.0, np::sum(&b, np::Axes::All, false)),
            Axes::tree(&(Axis::at(0), Axis::NONE)),
            Axes::tree(&(Axis::at(0), Axis::NONE)),
        )(&(a, b));
        (outer, transposed, s, c)
    });
    let (o, t, s, c) = f.call(&(host(&a, &[3]), host(&b, &[4]))).unwrap();
    let want: Vec<f64> = a
        .iter()
        .flat_map(|x| b.iter().map(move |y| x * y))
        .collect();
    assert_eq!(o.shape(), &[3, 4]);
    assert_eq!(t.shape(), &[4, 3]);
    assert_close("outer product", &f64s(&o), &want, TOL);
    let want_t: Vec<f64> = b
        .iter()
        .flat_map(|y| a.iter().map(move |x| x * y))
        .collect();
    assert_close("out_axes 1", &f64s(&t), &want_t, TOL);
    assert_close(
        "batched output",
        &f64s(&s),
        &a.iter().map(|x| 2.0 * x).collect::<Vec<_>>(),
        TOL,
    );
    assert_eq!(c.shape(), &[] as &[usize]);
    assert_close("unbatched output", &f64s(&c), &[b.iter().sum()], TOL);
}

/// User rules survive batching when the transformation is outside `vmap`: the gradient
/// of a batched `custom_vjp` uses its backward rule, and the tangent (and, transposed, the
/// gradient) of a batched `custom_jvp` its forward rule.
#[test]
fn grad_and_jvp_of_vmap_use_custom_rules() {
    let mut r = rng(21);
    let (x, t) = (uniform(&mut r, 6, -1.0, 1.0), uniform(&mut r, 6, -1.0, 1.0));
    let f = jit(|(x, t): (Tensor, Tensor)| {
        // The rules differ from the true derivatives on purpose, so using them shows.
        let twice = || {
            custom_vjp(
                |x: Tensor| (np::sin(&x), x.clone()),
                |x: &Tensor, g: &Tensor| g * &np::cos(x) * 2.0,
            )
        };
        let expd = || {
            custom_jvp(
                |x: Tensor| np::tanh(&x),
                |x: &Tensor, _: &Tensor, t: &Tensor| t * &np::exp(x),
            )
        };
        let sum = |y: Tensor| np::sum(&y, np::Axes::All, false);
        let gv = grad(|x: Tensor| sum(vmap(twice(), 0, 0)(&x)))(&x);
        let gj = grad(|x: Tensor| sum(vmap(expd(), 1, 1)(&x)))(&x);
        let (_, tj) = jvp(|x: Tensor| vmap(expd(), 0, 0)(&x), &x, &t);
        (gv, gj, tj)
    });
    let (gv, gj, tj) = f.call(&(host(&x, &[3, 2]), host(&t, &[3, 2]))).unwrap();
    let want_v: Vec<f64> = x.iter().map(|x| 2.0 * x.cos()).collect();
    let want_j: Vec<f64> = x.iter().map(|x| x.exp()).collect();
    let want_t: Vec<f64> = x.iter().zip(&t).map(|(x, t)| t * x.exp()).collect();
    assert_close("grad of vmap of custom_vjp", &f64s(&gv), &want_v, TOL);
    assert_close("grad of vmap of custom_jvp", &f64s(&gj), &want_j, TOL);
    assert_close("jvp of vmap of custom_jvp", &f64s(&tj), &want_t, TOL);
}

fn error_of(f: impl Fn(Tensor) -> Tensor + Send + Sync + 'static) -> String {
    let j = jit(move |x: Tensor| f(x));
    match j.lower(&Spec::new([3, 4], DType::F32)) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_axes_are_errors_naming_the_problem() {
    let e = error_of(|x| {
        vmap(|(a, b): (Tensor, Tensor)| &a + &b, 0, 0)(&(x.clone(), prim::transpose(&x, &[1, 0])))
    });
    assert!(
        e.contains("different batch sizes: 3") && e.contains("and 4"),
        "{e}"
    );
    let e = error_of(|x| vmap(|a: Tensor| a, None::<i32>, 0)(&x));
    assert!(e.contains("at least one input with a batch axis"), "{e}");
    let e = error_of(|x| vmap(|a: Tensor| a, 2, 0)(&x));
    assert!(e.contains("in_axes entry 2") && e.contains("rank 2"), "{e}");
    let e = error_of(|x| vmap(|a: Tensor| np::sin(&a), 0, None::<i32>)(&x));
    assert!(
        e.contains("out_axes is None") && e.contains("varies over the batch"),
        "{e}"
    );
    let e = error_of(|x| {
        vmap(
            |(a, _b): (Tensor, Tensor)| a,
            Axes::tree(&(Axis::at(0), Axis::at(0), Axis::at(0))),
            0,
        )(&(x.clone(), x))
    });
    assert!(e.contains("in_axes") && e.contains("not a prefix"), "{e}");
}

fn data_mesh() -> Mesh {
    Mesh::new(&[("data", 8)], &ids()).unwrap()
}

fn p(dims: &[Option<&str>]) -> PartitionSpec {
    PartitionSpec::of(dims)
}

/// The collectives and `shard_map` (with a sharding constraint) batched by `vmap`, against
/// the same function applied to each batch element and stacked.
#[test]
fn collectives_and_shard_map_batch_like_a_loop() {
    let mesh = data_mesh();
    let m = mesh.clone();
    let per = move |x: Tensor| -> Vec<Tensor> {
        let sh = NamedSharding::new(m.clone(), p(&[Some("data")])).unwrap();
        let x = sharding_constraint(&x, &sh);
        let body = shard_map(
            |a: &[Tensor]| {
                let i = prim::convert(&axis_index("data"), DType::F64);
                let a = &a[0] * &prim::broadcast_in_dim(&i, a[0].shape(), &[]);
                vec![
                    psum(&a, &["data"]),
                    all_gather(&a, "data", 1, true),
                    psum_scatter(&a, "data", 0),
                    ppermute(
                        &a,
                        "data",
                        &(0..8).map(|k| (k, (k + 1) % 8)).collect::<Vec<_>>(),
                    ),
                ]
            },
            &m,
            &[p(&[Some("data")])],
            &[
                PartitionSpec::replicated(),
                PartitionSpec::replicated(),
                p(&[Some("data")]),
                p(&[Some("data")]),
            ],
        );
        body(&[x])
    };
    let per2 = per.clone();
    let f = jit(move |xs: Tensor| {
        let v = vmap(|x: Tensor| per(x), 1, 0)(&xs);
        let l: Vec<Vec<Tensor>> = (0..2)
            .map(|k| {
                per2(prim::squeeze_dims(
                    &prim::slice_in_dim(&xs, 1, k, k + 1, 1),
                    &[1],
                ))
            })
            .collect();
        let stacked: Vec<Tensor> = (0..v.len())
            .map(|j| {
                let parts: Vec<&Tensor> = l.iter().map(|o| &o[j]).collect();
                np::stack(&parts, 0)
            })
            .collect();
        (v, stacked)
    })
    .sharded(mesh, |_, _| PartitionSpec::replicated());
    let mut r = rng(13);
    let x = host(&uniform(&mut r, 64 * 2 * 3, -1.0, 1.0), &[64, 2, 3]);
    let (v, l) = f.call(&x).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.len(), 4);
    for (j, (a, b)) in v.iter().zip(&l).enumerate() {
        assert_eq!(a.shape(), b.shape(), "result {j}");
        assert_close(&format!("collective result {j}"), &f64s(a), &f64s(b), TOL);
    }
}

//! `shard_map` and its collectives on 8 CPU devices, against float64 host computations:
//! values of `psum`, `all_gather`, `ppermute`, `psum_scatter` and `axis_index` over one and
//! two mesh axes (and a mesh whose device order is not the identity), gradients through
//! them, and the errors for bad axes and specs.

use bv_core::autodiff::{grad, jvp};
use bv_core::numpy as np;
use bv_core::pjrt::Client;
use bv_core::prim::{all_gather, axis_index, pmean, ppermute, psum, psum_scatter, shard_map};
use bv_core::sharding::{Mesh, NamedSharding, PartitionSpec};
use bv_core::{jit, set_default_client, Array, DType, Spec, Tensor};

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

fn data_mesh() -> Mesh {
    Mesh::new(&[("data", 8)], &ids()).unwrap()
}

fn p(dims: &[Option<&str>]) -> PartitionSpec {
    PartitionSpec::of(dims)
}

fn data(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.1)
        .collect()
}

fn put(v: &[f32], shape: &[usize], mesh: &Mesh, spec: PartitionSpec) -> Array {
    let sh = NamedSharding::new(mesh.clone(), spec).unwrap();
    Array::from_slice_sharded(v, shape, &sh).unwrap()
}

fn close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (*g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

/// Row-major element `(r, c)` of a `rows x cols` matrix.
fn at(v: &[f32], cols: usize, r: usize, c: usize) -> f64 {
    v[r * cols + c] as f64
}

#[test]
fn psum_over_data_equals_host_block_sum() {
    let mesh = data_mesh();
    let xs = data(16 * 3);
    let x = put(&xs, &[16, 3], &mesh, p(&[Some("data")]));
    let m = mesh.clone();
    let f = jit(move |x: Tensor| {
        let body = shard_map(
            |a: &[Tensor]| vec![psum(&a[0], &["data"]), pmean(&a[0], &["data"])],
            &m,
            &[p(&[Some("data")])],
            &[PartitionSpec::replicated(), PartitionSpec::replicated()],
        );
        let o = body(&[x]);
        (o[0].clone(), o[1].clone())
    })
    .sharded(mesh, |_, _| PartitionSpec::replicated());
    let (sum, mean) = f.call(&x).unwrap();
    assert_eq!(sum.shape(), &[2, 3]);
    let want: Vec<f64> = (0..6)
        .map(|k| (0..8).map(|b| xs[b * 6 + k] as f64).sum())
        .collect();
    close(&sum.to_vec::<f32>().unwrap(), &want, "psum");
    let want_mean: Vec<f64> = want.iter().map(|s| s / 8.0).collect();
    close(&mean.to_vec::<f32>().unwrap(), &want_mean, "pmean");
}

#[test]
fn all_gather_puts_the_global_array_on_every_device() {
    let mesh = data_mesh();
    let xs = data(16 * 3);
    let x = put(&xs, &[16, 3], &mesh, p(&[Some("data")]));
    let m = mesh.clone();
    let f = jit(move |x: Tensor| {
        let body = shard_map(
            |a: &[Tensor]| {
                vec![
                    all_gather(&a[0], "data", 0, true),
                    all_gather(&a[0], "data", 1, false),
                ]
            },
            &m,
            &[p(&[Some("data")])],
            &[p(&[Some("data")]), p(&[Some("data")])],
        );
        let o = body(&[x]);
        (o[0].clone(), o[1].clone())
    })
    .sharded(mesh, |_, _| p(&[Some("data")]));
    let (tiled, stacked) = f.call(&x).unwrap();
    // Device d's block of the result is what d gathered: the whole array each time.
    assert_eq!(tiled.shape(), &[128, 3]);
    let want: Vec<f64> = (0..8).flat_map(|_| xs.iter().map(|&v| v as f64)).collect();
    close(&tiled.to_vec::<f32>().unwrap(), &want, "tiled all_gather");
    // Untiled: device d holds [2, 8, 3] with [r, k, c] = x[2k + r, c].
    assert_eq!(stacked.shape(), &[16, 8, 3]);
    let want: Vec<f64> = (0..8)
        .flat_map(|_| {
            let xs = &xs;
            (0..2).flat_map(move |r| {
                (0..8).flat_map(move |k| (0..3).map(move |c| at(xs, 3, 2 * k + r, c)))
            })
        })
        .collect();
    close(
        &stacked.to_vec::<f32>().unwrap(),
        &want,
        "stacked all_gather",
    );
}

/// `ppermute` by +1 along 'data' as a host roll of the 2-row blocks, and a partial
/// permutation leaves the devices nobody sends to with zeros.
fn check_ppermute(mesh: Mesh) {
    let xs = data(16 * 3);
    let x = put(&xs, &[16, 3], &mesh, p(&[Some("data")]));
    let m = mesh.clone();
    let shift: Vec<(usize, usize)> = (0..8).map(|i| (i, (i + 1) % 8)).collect();
    let f = jit(move |x: Tensor| {
        let shift = shift.clone();
        let body = shard_map(
            move |a: &[Tensor]| {
                vec![
                    ppermute(&a[0], "data", &shift),
                    ppermute(&a[0], "data", &[(0, 3), (5, 1)]),
                ]
            },
            &m,
            &[p(&[Some("data")])],
            &[p(&[Some("data")]), p(&[Some("data")])],
        );
        let o = body(&[x]);
        (o[0].clone(), o[1].clone())
    })
    .sharded(mesh, |_, _| p(&[Some("data")]));
    let (rolled, partial) = f.call(&x).unwrap();
    let want: Vec<f64> = (0..16 * 3)
        .map(|k| {
            let (r, c) = (k / 3, k % 3);
            at(&xs, 3, (r + 16 - 2) % 16, c)
        })
        .collect();
    close(&rolled.to_vec::<f32>().unwrap(), &want, "roll by one block");
    let want: Vec<f64> = (0..16 * 3)
        .map(|k| {
            let (r, c) = (k / 3, k % 3);
            match r / 2 {
                3 => at(&xs, 3, r - 6, c),
                1 => at(&xs, 3, r + 8, c),
                _ => 0.0,
            }
        })
        .collect();
    close(
        &partial.to_vec::<f32>().unwrap(),
        &want,
        "partial permutation",
    );
}

#[test]
fn ppermute_shifts_shards_as_a_host_roll() {
    check_ppermute(data_mesh());
}

#[test]
fn collectives_follow_the_mesh_order_not_the_device_ids() {
    let mut reversed = ids();
    reversed.reverse();
    check_ppermute(Mesh::new(&[("data", 8)], &reversed).unwrap());
}

#[test]
fn two_axis_mesh_psum_over_one_axis_and_axis_index() {
    let mesh = Mesh::new(&[("data", 4), ("model", 2)], &ids()).unwrap();
    let xs = data(8 * 6);
    let x = put(&xs, &[8, 6], &mesh, p(&[Some("data"), Some("model")]));
    let m = mesh.clone();
    let f = jit(move |x: Tensor| {
        let body = shard_map(
            |a: &[Tensor]| {
                let idx = &(axis_index("data") * 10) + &axis_index("model");
                vec![
                    psum(&a[0], &["data"]),
                    psum(&a[0], &["model"]),
                    psum(&a[0], &["data", "model"]),
                    np::reshape(&idx, &[1, 1]),
                ]
            },
            &m,
            &[p(&[Some("data"), Some("model")])],
            &[
                p(&[None, Some("model")]),
                p(&[Some("data"), None]),
                PartitionSpec::replicated(),
                p(&[Some("data"), Some("model")]),
            ],
        );
        let o = body(&[x]);
        (o[0].clone(), o[1].clone(), o[2].clone(), o[3].clone())
    })
    .sharded(mesh.clone(), |path, _| match path {
        "0" => p(&[None, Some("model")]),
        "1" => p(&[Some("data"), None]),
        "2" => PartitionSpec::replicated(),
        _ => p(&[Some("data"), Some("model")]),
    });
    let lowered = f.lower(&Spec::new([8, 6], DType::F32)).unwrap().text;
    assert!(lowered.contains("sdy.manual_computation"), "{lowered}");
    assert!(
        lowered.contains("dense<[[0, 2, 4, 6], [1, 3, 5, 7]]> : tensor<2x4xi64>"),
        "psum over 'data' groups the devices that share a 'model' index: {lowered}"
    );
    let (over_data, over_model, over_all, idx) = f.call(&x).unwrap();
    // Block (d, m) of x is rows 2d..2d+2, columns 3m..3m+3.
    let block = |d: usize, m: usize, r: usize, c: usize| at(&xs, 6, 2 * d + r, 3 * m + c);
    let want: Vec<f64> = (0..2 * 6)
        .map(|k| {
            let (r, col) = (k / 6, k % 6);
            (0..4).map(|d| block(d, col / 3, r, col % 3)).sum()
        })
        .collect();
    close(&over_data.to_vec::<f32>().unwrap(), &want, "psum over data");
    let want: Vec<f64> = (0..8 * 3)
        .map(|k| {
            let (row, c) = (k / 3, k % 3);
            (0..2).map(|m| block(row / 2, m, row % 2, c)).sum()
        })
        .collect();
    close(
        &over_model.to_vec::<f32>().unwrap(),
        &want,
        "psum over model",
    );
    let want: Vec<f64> = (0..2 * 3)
        .map(|k| {
            let (r, c) = (k / 3, k % 3);
            (0..8).map(|q| block(q / 2, q % 2, r, c)).sum()
        })
        .collect();
    close(&over_all.to_vec::<f32>().unwrap(), &want, "psum over both");
    let want: Vec<i32> = (0..4)
        .flat_map(|d| (0..2).map(move |m| d * 10 + m))
        .collect();
    assert_eq!(idx.to_vec::<i32>().unwrap(), want, "axis_index");
}

#[test]
fn psum_scatter_keeps_each_devices_block_of_the_sum() {
    let mesh = data_mesh();
    let xs = data(8 * 16);
    // Every device holds a [16] row; the sum of the rows, cut in 8 blocks of 2.
    let x = put(&xs, &[8, 16], &mesh, p(&[Some("data")]));
    let m = mesh.clone();
    let f = jit(move |x: Tensor| {
        let body = shard_map(
            |a: &[Tensor]| vec![psum_scatter(&a[0], "data", 1)],
            &m,
            &[p(&[Some("data")])],
            &[p(&[None, Some("data")])],
        );
        body(&[x]).remove(0)
    })
    .sharded(mesh, |_, _| p(&[None, Some("data")]));
    let out = f.call(&x).unwrap();
    assert_eq!(out.shape(), &[1, 16]);
    let want: Vec<f64> = (0..16)
        .map(|c| (0..8).map(|r| at(&xs, 16, r, c)).sum())
        .collect();
    close(&out.to_vec::<f32>().unwrap(), &want, "psum_scatter");
}

#[test]
fn gradients_through_psum_all_gather_and_ppermute() {
    let mesh = data_mesh();
    let xs = data(16 * 3);
    let cs: Vec<f32> = (0..16 * 3).map(|i| 0.3 + 0.01 * i as f32).collect();
    let x = put(&xs, &[16, 3], &mesh, p(&[Some("data")]));
    let c = put(&cs, &[16, 3], &mesh, p(&[Some("data")]));
    let c_top = Array::from_slice(&cs[..6], &[2, 3]).unwrap();
    let m = mesh.clone();
    let f = jit(move |(x, c, c_top): (Tensor, Tensor, Tensor)| {
        let data = || p(&[Some("data")]);
        let m = m.clone();
        // L1 = sum(c_top * psum(sin x)): dL1/dx = cos(x) * c_top, per block.
        let l1 = {
            let m = m.clone();
            move |x: Tensor| {
                let s = shard_map(
                    |a: &[Tensor]| vec![psum(&np::sin(&a[0]), &["data"])],
                    &m,
                    &[data()],
                    &[PartitionSpec::replicated()],
                )(&[x])
                .remove(0);
                np::sum(&(&s * &c_top), np::Axes::All, false)
            }
        };
        // L2 = sum(c * x * colsum(x)) with colsum from all_gather.
        let l2 = {
            let (m, c) = (m.clone(), c.clone());
            move |x: Tensor| {
                let y = shard_map(
                    |a: &[Tensor]| {
                        let all = all_gather(&a[0], "data", 0, true);
                        vec![&a[0] * &np::sum(&all, 0, true)]
                    },
                    &m,
                    &[data()],
                    &[data()],
                )(&[x])
                .remove(0);
                np::sum(&(&y * &c), np::Axes::All, false)
            }
        };
        // L3 = sum(c * x * roll(x)) with the roll by one block from ppermute.
        let l3 = {
            let (m, c) = (m.clone(), c.clone());
            move |x: Tensor| {
                let shift: Vec<(usize, usize)> = (0..8).map(|i| (i, (i + 1) % 8)).collect();
                let y = shard_map(
                    move |a: &[Tensor]| vec![&a[0] * &ppermute(&a[0], "data", &shift)],
                    &m,
                    &[data()],
                    &[data()],
                )(&[x])
                .remove(0);
                np::sum(&(&y * &c), np::Axes::All, false)
            }
        };
        (grad(l1)(&x), grad(l2)(&x), grad(l3)(&x))
    })
    .sharded(mesh, |_, _| p(&[Some("data")]));
    let (g1, g2, g3) = f.call(&(x, c, c_top)).unwrap();
    let x64 = |r: usize, k: usize| at(&xs, 3, r, k);
    let c64 = |r: usize, k: usize| at(&cs, 3, r, k);
    let want1: Vec<f64> = (0..48)
        .map(|i| x64(i / 3, i % 3).cos() * c64(i / 3 % 2, i % 3))
        .collect();
    close(&g1.to_vec::<f32>().unwrap(), &want1, "grad through psum");
    let colsum = |k: usize| (0..16).map(|r| x64(r, k)).sum::<f64>();
    let cx = |k: usize| (0..16).map(|r| c64(r, k) * x64(r, k)).sum::<f64>();
    let want2: Vec<f64> = (0..48)
        .map(|i| {
            let (r, k) = (i / 3, i % 3);
            c64(r, k) * colsum(k) + cx(k)
        })
        .collect();
    close(
        &g2.to_vec::<f32>().unwrap(),
        &want2,
        "grad through all_gather",
    );
    let want3: Vec<f64> = (0..48)
        .map(|i| {
            let (r, k) = (i / 3, i % 3);
            c64(r, k) * x64((r + 14) % 16, k) + c64((r + 2) % 16, k) * x64((r + 2) % 16, k)
        })
        .collect();
    close(
        &g3.to_vec::<f32>().unwrap(),
        &want3,
        "grad through ppermute",
    );
}

#[test]
fn gradients_on_two_axes_with_a_closed_over_value() {
    let mesh = Mesh::new(&[("data", 4), ("model", 2)], &ids()).unwrap();
    let xs = data(8 * 6);
    let ws: Vec<f32> = (0..6).map(|k| 0.5 - 0.2 * k as f32).collect();
    let cs = [0.7f32, -1.3];
    let x = put(&xs, &[8, 6], &mesh, p(&[Some("data")]));
    let w = Array::from_slice(&ws, &[6]).unwrap();
    let c = Array::from_slice(&cs, &[2]).unwrap();
    let m = mesh.clone();
    // y[r] = sum over d, k of x[2d + r, k] w[k], with x split over 'data' and replicated
    // over 'model', and w closed over (replicated); L = sum(c * y).
    let f = jit(move |(x, w, c): (Tensor, Tensor, Tensor)| {
        let m = m.clone();
        let loss = move |(x, w): (Tensor, Tensor)| {
            let y = shard_map(
                |a: &[Tensor]| vec![psum(&np::sum(&(&a[0] * &w), 1, false), &["data"])],
                &m,
                &[p(&[Some("data")])],
                &[PartitionSpec::replicated()],
            )(&[x])
            .remove(0);
            np::sum(&(&y * &c), np::Axes::All, false)
        };
        grad(loss)(&(x, w))
    })
    .sharded(mesh, |path, _| {
        if path == "0" {
            p(&[Some("data")])
        } else {
            PartitionSpec::replicated()
        }
    });
    let (gx, gw) = f.call(&(x, w, c)).unwrap();
    let want_x: Vec<f64> = (0..48)
        .map(|i| cs[i / 6 % 2] as f64 * ws[i % 6] as f64)
        .collect();
    close(&gx.to_vec::<f32>().unwrap(), &want_x, "d/dx");
    let want_w: Vec<f64> = (0..6)
        .map(|k| (0..8).map(|r| cs[r % 2] as f64 * at(&xs, 6, r, k)).sum())
        .collect();
    close(&gw.to_vec::<f32>().unwrap(), &want_w, "d/dw (closed over)");
}

#[test]
fn forward_mode_through_psum_and_ppermute() {
    let mesh = data_mesh();
    let xs = data(16 * 3);
    let ts: Vec<f32> = (0..48).map(|i| 1.0 - 0.03 * i as f32).collect();
    let x = put(&xs, &[16, 3], &mesh, p(&[Some("data")]));
    let t = put(&ts, &[16, 3], &mesh, p(&[Some("data")]));
    let m = mesh.clone();
    let f = jit(move |(x, t): (Tensor, Tensor)| {
        let m = m.clone();
        let g = move |x: Tensor| {
            let shift: Vec<(usize, usize)> = (0..8).map(|i| (i, (i + 1) % 8)).collect();
            let o = shard_map(
                move |a: &[Tensor]| {
                    vec![
                        psum(&np::sin(&a[0]), &["data"]),
                        &a[0] * &ppermute(&a[0], "data", &shift),
                    ]
                },
                &m,
                &[p(&[Some("data")])],
                &[PartitionSpec::replicated(), p(&[Some("data")])],
            )(&[x]);
            (o[0].clone(), o[1].clone())
        };
        jvp(g, &x, &t).1
    })
    .sharded(mesh, |path, _| {
        if path == "0" {
            PartitionSpec::replicated()
        } else {
            p(&[Some("data")])
        }
    });
    let (d_sum, d_prod) = f.call(&(x, t)).unwrap();
    let x64 = |r: usize, k: usize| at(&xs, 3, r, k);
    let t64 = |r: usize, k: usize| at(&ts, 3, r, k);
    let want: Vec<f64> = (0..6)
        .map(|i| {
            let (r, k) = (i / 3, i % 3);
            (0..8)
                .map(|b| x64(2 * b + r, k).cos() * t64(2 * b + r, k))
                .sum()
        })
        .collect();
    close(&d_sum.to_vec::<f32>().unwrap(), &want, "jvp through psum");
    let want: Vec<f64> = (0..48)
        .map(|i| {
            let (r, k) = (i / 3, i % 3);
            let prev = (r + 14) % 16;
            t64(r, k) * x64(prev, k) + x64(r, k) * t64(prev, k)
        })
        .collect();
    close(
        &d_prod.to_vec::<f32>().unwrap(),
        &want,
        "jvp through ppermute",
    );
}

fn lower_error(f: impl Fn(Tensor) -> Tensor + Send + Sync + 'static, shape: &[usize]) -> String {
    jit(f)
        .sharded(data_mesh(), |_, _| PartitionSpec::replicated())
        .lower(&Spec::new(shape.to_vec(), DType::F32))
        .unwrap_err()
        .to_string()
}

#[test]
fn bad_axes_and_specs_are_explained() {
    let m = data_mesh();
    let e = lower_error(
        move |x| {
            shard_map(
                |a: &[Tensor]| vec![psum(&a[0], &["model"])],
                &m,
                &[p(&[Some("data")])],
                &[p(&[Some("data")])],
            )(&[x])
            .remove(0)
        },
        &[16],
    );
    assert!(
        e.contains("psum") && e.contains("the mesh has no axis 'model' (axes: 'data'=8)"),
        "{e}"
    );
    let m = data_mesh();
    let e = lower_error(
        move |x| {
            shard_map(
                |a: &[Tensor]| vec![a[0].clone()],
                &m,
                &[p(&[Some("data")])],
                &[p(&[Some("data")])],
            )(&[x])
            .remove(0)
        },
        &[6, 2],
    );
    assert!(
        e.contains("shard_map")
            && e.contains("argument 0")
            && e.contains("dimension 0 of size 6 is not divisible by 8"),
        "{e}"
    );
    let e = lower_error(|x| psum(&x, &["data"]), &[4]);
    assert!(
        e.contains("`psum` over 'data' must be called inside the body of shard_map"),
        "{e}"
    );
    let m = data_mesh();
    let e = jit(move |x: Tensor| {
        shard_map(
            |a: &[Tensor]| vec![a[0].clone()],
            &m,
            &[p(&[Some("data")])],
            &[p(&[Some("data")])],
        )(&[x])
        .remove(0)
    })
    .lower(&Spec::new([8], DType::F32))
    .unwrap_err()
    .to_string();
    assert!(e.contains("jitted with `.sharded(mesh, ..)`"), "{e}");
    let m = data_mesh();
    let e = lower_error(
        move |x| {
            shard_map(
                |a: &[Tensor]| vec![ppermute(&a[0], "data", &[(0, 1), (2, 1)])],
                &m,
                &[p(&[Some("data")])],
                &[p(&[Some("data")])],
            )(&[x])
            .remove(0)
        },
        &[16],
    );
    assert!(
        e.contains("ppermute") && e.contains("destination 1 appears twice"),
        "{e}"
    );
}

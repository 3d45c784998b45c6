//! FlexiViT's two resizes, as linear maps computed on the host and applied in the traced
//! program (so gradients flow to the stored parameters):
//!
//! * [`resample_patchemb`]: big_vision's PI-resize of the patch-embedding kernel. big_vision
//!   builds the matrix `M` of `tf.image.resize(bilinear)` on basis vectors and applies
//!   `pinv(Mᵀ)` to each `(h, w)` kernel slice. Bilinear resizing is separable, `M = Mh ⊗ Mw`,
//!   so `pinv(Mᵀ) = pinv(Mhᵀ) ⊗ pinv(Mwᵀ)` and the kernel is contracted with two small
//!   matrices, one per axis.
//! * [`resize_posemb`]: `jax.image.resize(posemb, (1, h, w, c), "linear")`, JAX's
//!   triangle-kernel scale-and-translate with antialiasing when downsampling, again one
//!   weight matrix per axis.

use bv_core::io::HostArray;
use bv_core::numpy as np;
use bv_core::{prim, Tensor};

/// `tf.image.resize(x, n_out, "bilinear")` along one axis (half-pixel centres, no
/// antialiasing) as an `(n_out, n_in)` row-major matrix, with TensorFlow's float32 sample
/// positions and weights.
pub fn tf_bilinear_matrix(n_in: usize, n_out: usize) -> Vec<f64> {
    let scale = n_in as f32 / n_out as f32;
    let mut m = vec![0.0; n_out * n_in];
    for y in 0..n_out {
        let pos = (y as f32 + 0.5) * scale - 0.5;
        let lower = (pos.floor() as i64).max(0) as usize;
        let upper = (pos.ceil() as i64).min(n_in as i64 - 1).max(0) as usize;
        let lerp = pos - pos.floor();
        m[y * n_in + lower] += f64::from(1.0 - lerp);
        m[y * n_in + upper] += f64::from(lerp);
    }
    m
}

/// The Moore-Penrose pseudo-inverse of the `(rows, cols)` matrix `a` of full rank, as a
/// `(cols, rows)` matrix: `aᵀ(aaᵀ)⁻¹` for a wide matrix, `(aᵀa)⁻¹aᵀ` for a tall one.
pub fn pinv(a: &[f64], rows: usize, cols: usize) -> Result<Vec<f64>, String> {
    let at = |i: usize, j: usize| a[i * cols + j];
    let wide = rows <= cols;
    let n = rows.min(cols);
    // The Gram matrix of the short side, n x n.
    let mut g = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            g[i * n + j] = if wide {
                (0..cols).map(|k| at(i, k) * at(j, k)).sum()
            } else {
                (0..rows).map(|k| at(k, i) * at(k, j)).sum()
            };
        }
    }
    let inv = invert(&g, n)?;
    let mut out = vec![0.0; cols * rows];
    for c in 0..cols {
        for r in 0..rows {
            out[c * rows + r] = if wide {
                (0..n).map(|k| at(k, c) * inv[k * n + r]).sum()
            } else {
                (0..n).map(|k| inv[c * n + k] * at(r, k)).sum()
            };
        }
    }
    Ok(out)
}

/// The inverse of an `n x n` matrix by Gauss-Jordan elimination with partial pivoting.
fn invert(m: &[f64], n: usize) -> Result<Vec<f64>, String> {
    let mut a = m.to_vec();
    let mut inv: Vec<f64> = (0..n * n)
        .map(|i| if i / n == i % n { 1.0 } else { 0.0 })
        .collect();
    let scale = m.iter().fold(0.0f64, |s, v| s.max(v.abs()));
    for col in 0..n {
        let piv = (col..n)
            .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
            .expect("a non-empty column");
        if a[piv * n + col].abs() <= 1e-12 * scale {
            return Err(format!(
                "the resize matrix is singular (rank below {n}); no pseudo-inverse resize exists"
            ));
        }
        for k in 0..n {
            a.swap(col * n + k, piv * n + k);
            inv.swap(col * n + k, piv * n + k);
        }
        let p = a[col * n + col];
        for k in 0..n {
            a[col * n + k] /= p;
            inv[col * n + k] /= p;
        }
        for r in (0..n).filter(|&r| r != col) {
            let f = a[r * n + col];
            if f != 0.0 {
                for k in 0..n {
                    a[r * n + k] -= f * a[col * n + k];
                    inv[r * n + k] -= f * inv[col * n + k];
                }
            }
        }
    }
    Ok(inv)
}

/// `pinv(Mᵀ)` for the one-axis resize `n_old → n_new`: the `(n_new, n_old)` matrix that
/// maps a kernel axis of the old patch size to the new one.
pub fn patchemb_axis_matrix(n_old: usize, n_new: usize) -> Result<Vec<f64>, String> {
    let m = tf_bilinear_matrix(n_old, n_new); // (n_new, n_old)
    let mt: Vec<f64> = (0..n_old * n_new)
        .map(|i| m[(i % n_new) * n_old + i / n_new])
        .collect(); // (n_old, n_new)
    pinv(&mt, n_old, n_new)
}

/// big_vision's `resample_patchemb(old, new_hw)` on a traced `(h, w, c, d)` kernel: the
/// kernel itself when the size is unchanged.
pub fn resample_patchemb(kernel: &Tensor, new_hw: (usize, usize)) -> Result<Tensor, String> {
    let (h, w) = (kernel.shape()[0], kernel.shape()[1]);
    if (h, w) == new_hw {
        return Ok(kernel.clone());
    }
    let f32s = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
    let ph = prim::constant(&f32s(patchemb_axis_matrix(h, new_hw.0)?), &[new_hw.0, h]);
    let pw = prim::constant(&f32s(patchemb_axis_matrix(w, new_hw.1)?), &[new_hw.1, w]);
    let k = np::einsum("ia,abcd->ibcd", &[&ph, kernel]);
    Ok(np::einsum("jb,ibcd->ijcd", &[&pw, &k]))
}

/// [`resample_patchemb`] on a stored kernel (for loading a checkpoint of another patch
/// size), computed in float64 and stored as float32.
pub fn resample_patchemb_host(
    kernel: &HostArray,
    new_hw: (usize, usize),
) -> Result<HostArray, String> {
    let s = kernel.shape();
    if s.len() != 4 {
        return Err(format!(
            "a patch-embedding kernel has 4 dimensions, got {s:?}"
        ));
    }
    let (h, w, cd) = (s[0], s[1], s[2] * s[3]);
    let ph = patchemb_axis_matrix(h, new_hw.0)?;
    let pw = patchemb_axis_matrix(w, new_hw.1)?;
    let k = kernel.to_f64();
    let mut out = vec![0f32; new_hw.0 * new_hw.1 * cd];
    for i in 0..new_hw.0 {
        for j in 0..new_hw.1 {
            for a in 0..h {
                for b in 0..w {
                    let f = ph[i * h + a] * pw[j * w + b];
                    let src = &k[(a * w + b) * cd..(a * w + b + 1) * cd];
                    let dst = &mut out[(i * new_hw.1 + j) * cd..(i * new_hw.1 + j + 1) * cd];
                    for (d, v) in dst.iter_mut().zip(src) {
                        *d += (f * v) as f32;
                    }
                }
            }
        }
    }
    HostArray::from_slice(&out, &[new_hw.0, new_hw.1, s[2], s[3]]).map_err(|e| e.to_string())
}

/// JAX's `compute_weight_mat` for the triangle ("linear") kernel with antialiasing, as an
/// `(n_in, n_out)` row-major float32 matrix.
pub fn jax_linear_weights(n_in: usize, n_out: usize) -> Vec<f32> {
    let inv_scale = (n_in as f64 / n_out as f64) as f32;
    let kernel_scale = inv_scale.max(1.0);
    let mut w = vec![0f32; n_in * n_out];
    for o in 0..n_out {
        let sample = (o as f32 + 0.5) * inv_scale - 0.5;
        let col: Vec<f32> = (0..n_in)
            .map(|i| (1.0 - ((sample - i as f32).abs() / kernel_scale)).max(0.0))
            .collect();
        let total: f32 = col.iter().sum();
        let inside = sample >= -0.5 && sample <= n_in as f32 - 0.5;
        for (i, v) in col.into_iter().enumerate() {
            w[i * n_out + o] = if inside && total.abs() > 1000.0 * f32::EPSILON {
                v / total
            } else {
                0.0
            };
        }
    }
    w
}

/// `jax.image.resize(pe.reshape(1, h0, w0, c), (1, h, w, c), "linear").reshape(1, h·w, c)`
/// of a traced `(1, h0·w0, c)` position embedding.
pub fn resize_posemb(pe: &Tensor, from: (usize, usize), to: (usize, usize)) -> Tensor {
    let c = pe.shape()[2];
    let mut x = prim::reshape(pe, &[1, from.0, from.1, c]);
    if from.0 != to.0 {
        let wy = prim::constant(&jax_linear_weights(from.0, to.0), &[from.0, to.0]);
        x = np::einsum("nawc,ah->nhwc", &[&x, &wy]);
    }
    if from.1 != to.1 {
        let wx = prim::constant(&jax_linear_weights(from.1, to.1), &[from.1, to.1]);
        x = np::einsum("nhbc,bw->nhwc", &[&x, &wx]);
    }
    prim::reshape(&x, &[1, to.0 * to.1, c])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// float64 reference: the pseudo-inverse satisfies the Penrose conditions A·A⁺·A = A and
    /// A⁺·A·A⁺ = A⁺ for a wide and a tall resize matrix.
    #[test]
    fn pinv_satisfies_penrose_conditions() {
        for (r, c) in [(4, 9), (9, 4)] {
            let a = tf_bilinear_matrix(c, r);
            let p = pinv(&a, r, c).unwrap();
            let mul = |x: &[f64], y: &[f64], n: usize, k: usize, m: usize| {
                let mut o = vec![0.0; n * m];
                for i in 0..n {
                    for j in 0..m {
                        o[i * m + j] = (0..k).map(|t| x[i * k + t] * y[t * m + j]).sum();
                    }
                }
                o
            };
            let apa = mul(&mul(&a, &p, r, c, r), &a, r, r, c);
            let pap = mul(&mul(&p, &a, c, r, c), &p, c, c, r);
            assert!(apa.iter().zip(&a).all(|(x, y)| (x - y).abs() < 1e-12));
            assert!(pap.iter().zip(&p).all(|(x, y)| (x - y).abs() < 1e-12));
        }
    }

    /// By hand: 2 → 4 bilinear with half-pixel centres samples at -0.25, 0.25, 0.75, 1.25.
    #[test]
    fn tf_bilinear_upsamples_by_hand() {
        let m = tf_bilinear_matrix(2, 4);
        let want = [1.0, 0.0, 0.75, 0.25, 0.25, 0.75, 0.0, 1.0];
        assert_eq!(m, want);
    }
}

"""What JAX itself gives on a GPU for the three runtime-test cases whose CPU references do not
hold there (benches/gpu_check.sh, docs/tpu_gpu.md "Measured on a GPU"):

1. `uniform/minmax` of tests/golden/prng (made by JAX on a CPU): JAX on the GPU, in ulp
   from the CPU value, and JAX's own CPU backend on this machine (expected 0);
2. `x.at[[1, 1, 3]].set(u)` (bv-core/tests/data/kinks_jax.py's `scatter_set_repeated`):
   which of the repeated updates wins on the GPU;
3. 8 blocks of 8 `tanh(h @ w)` with and without `jax.checkpoint` (bv-core's
   autodiff_transforms remat test): the largest relative gradient difference under the
   default matmul precision (TF32 on the GPU) and under "highest".

  python benches/jax/gpu_platform_checks.py   # on a machine with jax[cuda]
Prints one JSON object.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def ulps(a, b):
  ia = np.asarray(a, np.float32).view(np.int32).astype(np.int64)
  ib = np.asarray(b, np.float32).view(np.int32).astype(np.int64)
  return int(np.abs(ia - ib).max())


def uniform_minmax(device):
  k = jax.random.fold_in(jax.random.PRNGKey(42), 1000)
  f = jax.jit(lambda k: jax.random.uniform(k, (4, 6), jnp.float32, -2.0, 3.0), device=device)
  return np.asarray(f(k))


def remat_gap(precision):
  def loss(w, x, policy_remat):
    def block(h, w):
      for _ in range(8):
        h = jnp.tanh(h @ w)
      return h
    b = jax.checkpoint(block) if policy_remat else block
    h = x
    for _ in range(8):
      h = b(h, w)
    return h.sum()

  rng = np.random.default_rng(11)
  x = jnp.asarray(rng.uniform(-1, 1, (256, 256)), jnp.float32)
  w = jnp.asarray(rng.uniform(-0.1, 0.1, (256, 256)), jnp.float32)
  with jax.default_matmul_precision(precision):
    g1 = np.asarray(jax.jit(jax.grad(lambda w: loss(w, x, False)))(w), np.float64)
    g2 = np.asarray(jax.jit(jax.grad(lambda w: loss(w, x, True)))(w), np.float64)
  return float(np.max(np.abs(g1 - g2) / (1 + np.abs(g1))))


def main():
  golden = np.load(os.path.join(HERE, "../../tests/golden/prng/prng.npz"))["uniform/minmax"]
  gpu, cpu = jax.devices()[0], jax.devices("cpu")[0]
  x = jnp.arange(10, dtype=jnp.float32).reshape(5, 2)
  u = jnp.arange(10, 16, dtype=jnp.float32).reshape(3, 2)
  scatter = jax.jit(lambda x, u: x.at[jnp.array([1, 1, 3])].set(u))(x, u)
  print(json.dumps({
      "jax": jax.__version__,
      "device": str(gpu),
      "uniform_minmax_ulp_gpu_vs_cpu_golden": ulps(uniform_minmax(gpu), golden),
      "uniform_minmax_ulp_jax_cpu_vs_cpu_golden": ulps(uniform_minmax(cpu), golden),
      "scatter_set_repeated_gpu": np.asarray(scatter).reshape(-1).tolist(),
      "remat_grad_max_rel_diff_default": remat_gap("default"),
      "remat_grad_max_rel_diff_highest": remat_gap("highest"),
  }))


if __name__ == "__main__":
  main()

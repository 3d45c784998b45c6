"""JAX's side of `bv-bench runtime`: the same measurements as benches/src/runtime.rs.

Prints one JSON object: dispatch_us, call_wait_us, h2d_gbps, d2h_gbps.
"""
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

DISPATCH_CALLS = 5000
BYTES = 64 << 20
REPS = 10


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def main():
    f = jax.jit(lambda x: x + 1.0)
    x = jnp.arange(8, dtype=jnp.float32)
    f(x).block_until_ready()
    t = time.perf_counter()
    for _ in range(DISPATCH_CALLS):
        y = f(x)
    y.block_until_ready()
    dispatch_us = (time.perf_counter() - t) / DISPATCH_CALLS * 1e6

    t = time.perf_counter()
    for _ in range(DISPATCH_CALLS // 5):
        f(x).block_until_ready()
    call_wait_us = (time.perf_counter() - t) / (DISPATCH_CALLS // 5) * 1e6

    host = np.random.default_rng(0).random(BYTES // 4, dtype=np.float32)
    jax.device_put(host).block_until_ready()
    h2d = []
    for _ in range(REPS):
        t = time.perf_counter()
        jax.device_put(host).block_until_ready()
        h2d.append(BYTES / (time.perf_counter() - t) / 1e9)

    copy = jax.jit(lambda a: a * 2.0)
    dev = jax.device_put(host)
    d2h = []
    for _ in range(REPS):
        fresh = copy(dev).block_until_ready()
        t = time.perf_counter()
        np.asarray(fresh)
        d2h.append(BYTES / (time.perf_counter() - t) / 1e9)

    print(json.dumps({
        "dispatch_us": dispatch_us,
        "call_wait_us": call_wait_us,
        "h2d_gbps": median(h2d),
        "d2h_gbps": median(d2h),
        "jax": jax.__version__,
    }))


if __name__ == "__main__":
    main()

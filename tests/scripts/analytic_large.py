"""Run in a fresh interpreter: the analytic NTK of N points (default 50,000), float32, under the
default 2 GiB tile budget. Prints one JSON line: seconds, peak resident growth (GiB), output size
(GiB), and the worst relative error of spot checks across tile borders against direct small calls."""

import json
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)  # for the float64 reference; the kernel itself is float32

import jax.numpy as jnp  # noqa: E402  (after enabling float64)

import ntk_lab as nl  # noqa: E402


def status_gib(field):  # VmRSS now / VmHWM peak: unlike ru_maxrss, not inherited from pytest
  with open("/proc/self/status") as f:
    return next(int(l.split()[1]) for l in f if l.startswith(field + ":")) / 2**20


n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
net = nl.MLP((512, 512, 512), activation="relu", b_std=0.1)
x = jax.random.normal(jax.random.PRNGKey(1), (n, 32), jnp.float32)
x.block_until_ready()
before = status_gib("VmRSS")
t0 = time.perf_counter()
K = net.kernel(x, get="ntk").ntk
K.block_until_ready()
seconds = time.perf_counter() - t0
growth = status_gib("VmHWM") - before
rows = jnp.array([0, 1, 5759, 5760, 11_519, n // 2, n - 2, n - 1])
cols = jnp.array([3, 5760, 17_280, n // 3, n - 1])
# The reference in float64: in float32 a point paired with itself has cos θ = 1 − ε and θ ≈ 3e-4,
# which the full kernel avoids (its diagonal is set pointwise) but a direct x1-vs-x2 call does not.
x64 = x.astype(jnp.float64)
direct = net.kernel(x64[rows], x64[cols], get="ntk").ntk
got, mirrored = K[rows][:, cols].astype(jnp.float64), K[cols][:, rows].T.astype(jnp.float64)
err = max(
  float(jnp.linalg.norm(got - direct) / jnp.linalg.norm(direct)),
  float(jnp.linalg.norm(mirrored - direct) / jnp.linalg.norm(direct)),
)
finite = bool(jnp.isfinite(K).all())
print(
  json.dumps(
    {
      "n": n,
      "seconds": seconds,
      "growth_gib": growth,
      "output_gib": K.nbytes / 2**30,
      "spot_rel_err": err,
      "finite": finite,
      "dtype": str(K.dtype),
      "shape": list(K.shape),
    }
  )
)

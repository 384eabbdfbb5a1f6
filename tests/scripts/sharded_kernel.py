"""Run in a fresh interpreter with XLA_FLAGS=--xla_force_host_platform_device_count=4: the
analytic kernel split over 4 CPU devices equals the single-device one. Prints 'ok N'."""

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import ntk_lab as nl  # noqa: E402

devices = jax.devices()
assert len(devices) == 4, devices
x1 = jax.random.normal(jax.random.PRNGKey(0), (30, 3))  # 30 rows: not a multiple of 4
x2 = jax.random.normal(jax.random.PRNGKey(1), (11, 3))
checks = 0
for act in ("relu", "tanh"):
  net = nl.MLP((8, 8), activation=act, b_std=0.1)
  for xb in (None, x2):
    ref = net.kernel(x1, xb)
    for kw in (dict(devices=devices), dict(devices=devices, tile_size=4), dict(devices=devices[:2])):
      k = net.kernel(x1, xb, **kw)
      for name in ("nngp", "ntk"):
        a, b = np.asarray(getattr(k, name)), np.asarray(getattr(ref, name))
        assert a.shape == b.shape, (a.shape, b.shape)
        err = np.linalg.norm(a - b) / np.linalg.norm(b)
        assert err <= 1e-13, (act, xb is None, kw.get("tile_size"), name, err)
        checks += 1
out = nl.analytic_kernel(nl.MLP((8,)), x1, devices=devices).ntk
assert len(out.sharding.device_set) == 4, out.sharding  # the result stays split by rows
print("ok", checks)

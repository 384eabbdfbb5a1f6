"""Run by `make wheel-check` in a clean virtual environment outside the repository, with ntk_lab
installed from its wheel: the installed package imports, reports the version of its metadata, and
computes an MLP's and a network of layers' empirical NTK (two routes that must agree to 1e-10 in
float64) near its infinite-width limit. With the dist/ folder as argument, it also checks what the wheel holds.
Prints one line per check; any failure raises (exit 1)."""

import importlib.metadata
import pathlib
import sys
import zipfile

import jax

jax.config.update("jax_enable_x64", True)  # float64: the routes agree to rounding

import jax.numpy as jnp  # noqa: E402  (after enabling float64)

import ntk_lab as nl  # noqa: E402

installed = pathlib.Path(nl.__file__).resolve()
assert "site-packages" in installed.parts, f"ntk_lab was imported from {installed}, not from the wheel"
version = importlib.metadata.version("ntk_lab")
assert nl.__version__ == version, f"ntk_lab.__version__ {nl.__version__} != metadata version {version}"
print(f"ntk_lab {nl.__version__} from {installed.parent}")

x = nl.datasets.sphere(8, 3, key=jax.random.PRNGKey(1))  # (8, 3) points on the unit sphere
layers = nl.layers
networks = {
  "MLP": nl.MLP((2048,), out_dim=1, activation="erf", W_std=1.5, b_std=0.1),
  "serial": layers.serial(
    layers.Dense(2048, W_std=1.5, b_std=0.1), layers.Erf(), layers.Dense(1, W_std=1.5, b_std=0.1)
  ),
}
for name, net in networks.items():
  params = net.init(jax.random.PRNGKey(0), 3)
  theta = nl.empirical_ntk(net, params, x)
  theta_jac = nl.empirical_ntk(net.apply, params, x, method="jacobian")
  limit = nl.analytic_kernel(net, x).ntk
  route_gap = float(jnp.max(jnp.abs(theta - theta_jac)) / jnp.max(jnp.abs(theta)))
  distance = float(jnp.linalg.norm(theta - limit) / jnp.linalg.norm(limit))
  print(f"{name}, width 2048: structured vs jacobian {route_gap:.1e}, distance to the limit {distance:.3f}")
  assert route_gap < 1e-10, route_gap
  assert distance < 0.2, distance  # width^(-1/2) fluctuations: a few percent at width 2048

if len(sys.argv) > 1:
  (wheel,) = pathlib.Path(sys.argv[1]).glob("ntk_lab-*.whl")
  names = zipfile.ZipFile(wheel).namelist()
  dist_info = f"ntk_lab-{version}.dist-info"
  outside = sorted({n.split("/")[0] for n in names} - {"ntk_lab", dist_info})
  assert not outside, f"{wheel.name} installs more than ntk_lab: {outside}"
  assert f"{dist_info}/licenses/LICENSE" in names, f"{wheel.name} lacks the LICENSE"
  metadata = importlib.metadata.metadata("ntk_lab")
  assert metadata["License-Expression"] == "Apache-2.0", metadata["License-Expression"]
  print(f"{wheel.name}: {len(names)} files, ntk_lab/ and {dist_info}/ only, License-Expression Apache-2.0")

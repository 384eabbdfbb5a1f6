"""neural-tangents 0.6.5 as an oracle. Runs ONLY in the pinned NT environment (`make reference`).

    .venv-nt/bin/python reference/nt_oracle.py empirical IN.npz OUT.npz
    .venv-nt/bin/python reference/nt_oracle.py analytic IN.npz OUT.npz
    .venv-nt/bin/python reference/nt_oracle.py batch IN.npz OUT.npz
    .venv-nt/bin/python reference/nt_oracle.py bench --n 1000 --width 512 --depth 3 --impl 1 2 3
    .venv-nt/bin/python reference/nt_oracle.py bench-conv --tree JSON --shape '[8, 8, 3]' --n 32 --mode analytic

`empirical` reads a spec (JSON string under key "spec": hidden, out_dim, activation, alpha,
parametrization, W_std, b_std) with ntk_lab-layout params (W0, b0, W1, …) and inputs x1[, x2], and
writes NT's `empirical_ntk_fn` kernels for implementations 1–3, traced (`ntk_trace_<impl>`, shape
(N1, N2)) and full (`ntk_full_<impl>`, shape (N1, N2, O, O)). `analytic` writes NT's
infinite-width `kernel_fn` kernels (`nngp`, `ntk`, each (N1, N2)) for the same spec. `batch` does
many cases in one interpreter (those in `case_ids`, else 0 … `n_cases` − 1): keys `c{i}_spec`,
`c{i}_x1`, `c{i}_x2`, `c{i}_W0`, … and a JSON list `c{i}_modes` of "analytic", "empirical" (traced, implementations 1–3) and "mc" (NT's
`monte_carlo_kernel_fn` with `c{i}_mc_samples` draws from PRNGKey(`c{i}_mc_seed`)); outputs are
`c{i}_nngp`, `c{i}_ntk`, `c{i}_ntk_trace_{impl}`, `c{i}_mc_nngp`, `c{i}_mc_ntk`. Mode "nngp" writes
NT's `empirical_nngp_fn` (traced `c{i}_emp_nngp`, full `c{i}_emp_nngp_full`); mode "diagonal"
writes the batch diagonals (`diagonal_axes=(0,)`) at the pairs (x1_i, x1_i) and (x1_i, x1r_i),
x1r = x1 reversed: `c{i}_diag_{self|rev}_ntk_{impl}` (traced), `..._ntk_full_1` (N, O, O),
`..._emp_nngp`, and the diagonals of NT's infinite-width `kernel_fn`, `..._nngp`, `..._ntk`.
A spec {"network": tree} describes a network of layers instead (`build_network`), with its Dense
params as `c{i}_leaf0`, `c{i}_leaf1`, … (`c{i}_n_leaves` of them) in network order; its outputs
are `c{i}_nngp`, `c{i}_ntk` and `c{i}_ntk_trace_{impl}`. Specs may give `parametrization`, `W_std`, `b_std` (null for no bias) per layer and
`activation` per hidden layer; an "identity" activation adds no layer (Dense follows Dense). Mode "predict"
(with `c{i}_y`, `c{i}_times`, `c{i}_diag_reg`; x1 trains, x2 tests) writes
`predict.gradient_descent_mse_ensemble` means and covariances `c{i}_ens_{nngp|ntk}_{t|inf}_{mean|cov}`
and the NNGP `predict.gp_inference` posterior `c{i}_gp_mean`, `c{i}_gp_cov`. `bench` times NT's empirical NTK of
a ReLU MLP and prints one JSON line. Data crosses the boundary only as files and JSON, so ntk_lab's
own environment never imports NT or its TensorFlow.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import neural_tangents as nt  # noqa: E402
import numpy as np  # noqa: E402
from neural_tangents import stax  # noqa: E402

NUMERICAL_DEG = 300  # converged for the golden grid (tanh at 80 is off by ~1e-4)


def activation_layer(name, alpha, spec=None):
  """NT's layer for an ntk_lab activation: the name, its `params` and the affine wrap
  scale·ρ(inner·z) + shift where NT has it (Erf(a, b, c), Sin/Cos(a, b, phase), Exp(1, b))."""
  spec = spec or {}
  p = spec.get("params") or []
  a, b, c = spec.get("scale", 1.0), spec.get("inner", 1.0), spec.get("shift", 0.0)
  table = {
    "relu": stax.Relu,
    "abs": stax.Abs,
    "identity": stax.Identity,
    "leaky_relu": lambda: stax.LeakyRelu(alpha),
    "gelu": stax.Gelu,
    "erf": lambda: stax.Erf(a, b, c),
    "sin": lambda: stax.Sin(a, b, p[0] if p else 0.0),
    "cos": lambda: stax.Cos(a, b, p[0] if p else 0.0),
    "sign": stax.Sign,
    "step": lambda: stax.RectifiedMonomial(0),
    "rectified_monomial": lambda: stax.RectifiedMonomial(int(p[0])),
    "monomial": lambda: stax.Monomial(int(p[0])),
    "polynomial": lambda: stax.Polynomial(p),
    "abrelu": lambda: stax.ABRelu(p[0], p[1]),
    "rbf": lambda: stax.Rbf(p[0]),
    "gaussian": lambda: stax.Gaussian(1.0, p[0]),  # NT scales the kernel by a, not a²: a = 1 only
    "exp": lambda: stax.Exp(1.0, b),
    # No closed form in NT: its own Gauss–Hermite quadrature (apply_fn is the plain function).
    "tanh": lambda: stax.ElementwiseNumerical(jnp.tanh, deg=NUMERICAL_DEG),
    "sigmoid": lambda: stax.ElementwiseNumerical(jax.nn.sigmoid, deg=NUMERICAL_DEG),
    "softplus": lambda: stax.ElementwiseNumerical(jax.nn.softplus, deg=NUMERICAL_DEG),
  }
  affine_ok = {"erf": "abc", "sin": "ab", "cos": "ab", "exp": "b"}.get(name, "")
  for key, value, neutral in (("a", a, 1.0), ("b", b, 1.0), ("c", c, 0.0)):
    if value != neutral and key not in affine_ok:
      raise ValueError(f"{name}: NT has no layer for this affine wrap ({key} = {value})")
  return table[name]()


def per_layer(value, n):
  return list(value) if isinstance(value, list) else [value] * n


def build(spec):
  layers = []
  hidden = spec["hidden"]
  L = len(hidden) + 1
  W_stds, b_stds = per_layer(spec["W_std"], L), per_layer(spec["b_std"], L)
  params, acts = per_layer(spec["parametrization"], L), per_layer(spec["activation"], L - 1)
  for l, width in enumerate(list(hidden) + [spec["out_dim"]]):
    layers.append(stax.Dense(width, W_std=W_stds[l], b_std=b_stds[l], parameterization=params[l]))
    if l < len(hidden) and acts[l] != "identity":
      layers.append(activation_layer(acts[l], spec.get("alpha", 0.01), spec))
  return stax.serial(*layers)


def build_network(node):
  """NT's network for a layer tree written by the tests: ["serial", [...]], ["parallel", [...]],
  ["dense", out_dim, W_std, b_std, parameterization], ["act", spec], ["fanout", n],
  ["faninsum"], ["identity"], ["conv", ...], ["avgpool", ...], ["gap"], ["flatten"],
  ["layernorm", eps]."""
  kind = node[0]
  if kind in ("serial", "parallel"):
    return getattr(stax, kind)(*[build_network(child) for child in node[1]])
  if kind == "dense":
    return stax.Dense(node[1], W_std=node[2], b_std=node[3], parameterization=node[4])
  if kind == "act":
    return activation_layer(node[1]["activation"], node[1].get("alpha", 0.01), node[1])
  if kind == "fanout":
    return stax.FanOut(node[1])
  if kind == "faninsum":
    return stax.FanInSum()
  if kind == "identity":
    return stax.Identity()
  if kind == "conv":  # ["conv", out_chan, filter_shape, strides, padding, W_std, b_std, parameterization]
    out_chan, filt, strides, padding, w, b, param = node[1:]
    return stax.Conv(out_chan, tuple(filt), strides and tuple(strides), padding, w, b, parameterization=param)
  if kind == "avgpool":  # ["avgpool", window_shape, strides, padding]
    return stax.AvgPool(tuple(node[1]), node[2] and tuple(node[2]), node[3])
  if kind == "gap":
    return stax.GlobalAvgPool()
  if kind == "flatten":
    return stax.Flatten()
  if kind == "layernorm":
    return stax.LayerNorm(axis=-1, eps=node[1])
  raise ValueError(f"unknown layer kind {kind!r}")


def network_params(init_fn, leaves, in_shape):
  """NT's params tree with ntk_lab's arrays: both flatten the Dense and Conv layers in network
  order as (W, b), NT's b of shape (1, n) or (1, 1, 1, n); ``in_shape`` one input's shape."""
  _, template = init_fn(jax.random.PRNGKey(0), (-1, *in_shape))
  flat, tree = jax.tree_util.tree_flatten(template)
  assert len(flat) == len(leaves), (len(flat), len(leaves))
  return jax.tree_util.tree_unflatten(tree, [jnp.asarray(v).reshape(t.shape) for v, t in zip(leaves, flat)])


def to_nt_params(data, spec):
  params = []
  n_layers = len(spec["hidden"]) + 1
  acts = per_layer(spec["activation"], n_layers - 1)
  for l in range(n_layers):
    W = jnp.asarray(data[f"W{l}"])
    b = jnp.asarray(data[f"b{l}"]).reshape(1, -1) if f"b{l}" in data else None
    params.append((W, b))
    if l < n_layers - 1 and acts[l] != "identity":
      params.append(())
  return params


def rss_mb(field="VmRSS"):
  """Resident memory now (VmRSS) or its high-water mark (VmHWM), MiB, from /proc (Linux): unlike
  ru_maxrss, VmHWM starts afresh in a subprocess instead of carrying the parent's peak."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith(field + ":"):
          return int(line.split()[1]) / 1024
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_request(path):
  """(spec, arrays, x1, x2) from a request file written by ntk_lab (float64)."""
  jax.config.update("jax_enable_x64", True)
  data = dict(np.load(path))
  spec = json.loads(str(data.pop("spec")))
  x2 = jnp.asarray(data["x2"]) if "x2" in data else None
  return spec, data, jnp.asarray(data["x1"]), x2


def cmd_empirical(args):
  spec, data, x1, x2 = load_request(args.inp)
  _, apply_fn, _ = build(spec)
  params = to_nt_params(data, spec)
  out = {}
  for impl in (1, 2, 3):
    for name, axes in (("trace", (-1,)), ("full", ())):
      fn = nt.empirical_ntk_fn(apply_fn, trace_axes=axes, implementation=impl)
      out[f"ntk_{name}_{impl}"] = np.asarray(fn(x1, x2, params))
  np.savez(args.out, **out)


def cmd_analytic(args):
  spec, _, x1, x2 = load_request(args.inp)
  _, _, kernel_fn = build(spec)
  k = kernel_fn(x1, x2, ("nngp", "ntk"))
  np.savez(args.out, nngp=np.asarray(k.nngp), ntk=np.asarray(k.ntk))


def cmd_batch(args):
  jax.config.update("jax_enable_x64", True)
  data = dict(np.load(args.inp))
  out = {}
  for i in data["case_ids"] if "case_ids" in data else range(int(data["n_cases"])):
    p = f"c{i}_"
    spec = json.loads(str(data[p + "spec"]))
    modes = json.loads(str(data[p + "modes"]))
    x1, x2 = jnp.asarray(data[p + "x1"]), jnp.asarray(data[p + "x2"])
    if "network" in spec:  # a layer tree: analytic and empirical (traced) only
      init_fn, apply_fn, kernel_fn = build_network(spec["network"])
      k = kernel_fn(x1, x2, ("nngp", "ntk"))
      out[p + "nngp"], out[p + "ntk"] = np.asarray(k.nngp), np.asarray(k.ntk)
      leaves = [data[f"{p}leaf{j}"] for j in range(int(data[p + "n_leaves"]))]
      params = network_params(init_fn, leaves, x1.shape[1:])
      for impl in (1, 2, 3):
        fn = nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), implementation=impl)
        out[p + f"ntk_trace_{impl}"] = np.asarray(fn(x1, x2, params))
      continue
    init_fn, apply_fn, kernel_fn = build(spec)
    if "analytic" in modes:
      k = kernel_fn(x1, x2, ("nngp", "ntk"))
      out[p + "nngp"], out[p + "ntk"] = np.asarray(k.nngp), np.asarray(k.ntk)
    if "empirical" in modes:
      arrays = {k[len(p) :]: v for k, v in data.items() if k.startswith(p) and k[len(p)] in "Wb"}
      params = to_nt_params(arrays, spec)
      for impl in (1, 2, 3):
        fn = nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), implementation=impl)
        out[p + f"ntk_trace_{impl}"] = np.asarray(fn(x1, x2, params))
    if "nngp" in modes or "diagonal" in modes:
      arrays = {k[len(p) :]: v for k, v in data.items() if k.startswith(p) and k[len(p)] in "Wb"}
      params = to_nt_params(arrays, spec)
    if "nngp" in modes:
      out[p + "emp_nngp"] = np.asarray(nt.empirical_nngp_fn(apply_fn)(x1, x2, params))
      out[p + "emp_nngp_full"] = np.asarray(nt.empirical_nngp_fn(apply_fn, trace_axes=())(x1, x2, params))
    if "diagonal" in modes:
      for tag, other in (("self", None), ("rev", x1[::-1])):
        q = f"{p}diag_{tag}_"
        for name, axes, impls in (("ntk", (-1,), (1, 2, 3)), ("ntk_full", (), (1,))):
          for impl in impls:
            fn = nt.empirical_ntk_fn(apply_fn, trace_axes=axes, diagonal_axes=(0,), implementation=impl)
            out[q + f"{name}_{impl}"] = np.asarray(fn(x1, other, params))
        out[q + "emp_nngp"] = np.asarray(
          nt.empirical_nngp_fn(apply_fn, diagonal_axes=(0,))(x1, other, params)
        )
        k = kernel_fn(x1, other, ("nngp", "ntk"))
        out[q + "nngp"], out[q + "ntk"] = np.diagonal(np.asarray(k.nngp)), np.diagonal(np.asarray(k.ntk))
    if "mc" in modes:
      key = jax.random.PRNGKey(int(data[p + "mc_seed"]))
      fn = nt.monte_carlo_kernel_fn(
        init_fn, apply_fn, key, int(data[p + "mc_samples"]), trace_axes=(-1,), implementation=1
      )
      k = fn(x1, x2, ("nngp", "ntk"))
      out[p + "mc_nngp"], out[p + "mc_ntk"] = np.asarray(k.nngp), np.asarray(k.ntk)
    if "predict" in modes:
      y, reg = jnp.asarray(data[p + "y"]), float(data[p + "diag_reg"])
      predict_fn = nt.predict.gradient_descent_mse_ensemble(kernel_fn, x1, y, diag_reg=reg)
      for g in ("nngp", "ntk"):
        for tag, t in (("t", jnp.asarray(data[p + "times"])), ("inf", None)):
          mean, cov = predict_fn(t=t, x_test=x2, get=g, compute_cov=True)
          out[f"{p}ens_{g}_{tag}_mean"], out[f"{p}ens_{g}_{tag}_cov"] = np.asarray(mean), np.asarray(cov)
      k_dd, k_td = kernel_fn(x1, None, ("nngp", "ntk")), kernel_fn(x2, x1, ("nngp", "ntk"))
      gp = nt.predict.gp_inference(k_dd, y, diag_reg=reg)(
        get="nngp", k_test_train=k_td, k_test_test=kernel_fn(x2, None, "nngp")
      )
      out[p + "gp_mean"], out[p + "gp_cov"] = np.asarray(gp.mean), np.asarray(gp.covariance)
  np.savez(args.out, **out)


def cmd_bench(args):
  if args.dtype == "float64":
    jax.config.update("jax_enable_x64", True)
  dtype = jnp.float64 if args.dtype == "float64" else jnp.float32
  init_fn, apply_fn, _ = build(
    {
      "hidden": [args.width] * args.depth,
      "out_dim": 1,
      "activation": "relu",
      "W_std": 1.0,
      "b_std": 0.1,
      "parametrization": "ntk",
    }
  )
  x = jax.random.normal(jax.random.PRNGKey(1), (args.n, args.in_dim), dtype)
  _, params = init_fn(jax.random.PRNGKey(0), x.shape)
  params = jax.tree_util.tree_map(lambda a: a.astype(dtype), params)
  results = {}
  for impl in args.impl:
    fn = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), implementation=impl))
    try:
      fn(x, None, params).block_until_ready()
      times = []
      for _ in range(args.repeats):
        t0 = time.perf_counter()
        fn(x, None, params).block_until_ready()
        times.append(time.perf_counter() - t0)
      results[str(impl)] = {
        "median_s": statistics.median(times),
        "times_s": times,
        "peak_rss_mb": rss_mb("VmHWM"),
      }
    except Exception as e:  # noqa: BLE001 - an implementation that fails is reported, not fatal
      results[str(impl)] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
  print(json.dumps({"nt_version": nt.__version__, "jax_version": jax.__version__, "results": results}))


def cmd_bench_analytic(args):
  """Times NT's infinite-width kernel_fn (nngp and ntk) of a depth-`depth` ReLU MLP, float32."""
  init_fn, apply_fn, kernel_fn = build(
    {
      "hidden": [512] * args.depth,
      "out_dim": 1,
      "activation": "relu",
      "W_std": 1.0,
      "b_std": 0.1,
      "parametrization": "ntk",
    }
  )
  x = jax.random.normal(jax.random.PRNGKey(1), (args.n, args.in_dim), jnp.float32)
  x.block_until_ready()
  base = rss_mb()
  if args.impl == "batch":
    fn = nt.batch(kernel_fn, batch_size=args.batch_size, store_on_device=True)
  else:
    fn = jax.jit(kernel_fn, static_argnames="get")
  print(json.dumps(_timed(lambda: fn(x, None, ("nngp", "ntk")), args.repeats, base)))


def _timed(call, repeats, base):
  """The first call's time, the median of `repeats` more, and the peak resident memory; or the
  error, reported rather than fatal."""
  try:
    t0 = time.perf_counter()
    jax.block_until_ready(call())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
      t0 = time.perf_counter()
      jax.block_until_ready(call())
      times.append(time.perf_counter() - t0)
    return {
      "median_s": statistics.median(times),
      "times_s": times,
      "first_call_s": first,
      "peak_rss_mb": rss_mb("VmHWM"),
      "baseline_rss_mb": base,
    }
  except Exception as e:  # noqa: BLE001 - reported, not fatal
    return {"error": f"{type(e).__name__}: {str(e)[:200]}"}


def cmd_bench_conv(args):
  """Times NT on a layer tree (`build_network`), float32: its jitted kernel_fn (nngp and ntk,
  x2 = None; ``--mode analytic``) or empirical_ntk_fn (``--mode empirical --impl k``)."""
  tree, shape = json.loads(args.tree), tuple(json.loads(args.shape))
  init_fn, apply_fn, kernel_fn = build_network(tree)
  x = jax.random.normal(jax.random.PRNGKey(1), (args.n, *shape), jnp.float32)
  x.block_until_ready()
  base = rss_mb()
  if args.mode == "analytic":
    fn = jax.jit(lambda x: kernel_fn(x, None, ("nngp", "ntk")))
  else:
    _, params = init_fn(jax.random.PRNGKey(0), x.shape)
    ntk_fn = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), implementation=args.impl))
    fn = lambda x: ntk_fn(x, None, params)  # noqa: E731
  print(json.dumps(_timed(lambda: fn(x), args.repeats, base)))


def main(argv=None):
  parser = argparse.ArgumentParser(description="neural-tangents oracle for ntk_lab cross-checks")
  sub = parser.add_subparsers(dest="cmd", required=True)
  e = sub.add_parser("empirical")
  e.add_argument("inp")
  e.add_argument("out")
  a = sub.add_parser("analytic")
  a.add_argument("inp")
  a.add_argument("out")
  c = sub.add_parser("batch")
  c.add_argument("inp")
  c.add_argument("out")
  b = sub.add_parser("bench")
  b.add_argument("--n", type=int, required=True)
  b.add_argument("--width", type=int, required=True)
  b.add_argument("--depth", type=int, required=True)
  b.add_argument("--in-dim", type=int, default=100)
  b.add_argument("--impl", type=int, nargs="+", default=[1, 2, 3])
  b.add_argument("--repeats", type=int, default=5)
  b.add_argument("--dtype", default="float32")
  ba = sub.add_parser("bench-analytic")
  ba.add_argument("--n", type=int, required=True)
  ba.add_argument("--depth", type=int, default=3)
  ba.add_argument("--in-dim", type=int, default=100)
  ba.add_argument("--impl", choices=("kernel_fn", "batch"), required=True)
  ba.add_argument("--batch-size", type=int, default=1000)
  ba.add_argument("--repeats", type=int, default=3)
  bc = sub.add_parser("bench-conv")
  bc.add_argument("--tree", required=True)
  bc.add_argument("--shape", required=True)
  bc.add_argument("--n", type=int, required=True)
  bc.add_argument("--mode", choices=("analytic", "empirical"), required=True)
  bc.add_argument("--impl", type=int, default=1)
  bc.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args(argv)
  {
    "bench-conv": cmd_bench_conv,
    "bench-analytic": cmd_bench_analytic,
    "empirical": cmd_empirical,
    "analytic": cmd_analytic,
    "batch": cmd_batch,
    "bench": cmd_bench,
  }[args.cmd](args)


if __name__ == "__main__":
  sys.exit(main())

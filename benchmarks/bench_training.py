"""Benchmark of training: gradient flow (diffrax) to t = 10/λ_min and optax gradient descent.

    python -m benchmarks.bench_training --out results       # or: make bench-training
    python -m benchmarks.bench_training --quick             # widths 2^8 and 2^10 only

The two-layer ReLU net f(x) = (1/√m) Σ_r a_r σ(w_rᵀx) (readout a_r = ±1 fixed, w_r ~ N(0, I)
trained; Du et al. 2019) on N = 256 unit-norm inputs in d = 16 with Gaussian targets, float32, for widths
m = 2^8 … 2^14. λ_min and λ_max are those of the infinite-width NTK H^∞ on the inputs, so every
width integrates the same time span t = 10/λ_min (loss down by ≈ e^{−20} along the slowest
direction), whose stiffness λ_max·t sets the number of solver steps. Per width, in a fresh
subprocess (resumable cells), after one compiling warm-up: the median wall time of `gradient_flow`
(Tsit5, rtol 1e-4, atol 1e-6, 11 saved times), once with the step controller on the outputs'
error (the default) and once on the parameters' displacement, with accepted/rejected steps and
the cost per step, and the median steps/s of `train` with optax.sgd(1/λ_max) for 1000 full-batch
steps. A second table times compilation against reuse: the first call, a freshly built optimizer
of the same kind, a new injected learning rate, and gradient flow with a new η and tolerances. FLOP rates
count 6·N·m·(d + 1) per gradient (forward, backward) against the fp32 matmul rate measured in the
same run. Writes ``bench_training.json`` and ``bench_training.md``.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

from benchmarks._timing import CellCache, bench_parser, machine_meta, subcommand, write_report
from benchmarks.bench_empirical_ntk import ROOT, matmul_rate

N, D, GD_STEPS = 256, 16, 1000
RTOL, ATOL = 1e-4, 1e-6
WIDTHS = tuple(2**k for k in range(8, 15))


def problem(width):
  import jax
  import jax.numpy as jnp

  import ntk_lab as nl

  kx, ky, kp = jax.random.split(jax.random.PRNGKey(0), 3)
  x = jax.random.normal(kx, (N, D))
  x = x / jnp.linalg.norm(x, axis=1, keepdims=True)
  y = jax.random.normal(ky, (N,))
  net = nl.MLP(
    (width,),
    activation="relu",
    b_std=None,
    W_std=(D**0.5, 1.0),
    trainable="hidden",
    readout_init="rademacher",
  )
  return net, net.init(kp, D), x, y


def run_cell(args):
  """In a fresh process: time gradient flow and GD for one width; print one JSON line."""
  import jax
  import numpy as np
  import optax

  import ntk_lab as nl
  from benchmarks._timing import median_time

  net, p0, x, y = problem(args.width)
  lam = np.linalg.eigvalsh(np.asarray(net.kernel(x, get="ntk").ntk, np.float64))
  t_end = 10.0 / lam[0]
  times = np.linspace(0.0, t_end, 11)
  flow = lambda **kw: nl.gradient_flow(net, p0, x, y, times=times, rtol=RTOL, atol=ATOL, **kw)  # noqa: E731
  t0 = time.perf_counter()
  run = flow()
  first = time.perf_counter() - t0
  flow_s, flow_times = median_time(lambda: flow().train_outputs, repeats=args.repeats, warmup=0)
  by_params = flow(error_control="params")
  params_s, _ = median_time(
    lambda: flow(error_control="params").train_outputs, repeats=args.repeats, warmup=0
  )
  # The two controls agree to about their tolerances; the difference is reported.
  control_gap = float(np.max(np.abs(np.asarray(run.train_outputs) - np.asarray(by_params.train_outputs))))
  compile_rows = compile_vs_reuse(net, p0, x, y, times, lam) if args.width == WIDTHS[0] else None
  loss = 0.5 * np.sum((np.asarray(run.train_outputs)[:, :, 0] - np.asarray(y)) ** 2, axis=1)
  gd = lambda: nl.train(net, p0, x, y, optimizer=opt, steps=GD_STEPS, every=GD_STEPS)  # noqa: E731
  opt = optax.sgd(1.0 / lam[-1])
  gd_s, gd_times = median_time(lambda: gd().train_outputs, repeats=args.repeats, warmup=1)
  flops_per_grad = 6 * N * args.width * (D + 1)
  evals = run.stats["num_steps"] * 6  # Tsit5: 6 stages per step, first-same-as-last
  print(
    json.dumps(
      {
        "width": args.width,
        "lambda_min": float(lam[0]),
        "lambda_max": float(lam[-1]),
        "t_end": t_end,
        "flow_s": flow_s,
        "flow_times_s": flow_times,
        "flow_first_call_s": first,
        **run.stats,
        "vector_field_evals": evals,
        "flow_gflops_per_s": evals * flops_per_grad / flow_s / 1e9,
        "flow_s_per_step": flow_s / run.stats["num_steps"],
        "params_control_s": params_s,
        "params_control_stats": by_params.stats,
        "params_control_s_per_step": params_s / by_params.stats["num_steps"],
        "controls_max_abs_diff": control_gap,
        "compile_vs_reuse": compile_rows,
        "loss_ratio": float(loss[-1] / loss[0]),
        "gd_s": gd_s,
        "gd_times_s": gd_times,
        "gd_steps_per_s": GD_STEPS / gd_s,
        "gd_gflops_per_s": GD_STEPS * flops_per_grad / gd_s / 1e9,
        "device": jax.devices()[0].device_kind,
      }
    )
  )


def compile_vs_reuse(net, p0, x, y, times, lam):
  """Wall time of calls that must compile against calls that must reuse a compilation."""
  import jax
  import optax

  import ntk_lab as nl

  def wall(f):
    t0 = time.perf_counter()
    jax.block_until_ready(f().train_outputs)
    return time.perf_counter() - t0

  lr = float(1.0 / lam[-1])
  gd = lambda opt: nl.train(net, p0, x, y, optimizer=opt, steps=GD_STEPS, every=GD_STEPS)  # noqa: E731
  inject = lambda v: optax.inject_hyperparams(optax.sgd)(learning_rate=v)  # noqa: E731
  # observe=["loss"] is a structure the cell has not compiled yet; a short span keeps the solve cheap
  flow = lambda **kw: nl.gradient_flow(net, p0, x, y, times=times / 100, observe=["loss"], **kw)  # noqa: E731
  return [
    ["train, first call with optax.sgd(η)", wall(lambda: gd(optax.sgd(lr)))],
    ["train, a freshly built optax.sgd(η)", wall(lambda: gd(optax.sgd(lr)))],
    ["train, optax.sgd(η/2): a new constant", wall(lambda: gd(optax.sgd(lr / 2)))],
    ["train, first call with inject_hyperparams(sgd)(η)", wall(lambda: gd(inject(lr)))],
    ["train, inject_hyperparams(sgd)(η/2)", wall(lambda: gd(inject(lr / 2)))],
    ["gradient_flow, first call of a structure (t/100)", wall(lambda: flow())],
    [
      "gradient_flow, new learning_rate, rtol, atol",
      wall(lambda: flow(learning_rate=0.5, rtol=3e-4, atol=3e-6)),
    ],
  ]


def main(argv=None):
  parser, cell = bench_parser(
    __doc__,
    "bench_training",
    repeats=3,
    timeout=3600,
    cells_dir="cells_training",
    quick_help="widths 2^8 and 2^10 only",
    cell_help="(internal) time one width in this process",
  )
  cell.add_argument("--width", type=int, required=True)
  args = parser.parse_args(argv)
  if subcommand(args, "bench_training", run_cell, to_markdown):
    return None

  rate = matmul_rate(args.repeats)
  print(f"fp32 matmul rate: {rate / 1e9:.1f} GFLOP/s", flush=True)
  out = pathlib.Path(args.out)
  cached = CellCache(out / "cells_training", resume=args.resume, timeout=args.timeout, cwd=ROOT)
  cells = []
  for width in (256, 1024) if args.quick else WIDTHS:
    res = cached(
      f"{width}",
      [
        sys.executable,
        "-m",
        "benchmarks.bench_training",
        "cell",
        "--width",
        str(width),
        "--repeats",
        str(args.repeats),
      ],
    )
    res.setdefault("width", width)
    cells.append(res)
    print(
      json.dumps({k: res.get(k) for k in ("width", "flow_s", "num_steps", "gd_steps_per_s", "error")}),
      flush=True,
    )
  meta = machine_meta(args.repeats, matmul_gflops_per_s=rate / 1e9)
  write_report(out, "bench_training", to_markdown, meta, cells)


def to_markdown(meta, cells):
  from benchmarks._timing import markdown_table

  rate = meta["matmul_gflops_per_s"]
  rows = []
  for c in cells:
    if "flow_s" not in c:
      rows.append([f"{c['width']:,}", "failed: " + c.get("error", "?")[:60]] + ["–"] * 7)
      continue
    p = c.get("params_control_stats", {})
    rows.append(
      [
        f"{c['width']:,}",
        f"{c['flow_s']:.2f} s",
        f"{c['num_accepted_steps']:,} / {c['num_rejected_steps']}",
        f"{1e3 * c['flow_s_per_step']:.2f} ms",
        f"{c['params_control_s']:.2f} s, {p.get('num_accepted_steps', 0):,} / {p.get('num_rejected_steps', 0)}, "
        f"{1e3 * c['params_control_s_per_step']:.2f} ms",
        f"{c['controls_max_abs_diff']:.1e}",
        f"{c['loss_ratio']:.1e}",
        f"{c['flow_gflops_per_s']:.1f} GFLOP/s ({100 * c['flow_gflops_per_s'] / rate:.0f} %)",
        f"{c['gd_steps_per_s']:,.0f}",
        f"{c['gd_gflops_per_s']:.1f} GFLOP/s ({100 * c['gd_gflops_per_s'] / rate:.0f} %)",
      ]
    )
  c0 = next((c for c in cells if "t_end" in c), {})
  header = [
    "width m",
    "gradient flow to t = 10/λ_min (outputs' error)",
    "accepted / rejected steps",
    "cost per step",
    "params' error control: time, steps, per step",
    "max |Δu| between controls",
    "L(t)/L(0)",
    "flow FLOP rate (of matmul)",
    "optax GD steps/s",
    "GD FLOP rate (of matmul)",
  ]
  text = (
    f"Two-layer ReLU net (readout ±1 fixed, first layer trained; Du et al. 2019), N = {N} unit-norm "
    f"inputs in d = {D}, float32. H^∞ has λ_min = {c0.get('lambda_min', float('nan')):.3g} and "
    f"λ_max = {c0.get('lambda_max', float('nan')):.3g}, so t = {c0.get('t_end', float('nan')):.0f}. "
    f"Gradient flow: Tsit5, rtol {RTOL:g}, atol {ATOL:g}, step control on the outputs' local error "
    f"(default) and on the displacement's, median of {meta['repeats']} runs after a compiling "
    f"warm-up; GD: optax.sgd(1/λ_max), {GD_STEPS} full-batch steps, median of {meta['repeats']}. "
    f"FLOP rates count 6·N·m·(d+1) per gradient (the outputs' control adds a Jacobian-vector "
    f"product per stage, not counted) against a measured fp32 matmul rate of "
    f"{rate:.0f} GFLOP/s. {meta['device']} ({meta['cpus']} cores), jax {meta['jax']}, "
    f"{meta['date']}.\n\n" + markdown_table(header, rows) + "\n"
  )
  compiled = next((c["compile_vs_reuse"] for c in cells if c.get("compile_vs_reuse")), None)
  if compiled:
    text += (
      f"\nCompilation against reuse at width {cells[0]['width']:,} (one call each, wall time): "
      "a call of a new structure compiles; a call of the same structure reuses the program.\n\n"
      + markdown_table(["call", "wall time"], [[name, f"{s:.3f} s"] for name, s in compiled])
      + "\n"
    )
  return text


if __name__ == "__main__":
  main()

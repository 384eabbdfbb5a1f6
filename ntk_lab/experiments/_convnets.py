"""What the convolutional experiments share (`cntk_small_data`, `myrtle`): their networks, the
digits as images split into a test set and seeded nested training subsets, the kernels computed
once per run on the union of every point a run needs, and kernel regression's test accuracy.

The networks (8×8×1 digit images, 10 outputs; every Conv 3×3 ``SAME``, ReLU, the config's σ_w
and σ_b on every weighted layer):

* ``"gap"``: ``depth`` blocks Conv + ReLU, `GlobalAvgPool`, Dense — the CNN whose NTK is the CNTK
  with global average pooling (Arora et al. 2019, "On Exact Computation with an Infinitely Wide
  Neural Net"; Arora et al. 2020, "Harnessing the Power of Infinitely Wide Deep Nets on Small-data
  Tasks").
* ``"myrtle"``: the Myrtle networks of Shankar et al. 2020 ("Neural Kernels Without Tangents") on
  8×8 inputs. On 32×32 images Myrtle-d has three stages of Conv + ReLU blocks at 32×32, 16×16 and
  8×8 with ``AvgPool((2, 2), (2, 2))`` between them (2, 1, 1 blocks for d = 5; 2, 2, 2 for 7;
  3, 3, 3 for 10), then three more such pools (8×8 → 1×1), `Flatten` and Dense. Here the stages
  run at 8×8, 4×4 and 2×2 and one pool (2×2 → 1×1) ends them: in both, the readout sees the mean
  of the last stage over its positions, and d counts the Conv layers and the readout as there.
"""

from __future__ import annotations

import numpy as np

# The blocks per stage of Myrtle-d (Shankar et al. 2020).
MYRTLE_BLOCKS = {5: (2, 1, 1), 7: (2, 2, 2), 10: (3, 3, 3)}
# Tile side of the analytic kernels. Convolutional kernels with pooling hold the covariances of
# every pair of positions (8⁴ per pair of 8×8 images), and small tiles keep a tile's temporaries in
# cache: on two CPU cores the depth-5 CNTK of 256 images took 19 s in tiles of 16 against 27 s at
# the library's default (the largest tile its memory budget allows, 90 here); one tile of
# 128 × 128 pairs took 5 times as long per pair as tiles of 16.
TILE = 16
N_DIGITS = 1797  # images in scikit-learn's digits
_SUBSET_STREAM = 31_337  # the subsets' random stream, apart from the split's (key 0)


def network(kind: str, depth: int, width: int, W_std: float, b_std):
  """The ``kind`` (``"gap"`` or ``"myrtle"``) network of the module docstring, with `width`
  channels."""
  from ntk_lab.layers import AvgPool, Conv, Dense, Flatten, GlobalAvgPool, Relu, serial

  def blocks(k):
    return [Conv(width, (3, 3), padding="SAME", W_std=W_std, b_std=b_std), Relu()] * k

  if kind == "gap":
    return serial(*blocks(depth), GlobalAvgPool(), Dense(10, W_std=W_std, b_std=b_std))
  first, second, third = MYRTLE_BLOCKS[depth]
  pool = AvgPool((2, 2), (2, 2))
  return serial(
    *blocks(first), pool, *blocks(second), pool, *blocks(third), pool, Flatten(), Dense(10, W_std, b_std)
  )


def split(n_test: int):
  """(x_pool, labels_pool, x_test, labels_test): the digits as 8×8×1 images, `n_test` of them held
  out for testing (a fixed permutation, key 0) and the rest the pool the training subsets are
  drawn from; centred by the pool's mean pixel and each image scaled to norm √64 = 8, so that a
  pixel has unit mean square and NTK-parametrised pre-activations unit variance (as `real_data`)."""
  from ntk_lab import datasets

  d = datasets.digits(n_test=n_test, normalize="unit", labels="int", image=True, key=0)
  return np.asarray(d.x_train) * 8.0, np.asarray(d.y_train), np.asarray(d.x_test) * 8.0, np.asarray(d.y_test)


def subset_order(labels, seed: int, balanced: bool):
  """The seed's order of the pool: its training subset of size n is the first n of it, so the
  subsets of one seed are nested. ``balanced``: round robin over the classes (in a random order
  of the classes), so a subset of n holds ⌊n/10⌋ or ⌈n/10⌉ images of each class while they last;
  else a uniform random permutation."""
  rng = np.random.default_rng([_SUBSET_STREAM, seed])
  order = rng.permutation(len(labels))
  if not balanced:
    return order
  rank = np.empty(len(labels), dtype=np.int64)
  for c in np.unique(labels):
    members = order[labels[order] == c]
    rank[members] = np.arange(len(members))
  position = np.empty(10, dtype=np.int64)
  position[rng.permutation(10)] = np.arange(10)
  return np.lexsort((position[labels], rank))


def largest_n(cfg) -> int:
  return max(cfg.sweep.n or (cfg.data.n,))


def check_sizes(cfg, balanced: bool):
  """ConfigError unless the pool holds every training size of the run (balanced: enough of each
  class for the largest)."""
  from ntk_lab.experiments.registry import ConfigError

  n, n_test = largest_n(cfg), cfg.data.n_test
  if n_test < 1 or n + n_test > N_DIGITS:
    raise ConfigError(
      f"data.n + data.n_test: the digits have {N_DIGITS} images, asked for a training set of up to "
      f"{n} and {n_test} test images (data.n_test ≥ 1); lower them."
    )
  if balanced:
    _, labels, _, _ = split(n_test)
    fewest = int(np.bincount(labels, minlength=10).min())
    if -(-n // 10) > fewest:
      raise ConfigError(
        f"data.n: a class-balanced subset of {n} needs {-(-n // 10)} images of each class; the pool "
        f"left by data.n_test = {n_test} has {fewest} of its rarest class. Lower data.n or "
        "data.n_test, or set options.balanced: false."
      )


def check_options(options):
  """ConfigError unless ``options.ridge`` is a number ≥ 0 and ``options.balanced`` a boolean."""
  from ntk_lab.experiments.registry import ConfigError

  ridge = options["ridge"]
  if isinstance(ridge, bool) or not isinstance(ridge, (int, float)) or not ridge >= 0:
    raise ConfigError(
      f"options.ridge: the ridge added to K(train, train), relative to its mean diagonal, must be a "
      f"number ≥ 0 (e.g. 1e-4), got {ridge!r}."
    )
  if not isinstance(options["balanced"], bool):
    raise ConfigError(f"options.balanced: must be true or false, got {options['balanced']!r}.")


def union(cfg, balanced: bool):
  """(pool indices of every training image the run's cells use, sorted; {seed: order}): the union
  of each seed's largest subset, so one kernel serves every cell."""
  _, labels, _, _ = split(cfg.data.n_test)
  n = largest_n(cfg)
  orders = {s: subset_order(labels, s, balanced) for s in cfg.sweep.seeds}
  used = np.unique(np.concatenate([o[:n] for o in orders.values()]))
  return used, orders


def memory(cfg) -> int:
  """Bytes of the run's two kernels on the union (at most every seed's largest subset, and the
  test images) and of one tile's temporaries (`analytic_kernel`'s estimate of 16 per entry)."""
  u = min(N_DIGITS - cfg.data.n_test, len(cfg.sweep.seeds) * largest_n(cfg)) + cfg.data.n_test
  return (2 * u * u + TILE * TILE * 16 * 8**4) * (4 if cfg.dtype == "float32" else 8)


_KERNELS: dict = {}


def subset_rows(kern, seed: int, n: int):
  """The rows of the run's kernels that hold the seed's training subset of size n."""
  return kern["index"][kern["orders"][seed][:n]]


def run_kernels(cfg, net, balanced: bool, get=("nngp", "ntk")):
  """The run's kernels, computed once per process and run (cached on the network, the split, the
  seeds, the points and the dtype), as a dict: ``x`` and ``labels`` of the union's training
  images then of the test images, ``test`` the slice of the test images, ``index[i]`` the row of
  pool image i (−1 when unused), ``orders`` each seed's `subset_order`, and ``k`` the `Kernel` on
  all of them."""
  import jax.numpy as jnp

  import ntk_lab as nl

  used, orders = union(cfg, balanced)
  key = (net, cfg.data.n_test, tuple(orders), balanced, used.tobytes(), str(jnp.zeros(()).dtype), tuple(get))
  if key not in _KERNELS:
    x_pool, labels_pool, x_test, labels_test = split(cfg.data.n_test)
    x = np.concatenate([x_pool[used], x_test])
    k = nl.analytic_kernel(net, jnp.asarray(x), get=get, tile_size=TILE)
    index = np.full(len(labels_pool), -1, dtype=np.int64)
    index[used] = np.arange(len(used))
    _KERNELS.clear()  # one network's at a time: the grid runs all cells of a depth before the next
    _KERNELS[key] = {
      "x": x,
      "labels": np.concatenate([labels_pool[used], labels_test]),
      "test": slice(len(used), len(x)),
      "index": index,
      "orders": orders,
      "k": k,
    }
  return _KERNELS[key]


def config_kernels(cfg, kind: str, balanced: bool):
  """`run_kernels` of the config's ``kind`` network (``model.depth``, ``model.W_std``,
  ``model.b_std``; the width of a kernel is infinite, so any serves)."""
  m = cfg.model
  return run_kernels(cfg, network(kind, m.depth, 1, m.W_std, m.b_std), balanced)


def targets(labels):
  """One-hot targets minus 0.1 (zero mean over the ten outputs of each point)."""
  return np.eye(10)[labels] - 0.1


def accuracy(outputs, labels) -> float:
  return float(np.mean(np.argmax(np.asarray(outputs), axis=-1) == np.asarray(labels)))


def kernel_accuracies(kern, rows, ridge: float, fields=("nngp", "ntk")) -> dict:
  """Test accuracy of kernel regression on the training images at `rows` of the run's kernels,
  per field: the NTK's with `mse_ensemble` at t = ∞ (the infinitely wide net trained to
  convergence), the NNGP's with `gp_inference` (its posterior mean), each with the ridge
  ``ridge``·mean(diag K) added to K(train, train)."""
  import jax.numpy as jnp

  import ntk_lab as nl

  test = kern["test"]
  y = jnp.asarray(targets(kern["labels"][rows]), dtype=kern["k"].ntk.dtype)
  labels_test = kern["labels"][test]
  out = {}
  for field in fields:
    K = getattr(kern["k"], field)
    k_train, k_test = K[np.ix_(rows, rows)], K[test][:, rows]
    if field == "ntk":
      pred = nl.mse_ensemble(
        nl.Kernel(None, k_train), y, jnp.inf, k_test_train=nl.Kernel(None, k_test), diag_reg=ridge
      ).mean[0]
    else:
      pred = nl.gp_inference(k_train, y, k_test_train=k_test, diag_reg=ridge).mean
    out[field] = accuracy(pred, labels_test)
  return out


def mean_std(values) -> tuple[float, float]:
  """(mean, sample standard deviation) of `values`; the deviation of a single value is 0."""
  v = np.asarray(values, dtype=float)
  return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def by_n(results, key) -> dict:
  """{n: (mean, sd) of `key` over the cells of that n}."""
  from ntk_lab.experiments import _common

  return {n: mean_std(v) for n, v in _common.by_width(results, key, "n").items()}


def setting(cfg, options, points: int) -> str:
  """The data and kernel-regression part of a report's "This run" sentence."""
  return (
    f"scikit-learn digits as 8×8×1 images, {cfg.data.n_test} test images, "
    f"{'class-balanced ' if options['balanced'] else ''}random training subsets (one per seed, "
    f"nested over n); kernel regression with ridge {options['ridge']:g}·mean(diag K) on the "
    f"kernels of {points} images"
  )


def size_axis(ax, ns):
  """A log axis of the training sizes `ns`, each labelled."""
  ax.set_xscale("log")
  ax.set_xticks(ns, [str(n) for n in ns])
  ax.set_xlabel("training images n")

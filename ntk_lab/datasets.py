"""Data sets for kernel and wide-network experiments: scikit-learn's digits (shipped with
scikit-learn, no download) and synthetic inputs and targets.

* `digits`: the 1,797 8×8 digit images, a class subset, a seeded train/test split, input
  normalisation, one-hot / ±1 / integer labels, and label corruption (a fraction of the training
  labels replaced by random ones, the true-vs-random-labels study of Arora et al. 2019 "Fine-grained
  analysis" and Zhang et al. 2017).
* `circle`: points on the unit circle, x = (cos γ, sin γ) (the inputs of Jacot et al. 2018, Fig. 1).
* `sphere`, `gaussian`: inputs uniform on the unit sphere S^{d−1}, or standard Gaussian.
* `teacher_student`: targets from a random wide MLP teacher on sphere or Gaussian inputs.

Every function returns arrays in JAX's default float dtype (float64 when x64 is on). Every numeric
argument follows one policy (`ntk_lab._checks`): Python and NumPy numbers (and 0-d arrays) are
accepted; a bool, a string, NaN, ±inf, and a float where a count is meant (``n=3.0``) are refused
with a `ValueError` naming the argument.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntk_lab import _checks

__all__ = ["Dataset", "circle", "digits", "gaussian", "sphere", "teacher_student"]

NORMALIZATIONS = ("unit", "standardize", None)
LABELS = ("onehot", "pm1", "int")


class Dataset(NamedTuple):
  """A train/test split: x (N, d), y (N, O) (or (N,) integer labels), x_test, y_test."""

  x_train: jax.Array
  y_train: jax.Array
  x_test: jax.Array
  y_test: jax.Array


def _rng(key, name="key"):
  """A numpy Generator from an int seed or a JAX PRNG key (so a split is the same on every backend)."""
  if isinstance(key, (bool, np.bool_)):
    raise ValueError(f"{name}: expected an integer seed or a JAX PRNG key, got the bool {key!r}.")
  if isinstance(key, (int, np.integer)):
    return np.random.default_rng(_checks.integer(key, f"{name} (an integer seed)", low=0))
  try:
    seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
  except (TypeError, ValueError) as e:
    raise TypeError(
      f"{name}: expected an integer seed or a JAX PRNG key such as "
      f"jax.random.PRNGKey(0), got {type(key).__name__}."
    ) from e
  return np.random.default_rng(seed)


def _fraction(value, name):
  value = _checks.number(value, name, low=0.0, strict=False, static=True, unit=" (a fraction in [0, 1])")
  if value > 1:
    raise ValueError(f"{name}: must be a fraction in [0, 1], got {value!r}.")
  return value


def digits(
  *,
  classes=None,
  n_train: int | None = None,
  n_test: int | None = None,
  normalize: str | None = "unit",
  labels: str = "onehot",
  corrupt: float = 0.0,
  key=0,
) -> Dataset:
  """scikit-learn's handwritten digits (8×8 images, 1,797 of them), split and prepared.

  The images of the chosen classes are shuffled with `key` and split into the first `n_train`
  (training) and the next `n_test` (test). Pixels are divided by 16 (to [0, 1]), then:

  * ``normalize="unit"``: centred by the training images' mean, then each image scaled to
    Euclidean norm 1 (inputs on the unit sphere, as the NTK analyses of Du et al. 2019 and Arora
    et al. 2019 assume);
  * ``"standardize"``: each pixel to zero mean and unit variance over the training images
    (pixels constant there stay 0);
  * ``None``: the [0, 1] pixels as they are.

  ``corrupt = p`` replaces the labels of round(p · n_train) randomly chosen training images by
  classes drawn uniformly from `classes` (so about p/C of them land on the true class by chance);
  the inputs and the test labels are untouched.

  Args:
    classes: the digits to keep, e.g. ``(0, 1)``; default all ten, in order.
    n_train: training images; default all the kept images not used for testing.
    n_test: test images; default a quarter of the kept images (rounded down) or, when `n_train`
      is given, the rest.
    normalize: ``"unit"``, ``"standardize"`` or None.
    labels: ``"onehot"`` (N, C) floats, ``"pm1"`` (N, 1) floats −1 for ``classes[0]`` and +1 for
      ``classes[1]`` (needs exactly two classes), or ``"int"`` (N,) the position in `classes`.
    corrupt: the fraction of training labels replaced by random ones, in [0, 1].
    key: an integer seed or a JAX PRNG key for the split and the corruption.

  Returns:
    `Dataset(x_train (n_train, 64), y_train, x_test (n_test, 64), y_test)`.

  Example:
    >>> from ntk_lab import datasets
    >>> d = datasets.digits(classes=(0, 1), n_train=100, n_test=50, labels="pm1", key=0)
    >>> d.x_train.shape, d.y_train.shape, sorted(set(d.y_test[:, 0].tolist()))
    ((100, 64), (100, 1), [-1.0, 1.0])
    >>> round(float((d.x_train[0] ** 2).sum()), 6)  # normalize="unit": each image has norm 1
    1.0
  """
  try:
    from sklearn.datasets import load_digits
  except ImportError as e:
    raise ImportError("digits needs scikit-learn: pip install 'ntk_lab[experiments]'") from e
  _checks.choice(normalize, "normalize", NORMALIZATIONS)
  _checks.choice(labels, "labels", LABELS)
  corrupt = _fraction(corrupt, "corrupt")
  data = load_digits()
  if classes is None:
    classes = tuple(range(10))
  else:
    classes = tuple(classes) if not isinstance(classes, (int, np.integer)) else (classes,)
    classes = tuple(_checks.integer(c, f"classes[{i}]", low=0) for i, c in enumerate(classes))
    if any(c > 9 for c in classes) or len(set(classes)) != len(classes) or len(classes) < 2:
      raise ValueError(f"classes: expected two or more distinct digits 0-9, e.g. (0, 1), got {classes!r}.")
  if labels == "pm1" and len(classes) != 2:
    raise ValueError(
      f"labels: 'pm1' needs exactly two classes (−1 for the first, +1 for the "
      f"second), got {len(classes)}; pass classes=(a, b) or labels='onehot'."
    )
  if n_train is not None:
    n_train = _checks.integer(n_train, "n_train", low=1)
  if n_test is not None:
    n_test = _checks.integer(n_test, "n_test", low=0)
  keep = np.flatnonzero(np.isin(data.target, classes))
  total = len(keep)
  if n_test is None:
    n_test = max(total - n_train, 0) if n_train is not None else total // 4
  if n_train is None:
    n_train = total - n_test
  n_train = _checks.integer(n_train, "n_train", low=1)
  if n_train + n_test > total:
    raise ValueError(
      f"n_train + n_test: the chosen classes have {total} images, asked for {n_train} + {n_test}; lower them."
    )
  rng = _rng(key)
  order = keep[rng.permutation(total)][: n_train + n_test]
  x = data.data[order].astype(float) / 16.0
  position = {c: i for i, c in enumerate(classes)}
  idx = np.array([position[int(c)] for c in data.target[order]], dtype=np.int64)
  xtr = x[:n_train]
  if normalize == "unit":
    x = x - xtr.mean(axis=0)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms > 0, norms, 1.0)
  elif normalize == "standardize":
    mean, std = xtr.mean(axis=0), xtr.std(axis=0)
    x = (x - mean) / np.where(std > 0, std, 1.0)
  train_idx = idx[:n_train].copy()
  n_bad = int(round(corrupt * n_train))
  if n_bad:
    # A separate stream from the split's, so the same key gives the same split at any corruption.
    crng = np.random.default_rng(rng.integers(2**31 - 1))
    which = crng.choice(n_train, n_bad, replace=False)
    train_idx[which] = crng.integers(len(classes), size=n_bad)
  return Dataset(
    jnp.asarray(x[:n_train]),
    _labels(train_idx, labels, len(classes)),
    jnp.asarray(x[n_train:]),
    _labels(idx[n_train:], labels, len(classes)),
  )


def _labels(idx, kind, n_classes):
  if kind == "int":
    return jnp.asarray(idx, dtype=jnp.int32)
  if kind == "pm1":
    return jnp.asarray(2.0 * idx[:, None] - 1.0)
  return jnp.asarray(np.eye(n_classes)[idx])


def circle(n: int, *, key=None) -> jax.Array:
  """Points on the unit circle, x = (cos γ, sin γ), (n, 2).

  Args:
    n: the number of points.
    key: None for the evenly spaced angles γ_i = 2πi/n, or a JAX PRNG key for uniform random
      angles.

  Example:
    >>> from ntk_lab import datasets
    >>> [round(v, 6) + 0.0 for v in datasets.circle(4)[1].tolist()]
    [0.0, 1.0]
  """
  n = _checks.integer(n, "n", low=1)
  if key is None:
    gamma = 2 * jnp.pi * jnp.arange(n) / n
  else:
    gamma = jax.random.uniform(key, (n,), maxval=2 * jnp.pi)
  return jnp.stack([jnp.cos(gamma), jnp.sin(gamma)], axis=1)


def gaussian(n: int, dim: int, *, key) -> jax.Array:
  """Standard Gaussian inputs, (n, dim), entries N(0, 1).

  Example:
    >>> import jax; from ntk_lab import datasets
    >>> datasets.gaussian(5, 3, key=jax.random.PRNGKey(0)).shape
    (5, 3)
  """
  return jax.random.normal(key, (_checks.integer(n, "n", low=1), _checks.integer(dim, "dim", low=1)))


def sphere(n: int, dim: int, *, key) -> jax.Array:
  """Inputs uniform on the unit sphere S^{dim−1}, (n, dim): Gaussian draws scaled to norm 1.

  Example:
    >>> import jax, jax.numpy as jnp; from ntk_lab import datasets
    >>> x = datasets.sphere(5, 3, key=jax.random.PRNGKey(0))
    >>> bool(jnp.allclose(jnp.linalg.norm(x, axis=1), 1.0))
    True
  """
  x = gaussian(n, dim, key=key)
  return x / jnp.linalg.norm(x, axis=1, keepdims=True)


def teacher_student(
  n_train: int,
  n_test: int,
  dim: int,
  *,
  key,
  inputs: str = "sphere",
  hidden=(512,),
  activation: str = "tanh",
  b_std: float | None = 0.1,
  out_dim: int = 1,
  noise: float = 0.0,
) -> Dataset:
  """A regression task whose targets are a random wide MLP's outputs, y = f_teacher(x) + noise.

  The teacher is an `ntk_lab.MLP` in NTK parametrization with the given hidden widths at a random
  initialization (outputs of order 1 for any width); the student is whatever you train on it.
  Noise (N(0, noise²) per entry) is added to the training targets only.

  Args:
    n_train, n_test: numbers of training and test points.
    dim: input dimension.
    key: a JAX PRNG key (inputs, teacher and noise are drawn from its splits).
    inputs: ``"sphere"`` or ``"gaussian"``.
    hidden, activation, b_std, out_dim: the teacher's architecture (see `ntk_lab.MLP`).
    noise: the standard deviation of the label noise, ≥ 0.

  Returns:
    `Dataset(x_train (n_train, dim), y_train (n_train, out_dim), x_test, y_test)`.

  Example:
    >>> import jax; from ntk_lab import datasets
    >>> d = datasets.teacher_student(20, 5, 3, key=jax.random.PRNGKey(0), hidden=(64,))
    >>> d.x_train.shape, d.y_train.shape, d.x_test.shape
    ((20, 3), (20, 1), (5, 3))
  """
  from ntk_lab.mlp import MLP

  _checks.choice(inputs, "inputs", ("sphere", "gaussian"))
  noise = _checks.number(noise, "noise", low=0.0, strict=False, static=True)
  n_train = _checks.integer(n_train, "n_train", low=1)
  n_test = _checks.integer(n_test, "n_test", low=0)
  dim = _checks.integer(dim, "dim", low=1)
  out_dim = _checks.integer(out_dim, "out_dim", low=1)
  hidden = (hidden,) if isinstance(hidden, (int, np.integer)) else tuple(hidden)
  hidden = tuple(_checks.integer(h, f"hidden[{i}]", low=1) for i, h in enumerate(hidden))
  if b_std is not None:
    b_std = _checks.number(b_std, "b_std", low=0.0, strict=False, static=True)
  kx, kt, kn = jax.random.split(key, 3)
  x = (sphere if inputs == "sphere" else gaussian)(n_train + n_test, dim, key=kx)
  net = MLP(hidden, out_dim=out_dim, activation=activation, b_std=b_std)
  y = net.apply(net.init(kt, dim), x)
  y_train = y[:n_train] + noise * jax.random.normal(kn, (n_train, y.shape[1]))
  return Dataset(x[:n_train], y_train, x[n_train:], y[n_train:])

"""ntk_lab.datasets against scikit-learn's own arrays and the definitions (norms, moments, label
counts), and the synthetic sets against their formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntk_lab as nl
from ntk_lab import datasets

sklearn = pytest.importorskip("sklearn.datasets")


def _match_rows(x, raw):
  """The index in `raw` of each row of x (exact match of the [0, 1] pixels)."""
  lookup = {r.tobytes(): i for i, r in enumerate(raw)}
  return np.array([lookup[r.tobytes()] for r in x])


@pytest.mark.parametrize("classes", [None, (3, 8), (1, 4, 7)])
def test_digits_are_scikit_learns_images_with_their_labels(classes):
  raw = sklearn.load_digits()
  d = datasets.digits(classes=classes, n_train=60, n_test=40, normalize=None, labels="int", key=3)
  pixels = raw.data / 16.0
  rows = _match_rows(np.asarray(d.x_train), pixels)
  test_rows = _match_rows(np.asarray(d.x_test), pixels)
  keep = classes or tuple(range(10))
  assert len(set(rows) | set(test_rows)) == 100  # disjoint, no repeats
  for r, lab in ((rows, d.y_train), (test_rows, d.y_test)):
    assert [keep[i] for i in np.asarray(lab)] == raw.target[r].tolist()
  onehot = datasets.digits(classes=classes, n_train=60, n_test=40, normalize=None, key=3)
  np.testing.assert_array_equal(np.argmax(onehot.y_train, axis=1), d.y_train)
  np.testing.assert_array_equal(onehot.x_train, d.x_train)


def test_default_split_sizes_and_binary_labels():
  d = datasets.digits(classes=(0, 1))
  total = int(np.isin(sklearn.load_digits().target, (0, 1)).sum())
  assert d.x_test.shape[0] == total // 4 and d.x_train.shape[0] == total - total // 4
  b = datasets.digits(classes=(0, 1), n_train=50, labels="pm1", normalize=None)
  i = datasets.digits(classes=(0, 1), n_train=50, labels="int", normalize=None)
  assert b.x_test.shape[0] == total - 50
  np.testing.assert_array_equal(b.y_train[:, 0], 2.0 * np.asarray(i.y_train) - 1)


@pytest.mark.parametrize("normalize", ["unit", "standardize"])
def test_normalizations(normalize):
  raw = datasets.digits(n_train=300, n_test=100, normalize=None, key=1)
  d = datasets.digits(n_train=300, n_test=100, normalize=normalize, key=1)
  x, xt = np.asarray(d.x_train), np.asarray(d.x_test)
  if normalize == "unit":
    np.testing.assert_allclose(np.linalg.norm(np.concatenate([x, xt]), axis=1), 1.0, rtol=1e-12)
    # the direction of each image centred by the training mean
    centred = np.asarray(raw.x_test) - np.asarray(raw.x_train).mean(axis=0)
    np.testing.assert_allclose(xt, centred / np.linalg.norm(centred, axis=1, keepdims=True), rtol=1e-12)
  else:
    std = np.asarray(raw.x_train).std(axis=0)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(x.std(axis=0)[std > 0], 1.0, rtol=1e-12)
    assert np.all(x[:, std == 0] == 0) and (std == 0).any()  # the constant border pixels


@pytest.mark.parametrize("corrupt", [0.0, 0.25, np.float32(0.5), 1.0])  # NumPy scalars are numbers too
def test_corruption_replaces_that_fraction_of_training_labels_only(corrupt):
  kw = dict(classes=(0, 1, 2, 3), n_train=400, n_test=100, labels="int", key=jax.random.PRNGKey(5))
  clean = datasets.digits(**kw)
  noisy = datasets.digits(corrupt=corrupt, **kw)
  np.testing.assert_array_equal(noisy.x_train, clean.x_train)  # the same split, inputs untouched
  np.testing.assert_array_equal(noisy.y_test, clean.y_test)
  changed = float(np.mean(np.asarray(noisy.y_train) != np.asarray(clean.y_train)))
  # round(p·n) labels are redrawn uniformly from 4 classes: 3/4 of them change on average
  expected = 0.75 * corrupt
  assert abs(changed - expected) <= 4 * np.sqrt(max(corrupt * 0.75 * 0.25, 1e-12) / 400) + 1e-12
  if corrupt == 1.0:  # fully random labels carry no information about the images
    counts = np.bincount(np.asarray(noisy.y_train), minlength=4)
    assert counts.min() > 60


def test_keys_and_seeds():
  a = datasets.digits(n_train=50, n_test=10, key=0)
  b = datasets.digits(n_train=50, n_test=10, key=0)
  c = datasets.digits(n_train=50, n_test=10, key=1)
  np.testing.assert_array_equal(a.x_train, b.x_train)
  assert not np.array_equal(np.asarray(a.x_train), np.asarray(c.x_train))
  k = datasets.digits(n_train=50, n_test=10, key=jax.random.PRNGKey(0))
  assert k.x_train.shape == (50, 64) and k.x_train.dtype == jnp.float64


@pytest.mark.parametrize(
  "kwargs,error,match",
  [
    (dict(classes=(0, 0)), ValueError, "classes: expected two or more distinct"),
    (dict(classes=(0, 10)), ValueError, "classes: expected"),
    (dict(classes=(0, 1, 2), labels="pm1"), ValueError, "labels: 'pm1' needs exactly two"),
    (dict(labels="binary"), ValueError, "labels: must be one of"),
    (dict(normalize="l2"), ValueError, "normalize: must be one of"),
    (dict(corrupt=1.5), ValueError, "corrupt: must be a fraction"),
    (dict(corrupt=-0.1), ValueError, "corrupt: must be a finite number ≥ 0 \\(a fraction in \\[0, 1\\]\\)"),
    (dict(n_train=1500, n_test=400), ValueError, "n_train \\+ n_test: the chosen classes have 1797"),
    (dict(n_train=0), ValueError, "n_train: must be a positive integer"),
    (dict(key="zero"), TypeError, "key: expected an integer seed or a JAX PRNG key"),
  ],
)
def test_digits_errors(kwargs, error, match):
  with pytest.raises(error, match=match):
    datasets.digits(**kwargs)


def test_synthetic_sets():
  x = datasets.circle(8)
  angles = np.arctan2(np.asarray(x[:, 1]), np.asarray(x[:, 0])) % (2 * np.pi)
  np.testing.assert_allclose(angles, 2 * np.pi * np.arange(8) / 8, atol=1e-12)
  r = datasets.circle(500, key=jax.random.PRNGKey(1))
  np.testing.assert_allclose(np.linalg.norm(r, axis=1), 1.0, rtol=1e-12)
  assert abs(float(jnp.mean(r[:, 0]))) < 0.15  # uniform angles: mean ≈ 0 (sd 0.032)
  key = jax.random.PRNGKey(2)
  g = datasets.gaussian(4000, 3, key=key)
  s = datasets.sphere(4000, 3, key=key)
  np.testing.assert_allclose(s, g / jnp.linalg.norm(g, axis=1, keepdims=True), rtol=1e-12)
  assert abs(float(jnp.var(g)) - 1.0) < 0.05
  # uniform on S²: E[x xᵀ] = I/3
  np.testing.assert_allclose(np.asarray(s.T @ s) / 4000, np.eye(3) / 3, atol=0.03)


def test_teacher_student_targets_are_the_teachers_outputs():
  key = jax.random.PRNGKey(7)
  d = datasets.teacher_student(
    30, 10, 4, key=key, inputs="gaussian", hidden=(64, 32), activation="erf", b_std=None, out_dim=2, noise=0.1
  )
  kx, kt, kn = jax.random.split(key, 3)
  x = datasets.gaussian(40, 4, key=kx)
  net = nl.MLP((64, 32), out_dim=2, activation="erf", b_std=None)
  y = net.apply(net.init(kt, 4), x)
  np.testing.assert_allclose(np.concatenate([d.x_train, d.x_test]), x, rtol=1e-14)
  np.testing.assert_allclose(d.y_test, y[30:], rtol=1e-12)
  np.testing.assert_allclose(d.y_train, y[:30] + 0.1 * jax.random.normal(kn, (30, 2)), rtol=1e-12)
  with pytest.raises(ValueError, match="inputs: must be one of"):
    datasets.teacher_student(3, 1, 2, key=key, inputs="cube")
  with pytest.raises(ValueError, match="noise: must be a finite number ≥ 0"):
    datasets.teacher_student(3, 1, 2, key=key, noise=-1.0)

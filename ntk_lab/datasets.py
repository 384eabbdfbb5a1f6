"""Data sets for kernel and wide-network experiments: scikit-learn's digits (shipped with
scikit-learn, no download), CIFAR-10 read from its archive on disk (never downloaded), and
synthetic inputs and targets.

* `digits`: the 1,797 8×8 digit images, a class subset, a seeded train/test split, input
  normalisation, one-hot / ±1 / integer labels, and label corruption (a fraction of the training
  labels replaced by random ones, the true-vs-random-labels study of Arora et al. 2019 "Fine-grained
  analysis" and Zhang et al. 2017); flat vectors (N, 64) or, with ``image=True``, images
  (N, 8, 8, 1).
* `cifar10`: the 60,000 32×32 colour images of CIFAR-10 (Krizhevsky 2009), read straight from the
  Python version of the archive, ``cifar-10-python.tar.gz``, as images (N, 32, 32, 3), with the
  same class subsets, seeded subsets, normalisations and labels as `digits`.
* `circle`: points on the unit circle, x = (cos γ, sin γ) (the inputs of Jacot et al. 2018, Fig. 1).
* `sphere`, `gaussian`: inputs uniform on the unit sphere S^{d−1}, or standard Gaussian.
* `teacher_student`: targets from a random wide MLP teacher on sphere or Gaussian inputs.

Every function returns arrays in JAX's default float dtype (float64 when x64 is on). Every numeric
argument follows one policy (`ntk_lab._checks`): Python and NumPy numbers (and 0-d arrays) are
accepted; a bool, a string, NaN, ±inf, and a float where a count is meant (``n=3.0``) are refused
with a `ValueError` naming the argument.
"""

from __future__ import annotations

import os
import pathlib
import pickle
import tarfile
import zlib
from collections.abc import Iterable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntk_lab import _checks

__all__ = ["Dataset", "cifar10", "circle", "digits", "gaussian", "sphere", "teacher_student"]

NORMALIZATIONS = ("unit", "standardize", None)
LABELS = ("onehot", "pm1", "int")


class Dataset(NamedTuple):
  """A train/test split: x (N, d) (or images (N, H, W, C)), y (N, O) (or (N,) integer labels),
  x_test, y_test."""

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


def _classes(classes, what, names=None):
  """`classes` as a tuple of two or more distinct labels 0-9 (default all ten, in order); with
  `names`, a name stands for its position there."""
  if classes is None:
    return tuple(range(10))
  if isinstance(classes, str) or not isinstance(classes, Iterable):
    classes = (classes,)
  out = []
  for i, c in enumerate(classes):
    if names is not None and isinstance(c, str):
      c = names.index(_checks.choice(c, f"classes[{i}]", names))
    out.append(_checks.integer(c, f"classes[{i}]", low=0))
  classes = tuple(out)
  if any(c > 9 for c in classes) or len(set(classes)) != len(classes) or len(classes) < 2:
    raise ValueError(f"classes: expected two or more distinct {what}, got {classes!r}.")
  return classes


def _check_pm1(labels, classes):
  if labels == "pm1" and len(classes) != 2:
    raise ValueError(
      f"labels: 'pm1' needs exactly two classes (−1 for the first, +1 for the "
      f"second), got {len(classes)}; pass classes=(a, b) or labels='onehot'."
    )


def _normalize(x, n_train, kind, axes):
  """Normalises x (N, ...) in place with statistics of its first `n_train` rows (see `digits`):
  ``"unit"`` centres by their mean and scales each row to norm 1; ``"standardize"`` shifts and
  scales to zero mean and unit variance over `axes` (which include the leading one) of those rows,
  entries constant there staying 0. Statistics are accumulated in float64, a block of rows at a
  time (no full-size temporaries: CIFAR-10's training set is 150 million numbers)."""
  if kind is None:
    return x
  xtr = x[:n_train]
  axes = (0,) if kind == "unit" else axes
  count = n_train * int(np.prod([x.shape[a] for a in axes if a != 0]))
  blocks = range(0, n_train, 4096)
  mean = sum(xtr[i : i + 4096].sum(axis=axes, dtype=np.float64, keepdims=True) for i in blocks) / count
  if kind == "unit":
    x -= mean.astype(x.dtype)
    norms = np.sqrt(np.einsum("ij,ij->i", x.reshape(len(x), -1), x.reshape(len(x), -1)))
    x /= np.where(norms > 0, norms, 1.0).astype(x.dtype).reshape((-1,) + (1,) * (x.ndim - 1))
    return x
  sq = sum(((xtr[i : i + 4096] - mean) ** 2).sum(axis=axes, keepdims=True) for i in blocks)
  std = np.sqrt(sq / count)
  x -= mean.astype(x.dtype)
  x /= np.where(std > 0, std, 1.0).astype(x.dtype)
  return x


def digits(
  *,
  classes=None,
  n_train: int | None = None,
  n_test: int | None = None,
  normalize: str | None = "unit",
  labels: str = "onehot",
  corrupt: float = 0.0,
  key=0,
  image: bool = False,
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
    image: False for flat vectors (N, 64); True for images (N, 8, 8, 1) (NHWC: height, width,
      channels, the layout of convolutional layers), the same numbers reshaped (with
      ``normalize="unit"`` each image has norm 1 as a whole).

  Returns:
    `Dataset(x_train (n_train, 64), y_train, x_test (n_test, 64), y_test)`, the inputs
    (n, 8, 8, 1) with ``image=True``.

  Example:
    >>> from ntk_lab import datasets
    >>> d = datasets.digits(classes=(0, 1), n_train=100, n_test=50, labels="pm1", key=0)
    >>> d.x_train.shape, d.y_train.shape, sorted(set(d.y_test[:, 0].tolist()))
    ((100, 64), (100, 1), [-1.0, 1.0])
    >>> round(float((d.x_train[0] ** 2).sum()), 6)  # normalize="unit": each image has norm 1
    1.0
    >>> datasets.digits(classes=(0, 1), n_train=100, n_test=50, image=True).x_train.shape
    (100, 8, 8, 1)
  """
  try:
    from sklearn.datasets import load_digits
  except ImportError as e:
    raise ImportError("digits needs scikit-learn: pip install 'ntk_lab[experiments]'") from e
  _checks.choice(normalize, "normalize", NORMALIZATIONS)
  _checks.choice(labels, "labels", LABELS)
  corrupt = _fraction(corrupt, "corrupt")
  image = _checks.boolean(image, "image")
  classes = _classes(classes, "digits 0-9, e.g. (0, 1)")
  _check_pm1(labels, classes)
  if n_train is not None:
    n_train = _checks.integer(n_train, "n_train", low=1)
  if n_test is not None:
    n_test = _checks.integer(n_test, "n_test", low=0)
  data = load_digits()
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
  x = _normalize(x, n_train, normalize, axes=(0,))  # per pixel
  if image:
    x = x.reshape(len(x), 8, 8, 1)  # scikit-learn's rows are the 8×8 images row by row
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


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
_CIFAR10_FOLDER = "cifar-10-batches-py"
_CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR10_TEST = "test_batch"
_CIFAR10_BATCHES = (*_CIFAR10_TRAIN, _CIFAR10_TEST)
_CIFAR10_EXPECTED = (
  f'the Python version of CIFAR-10 ("{_CIFAR10_ARCHIVE}", or the folder "{_CIFAR10_FOLDER}/" it '
  "unpacks to, with data_batch_1 … data_batch_5 and test_batch; "
  "https://www.cs.toronto.edu/~kriz/cifar.html, ntk_lab never downloads it)"
)
# The other versions on the same page, named in the refusals: their files are not pickles.
_CIFAR10_OTHERS = (
  "cifar-10-binary.tar.gz",
  "cifar-10-batches-bin",
  "cifar-10-matlab.tar.gz",
  "cifar-10-batches-mat",
)
_CIFAR10_MAX_BATCH = 256 * 2**20  # bytes; a real batch is 31 MB


def cifar10(
  path,
  *,
  n_train: int | None = None,
  n_test: int | None = None,
  classes=None,
  normalize: str | None = "standardize",
  labels: str = "onehot",
  key=0,
) -> Dataset:
  """CIFAR-10's 32×32 colour images (50,000 training, 10,000 test), read from the archive on disk.

  `path` is the Python version of the archive, ``cifar-10-python.tar.gz`` (from
  https://www.cs.toronto.edu/~kriz/cifar.html; ntk_lab never downloads it), a folder holding it, or
  the folder ``cifar-10-batches-py/`` it unpacks to (or a folder holding that). The archive is read
  in place, in one pass, without extracting anything to disk; when a folder holds both, the unpacked
  one is read (faster). Each of its batches ``data_batch_1`` … ``data_batch_5`` (the training set)
  and ``test_batch`` is a pickled dict: ``b"data"``, (N, 3072) uint8 pixels, each row an image as
  its red, green and blue 32×32 planes row by row, and ``b"labels"``, N classes in 0-9 (the names
  are `CIFAR10_CLASSES`). A missing or damaged batch is refused, naming it.

  The training images of the chosen classes are shuffled with `key` and the first `n_train` kept;
  likewise the first `n_test` of the test images (the archive's own split is kept: a training
  image never lands in the test set; the test subset does not depend on `n_train`). Pixels are
  divided by 255 (to [0, 1]), then:

  * ``normalize="standardize"`` (the default): each colour channel to zero mean and unit variance
    over the kept training images' pixels, the same shift and scale applied to the test images;
  * ``"unit"``: centred by the kept training images' mean image, then each image scaled to
    Euclidean norm 1 as a whole, as `digits` does;
  * ``None``: the [0, 1] pixels as they are.

  Security: a pickle can run any code when it is loaded, so point `path` only at an archive you
  trust (the one from the CIFAR-10 page); that is inherent in the format, not in this reader.

  Args:
    path: a str or `pathlib.Path` (``~`` is expanded), as above.
    n_train: training images; default all those of the chosen classes (5,000 per class).
    n_test: test images; default all those of the chosen classes (1,000 per class).
    classes: the classes to keep, as numbers 0-9 or names, e.g. ``(3, 5)`` or ``("cat", "dog")``;
      default all ten, in order. Labels are positions in `classes`, as in `digits`.
    normalize: ``"standardize"``, ``"unit"`` or None.
    labels: ``"onehot"`` (N, C) floats, ``"pm1"`` (N, 1) floats −1 for ``classes[0]`` and +1 for
      ``classes[1]`` (needs exactly two classes), or ``"int"`` (N,) the position in `classes`.
    key: an integer seed or a JAX PRNG key for the subsets and their order.

  Returns:
    `Dataset(x_train (n_train, 32, 32, 3), y_train, x_test (n_test, 32, 32, 3), y_test)`: images in
    NHWC order (height, width, channels, the layout of convolutional layers; ``x[i, r, c, k]`` is
    channel k of the pixel in row r, column c) in JAX's default float dtype. ``x.reshape(n, -1)``
    gives flat vectors.

  Raises:
    ValueError: `path` does not exist, holds no CIFAR-10 archive, or the archive is not a tar, is
      truncated or damaged (a batch missing, not a pickle, pixels of the wrong size, labels of the
      wrong length or outside 0-9); the message names the file or member.

  Example:
    A stand-in archive of the same format, four images per batch (point `path` at the real one):

    >>> import io, pickle, tarfile, tempfile
    >>> import numpy as np
    >>> from ntk_lab import datasets
    >>> tmp = tempfile.TemporaryDirectory()
    >>> with tarfile.open(f"{tmp.name}/cifar-10-python.tar.gz", "w:gz") as tar:
    ...   for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
    ...     blob = pickle.dumps({b"data": np.full((4, 3072), 255, np.uint8), b"labels": [0, 1, 2, 3]})
    ...     info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
    ...     info.size = len(blob)
    ...     tar.addfile(info, io.BytesIO(blob))
    >>> d = datasets.cifar10(tmp.name, classes=("airplane", "automobile"), n_test=2, normalize=None)
    >>> d.x_train.shape, d.y_train.shape, d.x_test.shape, float(d.x_train.max())
    ((10, 32, 32, 3), (10, 2), (2, 32, 32, 3), 1.0)
    >>> tmp.cleanup()
  """
  _checks.choice(normalize, "normalize", NORMALIZATIONS)
  _checks.choice(labels, "labels", LABELS)
  classes = _classes(classes, "classes 0-9 or their names, e.g. (3, 5) or ('cat', 'dog')", CIFAR10_CLASSES)
  _check_pm1(labels, classes)
  if n_train is not None:
    n_train = _checks.integer(n_train, "n_train", low=1)
  if n_test is not None:
    n_test = _checks.integer(n_test, "n_test", low=0)
  rng = _rng(key)
  (x_tr, y_tr), (x_te, y_te) = _cifar10_read(_cifar10_source(path))
  chosen = []
  for name, n, y in (("n_train", n_train, y_tr), ("n_test", n_test, y_te)):
    keep = np.flatnonzero(np.isin(y, classes))
    n = len(keep) if n is None else n
    if n > len(keep) or (name == "n_train" and n == 0):
      which = "training" if name == "n_train" else "test"
      raise ValueError(
        f"{name}: the chosen classes have {len(keep)} {which} images in the archive, asked for {n}; lower it."
      )
    chosen.append(keep[rng.permutation(len(keep))[:n]])
  n_train = len(chosen[0])
  dtype = np.dtype(jnp.result_type(float))  # float32 unless x64 is on: half the memory
  pixels = np.concatenate([x_tr[chosen[0]], x_te[chosen[1]]])
  # (N, 3072) channel-major rows → (N, 3, 32, 32) → NHWC, copied once into a contiguous float array
  x = pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(dtype, order="C")
  x /= 255
  x = _normalize(x, n_train, normalize, axes=(0, 1, 2))  # per colour channel
  position = np.zeros(10, np.int64)
  position[list(classes)] = np.arange(len(classes))
  idx = position[np.concatenate([y_tr[chosen[0]], y_te[chosen[1]]])]
  return Dataset(
    jnp.asarray(x[:n_train]),
    _labels(idx[:n_train], labels, len(classes)),
    jnp.asarray(x[n_train:]),
    _labels(idx[n_train:], labels, len(classes)),
  )


def _cifar10_source(path) -> pathlib.Path:
  """The archive file or the unpacked folder that `path` names; refuses anything else."""
  try:
    p = pathlib.Path(os.fspath(path)).expanduser()
  except TypeError as e:
    raise TypeError(
      f"path: expected a file or folder path (a str or pathlib.Path), got {type(path).__name__}."
    ) from e
  if not p.exists():
    raise ValueError(f"path: {str(p)!r} does not exist; expected {_CIFAR10_EXPECTED}.")
  if not p.is_dir():
    return p
  if p.name == _CIFAR10_FOLDER or any((p / name).exists() for name in _CIFAR10_BATCHES):
    return p
  if (p / _CIFAR10_FOLDER).is_dir():
    return p / _CIFAR10_FOLDER
  if (p / _CIFAR10_ARCHIVE).is_file():
    return p / _CIFAR10_ARCHIVE
  others = [name for name in _CIFAR10_OTHERS if (p / name).exists()]
  hint = (
    f" It holds {others[0]!r}, another version of CIFAR-10, whose files this does not read." if others else ""
  )
  raise ValueError(
    f"path: the folder {str(p)!r} holds neither {_CIFAR10_ARCHIVE!r} nor the folder "
    f"{_CIFAR10_FOLDER + '/'!r}; expected {_CIFAR10_EXPECTED}.{hint}"
  )


def _cifar10_read(source: pathlib.Path):
  """((pixels, labels) of the training batches, (pixels, labels) of the test batch), checked."""
  if source.is_dir():
    batches = {}
    for name in _CIFAR10_BATCHES:
      file = source / name
      if not file.is_file():
        raise ValueError(
          f"path: the batch {name!r} is missing from the folder {str(source)!r}; expected {_CIFAR10_EXPECTED}."
        )
      try:
        blob = file.read_bytes()
      except OSError as e:
        raise ValueError(f"path: the batch file {str(file)!r} could not be read ({e}).") from e
      batches[name] = _cifar10_batch(blob, f"the batch file {str(file)!r}")
  else:
    batches = _cifar10_tar(source)
  train = [batches[name] for name in _CIFAR10_TRAIN]
  x_tr = np.concatenate([x for x, _ in train])
  y_tr = np.concatenate([y for _, y in train])
  return (x_tr, y_tr), batches[_CIFAR10_TEST]


def _cifar10_tar(archive: pathlib.Path) -> dict:
  """The checked batches of a CIFAR-10 tar archive, read in one pass (a .tar.gz reads forwards
  cheaply; seeking back means decompressing again from the start)."""
  errors = (tarfile.TarError, EOFError, OSError, zlib.error)  # what a bad tar or compressed stream raises
  try:
    tar = tarfile.open(archive, "r:*")
  except errors as e:
    raise ValueError(
      f"path: {str(archive)!r} is not a tar archive (neither plain nor gzip-, bz2- or xz-compressed, "
      f"or cut off at its start); expected {_CIFAR10_EXPECTED}."
    ) from e
  batches, tops, current, seen = {}, set(), None, None
  try:
    with tar:
      for member in tar:
        name = seen = member.name.removeprefix("./")
        folder, _, base = name.rpartition("/")
        tops.add(name.split("/")[0])
        if folder != _CIFAR10_FOLDER or base not in _CIFAR10_BATCHES or not member.isfile():
          continue
        where = f"the member {name!r} of {str(archive)!r}"
        if member.size > _CIFAR10_MAX_BATCH:
          raise ValueError(
            f"path: {where} is {member.size} bytes, far more than a CIFAR-10 batch (31 MB); "
            f"expected {_CIFAR10_EXPECTED}."
          )
        current = name
        blob = tar.extractfile(member).read()
        current = None
        batches[base] = _cifar10_batch(blob, where)
  except errors as e:
    at = f"while reading its member {current!r}" if current else f"after its member {seen!r}"
    raise ValueError(
      f"path: {str(archive)!r} is truncated or damaged ({at}: {type(e).__name__}: {e}); download it "
      f"again. Expected {_CIFAR10_EXPECTED}."
    ) from e
  missing = [name for name in _CIFAR10_BATCHES if name not in batches]
  if missing:
    others = sorted(t for t in tops if t in _CIFAR10_OTHERS)
    hint = f" It holds {others[0] + '/'!r}, another version of CIFAR-10." if others else ""
    raise ValueError(
      f"path: the archive {str(archive)!r} lacks the member {_CIFAR10_FOLDER}/{missing[0]}"
      f"{' (and ' + ', '.join(missing[1:]) + ')' if missing[1:] else ''}; it is truncated or not "
      f"the right archive: expected {_CIFAR10_EXPECTED}.{hint}"
    )
  return batches


def _cifar10_batch(blob: bytes, where: str):
  """(pixels (N, 3072) uint8, labels (N,) int64) of one pickled batch, checked."""
  damaged = f"it is damaged (download the archive again); expected {_CIFAR10_EXPECTED}"
  try:
    batch = pickle.loads(blob, encoding="bytes")
  except Exception as e:  # a damaged pickle raises any of a dozen types
    raise ValueError(f"path: {where} is not a readable pickle ({type(e).__name__}: {e}); {damaged}.") from e
  if not isinstance(batch, dict):
    raise ValueError(f"path: {where} holds a {type(batch).__name__}, not a batch dict; {damaged}.")
  data = batch.get(b"data", batch.get("data"))
  labels = batch.get(b"labels", batch.get("labels"))
  if data is None or labels is None:
    raise ValueError(
      f"path: {where} has no b'data' and b'labels' entries (its keys: {sorted(map(repr, batch))}); {damaged}."
    )
  if not (
    isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072
  ):
    got = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
    raise ValueError(
      f"path: {where}: b'data' must be a uint8 array of shape (N, 3072) (N images of 3 × 32 × 32 "
      f"pixels), got a {got}; {damaged}."
    )
  try:
    labels = np.asarray(labels)
  except (TypeError, ValueError) as e:
    raise ValueError(f"path: {where}: b'labels' is not a list of classes; {damaged}.") from e
  if labels.ndim != 1 or not (labels.dtype.kind in "iu" or labels.size == 0):
    raise ValueError(
      f"path: {where}: b'labels' must be a list of integers, got {labels.dtype} values of shape "
      f"{labels.shape}; {damaged}."
    )
  if len(labels) != len(data):
    raise ValueError(f"path: {where}: b'labels' has {len(labels)} entries for {len(data)} images; {damaged}.")
  outside = (labels < 0) | (labels > 9)
  if outside.any():
    i = int(np.argmax(outside))
    raise ValueError(
      f"path: {where}: b'labels'[{i}] = {int(labels[i])} is outside the classes 0-9; {damaged}."
    )
  return data, labels.astype(np.int64)


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

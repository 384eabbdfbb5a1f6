"""ntk_lab.datasets against scikit-learn's own arrays and the definitions (norms, moments, label
counts), CIFAR-10 against stand-in archives of its format written here (pixels and labels known,
and damaged in each way it is refused), and the synthetic sets against their formulas."""

import io
import pickle
import tarfile

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


# --------------------------------------------------------------------------------- digits as images
@pytest.mark.parametrize("normalize", ["unit", "standardize", None])
def test_digits_images_are_the_flat_vectors_reshaped(normalize):
  kw = dict(classes=(2, 7), n_train=40, n_test=10, normalize=normalize, key=4)
  flat = datasets.digits(**kw)
  img = datasets.digits(image=True, **kw)
  assert img.x_train.shape == (40, 8, 8, 1) and img.x_test.shape == (10, 8, 8, 1)
  assert img.x_train.dtype == flat.x_train.dtype
  np.testing.assert_array_equal(img.x_train, np.asarray(flat.x_train).reshape(40, 8, 8, 1))
  np.testing.assert_array_equal(img.x_test, np.asarray(flat.x_test).reshape(10, 8, 8, 1))
  np.testing.assert_array_equal(img.y_train, flat.y_train)
  if normalize is None:  # scikit-learn's own 8×8 images, row by row
    raw = sklearn.load_digits()
    rows = _match_rows(np.asarray(flat.x_train), raw.data / 16.0)
    np.testing.assert_array_equal(img.x_train[..., 0], raw.images[rows] / 16.0)
  if normalize == "unit":  # each image has norm 1 as a whole
    np.testing.assert_allclose(
      np.linalg.norm(np.asarray(img.x_train).reshape(40, -1), axis=1), 1.0, rtol=1e-12
    )


@pytest.mark.parametrize("image", ["True", 1, None])
def test_digits_image_must_be_a_bool(image):
  with pytest.raises(ValueError, match="image: must be True or False"):
    datasets.digits(image=image)


# ------------------------------------------------------------------------------------------ CIFAR-10
BATCH = 20  # images per batch in the stand-in archives (the real ones hold 10,000)
BATCH_NAMES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def _marker(g):
  """(row, col, channel) of the one pixel set to 255 in image number g (row ≥ 1: pixel (0, 0)'s red
  value holds g itself)."""
  return 1 + g % 31, (3 * g + 7) % 32, g % 3


def _label(g):
  return (7 * g) % 10  # every class twice in each batch of 20


def _batches():
  """The stand-in batches {name: (pixels (20, 3072) uint8, labels)}: image g (0 … 119, in archive
  order) has red (0, 0) = g, 255 at `_marker(g)` and random pixels in 0 … 254 elsewhere, stored as
  CIFAR-10 stores it (channel-major planes, rows in order)."""
  rng = np.random.default_rng(0)
  out = {}
  for b, name in enumerate(BATCH_NAMES):
    data = rng.integers(0, 255, size=(BATCH, 3072), dtype=np.uint8)
    gs = range(b * BATCH, (b + 1) * BATCH)
    for i, g in enumerate(gs):
      data[i, 0] = g
      row, col, ch = _marker(g)
      data[i, ch * 1024 + row * 32 + col] = 255
    out[name] = (data, [_label(g) for g in gs])
  return out


def _pickled(data, labels):
  return pickle.dumps({b"batch_label": b"a stand-in", b"labels": labels, b"data": data, b"filenames": []})


def _write_archive(folder, batches=None, *, blobs=None, name="cifar-10-python.tar.gz"):
  """cifar-10-python.tar.gz in `folder` with the given batches (default `_batches()`); `blobs`
  replaces members' bytes (a damaged pickle)."""
  batches = _batches() if batches is None else batches
  members = {n: _pickled(*batch) for n, batch in batches.items()}
  members.update(blobs or {})
  members["batches.meta"] = pickle.dumps({b"label_names": [c.encode() for c in datasets.CIFAR10_CLASSES]})
  path = folder / name
  with tarfile.open(path, "w:gz", compresslevel=1) as tar:
    for member, blob in members.items():
      info = tarfile.TarInfo(f"cifar-10-batches-py/{member}")
      info.size = len(blob)
      tar.addfile(info, io.BytesIO(blob))
  return path


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
  return _write_archive(tmp_path_factory.mktemp("cifar"))


def _ids(x):
  """The image numbers g of a batch of [0, 1] images (normalize=None): red (0, 0) · 255."""
  return np.rint(np.asarray(x)[:, 0, 0, 0] * 255).astype(int)


def test_cifar10_pixels_come_out_at_their_row_column_and_channel(archive):
  d = datasets.cifar10(archive, normalize=None, labels="int", key=1)
  assert d.x_train.shape == (100, 32, 32, 3) and d.x_test.shape == (20, 32, 32, 3)
  assert d.x_train.dtype == jnp.float64 and d.y_train.dtype == jnp.int32  # float64: the tests' x64
  ids, test_ids = _ids(d.x_train), _ids(d.x_test)
  assert sorted(ids) == list(range(100)) and sorted(test_ids) == list(range(100, 120))  # the split kept
  raw = _batches()
  pixels = np.concatenate([data for data, _ in raw.values()])
  for x, g in zip(np.asarray(d.x_train), ids):
    row, col, ch = _marker(g)
    assert x[row, col, ch] == 1.0 and (x == 1.0).sum() == 1  # the one 255 pixel, where it was set
    # channel k of pixel (r, c) is entry k·1024 + r·32 + c of the row, divided by 255
    r, c, k = np.meshgrid(np.arange(32), np.arange(32), np.arange(3), indexing="ij")
    np.testing.assert_array_equal(x, pixels[g][k * 1024 + r * 32 + c] / 255.0)
  np.testing.assert_array_equal(d.y_train, [_label(g) for g in ids])
  np.testing.assert_array_equal(d.y_test, [_label(g) for g in test_ids])
  onehot = datasets.cifar10(archive, normalize=None, key=1)
  np.testing.assert_array_equal(onehot.y_test, np.eye(10)[np.asarray(d.y_test)])


def test_cifar10_path_is_the_archive_its_folder_or_the_unpacked_folder(archive, tmp_path):
  reference = datasets.cifar10(archive, n_train=10, n_test=5, key=3)
  with tarfile.open(archive) as tar:
    tar.extractall(tmp_path / "unpacked", filter="data")
  for path in (
    archive.parent,
    str(archive),
    tmp_path / "unpacked",
    tmp_path / "unpacked" / "cifar-10-batches-py",
  ):
    d = datasets.cifar10(path, n_train=10, n_test=5, key=3)
    for a, b in zip(d, reference):
      np.testing.assert_array_equal(a, b)


def test_cifar10_subsets_and_classes(archive):
  kw = dict(n_train=8, n_test=3, normalize=None, key=5)
  d = datasets.cifar10(archive, classes=(5, 3), labels="int", **kw)
  assert d.x_train.shape == (8, 32, 32, 3) and d.x_test.shape == (3, 32, 32, 3)
  ids, test_ids = _ids(d.x_train), _ids(d.x_test)
  assert len(set(ids)) == 8 and all(g < 100 for g in ids) and all(g >= 100 for g in test_ids)
  # labels are positions in `classes`: 5 → 0, 3 → 1
  np.testing.assert_array_equal(d.y_train, [(5, 3).index(_label(g)) for g in ids])
  np.testing.assert_array_equal(d.y_test, [(5, 3).index(_label(g)) for g in test_ids])
  named = datasets.cifar10(archive, classes=("dog", "cat"), labels="pm1", **kw)
  np.testing.assert_array_equal(named.x_train, d.x_train)
  np.testing.assert_array_equal(named.y_train[:, 0], 2.0 * np.asarray(d.y_train) - 1)
  # every image of the two classes by default: 10 + 10 training, 2 + 2 test
  assert datasets.cifar10(archive, classes=(3, 5), normalize=None).x_train.shape[0] == 20
  assert datasets.cifar10(archive, classes=(3, 5), normalize=None).x_test.shape[0] == 4
  # seeded: the same key the same subset, another key another; the test subset ignores n_train
  again = datasets.cifar10(archive, classes=(5, 3), labels="int", **kw)
  np.testing.assert_array_equal(again.x_train, d.x_train)
  other = datasets.cifar10(archive, classes=(5, 3), labels="int", **{**kw, "key": 6})
  assert not np.array_equal(_ids(other.x_train), ids)
  more = datasets.cifar10(archive, classes=(5, 3), labels="int", **{**kw, "n_train": 12})
  np.testing.assert_array_equal(_ids(more.x_train)[:8], ids)
  np.testing.assert_array_equal(more.x_test, d.x_test)
  by_key = datasets.cifar10(archive, n_train=4, n_test=0, key=jax.random.PRNGKey(0))
  assert by_key.x_train.shape == (4, 32, 32, 3) and by_key.x_test.shape == (0, 32, 32, 3)


@pytest.mark.parametrize("normalize", ["standardize", "unit"])
def test_cifar10_normalizations_use_the_training_images(archive, normalize):
  kw = dict(classes=(0, 1, 2), n_train=15, n_test=6, key=2)
  raw = datasets.cifar10(archive, normalize=None, **kw)
  d = datasets.cifar10(archive, normalize=normalize, **kw)
  x, xt, r, rt = (np.asarray(a) for a in (d.x_train, d.x_test, raw.x_train, raw.x_test))
  if normalize == "standardize":  # per colour channel, the training set's mean and std
    np.testing.assert_allclose(x.mean(axis=(0, 1, 2)), 0.0, atol=1e-12)
    np.testing.assert_allclose(x.std(axis=(0, 1, 2)), 1.0, rtol=1e-12)
    mean, std = r.mean(axis=(0, 1, 2)), r.std(axis=(0, 1, 2))
    np.testing.assert_allclose(xt, (rt - mean) / std, rtol=1e-12, atol=1e-12)
  else:
    np.testing.assert_allclose(np.linalg.norm(x.reshape(15, -1), axis=1), 1.0, rtol=1e-12)
    centred = (rt - r.mean(axis=0)).reshape(6, -1)
    expected = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    np.testing.assert_allclose(xt.reshape(6, -1), expected, rtol=1e-12, atol=1e-14)


def _damaged(kind, folder):
  """A damaged stand-in of the given kind in `folder`; returns the path to pass."""
  batches = _batches()
  if kind == "not a tar":
    path = folder / "cifar-10-python.tar.gz"
    path.write_bytes(b"this is not an archive" * 100)
    return path
  if kind == "truncated":
    path = _write_archive(folder)
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    return path
  if kind == "truncated in a member":  # a plain (uncompressed) tar, cut inside data_batch_2's bytes
    path = folder / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w") as tar:
      for name, batch in batches.items():
        blob = _pickled(*batch)
        info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    blob = path.read_bytes()
    path.write_bytes(blob[: 2 * 512 + len(_pickled(*batches["data_batch_1"])) + 1000])
    return path
  if kind == "batch missing":
    del batches["data_batch_3"]
  elif kind == "not a pickle":
    return _write_archive(folder, blobs={"data_batch_2": b"\x80\x04garbage"})
  elif kind == "wrong size":
    batches["test_batch"] = (batches["test_batch"][0][:, :3000], batches["test_batch"][1])
  elif kind == "wrong dtype":
    batches["data_batch_1"] = (batches["data_batch_1"][0].astype(np.float32), batches["data_batch_1"][1])
  elif kind == "labels too short":
    batches["data_batch_4"] = (batches["data_batch_4"][0], batches["data_batch_4"][1][:-1])
  elif kind == "labels outside 0-9":
    batches["data_batch_5"] = (batches["data_batch_5"][0], [10] + batches["data_batch_5"][1][1:])
  elif kind == "not a dict":
    return _write_archive(folder, blobs={"data_batch_1": pickle.dumps([1, 2, 3])})
  return _write_archive(folder, batches)


DAMAGED = [
  ("not a tar", "is not a tar archive \\(neither plain nor gzip-, bz2- or xz-compressed"),
  ("truncated", "is truncated or damaged \\((after|while reading) its member 'cifar-10-batches-py/"),
  (
    "truncated in a member",
    "is truncated or damaged \\(while reading its member 'cifar-10-batches-py/data_batch_2'",
  ),
  ("batch missing", "lacks the member cifar-10-batches-py/data_batch_3"),
  ("not a pickle", "'cifar-10-batches-py/data_batch_2'.* is not a readable pickle"),
  ("not a dict", "'cifar-10-batches-py/data_batch_1'.* holds a list, not a batch dict"),
  (
    "wrong size",
    "'cifar-10-batches-py/test_batch'.*: b'data' must be a uint8 array of shape \\(N, 3072\\)",
  ),
  ("wrong dtype", "'cifar-10-batches-py/data_batch_1'.*got a float32 array of shape \\(20, 3072\\)"),
  ("labels too short", "'cifar-10-batches-py/data_batch_4'.*b'labels' has 19 entries for 20 images"),
  ("labels outside 0-9", "'cifar-10-batches-py/data_batch_5'.*b'labels'\\[0\\] = 10 is outside"),
]


@pytest.mark.parametrize("kind,match", DAMAGED, ids=[kind for kind, _ in DAMAGED])
def test_cifar10_refuses_a_damaged_archive_naming_the_member(kind, match, tmp_path):
  path = _damaged(kind, tmp_path)
  with pytest.raises(ValueError, match=match) as info:
    datasets.cifar10(path)
  message = str(info.value)
  assert message.startswith("path: ") and str(path) in message
  assert 'the Python version of CIFAR-10 ("cifar-10-python.tar.gz"' in message
  if kind in (
    "not a tar",
    "truncated",
    "truncated in a member",
    "not a pickle",
  ):  # from tarfile/pickle's error
    assert info.value.__cause__ is not None


def test_cifar10_refuses_paths_without_the_archive(tmp_path):
  expected = 'expected the Python version of CIFAR-10 \\("cifar-10-python.tar.gz"'
  with pytest.raises(ValueError, match=f"path: '.*nowhere' does not exist; {expected}"):
    datasets.cifar10(tmp_path / "nowhere")
  with pytest.raises(
    ValueError, match=f"path: the folder '.*' holds neither 'cifar-10-python.tar.gz' nor .*{expected}"
  ):
    datasets.cifar10(tmp_path)
  (tmp_path / "cifar-10-batches-bin").mkdir()
  with pytest.raises(ValueError, match="It holds 'cifar-10-batches-bin', another version of CIFAR-10"):
    datasets.cifar10(tmp_path)
  unpacked = tmp_path / "cifar-10-batches-py"
  unpacked.mkdir()
  for name, batch in _batches().items():
    if name != "test_batch":
      (unpacked / name).write_bytes(_pickled(*batch))
  with pytest.raises(
    ValueError, match=f"path: the batch 'test_batch' is missing from the folder .*{expected}"
  ):
    datasets.cifar10(tmp_path)
  with pytest.raises(TypeError, match="path: expected a file or folder path"):
    datasets.cifar10(3)


@pytest.mark.parametrize(
  "kwargs,match",
  [
    (dict(n_train=101), "n_train: the chosen classes have 100 training images in the archive, asked for 101"),
    (
      dict(classes=(0, 1), n_test=5),
      "n_test: the chosen classes have 4 test images in the archive, asked for 5",
    ),
    (dict(classes=("cat", "cats")), "classes\\[1\\]: must be one of 'airplane'"),
    (dict(classes=(3, 3)), "classes: expected two or more distinct classes 0-9 or their names"),
    (dict(classes=(0, 1, 2), labels="pm1"), "labels: 'pm1' needs exactly two"),
    (dict(normalize="l2"), "normalize: must be one of"),
    (dict(n_train=0), "n_train: must be a positive integer"),
    (dict(n_test=2.0), "n_test: must be an integer ≥ 0"),
  ],
)
def test_cifar10_argument_errors(archive, kwargs, match):
  with pytest.raises(ValueError, match=match):
    datasets.cifar10(archive, **kwargs)

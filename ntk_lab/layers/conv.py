"""Convolution and pooling layers, with neural-tangents' `stax` arguments and NHWC layout.

Inputs are (N, *spatial, C), channels last: (N, L, C) sequences, (N, H, W, C) images. A layer's
infinite-width rule maps the covariances Σ(x, x')[p, p'] of its input at pairs of positions
(the `KernelState` layout: pixel-diagonal, or every pair of positions) to those of its output
(Novak et al. 2019, "Bayesian Deep CNNs with Many Channels are GPs"; Arora et al. 2019, "On
Exact Computation with an Infinitely Wide Neural Net"):

* `Conv` with filter F: Σ ← σ_w² · (1/|F|) Σ_{δ∈F} Σ[p·s + δ, p'·s + δ] + σ_b² — a mean over
  the filter's offsets along the diagonal of each pair of spatial axes, one axis at a time (|F₁| +
  |F₂| additions per entry, not |F₁|·|F₂|); Θ ← own term + σ_w² · (the same map of Θ);
* `AvgPool`: the window mean on each axis of the pair independently; `GlobalAvgPool`: the mean
  over every pair of positions; `Flatten`: the mean over the diagonal (what a `Dense` readout of
  the flattened vector sees).

Padding ``SAME`` adds zeros (whose covariances are zero), ``CIRCULAR`` wraps around, ``VALID``
adds nothing; the amounts are those of `jax.lax` ``SAME``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from ntk_lab import _checks
from ntk_lab.layers.base import KernelState, Layer, RuleContext
from ntk_lab.layers.dense import PARAMETERIZATIONS

__all__ = ["AvgPool", "Conv", "Flatten", "GlobalAvgPool", "PADDINGS"]

PADDINGS = ("VALID", "SAME", "CIRCULAR")


def _shape_tuple(value, name, n=None):
  try:
    out = tuple(value)
  except TypeError:
    raise TypeError(f"{name}: expected a tuple of positive ints such as (3, 3), got {value!r}.") from None
  if not out or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in out):
    raise ValueError(f"{name}: expected a tuple of positive ints such as (3, 3), got {value!r}.")
  if n is not None and len(out) != n:
    raise ValueError(f"{name}: needs {n} entries (one per spatial axis, as the window), got {out}.")
  return out


def _padding(value):
  return _checks.choice(str(value).upper() if isinstance(value, str) else value, "padding", PADDINGS)


def _pads(n: int, k: int, s: int, padding: str) -> tuple[int, int, int]:
  """(pad before, pad after, output size) of one spatial axis of size n, window k, stride s."""
  if padding == "VALID":
    if n < k:
      raise ValueError(f"a window of {k} does not fit a spatial axis of size {n} with padding='VALID'.")
    return 0, 0, (n - k) // s + 1
  out = -(-n // s)
  total = max((out - 1) * s + k - n, 0)
  return total // 2, total - total // 2, out


def _window_outputs(what, in_shape, window, strides, padding) -> list:
  """The output's spatial sizes for per-point inputs (*spatial, channels) of shape ``in_shape``."""
  if len(in_shape) != len(window) + 1:
    raise ValueError(
      f"{what}: expects per-point inputs (*spatial, channels) with {len(window)} spatial axes, "
      f"got shape {tuple(in_shape)}."
    )
  return [_pads(n, k, s, padding)[2] for n, k, s in zip(in_shape, window, strides)]


def _pad_axis(x, axis, lo, hi, padding):
  if lo == hi == 0:
    return x
  widths = [(0, 0)] * x.ndim
  widths[axis] = (lo, hi)
  return jnp.pad(x, widths, mode="wrap" if padding == "CIRCULAR" else "constant")


def _window_mean(x, axes, k, s, padding, *, diagonal):
  """The mean over a window of k offsets, stride s, along one spatial axis (``axes`` = (a,)) or,
  with ``diagonal``, along the diagonal of a pair of axes (a, a'): the same offset on both."""
  lo, hi, out = _pads(x.shape[axes[0]], k, s, padding)
  for a in axes:
    x = _pad_axis(x, a, lo, hi, padding)
  span = (out - 1) * s + 1

  def shifted(x, a, d):
    return jax.lax.slice_in_dim(x, d, d + span, stride=s, axis=a)

  if diagonal:
    terms = [_shift_all(x, axes, d, shifted) for d in range(k)]
    return sum(terms[1:], terms[0]) / k
  for a in axes:  # independent windows on each axis: pooling
    terms = [shifted(x, a, d) for d in range(k)]
    x = sum(terms[1:], terms[0]) / k
  return x


def _shift_all(x, axes, d, shifted):
  for a in axes:
    x = shifted(x, a, d)
  return x


def _spatial_map(state: KernelState, window, strides, padding, *, diagonal):
  """``fn(array, batch_ndim)`` applying window means over every spatial axis of the layout."""
  full = state.full

  def fn(x, batch_ndim):
    for i, (k, s) in enumerate(zip(window, strides)):
      if full:
        axes = (batch_ndim + 2 * i, batch_ndim + 2 * i + 1)
        x = _window_mean(x, axes, k, s, padding, diagonal=diagonal)
      else:
        x = _window_mean(x, (batch_ndim + i,), k, s, padding, diagonal=True)
    return x

  return fn


def _check_spatial(state: KernelState, n: int, what: str):
  if state.spatial != n:
    raise ValueError(
      f"{what}: needs inputs with {n} spatial axes (e.g. (N, H, W, C) for a 2-D window), got "
      f"{state.spatial}; check the window's length against the inputs' shape."
    )


@dataclasses.dataclass(frozen=True)
class Conv(Layer):
  """A convolution over the spatial axes of (N, *spatial, C) inputs (NT's ``stax.Conv``).

  Args:
    out_chan: number of output channels.
    filter_shape: the filter's spatial shape, e.g. (3, 3) for images, (5,) for sequences.
    strides: one per spatial axis; None for 1.
    padding: ``"VALID"``, ``"SAME"`` (zeros) or ``"CIRCULAR"`` (periodic).
    W_std: σ_w ≥ 0; b_std: σ_b ≥ 0, or None for no bias.
    parameterization: ``"ntk"`` (z = σ_w/√(C·|F|) · x ⋆ W + σ_b·b, W, b ~ N(0, 1)) or
      ``"standard"`` (W ~ N(0, σ_w²/(C·|F|)), b ~ N(0, σ_b²)).
    trainable: if False its params drop out of the NTK and of training.

  Params: ``{"W": (*filter_shape, C, out_chan), "b": (out_chan,)}`` (no ``"b"`` without bias).

  Example:
    >>> import jax, jax.numpy as jnp, ntk_lab as nl
    >>> L = nl.layers
    >>> net = L.serial(L.Conv(8, (3, 3), padding="SAME"), L.Relu(), L.GlobalAvgPool(), L.Dense(1))
    >>> params = net.init(jax.random.PRNGKey(0), (6, 6, 3))
    >>> x = jax.random.normal(jax.random.PRNGKey(1), (4, 6, 6, 3))
    >>> net.apply(params, x).shape, nl.analytic_kernel(net, x).ntk.shape
    ((4, 1), (4, 4))
  """

  out_chan: int
  filter_shape: tuple
  strides: tuple | None = None
  padding: str = "VALID"
  W_std: float = 1.0
  b_std: float | None = None
  parameterization: str = "ntk"
  trainable: bool = dataclasses.field(default=True, kw_only=True)

  has_params = True

  def __post_init__(self):
    _checks.positive_int(self.out_chan, "out_chan")
    filt = _shape_tuple(self.filter_shape, "filter_shape")
    object.__setattr__(self, "filter_shape", filt)
    strides = (1,) * len(filt) if self.strides is None else _shape_tuple(self.strides, "strides", len(filt))
    object.__setattr__(self, "strides", strides)
    object.__setattr__(self, "padding", _padding(self.padding))
    object.__setattr__(self, "W_std", _checks.nonnegative_number(self.W_std, "W_std", static=True))
    if self.b_std is not None:
      b = _checks.nonnegative_number(self.b_std, "b_std", static=True, unit=", or None for no bias")
      object.__setattr__(self, "b_std", b)
    _checks.choice(self.parameterization, "parameterization", PARAMETERIZATIONS)
    if not isinstance(self.trainable, bool):
      raise TypeError(f"trainable: expected True or False, got {self.trainable!r}.")

  @property
  def has_bias(self) -> bool:
    return self.b_std is not None

  def _fan_in(self, channels: int) -> int:
    return channels * math.prod(self.filter_shape)

  def output_shape_of(self, in_shape):
    sizes = _window_outputs(
      f"Conv{self.filter_shape}", in_shape, self.filter_shape, self.strides, self.padding
    )
    return (*sizes, self.out_chan)

  def init_params(self, key, in_shape, dtype):
    self.output_shape_of(in_shape)
    kw, kb = jax.random.split(key)
    W = jax.random.normal(kw, (*self.filter_shape, in_shape[-1], self.out_chan), dtype)
    b = jax.random.normal(kb, (self.out_chan,), dtype) if self.has_bias else None
    if self.parameterization == "standard":
      W = W * (self.W_std / math.sqrt(self._fan_in(in_shape[-1])))
      b = None if b is None else b * self.b_std
    return {"W": W} if b is None else {"W": W, "b": b}

  def apply(self, params, x):
    k = len(self.filter_shape)
    padding = self.padding
    if padding == "CIRCULAR":
      for i, (n, f, s) in enumerate(zip(x.shape[1:-1], self.filter_shape, self.strides)):
        lo, hi, _ = _pads(n, f, s, "SAME")
        x = _pad_axis(x, 1 + i, lo, hi, "CIRCULAR")
      padding = "VALID"
    if k > 3:
      raise ValueError(f"Conv: 1 to 3 spatial axes are supported, got {k}.")
    z = _convolve(x, params["W"], self.strides, padding)
    if self.parameterization == "ntk":
      z = z * (self.W_std / math.sqrt(self._fan_in(x.shape[-1])))
      if "b" in params:
        z = z + self.b_std * params["b"]
    elif "b" in params:
      z = z + params["b"]
    return z

  def kernel_rule(self, state: KernelState, ctx: RuleContext) -> KernelState:
    _check_spatial(state, len(self.filter_shape), f"Conv{self.filter_shape}")
    w, b = ctx.scales(self)
    conv = _spatial_map(state, self.filter_shape, self.strides, self.padding, diagonal=True)
    mapped = state.map_spatial(conv)  # Σ and Θ under the filter's mean, before scaling
    out = mapped.map_covariances(lambda k: w**2 * k + b**2)
    ntk = mapped.ntk
    if ntk is not None:
      if self.parameterization == "ntk":
        own = out.nngp
      else:  # dΘ = fan_in · (filter mean of Σ_in) (the weights) + 1 (the bias)
        own = self._fan_in(state.width) * mapped.nngp + (1.0 if self.has_bias else 0.0)
      ntk = (own if self.trainable else 0.0) + w**2 * ntk
    return out.replace(ntk=ntk, width=self.out_chan, is_gaussian=True)


def _conv_lax(x, W, strides, padding):
  """The convolution (N, *spatial, C) ⊛ (*filter, C, O), stride `strides`, ``VALID``/``SAME``."""
  k = W.ndim - 2
  spec = "N" + "DHW"[-k:] + "C"
  dims = (spec, "DHW"[-k:] + "IO", spec)
  return jax.lax.conv_general_dilated(x, W, strides, padding, dimension_numbers=dims)


def _conv_patches(x, W, strides, padding):
  """The same convolution as a product of patches: one strided slice of the padded input per
  filter offset, contracted with the filter in one `einsum` (im2col)."""
  filt = W.shape[:-2]
  for i, (n, f, s) in enumerate(zip(x.shape[1:-1], filt, strides)):
    lo, hi, _ = _pads(n, f, s, padding)
    x = _pad_axis(x, 1 + i, lo, hi, "SAME")
  outs = [_pads(n, f, s, "VALID")[2] for n, f, s in zip(x.shape[1:-1], filt, strides)]
  patches = []
  for offset in itertools.product(*(range(f) for f in filt)):
    start = (0, *offset, 0)
    limit = (x.shape[0], *((o - 1) * s + d + 1 for o, s, d in zip(outs, strides, offset)), x.shape[-1])
    patches.append(jax.lax.slice(x, start, limit, (1, *strides, 1)))
  patches = jnp.stack(patches, axis=-2)  # (N, *out, |F|, C)
  return jnp.einsum("...fc,fco->...o", patches, W.reshape(-1, *W.shape[-2:]))


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _convolve(x, W, strides, padding):
  """`_conv_lax`, whose derivatives on the CPU are those of `_conv_patches` (the same linear map).

  XLA's CPU backend runs the derivative convolutions slowly inside loops (the `lax.scan` of
  `ntk_lab.train`, the `lax.map` of tiled kernels): measured on 2 cores, a 32-channel 3 × 3 layer
  on 160 8 × 8 images took 0.37 s per filter gradient in a `scan` against 19 ms outside one, and
  0.055 s against 9 ms per input gradient. The patch product's derivatives are matrix products and
  slices, as fast in a loop as outside. The forward convolution is fast in both places and stays.
  """
  return _conv_lax(x, W, strides, padding)


@functools.partial(_convolve.defjvp, symbolic_zeros=True)
def _convolve_jvp(strides, padding, primals, tangents):
  x, W = primals
  dx, dW = tangents
  linear = _conv_patches if jax.default_backend() == "cpu" else _conv_lax
  dz = [linear(dx, W, strides, padding)] if not isinstance(dx, SymbolicZero) else []
  if not isinstance(dW, SymbolicZero):
    dz.append(linear(x, dW, strides, padding))
  z = _conv_lax(x, W, strides, padding)
  return z, sum(dz[1:], dz[0]) if dz else jnp.zeros_like(z)


@dataclasses.dataclass(frozen=True)
class AvgPool(Layer):
  """Average pooling over windows of the spatial axes (NT's ``stax.AvgPool``, with its default
  ``normalize_edges=False``: a ``SAME`` window at an edge is divided by its full size).

  Args:
    window_shape: the window, one entry per spatial axis.
    strides: one per spatial axis; None for 1 (NT's default).
    padding: ``"VALID"``, ``"SAME"`` or ``"CIRCULAR"``.
  """

  window_shape: tuple
  strides: tuple | None = None
  padding: str = "VALID"

  mixes_positions = True  # its kernel needs the covariances of every pair of positions

  def __post_init__(self):
    window = _shape_tuple(self.window_shape, "window_shape")
    object.__setattr__(self, "window_shape", window)
    strides = (
      (1,) * len(window) if self.strides is None else _shape_tuple(self.strides, "strides", len(window))
    )
    object.__setattr__(self, "strides", strides)
    object.__setattr__(self, "padding", _padding(self.padding))

  def output_shape_of(self, in_shape):
    sizes = _window_outputs(
      f"AvgPool{self.window_shape}", in_shape, self.window_shape, self.strides, self.padding
    )
    return (*sizes, in_shape[-1])

  def apply(self, params, x):
    for i, (k, s) in enumerate(zip(self.window_shape, self.strides)):
      x = _window_mean(x, (1 + i,), k, s, self.padding, diagonal=False)
    return x

  def kernel_rule(self, state, ctx):
    _check_spatial(state, len(self.window_shape), f"AvgPool{self.window_shape}")
    _check_full(state, "AvgPool")
    pool = _spatial_map(state, self.window_shape, self.strides, self.padding, diagonal=False)
    return state.map_spatial(pool)


def _check_full(state, what):
  if not state.full:
    raise ValueError(
      f"{what}: mixes positions, so its kernel needs the covariances of every pair of positions; "
      "the kernel state holds only the diagonal (a layer that mixes positions should declare "
      "mixes_positions = True)."
    )


@dataclasses.dataclass(frozen=True)
class GlobalAvgPool(Layer):
  """The mean over every spatial position: (N, *spatial, C) → (N, C) (NT's ``stax.GlobalAvgPool``)."""

  mixes_positions = True

  def output_shape_of(self, in_shape):
    if len(in_shape) < 2:
      raise ValueError(
        f"GlobalAvgPool: expects inputs with spatial axes, got per-point shape {tuple(in_shape)}."
      )
    return (in_shape[-1],)

  def apply(self, params, x):
    return jnp.mean(x, axis=tuple(range(1, x.ndim - 1)))

  def kernel_rule(self, state, ctx):
    if state.spatial == 0:
      raise ValueError("GlobalAvgPool: expects inputs with spatial axes, got vectors.")
    _check_full(state, "GlobalAvgPool")

    def mean(x, batch_ndim):
      return None if x is None else jnp.mean(x, axis=tuple(range(batch_ndim, x.ndim)))

    out = state.map_spatial(mean)
    return out.replace(spatial=0, full=False)


@dataclasses.dataclass(frozen=True)
class Flatten(Layer):
  """All axes of a point in one: (N, *spatial, C) → (N, prod(spatial)·C) (NT's ``stax.Flatten``).

  A `Dense` layer on the flattened vector sees the mean over positions of Σ(x, x')[p, p], so the
  kernels need only the pixel-diagonal layout when nothing else mixes positions.
  """

  def output_shape_of(self, in_shape):
    return (math.prod(in_shape),)

  def apply(self, params, x):
    return x.reshape(x.shape[0], -1)

  def kernel_rule(self, state, ctx):
    if state.spatial == 0:
      return state
    sizes = state.nngp.shape[state.batch_ndim :: 2 if state.full else 1]

    def mean_of_diagonal(x, batch_ndim):
      for _ in range(state.spatial if state.full else 0):  # equal positions only
        x = jnp.diagonal(x, axis1=batch_ndim, axis2=batch_ndim + 1)
      return jnp.mean(x, axis=tuple(range(batch_ndim, x.ndim)))

    out = state.map_spatial(mean_of_diagonal)
    return out.replace(spatial=0, full=False, width=state.width * math.prod(sizes))

"""Fully-connected networks in NTK and standard parametrization: `MLP`, a network of layers.

``MLP(hidden, ...)`` builds ``serial(Dense, Activation, …, Dense)`` from `ntk_lab.layers` and is
that network: its init, apply, infinite-width rule and structured NTK terms are the layers'. It
adds per-layer options given as tuples, and readout initialisations. Params are a plain pytree: a
list with one dict per affine layer, ``{"W": (n_in, n_out), "b": (n_out,)}`` (no ``"b"`` for a
layer whose ``b_std`` is None), exactly the arrays of neural-tangents' ``stax.Dense`` (whose ``b``
has shape ``(1, n_out)``), so kernels compare 1:1.

With h₀ = x and layers l = 1 … L (L = len(hidden) + 1), the network computes

    z_l = a_l · h_{l−1} W_l + β_l · b_l,    h_l = ρ_l(z_l),    f(x) = z_L,

where a layer in NTK parametrization has a_l = σ_w,l/√n_{l−1}, β_l = σ_b,l and W, b ~ N(0, 1), and
a layer in standard parametrization has a_l = β_l = 1 with W ~ N(0, σ_w,l²/n_{l−1}), b ~ N(0, σ_b,l²).
The parametrization, σ_w, σ_b (or no bias) and ρ may each be set per layer; ρ = identity makes two
consecutive affine layers (NT's ``Dense`` followed by ``Dense``). One hidden layer with σ_w = 1, no
biases and a readout of 1/√m gives f(x) = (1/√m) Σ_r a_r ρ(w_rᵀx / √d), the two-layer network of
Du et al. 2019 and Arora et al. 2019 (with σ_w,1 = √d for their unscaled w_rᵀx).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax.numpy as jnp

from ntk_lab import _checks, analytic
from ntk_lab.activations import Activation, get_activation
from ntk_lab.layers import Activation as ActivationLayer
from ntk_lab.layers import Dense, Layer, serial
from ntk_lab.layers.dense import PARAMETERIZATIONS as PARAMETRIZATIONS
from ntk_lab.models import split_trainable

__all__ = ["MLP"]

READOUT_INITS = ("gaussian", "rademacher", "symmetric")
_TRAINABLE_NAMES = ("all", "hidden", "readout")


@dataclasses.dataclass(frozen=True)
class MLP(Layer):
  """A fully-connected network: frozen, hashable, usable as a static argument of `jax.jit`.

  It is the network ``serial(Dense(n₁), Activation(ρ₁), …, Dense(out_dim))`` of `ntk_lab.layers`
  (`network`), with the same params, outputs and kernels; `MLP` adds per-layer option tuples,
  layers that do not train and readout initialisations.

  Args:
    hidden: widths of the hidden layers, e.g. ``(512, 512)``; ``()`` is a linear model.
    out_dim: number of outputs O.
    activation: a name (``relu``, ``leaky_relu``, ``abs``, ``erf``, ``tanh``, ``sigmoid``,
      ``gelu``, ``softplus``, ``sin``, ``identity``), an `ntk_lab.Activation` (e.g. to set the
      leaky slope) or any elementwise callable; or one of those per hidden layer (a tuple of
      ``len(hidden)``), where ``"identity"`` makes two consecutive affine layers.
    parametrization: ``"ntk"`` or ``"standard"``, with the conventions of NT's ``stax.Dense``, or
      one per layer (a tuple of L, e.g. ``("standard", "ntk")``).
    W_std: weight scale σ_w ≥ 0, one number or one per layer (e.g. ``(math.sqrt(d), 1.0)`` for a
      first layer computing the unscaled w_rᵀx). σ_w = 0 is allowed: such a layer passes only its
      bias on (and, in NTK parametrization, its weights get no gradient).
    b_std: bias scale σ_b ≥ 0; ``None`` means no biases. One value per layer is allowed too, with
      ``None`` for a layer without bias, e.g. ``(0.1, None, 0.0)``.
    trainable: which layers train: ``"all"``, ``"hidden"`` (readout fixed), ``"readout"``, or one
      bool per layer. Frozen layers still compute; they only drop out of gradients and of the NTK.
    readout_init: ``"gaussian"`` (N(0, 1)), ``"rademacher"`` (±1) or ``"symmetric"`` (the last
      hidden layer's units come in identical pairs whose readout weights are ±c, so f(x; θ₀) = 0
      for every x, up to rounding, as in Chizat et al. 2019's doubling trick; readout bias starts
      at 0).

  Example:
    >>> import jax, ntk_lab as nl
    >>> net = nl.MLP((64, 64), out_dim=2, activation="erf", b_std=0.1)
    >>> params = net.init(jax.random.PRNGKey(0), 3)
    >>> net.apply(params, jax.numpy.ones((5, 3))).shape
    (5, 2)

    Per-layer values, as NT's ``stax.serial(Dense(…), Relu(), Dense(…), Dense(…))``:

    >>> mixed = nl.MLP((8, 8), activation=("relu", "identity"), b_std=(0.1, None, 0.0),
    ...                parametrization=("standard", "ntk", "ntk"), W_std=(1.0, 0.0, 2.0))
    >>> [sorted(p) for p in mixed.init(jax.random.PRNGKey(0), 3)]
    [['W', 'b'], ['W'], ['W', 'b']]
  """

  has_params = True

  hidden: tuple[int, ...] = ()
  out_dim: int = dataclasses.field(default=1, kw_only=True)
  activation: Any = dataclasses.field(default="relu", kw_only=True)
  parametrization: Any = dataclasses.field(default="ntk", kw_only=True)
  W_std: Any = dataclasses.field(default=1.0, kw_only=True)
  b_std: Any = dataclasses.field(default=0.0, kw_only=True)
  trainable: Any = dataclasses.field(default="all", kw_only=True)
  readout_init: str = dataclasses.field(default="gaussian", kw_only=True)

  def __post_init__(self):
    if isinstance(self.hidden, (int, str)) or not isinstance(self.hidden, Sequence):
      raise TypeError(f"hidden: expected a sequence of widths like (512, 512), got {self.hidden!r}.")
    hidden = tuple(_checks.positive_int(w, f"hidden[{i}]") for i, w in enumerate(self.hidden))
    object.__setattr__(self, "hidden", hidden)
    _checks.positive_int(self.out_dim, "out_dim")
    L = len(hidden) + 1
    if _is_per_layer(self.activation):
      acts = tuple(
        get_activation(a) for a in self._per_layer(self.activation, "activation", L - 1, "hidden layer")
      )
      object.__setattr__(self, "activation", acts)
    else:
      object.__setattr__(self, "activation", get_activation(self.activation))
    if _is_per_layer(self.parametrization):
      params = self._per_layer(self.parametrization, "parametrization", L)
      for i, p in enumerate(params):
        _checks.choice(p, f"parametrization[{i}]", PARAMETRIZATIONS)
      object.__setattr__(self, "parametrization", params)
    else:
      _checks.choice(self.parametrization, "parametrization", PARAMETRIZATIONS)
    if _is_per_layer(self.W_std):
      object.__setattr__(self, "W_std", self._per_layer(self.W_std, "W_std", L))
    # One number policy (`_checks.number`): NumPy scalars become floats, so the spec stays hashable.
    if isinstance(self.W_std, tuple):
      object.__setattr__(
        self,
        "W_std",
        tuple(_checks.nonnegative_number(w, f"W_std[{i}]", static=True) for i, w in enumerate(self.W_std)),
      )
    else:
      object.__setattr__(self, "W_std", _checks.nonnegative_number(self.W_std, "W_std", static=True))
    if _is_per_layer(self.b_std):
      object.__setattr__(self, "b_std", self._per_layer(self.b_std, "b_std", L))
    if isinstance(self.b_std, tuple):
      object.__setattr__(
        self,
        "b_std",
        tuple(
          None
          if b is None
          else _checks.nonnegative_number(b, f"b_std[{i}]", static=True, unit=", or None for no bias")
          for i, b in enumerate(self.b_std)
        ),
      )
    elif self.b_std is not None:
      object.__setattr__(
        self,
        "b_std",
        _checks.nonnegative_number(self.b_std, "b_std", static=True, unit=", or None for no biases"),
      )
    object.__setattr__(self, "trainable", self._normalise_trainable(self.trainable))
    _checks.choice(self.readout_init, "readout_init", READOUT_INITS)
    if self.readout_init == "symmetric" and (not hidden or hidden[-1] % 2):
      raise ValueError(
        "readout_init='symmetric' pairs the units of the last hidden layer, so it needs at least "
        f"one hidden layer of even width; got hidden={hidden}."
      )
    object.__setattr__(self, "_network", self._build_network())

  def _build_network(self):
    L, layers = self.n_layers, []
    for l, width in enumerate((*self.hidden, self.out_dim)):
      readout = l == L - 1
      layers.append(
        Dense(
          width,
          W_std=self.W_std_of(l),
          b_std=self.b_std_of(l),
          parameterization=self.parametrization_of(l),
          trainable=self.trainable[l],
          W_init="rademacher" if readout and self.readout_init != "gaussian" else "normal",
        )
      )
      if not readout:
        layers.append(ActivationLayer(self.activation_of(l)))
    return serial(*layers)

  @property
  def network(self):
    """The `ntk_lab.layers` network this MLP is: ``serial(Dense, Activation, …, Dense)``."""
    return self._network

  @staticmethod
  def _per_layer(values, name, n, what="layer") -> tuple:
    values = tuple(values)
    if len(values) != n:
      raise ValueError(
        f"{name}: needs one value per {what} ({n}), got {len(values)}; or pass a single value for every one."
      )
    return values

  def _normalise_trainable(self, trainable) -> tuple[bool, ...]:
    n = len(self.hidden) + 1
    if isinstance(trainable, str):
      _checks.choice(trainable, "trainable", _TRAINABLE_NAMES)
      mask = {
        "all": (True,) * n,
        "hidden": (True,) * (n - 1) + (False,),
        "readout": (False,) * (n - 1) + (True,),
      }[trainable]
    elif isinstance(trainable, Sequence) and all(isinstance(t, (bool, jnp.bool_)) for t in trainable):
      mask = tuple(bool(t) for t in trainable)
      if len(mask) != n:
        raise ValueError(f"trainable: needs one bool per layer ({n} layers), got {len(mask)}.")
    else:
      raise TypeError(f"trainable: expected 'all', 'hidden', 'readout' or {n} bools, got {trainable!r}.")
    if not any(mask):
      raise ValueError("trainable: no layer is trainable; the NTK and gradient flow would be zero.")
    return mask

  # ---------------------------------------------------------------- structure
  @property
  def n_layers(self) -> int:
    """L, the number of affine layers (hidden layers + readout)."""
    return len(self.hidden) + 1

  @property
  def has_bias(self) -> bool:
    """True if any layer has a bias (see `layer_has_bias`)."""
    return any(self.layer_has_bias(l) for l in range(self.n_layers))

  def layer_has_bias(self, layer: int) -> bool:
    """Whether layer `layer` (0-based) has a bias parameter b."""
    return self.b_std_of(layer) is not None

  def widths(self, in_dim: int) -> tuple[int, ...]:
    """(n₀, n₁, …, n_L) = (in_dim, *hidden, out_dim)."""
    return (in_dim, *self.hidden, self.out_dim)

  def W_std_of(self, layer: int) -> float:
    """σ_w of layer `layer` (0-based)."""
    return self.W_std[layer] if isinstance(self.W_std, tuple) else self.W_std

  def b_std_of(self, layer: int) -> float | None:
    """σ_b of layer `layer` (0-based); None when that layer has no bias."""
    return self.b_std[layer] if isinstance(self.b_std, tuple) else self.b_std

  def parametrization_of(self, layer: int) -> str:
    """``"ntk"`` or ``"standard"``: the parametrization of layer `layer` (0-based)."""
    p = self.parametrization
    return p[layer] if isinstance(p, tuple) else p

  def activation_of(self, layer: int) -> Activation:
    """ρ applied after hidden layer `layer` (0-based, < L − 1)."""
    return self.activation[layer] if isinstance(self.activation, tuple) else self.activation

  def layer_scales(self, layer: int, n_in: int) -> tuple[float, float]:
    """(a_l, β_l): the multipliers of h W and of b in layer `layer` (0-based) with fan-in n_in."""
    return self._dense(layer).scales(n_in)

  def _dense(self, layer: int) -> Dense:
    return self._network.layers[2 * layer]

  # ------------------------------------------------------------------ init/apply
  def init(self, key, in_dim: int, *, dtype=None) -> list[dict]:
    """Draws θ₀. Returns a list of L dicts {"W": (n_{l−1}, n_l)[, "b": (n_l,)]}."""
    in_dim = _checks.positive_int(in_dim, "in_dim")
    return self.init_params(key, (in_dim,), dtype or jnp.result_type(float))

  def init_params(self, key, in_shape, dtype):
    params = self._network.init_params(key, in_shape, dtype)
    return self._pair_units(params) if self.readout_init == "symmetric" else params

  def _pair_units(self, params):
    half = self.hidden[-1] // 2
    last, out = dict(params[-2]), dict(params[-1])
    last["W"] = jnp.concatenate([last["W"][:, :half]] * 2, axis=1)
    if "b" in last:
      last["b"] = jnp.concatenate([last["b"][:half]] * 2)
    out["W"] = jnp.concatenate([out["W"][:half], -out["W"][:half]], axis=0)
    if "b" in out:
      out["b"] = jnp.zeros_like(out["b"])
    return [*params[:-2], last, out]

  def output_shape_of(self, in_shape):
    return self._network.output_shape_of(in_shape)

  def apply(self, params, x):
    """f(x; θ), shape (N, out_dim), for inputs x of shape (N, in_dim)."""
    in_dim = self.check_params(params)
    x = _checks.as_inputs(x, "x", in_dim, finite=False)
    return self._network.apply(params, x)

  def kernel_rule(self, state, ctx):
    state = self._network.kernel_rule(state, ctx)
    if self.readout_init == "symmetric":  # f(x; θ₀) ≡ 0: no output variance, the NTK stays
      state = state.map_covariances(jnp.zeros_like)
    return state

  # Traversal: the network's, whose params layout is this MLP's (activations take no entry).
  def forward(self, params, x, taps):
    return self._network.forward(params, x, taps)

  def leaves(self):
    return self._network.leaves()

  def param_leaves(self):
    return self._network.param_leaves()

  def trainable_mask(self):
    return self._network.trainable_mask()

  def layer_params(self, params):
    return self._network.layer_params(params)

  def kernel(self, x1, x2=None, **options):
    """The infinite-width `Kernel(nngp, ntk)` of this network: ``ntk_lab.analytic_kernel(self,
    x1, x2, **options)``, with the same keyword options (get, W_std, b_std, tile_size, …)."""
    return analytic.analytic_kernel(self, x1, x2, **options)

  # --------------------------------------------------------------- validation
  def check_inputs(self, params, x1, x2=None):
    """(x1, x2) checked as (N, in_dim) inputs of these params."""
    return _checks.input_pair(x1, x2, self.check_params(params))

  def check_params(self, params, in_shape=None) -> int:
    """Checks that `params` fit this spec (works on tracers); returns in_dim."""
    if not isinstance(params, (list, tuple)) or len(params) != self.n_layers:
      got = (
        f"a {type(params).__name__} of length {len(params)}"
        if isinstance(params, (list, tuple))
        else type(params).__name__
      )
      raise ValueError(
        f"params: expected a list of {self.n_layers} layer dicts (from net.init), got {got}; "
        "were they made for another MLP spec?"
      )
    in_dim = prev_out = None
    for l, layer in enumerate(params):
      keys = {"W", "b"} if self.layer_has_bias(l) else {"W"}
      if not isinstance(layer, dict) or set(layer) != keys:
        found = sorted(layer) if isinstance(layer, dict) else type(layer).__name__
        raise ValueError(
          f"params[{l}]: expected a dict with keys {sorted(keys)} (b_std={self.b_std_of(l)}), got {found}; "
          "re-create the params with net.init for this spec."
        )
      W = layer["W"]
      if getattr(W, "ndim", None) != 2:
        raise ValueError(f"params[{l}]['W']: expected a 2-D array, got shape {getattr(W, 'shape', None)}.")
      n_in, n_out = W.shape
      expected_out = self.widths(0)[l + 1]
      if in_dim is None:
        in_dim = n_in
      elif n_in != prev_out:
        raise ValueError(f"params[{l}]['W']: has {n_in} input rows but layer {l - 1} has {prev_out} outputs.")
      if n_out != expected_out:
        raise ValueError(
          f"params[{l}]['W']: has {n_out} columns but the spec says width {expected_out}; "
          "re-create the params with net.init for this spec."
        )
      if "b" in layer and tuple(layer["b"].shape) != (n_out,):
        raise ValueError(f"params[{l}]['b']: expected shape ({n_out},), got {tuple(layer['b'].shape)}.")
      prev_out = n_out
    return in_dim

  # ------------------------------------------------------------- trainable split
  def split(self, params):
    """(trainable, frozen): two trees shaped like `params`, None where a leaf is in the other."""
    return split_trainable(self, params)

  @staticmethod
  def merge(trainable, frozen):
    """Inverse of `split`."""
    return eqx.combine(trainable, frozen)


def _is_per_layer(value) -> bool:
  return isinstance(value, Sequence) and not isinstance(value, str)

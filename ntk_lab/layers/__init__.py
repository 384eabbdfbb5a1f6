"""Layers that carry their own rules, and the networks built from them (NT's ``stax`` names).

Every layer is a frozen spec with ``init``/``apply`` over plain pytrees, its infinite-width kernel
rule, and — where it has params and a fast form — its own term of the empirical NTK (`base`).
Networks are layers too: `serial`, `parallel`, `FanOut`, `FanInSum`, `Identity`.

Example (an NT user changes ``from neural_tangents import stax`` to this):
  >>> import jax, jax.numpy as jnp, ntk_lab as nl
  >>> from ntk_lab.layers import Dense, Relu, serial
  >>> net = serial(Dense(512, W_std=1.5, b_std=0.05), Relu(), Dense(1, W_std=1.5, b_std=0.05))
  >>> x = jax.random.normal(jax.random.PRNGKey(1), (4, 3))
  >>> params = net.init(jax.random.PRNGKey(0), 3)
  >>> nl.empirical_ntk(net, params, x).shape, nl.analytic_kernel(net, x).ntk.shape
  ((4, 4), (4, 4))
"""

from ntk_lab.layers.base import KernelState, Layer, RuleContext
from ntk_lab.layers.combinators import FanInSum, FanOut, Identity, Parallel, Serial, parallel, serial
from ntk_lab.layers.conv import AvgPool, Conv, Flatten, GlobalAvgPool
from ntk_lab.layers.dense import Dense
from ntk_lab.layers.elementwise import (
  ABRelu,
  Abs,
  Activation,
  Cos,
  Erf,
  Exp,
  Gaussian,
  Gelu,
  LeakyRelu,
  Monomial,
  Polynomial,
  Rbf,
  RectifiedMonomial,
  Relu,
  Sign,
  Sin,
)
from ntk_lab.layers.normalization import LayerNorm

__all__ = [
  "AvgPool",
  "Conv",
  "Flatten",
  "GlobalAvgPool",
  "LayerNorm",
  "ABRelu",
  "Abs",
  "Activation",
  "Cos",
  "Dense",
  "Erf",
  "Exp",
  "FanInSum",
  "FanOut",
  "Gaussian",
  "Gelu",
  "Identity",
  "KernelState",
  "Layer",
  "LeakyRelu",
  "Monomial",
  "Parallel",
  "Polynomial",
  "Rbf",
  "RectifiedMonomial",
  "Relu",
  "RuleContext",
  "Serial",
  "Sign",
  "Sin",
  "parallel",
  "serial",
]

"""Concentration of the finite-width two-layer kernel around its infinite-width limit.

For a two-layer net with first-layer weights w_k ~ N(0, s²I), the derivative kernel
K(x, x') = E_w[xᵀx' σ'(wᵀx) σ'(wᵀx')] is estimated at width m by
K^(m)(x, x') = (1/m) Σ_k xᵀx' σ'(w_kᵀx) σ'(w_kᵀx'). Its summands lie in [−|xᵀx'|L², |xᵀx'|L²] when
|σ'| ≤ L, so Hoeffding's inequality bounds P(|K − K^(m)| > t) by 2 exp(−t²m / (2|xᵀx'|²L⁴)) (Du et
al. 2019, "Gradient descent provably optimizes over-parameterized neural networks", Lemma 3.1 uses
the same argument). `deviations` draws K^(m) many times; `tail_check` compares the empirical tails
with a bound, with a Clopper–Pearson confidence limit so that a violation is significant.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ntk_lab.activations import get_activation
from ntk_lab.two_layer import h_infinity

__all__ = ["TAUS", "deviations", "lipschitz_derivative", "tail_check"]

TAUS = np.linspace(0.02, 4.0, 100)


def lipschitz_derivative(act) -> float:
  """L = sup |σ'| estimated on a fine grid of [−30, 30] (exact at the maximisers of the usual
  activations: 0 for erf, tanh, sigmoid, sin)."""
  z = jnp.linspace(-30.0, 30.0, 600_001)
  return float(jnp.max(jnp.abs(jax.vmap(jax.grad(act))(z))))


def deviations(act, x, m, key, *, draws, first_layer_std=1.0, kernel=None, batch=64):
  """|K − K^(m)| on every entry, and ‖H − H^(m)‖ (spectral, Frobenius), over `draws` draws.

  Returns {"entries": (draws, n, n), "op": (draws,), "fro": (draws,)} as numpy arrays; `kernel`
  is the exact H (n, n) (computed with `h_infinity` when None).
  """
  act = get_activation(act)  # a name, an Activation or a callable
  h = (
    h_infinity(x, activation=act, first_layer_std=first_layer_std) if kernel is None else jnp.asarray(kernel)
  )
  gram = x @ x.T
  dsigma = jax.vmap(jax.grad(act))

  def one(k):
    w = first_layer_std * jax.random.normal(k, (m, x.shape[1]), x.dtype)
    phi = dsigma((x @ w.T).ravel()).reshape(x.shape[0], m)
    diff = h - gram * (phi @ phi.T) / m
    return jnp.abs(diff), jnp.linalg.norm(diff, 2), jnp.linalg.norm(diff)

  entries, op, fro = jax.jit(lambda ks: jax.lax.map(one, ks, batch_size=batch))(jax.random.split(key, draws))
  return {"entries": np.asarray(entries), "op": np.asarray(op), "fro": np.asarray(fro)}


def tail_check(samples, scale, bound, *, level=0.05):
  """Empirical tail P̂(X > τ·scale) on `TAUS` against bound(τ) (an array over TAUS), with the
  Clopper–Pearson lower limit at level/len(TAUS). Returns (tail, largest tail/bound ratio over
  τ, largest excess of the lower limit over the bound (> 0: a significant violation), its τ)."""
  r = len(samples)
  k = np.array([(samples > tau * scale).sum() for tau in TAUS])
  from scipy import stats  # imported when used: it takes seconds

  lower = np.where(k > 0, stats.beta.ppf(level / len(TAUS), np.maximum(k, 1), r - k + 1), 0.0)
  excess = lower - bound
  i = int(np.argmax(excess))
  return k / r, float(np.max(k / r / bound)), float(excess[i]), float(TAUS[i])

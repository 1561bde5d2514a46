"""Baselines the annealer is measured against, on the same data in the same run.

* ``matching_pursuit``: forward greedy selection over the integer lattice --
  every atom with 1..3 non-zero exponents in {+-1, +-2} -- adding at each step
  the atom most correlated with the residual, refitting all coefficients by
  least squares, stopping when the same extended BIC as the annealer stops
  falling or at ``max_atoms`` (the recovery suite passes the true K).  The
  obvious sparse method the annealer must beat; prototypes found it picks
  blend atoms from K >= 2.
* ``mlp_baseline``: scikit-learn's MLPRegressor with the library's default
  architecture (one hidden layer of 100 ReLU units, adam) on inputs and
  targets standardised to mean 0 / sd 1 (what a careful user does), trained
  up to 500 epochs with a tighter tolerance than the default (200, 1e-4) so
  that it is not stopped early: the generic dense model of equal
  input/output, used as a competent user would use it.

Scoring the whole lattice without storing it.  With P = [1, x_j^e for every
input j and e in {-2,-1,1,2}] (G = 4d + 1 columns) every lattice atom with at
most 3 non-zero exponents is a product P_a P_b P_c (a <= b <= c, the constant
column filling unused slots).  So the correlation of *all* atoms with a
residual r is one tensor contraction T_r[a,b,c] = sum_n r_n P_na P_nb P_nc,
about G^3 N / 2 flops (1.8 GFLOP at d = 30): fast, and no 266,920-column
dictionary held in memory.  The atom norms come from the same contraction of
P^2 with r = 1.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .problems import NONZERO_EXPONENTS, monomials, relative_rmse


# -- the lattice -----------------------------------------------------------------

def _column_vars(d: int) -> np.ndarray:
    """Input index of each column of P (-1 for the constant column)."""
    return np.concatenate([[-1], np.repeat(np.arange(d), len(NONZERO_EXPONENTS))])


@lru_cache(maxsize=8)
def lattice_triples(d: int, max_nonzero: int = 3) -> np.ndarray:
    """(M, 3) column triples a <= b <= c of P naming every atom of the lattice once.

    M = 4d + 16 C(d,2) + 64 C(d,3) for max_nonzero = 3 (266,920 at d = 30).
    """
    if max_nonzero not in (1, 2, 3):
        raise ValueError("max_nonzero must be 1, 2 or 3")
    G = 4 * d + 1
    var = _column_vars(d)
    cols = np.arange(1, G)
    out = [np.stack([np.zeros_like(cols), np.zeros_like(cols), cols], axis=1)]
    if max_nonzero >= 2:
        b, c = np.triu_indices(G - 1, k=1)
        b, c = b + 1, c + 1
        keep = var[b] != var[c]
        out.append(np.stack([np.zeros(keep.sum(), int), b[keep], c[keep]], axis=1))
    if max_nonzero >= 3 and d >= 3:
        for a in range(1, G):
            b, c = np.triu_indices(G - 1 - a, k=1)
            b, c = b + a + 1, c + a + 1
            keep = (var[b] != var[c]) & (var[a] != var[b]) & (var[a] != var[c])
            out.append(np.stack([np.full(keep.sum(), a), b[keep], c[keep]], axis=1))
    return np.concatenate(out).astype(np.int64)


def triple_to_exponents(triple, d: int) -> np.ndarray:
    """The exponent vector (d,) of the atom named by a column triple."""
    w = np.zeros(d, dtype=np.int64)
    for col in triple:
        if col > 0:
            j, t = divmod(int(col) - 1, len(NONZERO_EXPONENTS))
            w[j] = NONZERO_EXPONENTS[t]
    return w


def power_columns(X) -> np.ndarray:
    """P (N, 4d+1): a column of ones, then x_j^e for e in (-2, -1, 1, 2) per input."""
    X = np.asarray(X, dtype=np.float64)
    N, d = X.shape
    P = np.empty((N, 4 * d + 1))
    P[:, 0] = 1.0
    for t, e in enumerate(NONZERO_EXPONENTS):
        P[:, 1 + t::len(NONZERO_EXPONENTS)] = X ** e
    return P


def contract(P, weights, triples) -> np.ndarray:
    """sum_n weights_n P_na P_nb P_nc for every triple (a, b, c) with a <= b <= c."""
    G = P.shape[1]
    T = np.zeros((G, G, G))
    Pw = P * weights[:, None]
    for a in np.unique(triples[:, 0]):
        left = Pw[:, a:a + 1] * P[:, a:]          # (N, G - a): columns b >= a
        T[a, a:, :] = left.T @ P
    return T[triples[:, 0], triples[:, 1], triples[:, 2]]


# -- matching pursuit -------------------------------------------------------------

@dataclass
class SparseFit:
    """A sum of monomials plus an intercept, as found by a baseline."""
    exponents: np.ndarray       # (K, d) int
    coefficients: np.ndarray    # (K,)
    intercept: float

    def predict(self, X) -> np.ndarray:
        if self.exponents.shape[0] == 0:
            return np.full(np.asarray(X).shape[0], self.intercept)
        return self.intercept + monomials(X, self.exponents) @ self.coefficients

    def atom_set(self) -> set:
        return {tuple(int(v) for v in w) for w in self.exponents}

    @property
    def k_star(self) -> int:
        return self.exponents.shape[0]


def extended_bic(rss: float, n: int, levels, d: int, floor: float) -> float:
    """The annealer's energy: n log(max(RSS/n, floor)) + sum_k (log n + 2 log p(m_k)).

    ``levels`` are the atoms' numbers of non-zero exponents m_k; p(m) is the
    number of lattice atoms with exactly m of them (``pool.energy``).
    """
    from ..pool.energy import level_size
    return n * math.log(max(rss / n, floor)) + sum(
        math.log(n) + 2.0 * math.log(max(level_size(d, m), 2)) for m in levels)


def _refit(X, y, W):
    """Least squares of y on [1, monomials(W)] -> (intercept, coefficients, rss)."""
    A = np.hstack([np.ones((X.shape[0], 1)), monomials(X, W)]) if len(W) else np.ones((X.shape[0], 1))
    sol, *_ = np.linalg.lstsq(A, y, rcond=None)
    r = y - A @ sol
    return float(sol[0]), sol[1:], float(r @ r), r


def matching_pursuit(X, y, max_atoms: int, max_nonzero: int = 3) -> SparseFit:
    """Forward greedy lattice matching pursuit with extended-BIC stopping (module docstring)."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    N, d = X.shape
    triples = lattice_triples(d, max_nonzero)
    level = (triples > 0).sum(axis=1)             # non-zero exponents of each atom
    P = power_columns(X)
    sums = contract(P, np.ones(N), triples)
    sq = contract(P * P, np.ones(N), triples)
    norms = np.sqrt(np.maximum(sq - sums * sums / N, 1e-300))
    floor = (1e-7 * math.sqrt(float(np.mean(y * y)))) ** 2
    chosen = []
    b, coef, rss, r = _refit(X, y, np.zeros((0, d)))
    energy = extended_bic(rss, N, [], d, floor)
    while len(chosen) < max_atoms:
        score = np.abs(contract(P, r, triples)) / norms
        score[chosen] = -1.0
        best = int(np.argmax(score))
        trial = chosen + [best]
        W = np.array([triple_to_exponents(triples[i], d) for i in trial])
        b2, coef2, rss2, r2 = _refit(X, y, W)
        e2 = extended_bic(rss2, N, [int(level[i]) for i in trial], d, floor)
        if e2 >= energy:
            break
        chosen, b, coef, rss, r, energy = trial, b2, coef2, rss2, r2, e2
    W = np.array([triple_to_exponents(triples[i], d) for i in chosen], dtype=np.int64).reshape(-1, d)
    return SparseFit(W, np.asarray(coef, dtype=np.float64), b)


def run_matching_pursuit(problem, max_atoms: int) -> dict:
    """Fit, time and score the matching-pursuit baseline on one problem."""
    t0 = time.perf_counter()
    fit = matching_pursuit(problem.X, problem.Y, max_atoms)
    seconds = time.perf_counter() - t0
    return {
        "exact": bool(fit.atom_set() == problem.atom_set() and fit.k_star == problem.K),
        "k_star": fit.k_star,
        "test_rel_rmse": relative_rmse(problem.Y_test, fit.predict(problem.X_test)),
        "seconds": seconds,
        "atoms": sorted(list(a) for a in fit.atom_set()),
    }


# -- dense MLP ----------------------------------------------------------------------

MLP_HIDDEN = (100,)           # MLPRegressor()'s default hidden_layer_sizes


def mlp_baseline(problem, hidden=MLP_HIDDEN, seed: int = 0, max_iter: int = 500) -> dict:
    """sklearn MLPRegressor (adam, relu) on standardised inputs/targets; error, size, time.

    ``params`` counts the network's weights and biases; ``scaler_params`` the
    2 d + 2 numbers of the input and target standardisation it needs at
    inference (reported apart, as the annealer's channel map is).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    t0 = time.perf_counter()
    X = np.asarray(problem.X, dtype=np.float64)
    y = np.asarray(problem.Y, dtype=np.float64).reshape(-1)
    mx, sx = X.mean(axis=0), X.std(axis=0)
    sx = np.where(sx > 0, sx, 1.0)
    my, sy = float(y.mean()), float(y.std()) or 1.0
    net = MLPRegressor(hidden_layer_sizes=tuple(hidden), max_iter=max_iter, random_state=seed,
                       tol=1e-6, n_iter_no_change=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        net.fit((X - mx) / sx, (y - my) / sy)
    seconds = time.perf_counter() - t0
    pred = net.predict((np.asarray(problem.X_test) - mx) / sx) * sy + my
    params = sum(w.size for w in net.coefs_) + sum(b.size for b in net.intercepts_)
    return {"test_rel_rmse": relative_rmse(problem.Y_test, pred), "params": int(params),
            "scaler_params": int(2 * X.shape[1] + 2), "seconds": seconds, "hidden": list(hidden), "iterations": int(net.n_iter_)}

"""The energy of a pool state and exact least-squares refits.

A state is a set of atoms, each an exponent vector ``w`` on the integer
lattice.  Its energy is an extended BIC of the exact least-squares fit of
``y = b + sum_k a_k * prod_j x_j ** w_kj`` (readouts ``a_k`` and bias ``b``
solved exactly, one readout per output), with the choice of each atom priced
within its own complexity level::

    E = sum_o n log(max(RSS_o / n, floor_o)) + sum_k (d_out log n + 2 log p(m_k))

``m_k`` is the number of non-zero exponents of atom k and ``p(m)`` the number
of lattice atoms with exactly m non-zero exponents in {-2,-1,1,2}:
``C(d, m) 4^m`` (12 / 48 / 64 at d = 3; 120 / 6,960 / 259,840 at d = 30).
An atom is one choice among the atoms as complex as itself, not among the
whole dictionary: the one-exponent atoms are few, so the noise can fake one
of them far less easily than one of the quarter million three-exponent atoms
(the largest spurious gain of a level grows like 2 log p(m)).  Pricing every
atom at the whole dictionary's size (the prototype's EBIC) overcharged the
simple atoms and lost true ones at 1 % noise; see docs/annealing.md.  Drift
can carry an atom beyond three exponents; it pays for its own, larger level
(otherwise a nine-variable "spike" that fits a few noisy rows is cheap).
``floor_o = (1e-7 RMS(y_o))**2``: without the floor, round-off at noise 0
buys spurious atoms.  Per output the first term is the Gaussian
log-likelihood with its variance profiled out; an atom pays ``log n`` per
readout and ``2 log p(m)`` for the choice of its exponents.

Every number here is an exact refit: Householder QR of the atoms' centred,
unit-norm columns (centring = fitting the bias), and rank-one updates with
re-orthogonalised candidates to score many one-atom changes at once.
"""
from __future__ import annotations

import math

import numpy as np

RSS_FLOOR_REL = 1e-7       # floor on RMS(residual) / RMS(y)
DEGENERATE = 1e-9          # a column this close to the span of the others adds nothing
TIGHT = 1e-9               # below this fraction of the base RSS, recompute without cancellation
_CACHE_LIMIT = 2000           # cached atom columns (each N floats)


def level_size(d: int, m: int) -> int:
    """Number of atoms with exactly m non-zero exponents in {-2,-1,1,2} among d inputs."""
    return int(math.comb(d, m) * 4 ** m) if 0 <= m <= d else 0


def n_candidates(d: int, max_nonzero: int = 3) -> int:
    """Number of atoms with 1..max_nonzero exponents in {-2,-1,1,2} among d inputs."""
    return int(sum(math.comb(d, m) * 4 ** m for m in range(1, min(max_nonzero, d) + 1)))


class Basis:
    """Orthonormal basis of a set of centred unit columns and the residual of Y on it."""

    __slots__ = ("Q", "R", "resid", "rss", "ok", "m")

    def __init__(self, cols, Yc):
        self.m = len(cols)
        if self.m == 0:
            self.Q = np.zeros((Yc.shape[0], 0))
            self.R = np.zeros((0, 0))
            self.resid = Yc
            self.ok = True
        else:
            A = np.column_stack(cols)
            self.Q, self.R = np.linalg.qr(A)
            self.ok = bool(np.min(np.abs(np.diag(self.R))) > DEGENERATE)
            self.resid = Yc - self.Q @ (self.Q.T @ Yc)
        self.rss = np.einsum("ij,ij->j", self.resid, self.resid)

    def removal_rss(self, Yc) -> np.ndarray:
        """RSS (K, d_out) after removing each column in turn (exact downdate)."""
        if self.m == 0:
            return np.zeros((0, Yc.shape[1]))
        Rinv = np.linalg.solve(self.R, np.eye(self.m))
        beta = Rinv @ (self.Q.T @ Yc)                 # coefficients on the unit columns
        s = np.einsum("ij,ij->i", Rinv, Rinv)          # diag((A^T A)^-1)
        return self.rss[None, :] + beta ** 2 / s[:, None]


class Design:
    """Training rows in the form the pool works on, plus the energy function.

    ``L = log x`` (N, d) of the channel-mapped inputs, ``Y`` (N, d_out).
    """

    def __init__(self, L, Y, p=None):
        self.L = np.ascontiguousarray(L, dtype=np.float64)
        Y = np.asarray(Y, dtype=np.float64)
        self.Y = Y.reshape(Y.shape[0], -1)
        self.n, self.d = self.L.shape
        self.d_out = self.Y.shape[1]
        self.Yc = self.Y - self.Y.mean(axis=0)
        rms = np.sqrt(np.mean(self.Y ** 2, axis=0))
        self.rms = rms
        self.floor = np.maximum((RSS_FLOOR_REL * rms) ** 2, 1e-300)
        self.p = n_candidates(self.d) if p is None else int(p)
        # per-atom cost by number of non-zero exponents m: d_out log n for the readouts
        # plus 2 log(number of lattice atoms with exactly m non-zero exponents)
        self.level_penalty = np.array(
            [self.d_out * math.log(self.n) + 2.0 * math.log(max(level_size(self.d, m), 2))
             for m in range(self.d + 1)])
        # x and 1/x scaled to max 1: neighbour columns are phi_w * x_j**(+-1)
        lx = self.L - self.L.max(axis=0)
        lm = -self.L - (-self.L).max(axis=0)
        self.XPT = np.ascontiguousarray(np.exp(np.concatenate([lx, lm], axis=1)).T)  # (2d, N)
        self.XPT2 = self.XPT * self.XPT
        self.LT = np.ascontiguousarray(self.L.T)
        self._ws = np.empty((64, self.n))
        self._raw = {}
        self._col = {}

    # -- energy -------------------------------------------------------------
    def fit_term(self, rss) -> np.ndarray:
        """sum_o n log(max(RSS_o / n, floor_o)) for RSS of shape (..., d_out)."""
        rss = np.asarray(rss, dtype=np.float64)
        return self.n * np.log(np.maximum(rss / self.n, self.floor)).sum(axis=-1)

    def atom_penalty(self, w) -> float:
        """Complexity cost of one atom: d_out log n + 2 log(#atoms with as many exponents as w)."""
        return float(self.level_penalty[sum(1 for v in w if v)])

    def penalty_of(self, atoms) -> float:
        return float(sum(self.atom_penalty(w) for w in atoms))

    def energy_from_rss(self, rss, pen) -> np.ndarray:
        """Energy for RSS of shape (..., d_out) plus the atoms' total penalty ``pen``."""
        return self.fit_term(rss) + np.asarray(pen)

    def loss_from_rss(self, rss) -> float:
        """Relative RMSE of the fit: sqrt(mean_o RSS_o / (n RMS(y_o)^2))."""
        denom = self.n * np.maximum(self.rms ** 2, 1e-300)
        return float(math.sqrt(float(np.mean(np.asarray(rss) / denom))))

    # -- columns ------------------------------------------------------------
    def raw(self, w) -> np.ndarray:
        """phi_w = prod x_j ** w_j scaled to max 1 (cached)."""
        key = tuple(w)
        v = self._raw.get(key)
        if v is None:
            wa = np.asarray(key, dtype=np.float64)
            nz = np.flatnonzero(wa)
            z = self.L[:, nz] @ wa[nz]
            v = np.exp(z - z.max())
            if len(self._raw) > _CACHE_LIMIT:
                self._raw.clear()
            self._raw[key] = v
        return v

    def column(self, w):
        """Centred unit column of atom w, or None if it is constant on the data."""
        key = tuple(w)
        if key in self._col:
            return self._col[key]
        c = _normalise(self.raw(key)[None, :])[0]
        c = None if not np.all(np.isfinite(c)) or not np.any(c) else c
        if len(self._col) > _CACHE_LIMIT:
            self._col.clear()
        self._col[key] = c
        return c

    def workspace(self, c) -> np.ndarray:
        """A reusable (c, N) buffer for candidate rows (valid until the next call).

        Reusing one buffer instead of allocating megabyte temporaries keeps
        the allocator from returning memory to the OS and page-faulting it
        back on every step, which otherwise costs more than the arithmetic.
        """
        if self._ws.shape[0] < c:
            self._ws = np.empty((max(c, 2 * self._ws.shape[0]), self.n))
        return self._ws[:c]

    def raw_rows(self, atoms) -> np.ndarray:
        """(c, N) raw columns (each scaled to max 1) for a list of atoms, as rows."""
        if not atoms:
            return np.zeros((0, self.n))
        W = np.asarray(atoms, dtype=np.float64)
        Z = self.workspace(W.shape[0])
        np.matmul(W, self.LT, out=Z)
        Z -= Z.max(axis=1, keepdims=True)
        return np.exp(Z, out=Z)

    def basis(self, atoms) -> Basis:
        cols = []
        for w in atoms:
            c = self.column(w)
            if c is None:
                b = Basis([], self.Yc)
                b.ok = False
                return b
            cols.append(c)
        return Basis(cols, self.Yc)

    def state_energy(self, atoms):
        """(energy, rss, basis) of a set of atoms; energy is inf if degenerate."""
        b = self.basis(atoms)
        if not b.ok:
            return math.inf, b.rss, b
        return float(self.energy_from_rss(b.rss, self.penalty_of(atoms))), b.rss, b

    def candidate_rss(self, basis: Basis, GT) -> tuple:
        """RSS (c, d_out) of basis + one candidate, for each raw candidate row of GT (c, N).

        Returns (rss, valid): invalid where a candidate lies in the span of the
        basis or is constant.  The bias is implicit: Q and the residual are
        centred, so only the centred part of a candidate matters.
        """
        c = GT.shape[0]
        if c == 0:
            return np.zeros((0, self.d_out)), np.zeros(0, bool)
        r = basis.resid
        s1 = GT.sum(axis=1)
        s2 = np.einsum("ij,ij->i", GT, GT)
        var = s2 - s1 * s1 / self.n                    # ||g - mean g||^2
        num = GT @ r                                    # (c, d_out) = g_c . r
        n2 = var
        if basis.m:
            QG = GT @ basis.Q                           # (c, m)
            n2 = var - np.einsum("ij,ij->i", QG, QG)
        valid = (n2 > DEGENERATE ** 2 * var) & (n2 > 1e-13 * s2) & (var > 0)
        n2s = np.where(valid, n2, 1.0)
        rss = basis.rss[None, :] - num ** 2 / n2s[:, None]
        # where the new RSS is small, cancellation matters: recompute it properly
        tight = valid[:, None] & (rss < TIGHT * basis.rss[None, :])
        if np.any(tight):
            for t in np.flatnonzero(tight.any(axis=1)):
                rss[t] = self._precise_rss(basis, GT[t])
        rss = np.maximum(rss, 0.0)
        return rss, valid

    def neighbour_rss(self, basis: Basis, w) -> tuple:
        """RSS (2d, d_out) of basis + (w + s e_j) for every single-exponent move.

        Move t is j = t % d with s = +1 for t < d and s = -1 otherwise (range
        and duplicates are the caller's business).  The candidates' columns are
        phi_w * x_j**s, so every statistic the rank-one update needs is one
        product of the fixed (2d, N) matrix of x_j**(+-1) with phi_w-weighted
        vectors -- no candidate column is ever built unless its RSS is so small
        that it must be recomputed without cancellation.
        """
        phi = self.raw(w)
        m, d_out = basis.m, self.d_out
        V = np.empty((self.n, 1 + d_out + m))
        V[:, 0] = phi
        np.multiply(basis.resid, phi[:, None], out=V[:, 1:1 + d_out])
        if m:
            np.multiply(basis.Q, phi[:, None], out=V[:, 1 + d_out:])
        S = self.XPT @ V
        s1 = S[:, 0]
        num = S[:, 1:1 + d_out]
        s2 = self.XPT2 @ (phi * phi)
        var = s2 - s1 * s1 / self.n
        n2 = var - np.einsum("ij,ij->i", S[:, 1 + d_out:], S[:, 1 + d_out:]) if m else var
        valid = (n2 > DEGENERATE ** 2 * var) & (n2 > 1e-13 * s2) & (var > 0)
        n2s = np.where(valid, n2, 1.0)
        rss = basis.rss[None, :] - num ** 2 / n2s[:, None]
        tight = valid[:, None] & (rss < TIGHT * basis.rss[None, :])
        if np.any(tight):
            for t in np.flatnonzero(tight.any(axis=1)):
                rss[t] = self._precise_rss(basis, self.XPT[t] * phi)
        return np.maximum(rss, 0.0), valid

    def _precise_rss(self, basis, g):
        g = g - g.mean()
        g = g / np.sqrt(g @ g)
        Q = basis.Q
        if basis.m:
            g = g - Q @ (Q.T @ g)
            g = g - Q @ (Q.T @ g)                      # twice is enough (CGS2)
        n2 = g @ g
        r = basis.resid
        coef = (g @ r) / n2
        res = r - g[:, None] * coef[None, :]
        return np.einsum("ij,ij->j", res, res)


def _normalise(P) -> np.ndarray:
    """Centre and scale rows to unit norm; constant rows become zero."""
    P = P - P.mean(axis=1, keepdims=True)
    nrm = np.sqrt(np.einsum("ij,ij->i", P, P))
    scale = np.max(np.abs(P), axis=1) if P.shape[1] else nrm
    bad = ~(nrm > 1e-12 * np.maximum(scale, 1e-300) * math.sqrt(max(P.shape[1], 1)))
    nrm = np.where(bad, 1.0, nrm)
    P = P / nrm[:, None]
    if np.any(bad):
        P[bad] = 0.0
    return P

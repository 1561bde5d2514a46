"""The candidate-atom dictionary and orthogonal-least-squares (OLS) scoring.

Nucleation needs to know where in the lattice a new atom would lower the
energy most.  The dictionary holds every atom with 1..3 non-zero exponents in
{-2,-1,1,2} (124 at d = 3, 8,440 at d = 10, 266,920 at d = 30) as centred unit
float32 vectors on a seeded subsample of the rows.  The OLS score of a
candidate g against the current atoms (orthonormal basis Q, residual r) is the
RSS it would remove:  (g.r)^2 / ||g - Q Q^T g||^2  -- unlike plain
correlation with the residual, it does not favour "blend" atoms that mostly
repeat what the existing atoms already explain.

Levels.  A weak atom is only seen on enough rows, and the simple atoms are
few: when everything fits the budget (``BUDGET`` float32 entries, ~176 MB)
on up to 1,024 rows, one level holds all atoms; otherwise (d = 30) the atoms
with 1-2 non-zero exponents keep up to 1,024 rows and the three-exponent
atoms get what is left of the budget (>= 128 rows; below that they are
dropped -- drift still reaches them).  A shortlist takes the best of every
level; the caller refits each candidate exactly on all rows.
"""
from __future__ import annotations

from itertools import combinations, product

import numpy as np

BUDGET = 44_000_000          # float32 entries (~176 MB)
MIN_ROWS = 128
MAX_ROWS = 1024
CHUNK = 8192
PREFILTER = 2048
PREFILTER_MIN = 256
PREFILTER_DIRECTIONS = 4
ROWWISE_MIN_ROWS = 512       # levels on this many rows store one row per atom (see Level)


def lattice_atoms(d: int, max_nonzero: int, min_nonzero: int = 1) -> np.ndarray:
    """(P, d) int8: every exponent vector with min..max non-zero entries in {-2,-1,1,2}."""
    blocks = []
    vals = np.array([-2, -1, 1, 2], dtype=np.int8)
    for m in range(max(min_nonzero, 1), min(max_nonzero, d) + 1):
        combos = np.array(list(combinations(range(d), m)), dtype=np.int64)      # (C, m)
        signs = np.array(list(product(range(4), repeat=m)), dtype=np.int64)      # (4^m, m)
        W = np.zeros((combos.shape[0] * signs.shape[0], d), dtype=np.int8)
        rows = np.repeat(np.arange(combos.shape[0]), signs.shape[0])
        sel = np.tile(signs, (combos.shape[0], 1))
        for t in range(m):
            W[np.arange(W.shape[0]), combos[rows, t]] = vals[sel[:, t]]
        blocks.append(W)
    return np.concatenate(blocks, axis=0) if blocks else np.zeros((0, d), np.int8)


def plan(n_rows: int, d: int):
    """Levels [(min_nonzero, max_nonzero, rows)] that fit the budget."""
    from .energy import n_candidates
    top = min(3, d)
    rows = min(n_rows, MAX_ROWS)
    if n_candidates(d, top) * rows <= BUDGET:
        return [(1, top, rows)]
    p2 = n_candidates(d, 2)
    r2 = int(max(min(rows, BUDGET // max(p2, 1)), min(MIN_ROWS, n_rows)))
    levels = [(1, 2, r2)]
    p3 = n_candidates(d, 3) - p2
    r3 = int(min(n_rows, MAX_ROWS // 2, max(BUDGET - p2 * r2, 0) // max(p3, 1)))
    if r3 >= min(MIN_ROWS, n_rows):
        levels.append((3, 3, r3))
    return levels


class Dictionary:
    """All levels; ``score`` merges their shortlists."""

    def __init__(self, L, Y, levels, rng):
        n = np.asarray(L).shape[0]
        perm = rng.permutation(n)
        self.levels = [Level(L, Y, np.sort(perm[:rows]), lo, hi) for lo, hi, rows in levels]

    @property
    def size(self) -> int:
        return int(sum(lv.size for lv in self.levels))

    @property
    def rows(self) -> list:
        return [int(lv.rows.size) for lv in self.levels]

    def describe(self) -> list:
        return [{"nonzero": [lv.min_nonzero, lv.max_nonzero], "atoms": lv.size,
                 "rows": int(lv.rows.size)} for lv in self.levels]

    def score(self, atoms, top=32, exclude=()):
        """The ``top`` candidates: an equal share from every level, best first."""
        if len(self.levels) == 1:
            return [t for t, _ in self.levels[0].score(atoms, top, exclude)]
        share = -(-top // len(self.levels))
        merged = []
        for rank, lv in enumerate(self.levels):
            merged.extend((g, rank, i, t) for i, (t, g) in enumerate(lv.score(atoms, share,
                                                                                  exclude)))
        merged.sort(key=lambda r: (r[0], r[1], r[2]))
        return [t for _, _, _, t in merged[:top]]


class Level:
    """Candidate atoms with min..max non-zero exponents on subsample ``rows``.

    Layout: a scoring pass reads every atom's vector once, and the shortlist
    then gathers a few hundred of them.  On long vectors (>= ``ROWWISE_MIN_ROWS``
    rows: d <= ~20) the atoms are stored as rows (P, M), so the gather takes
    whole rows -- out of an (M, P) array it touches a cache line per entry and
    cost as much as the pass.  On short vectors (the three-exponent level at
    d = 30, ~140 rows) the pass over an (M, P) array is twice as fast as over
    (P, M) and the gather is cheap, so they stay columns.  Same numbers either
    way, up to float32 summation order.
    """

    def __init__(self, L, Y, rows, min_nonzero=1, max_nonzero=3):
        self.rows = np.asarray(rows)
        Ls = np.asarray(L, dtype=np.float64)[self.rows]
        self.Ls = Ls
        self.d = Ls.shape[1]
        Ys = np.asarray(Y, dtype=np.float64).reshape(len(L), -1)[self.rows]
        self.Yc = Ys - Ys.mean(axis=0)
        self.min_nonzero = min_nonzero
        self.atoms = lattice_atoms(self.d, max_nonzero, min_nonzero)
        self.max_nonzero = max_nonzero
        M = Ls.shape[0]
        # unit powers, as rows: row e*d + j of UT is x_j ** e scaled to RMS 1; the last row is 1
        powers = []
        for e in (-2, -1, 1, 2):
            z = e * Ls.T
            z = z - z.max(axis=1, keepdims=True)
            u = np.exp(z)
            u /= np.sqrt(np.mean(u * u, axis=1, keepdims=True))
            powers.append(u)
        UT = np.concatenate(powers + [np.ones((1, M))], axis=0).astype(np.float32)
        codes = self._codes()
        P = self.atoms.shape[0]
        self.rowwise = M >= ROWWISE_MIN_ROWS
        G = np.empty((P, M) if self.rowwise else (M, P), dtype=np.float32)
        block = np.empty((CHUNK, M), dtype=np.float32)
        tmp = np.empty((CHUNK, M), dtype=np.float32)
        for s in range(0, P, CHUNK):
            c = codes[s:s + CHUNK]
            n = c.shape[0]
            b, t_ = block[:n], tmp[:n]
            np.take(UT, c[:, 0], axis=0, out=b)
            for t in range(1, c.shape[1]):
                np.take(UT, c[:, t], axis=0, out=t_)
                b *= t_
            b -= b.mean(axis=1, keepdims=True)
            nrm = np.sqrt(np.einsum("ij,ij->i", b, b))
            nrm[~(nrm > 0)] = np.inf
            b /= nrm[:, None]
            if self.rowwise:
                G[s:s + n] = b
            else:
                G[:, s:s + n] = b.T
        self.G = G
        self._ws = None

    def _codes(self) -> np.ndarray:
        """(P, max_nonzero) row codes into UT (padding points at the ones row)."""
        W = self.atoms
        m = max(1, min(self.max_nonzero, self.d))
        codes = np.full((W.shape[0], m), 4 * self.d, dtype=np.intp)
        slot = np.zeros(W.shape[0], dtype=np.intp)
        for j in range(self.d):
            col = W[:, j]
            nz = np.flatnonzero(col)
            if nz.size == 0:
                continue
            e = col[nz].astype(np.int64)
            k = np.where(e == -2, 0, np.where(e == -1, 1, np.where(e == 1, 2, 3)))
            codes[nz, slot[nz]] = k * self.d + j
            slot[nz] += 1
        return codes

    @property
    def size(self) -> int:
        return self.atoms.shape[0]

    def _buffer(self, q):
        """A reusable (q, P) buffer for the scoring pass (a rowwise level fills it through
        its transpose)."""
        if self._ws is None or self._ws.shape[0] < q:
            self._ws = np.empty((max(q, PREFILTER_DIRECTIONS), self.size), dtype=np.float32)
        return self._ws[:q]

    def score(self, atoms, top=32, exclude=()):
        """Shortlist of the ``top`` dictionary atoms by OLS score against ``atoms``.

        One pass over the dictionary correlates every candidate with the
        residual; the ``PREFILTER`` best by correlation are then scored by
        OLS (their part outside the current atoms' span).  A candidate that
        correlates weakly with the residual yet scores high by OLS lies almost
        in the span of the current atoms: a lattice neighbour of one of them,
        which drift and budding propose.  Returns [(atom tuple, gain)], best
        (most negative sum of log RSS fractions left) first, ties broken by
        dictionary order, none of them in ``exclude``.
        """
        atoms = [tuple(w) for w in atoms]
        d_out = self.Yc.shape[1]
        if self.size == 0:
            return []
        Q = np.zeros((self.Ls.shape[0], 0))
        if atoms:
            W = np.asarray(atoms, dtype=np.float64)
            Z = self.Ls @ W.T
            A = np.exp(Z - Z.max(axis=0))
            A -= A.mean(axis=0)
            nrm = np.sqrt(np.einsum("ij,ij->j", A, A))
            nrm[~(nrm > 0)] = np.inf
            A /= nrm
            Q, R = np.linalg.qr(A)
            Q = Q[:, np.abs(np.diag(R)) > 1e-7]
            resid = self.Yc - Q @ (Q.T @ self.Yc)
        else:
            resid = self.Yc
        rss = np.maximum(np.einsum("ij,ij->j", resid, resid), 1e-300)
        Rn = resid / np.sqrt(rss)                                        # (M, d_out)
        R32 = np.ascontiguousarray(Rn.T, dtype=np.float32)
        if d_out > PREFILTER_DIRECTIONS:
            # sum_o (g.r_o)^2 = ||S U^T g||^2: the leading directions of the residuals
            U, S, _ = np.linalg.svd(Rn, full_matrices=False)
            P32 = np.ascontiguousarray((U[:, :PREFILTER_DIRECTIONS] * S[:PREFILTER_DIRECTIONS]).T,
                                       dtype=np.float32)
        else:
            P32 = R32
        q = P32.shape[0]
        num = self._buffer(q)                                             # (q, P)
        if self.rowwise:
            np.matmul(self.G, P32.T, out=num.T)
        else:
            np.matmul(P32, self.G, out=num)
        num *= num
        corr = num[0] if q == 1 else num.sum(axis=0)
        ex = set(tuple(w) for w in exclude)
        pre = min(max(PREFILTER_MIN, self.size // 16, top + len(ex)), PREFILTER, self.size)
        idx = np.argpartition(-corr, pre - 1)[:pre]
        idx.sort()
        Gs = self.G[idx] if self.rowwise else self.G[:, idx].T            # (pre, M) float32
        c = np.asarray(Gs @ R32.T, dtype=np.float64).T                   # (d_out, pre)
        if Q.shape[1]:
            QG = Gs @ np.asarray(Q, dtype=np.float32)                     # (pre, m)
            n2 = 1.0 - np.einsum("ij,ij->i", QG, QG, dtype=np.float64)
        else:
            n2 = np.ones(pre)
        n2 = np.maximum(n2, 1e-6)
        left = np.clip(1.0 - c * c / n2, 1e-12, 1.0)                     # RSS fraction left
        gain = np.log(left).sum(axis=0)                                  # the energy's fit term
        order = np.lexsort((idx, gain))
        out = []
        for o in order:
            t = tuple(int(v) for v in self.atoms[idx[o]])
            if t not in ex:
                out.append((t, float(gain[o])))
            if len(out) >= top:
                break
        return out

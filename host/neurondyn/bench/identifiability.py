"""Can a problem's true structure be told from its noise at all?  (recovery diagnostic)

The annealer's energy prices a fit (n log RSS) against a per-atom cost that
depends on the atom's complexity level m (its number of non-zero exponents).
Any criterion of that family -- ours, the prototype's extended BIC, BIC,
AIC, RIC, a threshold per level chosen with hindsight -- can only return the
true set of atoms T as its minimum if T is *separable* from the noise:

1. every true atom i lowers the fit term by more (its gain
   g_i = n log(RSS(T without i) / RSS(T))) than the best spurious atom of
   its level a would lower it if added to T (g_a = n log(RSS(T) / RSS(T + a)));
   otherwise a level price at or below g_i keeps a, and one above drops i;
2. no atom of the same level within lattice distance 2 of a true atom fits
   at least as well in its place (that swap costs the same and fits better).

Both are measured here with exact least-squares refits over the whole lattice
of atoms with 1-3 non-zero exponents (266,920 at d = 30; about a second per
problem) on the training rows, knowing the truth -- so this runs in the
benchmark only, never in the annealer.  A problem that is not separable is
not identifiable at its noise and N by any such criterion: at 1 % noise that
is a true atom whose signal left after the other atoms (its gain, a
chi-square-like statistic) is below the largest of the p(m) chance gains of
its level, ~2 log p(m).  It is a necessary condition, not a sufficient one.
"""
from __future__ import annotations

import math

import numpy as np

from ..pool.energy import Design
from .baselines import contract, lattice_triples, power_columns
from .problems import NONZERO_EXPONENTS, monomials, rms

SWAP_RADIUS = 2


def _neighbours(w, radius=SWAP_RADIUS, max_nonzero=3):
    """Lattice atoms at L1 distance 1..radius from w (exponents in -2..2, 1..max_nonzero)."""
    d = len(w)
    out, seen = [], {tuple(w)}
    frontier = [tuple(w)]
    for _ in range(radius):
        nxt = []
        for v in frontier:
            for j in range(d):
                for s in (-1, 1):
                    e = v[j] + s
                    if -2 <= e <= 2:
                        u = v[:j] + (e,) + v[j + 1:]
                        if u not in seen:
                            seen.add(u)
                            nxt.append(u)
        frontier = nxt
        out.extend(u for u in nxt if 1 <= sum(1 for x in u if x) <= max_nonzero)
    return out


def _triple_of(w):
    """The column triple (``baselines.lattice_triples`` naming) of an atom."""
    cols = sorted(1 + len(NONZERO_EXPONENTS) * j + NONZERO_EXPONENTS.index(e)
                  for j, e in enumerate(w) if e)
    return [0] * (3 - len(cols)) + cols


def _null_max(X, design, basis, truth, max_nonzero) -> dict:
    """{level: largest fit gain of one lattice atom (not in the truth) added to the truth}.

    Exact refits of all atoms at once: every statistic the rank-one update
    needs (sum g, sum g^2, g.r, g.Q_k) is a contraction of the power columns
    with one weight vector over all rows (``baselines.contract``), no atom
    column is built.
    """
    d = X.shape[1]
    triples = lattice_triples(d, min(max_nonzero, 3))
    P = power_columns(X)
    P /= np.abs(P).max(axis=0)                    # scale-free: keep products near 1
    n = X.shape[0]
    ones = np.ones(n)
    s1 = contract(P, ones, triples)
    var = contract(P * P, ones, triples) - s1 * s1 / n
    num = contract(P, basis.resid[:, 0], triples)
    n2 = var.copy()
    for k in range(basis.m):
        qg = contract(P, basis.Q[:, k], triples)
        n2 -= qg * qg
    valid = (n2 > 1e-9 * var) & (var > 0)
    rss = basis.rss[0] - num * num / np.where(valid, n2, 1.0)
    gain = np.where(valid, design.fit_term(basis.rss) - design.fit_term(
        np.maximum(rss, 0.0)[:, None]), -np.inf)
    for w in truth:
        gain[np.all(triples == np.array(_triple_of(w)), axis=1)] = -np.inf
    level = (triples > 0).sum(axis=1)
    return {m: float(gain[level == m].max()) for m in range(1, min(max_nonzero, d, 3) + 1)}


def separability(problem, max_nonzero: int = 3) -> dict:
    """Gains of the true atoms, the largest spurious gain per level, the best swaps.

    Returns {"separable": bool, "weakest_gain", "true_gains": [[level, gain]],
    "null_max": {level: gain}, "reasons": [...]} (see the module docstring).
    """
    X = np.asarray(problem.X, dtype=np.float64)
    design = Design(np.log(X), np.asarray(problem.Y, dtype=np.float64).reshape(-1, 1))
    d = design.d
    truth = [tuple(int(v) for v in w) for w in problem.exponents]
    tset = set(truth)
    energy, rss, basis = design.state_energy(truth)
    if not basis.ok:
        return {"separable": False, "reasons": ["degenerate truth"], "true_gains": [],
                "null_max": {}, "weakest_gain": None}
    f0 = float(design.fit_term(rss))
    level = lambda w: sum(1 for v in w if v)             # noqa: E731
    removed = design.fit_term(basis.removal_rss(design.Yc))
    true_gains = [[level(w), float(removed[i] - f0)] for i, w in enumerate(truth)]

    # the largest gain a spurious atom of each level would bring, added to the truth
    null_max = _null_max(X, design, basis, truth, max_nonzero)

    reasons = []
    for m, g in true_gains:
        if g <= null_max.get(m, -math.inf):
            reasons.append("a true %d-exponent atom gains %.1f, a spurious one %.1f"
                           % (m, g, null_max[m]))
    # same-level swaps near each true atom
    for i, w in enumerate(truth):
        cands = [u for u in _neighbours(w, max_nonzero=max_nonzero)
                 if u not in tset and level(u) == level(w)]
        if not cands:
            continue
        base = design.basis(truth[:i] + truth[i + 1:])
        r2, valid = design.candidate_rss(base, design.raw_rows(cands))
        dfit = np.where(valid, design.fit_term(r2) - f0, np.inf)
        j = int(np.argmin(dfit))
        if dfit[j] <= 0:
            reasons.append("a neighbour of a true atom fits %.1f better in its place"
                           % (-float(dfit[j])))
    return {"separable": not reasons, "weakest_gain": min(g for _, g in true_gains),
            "true_gains": true_gains, "null_max": {str(m): v for m, v in null_max.items()},
            "reasons": reasons}


def weakest_signal(problem):
    """How far the weakest true atom stands above the noise, in noise standard deviations.

    For each true atom k, the part of its clean contribution a_k phi_k (on the
    training rows) that a bias and the other true atoms cannot express -- what
    is left for the data to identify it by -- as an RMS over the rows, divided
    by the noise sd (noise x RMS of the clean target).  The smallest over the
    atoms; None without noise.  With N rows, an atom at ratio s gains about
    N s^2 in fit (chi-square units): at N = 2000, s = 0.05 is a gain of 5, the
    size of a chance gain.  Why U[1, 5] is harder than U[0.5, 2]: a monomial with
    three exponents of +-2 spans 5^12 there against 4^6, so a small atom sits
    far below a noise set by the largest one.
    """
    X = np.asarray(problem.X, dtype=np.float64)
    parts = monomials(X, problem.exponents) * np.asarray(problem.coefficients, dtype=np.float64)
    sd = float(problem.noise) * rms(parts.sum(axis=1))
    if not sd > 0:
        return None
    ratios = []
    for k in range(parts.shape[1]):
        A = np.column_stack([np.ones(X.shape[0]), np.delete(parts, k, axis=1)])
        col = parts[:, k]
        left = col - A @ np.linalg.lstsq(A, col, rcond=None)[0]
        ratios.append(rms(left) / sd)
    return float(min(ratios))

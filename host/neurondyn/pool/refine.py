"""Continuous refinement of exponents (``quantize=False``).

After crystallisation the non-zero exponents may leave the lattice: a
Levenberg-Marquardt descent on the exponents in log space, with the linear
parameters (readouts and bias) solved exactly at every trial point
(variable projection).  The sparsity pattern of the crystal is kept.
"""
from __future__ import annotations

import numpy as np

MAX_ITER = 60


def _fit(L, Y, W, basis=False):
    """Exact least squares of Y on [1, prod x^W]; returns (residual, coef, Phi[, Q])."""
    Z = L @ W.T
    Z -= Z.max(axis=0)
    Phi = np.exp(Z)
    scale = np.sqrt(np.mean(Phi ** 2, axis=0))
    scale[scale == 0] = 1.0
    Phi = Phi / scale
    A = np.column_stack([np.ones(L.shape[0]), Phi])
    coef, *_ = np.linalg.lstsq(A, Y, rcond=None)
    if basis:
        return Y - A @ coef, coef[1:], Phi, np.linalg.qr(A)[0]
    return Y - A @ coef, coef[1:], Phi


def refine_exponents(L, Y, W, max_iter=MAX_ITER):
    """Refine the non-zero entries of W (K, d) to lower the RSS; returns a new W."""
    W = np.asarray(W, dtype=np.float64).copy()
    Y = np.asarray(Y, dtype=np.float64).reshape(L.shape[0], -1)
    if W.shape[0] == 0:
        return W
    free = [(k, j) for k in range(W.shape[0]) for j in np.flatnonzero(W[k])]
    if not free:
        return W
    r, coef, Phi, Q = _fit(L, Y, W, basis=True)
    rss = float(np.sum(r * r))
    lam = 1e-3
    n, d_out = Y.shape
    for _ in range(max_iter):
        # Jacobian of the model with the linear part solved out (Kaufman's
        # variable projection): the derivative columns projected off span[1, Phi]
        J = np.empty((n, d_out, len(free)))
        for t, (k, j) in enumerate(free):
            J[:, :, t] = Phi[:, k:k + 1] * L[:, j:j + 1] * coef[k][None, :]
        J = J.reshape(n, -1)
        J = (J - Q @ (Q.T @ J)).reshape(n * d_out, len(free))
        g = J.T @ r.reshape(-1)
        H = J.T @ J
        improved = False
        for _ in range(12):
            step = np.linalg.solve(H + lam * np.diag(np.diag(H) + 1e-12), g)
            W_try = W.copy()
            for t, (k, j) in enumerate(free):
                W_try[k, j] += step[t]
            r_t, coef_t, Phi_t, Q_t = _fit(L, Y, W_try, basis=True)
            rss_t = float(np.sum(r_t * r_t))
            if np.isfinite(rss_t) and rss_t < rss:
                W, r, coef, Phi, Q, rss = W_try, r_t, coef_t, Phi_t, Q_t, rss_t
                lam = max(lam / 3.0, 1e-9)
                improved = True
                break
            lam *= 4.0
        if not improved or np.max(np.abs(step)) < 1e-10:
            break
    return W


def fit_rss(L, Y, W) -> np.ndarray:
    """RSS per output of the exact least-squares fit on the atoms W."""
    Y = np.asarray(Y, dtype=np.float64).reshape(L.shape[0], -1)
    if W.shape[0] == 0:
        r = Y - Y.mean(axis=0)
    else:
        r, _, _ = _fit(L, Y, W)
    return np.einsum("ij,ij->j", r, r)


def continuous_phase(L, Y, W, energy):
    """Refine exponents off the lattice, then let atoms that became redundant collapse.

    ``energy(rss, W)`` is the annealer's energy of atoms W with that RSS.  Two lattice atoms that
    bracketed one off-lattice exponent (x^1 and x^2 for x^1.3) refine onto
    the same point; removing one and refining again then lowers the energy.
    """
    W = refine_exponents(L, Y, W)
    E = float(energy(fit_rss(L, Y, W), W))
    changed = True
    while changed and W.shape[0] > 1:
        changed = False
        for i in reversed(range(W.shape[0])):
            W2 = refine_exponents(L, Y, np.delete(W, i, axis=0))
            E2 = float(energy(fit_rss(L, Y, W2), W2))
            if np.isfinite(E2) and E2 < E - 1e-9:
                W, E, changed = W2, E2, True
                break
    return W

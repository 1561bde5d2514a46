"""Optimiser benchmark: the relative gradient vs Adam vs plain gradient descent.

The seed claims "No-Adam": in log-space the gradient is scale-free, so plain
steps need no optimiser hyperparameters.  This suite measures it, whatever
the outcome.

The model.  A recovery-grid problem (noise 0, N = 1000 rows) with its true
exponents fixed: ``f(x) = sum_k a_k phi_k(x)``, ``phi_k = prod_j x_j^w_kj``.
The coefficients are learnt from a perturbed start ``|a_k| * exp(u_k)``,
``u_k ~ U[-1, 1]``, signs kept -- what on-board retraining does when gains
drift.  Loss = relative MSE, ``L(a) = mean((f - y)^2) / mean(y^2)``; the
targets are L <= 1e-2, 1e-4, 1e-6.  Every step is one full-batch gradient
(deterministic; "steps" = gradient evaluations).

The update rules (theta_k = |a_k| > 0, s_k = sign(a_k) fixed, g = dL/dtheta):

* ``gd``       plain gradient descent on a:  a <- a - eta dL/da
* ``adam``     Adam on a (beta1 0.9, beta2 0.999, eps 1e-8, bias-corrected)
* ``eg``       mirror descent with the negentropy potential sum theta log theta,
               i.e. exponentiated gradient: theta <- theta * exp(-eta g);
               its flow is theta' = -theta g (the rule the annealer's masses use)
* ``relgrad``  the seed's relative gradient, plain SGD on phi = log theta:
               dL/dphi = theta * g, so theta <- theta * exp(-eta theta g);
               its flow is theta' = -theta^2 g.  The seed calls this "mirror
               descent with negentropy"; the two differ by a factor theta.
* ``relgrad (no tuning)``  relgrad with eta = 1/2 fixed: for a single atom the
               relative loss has curvature 2 in phi at the optimum, so 1/2 is
               its Newton step -- a constant of the loss, not of the problem.
               This is the seed's "zero hyperparameters" taken literally.

Tuning: every rule but the untuned one runs over a grid of step sizes; one
step size per rule is chosen for the whole problem set (the one with the
smallest geometric-mean steps over all problems and targets, a miss counting
as twice the step budget) -- what a practitioner tuning once would get.
"""
from __future__ import annotations

import math
import time

import numpy as np

from . import BenchContext, SuiteResult
from .problems import make_problem, monomials
from .recovery import structure_cell
from .problems import problem_seed
from .runner import run_tasks
from .table import md_table, median

TARGETS = (1e-2, 1e-4, 1e-6)
GRIDS = {                  # quarter decades
    "gd": [10.0 ** (e / 4.0) for e in range(-24, 5)],       # 1e-6 .. 10
    "adam": [10.0 ** (e / 4.0) for e in range(-16, 1)],     # 1e-4 .. 1
    "eg": [10.0 ** (e / 4.0) for e in range(-24, 5)],
    "relgrad": [10.0 ** (e / 4.0) for e in range(-12, 5)],  # 1e-3 .. 10
}
DEFAULT_RELGRAD_STEP = 0.5
METHODS = ("gd", "adam", "eg", "relgrad", "relgrad (no tuning)")
RULES = {
    "gd": "a <- a - eta dL/da",
    "adam": "Adam on a (0.9, 0.999, 1e-8)",
    "eg": "theta <- theta exp(-eta dL/dtheta)",
    "relgrad": "theta <- theta exp(-eta theta dL/dtheta)",
    "relgrad (no tuning)": "same, eta = 1/2 fixed",
}
N_ROWS = 1000
FULL_DS, FULL_KS, FULL_PROBLEMS, FULL_STEPS = (3, 10, 30), (2, 4, 6), 5, 20000
QUICK_DS, QUICK_KS, QUICK_PROBLEMS, QUICK_STEPS = (10,), (2, 4), 3, 3000
START_SEED_OFFSET = 500000     # the perturbed start uses seed + this


def optimizer_specs(ds, ks, problems, max_steps) -> list:
    specs = []
    for d in ds:
        for K in ks:
            for i in range(problems):
                seed = problem_seed(structure_cell(0, d, K), i)
                specs.append({"d": d, "K": K, "seed": seed, "max_steps": int(max_steps),
                              "key": "opt|v2|d%d|K%d|s%d|m%d" % (d, K, seed, max_steps)})
    return specs


def descend(method, Phi, y, signs, theta0, etas, max_steps, targets=TARGETS) -> np.ndarray:
    """Steps to each loss target for every step size: int array (len(etas), len(targets)), -1 = missed.

    All step sizes run side by side as rows of one array; a row stops mattering
    once it diverges (loss not finite or 1e3 x the start) or reaches the last target.
    """
    etas = np.asarray(etas, dtype=np.float64)[:, None]
    G, K = etas.shape[0], Phi.shape[1]
    N = Phi.shape[0]
    ybar = float(np.mean(y * y))
    A = np.tile(signs * theta0, (G, 1))
    m = np.zeros_like(A)
    v = np.zeros_like(A)
    hits = np.full((G, len(targets)), -1, dtype=np.int64)
    dead = np.zeros(G, dtype=bool)
    tgt = np.asarray(targets)
    L0 = None
    with np.errstate(all="ignore"):
        for t in range(max_steps + 1):
            R = A @ Phi.T - y                       # (G, N) residuals
            L = np.mean(R * R, axis=1) / ybar
            if L0 is None:
                L0 = L.copy()
            dead |= ~np.isfinite(L) | (L > 1e3 * L0)
            newly = (L[:, None] <= tgt[None, :]) & (hits < 0) & ~dead[:, None]
            hits[newly] = t
            if t == max_steps or np.all(dead | (hits[:, -1] >= 0)):
                break
            grad = (2.0 / (N * ybar)) * (R @ Phi)     # dL/da, (G, K)
            if method == "gd":
                A = A - etas * grad
            elif method == "adam":
                m = 0.9 * m + 0.1 * grad
                v = 0.999 * v + 0.001 * grad * grad
                mhat = m / (1.0 - 0.9 ** (t + 1))
                vhat = v / (1.0 - 0.999 ** (t + 1))
                A = A - etas * mhat / (np.sqrt(vhat) + 1e-8)
            else:
                theta = A * signs
                g = grad * signs                      # dL/dtheta
                if method == "eg":
                    theta = theta * np.exp(-etas * g)
                elif method == "relgrad":
                    theta = theta * np.exp(-etas * theta * g)
                else:
                    raise ValueError("unknown method %r" % method)
                A = theta * signs
    return hits


def solve(spec) -> dict:
    """All rules and step sizes on one problem."""
    p = make_problem(spec["d"], spec["K"], 0.0, spec["seed"], n=N_ROWS, n_test=1)
    Phi = monomials(p.X, p.exponents)
    signs = np.sign(p.coefficients)
    rng = np.random.default_rng(spec["seed"] + START_SEED_OFFSET)
    theta0 = np.abs(p.coefficients) * np.exp(rng.uniform(-1.0, 1.0, size=p.K))
    out = {"d": spec["d"], "K": spec["K"], "seed": spec["seed"],
           "max_steps": spec["max_steps"], "methods": {}}
    t0 = time.perf_counter()
    for method in METHODS:
        if method == "relgrad (no tuning)":
            etas, rule = [DEFAULT_RELGRAD_STEP], "relgrad"
        else:
            etas, rule = GRIDS[method], method
        hits = descend(rule, Phi, p.Y, signs, theta0, etas, spec["max_steps"])
        out["methods"][method] = {"etas": list(etas), "steps": hits.tolist()}
    out["seconds"] = time.perf_counter() - t0
    return out


def _score(steps_lists, max_steps):
    """Geometric-mean steps over (problem, target); a miss counts as 2 x max_steps."""
    logs = [math.log(max(s, 1) if s >= 0 else 2 * max_steps) for steps in steps_lists for s in steps]
    return sum(logs) / len(logs)


def summarise(rows) -> list:
    """Per method: the chosen step size and, per target, median steps and misses."""
    max_steps = rows[0]["max_steps"]
    out = []
    for method in METHODS:
        etas = rows[0]["methods"][method]["etas"]
        scores = [_score([r["methods"][method]["steps"][g] for r in rows], max_steps)
                  for g in range(len(etas))]
        g = int(np.argmin(scores))
        per_target = []
        for j, target in enumerate(TARGETS):
            steps = [r["methods"][method]["steps"][g][j] for r in rows]
            reached = [s for s in steps if s >= 0]
            med = median([s if s >= 0 else float("inf") for s in steps])
            # oracle: each problem's own best step size (the ceiling of tuning)
            best = [min([s[j] for s in r["methods"][method]["steps"] if s[j] >= 0] or [-1])
                    for r in rows]
            per_target.append({"target": target, "median_steps": med,
                               "misses": len(steps) - len(reached),
                               "oracle_median_steps": median(
                                   [b if b >= 0 else float("inf") for b in best]),
                               "oracle_misses": sum(1 for b in best if b < 0)})
        out.append({"method": method, "rule": RULES[method], "eta": etas[g],
                    "grid": [etas[0], etas[-1], len(etas)], "targets": per_target})
    return out


def _steps(x, max_steps):
    if math.isinf(x):
        return "> %d" % max_steps
    return "%d" % x


def render(summary, rows, quick) -> str:
    max_steps = rows[0]["max_steps"]
    cells = sorted({(r["d"], r["K"]) for r in rows})
    head = ("### Optimiser%s\n\nSteps (full-batch gradients) until relative MSE <= target, "
            "learning the coefficients of a fixed-structure K-atom power-law model from a start "
            "perturbed by exp(U[-1,1]); %d problems (d, K in %s), budget %d steps. Median over "
            "problems (a miss counts as never) and misses; one step size per rule, tuned over "
            "its grid for the whole set; in brackets: each problem's own best step size."
            % (" (--quick subset)" if quick else "", len(rows),
               ", ".join("(%d,%d)" % c for c in cells), max_steps))
    headers = ["rule", "update", "eta"] + ["L <= %g" % t for t in TARGETS]
    body = []
    for s in summary:
        cols = []
        for t in s["targets"]:
            cols.append("%s (%s), %d missed" % (_steps(t["median_steps"], max_steps),
                                                _steps(t["oracle_median_steps"], max_steps),
                                                t["misses"]))
        eta = ("%.3g" % s["eta"]) + ("" if s["method"].endswith("(no tuning)")
                                     else " (grid %.0e..%.0e)" % (s["grid"][0], s["grid"][1]))
        body.append([s["method"], "`%s`" % s["rule"], eta] + cols)
    return head + "\n\n" + md_table(headers, body) + "\n"


def run_optimizer(specs, jobs=1, checkpoint=None, progress=True, quick=False) -> SuiteResult:
    rows = run_tasks(solve, specs, jobs=jobs, checkpoint=checkpoint, progress=progress,
                     label="optimizer")
    summary = summarise(rows)
    data = {"config": {"targets": list(TARGETS), "grids": GRIDS, "rows": N_ROWS,
                       "default_relgrad_step": DEFAULT_RELGRAD_STEP, "quick": quick},
            "summary": summary, "problems": rows}
    return SuiteResult("optimizer", render(summary, rows, quick), data)


def run(ctx: BenchContext) -> SuiteResult:
    if ctx.quick:
        specs = optimizer_specs(QUICK_DS, QUICK_KS, QUICK_PROBLEMS, QUICK_STEPS)
    else:
        specs = optimizer_specs(FULL_DS, FULL_KS, FULL_PROBLEMS, FULL_STEPS)
    checkpoint = ctx.checkpoint + ".optimizer.jsonl" if ctx.checkpoint else None
    return run_optimizer(specs, ctx.jobs, checkpoint, ctx.progress, ctx.quick)

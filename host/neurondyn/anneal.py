"""Annealing a neuron pool into a crystal of K* power-law atoms.

``Annealer.fit`` runs a temperature-controlled stochastic dynamics on the
integer exponent lattice (the crystal phase, which prototypes found decisive;
see docs/annealing.md):

1. liquid -> cooling: ``schedule.steps`` steps at tau from the schedule; each
   step draws one event (drift, nucleation, budding, collapse, merge, or a
   swap when the pool is full) and applies it by heat-bath or Metropolis
   choice on the exact-refit energy (extended BIC, ``pool.energy``); masses
   ripen by the exponentiated-gradient rule after every step;
2. zero-temperature pass: the same events at tau = 0 (strict descent), plus
   exhaustive one-atom swaps, until nothing lowers the energy;
3. tempering: the weakest 1-3 atoms are remelted, the crystal regrows and is
   quenched again, kept only when the energy falls (basin hopping), until
   K (at least 3) cycles in a row bring nothing;
4. crystallisation: exponents already on {-2..2}, equal atoms cannot exist
   (a set), gains/readouts/bias refit by exact least squares on all rows;
   with ``quantize=False`` the exponents are then refined continuously.

The result depends only on (data, seed, schedule, pool[, init, reheat]):
all randomness comes from ``np.random.default_rng(seed)``.
"""
from __future__ import annotations

import math
import time

import numpy as np

from .model import Model, choose_channels
from .pool.dictionary import Dictionary, plan
from .pool.energy import Design
from .pool.events import (Counters, PoolState, bud, budding_candidates, collapse, drift,
                          merge, merge_pair, nucleate, swap)
from .pool.refine import continuous_phase
from .pool.schedule import Schedule, parse_schedule

__all__ = ["Annealer", "parse_schedule", "Schedule"]

WORK_ROWS = 5000          # rows the dynamics refits on (all rows for the final refit)
SHORTLIST = 32            # dictionary candidates refit exactly per nucleation
HISTORY_POINTS = 250
QUENCH_ROUNDS = 25
TEMPER_CYCLES = 60
RESTARTS = 2                  # extra chains when the pool ends saturated
TEMPER_PATIENCE_MIN = 3       # tempering stops after max(MIN, PER_ATOM * K) idle cycles
TEMPER_PATIENCE_PER_ATOM = 1
TEMPER_MELT_MIN = 3           # a cycle remelts 1..max(MIN, K/2) atoms

# event mix of one step (when the pool holds at least one atom)
P_DRIFT = 0.55
P_NUCLEATE = 0.10
P_BUD = 0.07
P_COLLAPSE = 0.13
# the rest: merge


class _Nucleator:
    """Dictionary shortlists for nucleation, reused for a few steps (the refit is exact)."""

    def __init__(self, dictionary: Dictionary, design: Design, stale: int):
        self.dictionary = dictionary
        self.design = design
        self.stale = stale
        self._key = None
        self._step = -10 ** 9
        self._list = []
        self.scorings = 0

    def shortlist(self, atoms, step=None, fresh=False):
        key = tuple(atoms)
        if not fresh and (key == self._key or
                          (step is not None and step - self._step < self.stale)):
            return self._list
        self.scorings += 1
        self._list = self.dictionary.score(list(atoms), top=SHORTLIST, exclude=atoms)
        self._key = key
        self._step = step if step is not None else self._step
        return self._list


def _as_2d(a, name):
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError("%s must be a 2-D array (rows x columns)" % name)
    return arr


def snap_negligible_bias(model, Y):
    """Set to exactly 0 a bias below the energy's resolution (1e-7 RMS(y) per output).

    The exact least-squares refit always fits a bias; on a law without one it
    lands on round-off (``F = 8.99e+09 q1 q2 / r^2 + 4.5e-15``).  The energy
    already treats residuals below ``RSS_FLOOR_REL * RMS(y)`` as zero, and a
    change that small is at float32 resolution (the .ndm stores float32), so
    predictions do not change while the formula and the board's arithmetic
    lose a meaningless term.  A bias the data supports is kept as fitted.
    """
    from .pool.energy import RSS_FLOOR_REL
    rms = np.sqrt(np.mean(np.asarray(Y, dtype=float) ** 2, axis=0))
    small = np.abs(model.bias) <= RSS_FLOOR_REL * rms
    if not np.any(small & (model.bias != 0)):
        return model
    bias = np.where(small, 0.0, model.bias)
    return Model(model.offset, model.scale, model.exponents, model.log_gain, model.readout,
                 bias, list(model.inputs), list(model.outputs), model.quantized)


class Annealer:
    """Grow a power-law model by annealing a pool of at most ``pool`` atoms.

    pool      capacity n (default: d_in, the seed's rule)
    seed      the only source of randomness
    schedule  text like "geometric:30:0.02:4000", a Schedule, or None (default)
    quantize  keep exponents on {-2..2} (True) or refine them continuously
    reheat    remelting temperature when ``fit(..., init=model)`` (default: tau_start)
    progress  callable(dict) called every ~1 % of steps
    """

    def __init__(self, pool=None, seed=0, schedule=None, quantize=True, reheat=None,
                 progress=None):
        if pool is not None:
            if isinstance(pool, bool) or int(pool) != pool or int(pool) < 1:
                raise ValueError("pool must be a positive integer, got %r" % (pool,))
            pool = int(pool)
        self.pool = pool
        self.seed = int(seed)
        self.schedule = parse_schedule(schedule)
        self.quantize = bool(quantize)
        if reheat is not None:
            reheat = float(reheat)
            if not math.isfinite(reheat) or reheat <= 0:
                raise ValueError("reheat must be a positive temperature, got %r" % (reheat,))
        self.reheat = reheat
        self.progress = progress

    # ------------------------------------------------------------------------
    def fit(self, X, Y, inputs=None, outputs=None, init=None):
        t_start = time.perf_counter()
        X = _as_2d(X, "X")
        Y = _as_2d(Y, "Y")
        n_rows, d_in = X.shape
        if Y.shape[0] != n_rows:
            raise ValueError("X has %d rows but Y has %d" % (n_rows, Y.shape[0]))
        if n_rows < 3:
            raise ValueError("need at least 3 rows to anneal, got %d" % n_rows)
        if not np.all(np.isfinite(X)) or not np.all(np.isfinite(Y)):
            raise ValueError("X and Y must be finite (no NaN or inf)")
        d_out = Y.shape[1]
        inputs = list(inputs) if inputs is not None else \
            (list(init.inputs) if init is not None else ["x%d" % (j + 1) for j in range(d_in)])
        outputs = list(outputs) if outputs is not None else \
            (list(init.outputs) if init is not None and init.d_out == d_out else
             (["y%d" % (i + 1) for i in range(d_out)] if d_out > 1 else ["y"]))

        # channels: the init model's map when remelting, else chosen from the data
        if init is not None:
            if init.d_in != d_in:
                raise ValueError("the model to remelt has %d inputs, the data %d"
                                 % (init.d_in, d_in))
            offset, scale = init.offset.copy(), init.scale.copy()
        else:
            offset, scale = choose_channels(X)
        x = scale * (X - offset)
        if not np.all(x > 0):
            raise ValueError("some rows map to a non-positive input under the channel map")
        L_all = np.log(x)

        rng = np.random.default_rng(self.seed)
        if n_rows > WORK_ROWS:
            work = np.sort(rng.permutation(n_rows)[:WORK_ROWS])
        else:
            work = np.arange(n_rows)
        # a channel that is constant on the data cannot carry an exponent (any value
        # fits equally): the pool works on the varying channels only
        Lw = L_all[work]
        active = np.flatnonzero(Lw.max(axis=0) > Lw.min(axis=0))
        if active.size == 0:            # nothing varies: no atom can form
            active = np.arange(d_in)
        design = Design(Lw[:, active], Y[work])
        levels = plan(design.n, active.size)
        dictionary = Dictionary(design.L, design.Y, levels, rng)
        # reuse a shortlist for a number of steps that grows with the cost of a scoring
        cost = sum(lv.size * lv.rows.size for lv in dictionary.levels)
        stale = int(min(50, max(16, round(cost / 2e6))))
        nuc = _Nucleator(dictionary, design, stale)

        init_atoms = []
        if init is not None:
            for w in np.clip(np.round(init.exponents), -2, 2).astype(int):
                t = tuple(int(v) for v in w[active])
                if any(t) and t not in init_atoms:
                    init_atoms.append(t)
        capacity = self.pool if self.pool is not None else d_in
        capacity = max(capacity, len(init_atoms))

        sched = self.schedule
        if init is not None:
            sched = sched.reheated(self.reheat if self.reheat is not None else sched.tau_start)

        counts = Counters(nucleations=0, buddings=0, collapses=0, merges=0, swaps=0,
                          drifts=0, accepted=0, rejected=0, restarts=0)
        t_setup = time.perf_counter()
        state, history = self._chain(design, nuc, capacity, init_atoms, sched, rng, counts,
                                     self.progress)
        t_anneal = time.perf_counter()
        saturated = state.k >= capacity and self._would_grow(state, nuc)
        # A full pool that still wants atoms is either a pool too small for the law or a
        # chain stuck among blend atoms (seen at noise 0).  Another chain, from the
        # liquid, tells the two apart: the lower energy wins.
        for _ in range(RESTARTS if saturated else 0):
            counts.bump("restarts")
            other, hist2 = self._chain(design, nuc, capacity, [], sched, rng, counts, None)
            if other.energy < state.energy - 1e-9:
                state, history = other, hist2
            saturated = state.k >= capacity and self._would_grow(state, nuc)
            if not saturated:
                break
        t_quench = time.perf_counter()

        model = self._crystallise(state, L_all, Y, offset, scale, inputs, outputs, active)
        model = snap_negligible_bias(model, Y)
        self.model_ = model
        pred = model.bias + np.exp(L_all @ model.exponents.T + model.log_gain) @ model.readout
        rss_all = np.sum((Y - pred) ** 2, axis=0)
        rms = np.sqrt(np.mean(Y ** 2, axis=0))
        self.loss_ = float(math.sqrt(float(np.mean(rss_all / (n_rows * np.maximum(rms ** 2,
                                                                                   1e-300))))))
        pred_w = pred[work]
        rss_w = np.sum((Y[work] - pred_w) ** 2, axis=0)
        self.energy_ = float(design.energy_from_rss(
            rss_w, design.penalty_of([tuple(w) for w in model.exponents])))
        self.k_star_ = int(model.k_star)
        self.saturated_ = bool(saturated)
        self.history_ = history
        seconds = time.perf_counter() - t_start
        counts["scorings"] = nuc.scorings
        self.report_ = {
            "params": {"pool": int(capacity), "pool_requested": self.pool, "seed": self.seed,
                       "schedule": sched.text, "quantize": self.quantize,
                       "reheat": self.reheat if init is not None else None,
                       "remelted": init is not None},
            "rows": int(n_rows), "d_in": int(d_in), "d_out": int(d_out),
            "k_star": self.k_star_, "energy": self.energy_, "loss": self.loss_,
            "saturated": self.saturated_,
            "atoms": [[int(v) for v in w] if self.quantize else [float(v) for v in w]
                      for w in model.exponents],
            "dictionary": {"atoms": int(dictionary.size), "levels": dictionary.describe(),
                           "candidates_p": int(design.p)},
            "events": {k: int(v) for k, v in counts.items()},
            "history": history,
            "seconds": float(seconds),
            "phase_seconds": {"setup": t_setup - t_start, "anneal": t_anneal - t_setup,
                              "restarts": t_quench - t_anneal,
                              "crystallise": time.perf_counter() - t_quench},
        }
        return self

    def predict(self, X):
        return self.model_.predict(X)

    # ------------------------------------------------------------------------
    def _chain(self, design, nuc, capacity, atoms, sched, rng, counts, progress):
        """One annealing chain: cooling, quench, tempering, quench; returns (state, history)."""
        state = PoolState(design, capacity, atoms)
        if not math.isfinite(state.energy):       # a degenerate init set: start molten
            state = PoolState(design, capacity, [])
        history = []
        steps = sched.steps
        every = max(1, steps // HISTORY_POINTS)
        tick = max(1, steps // 100)

        def record(step, tau):
            history.append({"step": int(step), "tau": float(tau), "atoms": state.k,
                            "energy": _num(state.energy),
                            "loss": design.loss_from_rss(state.rss)})

        for step in range(steps):
            tau = sched.tau(step)
            self._event(state, nuc, step, tau, rng, counts)
            state.ripen(tau)
            if step % every == 0:
                record(step, tau)
            if progress is not None and (step % tick == 0 or step == steps - 1):
                progress({"step": step + 1, "steps": steps, "tau": tau, "atoms": state.k,
                          "energy": _num(state.energy),
                          "loss": design.loss_from_rss(state.rss)})
        # zero-temperature pass, then tempering cycles, then a last full quench
        self._quench(state, nuc, rng, counts)
        record(steps, 0.0)
        self._temper(state, nuc, rng, counts, record, steps)
        self._quench(state, nuc, rng, counts)
        record(history[-1]["step"] + 1, 0.0)
        return state, history

    def _event(self, st: PoolState, nuc: _Nucleator, step, tau, rng, counts):
        if st.k == 0:
            nucleate(st, nuc.shortlist(st.atoms, step), tau, rng, counts)
            return
        u = rng.random()
        full = st.k >= st.capacity
        if u < P_DRIFT:
            drift(st, int(rng.integers(st.k)), tau, rng, counts)
        elif u < P_DRIFT + P_NUCLEATE:
            cands = nuc.shortlist(st.atoms, step)
            if full:
                swap(st, st.pick_small(rng), cands, tau, rng, counts)
            else:
                nucleate(st, cands, tau, rng, counts)
        elif u < P_DRIFT + P_NUCLEATE + P_BUD:
            if full:
                swap(st, st.pick_small(rng), budding_candidates(st), tau, rng, counts)
            else:
                bud(st, tau, rng, counts)
        elif u < P_DRIFT + P_NUCLEATE + P_BUD + P_COLLAPSE:
            collapse(st, st.pick_small(rng), tau, rng, counts)
        else:
            if st.k >= 2:
                merge(st, st.pick_small(rng), tau, rng, counts)
            else:
                drift(st, 0, tau, rng, counts)

    def _quench(self, st: PoolState, nuc: _Nucleator, rng, counts, swaps=True):
        """Zero-temperature pass: every event at tau = 0 until the energy stops falling."""
        for _ in range(QUENCH_ROUNDS):
            e0 = st.energy
            # drift every atom to its best neighbour (repeat while it moves)
            i = 0
            while i < st.k:
                moved = 0
                while drift(st, i, 0.0, rng, counts) and moved < 8:
                    moved += 1
                i += 1
            # collapse atoms that do not earn their place (weakest first)
            while st.k:
                V = st.binding()
                i = int(np.argmin(V))
                if V[i] < 0:
                    st.remove(i)
                    counts.bump("collapses")
                else:
                    break
            # merges of close pairs
            done = False
            while not done and st.k >= 2:
                done = True
                for i in range(st.k):
                    for j in range(i + 1, st.k):
                        dist = sum(abs(u - v) for u, v in zip(st.atoms[i], st.atoms[j]))
                        if dist <= 3 and merge_pair(st, i, j, 0.0, rng, counts):
                            done = False
                            break
                    if not done:
                        break
            # nucleation (fresh scoring) and budding
            if st.k < st.capacity:
                nucleate(st, nuc.shortlist(st.atoms, fresh=True), 0.0, rng, counts)
            if st.k < st.capacity:
                bud(st, 0.0, rng, counts)
            # swaps: replace each atom by the best fresh nucleus given the others
            for i in range(st.k if swaps else 0):
                if i >= st.k:
                    break
                others = st.atoms[:i] + st.atoms[i + 1:]
                cands = nuc.dictionary.score(others, top=SHORTLIST, exclude=st.atoms)
                nuc.scorings += 1
                swap(st, i, cands, 0.0, rng, counts)
            if not st.energy < e0 - 1e-9:
                break

    def _temper(self, st: PoolState, nuc: _Nucleator, rng, counts, record, step0):
        """Tempering: partial remelting of the crystal's weakest atoms, then re-quenching.

        Each cycle dissolves 1-3 atoms (chosen ~ 1/mass), regrows the crystal
        from the dictionary without them (so it has to try elsewhere), quenches
        and keeps the result only if the energy fell -- basin hopping between
        the local minima a greedy descent gets stuck in (typically: a full pool
        of "blend" atoms approximating a few true atoms they cannot reach one
        move at a time).  Stops after ``patience`` cycles without improvement.
        """
        best = (list(st.atoms), list(st.mass), st.energy)
        patience = max(TEMPER_PATIENCE_MIN, TEMPER_PATIENCE_PER_ATOM * st.k)
        fails = 0
        for cycle in range(TEMPER_CYCLES):
            if fails >= patience or st.k == 0:
                break
            m = int(rng.integers(1, min(max(TEMPER_MELT_MIN, (st.k + 1) // 2), st.k) + 1))
            gone = []
            for _ in range(m):
                i = st.pick_small(rng)
                gone.append(st.atoms[i])
                st.remove(i)
            counts.bump("remelted", m)
            # regrow greedily (fresh scores), the dissolved atoms excluded
            while st.k < st.capacity:
                cands = nuc.dictionary.score(st.atoms, top=SHORTLIST,
                                             exclude=list(st.atoms) + gone)
                nuc.scorings += 1
                if not nucleate(st, cands, 0.0, rng, counts):
                    break
            self._quench(st, nuc, rng, counts, swaps=False)
            if st.energy < best[2] - 1e-9:
                best = (list(st.atoms), list(st.mass), st.energy)
                fails = 0
                counts.bump("tempered")
            else:
                st.set_atoms(best[0], best[1])
                fails += 1
            record(step0 + cycle + 1, 0.0)
        st.set_atoms(best[0], best[1])

    def _would_grow(self, st: PoolState, nuc: _Nucleator) -> bool:
        """Would one more atom lower the energy if the pool had room? (saturation)"""
        D = st.design
        cands = list(nuc.shortlist(st.atoms, fresh=True)) + budding_candidates(st)
        cands = [w for w in dict.fromkeys(cands) if w not in st.atoms]
        if not cands:
            return False
        rss, valid = D.candidate_rss(st.basis, D.raw_rows(cands))
        pen = st.pen + np.array([D.atom_penalty(w) for w in cands])
        E = np.where(valid, D.energy_from_rss(rss, pen), np.inf)
        return bool(np.min(E) < st.energy - 1e-9)

    def _crystallise(self, st: PoolState, L, Y, offset, scale, inputs, outputs,
                     active) -> Model:
        """Exact least-squares refit of gains, readouts and bias on every row."""
        order = list(range(st.k))
        if st.k:
            V = st.binding()
            order = sorted(order, key=lambda i: (-float(V[i]) if np.isfinite(V[i]) else 0.0,
                                                 st.atoms[i]))
        Wa = np.array([st.atoms[i] for i in order], dtype=np.float64).reshape(-1, active.size)
        if not self.quantize and Wa.shape[0]:
            D = st.design
            Wa = continuous_phase(D.L, D.Y, Wa, lambda rss, W_: D.energy_from_rss(
                rss, D.penalty_of([tuple(w) for w in W_])))
        W = np.zeros((Wa.shape[0], L.shape[1]))
        W[:, active] = Wa
        log_gain, readout, bias = _linear_fit(L, Y, W)
        return Model(offset, scale, W, log_gain, readout, bias, inputs, outputs,
                     quantized=self.quantize)


def _linear_fit(L, Y, W):
    """c_k normalises atom k to RMS 1 on the data; readouts and bias by least squares."""
    k = W.shape[0]
    if k == 0:
        return np.zeros(0), np.zeros((0, Y.shape[1])), Y.mean(axis=0)
    Z = L @ W.T
    zmax = Z.max(axis=0)
    log_rms = zmax + 0.5 * np.log(np.mean(np.exp(2.0 * (Z - zmax)), axis=0))
    c = -log_rms
    Phi = np.exp(Z + c)
    A = np.column_stack([np.ones(L.shape[0]), Phi])
    coef, *_ = np.linalg.lstsq(A, Y, rcond=None)
    return c, coef[1:], coef[0]


def _num(v):
    v = float(v)
    return v if math.isfinite(v) else None

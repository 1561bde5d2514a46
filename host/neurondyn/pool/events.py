"""The events of the pool dynamics, each a move on the integer exponent lattice.

The pool holds at most ``capacity`` atoms (the seed's total mass n).  Each
atom carries a mass; the unclaimed rest is the liquid.  At temperature tau:

- **nucleation**: a new atom forms where the residual's OLS score is highest
  (dictionary shortlist) or buds off next to an existing atom (a lattice
  neighbour); it takes its mass from the liquid.
- **growth / drift**: an atom steps to a neighbouring lattice point (one
  exponent +-1) -- downhill in energy on average.  This is what walks a
  "blend" atom onto a true one.
- **diffusion**: the randomness of every choice at temperature tau.  Local
  moves use heat-bath (Gibbs) sampling, p(option) ~ exp(-E(option)/tau) over
  the current state and all its alternatives; single proposals use Metropolis
  acceptance min(1, exp(-dE/tau)).  At tau = 0 both become strict descent.
- **ripening**: masses flow by the exponentiated-gradient rule (mirror descent
  with the negentropy potential) m_i <- m_i exp(eta (V_i - mean V)) and are
  renormalised so the atoms' total mass is conserved; V_i is the energy atom i
  binds (how much E rises without it).  Large atoms absorb small ones: a
  merge replaces two atoms by one lattice point between them, with the sum of
  their masses.
- **collapse**: an atom (chosen by small mass) dissolves back into the liquid
  when the energy without it is lower (Metropolis at tau).

Every option is scored by an exact least-squares refit (see ``energy``).
"""
from __future__ import annotations

import math
from itertools import product

import numpy as np

from ..model import EXPONENT_MAX, EXPONENT_MIN

RIPENING_RATE = 0.5
MIN_MASS = 1e-6
MERGE_OPTIONS = 24


def heat_bath(energies, tau, rng) -> int:
    """Index drawn with probability ~ exp(-E/tau); at tau = 0 the first minimum."""
    E = np.asarray(energies, dtype=np.float64)
    finite = np.isfinite(E)
    if not np.any(finite):
        return 0
    emin = E[finite].min()
    if tau <= 0:
        return int(np.flatnonzero(E == emin)[0])
    with np.errstate(over="ignore", invalid="ignore"):
        p = np.where(finite, np.exp(-(E - emin) / tau), 0.0)
    c = np.cumsum(p)
    u = rng.random() * c[-1]
    return int(min(np.searchsorted(c, u, side="right"), E.size - 1))


def metropolis(delta, tau, rng) -> bool:
    """Accept an energy change ``delta`` at temperature tau."""
    if not math.isfinite(delta):
        return False
    if delta <= 0:
        return True
    if tau <= 0:
        return False
    return rng.random() < math.exp(-delta / tau)


def step_atom(w, j, s):
    return w[:j] + (w[j] + s,) + w[j + 1:]


def move_target(w, t):
    """The atom reached from w by move t (j = t % d, s = +1 if t < d else -1)."""
    d = len(w)
    return step_atom(w, t % d, 1 if t < d else -1)


def move_penalties(D, w) -> np.ndarray:
    """(2d,) complexity penalty of the atom reached by each move of w."""
    wa = np.asarray(w)
    nnz = int(np.count_nonzero(wa))
    up = np.where(wa == 0, 1, np.where(wa == -1, -1, 0))      # moves +1
    down = np.where(wa == 0, 1, np.where(wa == 1, -1, 0))     # moves -1
    m = np.clip(nnz + np.concatenate([up, down]), 0, wa.size)
    return D.level_penalty[m]


def move_mask(w, others=()) -> np.ndarray:
    """(2d,) bool: which single-exponent moves of w stay in range, non-zero and untaken."""
    wa = np.asarray(w)
    d = wa.size
    ok = np.concatenate([wa < EXPONENT_MAX, wa > EXPONENT_MIN])
    nz = np.flatnonzero(wa)
    if nz.size == 1:
        j = nz[0]
        if wa[j] == 1:
            ok[d + j] = False
        elif wa[j] == -1:
            ok[j] = False
    if len(others):
        diff = np.asarray(others) - wa
        for r in np.flatnonzero(np.abs(diff).sum(axis=1) == 1):
            j = int(np.flatnonzero(diff[r])[0])
            ok[j if diff[r, j] > 0 else d + j] = False
    return ok


class PoolState:
    """Atoms (exponent tuples), their masses, and the exact refit of the set."""

    def __init__(self, design, capacity, atoms=(), masses=None):
        self.design = design
        self.capacity = int(capacity)
        self.atoms = [tuple(int(v) for v in w) for w in atoms]
        if masses is None:
            share = self.capacity / max(self.capacity, 1)
            masses = [share] * len(self.atoms)
        self.mass = [float(m) for m in masses]
        self.refresh()

    @property
    def k(self) -> int:
        return len(self.atoms)

    @property
    def liquid(self) -> float:
        return max(self.capacity - sum(self.mass), 0.0)

    def refresh(self):
        self.energy, self.rss, self.basis = self.design.state_energy(self.atoms)
        self.pen = self.design.penalty_of(self.atoms)
        self._binding = None
        self.memo = {}

    def binding(self) -> np.ndarray:
        """V_i = E(S without i) - E(S): the energy each atom binds."""
        if self._binding is None:
            if self.k == 0 or not math.isfinite(self.energy):
                self._binding = np.zeros(self.k)
            else:
                D = self.design
                rss = self.basis.removal_rss(D.Yc)
                pens = np.array([D.atom_penalty(w) for w in self.atoms])
                e = D.energy_from_rss(rss, self.pen - pens)
                self._binding = e - self.energy
        return self._binding

    def base_without(self, i):
        """Basis of every atom but i (memoised on the state)."""
        key = ("base", i)
        b = self.memo.get(key)
        if b is None:
            b = self.design.basis(self.atoms[:i] + self.atoms[i + 1:])
            self.memo[key] = b
        return b

    # -- mutations ------------------------------------------------------------
    def set_atoms(self, atoms, masses):
        self.atoms = list(atoms)
        self.mass = list(masses)
        self.refresh()

    def add(self, w):
        free = self.capacity - self.k
        m = self.liquid / free if free > 0 else MIN_MASS
        self.set_atoms(self.atoms + [w], self.mass + [max(m, MIN_MASS)])

    def remove(self, i):
        self.set_atoms(self.atoms[:i] + self.atoms[i + 1:], self.mass[:i] + self.mass[i + 1:])

    def replace(self, i, w):
        atoms = list(self.atoms)
        atoms[i] = w
        self.set_atoms(atoms, self.mass)

    def ripen(self, tau):
        """Exponentiated-gradient mass flow toward atoms that bind more energy."""
        if self.k < 2:
            return
        V = self.binding()
        if not np.all(np.isfinite(V)):
            return
        scale = tau + float(np.mean(np.abs(V))) + 1.0
        m = np.asarray(self.mass)
        total = m.sum()
        m = m * np.exp(RIPENING_RATE * (V - V.mean()) / scale)
        m = np.maximum(m * (total / m.sum()), MIN_MASS)
        self.mass = [float(v) for v in m]

    def pick_small(self, rng) -> int:
        """An atom chosen with probability ~ 1/mass (small atoms are fragile)."""
        inv = 1.0 / np.maximum(np.asarray(self.mass), MIN_MASS)
        c = np.cumsum(inv)
        return int(min(np.searchsorted(c, rng.random() * c[-1], side="right"), self.k - 1))


class Counters(dict):
    def bump(self, key, n=1):
        self[key] = self.get(key, 0) + n


# -- events --------------------------------------------------------------------
#
# Each event computes the energies of all its options by exact refits, then
# chooses.  The energies depend only on the state, so they are memoised on it
# (``PoolState.memo``, cleared whenever an atom changes): at low tau most
# proposals are declined and the same options come up again.

def _choose(st, E, tau, rng, counts):
    c = heat_bath(E, tau, rng)
    if c == 0:
        counts.bump("rejected")
    return c


def drift(st: PoolState, i: int, tau, rng, counts) -> bool:
    """Growth / drift: atom i moves to a lattice neighbour (heat-bath over all of them)."""
    key = ("drift", i)
    hit = st.memo.get(key)
    if hit is None:
        D = st.design
        w = st.atoms[i]
        others = st.atoms[:i] + st.atoms[i + 1:]
        ok = move_mask(w, others)
        base = st.base_without(i) if ok.any() else None
        if base is None or not base.ok:
            hit = None
        else:
            rss, valid = D.neighbour_rss(base, w)
            E = np.full(ok.size + 1, np.inf)
            E[0] = st.energy
            good = ok & valid
            pen = st.pen - D.atom_penalty(w) + move_penalties(D, w)
            E[1:][good] = D.energy_from_rss(rss[good], pen[good])
            hit = E
        st.memo[key] = hit
    return _heat_bath_step(st, hit, tau, rng, counts, "drifts",
                           lambda k: st.replace(i, move_target(st.atoms[i], k)))


def _add_energies(st, cands, rows=None):
    D = st.design
    GT = D.raw_rows(cands) if rows is None else rows
    rss, valid = D.candidate_rss(st.basis, GT)
    pen = st.pen + np.array([D.atom_penalty(w) for w in cands])
    return np.concatenate([[st.energy], np.where(valid, D.energy_from_rss(rss, pen), np.inf)])


def _heat_bath_step(st: PoolState, E, tau, rng, counts, kind, apply) -> bool:
    """The end of every move with candidates: heat-bath among staying (E[0]) and
    the candidates (E[1:]); ``apply(k)`` makes candidate k the new state."""
    if E is None:
        return False
    c = _choose(st, E, tau, rng, counts)
    if c == 0:
        return False
    apply(c - 1)
    counts.bump(kind)
    counts.bump("accepted")
    return True


def nucleate(st: PoolState, candidates, tau, rng, counts, kind="nucleations") -> bool:
    """Nucleation: heat-bath between the current state and each candidate atom added."""
    if st.k >= st.capacity:
        return False
    key = ("add", tuple(candidates))
    hit = st.memo.get(key)
    if hit is None:
        taken = set(st.atoms)
        cands = [w for w in candidates if w not in taken]
        hit = (cands, _add_energies(st, cands) if cands else None)
        st.memo[key] = hit
    cands, E = hit
    return _heat_bath_step(st, E, tau, rng, counts, kind, lambda k: st.add(cands[k]))


def _budding(st: PoolState):
    """[(atom index, move mask)]: every lattice neighbour of every atom, once, not an atom."""
    A = np.asarray(st.atoms)
    out = []
    for a, w in enumerate(st.atoms):
        ok = move_mask(w, st.atoms)
        d = len(w)
        # a neighbour shared with an earlier atom b (|a - b|_1 = 2) is listed under b
        for b in range(a):
            diff = A[b] - A[a]
            if np.abs(diff).sum() != 2:
                continue
            for j in np.flatnonzero(diff):
                s = 1 if diff[j] > 0 else -1
                ok[j if s > 0 else d + j] = False
        out.append(ok)
    return out


def budding_candidates(st: PoolState):
    """Every lattice neighbour of every atom, not already an atom (deterministic order)."""
    cands = []
    for w, ok in zip(st.atoms, _budding(st)):
        cands.extend(move_target(w, t) for t in np.flatnonzero(ok))
    return cands


def bud(st: PoolState, tau, rng, counts) -> bool:
    """Budding: a new atom nucleates at a lattice neighbour of an existing one."""
    if st.k == 0 or st.k >= st.capacity:
        return False
    hit = st.memo.get("bud")
    if hit is None:
        D = st.design
        Es, where = [np.array([st.energy])], []
        for a, (w, ok) in enumerate(zip(st.atoms, _budding(st))):
            if not ok.any():
                continue
            rss, valid = D.neighbour_rss(st.basis, w)
            good = np.flatnonzero(ok & valid)
            pen = st.pen + move_penalties(D, w)[good]
            Es.append(D.energy_from_rss(rss[good], pen))
            where.extend((a, int(t)) for t in good)
        hit = (where, np.concatenate(Es))
        st.memo["bud"] = hit
    where, E = hit
    if not where:
        return False
    return _heat_bath_step(st, E, tau, rng, counts, "buddings",
                           lambda k: st.add(move_target(st.atoms[where[k][0]], where[k][1])))


def swap(st: PoolState, i: int, candidates, tau, rng, counts, kind="swaps") -> bool:
    """A full pool exchanges atom i for a fresh nucleus (collapse + nucleation at once)."""
    key = ("swap", i, tuple(candidates))
    hit = st.memo.get(key)
    if hit is None:
        D = st.design
        taken = set(st.atoms)
        cands = [w for w in candidates if w not in taken]
        base = st.base_without(i) if cands else None
        if not cands or not base.ok:
            hit = (cands, None)
        else:
            rss, valid = D.candidate_rss(base, D.raw_rows(cands))
            pen = st.pen - D.atom_penalty(st.atoms[i]) + np.array([D.atom_penalty(w)
                                                                   for w in cands])
            hit = (cands, np.concatenate([[st.energy],
                                          np.where(valid, D.energy_from_rss(rss, pen),
                                                   np.inf)]))
        st.memo[key] = hit
    cands, E = hit
    return _heat_bath_step(st, E, tau, rng, counts, kind, lambda k: st.replace(i, cands[k]))


def collapse(st: PoolState, i: int, tau, rng, counts) -> bool:
    """Collapse: atom i dissolves into the liquid if the energy allows (Metropolis)."""
    delta = float(st.binding()[i])          # E(without i) - E
    if metropolis(delta, tau, rng):
        st.remove(i)
        counts.bump("collapses")
        counts.bump("accepted")
        return True
    counts.bump("rejected")
    return False


def merge_options(a, b, rng, limit=MERGE_OPTIONS):
    """Lattice points in the box spanned by atoms a and b (both ends first).

    Returns (options, exhaustive): a random sample when the box is too large.
    """
    diff = [j for j in range(len(a)) if a[j] != b[j]]
    size = 1
    for j in diff:
        size *= abs(a[j] - b[j]) + 1
    opts = [a, b]
    base = list(a)
    if size <= limit:
        for vals in product(*[range(min(a[j], b[j]), max(a[j], b[j]) + 1) for j in diff]):
            for j, v in zip(diff, vals):
                base[j] = v
            t = tuple(base)
            if t != a and t != b and any(t):
                opts.append(t)
        return opts, True
    lo = np.array([min(a[j], b[j]) for j in diff])
    hi = np.array([max(a[j], b[j]) for j in diff])
    seen = {a, b}
    for _ in range(limit * 3):
        for j, v in zip(diff, rng.integers(lo, hi + 1)):
            base[j] = int(v)
        t = tuple(base)
        if t not in seen and any(t):
            seen.add(t)
            opts.append(t)
        if len(opts) >= limit:
            break
    return opts, False


def merge(st: PoolState, i: int, tau, rng, counts) -> bool:
    """Ripening by merger: atom i and a nearby heavier atom j become one atom between them."""
    if st.k < 2:
        return False
    A = np.asarray(st.atoms)
    dist = np.abs(A - A[i]).sum(axis=1).astype(float)
    weight = np.asarray(st.mass) * np.exp(-dist)
    weight[i] = 0.0
    c = np.cumsum(weight)
    if c[-1] <= 0:
        return False
    j = int(min(np.searchsorted(c, rng.random() * c[-1], side="right"), st.k - 1))
    return merge_pair(st, i, j, tau, rng, counts)


def merge_pair(st: PoolState, i: int, j: int, tau, rng, counts) -> bool:
    key = ("merge", min(i, j), max(i, j))
    hit = st.memo.get(key)
    if hit is None:
        D = st.design
        a, b = st.atoms[i], st.atoms[j]
        others = [w for t, w in enumerate(st.atoms) if t not in (i, j)]
        opts, exhaustive = merge_options(a, b, rng)
        taken = set(others)
        opts = [w for w in opts if w not in taken]
        base = D.basis(others) if opts else None
        if not opts or not base.ok:
            hit = (opts, None)
        else:
            rss, valid = D.candidate_rss(base, D.raw_rows(opts))
            pen = (st.pen - D.atom_penalty(a) - D.atom_penalty(b)
                   + np.array([D.atom_penalty(w) for w in opts]))
            hit = (opts, np.concatenate([[st.energy],
                                         np.where(valid, D.energy_from_rss(rss, pen),
                                                  np.inf)]))
        if exhaustive:
            st.memo[key] = hit
    opts, E = hit

    def merged(k):
        m = st.mass[i] + st.mass[j]
        atoms = [w for t, w in enumerate(st.atoms) if t not in (i, j)] + [opts[k]]
        masses = [mm for t, mm in enumerate(st.mass) if t not in (i, j)] + [m]
        st.set_atoms(atoms, masses)
    return _heat_bath_step(st, E, tau, rng, counts, "merges", merged)

"""Benchmark problems: synthetic sums of K monomials and a set of physics laws.

Why these problems: a sum of K monomials with integer exponents in {-2..2} is
exactly what a crystallised model represents with K atoms, so "did the annealer
find the same atoms?" is a yes/no question with a known answer.  The physics
laws are the same question asked with formulas people recognise.

Public seeds.  The recovery grid is enumerated in a fixed order; problem ``i``
of structure cell ``c`` uses ``seed = problem_seed(c, i) = 1000 * c + i``.  A
structure cell is (x_range, d, K) -- the noise level is *not* part of it:
``make_problem`` draws the structure, the inputs and a standard-normal noise
vector from the seed in that order, then scales the noise vector by the noise
level.  So the 0 %, 1 % and 10 % versions of a problem share atoms, inputs and
noise direction, and a cell's result moves with the noise alone.

Noise follows SRBench: Gaussian with sd = noise * RMS(y_clean), added to the
training targets only; the test targets are clean.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

NONZERO_EXPONENTS = (-2, -1, 1, 2)


@dataclass
class Problem:
    """One regression problem with a known power-law structure.

    ``exponents`` (K, d) and ``coefficients`` (K,) define the clean target
    ``y = sum_k coefficients[k] * prod_j X[:, j] ** exponents[k, j]``.
    ``Y`` and ``Y_test`` are 1-D (one output).
    """
    X: np.ndarray
    Y: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray
    exponents: np.ndarray
    coefficients: np.ndarray
    name: str
    seed: int = 0
    noise: float = 0.0
    inputs: list = field(default_factory=list)

    @property
    def d(self) -> int:
        return self.X.shape[1]

    @property
    def K(self) -> int:
        return self.exponents.shape[0]

    def atom_set(self) -> set:
        """The true structure as a set of exponent tuples (compare with Model.atom_set())."""
        return {tuple(int(v) for v in w) for w in self.exponents}


def monomials(X, exponents) -> np.ndarray:
    """phi[:, k] = prod_j X[:, j] ** exponents[k, j], computed in log space."""
    X = np.asarray(X, dtype=np.float64)
    W = np.asarray(exponents, dtype=np.float64).reshape(-1, X.shape[1])
    return np.exp(np.log(X) @ W.T)


def problem_seed(cell_index: int, problem_index: int) -> int:
    """The documented public seed of problem ``problem_index`` in structure cell ``cell_index``."""
    return 1000 * int(cell_index) + int(problem_index)


def random_atoms(rng, d: int, K: int, max_nonzero: int = 3) -> np.ndarray:
    """K distinct exponent vectors, each with 1..max_nonzero entries from {+-1, +-2}."""
    atoms, seen = [], set()
    while len(atoms) < K:
        nnz = int(rng.integers(1, min(max_nonzero, d) + 1))
        idx = rng.choice(d, size=nnz, replace=False)
        w = np.zeros(d, dtype=np.int64)
        w[idx] = rng.choice(NONZERO_EXPONENTS, size=nnz)
        key = tuple(w)
        if key not in seen:
            seen.add(key)
            atoms.append(w)
    return np.array(atoms, dtype=np.int64).reshape(K, d)


def random_crystal(d_in: int, d_out: int, k: int, seed: int, output_prefix: str = "y"):
    """A crystallised model of the annealer's kind drawn from ``seed``: k atoms with 2-4
    non-zero exponents in {±1, ±2}, log-gains U[-1, 1], readout U[-2, 2], bias U[-1, 1],
    rounded to float32. At 30 -> 12, K = 6 it is the memory target of the board issues
    (the robot-dog size); the device-side tests and `ndyn bench feeling` serve it."""
    from ..model import Model
    rng = np.random.default_rng(seed)
    w = np.zeros((k, d_in))
    for a in range(k):
        js = rng.choice(d_in, size=rng.integers(2, 5), replace=False)
        w[a, js] = rng.choice([-2, -1, 1, 2], size=js.size)
    return Model(np.zeros(d_in), np.ones(d_in), w, rng.uniform(-1, 1, k),
                 rng.uniform(-2, 2, (k, d_out)), rng.uniform(-1, 1, d_out),
                 ["s%02d" % j for j in range(d_in)],
                 ["%s%d" % (output_prefix, i) for i in range(d_out)]).rounded_to_float32()


def make_problem(d, K, noise, seed, x_range=(1.0, 5.0), n=2000, n_test=1000,
                 max_nonzero=3) -> Problem:
    """A random sum of K distinct monomials in d inputs (see the module docstring).

    Draw order from ``np.random.default_rng(seed)``: atoms, coefficients,
    training inputs, test inputs, standard-normal noise -- fixed so that the
    same seed gives the same problem at every noise level.
    """
    if K < 1 or d < 1:
        raise ValueError("need d >= 1 and K >= 1")
    rng = np.random.default_rng(int(seed))
    W = random_atoms(rng, d, K, max_nonzero)
    coef = rng.uniform(0.5, 2.0, size=K) * rng.choice((-1.0, 1.0), size=K)
    lo, hi = float(x_range[0]), float(x_range[1])
    X = rng.uniform(lo, hi, size=(n, d))
    X_test = rng.uniform(lo, hi, size=(n_test, d))
    z = rng.standard_normal(n)
    y_clean = monomials(X, W) @ coef
    Y = y_clean + float(noise) * rms(y_clean) * z
    Y_test = monomials(X_test, W) @ coef
    name = "d%d-K%d-n%g-x%g_%g-s%d" % (d, K, noise, lo, hi, seed)
    return Problem(X, Y, X_test, Y_test, W, coef, name, int(seed), float(noise),
                   ["x%d" % (j + 1) for j in range(d)])


def rms(y) -> float:
    y = np.asarray(y, dtype=np.float64)
    return float(np.sqrt(np.mean(y * y)))


def relative_rmse(y_true, y_pred) -> float:
    """RMSE(y_pred - y_true) / RMS(y_true): the error measure of every benchmark table."""
    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    denom = rms(y_true)
    return rms(y_pred - y_true) / (denom if denom > 0 else 1.0)


# -- physics laws --------------------------------------------------------------

@dataclass
class Law:
    """A well-known law that is a sum of monomials with exponents in {-2..2}.

    ``fn`` is written the way a physicist writes the formula (independently of
    ``exponents``/``coefficients``, so the two can check each other);
    ``exponents`` (K, d) and ``coefficients`` (K,) are its monomial expansion;
    ``ranges`` gives a plausible (low, high) per input in the stated units.
    """
    name: str
    inputs: list
    formula: str
    fn: Callable
    exponents: np.ndarray
    coefficients: np.ndarray
    ranges: list

    def atom_set(self) -> set:
        return {tuple(int(v) for v in w) for w in self.exponents}

    @property
    def d(self) -> int:
        return len(self.inputs)

    def sample(self, n, rng) -> np.ndarray:
        lo = np.array([r[0] for r in self.ranges], dtype=np.float64)
        hi = np.array([r[1] for r in self.ranges], dtype=np.float64)
        return rng.uniform(lo, hi, size=(n, self.d))

    def evaluate(self, X) -> np.ndarray:
        """Call ``fn`` with one column per input name."""
        X = np.asarray(X, dtype=np.float64)
        return np.asarray(self.fn(*[X[:, j] for j in range(self.d)]), dtype=np.float64)


G_EARTH = 9.81
G_NEWTON = 6.674e-11
K_COULOMB_UC = 8.988e-3      # N m^2 / uC^2 (charges in microcoulomb)
R_GAS = 8.314


def _law(name, inputs, formula, fn, terms, ranges):
    """terms: list of (coefficient, {input: exponent}) -> Law with arrays."""
    W = np.zeros((len(terms), len(inputs)), dtype=np.int64)
    coef = np.zeros(len(terms))
    for k, (a, exps) in enumerate(terms):
        coef[k] = a
        for key, e in exps.items():
            W[k, inputs.index(key)] = e
    return Law(name, list(inputs), formula, fn, W, coef, list(ranges))


def physics_laws() -> list:
    """At least 12 laws, single monomials and 2-3-term sums, in practical units."""
    return [
        _law("electrical_power", ["V", "R"], "P = V^2 / R",
             lambda V, R: V ** 2 / R, [(1.0, {"V": 2, "R": -1})], [(1, 12), (2, 20)]),
        _law("ohm_current", ["V", "R"], "I = V / R",
             lambda V, R: V / R, [(1.0, {"V": 1, "R": -1})], [(1, 12), (2, 20)]),
        _law("coulomb", ["q1", "q2", "r"], "F = k q1 q2 / r^2  (q in uC)",
             lambda q1, q2, r: K_COULOMB_UC * q1 * q2 / r ** 2,
             [(K_COULOMB_UC, {"q1": 1, "q2": 1, "r": -2})], [(1, 5), (1, 5), (0.1, 0.5)]),
        _law("gravitation", ["m1", "m2", "r"], "F = G m1 m2 / r^2",
             lambda m1, m2, r: G_NEWTON * m1 * m2 / r ** 2,
             [(G_NEWTON, {"m1": 1, "m2": 1, "r": -2})], [(10, 100), (10, 100), (0.5, 3)]),
        _law("ideal_gas", ["n", "T", "V"], "P = n R T / V",
             lambda n, T, V: n * R_GAS * T / V,
             [(R_GAS, {"n": 1, "T": 1, "V": -1})], [(0.5, 3), (250, 400), (0.01, 0.05)]),
        _law("drag", ["rho", "v", "Cd", "A"], "F = 1/2 rho v^2 Cd A",
             lambda rho, v, Cd, A: 0.5 * rho * v ** 2 * Cd * A,
             [(0.5, {"rho": 1, "v": 2, "Cd": 1, "A": 1})],
             [(0.9, 1.3), (5, 30), (0.2, 1.2), (0.5, 3)]),
        _law("hooke_energy", ["k", "x"], "E = 1/2 k x^2",
             lambda k, x: 0.5 * k * x ** 2, [(0.5, {"k": 1, "x": 2})], [(10, 200), (0.01, 0.1)]),
        _law("kinetic_energy", ["m", "v"], "E = 1/2 m v^2",
             lambda m, v: 0.5 * m * v ** 2, [(0.5, {"m": 1, "v": 2})], [(0.5, 5), (1, 10)]),
        _law("centripetal_force", ["m", "v", "r"], "F = m v^2 / r",
             lambda m, v, r: m * v ** 2 / r, [(1.0, {"m": 1, "v": 2, "r": -1})],
             [(0.5, 5), (1, 10), (0.5, 4)]),
        _law("wire_force", ["B", "I", "L"], "F = B I L",
             lambda B, I, L: B * I * L, [(1.0, {"B": 1, "I": 1, "L": 1})],
             [(0.1, 1), (1, 10), (0.1, 1)]),
        _law("joule_heat", ["I", "R", "t"], "Q = I^2 R t",
             lambda I, R, t: I ** 2 * R * t, [(1.0, {"I": 2, "R": 1, "t": 1})],
             [(0.5, 3), (1, 10), (1, 60)]),
        _law("mechanical_energy", ["m", "v", "h"], "E = 1/2 m v^2 + m g h",
             lambda m, v, h: 0.5 * m * v ** 2 + m * G_EARTH * h,
             [(0.5, {"m": 1, "v": 2}), (G_EARTH, {"m": 1, "h": 1})],
             [(0.5, 5), (1, 10), (0.5, 5)]),
        _law("thin_lens", ["u", "v"], "1/f = 1/u + 1/v",
             lambda u, v: 1.0 / u + 1.0 / v, [(1.0, {"u": -1}), (1.0, {"v": -1})],
             [(0.1, 1), (0.1, 1)]),
        _law("free_fall_height", ["v0", "t"], "h = v0 t - 1/2 g t^2",
             lambda v0, t: v0 * t - 0.5 * G_EARTH * t ** 2,
             [(1.0, {"v0": 1, "t": 1}), (-0.5 * G_EARTH, {"t": 2})], [(10, 30), (0.2, 2)]),
        _law("two_resistor_power", ["V", "R1", "R2"], "P = V^2/R1 + V^2/R2",
             lambda V, R1, R2: V ** 2 / R1 + V ** 2 / R2,
             [(1.0, {"V": 2, "R1": -1}), (1.0, {"V": 2, "R2": -1})],
             [(1, 12), (2, 20), (2, 20)]),
        _law("oscillator_energy", ["k", "x", "m", "v"], "E = 1/2 k x^2 + 1/2 m v^2",
             lambda k, x, m, v: 0.5 * k * x ** 2 + 0.5 * m * v ** 2,
             [(0.5, {"k": 1, "x": 2}), (0.5, {"m": 1, "v": 2})],
             [(50, 500), (0.05, 0.3), (0.5, 5), (0.2, 2)]),
        _law("bernoulli_total_pressure", ["p", "rho", "v", "h"], "P = p + 1/2 rho v^2 + rho g h",
             lambda p, rho, v, h: p + 0.5 * rho * v ** 2 + rho * G_EARTH * h,
             [(1.0, {"p": 1}), (0.5, {"rho": 1, "v": 2}), (G_EARTH, {"rho": 1, "h": 1})],
             [(1e3, 5e3), (800, 1200), (0.5, 3), (0.05, 0.5)]),
        _law("spring_mass_total_energy", ["m", "v", "h", "k", "x"],
             "E = 1/2 m v^2 + m g h + 1/2 k x^2",
             lambda m, v, h, k, x: 0.5 * m * v ** 2 + m * G_EARTH * h + 0.5 * k * x ** 2,
             [(0.5, {"m": 1, "v": 2}), (G_EARTH, {"m": 1, "h": 1}), (0.5, {"k": 1, "x": 2})],
             [(0.5, 5), (0.5, 3), (0.1, 1), (20, 200), (0.05, 0.3)]),
    ]


def law_problem(law: Law, noise: float, seed: int, n=2000, n_test=1000) -> Problem:
    """A Problem from a law: inputs uniform on its ranges, SRBench noise on training targets."""
    rng = np.random.default_rng(int(seed))
    X = law.sample(n, rng)
    X_test = law.sample(n_test, rng)
    z = rng.standard_normal(n)
    y_clean = law.evaluate(X)
    Y = y_clean + float(noise) * rms(y_clean) * z
    return Problem(X, Y, X_test, law.evaluate(X_test), law.exponents.copy(),
                   law.coefficients.copy(), "%s-n%g" % (law.name, noise), int(seed),
                   float(noise), list(law.inputs))

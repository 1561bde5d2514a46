"""Bundled datasets, generated deterministically and committed under ``neurondyn/data/``.

Each dataset is a known law sampled with fixed public seeds, so the demo and
the tests can check that annealing finds *the* structure, not just a good fit:

- ``coulomb``: Coulomb's law ``F = k q1 q2 / r^2`` in SI units (one atom).
- ``energy``: kinetic plus potential energy ``E = 0.5 m v^2 + 9.81 m h`` (two atoms).
- ``robot_dog``: a quadruped-sized controller: 30 sensors (12 joint angles,
  4 foot forces, 6 IMU channels, body and command signals) -> 12 joint torques.
  The truth is K = 6 atoms shared by all actuators (2-4 non-zero exponents
  each, every exponent in {-2..2}); each torque is a sparse signed mix of them.

All sensor ranges are strictly positive, so the channel map the annealer picks
is the identity and the law below is exactly a sum of monomials of the inputs
it sees.  Inputs are rounded to the printed precision *before* the outputs are
computed, so the only deviation from the law is the stated measurement noise.

Regenerate (byte-identical) with ``python -m neurondyn.datasets``;
``python -m neurondyn.datasets --check`` verifies the committed files.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

import numpy as np

from .paths import data_dir

COULOMB_K = 8.9875517923e9
G = 9.81


@dataclass
class Dataset:
    name: str
    filename: str
    inputs: list
    outputs: list
    truth: list                       # atoms: [{input name: exponent}], the law's structure
    description: str
    rows: int
    noise: float                      # Gaussian noise, fraction of RMS(y) per output
    pool: int = None                  # None: the default pool (d_in)
    schedule: str = None              # the demo's schedule; None: the annealer's default
    generate: object = field(default=None, repr=False)

    @property
    def path(self):
        return data_dir() / self.filename

    def truth_set(self):
        """The structure as a set of exponent tuples (comparable to ``Model.atom_set()``)."""
        return {tuple(int(atom.get(n, 0)) for n in self.inputs) for atom in self.truth}


def _fmt(v):
    return "%.7g" % v


def _table(header, columns) -> str:
    lines = [",".join(header)]
    for row in zip(*columns):
        lines.append(",".join(_fmt(v) for v in row))
    return "\n".join(lines) + "\n"


def _rounded(values):
    """Round to the precision written to the file, so outputs use exactly the stored inputs."""
    return np.array([float(_fmt(v)) for v in values])


def _noisy(rng, y, noise):
    rms = float(np.sqrt(np.mean(y * y)))
    return y + rng.normal(0.0, noise * rms, size=y.shape)


# ---------------------------------------------------------------------------
def _coulomb(ds):
    rng = np.random.default_rng(20260101)
    q1 = _rounded(rng.uniform(1e-6, 5e-6, ds.rows))
    q2 = _rounded(rng.uniform(1e-6, 5e-6, ds.rows))
    r = _rounded(rng.uniform(0.05, 0.5, ds.rows))
    F = _noisy(rng, COULOMB_K * q1 * q2 / r ** 2, ds.noise)
    return _table(ds.inputs + ds.outputs, [q1, q2, r, F])


def _energy(ds):
    rng = np.random.default_rng(20260102)
    m = _rounded(rng.uniform(0.5, 5.0, ds.rows))
    v = _rounded(rng.uniform(0.5, 5.0, ds.rows))
    h = _rounded(rng.uniform(0.5, 5.0, ds.rows))
    E = _noisy(rng, 0.5 * m * v ** 2 + G * m * h, ds.noise)
    return _table(ds.inputs + ds.outputs, [m, v, h, E])


LEGS = ("fl", "fr", "rl", "rr")
JOINTS = ("hip", "thigh", "knee")

# name -> (low, high): every range positive, most spanning a factor >= 3 so
# that exponents are identifiable from the data.
DOG_SENSORS = (
    [("%s_%s_pos" % (leg, j), (0.5, 2.0)) for leg in LEGS for j in JOINTS]
    + [("%s_foot_force" % leg, (5.0, 60.0)) for leg in LEGS]
    + [("imu_ax", (0.5, 2.0)), ("imu_ay", (0.5, 2.0)), ("imu_az", (8.0, 12.0)),
       ("imu_gx", (0.5, 2.0)), ("imu_gy", (0.5, 2.0)), ("imu_gz", (0.5, 2.0))]
    + [("body_height", (0.15, 0.45)), ("speed_cmd", (0.2, 1.5)), ("turn_cmd", (0.5, 2.0)),
       ("battery_v", (21.0, 25.2)), ("payload_kg", (1.0, 5.0)), ("stride_hz", (1.0, 3.0)),
       ("motor_temp", (30.0, 70.0)), ("step_height", (0.03, 0.1))]
)
DOG_ACTUATORS = ["%s_%s_torque" % (leg, j) for leg in LEGS for j in JOINTS]
DOG_TRUTH = [
    {"fl_foot_force": 1, "fl_thigh_pos": 1, "fl_knee_pos": -1},
    {"rr_foot_force": 1, "rr_knee_pos": 2},
    {"payload_kg": 1, "body_height": 1, "step_height": -1},
    {"speed_cmd": 2, "stride_hz": 1},
    {"imu_gx": 1, "imu_gy": 1, "turn_cmd": -1, "fr_hip_pos": -1},
    {"rl_foot_force": 1, "imu_ax": 1, "rl_hip_pos": -2},
]


def _robot_dog(ds):
    rng = np.random.default_rng(20260103)
    names = [n for n, _ in DOG_SENSORS]
    X = np.column_stack([_rounded(rng.uniform(lo, hi, ds.rows)) for _, (lo, hi) in DOG_SENSORS])
    W = np.array([[atom.get(n, 0) for n in names] for atom in DOG_TRUTH], dtype=float)
    phi = np.exp(np.log(X) @ W.T)                       # (rows, K)
    phi = phi / np.sqrt(np.mean(phi ** 2, axis=0))     # every atom equally visible (RMS 1)
    K, d_out = len(DOG_TRUTH), len(DOG_ACTUATORS)
    # Sparse signed mixing: each actuator uses 2-3 atoms, every atom drives some actuator.
    A = np.zeros((K, d_out))
    for i in range(d_out):
        size = 2 + (i % 2)
        if i < K:
            others = [k for k in range(K) if k != i]
            ks = np.concatenate([[i], rng.choice(others, size=size - 1, replace=False)])
        else:
            ks = rng.choice(K, size=size, replace=False)
        A[ks, i] = rng.uniform(0.5, 2.0, ks.size) * rng.choice([-1.0, 1.0], ks.size)
    Y = np.column_stack([_noisy(rng, phi @ A[:, i], ds.noise) for i in range(d_out)])
    return _table(names + DOG_ACTUATORS, [X[:, j] for j in range(X.shape[1])]
                  + [Y[:, i] for i in range(d_out)])


DATASETS = {
    "coulomb": Dataset(
        "coulomb", "coulomb.csv", ["q1", "q2", "r"], ["F"],
        [{"q1": 1, "q2": 1, "r": -2}],
        "Coulomb's law F = k q1 q2 / r^2 (SI units, k = 8.99e9 N m^2/C^2), 0.1 % noise",
        rows=300, noise=0.001, generate=_coulomb),
    "energy": Dataset(
        "energy", "energy.csv", ["m", "v", "h"], ["E"],
        [{"m": 1, "v": 2}, {"m": 1, "h": 1}],
        "kinetic + potential energy E = 0.5 m v^2 + 9.81 m h, 0.1 % noise",
        rows=300, noise=0.001, generate=_energy),
    "robot_dog": Dataset(
        "robot_dog", "robot_dog.csv", [n for n, _ in DOG_SENSORS], list(DOG_ACTUATORS),
        DOG_TRUTH,
        "quadruped controller: 30 sensors -> 12 joint torques sharing K = 6 atoms, 0.1 % noise",
        rows=1000, noise=0.001, generate=_robot_dog,
        # half the default steps: still exact here (seeds 0 and 1), and keeps
        # `ndyn demo` well under 3 minutes on 2 busy cores
        schedule="geometric:30:0.02:2000"),
}


def render(name: str) -> str:
    """The CSV text of one bundled dataset (deterministic)."""
    ds = DATASETS[name]
    return ds.generate(ds)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate or check the bundled datasets.")
    parser.add_argument("--check", action="store_true",
                        help="verify the committed files instead of writing them")
    args = parser.parse_args(argv)
    from .fsutil import atomic_write_text
    bad = 0
    for name, ds in DATASETS.items():
        text = render(name)
        if args.check:
            ok = ds.path.exists() and ds.path.read_text(encoding="utf-8") == text
            print("%-10s %s" % (name, "ok" if ok else "DIFFERS"))
            bad += not ok
        else:
            ds.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(ds.path, text)
            ds.path.chmod(0o644)           # package data: readable by everyone
            print("wrote %s (%d rows)" % (ds.path, ds.rows))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""The annealer: exact recovery, determinism, schedules, saturation, remelting."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from neurondyn import ndm
from neurondyn.anneal import Annealer, parse_schedule
from neurondyn.bench.problems import make_problem
from neurondyn.model import Model

FAST = "geometric:30:0.02:1500"


def atoms_of(model):
    return model.atom_set()


def test_recovers_d3_k2_exactly():
    p = make_problem(3, 2, 0.0, seed=3002)
    ann = Annealer(seed=0).fit(p.X, p.Y)
    assert atoms_of(ann.model_) == p.atom_set()
    assert ann.k_star_ == 2
    assert ann.loss_ < 1e-9
    assert not ann.saturated_
    assert np.allclose(ann.predict(p.X_test)[:, 0], p.Y_test, rtol=1e-6, atol=1e-9)


def test_recovers_coulomb_with_permittivity():
    # F = q1 q2 / (4 pi eps r^2): one atom with four non-zero exponents, outside the
    # nucleation dictionary (<= 3), so drift on the lattice has to finish the job.
    rng = np.random.default_rng(7)
    n = 800
    q1, q2 = rng.uniform(1, 5, n), rng.uniform(1, 5, n)
    eps, r = rng.uniform(1, 4, n), rng.uniform(0.5, 3, n)
    F = q1 * q2 / (4 * np.pi * eps * r ** 2)
    X = np.column_stack([q1, q2, eps, r])
    ann = Annealer(seed=1).fit(X, F, inputs=["q1", "q2", "eps", "r"], outputs=["F"])
    assert atoms_of(ann.model_) == {(1, 1, -1, -2)}
    m = ann.model_
    gain = float(m.readout[0, 0] * np.exp(m.log_gain[0]))
    assert gain == pytest.approx(1 / (4 * np.pi), rel=1e-6)
    assert m.bias[0] == pytest.approx(0.0, abs=1e-9)


def test_recovers_two_term_law_with_noise():
    # E = 1/2 m v^2 + g m h at 1 % noise
    rng = np.random.default_rng(11)
    n = 1000
    m, v, h = rng.uniform(0.5, 5, n), rng.uniform(1, 10, n), rng.uniform(0.5, 5, n)
    E = 0.5 * m * v ** 2 + 9.81 * m * h
    E = E + 0.01 * np.sqrt(np.mean(E ** 2)) * rng.standard_normal(n)
    ann = Annealer(seed=0).fit(np.column_stack([m, v, h]), E)
    assert atoms_of(ann.model_) == {(1, 2, 0), (1, 0, 1)}


def test_energy_prices_an_atom_within_its_level():
    import math
    from neurondyn.pool.energy import Design
    rng = np.random.default_rng(0)
    D = Design(np.log(rng.uniform(1, 5, size=(500, 10))), rng.standard_normal(500))
    for m, p in ((1, 40), (2, 720), (3, 7680)):       # C(10, m) 4^m atoms per level
        assert D.level_penalty[m] == pytest.approx(math.log(500) + 2 * math.log(p))
    assert D.atom_penalty((0, 2, 0, 0, 0, 0, 0, 0, 0, 0)) == pytest.approx(D.level_penalty[1])
    assert D.atom_penalty((1, 1, 1, 1, 0, 0, 0, 0, 0, 0)) > D.level_penalty[3]


def test_keeps_a_weak_simple_atom_at_one_percent_noise():
    # grid problem d = 10, K = 4, 1 % noise (seed 6017): one true atom is a single power
    # whose fit gain (~25) is below the whole-dictionary price (log n + 2 log 8440 = 25.7)
    # and well above its level's (log n + 2 log 40 = 15.0) and any chance gain of its
    # level (<= 6.4 on this problem)
    p = make_problem(10, 4, 0.01, seed=6017)
    ann = Annealer(seed=0).fit(p.X, p.Y)
    assert atoms_of(ann.model_) == p.atom_set() and ann.k_star_ == 4


def test_deterministic_bytes_in_process_and_across_processes(tmp_path):
    p = make_problem(5, 2, 0.01, seed=5002, n=500)
    a = ndm.dumps(Annealer(seed=4, schedule=FAST).fit(p.X, p.Y).model_)
    b = ndm.dumps(Annealer(seed=4, schedule=FAST).fit(p.X, p.Y).model_)
    assert a == b
    np.save(tmp_path / "X.npy", p.X)
    np.save(tmp_path / "Y.npy", p.Y)
    code = (
        "import sys, numpy as np\n"
        "from neurondyn import ndm\n"
        "from neurondyn.anneal import Annealer\n"
        "X = np.load(sys.argv[1]); Y = np.load(sys.argv[2])\n"
        "m = Annealer(seed=4, schedule=%r).fit(X, Y).model_\n"
        "sys.stdout.write(ndm.dumps(m).hex())\n" % FAST)
    env = dict(os.environ, PYTHONHASHSEED="123")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "X.npy"),
                          str(tmp_path / "Y.npy")], capture_output=True, text=True,
                         env=env, check=True).stdout
    assert bytes.fromhex(out) == a


def test_different_seeds_still_find_the_truth():
    p = make_problem(4, 2, 0.0, seed=4002, n=600)
    for seed in (1, 2):
        ann = Annealer(seed=seed, schedule=FAST).fit(p.X, p.Y)
        assert atoms_of(ann.model_) == p.atom_set()


@pytest.mark.parametrize("text", [
    "quadratic:30:0.02:4000",     # unknown kind
    "geometric:abc:0.02:4000",    # not a number
    "geometric:30:0:4000",        # geometric needs tau_end > 0
    "geometric:0.01:1:100",       # heats instead of cooling
    "linear:30:0.02:-5",          # steps must be positive
    "linear:30:0.02:12.5",        # steps must be an integer
    "geometric:30:0.02:4000:9",   # too many fields
    "geometric:nan:0.02:100",
    "geometric:-3:0.02:100",
])
def test_bad_schedules_raise_one_line_value_errors(text):
    with pytest.raises(ValueError) as exc:
        parse_schedule(text)
    msg = str(exc.value)
    assert msg and "\n" not in msg


def test_schedule_parsing_and_defaults():
    s = parse_schedule("geometric:30:0.02:4000")
    assert (s.kind, s.tau_start, s.tau_end, s.steps) == ("geometric", 30.0, 0.02, 4000)
    assert s.tau(0) == pytest.approx(30.0) and s.tau(3999) == pytest.approx(0.02)
    assert parse_schedule(None) == parse_schedule("") == s
    lin = parse_schedule("linear:10:0:11")
    assert [round(lin.tau(t), 9) for t in (0, 5, 10)] == [10.0, 5.0, 0.0]
    assert parse_schedule(lin.text) == lin
    assert parse_schedule("linear").kind == "linear"
    assert parse_schedule("geometric:5:0.1").steps == 4000
    with pytest.raises(ValueError):
        Annealer(schedule="nope")


def test_pool_saturation_is_flagged():
    p = make_problem(3, 4, 0.0, seed=3004, n=600)
    assert p.K == 4
    ann = Annealer(pool=3, seed=0, schedule=FAST).fit(p.X, p.Y)
    assert ann.k_star_ == 3
    assert ann.saturated_ is True
    assert ann.report_["saturated"] is True
    roomy = Annealer(pool=8, seed=0, schedule=FAST).fit(p.X, p.Y)
    assert roomy.saturated_ is False
    assert atoms_of(roomy.model_) == p.atom_set()


def test_remelting_absorbs_a_changed_exponent():
    rng = np.random.default_rng(21)
    n = 600
    X = rng.uniform(1, 5, size=(n, 3))
    y_old = 2 * X[:, 0] * X[:, 1] / X[:, 2]
    y_new = 2 * X[:, 0] * X[:, 1] ** 2 / X[:, 2]
    old = Annealer(seed=0, schedule=FAST).fit(X, y_old).model_
    assert old.atom_set() == {(1, 1, -1)}
    ann = Annealer(seed=0, schedule=FAST, reheat=3.0).fit(X, y_new, init=old)
    assert ann.model_.atom_set() == {(1, 2, -1)}
    assert ann.report_["params"]["remelted"] is True
    assert np.array_equal(ann.model_.offset, old.offset)
    assert np.array_equal(ann.model_.scale, old.scale)


def test_remelting_keeps_the_init_channel_map():
    rng = np.random.default_rng(5)
    X = rng.uniform(1, 5, size=(400, 2))
    init = Model(offset=[-1.0, 0.0], scale=[0.5, 1.0], exponents=[[1, 0]], log_gain=[0.0],
                 readout=[[1.0]], bias=[0.0])
    x = init.scale * (X - init.offset)
    y = 3 * x[:, 0] * x[:, 1]
    ann = Annealer(seed=0, schedule=FAST, reheat=5.0).fit(X, y, init=init)
    assert np.array_equal(ann.model_.offset, init.offset)
    assert ann.model_.atom_set() == {(1, 1)}


def test_quantize_false_refines_continuous_exponents():
    rng = np.random.default_rng(3)
    X = rng.uniform(1, 5, size=(500, 2))
    y = 1.5 * X[:, 0] ** 1.3 / X[:, 1]
    ann = Annealer(seed=0, schedule=FAST, quantize=False).fit(X, y)
    m = ann.model_
    assert m.quantized is False
    assert m.k_star == 1
    assert m.exponents[0, 0] == pytest.approx(1.3, abs=1e-3)
    assert m.exponents[0, 1] == pytest.approx(-1.0, abs=1e-3)
    back = ndm.loads(ndm.dumps(m))
    assert back.quantized is False
    assert ann.loss_ < 1e-4


def test_multi_output_shares_atoms():
    rng = np.random.default_rng(8)
    n = 800
    X = rng.uniform(1, 5, size=(n, 5))
    a1 = X[:, 0] * X[:, 1] ** 2
    a2 = X[:, 3] / X[:, 4]
    Y = np.column_stack([a1 - 0.5 * a2, 2 * a2, 0.7 * a1 + a2 + 1.0])
    ann = Annealer(seed=0).fit(X, Y, outputs=["u", "v", "w"])
    m = ann.model_
    assert m.d_out == 3 and m.outputs == ["u", "v", "w"]
    assert m.atom_set() == {(1, 2, 0, 0, 0), (0, 0, 0, 1, -1)}
    assert np.allclose(m.predict(X), Y, rtol=1e-6, atol=1e-8)


def test_report_history_and_progress():
    p = make_problem(3, 1, 0.0, seed=3001)
    seen = []
    ann = Annealer(seed=0, schedule="geometric:10:0.05:600", progress=seen.append)
    ann.fit(p.X, p.Y)
    assert 90 <= len(seen) <= 110
    assert {"step", "steps", "tau", "atoms", "energy", "loss"} <= set(seen[-1])
    assert seen[-1]["step"] == seen[-1]["steps"] == 600
    h = ann.history_
    assert 100 <= len(h) <= 501
    assert all(set(r) == {"step", "tau", "atoms", "energy", "loss"} for r in h)
    assert h[0]["tau"] == pytest.approx(10.0) and h[-1]["tau"] == 0.0
    rep = json.loads(json.dumps(ann.report_))
    assert rep["params"]["schedule"] == "geometric:10:0.05:600"
    assert rep["params"]["pool"] == 3 and rep["params"]["seed"] == 0
    for key in ("nucleations", "collapses", "merges", "accepted", "rejected"):
        assert key in rep["events"]
    assert rep["k_star"] == ann.k_star_ == 1
    assert rep["seconds"] > 0


def test_bad_arguments():
    with pytest.raises(ValueError):
        Annealer(pool=0)
    with pytest.raises(ValueError):
        Annealer(reheat=-1)
    X = np.ones((10, 2))
    with pytest.raises(ValueError):
        Annealer().fit(X, np.ones(9))
    bad = np.ones((10, 2))
    bad[3, 1] = np.nan
    with pytest.raises(ValueError):
        Annealer().fit(bad, np.ones(10))


def test_robot_dog_30_to_12_shares_six_atoms():
    # the demo's dataset: 30 sensors -> 12 torques, K = 6 atoms with 2-4 exponents each
    from neurondyn.datasets import DATASETS
    ds = DATASETS["robot_dog"]
    table = np.genfromtxt(ds.path, delimiter=",", names=True)
    X = np.column_stack([table[c] for c in ds.inputs])
    Y = np.column_stack([table[c] for c in ds.outputs])
    ann = Annealer(seed=0).fit(X, Y, inputs=ds.inputs, outputs=ds.outputs)
    assert ann.model_.atom_set() == ds.truth_set()
    assert ann.model_.d_out == 12 and ann.k_star_ == 6
    assert not ann.saturated_
    assert ann.loss_ < 2e-3

"""The benchmark harness: problems, physics laws, baselines, runner, suites, CLI."""
import json
import math
import os

import numpy as np
import pytest

from neurondyn import cli
from neurondyn.bench import SUITES, SuiteUnavailable, load_suite
from neurondyn.bench import baselines, optimizer, recovery, runner
from neurondyn.bench.problems import (NONZERO_EXPONENTS, law_problem, make_problem, monomials,
                                      physics_laws, problem_seed, relative_rmse, rms)


# -- problems -----------------------------------------------------------------------

def test_same_seed_same_problem_and_other_seed_differs():
    a = make_problem(10, 4, 0.01, seed=problem_seed(5, 3))
    b = make_problem(10, 4, 0.01, seed=problem_seed(5, 3))
    c = make_problem(10, 4, 0.01, seed=problem_seed(5, 4))
    for name in ("X", "Y", "X_test", "Y_test", "exponents", "coefficients"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.X, c.X)
    assert problem_seed(5, 3) == 5003


@pytest.mark.parametrize("d,K", [(3, 1), (3, 6), (10, 4), (30, 6)])
def test_problem_has_the_promised_structure(d, K):
    p = make_problem(d, K, 0.0, seed=17 * d + K, x_range=(0.5, 2.0), n=500, n_test=200)
    W = p.exponents
    assert W.shape == (K, d) and p.K == K and p.d == d
    assert len(p.atom_set()) == K                          # distinct atoms
    nnz = np.count_nonzero(W, axis=1)
    assert np.all((nnz >= 1) & (nnz <= 3))
    assert set(W[W != 0].tolist()) <= set(NONZERO_EXPONENTS)
    assert np.all((np.abs(p.coefficients) >= 0.5) & (np.abs(p.coefficients) <= 2.0))
    assert p.X.min() >= 0.5 and p.X.max() <= 2.0 and p.X.shape == (500, d)
    direct = sum(p.coefficients[k] * np.prod(p.X_test ** W[k], axis=1) for k in range(K))
    assert np.allclose(p.Y_test, direct, rtol=1e-12)
    assert np.allclose(p.Y, monomials(p.X, W) @ p.coefficients, rtol=1e-12)   # noise 0


def test_noise_follows_srbench_and_levels_share_the_problem():
    clean = make_problem(10, 2, 0.0, seed=42)
    noisy = make_problem(10, 2, 0.10, seed=42)
    assert np.array_equal(clean.exponents, noisy.exponents)
    assert np.array_equal(clean.X, noisy.X)
    assert np.array_equal(clean.Y_test, noisy.Y_test)      # test targets stay clean
    sd = np.std(noisy.Y - clean.Y)
    assert abs(sd / (0.10 * rms(clean.Y)) - 1.0) < 0.1     # 2000 draws: ~1.6 % sampling error


def test_signs_and_exponent_values_all_occur_over_seeds():
    signs, values = set(), set()
    for s in range(40):
        p = make_problem(10, 2, 0.0, seed=s, n=10, n_test=1)
        signs |= set(np.sign(p.coefficients).tolist())
        values |= set(p.exponents[p.exponents != 0].tolist())
    assert signs == {-1.0, 1.0} and values == set(NONZERO_EXPONENTS)


def test_relative_rmse():
    y = np.array([3.0, -4.0])
    assert relative_rmse(y, y) == 0.0
    assert math.isclose(relative_rmse(y, y * 1.1), 0.1)


# -- physics laws -------------------------------------------------------------------

def test_physics_laws_match_their_monomial_expansion():
    laws = physics_laws()
    assert len(laws) >= 12 and len({l.name for l in laws}) == len(laws)
    assert sum(1 for l in laws if len(l.exponents) >= 2) >= 3
    assert any(len(l.exponents) == 3 for l in laws)
    rng = np.random.default_rng(0)
    for law in laws:
        W = law.exponents
        assert W.shape == (len(law.coefficients), law.d)
        assert np.all(np.abs(W) <= 2) and np.all(np.count_nonzero(W, axis=1) <= 4)
        assert len(law.atom_set()) == len(W)
        assert all(0 < lo < hi for lo, hi in law.ranges)
        X = law.sample(300, rng)
        assert np.allclose(law.evaluate(X), monomials(X, W) @ law.coefficients, rtol=1e-12)


def test_physics_laws_give_textbook_values():
    laws = {l.name: l for l in physics_laws()}

    def at(name, *values):
        return float(laws[name].evaluate(np.array([values], dtype=float))[0])
    assert math.isclose(at("electrical_power", 10.0, 5.0), 20.0)            # 10 V on 5 ohm
    assert math.isclose(at("kinetic_energy", 2.0, 3.0), 9.0)                 # 1/2 2 kg (3 m/s)^2
    assert math.isclose(at("ideal_gas", 1.0, 273.15, 0.022414), 101325, rel_tol=1e-3)  # 1 atm
    assert math.isclose(at("gravitation", 5.972e24, 1.0, 6.371e6), 9.82, rel_tol=1e-2)  # 1 kg on Earth
    assert math.isclose(at("coulomb", 1.0, 1.0, 1.0), 8.988e-3, rel_tol=1e-4)
    assert math.isclose(at("mechanical_energy", 1.0, 2.0, 1.0), 2.0 + 9.81)
    assert math.isclose(at("thin_lens", 0.5, 0.25), 6.0)


def test_law_problem_is_seeded():
    law = physics_laws()[0]
    a, b = law_problem(law, 0.01, 7), law_problem(law, 0.01, 7)
    assert np.array_equal(a.Y, b.Y) and a.atom_set() == law.atom_set()


# -- baselines ----------------------------------------------------------------------

@pytest.mark.parametrize("d", [2, 3, 4, 7])
def test_lattice_lists_every_atom_once_and_scores_them_exactly(d):
    triples = baselines.lattice_triples(d)
    expected = 4 * d + 16 * math.comb(d, 2) + 64 * math.comb(d, 3)
    assert len(triples) == expected
    W = np.array([baselines.triple_to_exponents(t, d) for t in triples])
    assert len({tuple(w) for w in W}) == expected
    assert np.all((np.count_nonzero(W, axis=1) >= 1) & (np.count_nonzero(W, axis=1) <= 3))
    rng = np.random.default_rng(d)
    X = rng.uniform(0.5, 3.0, size=(50, d))
    r = rng.standard_normal(50)
    fast = baselines.contract(baselines.power_columns(X), r, triples)
    assert np.allclose(fast, monomials(X, W).T @ r, rtol=1e-10, atol=1e-10)


def test_matching_pursuit_recovers_a_single_atom():
    p = make_problem(6, 1, 0.0, seed=3)
    fit = baselines.matching_pursuit(p.X, p.Y, max_atoms=6)
    assert fit.atom_set() == p.atom_set() and fit.k_star == 1
    assert relative_rmse(p.Y_test, fit.predict(p.X_test)) < 1e-8
    res = baselines.run_matching_pursuit(p, max_atoms=6)
    assert res["exact"] and res["k_star"] == 1


def test_matching_pursuit_stops_by_bic_on_pure_noise():
    rng = np.random.default_rng(0)
    X = rng.uniform(1, 5, size=(400, 4))
    fit = baselines.matching_pursuit(X, rng.standard_normal(400), max_atoms=4)
    assert fit.k_star == 0


def test_mlp_baseline_reports_error_and_size():
    p = make_problem(3, 1, 0.0, seed=1, n=300, n_test=100)
    res = baselines.mlp_baseline(p, hidden=(8,), max_iter=50)
    assert res["params"] == 3 * 8 + 8 + 8 + 1
    assert 0.0 < res["test_rel_rmse"] < 1.0 and res["seconds"] > 0


# -- runner ---------------------------------------------------------------------------

def test_runner_resumes_from_its_checkpoint(tmp_path):
    specs = optimizer.optimizer_specs((3,), (1,), 2, 50)
    ckpt = str(tmp_path / "run.jsonl")
    first = runner.run_tasks(optimizer.solve, specs, checkpoint=ckpt, progress=False)
    with open(ckpt, "a") as fh:
        fh.write('{"key": "torn')                    # an interrupted write
    calls = []
    again = runner.run_tasks(calls.append, specs, checkpoint=ckpt, progress=False)
    assert calls == [] and again == json.loads(json.dumps(first))


def test_runner_in_two_processes_gives_the_same_results():
    specs = optimizer.optimizer_specs((3,), (2,), 2, 40)
    one = runner.run_tasks(optimizer.solve, specs, jobs=1, progress=False)
    two = runner.run_tasks(optimizer.solve, specs, jobs=2, progress=False)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert strip(one) == strip(two)


# -- suites ---------------------------------------------------------------------------

def test_missing_suite_module_is_reported_not_crashing(monkeypatch):
    monkeypatch.setitem(SUITES, "later", "neurondyn.bench.not_written_yet:run")
    with pytest.raises(SuiteUnavailable, match="not available yet"):
        load_suite("later")
    assert callable(load_suite("optimizer"))


def test_relative_gradient_step_rules():
    p = make_problem(3, 1, 0.0, seed=5, n=200, n_test=1)
    Phi = monomials(p.X, p.exponents)
    signs = np.sign(p.coefficients)
    start = np.abs(p.coefficients) * 2.0
    # eta = 1/2 is Newton's step in log space for one atom: fast, no tuning
    hits = optimizer.descend("relgrad", Phi, p.Y, signs, start, [0.5], 100)
    assert np.all(hits[0] >= 0) and hits[0, -1] < 30
    # a step far too large diverges and reaches nothing
    hits = optimizer.descend("gd", Phi, p.Y, signs, start, [1e4], 100)
    assert np.all(hits == -1)
    # the exponentiated gradient keeps the parameter positive and converges
    hits = optimizer.descend("eg", Phi, p.Y, signs, start, [0.1, 0.3], 2000)
    assert np.all(hits[:, 0] >= 0)


def test_optimizer_suite_smoke():
    specs = optimizer.optimizer_specs((10,), (2,), 2, 300)
    res = optimizer.run_optimizer(specs, progress=False)
    assert [s["method"] for s in res.data["summary"]] == list(optimizer.METHODS)
    for s in res.data["summary"]:
        assert len(s["targets"]) == len(optimizer.TARGETS)
    assert "| relgrad (no tuning) |" in res.markdown


def test_recovery_suite_smoke_on_a_tiny_subset():
    specs = recovery.grid_specs(ds=(3,), ks=(1,), noises=(0.0,), problems=1)
    specs += recovery.law_specs(names=["electrical_power"], noises=(0.0,))
    res = recovery.run_recovery(specs, progress=False)
    (cell,) = res.data["cells"]
    assert cell["d"] == 3 and cell["K"] == 1 and cell["problems"] == 1
    (law,) = res.data["laws"]
    assert law["annealer"]["exact"] and law["true_atoms"] == [[2, -1]]
    assert res.data["problems"][0]["annealer"]["exact"]
    assert res.data["problems"][0]["mp"]["exact"]
    assert "| U[1,5] | 3 | 1 |" in res.markdown and "electrical_power" in res.markdown


def test_recovery_targets_are_judged_per_input_range_when_both_ran():
    def cell(xr, noise, exact):
        return {"x_range": list(xr), "d": 3, "K": 4, "noise": noise, "exact": exact,
                "missed_rel_rmse_max": None, "cpu_seconds_median": 1.0, "seconds_median": 1.0,
                "cpu_seconds_max": 1.0, "seconds_max": 1.0, "test_rel_rmse_median": 1e-3,
                "mlp_rel_rmse_median": 1e-2, "params_total_median": 20, "mlp_params": 501}
    cells = [cell((0.5, 2.0), 0.01, 0.9), cell((1.0, 5.0), 0.01, 0.45),
             cell((0.5, 2.0), 0.0, 1.0), cell((1.0, 5.0), 0.0, 1.0)]
    got = {t["target"]: (t["value"], t["ok"], t["cells"]) for t in recovery._targets(cells, [])}
    one = "Required: exact >= 85 % in every 1 %-noise cell"
    assert got[one] == ("min 45 %", False, 2)
    assert got[one + ", U[1,5]"] == ("min 45 %", False, 1)
    assert got[one + ", U[0.5,2]"] == ("min 90 %", True, 1)
    assert got["Required: exact >= 95 % in every noise-0 cell, U[1,5]"][1]
    # one range only: no per-range rows
    alone = recovery._targets([c for c in cells if c["x_range"] == [1.0, 5.0]], [])
    assert not any("U[" in t["target"] for t in alone)


def test_recovery_seeds_and_pools_are_the_documented_ones():
    specs = recovery.grid_specs()
    assert len(specs) == 3 * 4 * 3 * 20 and len({s["key"] for s in specs}) == len(specs)
    s = [x for x in specs if x["d"] == 10 and x["K"] == 4 and x["index"] == 7][0]
    assert s["seed"] == 1000 * (1 * 4 + 2) + 7
    assert {x["pool"] for x in specs if x["d"] == 3 and x["K"] > 3} == {8}
    assert {x["pool"] for x in specs if not (x["d"] == 3 and x["K"] > 3)} == {None}


# -- command line ---------------------------------------------------------------------

def test_cli_rejects_unknown_suite_with_one_line(capsys):
    assert cli.main(["bench", "nonsense"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown suite" in err[0]


def test_cli_bad_json_path(capsys, tmp_path):
    assert cli.main(["bench", "optimizer", "--json", str(tmp_path / "no" / "x.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_writes_strict_json_and_removes_partials(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(optimizer, "QUICK_STEPS", 200)     # keep the test short
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "optimizer", "--quick", "--no-progress", "--json", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "### Optimiser" in stdout and "| gd |" in stdout

    def no_nan(token):
        raise AssertionError("non-strict JSON constant %s" % token)
    data = json.loads(out.read_text(), parse_constant=no_nan)
    assert "optimizer" in data["suites"] and data["quick"] is True
    assert os.listdir(tmp_path) == ["bench.json"]


def test_all_suites_run_survives_a_broken_one(capsys, tmp_path, monkeypatch):
    import neurondyn.bench as bench_pkg
    monkeypatch.setattr(bench_pkg, "SUITES", {
        "optimizer": "neurondyn.bench.optimizer:run",
        "broken": "neurondyn.bench.table:md_table",            # wrong signature: raises
        "later": "neurondyn.bench.not_written_yet:run"})
    monkeypatch.setattr(optimizer, "QUICK_STEPS", 100)
    out = tmp_path / "all.json"
    assert cli.main(["bench", "--quick", "--no-progress", "--json", str(out)]) == 1
    captured = capsys.readouterr()
    assert "### Optimiser" in captured.out
    assert "suite broken failed" in captured.err and "suite later: not available" in captured.err
    data = json.loads(out.read_text())
    assert set(data["suites"]) == {"optimizer"} and set(data["failed"]) == {"broken"}
    assert set(data["unavailable"]) == {"later"}


def test_second_input_range_has_its_own_seeds_and_inputs():
    specs = recovery.grid_specs(ds=(3,), ks=(2,), noises=(0.0,), problems=2, x_ranges=(0, 1))
    assert [s["x_range"] for s in specs] == [[1.0, 5.0]] * 2 + [[0.5, 2.0]] * 2
    assert specs[2]["seed"] == 1000 * (12 + 1) + 0
    p = recovery.build_problem(specs[2])
    assert p.X.min() >= 0.5 and p.X.max() <= 2.0


def test_misses_are_classified_by_the_annealers_energy():
    p = make_problem(10, 3, 0.01, seed=11)
    truth = [list(w) for w in p.exponents]
    e_true, e_same = recovery.energies(p, truth)
    assert e_true is not None and math.isclose(e_true, e_same)
    # a state that drops a true atom with real signal is a search miss ...
    strongest = int(np.argmax([rms(p.coefficients[k] * monomials(p.X, p.exponents[k:k + 1])[:, 0])
                               for k in range(p.K)]))
    e_true, e_drop = recovery.energies(p, truth[:strongest] + truth[strongest + 1:])
    miss = {"exact": False, "energy_true": e_true, "energy_found": e_drop}
    assert recovery.miss_kind(miss) == "search"
    # ... and a found state the energy prefers to the truth is an energy miss
    assert recovery.miss_kind({"exact": False, "energy_true": 0.0, "energy_found": -1.0}) == "energy"
    assert recovery.miss_kind({"exact": True, "energy_true": 0.0, "energy_found": 5.0}) is None


# -- identifiability ------------------------------------------------------------------

def test_separability_null_gains_match_brute_force_refits():
    from neurondyn.bench import identifiability
    from neurondyn.pool.dictionary import lattice_atoms
    from neurondyn.pool.energy import Design
    p = make_problem(4, 2, 0.01, seed=11, n=400, n_test=10)
    res = identifiability.separability(p)
    D = Design(np.log(p.X), p.Y.reshape(-1, 1))
    truth = [tuple(int(v) for v in w) for w in p.exponents]
    _, rss, B = D.state_energy(truth)
    f0 = float(D.fit_term(rss))
    for m in (1, 2, 3):
        W = [tuple(int(v) for v in w) for w in lattice_atoms(4, m, m) if tuple(w) not in truth]
        r2, valid = D.candidate_rss(B, D.raw_rows(W))
        best = float(np.max(np.where(valid, f0 - D.fit_term(r2), -np.inf)))
        assert math.isclose(res["null_max"][str(m)], best, rel_tol=1e-6, abs_tol=1e-6)


def test_separability_tells_a_drowned_atom_from_a_clear_one():
    from neurondyn.bench import identifiability
    p = make_problem(3, 2, 0.01, seed=5)
    assert identifiability.separability(p)["separable"]
    # the same data with a second atom far below the noise: its gain is chance level
    q = make_problem(3, 1, 0.01, seed=5)
    w = np.array([[0, -1, 0]]) if tuple(q.exponents[0]) != (0, -1, 0) else np.array([[-1, 0, 0]])
    q.exponents = np.vstack([q.exponents, w])
    q.Y = q.Y + 1e-6 * monomials(q.X, w)[:, 0]
    q.coefficients = np.append(q.coefficients, 1e-6)
    res = identifiability.separability(q)
    assert not res["separable"] and res["weakest_gain"] < 1.0 and res["reasons"]
    # ... and its own signal is a tiny fraction of the noise sd, where p's weakest is many sd
    assert identifiability.weakest_signal(q) < 1e-3 < 3.0 < identifiability.weakest_signal(p)


def test_weakest_signal_of_one_atom_is_its_spread_over_the_noise_sd():
    from neurondyn.bench import identifiability
    p = make_problem(3, 1, 0.05, seed=2, n=300, n_test=10)
    term = p.coefficients[0] * monomials(p.X, p.exponents)[:, 0]
    expected = np.std(term) / (0.05 * np.sqrt(np.mean(term ** 2)))
    assert math.isclose(identifiability.weakest_signal(p), expected, rel_tol=1e-9)
    p.noise = 0.0
    assert identifiability.weakest_signal(p) is None

"""Feeling (issue 4) under CPython: the update rule, the firmware's fwtrain behind
the real dispatcher, and the ``ndyn retrain`` / ``ndyn pull`` commands.

* ``Feeler`` (the host mirror of the board's normalised-LMS rule): a gain drift
  of two channels (x1.3, x0.8), an output offset and an output scale are
  absorbed exactly (noise-free data: RMSE -> float rounding) with the exponents
  fixed; the step never diverges for mu in (0, 2) even with badly scaled
  features, where a fixed-rate SGD step does;
* firmware/fwtrain.py inside the real firmware dispatcher (test_protocol's
  CpythonBoard: the serving firmware in a thread behind a pty) served
  through ``neurondyn.link.Board``: its steps equal the mirror's, EVAL does
  not learn, PULL returns what the board serves, TRAIN_COMMIT
  survives a reboot, an uncommitted step does not;
* ``ndyn retrain`` / ``ndyn pull`` end to end, wrong columns -> exit 2.
"""
import json
import struct
import sys

import numpy as np
import pytest

from neurondyn import cli, feeling, ndm
from neurondyn.link import Board
from neurondyn.model import Model
from neurondyn.paths import firmware_dir

from test_protocol import CpythonBoard  # the real firmware in a thread behind a pty

sys.path.insert(0, str(firmware_dir()))


def law(seed=0, d_in=4, d_out=2):
    """y = b + sum_k a_k e^c_k prod x^w: three atoms over four channels."""
    rng = np.random.default_rng(seed)
    w = np.zeros((3, d_in))
    w[0, [0, 1]] = [2, -1]
    w[1, [2]] = [1]
    w[2, [1, 3]] = [1, 1]
    return Model(np.zeros(d_in), np.ones(d_in), w, [0.3, -0.2, 0.1],
                 rng.uniform(0.5, 2, (3, d_out)) * rng.choice([-1, 1], (3, d_out)),
                 rng.uniform(-1, 1, d_out), ["t", "p", "v", "h"][:d_in],
                 ["y%d" % i for i in range(d_out)]).rounded_to_float32()


def rows(n, d_in=4, seed=1):
    return np.random.default_rng(seed).uniform(0.5, 2.0, (n, d_in))


def drifted(model, X, gains=(1.3, 0.8), offset=0.0, scale=1.0):
    """Targets after channel 0 and 1 gains drift and the output gets scale/offset."""
    Xd = X.copy()
    Xd[:, 0] *= gains[0]
    Xd[:, 1] *= gains[1]
    return scale * model.predict(Xd) + offset


# -- the rule ------------------------------------------------------------------
@pytest.mark.parametrize("case", [dict(), dict(gains=(1, 1), offset=0.7),
                                  dict(gains=(1, 1), scale=1.25)])
def test_drift_is_recovered_exactly_without_noise(case):
    model = law()
    X = rows(300)
    Y = drifted(model, X, **case)
    f = feeling.Feeler(model)
    start = feeling.rmse(model.predict(X), Y)
    assert start > 0.05
    trace = f.train(X, Y, epochs=120)
    Xt = rows(200, seed=9)
    after = feeling.rmse(f.predict(Xt), drifted(model, Xt, **case))
    assert after < 1e-6 * start, (case, trace[-3:], after)
    # the exponents (the "camera") never move
    assert np.array_equal(f.to_model().exponents, model.exponents)


def test_gain_drift_is_a_shift_of_the_log_gains():
    """x_j -> g x_j is exactly c_k += w_kj log g: one-output model, c alone can carry it."""
    model = law(d_out=1)
    X = rows(400)
    Y = drifted(model, X)
    f = feeling.Feeler(model)
    f.train(X, Y, epochs=40)
    # c and a are redundant per atom (a_k e^c_k matters): compare the products
    want = model.readout[:, 0] * np.exp(model.log_gain + model.exponents[:, 0] * np.log(1.3)
                                        + model.exponents[:, 1] * np.log(0.8))
    got = f.a[:, 0] * np.exp(f.c)
    assert np.allclose(got, want, rtol=1e-5)


def test_normalised_step_is_stable_where_fixed_rate_sgd_diverges():
    model = Model([0.0], [1.0], [[2.0]], [0.0], [[1.0]], [0.0])
    X = np.random.default_rng(0).uniform(1, 30, (200, 1))      # features up to 900
    Y = 1.2 * model.predict(X)
    for mu in (0.1, 0.5, 1.0, 1.9):
        f = feeling.Feeler(model)
        trace = f.train(X, Y, epochs=3, mu=mu)
        assert np.all(np.isfinite(trace)) and trace[-1] < trace[0]
    # the same data with a fixed learning rate on (c, a, b) blows up
    c, a, b, lr = 0.0, 1.0, 0.0, 1e-3
    with np.errstate(over="ignore", invalid="ignore"):
        for x, y in zip(X[:, 0], Y[:, 0]):
            phi = np.exp(c) * x * x
            e = b + a * phi - y
            c, a, b = c - lr * e * a * phi, a - lr * e * phi, b - lr * e
    assert not np.isfinite(a) or abs(a) > 1e6


# -- the firmware behind the real dispatcher ------------------------------------
@pytest.fixture
def fw(tmp_path):
    boards = []

    def make(blob=None):
        b = CpythonBoard(tmp_path, blob)
        boards.append(b)
        return b
    yield make
    for b in boards:
        b.stop()


def test_firmware_steps_equal_the_mirror_and_pull_equals_the_board(fw):
    model = law()
    blob = ndm.dumps(model)
    board = fw(blob)
    X = rows(60)
    Y = drifted(model, X)
    with Board.open(board.port) as b:
        before = feeling.evaluate(b, X, Y)
        assert before == pytest.approx(feeling.rmse(model.predict(X), Y), rel=1e-5)
        # EVAL does not learn
        assert feeling.evaluate(b, X, Y) == before
        out = feeling.train(b, X, Y)
        assert out["used"] == 60 and out["bad"] == 0
        mirror = feeling.Feeler(model, np.float32)
        prequential = mirror.train(X, Y)[0]
        assert np.sqrt(out["sse"].sum() / Y.size) == pytest.approx(prequential, rel=1e-4)
        pulled = ndm.loads(feeling.pull(b))
        assert pulled.inputs == model.inputs and pulled.outputs == model.outputs
        assert np.allclose(pulled.log_gain, mirror.c, rtol=1e-4, atol=1e-6)
        assert np.allclose(pulled.readout, mirror.a, rtol=1e-4, atol=1e-6)
        assert np.array_equal(pulled.exponents, model.exponents)
        Xt = rows(20, seed=5)
        p, s = b.infer(Xt)
        assert not s.any()
        assert np.allclose(p, pulled.predict(Xt), rtol=1e-5, atol=1e-6)
        after = feeling.evaluate(b, X, Y)
        assert after < 0.5 * before
        # HELLO reports the served model's hash = the pulled bytes' CRC-32
        assert b.hello()["model_hash"] == ndm.model_hash(feeling.pull(b))


def test_commit_survives_a_reboot_and_uncommitted_steps_do_not(tmp_path):
    model = law()
    board = CpythonBoard(tmp_path, ndm.dumps(model))
    X = rows(40)
    Y = drifted(model, X)
    try:
        with Board.open(board.port) as b:
            feeling.train(b, X, Y)
            h = feeling.commit(b)
            committed = feeling.pull(b)
            assert h == ndm.model_hash(committed)
            feeling.train(b, X, Y)                  # more steps, never committed
            assert feeling.pull(b) != committed
    finally:
        board.stop()
    board2 = CpythonBoard(tmp_path)                 # "power cut": boots from fwstore
    try:
        with Board.open(board2.port) as b:
            assert b.info["model_hash"] == h
            assert feeling.pull(b) == committed
    finally:
        board2.stop()


def test_bad_rows_are_counted_not_learned(fw):
    model = law()
    board = fw(ndm.dumps(model))
    X = rows(10)
    Y = model.predict(X)
    X[3, 2] = -1.0                                   # maps to x <= 0
    with Board.open(board.port) as b:
        out = feeling.train(b, X, Y)
        assert (out["used"], out["bad"]) == (9, 1)
        assert out["sse"].sum() == pytest.approx(0, abs=1e-8)


# -- the commands ----------------------------------------------------------------
def write_csv(path, names, data):
    with open(path, "w") as fh:
        fh.write(",".join(names) + "\n")
        for r in data:
            fh.write(",".join(repr(float(v)) for v in r) + "\n")


def test_retrain_and_pull_commands(fw, tmp_path, capsys):
    model = law()
    board = fw(ndm.dumps(model))
    X = rows(200)
    Y = drifted(model, X)
    data = tmp_path / "drift.csv"
    write_csv(data, model.inputs + model.outputs, np.hstack([X, Y]))
    code = cli.main(["retrain", "--port", board.port, str(data), "--inputs", "t,p,v,h",
                     "--outputs", "y0,y1", "--epochs", "3", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    summary = json.loads(out.out.strip().splitlines()[-1])
    assert summary["holdout_rows"] == 40 and summary["train_rows"] == 160
    assert summary["rmse_after"] < 0.2 * summary["rmse_before"]
    assert not summary["structural_change"]
    assert "before" in out.out and "after" in out.out
    pulled = tmp_path / "pulled.ndm"
    assert cli.main(["pull", "--port", board.port, "-o", str(pulled)]) == 0
    capsys.readouterr()
    assert ndm.model_hash(pulled.read_bytes()) == int(summary["model_hash"], 16)
    # the pulled model is an ordinary model file: ndyn predict reads it
    assert cli.main(["predict", str(pulled), str(data), "-o", str(tmp_path / "p.csv")]) == 0
    with Board.open(board.port) as b:
        p, _ = b.infer(X[:10])
    got = np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1, usecols=(0, 1))[:10]
    assert np.allclose(got, p, rtol=1e-5, atol=1e-6)


def test_retrain_refuses_other_columns_and_says_when_the_law_changed(fw, tmp_path, capsys):
    model = law()
    board = fw(ndm.dumps(model))
    X = rows(120)
    data = tmp_path / "d.csv"
    # the law changed: channel 2 now enters squared (a structural change)
    Y = model.predict(X) + 3.0 * X[:, 2:3] ** 2 * np.array([[1.0, -1.0]])
    write_csv(data, model.inputs + model.outputs, np.hstack([X, Y]))
    code = cli.main(["retrain", "--port", board.port, str(data), "--inputs", "t,p,h,v",
                     "--outputs", "y0,y1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "t,p,v,h" in err
    code = cli.main(["retrain", "--port", board.port, str(data), "--inputs", "t,p,v",
                     "--outputs", "y0,y1"])
    assert code == 2
    capsys.readouterr()
    code = cli.main(["retrain", "--port", board.port, str(data), "--inputs", "t,p,v,h",
                     "--outputs", "y0,y1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "structural change" in out and "--from PULLED.ndm --reheat" in out
    assert "ndyn pull --port %s" % board.port in out


def test_a_retransmitted_train_frame_steps_once(fw):
    """TRAIN is not idempotent: the board's duplicate cache makes it exactly-once."""
    model = law()
    board = fw(ndm.dumps(model))
    X = rows(1)
    Y = drifted(model, X)
    payload = struct.pack("<Bf", 0, 0.5) + np.hstack([X, Y]).astype("<f4").tobytes()
    with Board.open(board.port) as b:
        seq = b.seq
        first = b._exchange(feeling.TRAIN, payload, 1.0, "TRAIN")
        b.seq = seq                                   # the same frame again, same seq
        again = b._exchange(feeling.TRAIN, payload, 1.0, "TRAIN")
        assert again == first
        assert b.stats()["dups"] == 1
        once = feeling.Feeler(model, np.float32)
        once.train(X, Y, mu=0.5)
        pulled = ndm.loads(feeling.pull(b))
        assert np.allclose(pulled.readout, once.a, rtol=1e-5, atol=1e-7)


def test_firmware_without_fwtrain_gives_one_clear_line(tmp_path, capsys, monkeypatch):
    import fwtrain
    model = law()
    board = CpythonBoard(tmp_path, ndm.dumps(model))
    try:
        monkeypatch.setattr(fwtrain, "do", lambda *a: 4)   # the image without fwtrain.py
        code = cli.main(["pull", "--port", board.port, "-o", str(tmp_path / "p.ndm")])
        err = capsys.readouterr().err
        assert code == 3 and "no fwtrain.py" in err and err.count("\n") == 1
        assert not (tmp_path / "p.ndm").exists()
    finally:
        board.stop()

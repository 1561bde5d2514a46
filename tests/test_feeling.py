"""Feeling (issue 4) under CPython: the update rule, the firmware's TRAIN and
PULL in the real serving firmware, and the ``ndyn retrain`` / ``ndyn pull`` commands.

* ``Feeler`` (the host mirror of the board's normalised-LMS rule): a gain drift
  of two channels (x1.3, x0.8), an output offset and an output scale are
  absorbed exactly (noise-free data: RMSE -> float rounding) with the exponents
  fixed; the step never diverges for mu in (0, 2) even with badly scaled
  features, where a fixed-rate SGD step does;
* the plain-path firmware (firmware/main.py booted by tests/fwhost.py, in a
  thread behind a pty: test_protocol's CpythonBoard; TRAIN and PULL answered
  by the msg kernel ``fwplain.msg`` and its trn kernel ``fwplain.trn``)
  served through ``neurondyn.link.Board``: its steps equal the mirror's to
  float32 precision, EVAL does not learn, bad rows are counted and not
  learned, a retransmitted TRAIN frame steps once, PULL returns what the
  board serves, a commit (PULL + the atomic upload) survives a reboot and an
  uncommitted step does not;
* ``ndyn retrain`` / ``ndyn pull`` end to end; wrong columns -> one line,
  exit 2; a structural change is reported with the remelt loop; a firmware
  that answers TRAIN / PULL with E_UNKNOWN -> one line, exit 3.
"""
import json
import struct
import sys

import numpy as np
import pytest

from neurondyn import cli, feeling, ndm, protocol as P
from neurondyn.link import Board
from neurondyn.model import Model

from test_protocol import CpythonBoard  # the real firmware in a thread behind a pty


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


# -- the serving firmware (plain path) under CPython -----------------------------
def boot(blob=None):
    """A CpythonBoard serving ``blob`` (None: what its model store holds), booted.

    fwhost boots it as a stdin board, with the process's sys.stdout as its
    line; the firmware binds that line at boot (fwboot: sys.stdout.buffer),
    so once it answers a handshake the test's own stdout comes back (the
    commands print their results there)."""
    out = sys.stdout
    board = CpythonBoard(blob)
    try:
        with Board.open(board.port):
            pass
    finally:
        sys.stdout = out
    return board


@pytest.fixture
def fw(tmp_path, monkeypatch):
    """make(blob) -> a booted CpythonBoard serving blob; its flash (the model store) is tmp_path."""
    monkeypatch.chdir(tmp_path)
    boards = []

    def make(blob=None):
        b = boot(blob)
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


def test_commit_survives_a_reboot_and_uncommitted_steps_do_not(tmp_path, monkeypatch):
    """commit = PULL + the atomic upload into the other slot of the model store."""
    monkeypatch.chdir(tmp_path)
    model = law()
    flashed = ndm.dumps(model)
    board = boot(flashed)
    X = rows(40)
    Y = drifted(model, X)
    try:
        with Board.open(board.port) as b:
            feeling.train(b, X, Y)
            trained = feeling.pull(b)
            assert trained != flashed
            h = feeling.commit(b)
            assert h == ndm.model_hash(trained) and b.info["model_hash"] == h
            assert feeling.pull(b) == trained       # the upload serves the same bytes
            feeling.train(b, X, Y)                  # more steps, never committed
            assert feeling.pull(b) != trained
    finally:
        board.stop()
    board2 = boot()                         # "power cut": boots from the store
    try:
        with Board.open(board2.port) as b:
            assert b.info["model_hash"] == h
            assert feeling.pull(b) == trained
    finally:
        board2.stop()
    # and without a commit a reboot serves what was committed last
    board3 = boot()
    try:
        with Board.open(board3.port) as b:
            feeling.train(b, X, Y)
            assert b.hello()["model_hash"] != h
    finally:
        board3.stop()
    board4 = boot()
    try:
        with Board.open(board4.port) as b:
            assert b.info["model_hash"] == h and feeling.pull(b) == trained
    finally:
        board4.stop()


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
        dups = b.stats()["dups"]
        seq = b.seq
        first = b._exchange(P.TRAIN, payload, 1.0, "TRAIN")
        b.seq = seq                                   # the same frame again, same seq
        again = b._exchange(P.TRAIN, payload, 1.0, "TRAIN")
        assert again == first
        assert b.stats()["dups"] - dups == 1
        once = feeling.Feeler(model, np.float32)
        once.train(X, Y, mu=0.5)
        pulled = ndm.loads(feeling.pull(b))
        assert np.allclose(pulled.readout, once.a, rtol=1e-5, atol=1e-7)


def refuse_feeling(board):
    """Make the running firmware answer TRAIN and PULL with E_UNKNOWN, as one
    without them does: its msg kernel (fwd.E[14], read by fwd's loop at every
    message) hands them back, and the rarer-request path (fwq: no handler
    fwr20 / fwr13) refuses them like any unknown type."""
    fwd = sys.modules["fwd"]                        # the firmware's, while it serves
    msg = fwd.E[14]

    def refusing(S, h, _=0):
        return 4 if S[7] & 63 in (P.TRAIN, P.PULL) else msg(S, h, _)
    fwd.E = fwd.E[:14] + (refusing,) + fwd.E[15:]


@pytest.mark.parametrize("command", ["pull", "retrain"])
def test_firmware_without_train_and_pull_gives_one_clear_line(fw, tmp_path, capsys, command):
    model = law()
    board = fw(ndm.dumps(model))
    X = rows(20)
    data = tmp_path / "d.csv"
    write_csv(data, model.inputs + model.outputs, np.hstack([X, model.predict(X)]))
    refuse_feeling(board)
    argv = {"pull": ["pull", "--port", board.port, "-o", str(tmp_path / "p.ndm")],
            "retrain": ["retrain", "--port", board.port, str(data), "--inputs", "t,p,v,h",
                        "--outputs", "y0,y1"]}[command]
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 3 and err.count("\n") == 1, err
    assert "cannot retrain or pull" in err and board.port in err
    assert not (tmp_path / "p.ndm").exists()
    # the board still serves (it refused the requests, nothing else)
    with Board.open(board.port) as b:
        p, s = b.infer(X[:3])
        assert not s.any() and np.allclose(p, model.predict(X[:3]), rtol=1e-5, atol=1e-6)
        assert b.stats()["errors"] >= 1

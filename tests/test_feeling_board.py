"""Feeling (issue 4) on real MicroPython, through the real firmware and protocol.

Both virtual boards run the image ``ndyn flash`` builds, on a pty:

* current MicroPython (mpy-wasm, the sys.stdin.buffer backend of ESP32 /
  RP2040 / pyboard; fwplain's trn kernel in plain Python, floats double);
* MicroPython 1.9.2 on the virtual micro:bit V1 (QEMU; the Thumb trn kernel
  in fwk.bin, parameters in place in the .ndm bytes).

On each: the board's TRAIN steps equal the host mirror ``feeling.Feeler``
(float32 precision, the same model bytes), EVAL does not learn, PULL hands
back what the board serves; and end to end: drift -> ``ndyn retrain`` ->
``ndyn stream`` -> ``ndyn pull`` -> ``ndyn predict`` with the pulled model
equals the board's stream, and a power cut then boot serves the committed
model.
"""
import json

import numpy as np
import pytest

from neurondyn import cli, feeling, ndm
from neurondyn.link import Board
from neurondyn.bench.reliability import Rig

from test_feeling import drifted, law, rows, write_csv

BOARDS = ["mpy-wasm", "microbit-v1"]


@pytest.fixture(params=BOARDS)
def board(request, tmp_path):
    """make(blob) -> a virtual board serving blob whose flash outlives a power cut
    (the reliability bench's Rig: power_cut() then boot())."""
    made = []

    def make(blob):
        made.append(Rig(request.param, blob, str(tmp_path)))
        return made[-1]
    yield make
    for rig in made:
        log = rig.vm.log()
        rig.stop()
        assert "Traceback" not in log, log[-800:]


def test_board_steps_equal_the_mirror_and_pull_equals_the_board(board):
    model = law()
    v = board(ndm.dumps(model))
    X = rows(40)
    Y = drifted(model, X)
    with Board.open(v.port, timeout=2.0) as b:
        before = feeling.evaluate(b, X, Y)
        assert before == pytest.approx(feeling.rmse(model.predict(X), Y), rel=1e-5)
        assert feeling.evaluate(b, X, Y) == before                 # EVAL does not learn
        out = feeling.train(b, X, Y)
        assert out["used"] == 40 and out["bad"] == 0
        mirror = feeling.Feeler(model, np.float32)
        assert np.sqrt(out["sse"].sum() / Y.size) == pytest.approx(mirror.train(X, Y)[0],
                                                                   rel=1e-4)
        pulled = ndm.loads(feeling.pull(b))
        assert np.array_equal(pulled.exponents, model.exponents)
        assert np.allclose(pulled.log_gain, mirror.c, rtol=1e-4, atol=1e-6)
        assert np.allclose(pulled.readout, mirror.a, rtol=1e-4, atol=1e-6)
        assert np.allclose(pulled.bias, mirror.b, rtol=1e-4, atol=1e-6)
        Xt = rows(10, seed=5)
        p, s = b.infer(Xt)
        assert not s.any()
        assert np.allclose(p, pulled.predict(Xt), rtol=1e-5, atol=1e-6)
        assert b.hello()["model_hash"] == ndm.model_hash(feeling.pull(b))


def cli_ok(capsys, argv):
    code = cli.main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    return out


def test_drift_retrain_stream_pull_predict_then_power_cut(board, tmp_path, capsys):
    model = law()
    v = board(ndm.dumps(model))
    X = rows(120)
    Y = drifted(model, X)
    data = tmp_path / "drift.csv"
    write_csv(data, model.inputs + model.outputs, np.hstack([X, Y]))
    Xt = rows(20, seed=7)
    fresh = tmp_path / "fresh.csv"
    write_csv(fresh, model.inputs, Xt)
    out = cli_ok(capsys, ["retrain", "--port", v.port, str(data), "--inputs", "t,p,v,h",
                          "--outputs", "y0,y1", "--json"])
    summary = json.loads(out.out.strip().splitlines()[-1])
    assert summary["rmse_after"] < 0.2 * summary["rmse_before"], summary
    cli_ok(capsys, ["stream", "--port", v.port, str(fresh), "-o", str(tmp_path / "board.csv"),
                    "--inputs", "t,p,v,h"])
    pulled = tmp_path / "pulled.ndm"
    cli_ok(capsys, ["pull", "--port", v.port, "-o", str(pulled)])
    assert "%08x" % ndm.model_hash(pulled.read_bytes()) == summary["model_hash"]
    cli_ok(capsys, ["predict", str(pulled), str(fresh), "-o", str(tmp_path / "host.csv")])
    dev = np.loadtxt(tmp_path / "board.csv", delimiter=",", skiprows=1, usecols=(0, 1))
    host = np.loadtxt(tmp_path / "host.csv", delimiter=",", skiprows=1, usecols=(0, 1))
    assert np.allclose(dev, host, rtol=1e-5, atol=1e-6 * np.abs(host).max())
    truth = drifted(model, Xt)
    assert feeling.rmse(host, truth) < 0.2 * feeling.rmse(model.predict(Xt), truth)
    # the commit is in flash: a power cut, a boot, the retrained model serves
    v.power_cut()
    info = v.boot()
    assert info["model_hash"] == ndm.model_hash(pulled.read_bytes())

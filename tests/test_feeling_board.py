"""Feeling on real MicroPython (issue 4).

* current MicroPython (mpy-wasm, the sys.stdin.buffer backend of ESP32 /
  RP2040 / pyboard): the firmware's fwlearn/fwtrain run the same steps as the
  host mirror ``feeling.Feeler``; end to end over the pty with the serving
  firmware: drift -> ``ndyn retrain`` -> ``ndyn stream`` -> ``ndyn pull`` ->
  ``ndyn predict`` with the pulled model equals the board's stream, and a
  reboot serves the committed model;
* MicroPython 1.9.2 on the virtual micro:bit: the rule with the Thumb forward
  pass (parameters in place in the .ndm) absorbs a gain drift, and PULL hands
  back a CRC-valid model that predicts what the board predicts.
"""
import json

import numpy as np
import pytest

from neurondyn import boards, cli, deploy, feeling, ndm
from neurondyn.bench import feeling as bench
from neurondyn.link import Board
from neurondyn.model import Model
from neurondyn.paths import firmware_dir
from neurondyn.vboard import WasmBoard, run_on_wasm

from test_feeling import drifted, law, rows, write_csv


def test_rule_in_current_micropython_equals_the_host_mirror():
    model = law()
    blob = ndm.dumps(model)
    X = rows(30)
    Y = drifted(model, X)
    names = ["fwlearn", "fwtrain", "fwmodel", "fwstore"] + bench.model_files(plain=True)
    files = {n + ".py": (firmware_dir() / (n + ".py")).read_bytes() for n in names}
    files["m.ndm"] = blob
    files["t.bin"] = np.hstack([X, Y]).astype("<f4").tobytes()
    # the plain path (no asm_thumb) trains the bytes of the stored model
    script = bench.DRIVER + "\nimport fwstore\nfwstore.save(bytearray(open('m.ndm', 'rb').read()))" \
        "\nload('m.ndm')\nfeed('t.bin', 30, 0, 0.0)\npull()\n"
    out = run_on_wasm(files, script, timeout=120).split()
    assert out[0] == "0" and out[1] == "30"
    pulled = ndm.loads(bytes.fromhex("".join(out[5:])))
    mirror = feeling.Feeler(model, np.float32)
    pre = mirror.train(X, Y)[0]
    assert np.sqrt(float(out[2]) / Y.size) == pytest.approx(pre, rel=1e-4)
    assert np.allclose(pulled.log_gain, mirror.c, rtol=1e-4, atol=1e-6)
    assert np.allclose(pulled.readout, mirror.a, rtol=1e-4, atol=1e-6)
    assert np.allclose(pulled.bias, mirror.b, rtol=1e-4, atol=1e-6)


def cli_json(capsys, argv):
    code = cli.main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    return out


def test_wasm_board_drift_retrain_stream_pull_predict(tmp_path, capsys):
    model = law()
    blob = ndm.dumps(model)
    files = feeling.firmware_files(deploy.image_files(boards.get_profile("mpy-wasm"), blob))
    X = rows(200)
    Y = drifted(model, X)
    data = tmp_path / "drift.csv"
    write_csv(data, model.inputs + model.outputs, np.hstack([X, Y]))
    Xt = rows(30, seed=7)
    fresh = tmp_path / "fresh.csv"
    write_csv(fresh, model.inputs, Xt)
    flash = tmp_path / "flash"
    with WasmBoard(files=files, flash_dir=flash) as board:
        assert deploy.wait_for_hello(board.port, 30) is not None, board.log()
        out = cli_json(capsys, ["retrain", "--port", board.port, str(data), "--inputs", "t,p,v,h",
                                "--outputs", "y0,y1", "--json"])
        summary = json.loads(out.out.strip().splitlines()[-1])
        assert summary["rmse_after"] < 0.2 * summary["rmse_before"], summary
        cli_json(capsys, ["stream", "--port", board.port, str(fresh), "-o",
                          str(tmp_path / "board.csv"), "--inputs", "t,p,v,h"])
        pulled = tmp_path / "pulled.ndm"
        cli_json(capsys, ["pull", "--port", board.port, "-o", str(pulled)])
        assert "%08x" % ndm.model_hash(pulled.read_bytes()) == summary["model_hash"]
        assert "Traceback" not in board.log(), board.log()
    cli_json(capsys, ["predict", str(pulled), str(fresh), "-o", str(tmp_path / "host.csv")])
    dev = np.loadtxt(tmp_path / "board.csv", delimiter=",", skiprows=1, usecols=(0, 1))
    host = np.loadtxt(tmp_path / "host.csv", delimiter=",", skiprows=1, usecols=(0, 1))
    assert np.allclose(dev, host, rtol=1e-5, atol=1e-6 * np.abs(host).max())
    # the retrained model is better on fresh drifted data than the flashed one
    truth = drifted(model, Xt)
    assert feeling.rmse(host, truth) < 0.2 * feeling.rmse(model.predict(Xt), truth)
    # power cut and reboot: the board serves the committed model
    with WasmBoard(flash_dir=flash) as board:
        info = deploy.wait_for_hello(board.port, 30)
        assert info is not None and info["model_hash"] == ndm.model_hash(pulled.read_bytes())


def test_micro_bit_1_9_2_absorbs_a_gain_drift_and_pull_predicts_what_the_board_does():
    """MicroPython 1.9.2, Thumb forward pass reading a/b in place from the .ndm."""
    model = bench.law()
    X = rows(80, d_in=3, seed=3)
    Y = bench.scenarios(model)["gain x1.3 / x0.8"][0](X)
    files = {"m.ndm": ndm.dumps(model), "t.bin": bench.labelled(X, Y)}
    with bench.MicrobitFeeling(files) as board:
        before = board.rmse("t.bin", 80, 1)
        assert before == pytest.approx(feeling.rmse(model.predict(X), Y), rel=1e-4)
        r = None
        for _ in range(3):
            r = board.feed("t.bin", 80)
        assert r["used"] == 80
        after = board.rmse("t.bin", 80, 1)
        assert after < 0.1 * before
        pulled = ndm.loads(board.pull())
        assert np.array_equal(pulled.exponents, model.exponents)
        # the board's own EVAL and the pulled model agree to float32 precision
        assert feeling.rmse(pulled.predict(X), Y) == pytest.approx(after, rel=1e-3)

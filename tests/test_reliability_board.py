"""Reliability on a running virtual board: short versions of ``ndyn bench reliability``.

On both virtual boards: the micro:bit V1 (MicroPython 1.9.2 under QEMU, its
flash saved through the QEMU monitor at a power cut and booted again) and
mpy-wasm (current MicroPython, our firmware on the ``sys.stdin.buffer``
backend, its flash a host folder that survives power cuts):

* board fuzz: 100 random / mutated / overlong frames, each followed by a
  probe that must be answered: no crash, no hang, only whole frames back, and
  afterwards an upload + INFER with parity;
* received bytes are never executed: raw-REPL control sequences (Ctrl-C,
  Ctrl-A ... Ctrl-D, Ctrl-B) and Python source, bare and inside frames, leave
  every file on the board's flash as it was, and the board keeps serving;
* power cuts at random instants of a model upload and of a retrain commit:
  the board boots a CRC-valid model (the old or the new one) and serves it.
"""
import os
import time

import numpy as np
import pytest

from neurondyn import ndm, protocol as P
from neurondyn.bench import reliability as R
from neurondyn.link import Board, Transport

MODEL_A, MODEL_B = R.bench_model(0), R.bench_model(1)


@pytest.fixture(scope="module", params=["mpy-wasm", "microbit-v1"])
def rig(tmp_path_factory, request):
    folder = str(tmp_path_factory.mktemp("rig-" + request.param))
    rig = R.Rig(request.param, ndm.dumps(MODEL_A), folder)
    yield rig
    rig.stop()


def flash_files(rig):
    root = rig.folder + "/flash"
    return {name: open(os.path.join(root, name), "rb").read() for name in sorted(os.listdir(root))
            if os.path.isfile(os.path.join(root, name))}


def test_board_fuzz_short(rig):
    res = R.board_fuzz(rig, MODEL_A, 100, lambda msg: None)
    assert res["frames"] == 100 and not res["hung"], res
    assert res["broken_answers"] == 0 and res["unexpected"] == 0, res
    assert res["naks"] > 0 and res["errors"] > 0               # it did meet bad frames
    assert res["serves_afterwards"], res
    assert "Traceback" not in rig.vm.log()


def test_raw_repl_and_source_bytes_are_not_executed(rig):
    before = flash_files(rig) if rig.name == "mpy-wasm" else None
    assert before is None or "main.py" in before
    t = Transport(rig.port)
    try:
        for blob in (b"\x03\x03", b"\x01import os\r\nos.remove('main.py')\r\n\x04",
                     b"\x02", b"\r\nimport os; os.remove('main.py')\r\n",
                     b"\x05open('main.py','w').write('')\r\n\x04"):
            t.write(blob)
        for i, src in enumerate(R.SOURCE_PAYLOADS):
            for typ in (P.INFER, P.UP_DATA, P.TRAIN, 0x3A):
                t.write(b"\x00" + src + b"\x00")                  # source as a "frame"
                t.write(P.build_frame(typ, 50 + 4 * i + typ % 4, src))
                t.read_frames(time.monotonic() + 0.2)
        time.sleep(0.3)
        board = Board(t, timeout=0.5)
        board.seq = 200
        try:
            board.hello()
        except Exception:
            board.hello()                     # the first may land on a half message
        pred, status = board.infer(np.array([[0.5, 1.0, 1.5], [2.0, 1.0, 0.7]]))
        assert not status.any()
        assert np.all(R.parity(pred, MODEL_A.predict(np.array([[0.5, 1.0, 1.5], [2.0, 1.0, 0.7]]))))
    finally:
        t.close()
    assert rig.vm.running
    if before is not None:
        assert flash_files(rig) == before      # nothing created, removed or rewritten
    else:                                      # the V1: its flash boots and serves as it did
        rig.power_cut()
        info = rig.boot()
        assert info["model_hash"] == ndm.model_hash(ndm.dumps(MODEL_A))
    assert "Traceback" not in rig.vm.log()


def test_power_cuts_during_upload_leave_a_valid_model(rig):
    res = R.upload_cuts(rig, MODEL_A, MODEL_B, 2, lambda msg: None)
    assert res["cuts"] == 2 and res["valid"] == 2, res
    assert res["old"] + res["new"] == 2


def test_power_cuts_during_retrain_commit_leave_a_valid_model(rig):
    res = R.commit_cuts(rig, MODEL_A, 2, lambda msg: None)
    assert res["available"], res
    assert res["cuts"] == 2 and res["valid"] == 2, res

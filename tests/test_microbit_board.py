"""The serving firmware on the virtual micro:bit V1 (MicroPython 1.9.2 under
QEMU, ~9 KB heap, the Thumb kernels in fwk.bin), through the real protocol on
its pty: what a user of the smallest board meets.

* with the 30 -> 12, K = 6 model loaded and serving, at least 2 KB of heap
  stays free (HELLO's figure: gc.mem_free() after a collection), and the
  fit check's estimate is not above it;
* one board serves, one after the other, the 30 -> 12 model, the Coulomb law
  (3 -> 1) and a 10 -> 4 model, each uploaded into the running board through
  its restarts, with float32 and int16 parity against ``Model.predict``;
* a corrupted model is refused (E_BAD_MODEL) and the last good model serves on;
* a board left in upload mode (UP_BEGIN, then nothing: a host gone, or a
  power cut between UP_BEGIN's flag file and the restart) serves its last
  good model again as soon as a host opens it (``Board.open``).

The 30 -> 12 stream with bad rows, and an upload from the CLI, are in
test_link_e2e.py; power cuts during uploads in test_reliability_board.py.
"""
import struct
import numpy as np
import pytest

from neurondyn import boards, deploy, ndm, protocol as P
from neurondyn.link import Board, BoardError
from neurondyn.model import Model
from neurondyn.vboard import MicrobitVM

from test_link_e2e import parity_ok, power_model, sample_rows

BIG = power_model()


def coulomb() -> Model:
    """F = q1 q2 / (4 pi eps0 r^2) in units where 1 / (4 pi eps0) = 8.99."""
    w = np.array([[1.0, 1.0, -2.0]])
    return Model(np.zeros(3), np.ones(3), w, [np.log(8.99)], [[1.0]], [0.0],
                 ["q1", "q2", "r"], ["F"]).rounded_to_float32()


@pytest.fixture(scope="module")
def v1():
    files = deploy.image_files(boards.get_profile("microbit-v1"), ndm.dumps(BIG))
    with MicrobitVM(files=files) as vm:
        info = deploy.wait_for_hello(vm.port, 90, give_up=vm.boot_error)
        assert info is not None, vm.boot_error() or vm.console_log()[-400:]
        yield vm
        assert "Traceback" not in vm.console_log(), vm.console_log()[-800:]


def check_parity(b, model, n=6, seed=1):
    rows = sample_rows(n, model.d_in, seed)
    p, s = b.infer(rows)
    assert not s.any() and np.all(parity_ok(p, model.predict(rows)))
    p16, s16 = b.infer(rows, int16=True)
    deq = P.dequantize_int16(P.quantize_int16(rows, *b._qscale), *b._qscale)
    assert not s16.any() and np.all(parity_ok(p16, model.predict(deq)))


def test_30_12_serves_with_2_kb_heap_free(v1):
    with Board.open(v1.port, timeout=1.0) as b:
        info = b.hello()
        assert info["model_hash"] == ndm.model_hash(ndm.dumps(BIG))
        assert (info["d_in"], info["d_out"], info["k"]) == (30, 12, 6)
        check_parity(b, BIG)
        free = b.hello()["heap_free"]
    assert free >= 2048
    # the fit check ndyn flash runs first never promises more than the board has
    profile = boards.get_profile("microbit-v1")
    blob = ndm.dumps(BIG)
    fit = boards.fit_check(profile, blob, deploy.fitting_firmware(profile, blob),
                           lazy=deploy.transient_modules())
    assert fit.fits and fit.heap_free_after <= free


@pytest.mark.parametrize("model", [coulomb(), power_model(d_in=10, d_out=4, k=4, seed=3)],
                         ids=["coulomb", "10-4"])
def test_models_uploaded_into_the_running_board_serve_with_parity(v1, model):
    with Board.open(v1.port, timeout=1.0) as b:
        info = b.upload(ndm.dumps(model))
        assert info["model_hash"] == ndm.model_hash(ndm.dumps(model))
        check_parity(b, model, seed=5)


def test_corrupted_model_is_refused_and_the_last_good_one_serves(v1):
    with Board.open(v1.port, timeout=1.0) as b:
        served = b.hello()["model_hash"]
        blob = bytearray(ndm.dumps(coulomb()))
        blob[20] ^= 0x40                               # a gain bit flips on the way
        blob[-4:] = struct.pack("<I", ndm.model_hash(bytes(blob)))   # stale CRC: the
        blob[-1] ^= 1                                                # trailer fails too
        with pytest.raises(BoardError) as err:
            b.upload(bytes(blob))
        assert err.value.code == P.E_BAD_MODEL
        info = b.await_restart("a refused upload")
        assert info["model_hash"] == served


def test_a_board_left_in_upload_mode_serves_again_when_a_host_opens_it(v1):
    """UP_BEGIN, then the host goes away (or the power is cut between UP_BEGIN's
    flag file and the restart): the V1 sits in upload mode, no model; the next
    host that opens it (any ndyn command) ends that mode and it serves its
    last good model."""
    with Board.open(v1.port, timeout=1.0) as b:
        served = b.hello()["model_hash"]
        blob = ndm.dumps(coulomb())
        body = b.request(P.UP_BEGIN, struct.pack("<II", len(blob), ndm.model_hash(blob)),
                         what="UP_BEGIN")
        assert body[:1] == b"\x01"                     # the V1 restarts into upload mode
        info = b.await_restart("UP_BEGIN")
        assert info["model_hash"] is None and not info["model_loaded"]
    with Board.open(v1.port, timeout=1.0) as b:
        assert b.left_upload_mode == 1
        assert b.info["model_hash"] == served
        model = {ndm.model_hash(ndm.dumps(m)): m
                 for m in (BIG, coulomb(), power_model(d_in=10, d_out=4, k=4, seed=3))}[served]
        check_parity(b, model)
    with Board.open(v1.port, timeout=1.0) as b:     # serving: nothing to end
        assert b.left_upload_mode == 0 and b.info["model_hash"] == served

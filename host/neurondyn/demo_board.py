"""The board half of ``ndyn demo``: serve, drift, feel, pull — on virtual boards.

Steps (picked up by ``commands/demo.py`` through ``STEPS``):

1. boot the virtual micro:bit V1 (QEMU, MicroPython 1.9.2) with the annealed
   physics-law model, stream its test rows over the pty and compare every
   board prediction with the host's;
2. apply a sensor drift (one channel's gain x1.3, so the law seen through the
   drifted sensor changes by a constant factor on every atom that uses it),
   let the board retrain itself on labelled drifted samples ("feeling": the
   exponents stay, the gains, readout and bias move), report the board's own
   RMSE before and after, commit, pull the model back and check that the
   pulled file predicts what the board predicts.

Both run on the micro:bit V1 (its Thumb msg kernel answers TRAIN and PULL;
the commit restarts it through its upload mode). Should the V1 not answer
its handshake, the demo says so and uses the mpy-wasm board (current
MicroPython, the sys.stdin.buffer backend of the ESP32 / RP2040 / pyboard
profiles) for both steps.
"""
from __future__ import annotations

import time

import numpy as np

from . import boards, deploy, feeling, ndm
from .data import select
from .datasets import DATASETS
from .errors import DeviceError
from .link import Board
from .model import relative_deviation

LAW = "coulomb"          # the bundled physics law the board half uses
DRIFT_CHANNEL = 0        # index of the input whose sensor gain drifts
DRIFT_GAIN = 1.3
TRAIN_ROWS = 250        # the law has 300 rows: 250 to feel, 50 fresh to score


def _boot(board_name, blob, say):
    """Start a virtual board serving ``blob`` and wait for its handshake; return the VM."""
    from .vboard import MicrobitVM, WasmBoard
    profile = boards.get_profile(board_name)
    files = deploy.image_files(profile, blob)
    if board_name == "mpy-wasm":
        vm = WasmBoard(files=files)
    else:
        vm = MicrobitVM(files=files)
    vm.__enter__()
    crashed = getattr(vm, "boot_error", None)          # the V1 shows a boot traceback
    info = deploy.wait_for_hello(vm.port, 90, give_up=crashed)
    if info is None:
        reason = (crashed() if crashed else "") or "no answer within 90 s"
        vm.stop()
        raise DeviceError("the virtual %s did not answer its handshake (%s)"
                          % (board_name, reason.strip().splitlines()[-1]))
    say("   %s up on %s: firmware %s, heap free %d B, model hash %08x"
        % (board_name, vm.port, info.get("firmware", "?"), info.get("heap_free", -1),
           info.get("model_hash", 0)))
    return vm


def _law(ctx):
    """(ndm bytes, model, X, Y) of the annealed law, or None when the demo skipped it."""
    path = ctx["models"].get(LAW)
    if path is None:
        return None
    ds = DATASETS[LAW]
    blob = open(path, "rb").read()
    X, Y = select(str(ds.path), ds.inputs, ds.outputs)
    return blob, ndm.loads(blob), X, Y


def step_serve_on_microbit(ctx):
    """Boot the virtual micro:bit with the law's model and stream its rows.

    If the V1 does not answer, say why and serve from the mpy-wasm board instead.
    """
    law = _law(ctx)
    if law is None:
        return
    blob, model, X, _ = law
    where = "microbit-v1"
    print("\n== virtual micro:bit V1 (QEMU, MicroPython 1.9.2) serving %s" % LAW)
    t0 = time.perf_counter()
    try:
        vm = _boot(where, blob, print)
    except DeviceError as exc:
        print("   %s; serving from the mpy-wasm board instead" % exc)
        where = "mpy-wasm"
        vm = _boot(where, blob, print)
    try:
        with Board.open(vm.port) as board:
            t1 = time.perf_counter()
            pred, errors = board.infer(X)
            seconds = time.perf_counter() - t1
            stats = board.stats()
    finally:
        vm.stop()
    ok = np.asarray(errors) == 0
    err = relative_deviation(pred[ok], model.predict(X[ok]), axis=0)
    us = stats.get("infer_us", 0) / max(1, stats.get("samples", 1))
    print("   streamed %d rows in %.1f s (%.0f samples/s end to end), %d errors; device %.0f us "
          "per inference; max |board - host| / (|host| + rms) = %.1e"
          % (len(X), seconds, len(X) / seconds, int((~ok).sum()), us, err))
    ctx["board"] = {"serves_on": where}
    ctx["summary"].append(
        "On the virtual %s the %s model answered %d streamed rows, each equal to the host "
        "prediction within %.1e relative (device %.0f us an inference; boot to answers %.0f s)."
        % (where, LAW, len(X), err, us, time.perf_counter() - t0))


def step_drift_and_feel(ctx):
    """Drift a sensor gain, retrain on the board, commit, pull, compare."""
    law = _law(ctx)
    if law is None:
        return
    blob, model, X, Y = law
    Xd = X.copy()
    Xd[:, DRIFT_CHANNEL] *= DRIFT_GAIN       # the sensor now reads 1.3x the true value
    train = slice(0, min(TRAIN_ROWS, len(X) - 50))
    fresh = slice(len(X) - 50, len(X))
    where = ctx.get("board", {}).get("serves_on", "microbit-v1")
    print("\n== feeling: sensor %s drifts x%.1f; the board retrains on %d labelled rows (%s)"
          % (model.inputs[DRIFT_CHANNEL], DRIFT_GAIN, train.stop, where))
    vm = _boot(where, blob, print)
    try:
        with Board.open(vm.port) as board:
            res = feeling.retrain(board, Xd[train], Y[train], model.inputs, model.outputs)
            pred, errors = board.infer(Xd[fresh])
            pulled_blob = feeling.pull(board)
    finally:
        vm.stop()
    pulled = ndm.loads(pulled_blob)
    ok = np.asarray(errors) == 0
    rmse = lambda p, y: float(np.sqrt(np.mean((p - y) ** 2)))
    clean = rmse(model.predict(X[fresh]), Y[fresh])
    drifted = rmse(model.predict(Xd[fresh]), Y[fresh])
    after = rmse(pred[ok], Y[fresh][ok])
    parity = relative_deviation(pulled.predict(Xd[fresh][ok]), pred[ok], axis=0)
    print("   RMSE on fresh rows: clean %.3g, drifted %.3g, after feeling %.3g "
          "(board's own held-out RMSE %.3g -> %.3g); committed model %08x"
          % (clean, drifted, after, res["rmse_before"], res["rmse_after"], res["model_hash"] or 0))
    print("   pulled model predicts what the board predicts: max relative difference %.1e" % parity)
    ctx["summary"].append(
        "After a x%.1f gain drift on %s the model's RMSE rose from %.3g to %.3g; %d labelled "
        "samples fed to the %s brought it to %.3g without touching the exponents, and the pulled "
        "model matches the board within %.1e."
        % (DRIFT_GAIN, model.inputs[DRIFT_CHANNEL], clean, drifted, train.stop, where, after,
           parity))


STEPS = [step_serve_on_microbit, step_drift_and_feel]

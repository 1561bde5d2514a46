"""Export a model as a float32 ``.tflite`` graph (``ndyn export --format tflite``).

The graph is the log-space forward pass, op for op::

    input [1, d_in]  raw sensor vector
    SUB   offset     [1, d_in]       r - o
    MUL   scale      [1, d_in]       x = s * (r - o)
    LOG                              log x
    FULLY_CONNECTED  W (K x d_in), c (K)          z = W log x + c
    EXP                              exp z
    FULLY_CONNECTED  A^T (d_out x K), b (d_out)   y = b + A^T exp z
    ADD   guard      [1, 1]          y + 0, or NaN for an invalid input (below)
    output [1, d_out]

Why this shape and not the board's integer path: TFLite has no "integer power"
op, and LOG -> FULLY_CONNECTED -> EXP is exactly ``prod_j x_j^w_kj`` with the
exponents kept readable as the first layer's weights.  Everything is float32:
TFLite-Micro's LOG and EXP kernels are float-only (an int8 LOG fails to invoke,
"input->type != expected_type (INT8 != FLOAT32)"; an int8 EXP fails to prepare;
tests/test_export_tflite.py checks both), so this graph cannot be int8-quantised
for TFLM; it runs on any TFLM target with an FPU (or soft-float) and on the full
TFLite runtime (ai-edge-litert, or tflite-runtime where numpy < 2).

Invalid inputs: TFLite has no per-sample error channel, so an input that maps
to x_j <= 0 (or NaN/inf) must at least not produce a plausible number.  LOG
gives NaN or -inf there, but XNNPACK's EXP (ai-edge-litert's default CPU path)
turns NaN into 0, which would make the output silently equal the bias.  So the
graph adds a guard: ``FULLY_CONNECTED(log x, zeros[1, d_in])`` is 0 for a valid
sample and NaN otherwise (0 * NaN, 0 * -inf), and is ADDed to the output
(d_in extra MACs).  Result: every output of a sample with a channel mapping to
x_j <= 0 or NaN is NaN, under every runtime tested (ai-edge-litert with and
without XNNPACK, TFLite-Micro).  One gap remains: TFLite's SUB/MUL kernels
clamp their float output to +-FLT_MAX, so a raw +inf becomes a huge finite x
and yields a finite output (the host, the board and the C export reject it).

K = 0 (a constant model): the graph keeps SUB, MUL, LOG and ends in one
FULLY_CONNECTED with zero weights (d_out x d_in) and bias b, so the output is
b for every valid input and NaN for an invalid one, like the K > 0 graph.

The file is written without TensorFlow by ``neurondyn.tflite_writer``.
"""
from __future__ import annotations

import numpy as np

from .fsutil import atomic_write_bytes
from .model import Model
from .tflite_writer import GraphWriter


def build_graph(model: Model) -> GraphWriter:
    """Lay out the float32 graph of ``model`` (see the module docstring)."""
    d_in, d_out, k = model.d_in, model.d_out, model.k_star
    g = GraphWriter(description="neurondyn %d->%d K=%d" % (d_in, d_out, k))
    raw = g.tensor("raw", [1, d_in])
    offset = g.tensor("offset", [1, d_in], data=model.offset)
    scale = g.tensor("scale", [1, d_in], data=model.scale)
    shifted = g.tensor("shifted", [1, d_in])
    x = g.tensor("x", [1, d_in])
    log_x = g.tensor("log_x", [1, d_in])
    out = g.tensor("y", [1, d_out])
    bias = g.tensor("bias", [d_out], data=model.bias)
    g.op("SUB", [raw, offset], [shifted])
    g.op("MUL", [shifted, scale], [x])
    g.op("LOG", [x], [log_x])
    if k == 0:
        zeros = g.tensor("zero_readout", [d_out, d_in], data=np.zeros((d_out, d_in)))
        g.op("FULLY_CONNECTED", [log_x, zeros, bias], [out])
    else:
        exponents = g.tensor("exponents", [k, d_in], data=model.exponents)
        log_gain = g.tensor("log_gain", [k], data=model.log_gain)
        z = g.tensor("z", [1, k])
        phi = g.tensor("atoms", [1, k])
        readout = g.tensor("readout", [d_out, k], data=model.readout.T)
        y = g.tensor("y_unguarded", [1, d_out])
        guard_w = g.tensor("guard_weights", [1, d_in], data=np.zeros((1, d_in)))
        guard = g.tensor("guard", [1, 1])
        g.op("FULLY_CONNECTED", [log_x, exponents, log_gain], [z])
        g.op("EXP", [z], [phi])
        g.op("FULLY_CONNECTED", [phi, readout, bias], [y])
        # 0 for a valid sample, NaN when some log x_j is NaN or -inf (see docstring)
        g.op("FULLY_CONNECTED", [log_x, guard_w, -1], [guard])
        g.op("ADD", [y, guard], [out])
    g.inputs, g.outputs = [raw], [out]
    return g


def to_bytes(model: Model) -> bytes:
    """The ``.tflite`` file contents for ``model``."""
    return build_graph(model).to_bytes()


def write(model: Model, path) -> None:
    """Write ``model`` as ``.tflite`` to ``path`` atomically (whole file or nothing)."""
    atomic_write_bytes(path, to_bytes(model))

"""A tiny TFLite flatbuffer writer: tensors, constant buffers and a handful of builtin ops.

Why this exists: the product must emit ``.tflite`` files without TensorFlow (a
multi-hundred-megabyte dependency nobody on a microcontroller project wants).
The `tflite` PyPI package ships the flatbuffer builder functions generated from
the official schema; this module drives them to lay out one subgraph.

What the writer guarantees (so both the full TFLite runtime and TFLite-Micro
accept the file):

- ``buffers[0]`` is the empty sentinel; every constant tensor gets its own
  buffer, every activation tensor points at buffer 0;
- schema version 3 and the ``TFL3`` file identifier;
- each operator code sets both ``deprecated_builtin_code`` (int8, the field old
  readers look at) and ``builtin_code`` (int32, the current one);
- constant data is 16-byte aligned (TFLM reads weights in place).

Only the ops the exporters need are supported; adding one means adding its
options builder to ``_OPTIONS``.
"""
from __future__ import annotations

import flatbuffers
import numpy as np
import tflite as tfl  # the package re-exports every generated builder function and enum

SCHEMA_VERSION = 3
FILE_IDENTIFIER = b"TFL3"

_TYPES = {
    "float32": (tfl.TensorType.FLOAT32, np.dtype("<f4")),
    "int8": (tfl.TensorType.INT8, np.dtype("i1")),
    "int32": (tfl.TensorType.INT32, np.dtype("<i4")),
}

_ACTIVATIONS = {
    None: tfl.ActivationFunctionType.NONE,
    "relu": tfl.ActivationFunctionType.RELU,
}


def _sub_options(b, opts):
    tfl.SubOptionsStart(b)
    tfl.SubOptionsAddFusedActivationFunction(b, _ACTIVATIONS[opts.get("activation")])
    return tfl.SubOptionsEnd(b)


def _add_options(b, opts):
    tfl.AddOptionsStart(b)
    tfl.AddOptionsAddFusedActivationFunction(b, _ACTIVATIONS[opts.get("activation")])
    return tfl.AddOptionsEnd(b)


def _mul_options(b, opts):
    tfl.MulOptionsStart(b)
    tfl.MulOptionsAddFusedActivationFunction(b, _ACTIVATIONS[opts.get("activation")])
    return tfl.MulOptionsEnd(b)


def _fc_options(b, opts):
    tfl.FullyConnectedOptionsStart(b)
    tfl.FullyConnectedOptionsAddFusedActivationFunction(
        b, _ACTIVATIONS[opts.get("activation")])
    return tfl.FullyConnectedOptionsEnd(b)


_OPS = tfl.BuiltinOperator
_OPT = tfl.BuiltinOptions
# name -> (builtin code, options union type, options builder or None)
_OPTIONS = {
    "ADD": (_OPS.ADD, _OPT.AddOptions, _add_options),
    "SUB": (_OPS.SUB, _OPT.SubOptions, _sub_options),
    "MUL": (_OPS.MUL, _OPT.MulOptions, _mul_options),
    "LOG": (_OPS.LOG, _OPT.NONE, None),
    "EXP": (_OPS.EXP, _OPT.NONE, None),
    "FULLY_CONNECTED": (_OPS.FULLY_CONNECTED, _OPT.FullyConnectedOptions, _fc_options),
    "QUANTIZE": (_OPS.QUANTIZE, _OPT.NONE, None),
    "DEQUANTIZE": (_OPS.DEQUANTIZE, _OPT.NONE, None),
}


class GraphWriter:
    """Collect tensors and operators of one subgraph, then serialise them.

    Usage::

        g = GraphWriter()
        x = g.tensor("input", [1, 3])
        w = g.tensor("w", [2, 3], data=weights)
        ...
        g.op("FULLY_CONNECTED", [x, w, bias], [y])
        g.inputs, g.outputs = [x], [y]
        blob = g.to_bytes()
    """

    def __init__(self, description="neurondyn"):
        self.description = description
        self.tensors = []      # dicts: name, shape, dtype, buffer, quant
        self.buffers = [b""]   # buffers[0] is the empty sentinel
        self.operators = []    # dicts: code index, inputs, outputs, options
        self.opcodes = []      # (name, version), in first-use order
        self.inputs = []
        self.outputs = []

    def tensor(self, name, shape, dtype="float32", data=None, scale=None, zero_point=None):
        """Add a tensor; with ``data`` it is a constant stored in its own buffer.

        ``scale``/``zero_point`` give per-tensor affine quantization
        (real = scale * (q - zero_point)) for int8/int32 tensors.
        """
        if dtype not in _TYPES:
            raise ValueError("unsupported tensor type %r" % dtype)
        shape = [int(s) for s in shape]
        buffer = 0
        if data is not None:
            arr = np.asarray(data, dtype=_TYPES[dtype][1])
            if arr.size != int(np.prod(shape)):
                raise ValueError("tensor %r: %d values for shape %s" % (name, arr.size, shape))
            self.buffers.append(arr.reshape(shape).tobytes())
            buffer = len(self.buffers) - 1
        quant = None
        if scale is not None:
            quant = (float(scale), int(zero_point or 0))
        self.tensors.append({"name": name, "shape": shape, "dtype": dtype,
                             "buffer": buffer, "quant": quant})
        return len(self.tensors) - 1

    def op(self, name, inputs, outputs, version=1, **options):
        """Append a builtin operator (see ``_OPTIONS`` for the supported names).

        An input index of -1 means "optional input omitted" (e.g. no bias).
        """
        if name not in _OPTIONS:
            raise ValueError("unsupported operator %r" % name)
        key = (name, int(version))
        if key not in self.opcodes:
            self.opcodes.append(key)
        self.operators.append({"opcode": self.opcodes.index(key), "name": name,
                               "inputs": list(inputs), "outputs": list(outputs),
                               "options": options})

    # -- serialisation -------------------------------------------------------
    @staticmethod
    def _int_vector(b, values):
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependInt32(int(v))
        return b.EndVector()

    @staticmethod
    def _offset_vector(b, offsets):
        b.StartVector(4, len(offsets), 4)
        for off in reversed(offsets):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    @staticmethod
    def _aligned_bytes(b, data, alignment=16):
        b.StartVector(1, len(data), alignment)
        b.head = b.head - len(data)
        b.Bytes[b.head:b.head + len(data)] = data
        return b.EndVector()

    def _buffer(self, b, data):
        payload = self._aligned_bytes(b, data) if data else None
        tfl.BufferStart(b)
        if payload is not None:
            tfl.BufferAddData(b, payload)
        return tfl.BufferEnd(b)

    def _quantization(self, b, quant):
        scale, zero_point = quant
        b.StartVector(4, 1, 4)
        b.PrependFloat32(scale)
        scales = b.EndVector()
        b.StartVector(8, 1, 8)
        b.PrependInt64(zero_point)
        zeros = b.EndVector()
        tfl.QuantizationParametersStart(b)
        tfl.QuantizationParametersAddScale(b, scales)
        tfl.QuantizationParametersAddZeroPoint(b, zeros)
        return tfl.QuantizationParametersEnd(b)

    def _tensor(self, b, t):
        name = b.CreateString(t["name"])
        shape = self._int_vector(b, t["shape"])
        quant = self._quantization(b, t["quant"]) if t["quant"] else None
        tfl.TensorStart(b)
        tfl.TensorAddShape(b, shape)
        tfl.TensorAddType(b, _TYPES[t["dtype"]][0])
        tfl.TensorAddBuffer(b, t["buffer"])
        tfl.TensorAddName(b, name)
        if quant is not None:
            tfl.TensorAddQuantization(b, quant)
        return tfl.TensorEnd(b)

    def _operator(self, b, o):
        inputs = self._int_vector(b, o["inputs"])
        outputs = self._int_vector(b, o["outputs"])
        _, options_type, build = _OPTIONS[o["name"]]
        options = build(b, o["options"]) if build else None
        tfl.OperatorStart(b)
        tfl.OperatorAddOpcodeIndex(b, o["opcode"])
        tfl.OperatorAddInputs(b, inputs)
        tfl.OperatorAddOutputs(b, outputs)
        if options is not None:
            tfl.OperatorAddBuiltinOptionsType(b, options_type)
            tfl.OperatorAddBuiltinOptions(b, options)
        return tfl.OperatorEnd(b)

    def _opcode(self, b, name, version):
        code = _OPTIONS[name][0]
        tfl.OperatorCodeStart(b)
        # int8 field read by old runtimes; 127 means "look at builtin_code"
        tfl.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        tfl.OperatorCodeAddBuiltinCode(b, code)
        tfl.OperatorCodeAddVersion(b, version)
        return tfl.OperatorCodeEnd(b)

    def to_bytes(self) -> bytes:
        """Serialise the graph as a complete ``.tflite`` flatbuffer."""
        if not self.inputs or not self.outputs:
            raise ValueError("graph needs inputs and outputs")
        b = flatbuffers.Builder(1024 + sum(len(d) for d in self.buffers))
        buffers = [self._buffer(b, d) for d in self.buffers]
        tensors = [self._tensor(b, t) for t in self.tensors]
        operators = [self._operator(b, o) for o in self.operators]
        tensors_vec = self._offset_vector(b, tensors)
        inputs_vec = self._int_vector(b, self.inputs)
        outputs_vec = self._int_vector(b, self.outputs)
        operators_vec = self._offset_vector(b, operators)
        sg_name = b.CreateString("main")
        tfl.SubGraphStart(b)
        tfl.SubGraphAddTensors(b, tensors_vec)
        tfl.SubGraphAddInputs(b, inputs_vec)
        tfl.SubGraphAddOutputs(b, outputs_vec)
        tfl.SubGraphAddOperators(b, operators_vec)
        tfl.SubGraphAddName(b, sg_name)
        subgraph = tfl.SubGraphEnd(b)

        opcodes_vec = self._offset_vector(b, [self._opcode(b, n, v) for n, v in self.opcodes])
        subgraphs_vec = self._offset_vector(b, [subgraph])
        buffers_vec = self._offset_vector(b, buffers)
        description = b.CreateString(self.description)
        tfl.ModelStart(b)
        tfl.ModelAddVersion(b, SCHEMA_VERSION)
        tfl.ModelAddOperatorCodes(b, opcodes_vec)
        tfl.ModelAddSubgraphs(b, subgraphs_vec)
        tfl.ModelAddDescription(b, description)
        tfl.ModelAddBuffers(b, buffers_vec)
        b.Finish(tfl.ModelEnd(b), file_identifier=FILE_IDENTIFIER)
        return bytes(b.Output())

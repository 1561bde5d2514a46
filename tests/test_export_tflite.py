"""The float32 .tflite export: file structure, and parity with Model.predict on
every test row under ai-edge-litert and under the TFLite-Micro interpreter."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
import tflite as tfl

from neurondyn import export_tflite, ndm
from neurondyn.bench.export import random_model, run_litert, run_tflm, tflm_arena
from neurondyn.model import Model, choose_channels

ROWS = 200


def _tolerance(host):
    """float32 precision: |tfl - host| <= 1e-5 (|host| + rms(host)) per output
    (measured worst: about 1e-6 on these cases)."""
    rms = np.sqrt(np.mean(host ** 2, axis=0))
    return 1e-5 * (np.abs(host) + rms)


def _through_ndm(model):
    """What a user exports is a model read back from a .ndm file."""
    return ndm.loads(ndm.dumps(model))


def _case(d_in, d_out, k, seed, signed=False):
    rng = np.random.default_rng(seed)
    if signed:
        # channels that cross zero: the offset/scale map must be applied by the graph
        raw = rng.uniform(-3, 3, size=(ROWS, d_in)).astype(np.float32).astype(np.float64)
        o, s = choose_channels(raw)
        model = random_model(d_in, d_out, k, rng, offset=o, scale=s)
    else:
        raw = rng.uniform(1, 5, size=(ROWS, d_in)).astype(np.float32).astype(np.float64)
        model = random_model(d_in, d_out, k, rng)
    return _through_ndm(model), raw


CASES = {
    "3->1 K=2": (3, 1, 2, 1, False),
    "10->4 K=4 signed": (10, 4, 4, 2, True),
    "30->12 K=6": (30, 12, 6, 3, False),
    "5->2 K=0": (5, 2, 0, 4, False),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    model, raw = _case(*CASES[request.param])
    return request.param, model, raw, export_tflite.to_bytes(model)


def test_file_structure_follows_the_schema(case):
    _, model, _, blob = case
    assert blob[4:8] == b"TFL3"
    m = tfl.Model.GetRootAsModel(blob, 0)
    assert m.Version() == 3
    assert m.BuffersLength() >= 2 and m.Buffers(0).DataLength() == 0
    ops = {}
    for i in range(m.OperatorCodesLength()):
        oc = m.OperatorCodes(i)
        assert oc.DeprecatedBuiltinCode() == oc.BuiltinCode()
        ops[oc.BuiltinCode()] = i
    sg = m.Subgraphs(0)
    kinds = [m.OperatorCodes(sg.Operators(i).OpcodeIndex()).BuiltinCode()
             for i in range(sg.OperatorsLength())]
    B = tfl.BuiltinOperator
    if model.k_star:
        assert kinds == [B.SUB, B.MUL, B.LOG, B.FULLY_CONNECTED, B.EXP, B.FULLY_CONNECTED,
                         B.FULLY_CONNECTED, B.ADD]
    else:
        assert kinds == [B.SUB, B.MUL, B.LOG, B.FULLY_CONNECTED]
    assert list(sg.Tensors(sg.Inputs(0)).ShapeAsNumpy()) == [1, model.d_in]
    assert list(sg.Tensors(sg.Outputs(0)).ShapeAsNumpy()) == [1, model.d_out]
    if model.k_star:
        # the first FULLY_CONNECTED carries the integer exponents as its weights
        fc = sg.Operators(3)
        w = sg.Tensors(fc.Inputs(1))
        data = m.Buffers(w.Buffer()).DataAsNumpy().view("<f4").reshape(model.k_star, model.d_in)
        assert np.array_equal(data, model.exponents)


def _check_parity(model, raw, got, runtime):
    host = model.predict(raw)
    err = np.abs(got - host)
    assert np.all(np.isfinite(got)), runtime
    worst = float(np.max(err / (np.abs(host) + np.sqrt(np.mean(host ** 2, axis=0)))))
    assert np.all(err <= _tolerance(host)), "%s: worst relative error %.3g" % (runtime, worst)
    return worst


def test_litert_matches_predict_on_every_row(case):
    name, model, raw, blob = case
    _check_parity(model, raw, run_litert(blob, raw), "ai-edge-litert " + name)


def test_tflm_matches_predict_on_every_row(case):
    name, model, raw, blob = case
    _check_parity(model, raw, run_tflm(blob, raw), "tflite-micro " + name)


def test_a_wrong_graph_would_be_caught():
    """The parity check has teeth: a model with one exponent changed fails it."""
    model, raw = _case(3, 1, 2, 1)
    w = model.exponents.copy()
    j = int(np.flatnonzero(w[0])[0])
    w[0, j] = -w[0, j]
    other = Model(model.offset, model.scale, w, model.log_gain, model.readout, model.bias)
    got = run_litert(export_tflite.to_bytes(other), raw)
    with pytest.raises(AssertionError):
        _check_parity(model, raw, got, "mutated")


@pytest.mark.parametrize("value", [-1.0, 0.0, np.nan], ids=["negative", "zero", "nan"])
def test_invalid_input_gives_nan_not_a_plausible_number(value):
    """x_j <= 0 or NaN must not come out as a number (XNNPACK's EXP maps NaN to 0)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    model, raw = _case(3, 1, 2, 1)
    bad = raw[:2].copy()
    bad[:, 1] = value
    assert not model.valid_rows(bad).any()
    blob = export_tflite.to_bytes(model)
    assert np.all(np.isnan(run_litert(blob, bad)))          # default: XNNPACK delegate
    assert np.all(np.isnan(run_tflm(blob, bad)))
    it = Interpreter(model_content=blob,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], bad[:1].astype(np.float32))
    it.invoke()
    assert np.all(np.isnan(it.get_tensor(it.get_output_details()[0]["index"])))


def test_batch_after_resize(case):
    """Edge-Linux users resize the input to a batch; the constants broadcast."""
    from ai_edge_litert.interpreter import Interpreter
    _, model, raw, blob = case
    it = Interpreter(model_content=blob)
    idx = it.get_input_details()[0]["index"]
    it.resize_tensor_input(idx, [ROWS, model.d_in])
    it.allocate_tensors()
    it.set_tensor(idx, raw.astype(np.float32))
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"]).astype(np.float64)
    host = model.predict(raw)
    assert np.all(np.abs(got - host) <= _tolerance(host))


def test_write_is_atomic_and_complete(tmp_path):
    model, _ = _case(3, 1, 2, 1)
    path = tmp_path / "m.tflite"
    path.write_bytes(b"old")
    export_tflite.write(model, path)
    assert path.read_bytes() == export_tflite.to_bytes(model)
    with pytest.raises(OSError):
        export_tflite.write(model, tmp_path / "missing-dir" / "m.tflite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite"]


def test_tflm_arena_is_measured_in_a_subprocess():
    model, _ = _case(3, 1, 2, 1)
    arena = tflm_arena(export_tflite.to_bytes(model), search=True)
    assert arena["recorded"] > 0
    # the bisection found a size that works, and it is close to what TFLM recorded
    assert 0 < arena["minimal"] <= 4 * arena["recorded"]


def test_int8_mlp_export_runs_under_both_runtimes():
    """The bench's comparison network: int8 FULLY_CONNECTED graph from the same writer."""
    from neurondyn.bench.export import mlp_forward, mlp_int8_tflite
    rng = np.random.default_rng(7)
    layers = [(rng.normal(size=(8, 3)), rng.normal(size=8)),
              (rng.normal(size=(8, 8)) / 3, rng.normal(size=8)),
              (rng.normal(size=(2, 8)) * 2, rng.normal(size=2))]
    X = rng.uniform(1, 5, size=(300, 3))
    blob, lsb = mlp_int8_tflite(layers, X)
    m = tfl.Model.GetRootAsModel(blob, 0)
    sg = m.Subgraphs(0)
    assert sg.Tensors(sg.Operators(1).Inputs(1)).Type() == tfl.TensorType.INT8
    want = mlp_forward(layers, X)[-1]
    lite, micro = run_litert(blob, X), run_tflm(blob, X)
    # int8 kernels of the two runtimes agree to an output LSB or so
    assert np.max(np.abs(lite - micro)) <= 2 * lsb + 1e-6
    # quantisation costs a couple of output LSBs, not a wrong network
    assert np.all(want.std(axis=0) > 10 * lsb)           # outputs span many LSBs
    assert np.sqrt(np.mean((lite - want) ** 2)) <= 3 * lsb
    assert np.sqrt(np.mean((lite - want) ** 2)) > 0     # it really is quantised


@pytest.mark.parametrize("op", ["LOG", "EXP"])
def test_tflm_log_and_exp_are_float_only(op):
    """Why the exported graph is float32: TFLM refuses an int8 LOG or EXP."""
    from tflite_micro.python.tflite_micro import runtime
    from neurondyn.tflite_writer import GraphWriter
    g = GraphWriter()
    a = g.tensor("a", [1, 4], dtype="int8", scale=0.05, zero_point=-128)
    b = g.tensor("b", [1, 4], dtype="int8", scale=0.05, zero_point=0)
    g.op(op, [a], [b], version=2)
    g.inputs, g.outputs = [a], [b]
    with pytest.raises(RuntimeError):
        it = runtime.Interpreter.from_bytes(g.to_bytes(), arena_size=16384)
        it.set_input(np.ones((1, 4), np.int8), 0)
        it.invoke()


def test_export_bench_one_size(monkeypatch):
    """The bench suite end to end on its smallest task with a one-width MLP ladder."""
    import json
    from neurondyn.bench import export as bench
    monkeypatch.setattr(bench, "WIDTH_LADDER_QUICK", (8,))
    r = bench.bench_size(3, 1, 2, quick=True)
    json.dumps(r)                                   # JSON-ready for --json / checkpoints
    ours, mlp = r["ours"], r["mlp"]
    assert ours["tflite_bytes"] > 0 and ours["ndm_bytes"] > ours["ndm_bytes_no_names"]
    assert ours["parity_litert"] < 1e-5 and ours["parity_tflm"] < 1e-5
    assert ours["arena"]["recorded"] > 0
    # 1 % noise: our model's test error is the noise floor
    assert 0.005 < ours["nrmse_host"] < 0.02
    assert mlp["width"] == 8 and mlp["fc_macs"] == 3 * 8 + 8 * 8 + 8 * 1
    assert mlp["reached"] == (mlp["nrmse_litert"] <= r["target_nrmse"])
    assert mlp["tflm_vs_litert_max_lsb"] < 4    # int8 kernels differ by LSBs only
    table = bench.render([r], quick=True)
    assert "| 3 -> 1 | ours K=2, float32 .tflite | %d |" % ours["tflite_bytes"] in table


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(1, 3), st.integers(0, 4), st.integers(0, 2 ** 31))
def test_any_small_model_round_trips(d_in, d_out, k, seed):
    """Edge shapes (d_in = 1, d_out = 1, K = 0..4) under both runtimes."""
    rng = np.random.default_rng(seed)
    model = _through_ndm(random_model(d_in, d_out, k, rng))
    raw = rng.uniform(1, 5, size=(20, d_in)).astype(np.float32).astype(np.float64)
    blob = export_tflite.to_bytes(model)
    _check_parity(model, raw, run_litert(blob, raw), "ai-edge-litert")
    _check_parity(model, raw, run_tflm(blob, raw), "tflite-micro")

"""The physicist's formula: layout, signs, units, channel maps, and that it computes the model."""
import math

import numpy as np
from hypothesis import given, settings, strategies as st

from neurondyn.formula import channel_lines, formula_line, formula_lines, monomial
from neurondyn.model import Model


def model(w, c, a, b, inputs, outputs=None, offset=None, scale=None, quantized=True):
    d = len(inputs)
    return Model(np.zeros(d) if offset is None else offset, np.ones(d) if scale is None else scale,
                 w, c, a, b, inputs, outputs or [], quantized)


def test_coulomb_reads_like_a_textbook():
    m = model([[1, 1, -2]], [math.log(8.9875517923e9)], [[1.0]], [0.0], ["q1", "q2", "r"], ["F"])
    assert formula_lines(m) == ["F = 8.99e+09 q1 q2 / r^2"]


def test_several_denominator_factors_are_parenthesised():
    m = model([[1, 1, -1, -2]], [math.log(1 / (4 * math.pi))], [[1.0]], [0.0],
              ["q1", "q2", "epsilon", "r"])
    assert formula_lines(m) == ["y = 0.0796 q1 q2 / (epsilon r^2)"]


def test_signs_bias_unit_coefficients_and_constant_atoms():
    m = model([[1, 0], [0, -1], [0, 0]], [0.0, math.log(2.0), math.log(3.0)],
              [[1.0], [-1.0], [1.0]], [-0.5], ["a", "b"], ["y"])
    assert formula_line(m, 0) == "y = a - 2 / b + 3 - 0.5"


def test_leading_negative_term_and_only_denominator():
    m = model([[0, -2]], [0.0], [[-1.0]], [0.0], ["a", "b"], ["y"])
    assert formula_lines(m) == ["y = -1 / b^2"]


def test_empty_model_is_zero_or_bias():
    assert formula_lines(model(np.zeros((0, 2)), [], np.zeros((0, 1)), [0.0], ["a", "b"])) == ["y = 0"]
    assert formula_lines(model(np.zeros((0, 2)), [], np.zeros((0, 1)), [1.5], ["a", "b"])) == ["y = 1.5"]


def test_one_line_per_output_and_zero_readouts_left_out():
    m = model([[1, 0], [0, 1]], [0.0, 0.0], [[2.0, 0.0], [0.0, -3.0]], [0.0, 0.0],
              ["a", "b"], ["left", "right"])
    assert formula_lines(m) == ["left = 2 a", "right = -3 b"]


def test_real_exponents_are_printed():
    m = model([[0.5, -1.25]], [0.0], [[1.0]], [0.0], ["a", "b"], quantized=False)
    assert formula_lines(m) == ["y = a^0.5 / b^1.25"]


def test_mapped_channels_are_primed_and_spelled_out():
    m = model([[1, -1]], [0.0], [[1.0]], [0.0], ["imu_ax", "r"], offset=[-3.0, 0.0], scale=[0.25, 1.0])
    assert formula_lines(m) == ["y = imu_ax' / r"]
    assert channel_lines(m) == ["imu_ax' = 0.25 (imu_ax + 3)"]
    m2 = model([[1]], [0.0], [[1.0]], [0.0], ["t"], offset=[2.0], scale=[1.0])
    assert channel_lines(m2) == ["t' = t - 2"]


def test_monomial_ordering_follows_inputs():
    assert monomial([2, -1, 1], ["v", "r", "m"]) == "v^2 m / r"
    assert monomial([0, 0, 0], ["a", "b", "c"]) == ""


def _evaluate(line, env):
    """Evaluate a printed formula with Python (its grammar is that simple)."""
    rhs = line.split(" = ", 1)[1]
    expr = (rhs.replace(" + ", "+").replace(" - ", "-").replace(" / ", "/")
            .replace(" ", "*").replace("^", "**"))
    return eval(expr, {"__builtins__": {}}, env)


@st.composite
def models(draw):
    d_in = draw(st.integers(1, 4))
    d_out = draw(st.integers(1, 3))
    k = draw(st.integers(0, 4))
    w = draw(st.lists(st.lists(st.integers(-2, 2), min_size=d_in, max_size=d_in),
                      min_size=k, max_size=k))
    gains = st.floats(-3, 3, allow_nan=False)
    c = draw(st.lists(gains, min_size=k, max_size=k))
    a = draw(st.lists(st.lists(st.floats(-5, 5, allow_nan=False), min_size=d_out, max_size=d_out),
                      min_size=k, max_size=k))
    b = draw(st.lists(st.floats(-5, 5, allow_nan=False), min_size=d_out, max_size=d_out))
    return model(np.array(w, dtype=float).reshape(k, d_in), c, np.array(a).reshape(k, d_out), b,
                 ["x%d" % j for j in range(d_in)])


@settings(max_examples=100, deadline=None)
@given(models(), st.lists(st.floats(0.5, 4.0), min_size=4, max_size=4))
def test_printed_formula_computes_the_model(m, xs):
    """At full precision the formula text evaluates to the model's prediction."""
    raw = np.array(xs[:m.d_in])
    want = m.predict(raw.reshape(1, -1))[0]
    env = {name: float(v) for name, v in zip(m.inputs, raw)}
    for i, line in enumerate(formula_lines(m, digits=17)):
        assert line.startswith(m.outputs[i] + " = ")
        got = _evaluate(line, env)
        scale = abs(m.bias[i]) + sum(abs(m.readout[k, i]) * math.exp(m.log_gain[k])
                                     * np.prod(raw ** m.exponents[k]) for k in range(m.k_star))
        assert abs(got - want[i]) <= 1e-9 * (scale + 1e-300)

"""A model written the way a physicist writes it: ``F = 8.99e+09 q1 q2 / r^2``.

Each output ``y_i = b_i + sum_k a_ki e^{c_k} prod_j x_j^{w_kj}`` becomes one line.
The coefficient of a term folds the atom's gain into its readout
(``a_ki * e^{c_k}``, three significant digits by default); factors with positive
exponents go in the numerator, negative ones in the denominator (in parentheses
when there are several), in input order.  A coefficient of exactly 1 (at the
printed precision) is left out, as a physicist would.

A channel whose map is not the identity (``o != 0`` or ``s != 1``) appears primed
(``imu_ax'``) and ``channel_lines`` spells the map out, so the printed formula
is always the one the model computes.
"""
from __future__ import annotations

import numpy as np


def _num(value: float, digits: int) -> str:
    return "%.*g" % (digits, value)


def _power(name: str, exponent: float, digits: int) -> str:
    e = abs(float(exponent))
    if e == 1:
        return name
    if e == round(e):
        return "%s^%d" % (name, int(e))
    return "%s^%s" % (name, _num(e, digits))


def variable_names(model) -> list:
    """Names as they appear in formulas: primed when the channel map is not the identity."""
    return [name + "'" if not identity else name
            for name, identity in zip(model.inputs, _identity_channels(model))]


def _identity_channels(model):
    return [(o == 0.0 and s == 1.0) for o, s in zip(model.offset, model.scale)]


def monomial(exponents, names, digits=3) -> str:
    """``q1 q2 / r^2`` for exponents (1, 1, -2); empty string for a constant atom."""
    num = [_power(n, e, digits) for n, e in zip(names, exponents) if e > 0]
    den = [_power(n, e, digits) for n, e in zip(names, exponents) if e < 0]
    text = " ".join(num) if num else ("1" if den else "")
    if den:
        text += " / " + (den[0] if len(den) == 1 else "(%s)" % " ".join(den))
    return text


def _term(coef: float, mono: str, digits: int) -> tuple:
    """(sign, body) of one term; body omits a unit coefficient."""
    sign = "-" if coef < 0 else "+"
    mag = _num(abs(coef), digits)
    if not mono:
        return sign, mag
    if mag == "1":
        return sign, mono
    if mono.startswith("1 / "):        # 2 / r rather than 2 1 / r
        return sign, mag + mono[1:]
    return sign, mag + " " + mono


def output_terms(model, output: int, digits: int = 3) -> list:
    """[(coefficient, monomial text)] of one output, in atom order, zero readouts left out."""
    names = variable_names(model)
    terms = []
    for k in range(model.k_star):
        coef = float(model.readout[k, output]) * float(np.exp(model.log_gain[k]))
        if coef != 0.0:
            terms.append((coef, monomial(model.exponents[k], names, digits)))
    return terms


def formula_line(model, output: int, digits: int = 3) -> str:
    """One output as ``name = term + term - term + bias``."""
    parts = [_term(c, m, digits) for c, m in output_terms(model, output, digits)]
    bias = float(model.bias[output])
    if bias != 0.0:
        parts.append(_term(bias, "", digits))
    if not parts:
        return "%s = 0" % model.outputs[output]
    sign, body = parts[0]
    text = ("-" if sign == "-" else "") + body
    for sign, body in parts[1:]:
        text += " %s %s" % (sign, body)
    return "%s = %s" % (model.outputs[output], text)


def formula_lines(model, digits: int = 3) -> list:
    """One formula line per output."""
    return [formula_line(model, i, digits) for i in range(model.d_out)]


def channel_lines(model, digits: int = 4) -> list:
    """``imu_ax' = 0.25 (imu_ax + 3)`` for every channel whose map is not the identity."""
    lines = []
    for name, o, s, identity in zip(model.inputs, model.offset, model.scale,
                                    _identity_channels(model)):
        if identity:
            continue
        if o == 0.0:
            inner = name
        else:
            inner = "(%s %s %s)" % (name, "-" if o > 0 else "+", _num(abs(o), digits))
        lines.append("%s' = %s %s" % (name, _num(s, digits), inner) if s != 1.0
                     else "%s' = %s" % (name, inner.strip("()")))
    return lines

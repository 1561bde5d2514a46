"""The power-law model: channel map, atoms, readout, bias.

A raw sensor vector ``r`` (d_in values) maps to strictly positive inputs
``x_j = s_j * (r_j - o_j)``.  Atom ``k`` has an exponent vector ``w_k``, a
log-gain ``c_k`` and a readout vector ``a_k`` (d_out)::

    z_k = c_k + sum_j w_kj * log x_j        (log-space forward pass)
    y   = b + sum_k a_k * exp(z_k)          (linear readout)

With integer exponents ``exp(z_k) = e^{c_k} * prod_j x_j^{w_kj}``, which is the
path the board takes (multiplies and divides only); ``predict_integer`` is the
host twin of that path so the two can be tested against each other.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EXPONENT_MIN = -2
EXPONENT_MAX = 2


class InvalidInput(ValueError):
    """A sample maps to a non-positive, NaN or infinite input.

    ``rows`` holds the indices of the offending samples so callers can report
    them per row instead of failing the whole batch.
    """

    def __init__(self, message, rows=()):
        super().__init__(message)
        self.rows = list(rows)


@dataclass
class Model:
    offset: np.ndarray            # o_j, shape (d_in,)
    scale: np.ndarray             # s_j, shape (d_in,)
    exponents: np.ndarray         # w, shape (K, d_in); integers when quantized
    log_gain: np.ndarray          # c, shape (K,)
    readout: np.ndarray           # a, shape (K, d_out)
    bias: np.ndarray              # b, shape (d_out,)
    inputs: list = field(default_factory=list)    # names, length d_in
    outputs: list = field(default_factory=list)   # names, length d_out
    quantized: bool = True

    def __post_init__(self):
        self.offset = np.asarray(self.offset, dtype=np.float64).reshape(-1)
        self.scale = np.asarray(self.scale, dtype=np.float64).reshape(-1)
        d_in = self.offset.size
        self.exponents = np.asarray(self.exponents, dtype=np.float64).reshape(-1, d_in)
        self.log_gain = np.asarray(self.log_gain, dtype=np.float64).reshape(-1)
        self.bias = np.asarray(self.bias, dtype=np.float64).reshape(-1)
        d_out = self.bias.size
        self.readout = np.asarray(self.readout, dtype=np.float64).reshape(-1, d_out)
        if not self.inputs:
            self.inputs = ["x%d" % (j + 1) for j in range(d_in)]
        if not self.outputs:
            self.outputs = ["y%d" % (i + 1) for i in range(d_out)] if d_out > 1 else ["y"]
        self.inputs = list(self.inputs)
        self.outputs = list(self.outputs)
        self.validate()

    # -- shape -----------------------------------------------------------
    @property
    def d_in(self) -> int:
        return self.offset.size

    @property
    def d_out(self) -> int:
        return self.bias.size

    @property
    def k_star(self) -> int:
        return self.exponents.shape[0]

    def validate(self):
        """Raise ValueError if shapes or values are inconsistent."""
        k, d_in, d_out = self.exponents.shape[0], self.d_in, self.d_out
        if self.scale.shape != (d_in,):
            raise ValueError("scale must have d_in=%d entries" % d_in)
        if self.log_gain.shape != (k,) or self.readout.shape != (k, d_out):
            raise ValueError("atom arrays disagree on K")
        if len(self.inputs) != d_in or len(self.outputs) != d_out:
            raise ValueError("names do not match d_in/d_out")
        for name, arr in (("offset", self.offset), ("scale", self.scale),
                          ("exponents", self.exponents), ("log_gain", self.log_gain),
                          ("readout", self.readout), ("bias", self.bias)):
            if not np.all(np.isfinite(arr)):
                raise ValueError("%s contains NaN or inf" % name)
        if np.any(self.scale == 0):
            raise ValueError("a channel scale is zero")
        if self.quantized:
            w = self.exponents
            if np.any(w != np.round(w)) or np.any(w < EXPONENT_MIN) or np.any(w > EXPONENT_MAX):
                raise ValueError("quantized exponents must be integers in [-2, 2]")

    # -- forward passes ----------------------------------------------------
    def channel(self, raw) -> np.ndarray:
        """Map raw sensor rows (N, d_in) to positive inputs; raise InvalidInput."""
        raw = np.asarray(raw, dtype=np.float64)
        if raw.ndim == 1:
            raw = raw.reshape(1, -1)
        if raw.shape[1] != self.d_in:
            raise ValueError("expected %d input columns, got %d" % (self.d_in, raw.shape[1]))
        x = self.scale * (raw - self.offset)
        bad = ~np.all(np.isfinite(x) & (x > 0), axis=1)
        if np.any(bad):
            rows = np.flatnonzero(bad)
            raise InvalidInput("%d sample(s) map to a non-positive, NaN or infinite input "
                               "(first: row %d)" % (rows.size, rows[0]), rows)
        return x

    def valid_rows(self, raw) -> np.ndarray:
        """Boolean mask of rows whose mapped inputs are all finite and positive."""
        raw = np.asarray(raw, dtype=np.float64).reshape(-1, self.d_in)
        with np.errstate(invalid="ignore"):
            x = self.scale * (raw - self.offset)
            return np.all(np.isfinite(x) & (x > 0), axis=1)

    def atoms_log(self, x) -> np.ndarray:
        """z = c + W log x for positive inputs x (N, d_in) -> (N, K)."""
        return np.log(x) @ self.exponents.T + self.log_gain

    def predict(self, raw) -> np.ndarray:
        """Log-space forward pass: (N, d_in) raw -> (N, d_out)."""
        x = self.channel(raw)
        return self.bias + np.exp(self.atoms_log(x)) @ self.readout

    def predict_integer(self, raw) -> np.ndarray:
        """The board's path: e^c times products/quotients of x over non-zero exponents."""
        if not self.quantized:
            raise ValueError("the integer path needs a quantized model")
        x = self.channel(raw)
        phi = np.empty((x.shape[0], self.k_star))
        for k in range(self.k_star):
            num = np.full(x.shape[0], np.exp(self.log_gain[k]))
            den = np.ones(x.shape[0])
            for j in np.flatnonzero(self.exponents[k]):
                e = int(self.exponents[k, j])
                p = x[:, j] if abs(e) == 1 else x[:, j] * x[:, j]
                if e > 0:
                    num = num * p
                else:
                    den = den * p
            phi[:, k] = num / den
        return self.bias + phi @ self.readout

    # -- conveniences ------------------------------------------------------
    def atom_set(self):
        """The set of exponent tuples: the model's structure, independent of order."""
        return {tuple(int(v) if self.quantized else float(v) for v in w) for w in self.exponents}

    def rounded_to_float32(self) -> "Model":
        """A copy whose parameters are exactly representable in float32 (as in .ndm)."""
        f = lambda a: np.asarray(a, dtype=np.float32).astype(np.float64)
        return Model(f(self.offset), f(self.scale),
                     self.exponents.copy() if self.quantized else f(self.exponents),
                     f(self.log_gain), f(self.readout), f(self.bias),
                     list(self.inputs), list(self.outputs), self.quantized)

    def to_dict(self) -> dict:
        """The JSON schema of DESIGN.md §4 (`inspect --json`, `export --format json`)."""
        atoms = []
        for k in range(self.k_star):
            exps = {}
            for j in np.flatnonzero(self.exponents[k]):
                v = self.exponents[k, j]
                exps[self.inputs[j]] = int(v) if self.quantized else float(v)
            atoms.append({"exponents": exps, "log_gain": float(self.log_gain[k]),
                          "readout": [float(v) for v in self.readout[k]]})
        return {
            "inputs": list(self.inputs), "outputs": list(self.outputs),
            "d_in": self.d_in, "d_out": self.d_out, "k_star": self.k_star,
            "quantized": bool(self.quantized),
            "channels": [{"offset": float(o), "scale": float(s)}
                         for o, s in zip(self.offset, self.scale)],
            "bias": [float(v) for v in self.bias], "atoms": atoms,
        }


def choose_channels(raw) -> tuple:
    """Pick (offset, scale) per channel from training data.

    Positive physical channels keep o = 0 and s = 1 so the formula reads in the
    user's units.  A channel that is zero or negative anywhere is shifted into
    the band [1, 2] over the training range (o = min - range, s = 1 / range),
    so unseen values down to one range below the minimum stay valid.
    """
    raw = np.asarray(raw, dtype=np.float64)
    lo, hi = raw.min(axis=0), raw.max(axis=0)
    offset = np.zeros(raw.shape[1])
    scale = np.ones(raw.shape[1])
    signed = lo <= 0
    span = np.where(hi - lo > 0, hi - lo, np.maximum(np.abs(lo), 1.0))
    offset[signed] = lo[signed] - span[signed]
    scale[signed] = 1.0 / span[signed]
    # float32-exact so host and board apply the very same map
    return (np.asarray(offset, np.float32).astype(np.float64),
            np.asarray(scale, np.float32).astype(np.float64))


def relative_deviation(got, host, axis=None) -> float:
    """max |got - host| / (|host| + rms(host)): how far a board's (or an exported
    model's) predictions are from the host's, in float32 terms. ``axis`` is
    where rms(host) is taken: None over everything, 0 per output, 1 per row."""
    host = np.asarray(host, dtype=float)
    rms = np.sqrt(np.mean(host ** 2, axis=axis, keepdims=True))
    return float(np.max(np.abs(np.asarray(got, dtype=float) - host) / (np.abs(host) + rms)))

"""The header-only C export: compiled with gcc (-std=c99 -Wall -Werror -pedantic)
into a small CSV filter, compared with Model.predict on every row."""
import pathlib
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from neurondyn import cli, export_c, ndm
from neurondyn.bench.export import random_model
from neurondyn.errors import UserError
from neurondyn.model import Model, choose_channels

ROWS = 200
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]

# Reads rows of d_in comma-separated floats on stdin; prints d_out outputs or
# "error N" (N = ndyn_predict's return code) per row.
MAIN_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include "model.h"

int other_unit(void);

int main(void)
{
    static char line[1 << 16];
    float in[NDYN_D_IN];
    float out[NDYN_D_OUT];
    while (fgets(line, sizeof line, stdin)) {
        char *p = line;
        int j, i, rc;
        for (j = 0; j < NDYN_D_IN; j++) {
            char *end;
            in[j] = strtof(p, &end);
            if (end == p) {
                return 2;
            }
            p = (*end == ',') ? end + 1 : end;
        }
        rc = ndyn_predict(in, out);
        if (rc != 0) {
            printf("error %d\n", rc);
            continue;
        }
        for (i = 0; i < NDYN_D_OUT; i++) {
            printf(i ? ",%.9g" : "%.9g", (double)out[i]);
        }
        printf("\n");
    }
    return other_unit() == NDYN_D_IN ? 0 : 3;
}
"""

# A second translation unit that includes the header and never calls it:
# must compile warning-free (everything in the header is static).
OTHER_C = r"""
#include "model.h"
int other_unit(void);
int other_unit(void) { return NDYN_D_IN; }
"""


def _compile(tmp_path, model):
    export_c.write(model, tmp_path / "model.h")
    (tmp_path / "main.c").write_text(MAIN_C)
    (tmp_path / "other.c").write_text(OTHER_C)
    exe = tmp_path / "predict"
    proc = subprocess.run(["gcc"] + CFLAGS + ["main.c", "other.c", "-o", str(exe)],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return exe


def _run(exe, raw):
    text = "\n".join(",".join("%.9g" % v for v in row) for row in np.asarray(raw, np.float32))
    proc = subprocess.run([str(exe)], input=text + "\n", capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def _case(d_in, d_out, k, seed, signed=False):
    rng = np.random.default_rng(seed)
    if signed:
        raw = rng.uniform(-3, 3, size=(ROWS, d_in))
        o, s = choose_channels(raw)
        model = random_model(d_in, d_out, k, rng, offset=o, scale=s)
    else:
        raw = rng.uniform(1, 5, size=(ROWS, d_in))
        model = random_model(d_in, d_out, k, rng)
    return ndm.loads(ndm.dumps(model)), raw.astype(np.float32).astype(np.float64)


CASES = {
    "3->1 K=2": (3, 1, 2, 11, False),
    "10->4 K=4 signed": (10, 4, 4, 12, True),
    "30->12 K=6": (30, 12, 6, 13, False),
    "5->2 K=0": (5, 2, 0, 14, False),
}


def test_gcc_is_there():
    assert shutil.which("gcc"), "the C export tests need gcc (apt-get install gcc)"


@pytest.mark.parametrize("name", list(CASES))
def test_compiled_header_matches_predict_on_every_row(tmp_path, name):
    model, raw = _case(*CASES[name])
    lines = _run(_compile(tmp_path, model), raw)
    got = np.array([[float(v) for v in line.split(",")] for line in lines])
    host = model.predict(raw)
    assert got.shape == host.shape
    rms = np.sqrt(np.mean(host ** 2, axis=0))
    err = np.abs(got - host)
    assert np.all(err <= 1e-5 * (np.abs(host) + rms)), float(np.max(err / (np.abs(host) + rms)))


def test_invalid_rows_return_the_first_bad_channel(tmp_path):
    model, raw = _case(*CASES["10->4 K=4 signed"])
    rows = raw[:6].copy()
    rows[1, 3] = model.offset[3] - 1.0 / model.scale[3]   # maps to x = -1
    rows[2, 0] = model.offset[0]                           # maps to x = 0
    rows[3, 7] = np.nan
    rows[4, 2] = -np.inf                                    # maps to -inf (s > 0)
    rows[4, 5] = np.nan                                     # a later bad channel too
    lines = _run(_compile(tmp_path, model), rows)
    assert lines[1] == "error 4"
    assert lines[2] == "error 1"
    assert lines[3] == "error 8"
    assert lines[4] == "error 3"
    assert not lines[0].startswith("error") and not lines[5].startswith("error")
    assert list(model.valid_rows(rows)) == [True, False, False, False, False, True]


def test_a_wrong_header_would_be_caught(tmp_path):
    """The comparison has teeth: flipping one exponent changes the outputs."""
    model, raw = _case(*CASES["3->1 K=2"])
    w = model.exponents.copy()
    j = int(np.flatnonzero(w[1])[0])
    w[1, j] = -w[1, j]
    other = Model(model.offset, model.scale, w, model.log_gain, model.readout, model.bias)
    got = np.array([float(v) for v in _run(_compile(tmp_path, other), raw)])
    host = model.predict(raw)[:, 0]
    assert np.max(np.abs(got - host)) > 1e-3 * np.sqrt(np.mean(host ** 2))


def test_hostile_names_stay_inside_comments(tmp_path):
    model, raw = _case(*CASES["3->1 K=2"])
    model.inputs = ["a*/ b", "??/", "c\\"]
    model.outputs = ["*/ int x = 1; /*"]
    lines = _run(_compile(tmp_path, model), raw[:3])
    assert len(lines) == 3


def test_unquantized_model_is_refused():
    model, _ = _case(*CASES["3->1 K=2"])
    loose = Model(model.offset, model.scale, model.exponents * 0.5, model.log_gain,
                  model.readout, model.bias, quantized=False)
    with pytest.raises(UserError, match="quantized"):
        export_c.to_bytes(loose)


def test_cli_export_c_and_tflite(tmp_path, capsys):
    model, raw = _case(*CASES["3->1 K=2"])
    ndm.write(tmp_path / "m.ndm", model)
    assert cli.main(["export", str(tmp_path / "m.ndm"), "--format", "c",
                     "-o", str(tmp_path / "model.h")]) == 0
    assert (tmp_path / "model.h").read_bytes() == export_c.to_bytes(model)
    assert cli.main(["export", str(tmp_path / "m.ndm"), "--format", "tflite",
                     "-o", str(tmp_path / "m.tflite")]) == 0
    assert (tmp_path / "m.tflite").read_bytes()[4:8] == b"TFL3"
    # a bad model file: one line, exit 2, no output file
    (tmp_path / "bad.ndm").write_bytes(b"NDYN garbage")
    capsys.readouterr()
    assert cli.main(["export", str(tmp_path / "bad.ndm"), "--format", "c",
                     "-o", str(tmp_path / "bad.h")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "bad.h").exists()


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 6), st.integers(1, 3), st.integers(0, 4), st.integers(0, 2 ** 31))
def test_any_small_model_compiles_and_matches(d_in, d_out, k, seed):
    """Edge shapes (d_in = 1, d_out = 1, K = 0..4): warning-free and equal to predict."""
    rng = np.random.default_rng(seed)
    model = ndm.loads(ndm.dumps(random_model(d_in, d_out, k, rng)))
    raw = rng.uniform(1, 5, size=(20, d_in)).astype(np.float32).astype(np.float64)
    with tempfile.TemporaryDirectory() as tmp:
        lines = _run(_compile(pathlib.Path(tmp), model), raw)
    got = np.array([[float(v) for v in line.split(",")] for line in lines])
    host = model.predict(raw)
    rms = np.sqrt(np.mean(host ** 2, axis=0))
    assert np.all(np.abs(got - host) <= 1e-5 * (np.abs(host) + rms))

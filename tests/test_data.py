"""CSV reading with one-line errors, exact CSV writing, model reading, bundled datasets."""
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from neurondyn import datasets, ndm
from neurondyn.data import (MIN_TRAIN_ROWS, check_writable, format_csv, load_csv, parse_names,
                            read_model, read_table, select, write_csv, write_output)
from neurondyn.errors import UserError
from neurondyn.model import Model


def write(tmp_path, text, name="d.csv", mode="w"):
    p = tmp_path / name
    if mode == "wb":
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


def error_of(fn, *args, **kw):
    with pytest.raises(UserError) as info:
        fn(*args, **kw)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_reads_requested_columns_in_requested_order(tmp_path):
    p = write(tmp_path, "when,a,b,c\nmonday,1,2,3\ntuesday,4,5,6\n")
    header, values = load_csv(p, ["c", "a"])
    assert header == ["c", "a"]
    assert values.dtype == np.float64
    assert values.tolist() == [[3.0, 1.0], [6.0, 4.0]]   # text column 'when' never parsed


def test_all_columns_blank_lines_bom_quotes_and_spaces(tmp_path):
    p = write(tmp_path, "\ufeffa, b\n\n1, \"2.5\"\n\n 3e2 ,-4\n\n".encode("utf-8"), mode="wb")
    table = read_table(p)
    assert table.header == ["a", "b"]
    assert table.values.tolist() == [[1.0, 2.5], [300.0, -4.0]]
    assert table.lines == [3, 5]


def test_select_splits_inputs_and_outputs(tmp_path):
    p = write(tmp_path, "x,y,z\n" + "".join("%d,%d,%d\n" % (i, 2 * i, 3 * i) for i in range(1, 13)))
    X, Y = select(p, ["z", "x"], ["y"], min_rows=MIN_TRAIN_ROWS)
    assert X.shape == (12, 2) and Y.shape == (12, 1)
    assert np.array_equal(Y[:, 0], 2 * X[:, 1]) and np.array_equal(X[:, 0], 3 * X[:, 1])
    assert "both as an input and as an output" in error_of(select, p, ["x", "y"], ["y"])


@pytest.mark.parametrize("text, columns, expected", [
    ("", None, "file is empty"),
    ("\n\n", None, "file is empty"),
    ("a,b\n", None, "header but no data rows"),
    ("a,b\n1,2\n", ["a", "q"], "column 'q' not found"),
    ("a,b\n1,2\n3,x7\n", None, "line 3 (row 2), column 'b': 'x7' is not a number"),
    ("a,b\n1,2\n\n3,nan\n", None, "line 4 (row 2), column 'b': 'nan' is not a finite number"),
    ("a,b\n-inf,2\n", None, "line 2 (row 1), column 'a': '-inf' is not a finite number"),
    ("a,b\n1,\n", None, "line 2 (row 1), column 'b': empty cell"),
    ("a,b\n1,2,3\n", None, "line 2 (row 1): 3 fields, but the header has 2"),
    ("a,a\n1,2\n", None, "column 'a' appears twice"),
    ("a,,b\n1,2,3\n", None, "header column 2 has no name"),
])
def test_every_problem_is_one_line_naming_where(tmp_path, text, columns, expected):
    p = write(tmp_path, text)
    msg = error_of(load_csv, p, columns)
    assert expected in msg
    assert str(p) in msg


def test_too_few_rows(tmp_path):
    p = write(tmp_path, "a,b\n" + "1,2\n" * 5)
    assert "only 5 data rows; at least 10" in error_of(load_csv, p, None, min_rows=10)
    assert load_csv(p, None, min_rows=5)[1].shape == (5, 2)


def test_board_data_keeps_missing_cells_and_takes_the_first_columns(tmp_path):
    # what `ndyn stream` reads: the board answers a row with an empty or non-finite cell
    # with "bad input", so the reader keeps it; other columns may hold anything
    p = write(tmp_path, "a,b,note\n1,,x\nnan,inf,y\n3,4,z\n")
    t = read_table(p, None, first=2, missing_ok=True)
    assert t.header == ["a", "b"] and t.lines == [2, 3, 4]
    assert np.isnan(t.values[0, 1]) and np.isnan(t.values[1, 0]) and np.isinf(t.values[1, 1])
    assert t.values[2].tolist() == [3.0, 4.0]
    assert "the model takes 3 inputs but the file has 2 columns" in error_of(
        read_table, write(tmp_path, "a,b\n1,2\n"), None, first=3)
    assert "'q' is not a number" in error_of(
        read_table, write(tmp_path, "a,b\nq,2\n"), None, first=2, missing_ok=True)


def test_missing_file_directory_and_binary(tmp_path):
    assert "no such file" in error_of(load_csv, tmp_path / "nope.csv")
    assert "is a directory" in error_of(load_csv, tmp_path)
    p = write(tmp_path, b"a,b\n\xff\xfe\x00,1\n", mode="wb")
    assert "not a UTF-8 text file" in error_of(load_csv, p)


def test_parse_names():
    assert parse_names("q1, q2 ,r") == ["q1", "q2", "r"]
    assert "more than once" in error_of(parse_names, "a,b,a")
    assert "comma-separated" in error_of(parse_names, "a,,b")
    assert "comma-separated" in error_of(parse_names, "")


finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(finite, min_size=3, max_size=3), min_size=1, max_size=20))
def test_write_then_read_is_exact(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("rt") / "out.csv"
    write_csv(path, ["u", "v", "w"], rows)
    header, values = load_csv(path)
    assert header == ["u", "v", "w"]
    assert np.array_equal(values, np.array(rows))


def test_write_csv_to_stdout(capsys):
    write_csv(None, ["y"], [[0.1], [1e300]])
    assert capsys.readouterr().out == "y\n0.1\n1e+300\n"
    assert format_csv(["a", "b"], np.array([[1.0, 2.0]])) == "a,b\n1.0,2.0\n"


def test_outputs_are_checked_and_atomic(tmp_path):
    assert "does not exist" in error_of(check_writable, tmp_path / "no" / "out.csv")
    blocker = write(tmp_path, "x", name="file")
    assert "does not exist" in error_of(write_output, blocker / "out.csv", b"data")
    assert "is a directory" in error_of(write_output, tmp_path, b"data")
    write_output(tmp_path / "ok.bin", b"data")
    assert (tmp_path / "ok.bin").read_bytes() == b"data"
    assert sorted(os.listdir(tmp_path)) == ["file", "ok.bin"]   # no temporary left behind


def test_read_model_errors_are_user_errors(tmp_path):
    m = Model([0.0], [1.0], [[1]], [0.0], [[2.0]], [0.0], ["x"], ["y"])
    good = tmp_path / "m.ndm"
    ndm.write(good, m)
    assert read_model(good).atom_set() == {(1,)}
    blob = good.read_bytes()
    bad = write(tmp_path, blob[:-7], name="trunc.ndm", mode="wb")
    assert "trunc.ndm" in error_of(read_model, bad)
    flipped = bytearray(blob)
    flipped[12] ^= 0x40
    assert "CRC" in error_of(read_model, write(tmp_path, bytes(flipped), "flip.ndm", "wb"))
    assert "no such file" in error_of(read_model, tmp_path / "none.ndm")
    assert "bad magic" in error_of(read_model, write(tmp_path, "a,b\n1,2\n" * 5, "text.ndm"))


# -- bundled datasets ---------------------------------------------------------
@pytest.mark.parametrize("name", sorted(datasets.DATASETS))
def test_bundled_dataset_is_regenerated_byte_for_byte(name):
    ds = datasets.DATASETS[name]
    assert ds.path.read_text(encoding="utf-8") == datasets.render(name)


@pytest.mark.parametrize("name", sorted(datasets.DATASETS))
def test_bundled_dataset_obeys_its_law(name):
    """The outputs are the stated monomials of the stored inputs, up to the stated noise."""
    ds = datasets.DATASETS[name]
    X, Y = select(ds.path, ds.inputs, ds.outputs)
    assert X.shape == (ds.rows, len(ds.inputs)) and Y.shape == (ds.rows, len(ds.outputs))
    assert np.all(X > 0)                                   # identity channel map suffices
    W = np.array(sorted(ds.truth_set()), dtype=float)
    assert all(2 <= np.count_nonzero(w) <= 4 for w in W) or name == "coulomb"
    assert np.all(np.abs(W) <= 2)
    phi = np.exp(np.log(X) @ W.T)
    basis = np.column_stack([phi, np.ones(ds.rows)])
    coef, *_ = np.linalg.lstsq(basis, Y, rcond=None)
    resid = Y - basis @ coef
    rms = np.sqrt(np.mean(Y ** 2, axis=0))
    rel = np.sqrt(np.mean(resid ** 2, axis=0)) / rms
    assert np.all(rel < 3 * ds.noise)                     # noise is ds.noise * RMS(y)
    assert np.all(rel > 0.3 * ds.noise)                   # and the noise is really there
    if name == "robot_dog":
        assert len(ds.inputs) == 30 and len(ds.outputs) == 12 and len(ds.truth) == 6
        # every atom drives some actuator: dropping any one hurts the fit
        for k in range(len(W)):
            keep = [i for i in range(len(W)) if i != k]
            b2 = np.column_stack([phi[:, keep], np.ones(ds.rows)])
            c2, *_ = np.linalg.lstsq(b2, Y, rcond=None)
            assert np.sqrt(np.mean((Y - b2 @ c2) ** 2)) > 10 * ds.noise * rms.mean()

"""Every board-facing command's bad input and bad device: exit 2 or 3, one line, nothing half-written.

``ndyn stream / flash / retrain / pull`` (those that exist) against:

* a port that does not exist;
* a port that is not a board: a pty with nothing behind it, and a pty with a
  plain MicroPython REPL behind it (mpy-wasm without our firmware);
* a peer speaking another protocol version (a tiny fake on a pty: this is a
  unit test of the host's refusal, so a fake is the right tool);
* the wrong board (``flash --board esp32`` at a board that is mpy-wasm);
* a board without a model;
* a CSV whose columns do not match the board's model.

Each: exit 3 (device/link) or 2 (the user's input), exactly one stderr line
(``ndyn: error: ...``; ``flash`` may print progress lines before it), no
traceback, and no output file left behind.
"""
import os
import threading
import tty

import numpy as np
import pytest

from neurondyn import boards, cli, deploy, ndm, protocol as P
from neurondyn.model import Model
from neurondyn.vboard import WasmBoard

COMMANDS = {"stream", "flash", "retrain", "pull"}
FAST = ["--timeout", "0.2"]          # silent ports fail after 8 x 0.2 s instead of 8 s


def tiny_model():
    w = np.array([[1.0, -1.0, 0.0], [0.0, 2.0, 1.0]])
    return Model(np.zeros(3), np.ones(3), w, [0.2, -0.1], [[1.0], [0.5]], [0.3],
                 ["a", "b", "c"], ["y"]).rounded_to_float32()


MODEL = tiny_model()
BLOB = ndm.dumps(MODEL)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    (d / "m.ndm").write_bytes(BLOB)
    rows = np.random.default_rng(0).uniform(0.5, 2, (6, 3))
    with open(d / "good.csv", "w") as fh:
        fh.write("a,b,c,y\n" + "".join("%r,%r,%r,1.0\n" % tuple(map(float, r)) for r in rows))
    with open(d / "narrow.csv", "w") as fh:                  # 2 columns for a 3-input model
        fh.write("a,b\n" + "".join("%r,%r\n" % tuple(map(float, r[:2])) for r in rows))
    return d


def run_cli(capsys, argv):
    code = cli.main(argv)
    out = capsys.readouterr()
    lines = [l for l in out.err.splitlines() if l.strip()]
    return code, lines, out.out


def assert_one_error(code, lines, expected_code, *needles, progress_ok=False):
    assert code == expected_code, lines
    assert lines and "Traceback" not in "\n".join(lines)
    errors = [l for l in lines if l.startswith("ndyn: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    if not progress_ok:
        assert len(lines) == 1, lines
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])


def argv_for(cmd, port, files, out):
    """The command line of ``cmd`` against ``port``, writing ``out`` where it writes."""
    if cmd == "stream":
        return ["stream", "--port", port, str(files / "good.csv"), "-o", str(out)] + FAST
    if cmd == "pull":
        return ["pull", "--port", port, "-o", str(out)] + FAST
    if cmd == "retrain":
        return ["retrain", str(files / "good.csv"), "--port", port, "--inputs", "a,b,c",
                "--outputs", "y"] + FAST
    return ["flash", str(files / "m.ndm"), "--board", "mpy-wasm", "--port", port]


@pytest.fixture
def silent_pty():
    master, slave = os.openpty()
    tty.setraw(slave)
    yield os.ttyname(slave)
    os.close(slave)
    os.close(master)


# -- ports that are not our board -------------------------------------------------
@pytest.mark.parametrize("cmd", sorted(COMMANDS))
def test_port_that_does_not_exist(cmd, files, tmp_path, capsys):
    out = tmp_path / "out"
    code, lines, _ = run_cli(capsys, argv_for(cmd, "/dev/ttyNDYN-nothing-here", files, out))
    assert_one_error(code, lines, 3, "/dev/ttyNDYN-nothing-here", progress_ok=cmd == "flash")
    assert not out.exists()


@pytest.mark.parametrize("cmd", sorted(COMMANDS - {"flash"}))
def test_port_with_nothing_behind_it(cmd, files, tmp_path, capsys, silent_pty):
    out = tmp_path / "out"
    code, lines, _ = run_cli(capsys, argv_for(cmd, silent_pty, files, out))
    assert_one_error(code, lines, 3, "no ndyn firmware answers")
    assert not out.exists()


@pytest.fixture(scope="module")
def plain_repl():
    """mpy-wasm with an empty flash: MicroPython's own REPL, no ndyn firmware."""
    with WasmBoard(files={}) as board:
        yield board


@pytest.mark.parametrize("cmd", sorted(COMMANDS - {"flash"}))
def test_port_with_a_plain_micropython_repl(cmd, files, tmp_path, capsys, plain_repl):
    out = tmp_path / "out"
    code, lines, _ = run_cli(capsys, argv_for(cmd, plain_repl.port, files, out))
    assert_one_error(code, lines, 3, "no ndyn firmware answers")
    assert not out.exists()
    assert plain_repl.running                     # our frames did not kill it either


class FakePeer:
    """Answers every HELLO on a pty as a board of protocol version ``proto`` would."""

    def __init__(self, proto):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self.proto = proto
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        import select
        dec = P.FrameDecoder()
        while not self.stop:
            if not select.select([self.master], [], [], 0.05)[0]:
                continue
            try:
                data = os.read(self.master, 512)
            except OSError:
                return
            for typ, seq, _ in dec.feed(data):
                if typ == P.HELLO:
                    body = bytes([self.proto, 1, 3, 1, 2, 0]) + bytes(8) + \
                        (53).to_bytes(2, "little") + (244).to_bytes(2, "little") + \
                        (200).to_bytes(2, "little") + b"\x0bmicrobit-v1\x09ndyn-fw 2"
                    os.write(self.master, P.build_frame(typ | P.REPLY, seq, body))
                else:
                    os.write(self.master, P.build_frame(P.ERROR, seq, bytes([P.E_UNKNOWN, typ])))

    def close(self):
        self.stop = True
        self.thread.join(2)
        os.close(self.slave)
        os.close(self.master)


@pytest.mark.parametrize("cmd", sorted(COMMANDS - {"flash"}))
def test_board_speaking_another_protocol_version_is_refused(cmd, files, tmp_path, capsys):
    peer = FakePeer(proto=2)
    try:
        out = tmp_path / "out"
        code, lines, _ = run_cli(capsys, argv_for(cmd, peer.port, files, out))
    finally:
        peer.close()
    assert_one_error(code, lines, 3, "speaks protocol 2", "ndyn flash")
    assert not out.exists()


# -- our firmware, but not what the command needs -----------------------------------
@pytest.fixture(scope="module")
def empty_board():
    """mpy-wasm running our firmware without a model."""
    with WasmBoard(files=deploy.image_files(boards.get_profile("mpy-wasm"))) as board:
        assert deploy.wait_for_hello(board.port, 30) is not None, board.log()
        yield board


@pytest.fixture(scope="module")
def model_board():
    with WasmBoard(files=deploy.image_files(boards.get_profile("mpy-wasm"), BLOB)) as board:
        assert deploy.wait_for_hello(board.port, 30) is not None, board.log()
        yield board


@pytest.mark.parametrize("cmd", sorted(COMMANDS & {"stream", "pull", "retrain"}))
def test_board_without_a_model(cmd, files, tmp_path, capsys, empty_board):
    out = tmp_path / "out"
    code, lines, _ = run_cli(capsys, argv_for(cmd, empty_board.port, files, out))
    assert_one_error(code, lines, 3, "no model")
    assert not out.exists()


def test_flash_for_the_wrong_board_is_refused(files, capsys, model_board):
    code, lines, _ = run_cli(capsys, ["flash", str(files / "m.ndm"), "--board", "esp32",
                                      "--port", model_board.port])
    assert_one_error(code, lines, 3, "mpy-wasm", "esp32", progress_ok=True)
    from neurondyn.link import Board
    with Board.open(model_board.port) as b:      # untouched: still our model
        assert b.info["model_hash"] == ndm.model_hash(BLOB)


def test_stream_csv_that_does_not_match_the_model(files, tmp_path, capsys, model_board):
    out = tmp_path / "out.csv"
    base = ["stream", "--port", model_board.port, "-o", str(out)]
    code, lines, _ = run_cli(capsys, base + [str(files / "narrow.csv")])
    assert_one_error(code, lines, 2, "takes 3 inputs", "2")
    code, lines, _ = run_cli(capsys, base + [str(files / "good.csv"), "--inputs", "a,b,zz"])
    assert_one_error(code, lines, 2, "'zz' not found")
    code, lines, _ = run_cli(capsys, base + [str(files / "good.csv"), "--inputs", "a,b"])
    assert_one_error(code, lines, 2, "3 inputs")
    other = tmp_path / "other.ndm"
    ndm.write(other, Model(np.zeros(3), np.ones(3), [[1.0, 0, 0]], [0.0], [[1.0]], [0.0]))
    code, lines, _ = run_cli(capsys, base + [str(files / "good.csv"), "--model", str(other)])
    assert_one_error(code, lines, 2, "another model")
    assert not out.exists()
    # and the board is fine afterwards
    code, lines, _ = run_cli(capsys, base + [str(files / "good.csv")])
    assert code == 0 and out.exists()


def test_retrain_columns_that_do_not_match_the_model(files, capsys, model_board):
    base = ["retrain", str(files / "good.csv"), "--port", model_board.port]
    code, lines, _ = run_cli(capsys, base + ["--inputs", "a,b", "--outputs", "y"])
    assert code == 2 and len(lines) == 1 and lines[0].startswith("ndyn: error: "), lines
    code, lines, _ = run_cli(capsys, base + ["--inputs", "a,b,c", "--outputs", "nope"])
    assert code == 2 and len(lines) == 1 and "nope" in lines[0], lines


def test_flash_to_a_port_that_is_not_a_board_fails_in_bounded_time(files, tmp_path, silent_pty,
                                                                   plain_repl):
    """``ndyn flash`` falls back to the raw REPL when our firmware does not answer; on a
    port with nothing (or no raw REPL) behind it that must end with exit 3, not wait
    forever (mpremote reads a pty without a timeout unless the caller sets one)."""
    import subprocess
    import sys
    for port in (silent_pty, plain_repl.port):
        try:
            done = subprocess.run([sys.executable, "-m", "neurondyn", "flash",
                                   str(files / "m.ndm"), "--board", "mpy-wasm", "--port", port],
                                  capture_output=True, text=True, timeout=35)
        except subprocess.TimeoutExpired:
            pytest.fail("ndyn flash --port %s (%s) still waits after 35 s"
                        % (port, "nothing behind it" if port == silent_pty else "plain REPL"))
        lines = [l for l in done.stderr.splitlines() if l.strip()]
        assert_one_error(done.returncode, lines, 3, progress_ok=True)


def test_a_healthy_board_is_found_whatever_seq_the_last_session_ended_on(model_board, tmp_path,
                                                                         capsys):
    """Every new session's HELLO is seq 1 (link.Board.open), and the board answers a
    frame whose seq equals the last one it ran from its duplicate cache -- even across
    sessions. After a session that ended on a seq-1 STATS, ``ndyn pull`` gets that
    STATS reply for its HELLO and reports "no ndyn firmware" on a healthy board.
    Fix: the firmware never answers HELLO from the cache (HELLO is idempotent), or
    Board.open starts at a random seq and retries once."""
    from neurondyn.link import Board
    with Board.open(model_board.port) as b:        # HELLO seq 1
        b.seq = 10
        b.stats()
        b.seq = 0
        b.stats()                                  # the board's last frame: STATS, seq 1
    out = tmp_path / "pulled.ndm"
    code, lines, _ = run_cli(capsys, ["pull", "--port", model_board.port, "-o", str(out)] + FAST)
    assert code == 0, lines
    assert ndm.model_hash(out.read_bytes()) == ndm.model_hash(BLOB)

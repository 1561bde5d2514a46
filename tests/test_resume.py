"""Resume: ``ndyn stream`` over a bad cable, across a board reset, a vanished port, a dead board.

All on the mpy-wasm virtual board (current MicroPython running our firmware
behind a real pty; the micro:bit's serving path is exercised by
tests/test_reliability_board.py):

* through ``ndyn emulate --line-faults drop=0.01,corrupt=0.01,dup=0.005,stall=50,seed=1``
  every row's answer equals the host's ``Model.predict``, none lost, none
  duplicated, in input order;
* the board loses power mid-stream and boots again (same flash): the stream
  re-handshakes and resumes, float32 and int16 (whose scales the reset
  wiped); a board that comes back with another model stops the stream;
* the serial port vanishes and comes back (USB re-enumeration: a symlink
  like /dev/serial/by-id/... pointing at a new pty): the port is reopened;
* the board dies for good: exit 3, one stderr line, and the output file
  holds every input row: the answered ones with their predictions, the
  others marked ``not answered``.

``Cable`` is the test's USB cable: a relay whose board end can be re-plugged
and whose host end can be pulled out, with a byte counter to trigger a fault
at a reproducible point of the stream.
"""
import json
import os
import select
import signal
import subprocess
import sys
import threading
import tty

import numpy as np
import pytest

from neurondyn import boards, cli, deploy, ndm
from neurondyn.model import Model
from neurondyn.resume import ResumingStream, StreamInterrupted
from neurondyn.vboard import WasmBoard

PROFILE = boards.get_profile("mpy-wasm")


def small_model(seed=0, d_in=3, d_out=2):
    rng = np.random.default_rng(seed)
    w = np.array([[1, -1, 0], [0, 2, 1], [-2, 0, 1]], float)[:, :d_in]
    return Model(np.zeros(d_in), np.ones(d_in), w, rng.uniform(-1, 1, 3),
                 rng.uniform(-2, 2, (3, d_out)), rng.uniform(-1, 1, d_out),
                 ["a", "b", "c"][:d_in], ["y%d" % i for i in range(d_out)]).rounded_to_float32()


MODEL = small_model()
BLOB = ndm.dumps(MODEL)


def rows_for(n, seed):
    return np.random.default_rng(seed).uniform(0.5, 2.0, size=(n, 3))


def close_to_host(pred, rows, model=MODEL):
    """Parity of the board with the host, float32 precision."""
    host = model.predict(rows)
    rms = np.sqrt(np.mean(host ** 2))
    return np.all(np.abs(pred - host) <= 1e-4 * (np.abs(host) + rms))


def write_csv(path, rows):
    with open(path, "w") as fh:
        fh.write("a,b,c\n")
        for r in rows:
            fh.write(",".join(repr(float(v)) for v in r) + "\n")


def read_out(path):
    lines = open(path).read().strip().splitlines()
    assert lines[0] in ("y0,y1,error", "y1,y2,error")     # --model names, or generic
    return [line.split(",") for line in lines[1:]]


def boot(flash_dir, blob=BLOB):
    """A wasm board on ``flash_dir``; a blob (re)writes firmware + model first."""
    files = deploy.image_files(PROFILE, blob) if blob is not None else None
    board = WasmBoard(files=files, flash_dir=flash_dir)
    assert deploy.wait_for_hello(board.port, 30) is not None, board.log()
    return board


class Cable:
    """A serial cable between the host's port (``.port``, a stable symlink) and a board's pty.

    ``plug_board(port)`` / ``unplug_board()``: the board end (a reset board
    comes back on a new pty). ``pull_host()`` / ``plug_host()``: the host end
    vanishes (reads fail) and comes back as a new pty behind the same
    symlink, as /dev/serial/by-id/... does when USB re-enumerates.
    ``when_host_got(n, fn)`` calls fn (in a thread) once n bytes reached the host.
    """

    def __init__(self, folder, board_port):
        self.link = os.path.join(str(folder), "ttyNDYN0")
        self.lock = threading.Lock()
        self.board = self.master = self.slave = None
        self.to_host = 0
        self.trigger = None
        self.stopped = False
        self.plug_board(board_port)
        self.plug_host()
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    @property
    def port(self):
        return self.link

    def plug_board(self, port):
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        with self.lock:
            self.board = fd

    def unplug_board(self):
        with self.lock:
            fd, self.board = self.board, None
        if fd is not None:
            os.close(fd)

    def plug_host(self):
        master, slave = os.openpty()
        tty.setraw(slave)
        tmp = self.link + ".new"
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.link)
        with self.lock:
            self.master, self.slave = master, slave

    def pull_host(self):
        with self.lock:
            fds, self.master, self.slave = (self.master, self.slave), None, None
        os.unlink(self.link)
        for fd in fds:
            os.close(fd)

    def when_host_got(self, n, fn):
        self.trigger = (n, fn)

    def _pump(self):
        while not self.stopped:
            with self.lock:
                fds = [fd for fd in (self.board, self.master) if fd is not None]
                try:
                    ready = select.select(fds, [], [], 0.02)[0] if fds else []
                except (OSError, ValueError):
                    ready = []
                for fd in ready:
                    try:
                        data = os.read(fd, 4096)
                    except OSError:
                        data = b""
                    try:
                        if fd == self.board:
                            if not data:             # the board is off: its pty is gone
                                os.close(self.board)
                                self.board = None
                            elif self.master is not None:
                                os.write(self.master, data)
                                self.to_host += len(data)
                        elif data and self.board is not None:
                            os.write(self.board, data)
                    except OSError:                  # an end went away meanwhile: bytes lost
                        pass
            if not fds:
                threading.Event().wait(0.02)
            if self.trigger and self.to_host >= self.trigger[0]:
                fn, self.trigger = self.trigger[1], None
                threading.Thread(target=fn, daemon=True).start()

    def stop(self):
        self.stopped = True
        self.thread.join(2)
        for fd in (self.board, self.master, self.slave):
            if fd is not None:
                os.close(fd)
        if os.path.lexists(self.link):
            os.unlink(self.link)


@pytest.fixture
def rig(tmp_path):
    """(board holder, cable): a wasm board with MODEL on its own flash folder."""
    flash = tmp_path / "flash"
    holder = {"board": boot(flash), "flash": flash}
    cable = Cable(tmp_path, holder["board"].port)
    yield holder, cable
    cable.stop()
    holder["board"].stop()


def reset(holder, cable, blob=None):
    """Power cut, then the board boots again from its flash (``blob``: after a re-flash)."""
    holder["board"].power_cut()
    cable.unplug_board()
    holder["board"] = boot(holder["flash"], blob)
    cable.plug_board(holder["board"].port)


# -- the bad cable: ndyn emulate --line-faults ----------------------------------
def test_stream_over_a_faulty_line_delivers_every_row_exactly_once(tmp_path, capsys):
    mpath = tmp_path / "m.ndm"
    mpath.write_bytes(BLOB)
    proc = subprocess.Popen([sys.executable, "-m", "neurondyn", "emulate", "--board", "mpy-wasm",
                             str(mpath), "--line-faults",
                             "drop=0.01,corrupt=0.01,dup=0.005,stall=50,seed=1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("port: "), proc.stderr.read()
        port = first.split()[1]
        rows = rows_for(200, 3)
        data, out = tmp_path / "d.csv", tmp_path / "out.csv"
        write_csv(data, rows)
        code = cli.main(["stream", "--port", port, str(data), "-o", str(out), "--json",
                         "--timeout", "0.15", "--model", str(mpath)])
        got = capsys.readouterr()
        assert code == 0, got.err
        summary = json.loads(got.out.strip().splitlines()[-1])
        assert summary["answered"] == 200 and summary["errors"] == 0
        assert summary["retransmits"] > 0              # the line really was bad
        cells = read_out(out)
        assert len(cells) == 200 and all(c[-1] == "" for c in cells)
        pred = np.array([[float(v) for v in c[:-1]] for c in cells])
        assert close_to_host(pred, rows)               # row i is the answer to row i
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert "line faults:" in err and "'dropped': 0," not in err.split("line faults:")[1]


# -- a board reset mid-stream -----------------------------------------------------
@pytest.mark.parametrize("int16", [False, True])
def test_board_reset_mid_stream_is_resumed_without_loss_or_duplicates(rig, int16):
    holder, cable = rig
    rows = rows_for(150, 5 + int16)
    state = {"rows": 0, "reset": False}

    def progress(k):
        state["rows"] += k
        if state["rows"] >= 60 and not state["reset"]:
            state["reset"] = True
            reset(holder, cable)                       # the next block meets a fresh board

    with ResumingStream(cable.port, timeout=0.2, int16=int16) as link:
        pred, status = link.run(rows, progress=progress)
        after = link.board.stats()
        assert link.resumes >= (1 if int16 else 0)
    assert state["reset"] and state["rows"] == 150 and not status.any()
    # the board that finished the stream saw only the rows after the reset (and
    # perhaps one block twice: resent after a handshake, idempotent, stored once)
    assert 0 < after["samples"] < 150
    if int16:
        from neurondyn import protocol as P
        scale = P.choose_int16_scale(rows)
        rows = P.dequantize_int16(P.quantize_int16(rows, *scale), *scale)
    assert close_to_host(pred, rows)


def test_board_back_with_another_model_stops_the_stream(rig, tmp_path, capsys):
    holder, cable = rig
    other = ndm.dumps(small_model(seed=9))
    rows = rows_for(120, 7)
    data, out = tmp_path / "d.csv", tmp_path / "out.csv"
    write_csv(data, rows)
    cable.when_host_got(400, lambda: reset(holder, cable, blob=other))
    code = cli.main(["stream", "--port", cable.port, str(data), "-o", str(out),
                     "--timeout", "0.2", "--give-up", "15"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and len(err) == 1 and "another model" in err[0], err
    cells = read_out(out)
    done = [c for c in cells if c[-1] == ""]
    assert len(cells) == 120 and 0 < len(done) < 120
    assert all(c[-1] == "not answered" for c in cells[len(done):])
    pred = np.array([[float(v) for v in c[:-1]] for c in done])
    assert close_to_host(pred, rows[:len(done)])       # nothing from the other model


# -- the port vanishes and comes back --------------------------------------------
def test_port_that_vanishes_and_returns_is_reopened(rig):
    holder, cable = rig
    rows = rows_for(100, 8)
    state = {"rows": 0}

    def progress(k):
        state["rows"] += k
        if state["rows"] >= 30 and "pulled" not in state:
            state["pulled"] = True
            cable.pull_host()
            threading.Timer(0.8, cable.plug_host).start()

    with ResumingStream(cable.port, timeout=0.2, give_up=10) as link:
        pred, status = link.run(rows, progress=progress)
        assert link.reopens >= 1 and link.resumes >= 1
    assert not status.any() and close_to_host(pred, rows)


# -- the board is gone for good --------------------------------------------------
def test_dead_board_exits_3_with_the_answered_rows_written(rig, tmp_path, capsys):
    holder, cable = rig
    rows = rows_for(150, 9)
    data, out = tmp_path / "d.csv", tmp_path / "out.csv"
    write_csv(data, rows)
    cable.when_host_got(500, holder["board"].power_cut)
    code = cli.main(["stream", "--port", cable.port, str(data), "-o", str(out),
                     "--timeout", "0.1", "--give-up", "2", "--json"])
    got = capsys.readouterr()
    err = got.err.strip().splitlines()
    assert code == 3, err
    summary = json.loads(got.out.strip().splitlines()[-1])       # --json: still a summary
    assert summary["samples"] == 150 and 0 < summary["answered"] < 150
    assert len(err) == 1 and err[0].startswith("ndyn: error: ") and "stopped answering" in err[0]
    assert "Traceback" not in err[0]
    cells = read_out(out)
    done = [c for c in cells if c[-1] == ""]
    assert len(cells) == 150 and 0 < len(done) < 150
    assert all(c[-1] == "not answered" and c[0] == "" for c in cells[len(done):])
    pred = np.array([[float(v) for v in c[:-1]] for c in done])
    assert close_to_host(pred, rows[:len(done)])
    assert "%d of 150 rows answered" % len(done) in err[0] and summary["answered"] == len(done)



# -- the line-following rules ----------------------------------------------------------
def test_frame_size_halves_on_trouble_and_grows_back_to_the_limits():
    from neurondyn.resume import Sizer
    size = Sizer(max_rows=27, row_in=13, row_out=9, max_payload=250)
    assert (size.rows, size.payload) == (27, 250)           # a clean line: the maximum
    for _ in range(10):
        size.done(resent=True)
    assert size.rows == 1 and size.payload == Sizer.MIN_PAYLOAD
    steps = 0
    while size.rows < 27:
        size.done(resent=False)
        steps += 1
    assert steps == 26 and size.payload == 250               # one row's worth per clean block
    size.done(resent=False)
    assert size.rows == 27


def test_reply_wait_follows_the_round_trip_within_bounds():
    from neurondyn.resume import ReplyClock
    clock = ReplyClock(1.0)
    assert clock.timeout == 1.0                               # nothing measured yet
    for _ in range(20):
        clock.sample(0.002)
    assert clock.timeout == ReplyClock.MIN_WAIT
    for _ in range(40):
        clock.sample(0.1)
    assert abs(clock.timeout - 0.42) < 0.01
    for _ in range(40):
        clock.sample(5.0)
    assert clock.timeout == 1.0                               # never beyond --timeout


def test_new_session_whose_first_seq_the_board_just_answered(rig, tmp_path, capsys,
                                                           monkeypatch):
    """The board's duplicate cache outlives a session: if the last frame it ran had
    the seq our first HELLO uses, it answers the HELLO with that cached reply.
    The stream must still start (a stale STATS reply is not a handshake). The
    stream's first seq is random (a collision is then 1 in 256); pinned here to
    the colliding one."""
    from neurondyn import resume
    from neurondyn.link import Board
    monkeypatch.setattr(resume.random, "randrange", lambda n: 0)     # first HELLO: seq 1
    holder, cable = rig
    with Board.open(cable.port) as b:     # its HELLO is seq 1
        b.seq = 10
        b.stats()
        b.seq = 0
        b.stats()                             # the board's last frame: seq 1, STATS
    rows = rows_for(20, 11)
    data, out = tmp_path / "d.csv", tmp_path / "out.csv"
    write_csv(data, rows)
    code = cli.main(["stream", "--port", cable.port, str(data), "-o", str(out), "--timeout", "0.3"])
    err = capsys.readouterr().err
    assert code == 0, err
    pred = np.array([[float(v) for v in c[:-1]] for c in read_out(out)])
    assert close_to_host(pred, rows)

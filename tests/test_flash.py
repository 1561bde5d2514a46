"""Deploy: micro:bit images, raw-REPL installs on a virtual micro:bit, `ndyn flash` errors."""
import json
import os
import select
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import micropython_microbit_fs as mfs
import numpy as np
import pytest
import serial

from neurondyn import boards, cli, deploy, ndm
from neurondyn.errors import DeviceError
from neurondyn.link import Board
from neurondyn.model import Model
from neurondyn.vboard import MicrobitVM, WasmBoard
from neurondyn.vboard.rawrepl import Reader


def make_model(d_in=3, d_out=2, k=2, quantized=True, seed=1):
    rng = np.random.default_rng(seed)
    w = rng.integers(-2, 3, size=(k, d_in)).astype(float)
    if not quantized:
        w = w + 0.25
    return Model(np.zeros(d_in), np.ones(d_in), w, rng.normal(size=k),
                 rng.normal(size=(k, d_out)), rng.normal(size=d_out), quantized=quantized)


@pytest.fixture
def toy_firmware(tmp_path, monkeypatch):
    """A small stand-in firmware folder, so these tests do not depend on the real
    firmware's size; the real firmware is flashed in the end-to-end tests below."""
    folder = tmp_path / "fw"
    folder.mkdir()
    (folder / "main.py").write_text("# toy firmware\nimport fwcfg\nimport fwtoy\nprint('TOY', fwcfg.BOARD)\n")
    (folder / "fwtoy.py").write_text('"""Docstring."""\nX = 1  # comment\ntry:\n    import fwdeep\nexcept ImportError:\n    pass\n')
    (folder / "fwdeep.py").write_text("Y = 2\n")
    (folder / "fwbench.py").write_text("Z = 3  # a host-side helper main.py never imports\n")
    monkeypatch.setattr(deploy, "firmware_dir", lambda: folder)
    return folder


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "m.ndm"
    ndm.write(path, make_model())
    return path


def test_hex_image_holds_firmware_config_and_model(tmp_path, toy_firmware, model_file):
    out = tmp_path / "board.hex"
    assert cli.main(["flash", str(model_file), "--board", "microbit-v1", "--hex", str(out)]) == 0
    files = {f.name: f.content for f in mfs.get_files(out.read_text())}
    profile = boards.get_profile("microbit-v1")
    expected = deploy.image_files(profile, model_file.read_bytes())
    assert files == expected
    cfg = {}
    exec(files["fwcfg.py"], cfg)                # compacted, names shortened: what it says counts
    assert cfg["do"]()[:3] == ("uart", "microbit-v1", 115200)
    # compacted (comments and docstrings gone, statements joined), then the
    # qstr warm-up block (if 0:) the V1 lexes first thing
    assert files["main.py"].startswith(b"import fwcfg\nimport fwtoy\nprint('TOY',fwcfg.BOARD)\nif 0:\n")
    assert files["fwtoy.py"].startswith(b"X=1\n")
    assert "fwdeep.py" in files                # reached through a guarded import
    assert "fwbench.py" not in files           # never imported by main.py: stays on the host
    # the model travels byte for byte in whatever file(s) the firmware's store uses
    assert any(model_file.read_bytes() in content for content in files.values())


def test_optional_modules_ship_only_where_they_fit(toy_firmware, tmp_path, model_file, capsys):
    (toy_firmware / "fwtoy.py").write_text(
        "try:\n    T = __import__('fwextra').go\nexcept ImportError:\n    T = None\n")
    (toy_firmware / "fwextra.py").write_text("import fwextra2\ndef go():\n    return fwextra2.X\n")
    # big enough for the micro:bit's 29 KB file system to refuse it (code, not
    # comments; string constants: compaction does not shorten them)
    (toy_firmware / "fwextra2.py").write_text("X = 1\n" + "".join(
        "Y%d = %r\n" % (i, "v%010d" % (i * 7919)) for i in range(3000)))
    required, optional = deploy.firmware_closure(toy_firmware)
    assert required == ["main.py", "fwtoy.py"] and optional == ["fwextra.py", "fwextra2.py"]
    esp = deploy.fitting_firmware(boards.get_profile("esp32"), model_file.read_bytes())
    assert {"fwextra.py", "fwextra2.py"} <= set(esp)
    said = []
    mb = deploy.fitting_firmware(boards.get_profile("microbit-v1"), model_file.read_bytes(), said.append)
    assert "fwextra.py" not in mb and "fwtoy.py" in mb
    assert "left out fwextra.py, fwextra2.py" in said[0]
    # `ndyn flash --hex` builds the image that fits, and says what it left out
    out = tmp_path / "img.hex"
    assert cli.main(["flash", str(model_file), "--board", "microbit-v1", "--hex", str(out)]) == 0
    names = {f.name for f in mfs.get_files(out.read_text())}
    assert "fwtoy.py" in names and "fwextra.py" not in names
    assert "left out fwextra.py" in capsys.readouterr().err


def test_files_named_under_if_0_ship_but_are_not_resident(toy_firmware, model_file):
    (toy_firmware / "main.py").write_text(
        "import fwtoy\nif 0:  # run from their files, dropped after\n    import fwsetup, fwtoy\n")
    (toy_firmware / "fwsetup.py").write_text("Z = 1\n" * 400)
    assert deploy.transient_modules(toy_firmware) == ["fwsetup.py"]    # fwtoy is resident
    profile = boards.get_profile("microbit-v1")
    files = deploy.firmware_files(profile)
    assert "fwsetup.py" in files
    resident = boards.estimate(profile, 100, files, lazy=["fwsetup.py"])
    everything = boards.estimate(profile, 100, files)
    assert resident.firmware_heap == everything.firmware_heap - boards.module_heap(files["fwsetup.py"])
    assert resident.fs_needed == everything.fs_needed


def test_microbit_drive_is_found_and_gets_the_whole_image(tmp_path, toy_firmware, model_file):
    drive = tmp_path / "MICROBIT"
    drive.mkdir()
    (drive / "DETAILS.TXT").write_text("DAPLink Firmware Version: 0249\n")
    other = tmp_path / "usbstick"
    other.mkdir()
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/sda1 %s vfat rw 0 0\n/dev/sdb1 %s vfat rw 0 0\nproc /proc proc rw 0 0\n"
                      % (drive, other))
    assert deploy.find_microbit_drives(str(mounts)) == [str(drive)]
    profile = boards.get_profile("microbit-v1")
    target = deploy.copy_to_microbit_drive(drive, profile, model_file.read_bytes(),
                                           deploy.firmware_files(profile))
    files = {f.name: f.content for f in mfs.get_files(target.read_text())}
    assert files == deploy.image_files(profile, model_file.read_bytes())


@pytest.mark.parametrize("argv, message", [
    (["--board", "arduino", "--hex", "X"], "unknown board 'arduino'; known boards: esp32"),
    (["--board", "microbit-v1"], "say where to flash"),
    (["--board", "esp32", "--hex", "OUT"], "--hex makes micro:bit images"),
])
def test_flash_usage_errors_exit_2_without_output(tmp_path, toy_firmware, model_file, capsys,
                                                  argv, message):
    argv = [a.replace("OUT", str(tmp_path / "o.hex")).replace("X", str(tmp_path / "x.hex"))
            for a in argv]
    assert cli.main(["flash", str(model_file)] + argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o.hex").exists() and not (tmp_path / "x.hex").exists()


def test_flash_refuses_unquantized_and_broken_models(tmp_path, toy_firmware, capsys):
    soft = tmp_path / "soft.ndm"
    ndm.write(soft, make_model(quantized=False))
    assert cli.main(["flash", str(soft), "--board", "microbit-v1", "--hex", str(tmp_path / "a.hex")]) == 2
    assert "not quantized" in capsys.readouterr().err
    bad = tmp_path / "bad.ndm"
    bad.write_bytes(b"NDYN" + b"\0" * 20)
    assert cli.main(["flash", str(bad), "--board", "microbit-v1", "--hex", str(tmp_path / "a.hex")]) == 2
    assert "not a valid model" in capsys.readouterr().err
    assert cli.main(["flash", str(tmp_path / "none.ndm"), "--board", "microbit-v1",
                     "--hex", str(tmp_path / "a.hex")]) == 2
    assert "cannot read model" in capsys.readouterr().err
    assert not (tmp_path / "a.hex").exists()


def test_flash_auto_without_a_board_is_a_device_error(toy_firmware, model_file, capsys):
    # no USB board is attached to this machine: exit 3 with the ids it looked for
    assert cli.main(["flash", str(model_file), "--board", "rp2040-pico", "--port", "auto"]) == 3
    err = capsys.readouterr().err
    assert "no rp2040-pico found" in err and "2E8A:0005" in err


def test_flash_to_a_missing_port_is_a_device_error(toy_firmware, model_file, capsys):
    assert cli.main(["flash", str(model_file), "--board", "microbit-v1",
                     "--port", "/dev/nonexistent-ndyn"]) == 3
    assert "/dev/nonexistent-ndyn" in capsys.readouterr().err


def test_raw_repl_install_on_plain_micropython_survives_reset():
    # Binary content with every awkward byte: NUL, Ctrl-C, Ctrl-D, quotes, backslash, CR/LF.
    data = bytes(range(256)) * 3 + b"'\"\\\r\n\x03\x04"
    main = ("f = open('data.bin', 'rb')\nd = f.read()\nf.close()\n"
            "a = 1\nb = 0\nfor x in d:\n    a = (a + x) % 65521\n    b = (b + a) % 65521\n"
            "print('MAIN', len(d), (b << 16) | a)\n")
    with MicrobitVM(files={}) as vm:       # plain MicroPython 1.9.2, nothing installed
        deploy.install_microbit(vm.port, {"data.bin": data, "main.py": main.encode()})
        with serial.Serial(vm.port, 115200, timeout=0.2) as ser:
            reader = Reader(ser)
            reader.read_until(b"MAIN ", 30)          # main.py runs after the reset
            line = reader.read_until(b"\r\n", 10)
    assert line.split() == [str(len(data)).encode(), str(zlib.adler32(data)).encode()]


# ---------------------------------------------------------------- emulate + flash on virtual boards


NDYN = str(Path(sys.executable).with_name("ndyn"))


class Emulator:
    """`ndyn emulate` as a user runs it: a child process whose first stdout line is the port."""

    def __init__(self, args, tmp, timeout=90):
        self.tmp = Path(tmp)
        self.tmp.mkdir(exist_ok=True)
        env = dict(os.environ, TMPDIR=str(self.tmp))
        self.proc = subprocess.Popen([NDYN, "emulate"] + list(args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.stop()
            raise AssertionError("ndyn emulate printed nothing within %d s" % timeout)
        self.first_line = self.proc.stdout.readline().decode()
        if not self.first_line.startswith("port: "):
            self.stop()
            raise AssertionError("first line %r, stderr %r" % (self.first_line, self.stderr))
        self.port = self.first_line.split(": ", 1)[1].strip()

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr = self.proc.stderr.read().decode()
        return self.proc.returncode


def test_emulate_mpy_wasm_serves_model_then_cleans_up(tmp_path, model_file):
    data = model_file.read_bytes()
    emu = Emulator(["--board", "mpy-wasm", str(model_file)], tmp_path / "tmp")
    try:
        assert emu.port.startswith("/dev/pts/")
        with Board.open(emu.port) as board:
            info = board.hello()
            assert info["board"] == "mpy-wasm"
            assert info["model_hash"] == ndm.model_hash(data)
            model = ndm.loads(data)
            rows = np.array([[1.0, 2.0, 3.0], [0.5, 1.5, 2.5]])
            preds, status = board.infer(rows)
        assert list(status) == [0, 0]
        host = model.predict(rows)
        assert np.allclose(preds, host, rtol=1e-6, atol=1e-6 * np.abs(host).max())
    finally:
        rc = emu.stop(signal.SIGINT)
    assert rc == 0, emu.stderr
    assert list((tmp_path / "tmp").iterdir()) == []          # temp files removed


def test_emulate_microbit_serves_model_then_cleans_up(tmp_path, model_file):
    """`ndyn emulate --board microbit-v1 MODEL`: QEMU running MicroPython 1.9.2 with
    our firmware and the model; `ndyn stream` on its port; SIGINT stops it all."""
    data = model_file.read_bytes()
    rows = np.array([[1.0, 2.0, 3.0], [0.5, 1.5, 2.5], [2.0, 0.7, 1.1]])
    csv = tmp_path / "rows.csv"
    csv.write_text("a,b,c\n" + "".join("%r,%r,%r\n" % tuple(map(float, r)) for r in rows))
    emu = Emulator(["--board", "microbit-v1", str(model_file)], tmp_path / "tmp")
    try:
        assert emu.port.startswith("/dev/pts/")
        with Board.open(emu.port) as board:
            info = board.hello()
        assert info["board"] == "microbit-v1" and info["model_hash"] == ndm.model_hash(data)
        out = subprocess.run([NDYN, "stream", "--port", emu.port, str(csv), "-o",
                              str(tmp_path / "pred.csv"), "--json"], capture_output=True, timeout=120)
        assert out.returncode == 0, out.stderr
        summary = json.loads(out.stdout.decode().strip().splitlines()[-1])
        assert summary["answered"] == 3 and summary["errors"] == 0
        host = ndm.loads(data).predict(rows)
        got = np.loadtxt(tmp_path / "pred.csv", delimiter=",", skiprows=1, ndmin=2,
                         usecols=range(host.shape[1]))
        assert np.allclose(got, host, rtol=1e-5, atol=1e-6 * np.abs(host).max())
    finally:
        rc = emu.stop(signal.SIGINT)
    assert rc == 0, emu.stderr
    assert list((tmp_path / "tmp").iterdir()) == []          # temp files removed


def test_flash_installs_firmware_and_model_on_a_plain_microbit_through_the_raw_repl(tmp_path,
                                                                                  model_file):
    """A micro:bit V1 running only MicroPython (no ndyn firmware): `ndyn flash --port`
    writes every file in small chunks through the raw REPL (no os.stat there),
    reads each back, resets; the board then serves the model."""
    data = model_file.read_bytes()
    with MicrobitVM(files={}) as vm:
        out = subprocess.run([NDYN, "flash", str(model_file), "--board", "microbit-v1",
                              "--port", vm.port, "--json"], capture_output=True, timeout=600)
        assert out.returncode == 0, (out.stderr, vm.console_log()[-1500:])
        result = json.loads(out.stdout.decode().strip().splitlines()[-1])
        assert result["method"] != "protocol"
        # fwk.bin landed in consecutive chunks at the first try (neurondyn.mbfs)
        assert b"not in consecutive flash chunks" not in out.stderr, out.stderr
        info = deploy.wait_for_hello(vm.port, 90, give_up=vm.boot_error)
        assert info is not None, vm.boot_error() or vm.console_log()[-400:]
        assert info["model_hash"] == ndm.model_hash(data)
        with Board.open(vm.port) as board:
            rows = np.array([[1.0, 2.0, 3.0]])
            preds, status = board.infer(rows)
        assert status[0] == 0
        assert np.allclose(preds, ndm.loads(data).predict(rows), rtol=1e-5)


def test_emulate_without_model_waits_for_one_then_flash_uploads_it(tmp_path, model_file):
    data = model_file.read_bytes()
    emu = Emulator(["--board", "mpy-wasm"], tmp_path / "tmp")
    try:
        with Board.open(emu.port) as board:
            assert not board.hello().get("model_loaded", True)
        # the firmware answers on the port: `ndyn flash` uploads over the protocol
        out = subprocess.run([NDYN, "flash", str(model_file), "--board", "mpy-wasm",
                              "--port", emu.port, "--json"], capture_output=True, timeout=120)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout.decode().strip().splitlines()[-1])
        assert result["method"] == "protocol"
        assert result["hello"]["model_hash"] == ndm.model_hash(data)
        with Board.open(emu.port) as board:
            assert board.hello()["model_hash"] == ndm.model_hash(data)
            preds, status = board.infer(np.array([[2.0, 1.0, 0.5]]))
        assert status[0] == 0
        assert np.allclose(preds, ndm.loads(data).predict(np.array([[2.0, 1.0, 0.5]])), rtol=1e-6)
    finally:
        assert emu.stop() == 0, emu.stderr


def test_flash_refuses_a_board_that_is_not_the_one_named(tmp_path, model_file):
    emu = Emulator(["--board", "mpy-wasm"], tmp_path / "tmp")
    try:
        out = subprocess.run([NDYN, "flash", str(model_file), "--board", "esp32", "--port", emu.port],
                             capture_output=True, timeout=120)
        assert out.returncode == 3
        assert "says it is mpy-wasm, not esp32" in out.stderr.decode()
        with Board.open(emu.port) as board:
            assert not board.hello().get("model_loaded", True)     # nothing was written
    finally:
        assert emu.stop() == 0, emu.stderr


def test_emulate_state_dir_keeps_the_model_across_restarts(tmp_path, model_file):
    state = tmp_path / "state"
    emu = Emulator(["--board", "mpy-wasm", "--state", str(state)], tmp_path / "tmp")
    try:
        with Board.open(emu.port) as board:
            board.upload(model_file.read_bytes())
    finally:
        assert emu.stop() == 0, emu.stderr
    emu = Emulator(["--board", "mpy-wasm", "--state", str(state)], tmp_path / "tmp")
    try:
        with Board.open(emu.port) as board:
            assert board.hello()["model_hash"] == ndm.model_hash(model_file.read_bytes())
    finally:
        assert emu.stop() == 0, emu.stderr


def test_emulate_line_faults_put_a_relay_in_the_path(tmp_path, model_file):
    data = model_file.read_bytes()
    rows = np.random.default_rng(4).uniform(0.5, 2.0, size=(40, 3))
    # a faultless relay is transparent
    emu = Emulator(["--board", "mpy-wasm", "--line-faults", "seed=1", str(model_file)], tmp_path / "tmp")
    try:
        with Board.open(emu.port) as board:
            preds, status = board.infer(rows)
        assert (status == 0).all() and np.allclose(preds, ndm.loads(data).predict(rows), rtol=1e-6)
    finally:
        assert emu.stop() == 0, emu.stderr
    assert "line faults:" in emu.stderr
    # a line that drops every byte: the printed port really is the faulty end
    emu = Emulator(["--board", "mpy-wasm", "--line-faults", "drop=1", str(model_file)], tmp_path / "tmp")
    try:
        with pytest.raises(DeviceError):
            with Board.open(emu.port, timeout=0.3) as board:
                board.hello()
    finally:
        assert emu.stop() == 0, emu.stderr


def test_emulate_rejects_a_bad_fault_spec(capsys):
    assert cli.main(["emulate", "--board", "mpy-wasm", "--line-faults", "drop=7"]) == 2
    assert "probability" in capsys.readouterr().err


def test_emulate_reports_a_firmware_crash_at_boot(toy_firmware, capsys):
    # Ctrl-C off first, as the real main.py does: handshake probes may hold 0x03
    (toy_firmware / "main.py").write_text(
        "while True:\n    try:\n        import micropython\n        micropython.kbd_intr(-1)\n"
        "        break\n    except KeyboardInterrupt:\n        pass\n"
        "import fwtoy\nraise MemoryError('too big')\n")
    assert cli.main(["emulate", "--board", "microbit-v1", "--boot-timeout", "30"]) == 3
    err = capsys.readouterr().err
    assert "crashed at boot: MemoryError: too big" in err and len(err.strip().splitlines()) == 1


def test_emulate_power_cut_keeps_the_flash_of_that_instant(tmp_path, model_file):
    state = tmp_path / "state"
    second = tmp_path / "second.ndm"
    ndm.write(second, make_model(seed=11))
    emu = Emulator(["--board", "mpy-wasm", "--state", str(state), str(model_file)], tmp_path / "tmp")
    try:
        with Board.open(emu.port) as board:
            board.upload(second.read_bytes())
    finally:
        assert emu.stop(signal.SIGUSR1) == 0, emu.stderr
    assert "power cut" in emu.stderr
    emu = Emulator(["--board", "mpy-wasm", "--state", str(state)], tmp_path / "tmp")
    try:
        with Board.open(emu.port) as board:
            assert board.hello()["model_hash"] == ndm.model_hash(second.read_bytes())
    finally:
        assert emu.stop() == 0, emu.stderr
    # --power-cut-after needs somewhere to keep the flash
    out = subprocess.run([NDYN, "emulate", "--board", "mpy-wasm", "--power-cut-after", "1"],
                         capture_output=True, timeout=60)
    assert out.returncode == 2 and b"needs --state" in out.stderr


def test_emulate_without_qemu_says_how_to_install_it(tmp_path, model_file, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert cli.main(["emulate", "--board", "microbit-v1"]) == 3
    assert "apt-get install qemu-system-arm" in capsys.readouterr().err


def test_emulate_with_model_replaces_the_model_in_a_state_dir(tmp_path, model_file):
    state = tmp_path / "state"
    first = tmp_path / "first.ndm"
    ndm.write(first, make_model(seed=7))
    for path in (first, model_file):        # the second model must win over the first
        emu = Emulator(["--board", "mpy-wasm", "--state", str(state), str(path)], tmp_path / "tmp")
        try:
            with Board.open(emu.port) as board:
                assert board.hello()["model_hash"] == ndm.model_hash(path.read_bytes())
                board.upload(path.read_bytes())      # bumps the slot generation on the board
        finally:
            assert emu.stop() == 0, emu.stderr
def test_flash_plain_stdin_board_over_mpremote(tmp_path, model_file):
    """A plain-MicroPython board of the ESP32 kind (mpy-wasm with a raw REPL):
    `ndyn flash --board esp32` installs firmware + model with mpremote's
    library, soft-resets, and our firmware answers as an esp32."""
    data = model_file.read_bytes()
    with WasmBoard(files={}, raw_repl=True) as vm:
        out = subprocess.run([NDYN, "flash", str(model_file), "--board", "esp32",
                              "--port", vm.port, "--json"], capture_output=True, timeout=300)
        assert out.returncode == 0, out.stderr.decode() + vm.log()
        result = json.loads(out.stdout.decode().strip().splitlines()[-1])
        assert result["method"] == "mpremote"
        assert result["hello"]["board"] == "esp32"
        assert result["hello"]["model_hash"] == ndm.model_hash(data)
        files = sorted(p.name for p in vm.flash_dir.iterdir())
        assert "main.py" in files and "fwcfg.py" in files
        assert b"IO = 'stdin'" in (vm.flash_dir / "fwcfg.py").read_bytes()
        with Board.open(vm.port) as board:
            rows = np.array([[1.0, 2.0, 3.0]])
            preds, status = board.infer(rows)
        assert status[0] == 0 and np.allclose(preds, ndm.loads(data).predict(rows), rtol=1e-6)

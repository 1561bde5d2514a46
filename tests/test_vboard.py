"""The virtual boards: micro:bit V1 (MicroPython 1.9.2 under QEMU) and mpy-wasm (current MicroPython)."""
import os
import random
import select
import time
from pathlib import Path

import micropython_microbit_fs as mfs
import pytest
import serial

from neurondyn.errors import DeviceError, UserError
from neurondyn.vboard.minify import minify, minify_checked, same_program
from neurondyn.vboard import (MicrobitSession, MicrobitVM, ReplError, WasmBoard,
                              build_microbit_hex, run_on_microbit, run_on_wasm)

PROBE = "import sys, gc, helper\nprint(sys.implementation.version[:3], gc.mem_free(), helper.twice(21))\n"
FILES = {"helper.py": "def twice(x):\n    return 2 * x\n",
         # comments and docstrings: compacted on the way to the board (minify_checked)
         "liner.py": ('"""Module docstring\nover two lines."""\n'
                      "# a comment line\n"
                      "def fail():\n"
                      "    '''doc'''\n"
                      "    x = '# not a comment'  # a comment\n"
                      "    raise ValueError(x)\n")}


def _parse_probe(out):
    version, free, answer = out.strip().rsplit(" ", 2)
    return eval(version), int(free), int(answer)


@pytest.fixture(scope="module")
def microbit():
    with MicrobitSession(FILES) as board:
        yield board


def test_hex_holds_the_files_byte_for_byte(tmp_path):
    blob = bytes(range(256)) * 3
    out = build_microbit_hex({"helper.py": FILES["helper.py"], "model.ndm": blob}, tmp_path / "img.hex")
    files = {f.name: f.content for f in mfs.get_files(out.read_text())}
    assert files == {"helper.py": FILES["helper.py"].encode(), "model.ndm": blob}


def test_hex_rejects_files_that_do_not_fit(tmp_path):
    with pytest.raises(UserError, match="do not fit"):
        build_microbit_hex({"big.bin": os.urandom(200_000)}, tmp_path / "img.hex")
    assert not (tmp_path / "img.hex").exists()


def test_hex_rejects_folders(tmp_path):
    with pytest.raises(UserError, match="flat"):
        build_microbit_hex({"lib/x.py": b"x=1"}, tmp_path / "img.hex")


def test_script_runs_on_micropython_1_9_2(microbit):
    version, free, answer = _parse_probe(microbit.run(PROBE))
    assert version == (1, 9, 2)
    assert 4000 < free < 16384          # the nRF51822 has 16 KB of RAM in all
    assert answer == 42


def test_compacted_module_runs_the_same_on_the_board(microbit):
    with pytest.raises(ReplError) as info:
        microbit.run("import liner\nliner.fail()")
    # the board ran the compacted file: docstrings and comments gone, the
    # function on one line; the '#' inside the string is not a comment
    assert minify_checked(FILES["liner.py"]).startswith("def fail():")
    assert 'File "liner.py", line 1, in fail' in info.value.stderr
    assert "ValueError: # not a comment" in info.value.stderr


def test_session_keeps_state_between_scripts(microbit):
    microbit.run("kept = [1, 2, 3]")
    assert microbit.run("print(sum(kept))").strip() == "6"


def test_board_exception_is_reported_with_traceback(microbit):
    with pytest.raises(ReplError) as info:
        microbit.run("print('before')\nraise ValueError('boom')")
    assert info.value.stdout.strip() == "before"
    assert "ValueError: boom" in info.value.stderr
    assert microbit.run("print(6 * 7)").strip() == "42"   # still alive


def test_long_script_survives_the_64_byte_uart_buffer(microbit):
    # 1 KB of source, far past the UART buffer: chunked pacing must deliver every byte.
    # Ten 100-character literals rather than one of 1,000: the claim is about the line,
    # and one 1 KB string needs a contiguous 1 KB block the V1's 16 KB heap may not have
    # after the earlier scripts (seen once in CI: MemoryError allocating 1001 bytes).
    text = "".join(chr(33 + (i * 7) % 90) for i in range(1000)).replace("\\", "/").replace("'", "*")
    chunks = [text[i:i + 100] for i in range(0, len(text), 100)]
    script = ("n = 0\nt = 0\ndef f(s):\n    global n, t\n    n += len(s)\n"
              "    for c in s:\n        t += ord(c)\n"
              + "".join("f('%s')\n" % c for c in chunks) + "print(n, t)\n")
    assert len(script) > 1000
    assert microbit.run(script).split() == [str(len(text)), str(sum(map(ord, text)))]


def test_run_on_microbit_boots_a_fresh_board():
    version, free, answer = _parse_probe(run_on_microbit(FILES, PROBE))
    assert version == (1, 9, 2) and answer == 42


def test_script_runs_on_current_micropython():
    version, free, answer = _parse_probe(run_on_wasm(FILES, PROBE))
    assert version >= (1, 20, 0)
    assert free > 100_000
    assert answer == 42


def test_wasm_exception_is_reported():
    with pytest.raises(ReplError) as info:
        run_on_wasm({}, "print('x')\nimport nosuchmodule\n")
    assert "ImportError" in info.value.stderr
    assert info.value.stdout.strip() == "x"


def test_wasm_timeout_is_an_error():
    with pytest.raises(TimeoutError):
        run_on_wasm({}, "while True:\n    pass\n", timeout=2)


ECHO_MAIN = """import sys
while True:
    b = sys.stdin.buffer.read(4)
    sys.stdout.buffer.write(bytes([x ^ 0xFF for x in b]))
"""


def test_wasm_board_serves_binary_bytes_over_its_pty():
    sent = bytes([0, 1, 3, 0xFF, 10, 13, 0, 4])     # NUL, Ctrl-C, CR/LF, Ctrl-D all pass untouched
    with WasmBoard(files={"main.py": ECHO_MAIN}) as board:
        assert board.port.startswith("/dev/")
        with serial.Serial(board.port, 115200, timeout=5) as ser:
            ser.write(sent)
            assert ser.read(8) == bytes(x ^ 0xFF for x in sent)
        # the port can be closed and opened again, like a USB serial device
        with serial.Serial(board.port, 115200, timeout=5) as ser:
            ser.write(b"\x00\x00\x00\x00")
            assert ser.read(4) == b"\xff\xff\xff\xff"
        proc = board.proc
    assert proc.poll() is not None           # stopped on exit


def test_wasm_board_flash_persists_in_flash_dir(tmp_path):
    main = "f = open('slot.bin', 'wb')\nf.write(bytes([7, 0, 9]))\nf.close()\n"
    with WasmBoard(files={"main.py": main}, flash_dir=tmp_path) as board:
        deadline = time.monotonic() + 10
        while board.running and time.monotonic() < deadline:
            time.sleep(0.05)
    assert (tmp_path / "slot.bin").read_bytes() == bytes([7, 0, 9])


def test_microbit_vm_gives_a_pty_and_cleans_up():
    vm = MicrobitVM(files={"main.py": "print('hi from main')\n"})
    try:
        tmp = vm._tmp
        with serial.Serial(vm.port, 115200, timeout=0.5) as ser:
            ser.write(b"\r\x03")           # interrupt whatever runs; the REPL answers
            seen = b""
            deadline = time.monotonic() + 15
            while b">>> " not in seen and time.monotonic() < deadline:
                seen += ser.read(64)
        assert b">>> " in seen
    finally:
        vm.stop()
    assert not vm.running and not os.path.exists(tmp)


def test_missing_qemu_is_a_clear_device_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DeviceError, match="apt-get install qemu-system-arm"):
        MicrobitVM(files={"x.py": "x=1"})


def _sources():
    root = Path(__file__).resolve().parent.parent
    return sorted(root.glob("firmware/*.py")) + sorted(root.glob("host/neurondyn/**/*.py"))


def test_minify_keeps_every_program_and_its_line_numbers():
    checked = 0
    for path in _sources():
        src = path.read_text()
        small = minify(src)
        assert same_program(src, small), path
        assert len(small.splitlines()) == len(src.rstrip().splitlines()), path
        assert len(small) <= len(src)
        checked += 1
    assert checked > 20


@pytest.mark.parametrize("src", [
    's = """keep\n    # this\n  indented"""\nprint(s)\n',
    "x = (1 +  # c\n     2)\ny = 3 + \\\n    4\n",
    "class A:\n    '''only a docstring'''\n",
    "def f():\n    if 1:\n        return '#'\n    else:\n        pass\n",
    "d = {\n    'a': 1,\n    # c\n    'b': [\n        2,\n    ],\n}\n",
])
def test_minify_small_cases_run_the_same(src, capsys):
    small = minify(src)
    assert same_program(src, small)
    ns_a, ns_b = {}, {}
    exec(src, ns_a)
    exec(small, ns_b)
    keep = ("s", "x", "y", "d")
    assert {k: ns_a[k] for k in keep if k in ns_a} == {k: ns_b[k] for k in keep if k in ns_b}
    assert "only a docstring" not in small and "# c" not in small


def test_microbit_flash_snapshot_survives_a_restart(microbit, tmp_path):
    # what the board writes lives in QEMU's memory only; save_flash keeps it
    microbit.run("f = open('kept.txt', 'w')\nf.write('still here')\nf.close()")
    snap = tmp_path / "flash.bin"
    microbit.vm.save_flash(snap)
    with MicrobitSession({}, hex_path=None) as fresh:
        with pytest.raises(ReplError):
            fresh.run("open('kept.txt').read()")          # a new VM starts from its image
    vm = MicrobitVM(files={}, flash_state=snap)
    try:
        with serial.Serial(vm.port, 115200, timeout=0.2) as ser:
            from neurondyn.vboard.rawrepl import MICROBIT_LOADER, RawRepl
            repl = RawRepl(ser, loader=MICROBIT_LOADER)
            repl.enter()
            assert repl.exec("print(open('kept.txt').read())").strip() == "still here"
            assert "helper.py" in repl.exec("import os\nprint(os.listdir())")
    finally:
        vm.stop()


def test_microbit_power_cut_snapshot_holds_what_was_written(tmp_path):
    snap = tmp_path / "cut.bin"
    with MicrobitSession({}) as board:
        board.run("f = open('log.txt', 'w')\nf.write('before the cut')\nf.close()")
        board.vm.power_cut(save_to=snap)
        assert not board.vm.running
    vm = MicrobitVM(files={}, flash_state=snap)
    try:
        with serial.Serial(vm.port, 115200, timeout=0.2) as ser:
            from neurondyn.vboard.rawrepl import RawRepl
            repl = RawRepl(ser)
            repl.enter()
            assert repl.exec("print(open('log.txt').read())").strip() == "before the cut"
    finally:
        vm.stop()


def test_flash_state_of_wrong_size_is_refused(tmp_path):
    bad = tmp_path / "flash.bin"
    bad.write_bytes(b"\xff" * 100)
    with pytest.raises(UserError, match="not a micro:bit V1 flash state"):
        MicrobitVM(files={}, flash_state=bad)


def test_boot_crash_is_reported_from_the_console_log():
    with MicrobitVM(files={"main.py": "x = 1\nraise OSError('boot went wrong')\n"}) as vm:
        deadline = time.monotonic() + 20
        while not vm.boot_error() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert vm.boot_error() == "OSError: boot went wrong"
        assert 'File "main.py", line 2' in vm.console_log() or "line 2" in vm.console_log()


def test_wasm_boot_crash_is_reported():
    with WasmBoard(files={"main.py": "import nosuchmodule\n"}) as board:
        deadline = time.monotonic() + 20
        while board.running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "ImportError" in board.boot_error()


# ---------------------------------------------------------------- the faulty line

from neurondyn.vboard.faults import FaultyLine, parse_spec


def _through_line(spec, data, direction="to_host"):
    """Send ``data`` through a FaultyLine in one direction; return what arrives."""
    board_master, board_slave = os.openpty()
    import tty
    tty.setraw(board_slave)
    line = FaultyLine(os.ttyname(board_slave), spec)
    try:
        with serial.Serial(line.port, 115200, timeout=0.5) as user:
            if direction == "to_host":
                os.write(board_master, data)
                src_read = user.read
            else:
                user.write(data)
                user.flush()
                src_read = lambda n: os.read(board_master, n) if select.select([board_master], [], [], 0.5)[0] else b""
            got = bytearray()
            while True:
                chunk = src_read(4096)
                if not chunk:
                    break
                got += chunk
        return bytes(got), line.counts[direction]
    finally:
        line.stop()
        os.close(board_master)
        os.close(board_slave)


def test_line_faults_happen_at_the_rates_asked_and_add_up():
    data = bytes(random.Random(1).randrange(256) for _ in range(20000))
    got, counts = _through_line("drop=0.02,corrupt=0.03,dup=0.01,seed=4", data)
    assert counts["bytes"] == len(data)
    assert len(got) == len(data) - counts["dropped"] + counts["duplicated"]
    assert 0.015 < counts["dropped"] / len(data) < 0.025
    assert 0.024 < counts["corrupted"] / len(data) < 0.036
    assert 0.006 < counts["duplicated"] / len(data) < 0.014


def test_line_faults_are_reproducible_for_a_seed_and_clean_without_faults():
    data = bytes(random.Random(2).randrange(256) for _ in range(3000))
    a, _ = _through_line("drop=0.05,corrupt=0.05,dup=0.05,seed=9", data, "to_board")
    b, _ = _through_line("drop=0.05,corrupt=0.05,dup=0.05,seed=9", data, "to_board")
    c, _ = _through_line("drop=0.05,corrupt=0.05,dup=0.05,seed=10", data, "to_board")
    assert a == b and a != c and a != data
    clean, counts = _through_line("", data, "to_board")
    assert clean == data and counts["dropped"] == counts["corrupted"] == 0


def test_line_stalls_are_counted():
    data = bytes(200)
    got, counts = _through_line("stall=5,stall_p=0.05,seed=1", data)
    assert got == data and counts["stalls"] > 0


@pytest.mark.parametrize("spec", ["drop=2", "loss=0.1", "drop", "stall=-1", "seed=x"])
def test_bad_line_fault_specs_are_user_errors(spec):
    with pytest.raises(UserError):
        parse_spec(spec)


LOOP_WITH_TRY = """
import gc
def serve():
    g = {}
    for i in range(20000):
        try:
            g['x'] = bytearray(200)
        except MemoryError:
            print('oom')
    print('served', gc.mem_free() > 0)
serve()
"""


def test_wasm_board_survives_a_serving_loop_that_allocates():
    # This WASI build traps when its GC runs inside a function with an active
    # try block (measured with the port's 1 MB heap); the board's 64M heap keeps
    # a demo-sized session from ever collecting.
    assert run_on_wasm({}, LOOP_WITH_TRY, timeout=60).strip() == "served True"

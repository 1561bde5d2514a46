"""Board profiles, the fit check, USB auto-detection and `ndyn boards`."""
import json

import numpy as np
import pytest
from serial.tools.list_ports_common import ListPortInfo

from neurondyn import boards, cli, deploy, ndm
from neurondyn.errors import DeviceError, UserError
from neurondyn.model import Model

NAMES = ["esp32", "microbit-v1", "mpy-wasm", "pyboard", "rp2040-pico"]


def make_model(d_in, d_out, k, nnz, seed=0):
    rng = np.random.default_rng(seed)
    w = np.zeros((k, d_in))
    for a in range(k):
        idx = rng.choice(d_in, size=min(nnz, d_in), replace=False)
        w[a, idx] = rng.choice([-2, -1, 1, 2], size=idx.size)
    return Model(np.zeros(d_in), np.ones(d_in), w, rng.normal(size=k),
                 rng.normal(size=(k, d_out)), rng.normal(size=d_out))


def test_every_profile_loads_and_is_consistent():
    profiles = boards.all_profiles()
    assert list(profiles) == NAMES
    for p in profiles.values():
        assert p.heap_bytes <= p.ram_bytes
        assert p.io in ("uart", "stdin")
        assert p.float_bits in (32, 64)


def test_profile_facts_users_rely_on():
    p = boards.all_profiles()
    assert p["microbit-v1"].usb_ids == [(0x0D28, 0x0204)]
    assert p["microbit-v1"].io == "uart" and p["microbit-v1"].baud == 115200
    assert p["microbit-v1"].emulation.startswith("qemu-system-arm -M microbit")
    assert p["microbit-v1"].asm_thumb and p["microbit-v1"].micropython_min == "1.9.2"
    assert set(p["esp32"].usb_ids) == {(0x10C4, 0xEA60), (0x1A86, 0x7523), (0x303A, 0x1001)}
    assert p["rp2040-pico"].usb_ids == [(0x2E8A, 0x0005)]
    assert p["pyboard"].usb_ids == [(0xF055, 0x9800)]
    assert all(p[n].flash_method == "mpremote" for n in ("esp32", "rp2040-pico", "pyboard"))
    assert p["mpy-wasm"].float_bits == 64 and p["mpy-wasm"].virtual


def test_microbit_fs_size_matches_the_bundled_image():
    from neurondyn.vboard.microbit import microbit_fs_capacity
    assert boards.get_profile("microbit-v1").fs_bytes == microbit_fs_capacity()


def _write(tmp_path, name, text):
    (tmp_path / (name + ".toml")).write_text(text)


def _valid_text(name="toy"):
    src = (boards.boards_dir() / "microbit-v1.toml").read_text()
    return src.replace('name = "microbit-v1"', 'name = "%s"' % name)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("clock_hz", "#clock_hz"), "lacks: clock_hz"),
    (lambda t: t.replace('io = "uart"', 'io = "spi"'), "io must be one of"),
    (lambda t: t.replace("float_bits = 32", "float_bits = 16"), "float_bits"),
    (lambda t: t.replace("ram_bytes = 16_384", "ram_bytes = -1"), "ram_bytes must be"),
    (lambda t: t.replace("usb_pid = [0x0204]", "usb_pid = []"), "pair up"),
    (lambda t: t.replace('micropython_max = "1.9.2"', 'micropython_max = "1.9.1"'), "newer than"),
    (lambda t: t + "\ncolour = 3\n", "unknown keys: colour"),
    (lambda t: t + "\n[[[", "not valid TOML"),
])
def test_bad_profiles_are_rejected_with_the_reason(tmp_path, edit, message):
    _write(tmp_path, "toy", edit(_valid_text()))
    with pytest.raises(UserError, match=message):
        boards.all_profiles(tmp_path)


def test_profile_name_must_match_file(tmp_path):
    _write(tmp_path, "other", _valid_text("toy"))
    with pytest.raises(UserError, match="differs from the file name"):
        boards.all_profiles(tmp_path)


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(UserError) as info:
        boards.get_profile("arduino-uno")
    assert "arduino-uno" in str(info.value)
    for name in NAMES:
        assert name in str(info.value)


def test_code_bytes_ignores_comments_and_docstrings():
    # the compacted source (vboard.minify.compact) is what the board reads
    assert boards.code_bytes("# only a comment\n\n   # indented comment\n") <= 1
    assert boards.code_bytes("x = 1  # c\n# c\ny = 2\n") == len("x=1\ny=2\n")
    doc = 'def f():\n    """A long docstring that the board never stores."""\n    return 1\n'
    assert boards.code_bytes(doc) == len('def f():return 1\n')


FIRMWARE = {"main.py": b"import fwx\nfwx.go()\n", "fwx.py": b"def go():\n    pass\n" * 50}


def test_small_model_fits_the_microbit():
    data = ndm.dumps(make_model(3, 1, 2, 2))
    report = boards.fit_check(boards.get_profile("microbit-v1"), data, FIRMWARE)
    assert report.fits and report.heap_free_after >= report.heap_reserve
    assert report.model_heap > len(data)


def test_model_too_big_for_microbit_heap_is_refused_but_fits_esp32():
    big = ndm.dumps(make_model(60, 20, 40, 4))
    with pytest.raises(UserError, match="does not fit microbit-v1.*heap"):
        boards.fit_check(boards.get_profile("microbit-v1"), big, FIRMWARE)
    assert boards.fit_check(boards.get_profile("esp32"), big, FIRMWARE).fits


def test_firmware_too_big_for_microbit_files_is_refused():
    huge = {"main.py": b"# " + b"x" * 40_000 + b"\n"}   # comments: no heap, but flash
    data = ndm.dumps(make_model(3, 1, 2, 2))
    with pytest.raises(UserError, match="file system"):
        boards.fit_check(boards.get_profile("microbit-v1"), data, huge)


def test_fs_cost_rounds_to_blocks():
    esp = boards.get_profile("esp32")
    assert boards.file_cost(esp, "a.py", 1) == 4096
    assert boards.file_cost(esp, "a.py", 4097) == 8192
    mb = boards.get_profile("microbit-v1")
    assert boards.file_cost(mb, "model.ndm", 644) >= 644


def _port(device, vid, pid):
    info = ListPortInfo(device, skip_link_detection=True)
    info.vid, info.pid = vid, pid
    return info


def test_auto_port_finds_boards_by_usb_id():
    ports = [_port("/dev/ttyS0", None, None), _port("/dev/ttyACM0", 0x0D28, 0x0204),
             _port("/dev/ttyUSB0", 0x1A86, 0x7523)]
    found = boards.find_ports(comports=ports)
    assert ("/dev/ttyACM0", "microbit-v1") in found and ("/dev/ttyUSB0", "esp32") in found
    assert boards.auto_port(boards.get_profile("microbit-v1"), ports) == "/dev/ttyACM0"
    assert boards.auto_port(boards.get_profile("esp32"), ports) == "/dev/ttyUSB0"
    with pytest.raises(DeviceError, match="no rp2040-pico found.*2E8A:0005"):
        boards.auto_port(boards.get_profile("rp2040-pico"), ports)
    two = ports + [_port("/dev/ttyACM1", 0x0D28, 0x0204)]
    with pytest.raises(DeviceError, match="several"):
        boards.auto_port(boards.get_profile("microbit-v1"), two)


def test_cli_boards_table_and_json(capsys):
    assert cli.main(["boards"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| board |")
    for name in NAMES:
        assert "| %s |" % name in out
    assert cli.main(["boards", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in data] == NAMES
    assert data[1]["usb_ids"] == ["0D28:0204"]


def test_fwcfg_is_valid_micropython_config():
    p = boards.get_profile("microbit-v1")
    ns = {}
    exec(deploy.fwcfg_source(p), ns)
    assert (ns["BOARD"], ns["IO"], ns["BAUD"]) == ("microbit-v1", "uart", 115200)
    ns = {}
    exec(deploy.fwcfg_source(boards.get_profile("esp32")), ns)
    assert ns["IO"] == "stdin"


def test_module_heap_counts_assembly_by_instruction_not_by_text():
    asm = ("import micropython\n@micropython.asm_thumb\ndef f(r0):\n"
           + "    mov(r1, r0)  # a long comment that costs nothing\n" * 20)
    py = "def f(x):\n" + "    x = x + 1\n" * 20
    head = int(boards.HEAP_PER_CODE_BYTE * len("import micropython\n@micropython.asm_thumb\ndef f(r0):\n"))
    assert boards.module_heap(asm) == head + 20 * boards.HEAP_PER_ASM_LINE \
        + boards.HEAP_PER_ASM_FUNCTION + boards.HEAP_PER_MODULE
    # pre-assembled machine code costs exactly its bytes
    pre = ("import micropython\n@micropython.asm_thumb\ndef f(r0):\n"
           + " data(2, 0x4600, 0x4770, 0x4600)\n" * 10)
    assert boards.module_heap(pre) == head + 10 * 6 + boards.HEAP_PER_ASM_FUNCTION + boards.HEAP_PER_MODULE
    # plain Python counts by its compacted source: "def f(x):x=x+1;...;x=x+1"
    small = "def f(x):" + ";".join(["x=x+1"] * 20) + "\n"
    assert boards.module_heap(py) == int(boards.HEAP_PER_CODE_BYTE * len(small)) \
        + boards.HEAP_PER_MODULE

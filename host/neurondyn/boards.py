"""Board profiles (boards/*.toml) and the fit check run before anything is flashed.

A profile says what a board is (MCU, clock, memory, float width, MicroPython
range, I/O backend, USB ids, how to flash it). ``fit_check`` estimates what our
firmware plus a model need on that board and refuses a model that cannot fit,
with a sentence that says which budget is exceeded and by how much.

How the estimate is made:

- Heap, firmware: MicroPython compiles each module's source on import and
  keeps the bytecode, so its heap cost follows the amount of *code* (the
  minified source: comments and docstrings cost nothing), while an
  ``asm_thumb`` function keeps only its machine code: ``HEAP_PER_ASM_LINE``
  per instruction line assembled at import, the exact bytes of a
  pre-assembled ``data(size, ...)`` line, ``HEAP_PER_ASM_FUNCTION`` each:
  ``HEAP_PER_CODE_BYTE`` per byte of Python code, ``HEAP_PER_MODULE`` per
  module (module object, globals dict), for the modules that stay imported
  (files main.py runs and drops are not counted: deploy.transient_modules),
  plus the serving loop's buffers: the profile's ``heap_runtime_bytes``
  (HEAP_RUNTIME where a profile does not say). On the micro:bit V1 that
  figure is calibrated so the estimate is never above the heap the virtual
  V1 reports while serving (tests/test_microbit_board.py checks it).
- Heap, model: the .ndm bytes and the buffers sized from it:
  ``HEAP_PER_MODEL_BYTE`` per .ndm byte plus ``HEAP_PER_MODEL_FIXED``.
- Flash: every firmware file + generated fwcfg.py + two model slots (the
  store keeps the old model until the new one is committed), each rounded up
  to the file system's allocation unit (exact for the micro:bit's fs).
A board "fits" when the estimated heap leaves at least the profile's
``heap_reserve_bytes`` free and the files fit ``fs_bytes``.
"""
from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

from .errors import DeviceError, UserError
from .paths import boards_dir

HEAP_PER_CODE_BYTE = 0.9
HEAP_PER_ASM_LINE = 4
HEAP_PER_ASM_FUNCTION = 50
HEAP_PER_MODULE = 100
HEAP_RUNTIME = 512
HEAP_PER_MODEL_BYTE = 2.0
HEAP_PER_MODEL_FIXED = 256
MODEL_SLOTS = 2

IO_BACKENDS = ("uart", "stdin")
FS_KINDS = ("microbit", "littlefs", "fat", "hostdir")
FLASH_METHODS = ("hex-drag-drop", "mpremote", "virtual")


@dataclasses.dataclass(frozen=True)
class BoardProfile:
    name: str
    title: str
    mcu: str
    clock_hz: int
    ram_bytes: int
    heap_bytes: int
    heap_reserve_bytes: int
    flash_bytes: int
    fs_bytes: int
    fs_kind: str
    float_bits: int
    micropython_min: str
    micropython_max: str
    io: str
    baud: int
    usb_vid: tuple
    usb_pid: tuple
    flash_method: str
    emulation: str
    asm_thumb: bool
    fs_block_bytes: int = 1
    heap_runtime_bytes: int = 0   # the serving loop's buffers and frames; 0: HEAP_RUNTIME
    virtual: bool = False
    path: str = ""

    @property
    def usb_ids(self):
        """(vid, pid) pairs that identify this board's USB serial port."""
        return list(zip(self.usb_vid, self.usb_pid))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["usb_vid"] = list(self.usb_vid)
        d["usb_pid"] = list(self.usb_pid)
        d["usb_ids"] = ["%04X:%04X" % p for p in self.usb_ids]
        del d["path"]
        return d


_TYPES = {f.name: f.type for f in dataclasses.fields(BoardProfile)}
_REQUIRED = [f.name for f in dataclasses.fields(BoardProfile)
             if f.default is dataclasses.MISSING]


def _version(text: str):
    if not re.fullmatch(r"\d+(\.\d+){1,2}", text):
        raise ValueError("not a version: %r" % text)
    return tuple(int(p) for p in text.split("."))


def load_profile(path) -> BoardProfile:
    """Read and validate one profile; any problem is a UserError naming the file."""
    path = Path(path)
    where = path.name
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError("cannot read board profile %s: %s" % (path, exc.strerror))
    except tomllib.TOMLDecodeError as exc:
        raise UserError("board profile %s is not valid TOML: %s" % (where, exc))
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise UserError("board profile %s lacks: %s" % (where, ", ".join(missing)))
    unknown = sorted(set(raw) - set(_TYPES) - {"path"})
    if unknown:
        raise UserError("board profile %s has unknown keys: %s" % (where, ", ".join(unknown)))
    values = {}
    for key, value in raw.items():
        want = _TYPES[key]
        ok = {"str": isinstance(value, str),
              "int": isinstance(value, int) and not isinstance(value, bool) and value >= 0,
              "bool": isinstance(value, bool),
              "tuple": isinstance(value, list) and all(isinstance(v, int) and 0 <= v <= 0xFFFF
                                                       for v in value)}[want]
        if not ok:
            raise UserError("board profile %s: %s must be %s, got %r"
                            % (where, key, {"tuple": "a list of 16-bit ids", "int": "a non-negative integer"}
                               .get(want, "a " + want), value))
        values[key] = tuple(value) if want == "tuple" else value
    profile = BoardProfile(path=str(path), **values)
    problems = []
    if profile.name != path.stem:
        problems.append("name %r differs from the file name" % profile.name)
    if profile.io not in IO_BACKENDS:
        problems.append("io must be one of %s" % "/".join(IO_BACKENDS))
    if profile.fs_kind not in FS_KINDS:
        problems.append("fs_kind must be one of %s" % "/".join(FS_KINDS))
    if profile.flash_method not in FLASH_METHODS:
        problems.append("flash_method must be one of %s" % "/".join(FLASH_METHODS))
    if profile.float_bits not in (32, 64):
        problems.append("float_bits must be 32 or 64")
    if len(profile.usb_vid) != len(profile.usb_pid):
        problems.append("usb_vid and usb_pid must pair up (same length)")
    if profile.heap_bytes > profile.ram_bytes:
        problems.append("heap_bytes exceeds ram_bytes")
    if profile.fs_block_bytes < 1:
        problems.append("fs_block_bytes must be >= 1")
    try:
        if _version(profile.micropython_min) > _version(profile.micropython_max):
            problems.append("micropython_min is newer than micropython_max")
    except ValueError as exc:
        problems.append(str(exc))
    if problems:
        raise UserError("board profile %s: %s" % (where, "; ".join(problems)))
    return profile


def all_profiles(folder=None) -> dict:
    """Every profile in boards/, by name (sorted)."""
    folder = Path(folder) if folder else boards_dir()
    profiles = {}
    for path in sorted(folder.glob("*.toml")):
        p = load_profile(path)
        profiles[p.name] = p
    return profiles


def get_profile(name: str, folder=None) -> BoardProfile:
    """The profile called ``name``; an unknown name is a UserError listing the known ones."""
    profiles = all_profiles(folder)
    if name not in profiles:
        raise UserError("unknown board %r; known boards: %s" % (name, ", ".join(profiles)))
    return profiles[name]


# ---------------------------------------------------------------- fit check

def code_bytes(source) -> int:
    """Bytes of a module's code: its minified source, what the compiler really reads."""
    from .vboard.minify import minify_checked
    if isinstance(source, bytes):
        source = source.decode("utf-8", "replace")
    return len(minify_checked(source).encode("utf-8"))


def module_heap(source) -> int:
    """Estimated heap a module keeps once imported (see the module docstring)."""
    import ast
    from .vboard.minify import minify_checked
    if isinstance(source, bytes):
        source = source.decode("utf-8", "replace")
    small = minify_checked(source)
    lines = small.splitlines()
    asm_rows, asm_heap = set(), 0
    try:
        tree = ast.parse(small)
    except SyntaxError:
        tree = ast.Module(body=[], type_ignores=[])
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and any(
                isinstance(d, ast.Attribute) and d.attr == "asm_thumb" for d in node.decorator_list):
            asm_rows.update(range(node.lineno + 1, node.end_lineno + 1))
            asm_heap += HEAP_PER_ASM_FUNCTION
            for st in node.body:
                call = st.value if isinstance(st, ast.Expr) else None
                if (isinstance(call, ast.Call) and getattr(call.func, "id", "") == "data"
                        and call.args and isinstance(call.args[0], ast.Constant)):
                    # pre-assembled machine code: data(size, v1, v2, ...)
                    asm_heap += int(call.args[0].value) * (len(call.args) - 1)
                else:
                    asm_heap += HEAP_PER_ASM_LINE
    code = sum(len(l) + 1 for i, l in enumerate(lines, 1) if i not in asm_rows and l.strip())
    return int(HEAP_PER_CODE_BYTE * code) + asm_heap + HEAP_PER_MODULE


def file_cost(profile: BoardProfile, name: str, size: int) -> int:
    """Bytes a file of ``size`` occupies on the board's file system."""
    if profile.fs_kind == "microbit":
        from micropython_microbit_fs.filesystem import calculate_file_size
        return calculate_file_size(name, b"\0" * max(1, size))
    block = profile.fs_block_bytes
    return -(-max(1, size) // block) * block


@dataclasses.dataclass
class FitReport:
    board: str
    firmware_heap: int
    model_heap: int
    heap_free_after: int
    heap_reserve: int
    fs_needed: int
    fs_bytes: int

    @property
    def fits_heap(self) -> bool:
        return self.heap_free_after >= self.heap_reserve

    @property
    def fits_fs(self) -> bool:
        return self.fs_needed <= self.fs_bytes

    @property
    def fits(self) -> bool:
        return self.fits_heap and self.fits_fs

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["fits"] = self.fits
        return d


def estimate(profile: BoardProfile, model_size: int, firmware: dict,
             model_name: str = "model.ndm", lazy=()) -> FitReport:
    """Estimated heap and file-system needs of ``firmware`` (name -> source) plus a model.

    Modules named in ``lazy`` are imported on demand: they need file system,
    not boot heap.
    """
    modules = [(n, src) for n, src in firmware.items() if n.endswith(".py") and n not in lazy]
    fw_heap = (profile.heap_runtime_bytes or HEAP_RUNTIME) + sum(module_heap(src)
                                                                for _, src in modules)
    model_heap = int(HEAP_PER_MODEL_BYTE * model_size) + HEAP_PER_MODEL_FIXED if model_size else 0
    fs = sum(file_cost(profile, n, len(src)) for n, src in firmware.items())
    if model_size:
        fs += MODEL_SLOTS * file_cost(profile, model_name, model_size)
    return FitReport(board=profile.name, firmware_heap=fw_heap, model_heap=model_heap,
                     heap_free_after=profile.heap_bytes - fw_heap - model_heap,
                     heap_reserve=profile.heap_reserve_bytes, fs_needed=fs,
                     fs_bytes=profile.fs_bytes)


def fit_check(profile: BoardProfile, ndm_bytes: bytes, firmware: dict = None,
              model_name: str = "model.ndm", lazy=()) -> FitReport:
    """Raise UserError when firmware + model cannot fit ``profile``; else return the estimate."""
    if firmware is None:
        from .deploy import firmware_files
        firmware = firmware_files(profile)
    report = estimate(profile, len(ndm_bytes), firmware, model_name, lazy)
    if not report.fits_heap:
        raise UserError(
            "model does not fit %s: firmware (~%d B) + model (~%d B for a %d-byte .ndm) need "
            "~%d B of heap, the board has %d B and must keep %d B free"
            % (profile.name, report.firmware_heap, report.model_heap, len(ndm_bytes),
               report.firmware_heap + report.model_heap, profile.heap_bytes, profile.heap_reserve_bytes))
    if not report.fits_fs:
        raise UserError("model does not fit %s: firmware + model files need %d B of file system, "
                        "the board has %d B" % (profile.name, report.fs_needed, profile.fs_bytes))
    return report


# ---------------------------------------------------------------- ports

def find_ports(profiles=None, comports=None):
    """Serial ports whose USB VID:PID matches a profile: list of (device, profile name)."""
    if profiles is None:
        profiles = all_profiles()
    if comports is None:
        from serial.tools import list_ports
        comports = list_ports.comports()
    found = []
    for port in comports:
        if port.vid is None:
            continue
        for p in profiles.values():
            if (port.vid, port.pid) in p.usb_ids:
                found.append((port.device, p.name))
    return found


def auto_port(profile: BoardProfile, comports=None) -> str:
    """The one serial port that looks like ``profile``'s board, or a DeviceError."""
    matches = [dev for dev, name in find_ports({profile.name: profile}, comports)]
    if not matches:
        ids = ", ".join("%04X:%04X" % p for p in profile.usb_ids) or "none"
        raise DeviceError("no %s found on USB (looked for VID:PID %s); plug it in or give --port"
                          % (profile.name, ids))
    if len(matches) > 1:
        raise DeviceError("several %s boards found (%s); choose one with --port"
                          % (profile.name, ", ".join(matches)))
    return matches[0]


# ---------------------------------------------------------------- table

def _kb(n: int) -> str:
    if n >= 1 << 20:
        return "%g MB" % round(n / (1 << 20), 1)
    return "%g KB" % round(n / 1024, 1)


def table(profiles) -> str:
    """The profiles as a Markdown table (the README embeds it)."""
    head = ["board", "MCU", "clock", "RAM", "heap", "flash", "files", "float",
            "MicroPython", "I/O", "flash method", "USB VID:PID"]
    rows = []
    for p in profiles.values():
        rows.append([
            p.name, p.mcu, ("%g MHz" % (p.clock_hz / 1e6)) if p.clock_hz else "host",
            _kb(p.ram_bytes), _kb(p.heap_bytes), _kb(p.flash_bytes) if p.flash_bytes else "-",
            _kb(p.fs_bytes), "%d-bit" % p.float_bits,
            p.micropython_min if p.micropython_min == p.micropython_max
            else "%s-%s" % (p.micropython_min, p.micropython_max),
            "%s @ %d" % (p.io, p.baud) if p.io == "uart" else p.io,
            p.flash_method, " ".join("%04X:%04X" % i for i in p.usb_ids) or "-"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)

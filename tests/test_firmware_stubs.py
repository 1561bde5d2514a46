"""Static check: firmware/ calls only what each profiled board's MicroPython has.

mypy runs over firmware/ once per board, with that board's MicroPython stubs
(micropython-microbit-stubs-en, micropython-esp32-stubs, micropython-rp2-stubs,
micropython-stm32-stubs) in place of CPython's standard library. Reported are
the errors that mean "this board lacks it": missing modules, attributes and
names, and wrong call signatures of board APIs -- not the stubs' type
precision. Two kinds of findings are legitimate and skipped by construction:

* lines inside ``@micropython.asm_thumb`` functions (their bodies are Thumb
  assembly: ``mov(r0, r1)`` names no Python objects);
* lines inside a ``try:`` whose handler catches ImportError / AttributeError /
  NameError / Exception: the firmware's guarded fallbacks (e.g. the microbit
  uart backend on an ESP32, CPython's perf_counter under unit tests);
* attributes of ``None``: the module-level placeholders the boot fills in
  (fwd's ``o = None`` until fwboot sets the board's writer), the firmware's
  own state, not a board API.

Which files: those an image ships (main.py's closure, deploy.firmware_closure).
The micro:bit V1 may run all of them; every other board runs only the plain
path, measured here: the files a plain-path board (tests/fwhost.py: main.py
under CPython) loads over a session that sends every request type. The rest
(fwxa, fwv*: run only where fwxa found fwk.bin) are checked against the
micro:bit's stubs only, and a shipped file that is neither run by that session
nor named as V1-only fails the test.

The stubs are installed on first use with pip into .venv/micropython-stubs/
(each board in its own folder: they define the same module names).
"""
import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from neurondyn import boards, deploy
from neurondyn.paths import firmware_dir

ROOT = Path(__file__).resolve().parent.parent
STUB_HOME = ROOT / ".venv" / "micropython-stubs"
# board profile -> (stub package pin, how its files are laid out)
STUBS = {
    "microbit-v1": ("micropython-microbit-stubs-en==0.0.1b2", "stdlib-only"),
    "esp32": ("micropython-esp32-stubs==1.27.0.post1", "port"),
    "rp2040-pico": ("micropython-rp2-stubs==1.27.0.post1", "port"),
    "pyboard": ("micropython-stm32-stubs==1.27.0.post1", "port"),
}
RELEVANT = {"attr-defined", "name-defined", "import-not-found", "import-untyped", "call-arg"}
GUARDS = {"ImportError", "AttributeError", "NameError", "Exception", "BaseException"}
# Findings reviewed by hand and accepted, with the reason. Matched by file and
# message (not line number), so anything new still fails the test.
REVIEWED = [
    ("fwcobs.py", 'has no attribute "perf_counter"',
     "CPython stand-in for time.ticks_us: fwboot imports it only where time.ticks_us "
     "is missing, i.e. under CPython unit tests, never on a board"),
]
V1_ONLY = re.compile(r"^fw(xa|xf|v\w*)\.py$")   # run only where fwxa finds fwk.bin (the V1)
LINE = re.compile(r"^(?P<file>[\w.]+\.py):(?P<line>\d+): error: (?P<msg>.*)  \[(?P<code>[\w-]+)\]$")


def install_stubs(board):
    spec, _ = STUBS[board]
    target = STUB_HOME / board
    marker = target / ".installed"
    if marker.is_file() and marker.read_text() == spec:
        return target
    shutil.rmtree(target, ignore_errors=True)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--pre", "--no-input",
                           "--target", str(target), spec], capture_output=True, timeout=600)
    assert done.returncode == 0, "pip could not install %s: %s" % (spec, done.stderr.decode()[-500:])
    marker.write_text(spec)
    return target


# Modules mypy itself needs to type-check anything; they stay importable in
# the micro:bit hybrid typeshed whether or not the board has them.
TYPING_CORE_MINIMAL = {"builtins", "typing", "typing_extensions", "_typeshed", "types", "abc",
                       "collections", "_collections_abc", "mypy_extensions", "enum",
                       "contextlib", "dataclasses", "_ast", "ast", "sys", "importlib", "os",
                       "posixpath", "genericpath", "io", "_io", "codecs", "_codecs", "re",
                       "numbers", "functools", "itertools", "operator", "_operator",
                       "__future__", "warnings", "weakref", "_weakref", "_weakrefset",
                       "_sitebuiltins", "string", "pathlib", "subprocess", "decimal",
                       "_decimal", "fractions", "_thread", "threading", "types"}


def typeshed_for(board, stubs, work):
    """(custom typeshed dir, MYPYPATH) for mypy."""
    _, layout = STUBS[board]
    if layout == "port":
        return stubs, stubs
    # The micro:bit stubs are made for pyright: an old typeshed subset that
    # crashes mypy. Build a hybrid: mypy's own typeshed for the typing
    # machinery, every micro:bit stub module on top of it (so microbit, time,
    # gc, os, ... are the board's), and every other stdlib module *removed*
    # from VERSIONS so that importing something the board lacks is an error.
    import mypy
    mine = Path(mypy.__file__).parent / "typeshed" / "stdlib"
    ts = work / "typeshed"
    shutil.copytree(mine, ts / "stdlib")
    board_names = set()
    for p in (stubs / "stdlib").iterdir():
        name = p.name[:-4] if p.suffix == ".pyi" else p.name
        if p.name in ("VERSIONS", "__pycache__") or name in ("builtins", "typing",
                                                             "typing_extensions", "_typeshed",
                                                             "types", "abc", "collections"):
            board_names.add(name)
            continue
        board_names.add(name)
        dst = ts / "stdlib" / p.name
        if p.is_dir():
            shutil.rmtree(ts / "stdlib" / p.name, ignore_errors=True)
            shutil.copytree(p, dst)
        else:
            for stale in (ts / "stdlib" / name, ts / "stdlib" / (name + ".pyi")):
                if stale.is_dir():
                    shutil.rmtree(stale)
                elif stale.exists():
                    stale.unlink()
            shutil.copy(p, dst)
    keep = board_names | TYPING_CORE_MINIMAL
    lines = []
    for line in (mine / "VERSIONS").read_text().splitlines():
        mod = line.split(":")[0].strip()
        if line.strip() and not line.startswith("#") and mod.split(".")[0] in keep:
            lines.append(line)
    listed = {l.split(":")[0].strip() for l in lines}
    lines += ["%s: 3.0-" % n for n in sorted(board_names - listed) if n != "VERSIONS"]
    (ts / "stdlib" / "VERSIONS").write_text("\n".join(lines) + "\n")
    shutil.copy(mine.parent / "stubs" / "mypy-extensions" / "mypy_extensions.pyi",
                ts / "stdlib" / "mypy_extensions.pyi")
    (ts / "stdlib" / "VERSIONS").open("a").write("mypy_extensions: 3.0-\n")
    return ts, None


def add_typing_module(typeshed, module):
    """Give a pyright-style stdlib a module mypy itself needs (collections.abc, ...).

    Only modules the board stubs lack are taken from mypy's own typeshed; they
    are typing machinery, not something the firmware could import on the board.
    """
    import mypy
    src_root = Path(mypy.__file__).parent / "typeshed" / "stdlib"
    rel = Path(*module.split("."))
    dst_root = Path(typeshed) / "stdlib"
    if (src_root / rel).is_dir():
        shutil.copytree(src_root / rel, dst_root / rel, dirs_exist_ok=True)
    elif (src_root / rel.with_suffix(".pyi")).is_file():
        (dst_root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src_root / rel.with_suffix(".pyi"), dst_root / rel.with_suffix(".pyi"))
    else:
        raise AssertionError("mypy wants %s, which its typeshed lacks too" % module)
    top = module.split(".")[0]
    versions = dst_root / "VERSIONS"
    if not re.search(r"^%s:" % re.escape(top), versions.read_text(), re.M):
        with open(versions, "a") as fh:
            fh.write("%s: 3.0-\n" % top)


def board_constants(sources, profile):
    """Module-level flags computed from fwcfg alone (e.g. ``U = IO == "uart"``).

    Their value is fixed per board, so mypy may treat them as constants
    (``--always-true/--always-false``): the branch for the other boards' I/O
    backend is then dead code, as it is on the board.
    """
    cfg = {"IO": profile.io, "BAUD": profile.baud, "BOARD": profile.name}
    flags = {}
    for text in sources.values():
        for node in ast.parse(text).body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name)):
                names = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
                if names and names <= set(cfg):
                    value = eval(compile(ast.Expression(node.value), "<fwcfg>", "eval"),
                                 {"__builtins__": {}}, dict(cfg))
                    if isinstance(value, bool):
                        flags[node.targets[0].id] = value
    return flags


def exempt_lines(source, asm_thumb=True):
    """Line numbers inside asm_thumb functions or guarded try bodies."""
    tree = ast.parse(source)
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                if isinstance(dec, ast.Attribute) and dec.attr == "asm_thumb":
                    # the body is assembly; the decorator itself exists where the
                    # profile says so (measured on the virtual micro:bit even
                    # though the micro:bit stubs omit it)
                    start = dec.lineno if asm_thumb else node.lineno
                    lines.update(range(start, node.end_lineno + 1))
        if isinstance(node, ast.Try):
            caught = set()
            for h in node.handlers:
                if h.type is None:
                    caught.add("BaseException")
                for t in (h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]) if h.type else []:
                    if isinstance(t, ast.Name):
                        caught.add(t.id)
            if caught & GUARDS and node.body:
                lines.update(range(node.body[0].lineno, node.body[-1].end_lineno + 1))
    return lines


def resolve_config_tests(source, profile):
    """Resolve ``if IO == "uart":``-style tests (fwcfg names against constants)
    for this board, in place (line numbers kept): the test becomes True/False
    and the branch the board never runs is emptied to ``pass`` (mypy would
    still resolve imports inside a merely unreachable branch)."""
    cfg = {"IO": profile.io, "BAUD": profile.baud, "BOARD": profile.name}
    lines = source.splitlines(keepends=True)
    edits, dead = [], []

    def value_of(test):
        names = {n.id for n in ast.walk(test) if isinstance(n, ast.Name)}
        if (not names or not names <= set(cfg) or test.lineno != test.end_lineno
                or any(isinstance(n, ast.Call) for n in ast.walk(test))):
            return None
        return bool(eval(compile(ast.Expression(test), "<fwcfg>", "eval"),
                         {"__builtins__": {}}, dict(cfg)))

    def kill_rest(orelse):
        # every later elif / else of a chain whose earlier branch is taken
        while orelse:
            if len(orelse) == 1 and isinstance(orelse[0], ast.If) and \
                    lines[orelse[0].lineno - 1].lstrip().startswith("elif"):
                dead.append(orelse[0].body)
                orelse = orelse[0].orelse
            else:
                dead.append(orelse)
                orelse = None

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.IfExp):
            v = value_of(node.test)
            if v is not None:
                edits.append((node.test.lineno, node.test.col_offset, node.test.end_col_offset, repr(v)))
        elif isinstance(node, ast.If):
            v = value_of(node.test)
            if v is None:
                continue
            edits.append((node.test.lineno, node.test.col_offset, node.test.end_col_offset, repr(v)))
            if v:
                kill_rest(node.orelse)
            else:
                dead.append(node.body)
    for row, c1, c2, text in sorted(edits, reverse=True):
        line = lines[row - 1]
        lines[row - 1] = line[:c1] + text + line[c2:]
    for body in dead:
        first, last = body[0].lineno, body[-1].end_lineno
        if lines[first - 1][:body[0].col_offset].strip():
            continue          # body on the header's line (``if x: y``): leave it
        lines[first - 1] = " " * body[0].col_offset + "pass\n"
        for row in range(first + 1, last + 1):
            lines[row - 1] = "\n"
    return "".join(lines)


def own_classes(sources):
    """Classes the firmware defines: their attributes are ours, not the board's."""
    return {n.name for text in sources.values() for n in ast.walk(ast.parse(text))
            if isinstance(n, ast.ClassDef)}


def check_firmware(board, sources, tmp_path, runs=None):
    """Board-lacks-it findings for ``sources`` (name -> text) under ``board``'s stubs,
    in the files ``runs`` names (default: all; the others only resolve imports)."""
    stubs = install_stubs(board)
    work = tmp_path / board
    fw = work / "fw"
    fw.mkdir(parents=True)
    profile = boards.get_profile(board)
    for name, text in sources.items():
        (fw / name).write_text(resolve_config_tests(text, profile))
    (fw / "fwcfg.py").write_text(deploy.fwcfg_source(profile))
    typeshed, path = typeshed_for(board, stubs, work)
    env = dict(os.environ)
    env.pop("MYPYPATH", None)
    if path:
        env["MYPYPATH"] = str(path)
    cmd = [sys.executable, "-m", "mypy", "--custom-typeshed-dir", str(typeshed),
           "--check-untyped-defs", "--show-error-codes", "--no-error-summary",
           "--follow-imports=silent", "--no-site-packages", "--cache-dir", str(work / "cache")]
    for name, value in sorted(board_constants(sources, profile).items()):
        cmd += ["--always-true" if value else "--always-false", name]
    cmd += sorted(sources)
    for _ in range(20):
        done = subprocess.run(cmd, cwd=fw, capture_output=True, timeout=600, env=env)
        out = done.stdout.decode() + done.stderr.decode()
        missing = re.search(r'Failed to find builtin module "([\w.]+)"', out)
        if not missing or path:
            break
        add_typing_module(typeshed, missing.group(1))
    assert done.returncode in (0, 1), "mypy failed to run for %s:\n%s" % (board, out[-2000:])
    exempt = {name: exempt_lines(text, profile.asm_thumb) for name, text in sources.items()}
    ours = own_classes(sources)
    findings = []
    for line in out.splitlines():
        m = LINE.match(line)
        if not m or m.group("file") not in sources or m.group("code") not in RELEVANT:
            continue
        if runs is not None and m.group("file") not in runs:
            continue
        if int(m.group("line")) in exempt[m.group("file")]:
            continue
        if any(m.group("file") == f and text in m.group("msg") for f, text, _ in REVIEWED):
            continue
        if any(m.group("msg").startswith('"%s" has no attribute' % c) for c in ours):
            continue      # attributes of the firmware's own classes (set by its loader)
        if m.group("msg").startswith('"None" has no attribute'):
            continue      # a module-level placeholder the boot fills in (fwd.o)
        findings.append(line)
    return findings


def shipped_sources():
    """The firmware files an image holds (main.py's closure; fwcfg is generated)."""
    required, optional = deploy.firmware_closure(firmware_dir())
    return {name: (firmware_dir() / name).read_text() for name in required + optional}


def plain_session():
    """Wire bytes of a session that sends every request type to a plain board."""
    import struct
    import numpy as np
    from neurondyn import ndm, protocol as P
    from neurondyn.model import Model
    m = Model(np.zeros(2), np.ones(2), [[1, -1], [0, 2]], [0.1, 0.2], [[1.0], [-0.5]], [0.3])
    blob = ndm.dumps(m.rounded_to_float32())
    crc = struct.pack("<I", ndm.model_hash(blob))
    rows = np.array([[1.0, 2.0], [0.5, 1.5]])
    reqs = [(P.HELLO, b"\x01"), (P.STATS, b""), (P.QSCALE, struct.pack("<4f", 0, 0.01, 0, 0.01)),
            (P.INFER, P.infer_payload(rows, P.FMT_F32)),
            (P.INFER, P.infer_payload(np.array([[100, 200]]), P.FMT_I16)),
            (P.PULL, struct.pack("<IH", 0, 20)),
            (P.TRAIN, bytes([0]) + struct.pack("<f", 0.5) + struct.pack("<3f", 1.0, 2.0, 0.5))]
    up = [(P.UP_BEGIN, struct.pack("<I", len(blob)) + crc), (P.UP_DATA, struct.pack("<I", 0) + blob)]
    reqs += up + [(P.UP_COMMIT, b"")]                                      # a good upload
    reqs += [up[0], (P.UP_DATA, struct.pack("<I", 0) + blob[:9]), (P.HELLO, b"\x01")]  # abandoned
    bad = bytearray(blob)
    bad[12] ^= 1
    reqs += [up[0], (P.UP_DATA, struct.pack("<I", 0) + bad), (P.UP_COMMIT, b"")]      # refused
    reqs += [(t, b"") for t in range(64) if t != P.REPL] + [(P.REPL, b"")]
    return blob, b"".join(P.build_frame(t, i & 255, p) for i, (t, p) in enumerate(reqs, 1))


@pytest.fixture(scope="module")
def plain_files(tmp_path_factory):
    """The firmware files a plain board runs (loads) over plain_session()."""
    import fwhost
    blob, wire = plain_session()
    folder = tmp_path_factory.mktemp("plain")
    old = os.getcwd()
    os.chdir(folder)
    try:
        fwhost.store(blob)
        pos, loaded = [0], set()

        def note():
            loaded.update(n for n, mod in sys.modules.items() if mod is not None)

        def rd(buf):
            assert pos[0] < len(wire), "the firmware did not leave its loop at the REPL request"
            note()
            buf[0] = wire[pos[0]]
            pos[0] += 1
            return 1
        fwhost.serve(rd, lambda b, n: note())
    finally:
        os.chdir(old)
    return {n + ".py" for n in loaded if (firmware_dir() / (n + ".py")).is_file()} | {"main.py"}


def test_the_plain_session_runs_what_plain_boards_ship(plain_files):
    shipped = set(shipped_sources())
    assert plain_files <= shipped
    assert {"fwd.py", "fwcobs.py", "fwplain.py", "fwsave.py", "fwr05.py"} <= plain_files
    # the rest is the V1's own code, never run where fwxa finds no fwk.bin
    assert all(V1_ONLY.match(n) for n in shipped - plain_files), sorted(shipped - plain_files)
    assert not any(V1_ONLY.match(n) for n in plain_files)


@pytest.mark.parametrize("board", sorted(STUBS))
def test_firmware_uses_only_what_the_board_has(board, tmp_path, plain_files):
    # every shipped file is checked on the micro:bit, the plain path's elsewhere
    runs = None if board == "microbit-v1" else plain_files
    findings = check_firmware(board, shipped_sources(), tmp_path, runs)
    assert findings == [], "firmware/ uses what %s lacks:\n%s" % (board, "\n".join(findings))


BAD = {
    "fwbad.py": (
        "import micropython\n"
        "import time\n"
        "def go():\n"
        "    micropython.kbd_intr(-1)\n"        # exists everywhere: fine
        "    time.ticks_us()\n"                 # MicroPython time: fine
        "    time.perf_counter()\n"             # CPython only: must be reported
        "    import nosuchmodule\n"             # must be reported
        "try:\n"
        "    import alsomissing\n"              # guarded: fine
        "except ImportError:\n"
        "    pass\n"
        "@micropython.asm_thumb\n"
        "def f(r0):\n"
        "    mov(r0, r1)\n"                     # assembly: fine
    )
}


@pytest.mark.parametrize("board", ["microbit-v1", "esp32"])
def test_checker_reports_what_a_board_lacks(board, tmp_path):
    findings = check_firmware(board, BAD, tmp_path)
    lines = sorted(int(f.split(":")[1]) for f in findings)
    assert lines == [6, 7], findings


def test_io_backend_flags_follow_the_profile():
    src = {"m.py": 'from fwcfg import IO\nU = IO == "uart"\nN = 3\nW = BOARD == "esp32"\n'}
    assert board_constants(src, boards.get_profile("microbit-v1")) == {"U": True, "W": False}
    assert board_constants(src, boards.get_profile("esp32")) == {"U": False, "W": True}


def test_config_tests_resolve_per_board():
    src = 'from fwcfg import IO\nif IO == "uart":\n    a = 1\nelif IO != "uart":\n    b = 2\n'
    mb = resolve_config_tests(src, boards.get_profile("microbit-v1"))
    esp = resolve_config_tests(src, boards.get_profile("esp32"))
    assert mb.splitlines() == ["from fwcfg import IO", "if True:", "    a = 1", "elif False:",
                               "    pass"]
    assert esp.splitlines() == ["from fwcfg import IO", "if False:", "    pass", "elif True:",
                                "    b = 2"]


@pytest.mark.parametrize("board, code, lacking", [
    ("microbit-v1", "import sys\nsys.stdin.buffer.read(1)\n", '"stdin"'),   # V1's sys has no stdin
    ("esp32", "from microbit import uart\nuart.init(115200)\n", '"microbit"'),
    ("microbit-v1", 'from fwcfg import IO\nU = IO == "uart"\nif not U:\n    import sys\n'
                    '    sys.stdin.buffer.read(1)\n', None),                 # dead on a uart board
    ("esp32", 'def f():\n    from fwcfg import IO\n    if IO == "uart":\n'
              '        from microbit import uart\n        uart.init(115200)\n', None),
    ("microbit-v1", "class M:\n    def f(self):\n        return self.T\n", None),   # our own class
])
def test_board_specific_apis_are_told_apart(board, code, lacking, tmp_path):
    findings = check_firmware(board, {"fwx.py": code}, tmp_path)
    if lacking is None:
        assert findings == []
    else:
        assert len(findings) == 1 and lacking in findings[0], findings

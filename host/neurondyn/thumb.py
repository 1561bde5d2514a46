"""A host-side assembler for the firmware's ``@micropython.asm_thumb`` kernels.

The kernels in ``firmware/asm/*.py`` are written in MicroPython's inline
assembler (Thumb-1, the Cortex-M0 subset). This module encodes the same
source the way MicroPython's own assembler does (``py/emitinlinethumb.c``:
the same instruction forms, narrow branches, the ``push {r1, r4-r7, lr}`` /
``pop {r1, r4-r7, pc}`` frame of every function), so its output can be
checked halfword for halfword against what the virtual micro:bit assembles
(tests/test_thumb.py).

Why the host assembles at all: on the micro:bit V1 (16 KB RAM) machine code
made on the board lives in the heap. ``link`` lays the same functions out
as a file for the board's flash file system (``fwkbin``), where they run in
place and cost no RAM. The file system stores a file in 128-byte chunks with
a marker byte in front and a link byte at the end, so the layout leaves those
bytes alone and joins the code across them with a branch.
"""
from __future__ import annotations

import ast

PROLOGUE = 0xB5F2       # push {r1, r4, r5, r6, r7, lr}
EPILOGUE = 0xBDF2       # pop {r1, r4, r5, r6, r7, pc}

CONDITIONS = {"eq": 0, "ne": 1, "cs": 2, "cc": 3, "mi": 4, "pl": 5, "vs": 6, "vc": 7,
              "hi": 8, "ls": 9, "ge": 10, "lt": 11, "gt": 12, "le": 13}
FORMAT_4 = {"and_": 0x4000, "eor": 0x4040, "lsl": 0x4080, "lsr": 0x40C0, "asr": 0x4100,
            "adc": 0x4140, "sbc": 0x4180, "ror": 0x41C0, "tst": 0x4200, "neg": 0x4240,
            "cmp": 0x4280, "cmn": 0x42C0, "orr": 0x4300, "mul": 0x4340, "bic": 0x4380,
            "mvn": 0x43C0}
FORMAT_3 = {"mov": 0x2000, "cmp": 0x2800, "add": 0x3000, "sub": 0x3800}
FORMAT_1 = {"lsl": 0x0000, "lsr": 0x0800, "asr": 0x1000}
FORMAT_2 = {"add": 0x1800, "sub": 0x1A00}
FORMAT_9_10 = {"ldr": (0x6800, 0x7C, 2), "ldrb": (0x7800, 0x1F, 0), "ldrh": (0x8800, 0x3E, 1),
               "str": (0x6000, 0x7C, 2), "strb": (0x7000, 0x1F, 0), "strh": (0x8000, 0x3E, 1)}
REGISTERS = dict({"r%d" % i: i for i in range(16)}, sp=13, lr=14, pc=15)


class AsmError(ValueError):
    """A kernel source the assembler (or MicroPython's) would refuse."""


class Instr:
    """One source statement: ``op`` and its parsed ``args``; ``size`` in bytes."""

    def __init__(self, op, args, line):
        self.op, self.args, self.line = op, args, line
        if op == "data":
            width = args[0]
            self.size = width * (len(args) - 1)
        elif op == "bl":
            self.size = 4
        elif op == "label":
            self.size = 0
        else:
            self.size = 2

    @property
    def label(self):
        """The label a branch names (or a label statement defines), else None."""
        if self.op == "label" or is_branch(self.op):
            return self.args[0]
        return None

    def __repr__(self):
        return "%s(%s)" % (self.op, ", ".join(map(str, self.args)))


def is_branch(op: str) -> bool:
    return op in ("b", "bl") or (len(op) == 3 and op[0] == "b" and op[1:] in CONDITIONS)


class Function:
    """An ``asm_thumb`` function: its name, argument count and statements."""

    def __init__(self, name, n_args, body):
        self.name, self.n_args, self.body = name, n_args, body

    def instructions(self):
        """The whole function as placed: prologue, body, epilogue."""
        return ([Instr("data", [2, PROLOGUE], 0)] + self.body
                + [Instr("data", [2, EPILOGUE], 0)])


def _arg(node):
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_arg(node.operand)
    if isinstance(node, ast.List) and len(node.elts) == 2:
        return ("addr", _arg(node.elts[0]), _arg(node.elts[1]))
    raise AsmError("line %d: unsupported argument %s" % (node.lineno, ast.dump(node)))


def parse(source: str) -> list:
    """The ``@micropython.asm_thumb`` functions of a module's source, in order."""
    funcs = []
    for node in ast.parse(source).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        if not any(ast.unparse(d) == "micropython.asm_thumb" for d in node.decorator_list):
            continue
        body = []
        for stmt in node.body:
            if (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
                    and isinstance(stmt.value.value, str)):
                continue  # a docstring
            if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
                    and isinstance(stmt.value.func, ast.Name)):
                raise AsmError("%s line %d: not an instruction" % (node.name, stmt.lineno))
            call = stmt.value
            body.append(Instr(call.func.id, [_arg(a) for a in call.args], stmt.lineno))
        funcs.append(Function(node.name, len(node.args.args), body))
    return funcs


def _reg(name, limit, ins):
    if name not in REGISTERS or REGISTERS[name] > limit:
        raise AsmError("line %d: %s expects a register r0..r%d, got %r" % (ins.line, ins.op, limit, name))
    return REGISTERS[name]


def _imm(value, mask, ins):
    if not isinstance(value, int) or value & ~mask:
        raise AsmError("line %d: %s: integer %r does not fit mask 0x%x" % (ins.line, ins.op, value, mask))
    return value


def encode(ins: Instr, here: int, labels: dict) -> list:
    """Halfwords of one instruction at byte address ``here`` (labels: name -> address)."""
    op, a = ins.op, ins.args
    if op == "data":
        width, values = a[0], a[1:]
        if width == 2:
            return [v & 0xFFFF for v in values]
        if width == 4:
            out = []
            for v in values:
                out += [v & 0xFFFF, (v >> 16) & 0xFFFF]
            return out
        raise AsmError("line %d: data width %r" % (ins.line, width))
    if op == "label":
        return []
    if is_branch(op):
        if a[0] not in labels:
            raise AsmError("line %d: label %r not defined" % (ins.line, a[0]))
        rel = labels[a[0]] - (here + 4)
        if op == "b":
            if not -2048 <= rel < 2048:
                raise AsmError("line %d: branch not in range" % ins.line)
            return [0xE000 | ((rel >> 1) & 0x7FF)]
        if op == "bl":
            if not -(1 << 22) <= rel < (1 << 22):
                raise AsmError("line %d: branch not in range" % ins.line)
            return [0xF000 | ((rel >> 12) & 0x7FF), 0xF800 | ((rel >> 1) & 0x7FF)]
        if not -256 <= rel < 256:
            raise AsmError("line %d: branch not in range" % ins.line)
        return [0xD000 | (CONDITIONS[op[1:]] << 8) | ((rel >> 1) & 0xFF)]
    if op == "bx" and len(a) == 1:
        return [0x4700 | (_reg(a[0], 15, ins) << 3)]
    if op == "nop" and not a:
        return [0xBF00]
    if len(a) == 2:
        if isinstance(a[1], str):            # second argument a register
            if op == "mov":
                d, s = _reg(a[0], 15, ins), _reg(a[1], 15, ins)
                return [0x4600 | ((d & 8) << 4) | (s << 3) | (d & 7)]
            if op in FORMAT_4:
                return [FORMAT_4[op] | (_reg(a[1], 7, ins) << 3) | _reg(a[0], 7, ins)]
        elif isinstance(a[1], tuple):        # ldr/str family: [base, offset]
            if op in FORMAT_9_10:
                code, mask, shift = FORMAT_9_10[op]
                base, off = a[1][1], a[1][2]
                i5 = _imm(off, mask, ins) >> shift
                return [code | (i5 << 6) | (_reg(base, 7, ins) << 3) | _reg(a[0], 7, ins)]
        elif op in FORMAT_3:
            return [FORMAT_3[op] | (_reg(a[0], 7, ins) << 8) | _imm(a[1], 0xFF, ins)]
    if len(a) == 3:
        if op in FORMAT_1:
            return [FORMAT_1[op] | (_imm(a[2], 0x1F, ins) << 6) | (_reg(a[1], 7, ins) << 3)
                    | _reg(a[0], 7, ins)]
        if op in FORMAT_2:
            d, s = _reg(a[0], 7, ins), _reg(a[1], 7, ins)
            if isinstance(a[2], str):
                return [FORMAT_2[op] | (_reg(a[2], 7, ins) << 6) | (s << 3) | d]
            return [FORMAT_2[op] | 0x0400 | (_imm(a[2], 7, ins) << 6) | (s << 3) | d]
    raise AsmError("line %d: unsupported Thumb instruction %r with %d arguments"
                   % (ins.line, op, len(a)))


def assemble(func: Function) -> list:
    """The function's halfwords, prologue and epilogue included, as
    MicroPython's assembler lays them out (contiguous, from address 0)."""
    placed, here = [], 0
    for ins in func.instructions():
        placed.append((here, ins))
        here += ins.size
    return _emit(placed, _labels(placed, func.name))


def body(func: Function) -> list:
    """The halfwords between prologue and epilogue (the function's own code)."""
    return assemble(func)[1:-1]


def as_data(source: str) -> str:
    """The module with every ``asm_thumb`` function's body replaced by its
    machine code, ``data(2, ...)``: the same halfwords from MicroPython's
    assembler, without the instruction, register and label names, which
    the micro:bit V1 would intern (and keep: ~10 bytes of heap a name)."""
    tree = ast.parse(source)
    lines = source.splitlines()
    out, last = [], 0
    funcs = {f.name: f for f in parse(source)}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in funcs:
            start = node.body[0].lineno - 1
            out += lines[last:start]
            words = body(funcs[node.name])
            out.append("    data(2, %s)" % ", ".join("%d" % w for w in words))
            last = node.end_lineno
    out += lines[last:]
    return "\n".join(out) + "\n"


def _labels(placed, where):
    labels = {}
    for addr, ins in placed:
        if ins.op == "label":
            if ins.args[0] in labels:
                raise AsmError("%s: label %r defined twice" % (where, ins.args[0]))
            labels[ins.args[0]] = addr
    return labels


def _emit(placed, labels):
    out = []
    for addr, ins in placed:
        out += encode(ins, addr, labels)
    return out


# ---------------------------------------------------------------- flash layout

CHUNK = 128             # micro:bit V1 file system: a chunk is marker + 126 data bytes + link
BLOB_NAME = "fwk.bin"   # the file the kernels live in (first chunk: 2 + len(name) header bytes)
MAGIC = b"NDK1"
HEADER = 10             # MAGIC, count u16, end u16, sum u16; then count x u16 entry offsets


def window(chunk: int, name: str = BLOB_NAME):
    """[start, end) byte offsets (from the file's first chunk) where code may lie in ``chunk``.

    Halfword aligned, inside the chunk's data bytes: the first chunk's data
    begin after the file header (end offset, name length, name); the marker
    (offset 0) and link (offset 127) bytes, and the odd data bytes next to
    them, are left alone.
    """
    base = chunk * CHUNK
    start = 3 + len(name) if chunk == 0 else 2
    start += start & 1
    return base + start, base + CHUNK - 2


def content_offset(addr: int, name: str = BLOB_NAME) -> int:
    """The file byte that lands at byte offset ``addr`` from the file's first chunk."""
    chunk, off = divmod(addr, CHUNK)
    if not 1 <= off <= CHUNK - 2:
        raise AsmError("offset %d is a chunk's marker or link byte" % addr)
    first = CHUNK - 2 - 2 - len(name)       # data bytes of the first chunk after its header
    if chunk == 0:
        if off < 3 + len(name):
            raise AsmError("offset %d is in the file header" % addr)
        return off - 3 - len(name)
    return first + (chunk - 1) * (CHUNK - 2) + off - 1


def _groups(instrs):
    """Split a function's instructions into pieces the layout must not break:
    ``mov(rX, pc)`` reads its own address, so it stays with the branch table
    that follows it (the entry tables of liba/libb); consecutive ``data``
    statements (a constant table, ktab) stay together."""
    out, i = [], 0
    while i < len(instrs):
        ins = instrs[i]
        group = [ins]
        if ins.op == "mov" and len(ins.args) == 2 and ins.args[1] == "pc":
            while i + 1 < len(instrs) and instrs[i + 1].op == "b":
                i += 1
                group.append(instrs[i])
        elif ins.op == "data":      # a table stays whole (with the frame around it)
            while i + 1 < len(instrs) and instrs[i + 1].op == "data":
                i += 1
                group.append(instrs[i])
        out.append(group)
        i += 1
    return out


def link(funcs, name: str = BLOB_NAME):
    """Lay functions out for the flash file system: (file bytes, {function: offset}).

    Offsets are from the file's first chunk (add the chunk's flash address,
    and 1 for Thumb, to call one). The file starts with a header: MAGIC, the
    number of functions (u16), the offset where the code ends (u16), the
    16-bit sum of every halfword in the code windows up to there (u16), then
    one u16 offset per function in ``funcs`` order, so the board can check
    the code (and that its chunks follow each other) before it calls it. Every function keeps MicroPython's frame (callable like an
    asm_thumb function); where the code reaches a chunk's end, a branch
    continues it in the next chunk.
    """
    names = [f.name for f in funcs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:   # entries and labels are keyed by name: a second one would be wrong
        raise AsmError("functions named more than once: %s" % ", ".join(twice))
    start, end = window(0, name)
    header = HEADER + 2 * len(funcs)
    here = start + header + (header & 1)
    chunk = 0
    placed, entries, seq = [], {}, 0
    for f in funcs:
        entries[f.name] = here
        for group in _groups(f.instructions()):
            size = sum(i.size for i in group)
            if here + size > end - 2:           # room for the jump to the next chunk
                seq += 1
                target = "_chunk%d" % seq
                placed.append((here, Instr("b", [target], 0), f.name))
                chunk += 1
                here, end = window(chunk, name)
                placed.append((here, Instr("label", [target], 0), f.name))
                if here + size > end - 2:
                    raise AsmError("%s: an instruction group larger than a chunk" % f.name)
            for ins in group:
                placed.append((here, ins, f.name))
                here += ins.size
    # labels are per function (as in MicroPython); the chunk jumps are global
    labels = {}
    for addr, ins, owner in placed:
        if ins.op == "label":
            key = ins.args[0] if ins.args[0].startswith("_chunk") else (owner, ins.args[0])
            if key in labels:
                raise AsmError("%s: label %r defined twice" % (owner, ins.args[0]))
            labels[key] = addr
    image = {}
    for addr, ins, owner in placed:
        if ins.op == "label":
            continue
        scope = {k[1]: v for k, v in labels.items() if isinstance(k, tuple) and k[0] == owner}
        scope.update({k: v for k, v in labels.items() if isinstance(k, str)})
        for j, half in enumerate(encode(ins, addr, scope)):
            image[addr + 2 * j] = half
    checksum = sum(image.values()) & 0xFFFF
    head = MAGIC + bytes([len(funcs) & 255, len(funcs) >> 8, here & 255, here >> 8,
                          checksum & 255, checksum >> 8])
    for f in funcs:
        head += bytes([entries[f.name] & 255, entries[f.name] >> 8])
    data = bytearray(content_offset(here - 1, name) + 1 if image else len(head))
    for i, byte in enumerate(head):
        data[content_offset(start + i, name)] = byte
    for addr, half in image.items():
        data[content_offset(addr, name)] = half & 255
        data[content_offset(addr + 1, name)] = half >> 8
    return bytes(data), entries


def code_halfwords(blob: bytes, name: str = BLOB_NAME):
    """{offset: halfword} over the code windows of a linked file, as the board
    walks them to check the sum (unused window space reads as 0)."""
    n = blob[4] | blob[5] << 8
    stop = blob[6] | blob[7] << 8
    start, hi = window(0, name)
    lo = start + HEADER + 2 * n
    out, chunk = {}, 0
    while lo < stop:
        for addr in range(lo, min(hi, stop), 2):
            i = content_offset(addr, name)
            out[addr] = (blob[i] | blob[i + 1] << 8) if i + 1 < len(blob) else 0
        chunk += 1
        lo, hi = window(chunk, name)
    return out

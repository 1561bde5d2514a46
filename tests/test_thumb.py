"""The host assembler (neurondyn.thumb) that makes fwk.bin, the micro:bit V1's Thumb kernels.

* encode(): every instruction form firmware/asm/*.py uses, against known
  halfwords: GOLDEN are MicroPython 1.9.2's own assembler output (the
  pre-assembled kernels firmware/fwk.py and fwkl.py of commit 853cd47, read
  back from a virtual micro:bit by that commit's neurondyn.fwasm), EXTRA the
  forms those kernels did not use, each checked once against the Capstone
  disassembler (ARMv6-M Thumb); whole functions of that commit's sources
  assemble to exactly what MicroPython made of them;
* errors: what MicroPython's assembler refuses (ranges, registers, labels);
* window / content_offset: the micro:bit file system's chunk geometry, checked
  against the real file system (micropython-microbit-fs lays fwk.bin into an
  image; the bytes land where content_offset says);
* link(): on the firmware's real kernels (neurondyn.kernels) and on a
  synthetic function that spans many chunks: no code on a chunk's marker or
  link byte, every chunk's code continued by a branch to the next chunk's
  window, every branch (b, b<cond>, bl) landing on the instruction after its
  label, the header (count, end, entries, sum) consistent with
  code_halfwords, and the board's own check (fwxa.F, transcribed) accepting
  the image and finding every entry's prologue where fwv1b computes it.
"""
import pytest

from neurondyn import kernels, thumb
from neurondyn.thumb import AsmError

HERE = 0x100        # where test instructions are placed

# (source, branch offset from the instruction + 4 or None, halfwords):
# MicroPython 1.9.2's assembler output (see the module docstring)
GOLDEN = [
    ('add(r3, 128)', None, (0x3380,)),
    ('add(r3, 10)', None, (0x330A,)),
    ('add(r3, 4)', None, (0x3304,)),
    ('add(r0, r6, 2)', None, (0x1CB0,)),
    ('add(r2, r1, r2)', None, (0x188A,)),
    ('add(r0, r0, r1)', None, (0x1840,)),
    ('add(r3, r3, r3)', None, (0x18DB,)),
    ('and_(r0, r2)', None, (0x4010,)),
    ('and_(r2, r7)', None, (0x403A,)),
    ('and_(r4, r3)', None, (0x401C,)),
    ('asr(r2, r4)', None, (0x4122,)),
    ('asr(r0, r0, 1)', None, (0x1040,)),
    ('b(L9)', 194, (0xE061,)),
    ('b(L8)', 6, (0xE003,)),
    ('b(L8)', 2, (0xE001,)),
    ('bcc(L3)', 2, (0xD301,)),
    ('bcc(L2)', 0, (0xD300,)),
    ('bcc(L2)', 6, (0xD303,)),
    ('bcs(L9)', 132, (0xD242,)),
    ('beq(L14)', 4, (0xD002,)),
    ('beq(L14)', -44, (0xD0EA,)),
    ('beq(L5)', 86, (0xD02B,)),
    ('bge(L9)', 100, (0xDA32,)),
    ('bge(L3)', 0, (0xDA00,)),
    ('bge(L13)', 10, (0xDA05,)),
    ('bgt(L2)', 0, (0xDC00,)),
    ('bhi(L9)', 114, (0xD839,)),
    ('bhi(L9)', 82, (0xD829,)),
    ('bhi(L9)', 20, (0xD80A,)),
    ('bic(r0, r3)', None, (0x4398,)),
    ('bl(L0)', 186, (0xF000, 0xF85D)),
    ('bl(L0)', 74, (0xF000, 0xF825)),
    ('bl(L0)', 62, (0xF000, 0xF81F)),
    ('ble(L9)', 108, (0xDD36,)),
    ('ble(L9)', 14, (0xDD07,)),
    ('bls(L6)', 8, (0xD904,)),
    ('bne(L14)', 50, (0xD119,)),
    ('bne(L14)', 44, (0xD116,)),
    ('bne(L14)', 38, (0xD113,)),
    ('bx(lr)', None, (0x4770,)),
    ('bx(r2)', None, (0x4710,)),
    ('bx(r4)', None, (0x4720,)),
    ('cmp(r0, 78)', None, (0x284E,)),
    ('cmp(r0, 68)', None, (0x2844,)),
    ('cmp(r0, 89)', None, (0x2859,)),
    ('cmp(r6, r1)', None, (0x428E,)),
    ('cmp(r0, r1)', None, (0x4288,)),
    ('cmp(r0, r2)', None, (0x4290,)),
    ('eor(r5, r2)', None, (0x4055,)),
    ('eor(r2, r4)', None, (0x4062,)),
    ('eor(r2, r3)', None, (0x405A,)),
    ('ldr(r0, [r7, 0])', None, (0x6838,)),
    ('ldr(r0, [r7, 4])', None, (0x6878,)),
    ('ldr(r3, [r7, 0])', None, (0x683B,)),
    ('ldrb(r0, [r1, 6])', None, (0x7988,)),
    ('ldrb(r0, [r1, 7])', None, (0x79C8,)),
    ('ldrb(r0, [r1, 8])', None, (0x7A08,)),
    ('lsl(r0, r0, 3)', None, (0x00C0,)),
    ('lsl(r1, r1, 25)', None, (0x0649,)),
    ('lsl(r0, r0, 24)', None, (0x0600,)),
    ('lsr(r0, r0, 24)', None, (0x0E00,)),
    ('lsr(r3, r3, 9)', None, (0x0A5B,)),
    ('lsr(r2, r2, 24)', None, (0x0E12,)),
    ('mov(r11, r1)', None, (0x468B,)),
    ('mov(r8, r0)', None, (0x4680,)),
    ('mov(r9, r0)', None, (0x4681,)),
    ('mov(r1, pc)', None, (0x4679,)),
    ('mov(r3, r8)', None, (0x4643,)),
    ('mov(r3, r9)', None, (0x464B,)),
    ('mov(r3, 2)', None, (0x2302,)),
    ('mov(r4, 0)', None, (0x2400,)),
    ('mov(r2, 0)', None, (0x2200,)),
    ('mov(r7, r0)', None, (0x4607,)),
    ('mov(r3, r7)', None, (0x463B,)),
    ('mov(r3, r1)', None, (0x460B,)),
    ('mul(r0, r4)', None, (0x4360,)),
    ('mul(r2, r3)', None, (0x435A,)),
    ('mul(r3, r4)', None, (0x4363,)),
    ('mvn(r2, r2)', None, (0x43D2,)),
    ('mvn(r0, r2)', None, (0x43D0,)),
    ('neg(r3, r3)', None, (0x425B,)),
    ('neg(r1, r1)', None, (0x4249,)),
    ('neg(r0, r0)', None, (0x4240,)),
    ('orr(r0, r1)', None, (0x4308,)),
    ('orr(r3, r2)', None, (0x4313,)),
    ('orr(r3, r1)', None, (0x430B,)),
    ('str(r1, [r7, 44])', None, (0x62F9,)),
    ('str(r2, [r7, 40])', None, (0x62BA,)),
    ('str(r3, [r7, 24])', None, (0x61BB,)),
    ('strb(r6, [r7, 0])', None, (0x703E,)),
    ('strb(r3, [r0, 0])', None, (0x7003,)),
    ('strb(r7, [r5, 0])', None, (0x702F,)),
    ('sub(r3, 1)', None, (0x3B01,)),
    ('sub(r2, 1)', None, (0x3A01,)),
    ('sub(r0, 1)', None, (0x3801,)),
    ('sub(r4, r1, r3)', None, (0x1ACC,)),
    ('sub(r2, r2, r0)', None, (0x1A12,)),
    ('sub(r1, r2, r1)', None, (0x1A51,)),
]

# forms the old kernels did not use (and edge values); checked against Capstone
EXTRA = [
    ('blt(L)', -8, (0xDBFC,)),
    ('bmi(L)', 10, (0xD405,)),
    ('bpl(L)', 254, (0xD57F,)),
    ('bvs(L)', -256, (0xD680,)),
    ('bvc(L)', 0, (0xD700,)),
    ('bls(L)', 6, (0xD903,)),
    ('bgt(L)', -2, (0xDCFF,)),
    ('ble(L)', 2, (0xDD01,)),
    ('bhi(L)', 100, (0xD832,)),
    ('bcs(L)', -4, (0xD2FE,)),
    ('bcc(L)', 12, (0xD306,)),
    ('bge(L)', 30, (0xDA0F,)),
    ('bne(L)', -100, (0xD1CE,)),
    ('beq(L)', 252, (0xD07E,)),
    ('b(L)', -2048, (0xE400,)),
    ('b(L)', 2046, (0xE3FF,)),
    ('b(L)', -4, (0xE7FE,)),
    ('bl(L)', -4, (0xF7FF, 0xFFFE)),
    ('bl(L)', -5000, (0xF7FE, 0xFE3C)),
    ('bl(L)', 4194302, (0xF3FF, 0xFFFF)),
    ('bl(L)', -4194304, (0xF400, 0xF800)),
    ('ldrh(r3, [r4, 54])', None, (0x8EE3,)),
    ('ldrh(r0, [r0, 0])', None, (0x8800,)),
    ('ldrh(r7, [r6, 62])', None, (0x8FF7,)),
    ('ldrh(r2, [r0, 10])', None, (0x8942,)),
    ('strh(r0, [r1, 4])', None, (0x8088,)),
    ('strh(r5, [r7, 62])', None, (0x87FD,)),
    ('ldr(r7, [r0, 124])', None, (0x6FC7,)),
    ('str(r0, [r7, 124])', None, (0x67F8,)),
    ('ldrb(r1, [r2, 31])', None, (0x7FD1,)),
    ('strb(r2, [r3, 31])', None, (0x77DA,)),
    ('lsl(r3, r4)', None, (0x40A3,)),
    ('lsr(r1, r2)', None, (0x40D1,)),
    ('asr(r0, r7)', None, (0x4138,)),
    ('ror(r5, r6)', None, (0x41F5,)),
    ('tst(r1, r2)', None, (0x4211,)),
    ('cmn(r3, r4)', None, (0x42E3,)),
    ('adc(r0, r1)', None, (0x4148,)),
    ('sbc(r6, r7)', None, (0x41BE,)),
    ('sub(r1, r6, 2)', None, (0x1EB1,)),
    ('sub(r4, r2, 7)', None, (0x1FD4,)),
    ('add(r7, r7, 7)', None, (0x1DFF,)),
    ('sub(r0, r1, r2)', None, (0x1A88,)),
    ('add(r7, r6, r5)', None, (0x1977,)),
    ('lsl(r7, r6, 31)', None, (0x07F7,)),
    ('lsr(r0, r1, 1)', None, (0x0848,)),
    ('asr(r2, r3, 31)', None, (0x17DA,)),
    ('mov(r7, 255)', None, (0x27FF,)),
    ('cmp(r7, 255)', None, (0x2FFF,)),
    ('sub(r7, 255)', None, (0x3FFF,)),
    ('add(r0, 0)', None, (0x3000,)),
    ('mov(r8, r9)', None, (0x46C8,)),
    ('mov(r15, r14)', None, (0x46F7,)),
    ('mov(r0, pc)', None, (0x4678,)),
    ('mov(sp, r7)', None, (0x46BD,)),
    ('mov(r12, r3)', None, (0x469C,)),
    ('bx(r3)', None, (0x4718,)),
    ('bx(lr)', None, (0x4770,)),
    ('nop()', None, (0xBF00,)),
    ('mul(r7, r0)', None, (0x4347,)),
    ('mvn(r1, r1)', None, (0x43C9,)),
    ('bic(r2, r3)', None, (0x439A,)),
    ('neg(r4, r5)', None, (0x426C,)),
    ('and_(r6, r7)', None, (0x403E,)),
    ('eor(r0, r7)', None, (0x4078,)),
    ('orr(r7, r0)', None, (0x4307,)),
    ('cmp(r1, r7)', None, (0x42B9,)),
]

# two whole functions of commit 853cd47's firmware/asm/fwcasm.py and the
# bodies MicroPython 1.9.2 assembled from them (fwkl.py of that commit)
DECODE_SRC = """
@micropython.asm_thumb
def decode(r0, r1):
    mov(r2, 0)
    mov(r3, 0)
    label(BLK)
    cmp(r2, r1)
    bge(END)
    add(r4, r0, r2)
    ldrb(r4, [r4, 0])
    add(r2, 1)
    cmp(r4, 0)
    beq(ERR)
    mov(r5, r4)
    sub(r5, 1)
    label(CP)
    cmp(r5, 0)
    beq(BEND)
    cmp(r2, r1)
    bge(ERR)
    add(r6, r0, r2)
    ldrb(r6, [r6, 0])
    cmp(r6, 0)
    beq(ERR)
    add(r7, r0, r3)
    strb(r6, [r7, 0])
    add(r2, 1)
    add(r3, 1)
    sub(r5, 1)
    b(CP)
    label(BEND)
    cmp(r4, 0xFF)
    beq(BLK)
    cmp(r2, r1)
    bge(END)
    mov(r6, 0)
    add(r7, r0, r3)
    strb(r6, [r7, 0])
    add(r3, 1)
    b(BLK)
    label(ERR)
    mov(r3, 0)
    label(END)
    mov(r0, r3)


@micropython.asm_thumb
def scan(r0, r1, r2, r3):
    mov(r4, 0xFF)
    and_(r4, r3)
    lsr(r3, r3, 8)
    add(r0, r0, r1)
    label(LP)
    cmp(r4, r3)
    bge(NF)
    add(r5, r2, r4)
    ldrb(r5, [r5, 0])
    add(r4, 1)
    cmp(r5, 0)
    beq(FND)
    strb(r5, [r0, 0])
    add(r0, 1)
    add(r1, 1)
    b(LP)
    label(FND)
    lsl(r4, r4, 12)
    orr(r1, r4)
    mov(r5, 1)
    lsl(r5, r5, 11)
    orr(r1, r5)
    label(NF)
    mov(r0, r1)
"""
BODIES = {
    "decode": [0x2200, 0x2300, 0x428A, 0xDA1E, 0x1884, 0x7824, 0x3201, 0x2C00, 0xD018, 0x4625,
               0x3D01, 0x2D00, 0xD00B, 0x428A, 0xDA12, 0x1886, 0x7836, 0x2E00, 0xD00E, 0x18C7,
               0x703E, 0x3201, 0x3301, 0x3D01, 0xE7F1, 0x2CFF, 0xD0E6, 0x428A, 0xDA05, 0x2600,
               0x18C7, 0x703E, 0x3301, 0xE7DF, 0x2300, 0x4618],
    "scan": [0x24FF, 0x401C, 0x0A1B, 0x1840, 0x429C, 0xDA0D, 0x1915, 0x782D, 0x3401, 0x2D00,
             0xD003, 0x7005, 0x3001, 0x3101, 0xE7F4, 0x0324, 0x4321, 0x2501, 0x02ED, 0x4329,
             0x4608],
}


def one(src):
    """The Instr of one source statement."""
    (f,) = thumb.parse("@micropython.asm_thumb\ndef f(r0):\n    %s\n" % src)
    (ins,) = f.body
    return ins


def encoded(src, rel):
    labels = {"L": HERE + 4 + rel} if rel is not None else {}
    ins = one(src.replace(src[src.index("(") + 1:src.index(")")], "L") if rel is not None else src)
    return tuple(thumb.encode(ins, HERE, labels))


@pytest.mark.parametrize("src, rel, halfwords", GOLDEN + EXTRA,
                         ids=["%s@%s" % (s, r) for s, r, _ in GOLDEN + EXTRA])
def test_encode_matches_known_halfwords(src, rel, halfwords):
    assert encoded(src, rel) == halfwords


def test_the_tables_cover_every_form_the_kernels_use():
    def form(ins):
        kinds = []
        for a in ins.args:
            if isinstance(a, tuple):
                kinds.append("mem")
            elif isinstance(a, int):
                kinds.append("imm")
            elif a in thumb.REGISTERS:
                kinds.append("hi" if thumb.REGISTERS[a] > 7 else "lo")
            else:
                kinds.append("label")
        return ins.op, tuple(kinds)
    known = {form(one(s if r is None else s.replace(s[s.index("(") + 1:s.index(")")], "L")))
             for s, r, _ in GOLDEN + EXTRA}
    used = {form(ins) for f in kernels.functions() for ins in f.body
            if ins.op not in ("label", "data")}
    assert used - known == set()


@pytest.mark.parametrize("name", sorted(BODIES))
def test_whole_functions_assemble_as_micropython_does(name):
    funcs = {f.name: f for f in thumb.parse(DECODE_SRC)}
    f = funcs[name]
    assert thumb.body(f) == BODIES[name]
    assert thumb.assemble(f) == [thumb.PROLOGUE] + BODIES[name] + [thumb.EPILOGUE]


def test_data_and_labels():
    (f,) = thumb.parse("@micropython.asm_thumb\ndef t(r0):\n    data(2, 0x1234, -1)\n"
                       "    label(A)\n    data(4, 0x89ABCDEF)\n    b(A)\n")
    # prologue, 2 halfwords, a 4-byte word little-endian, b(A) back 6 bytes, epilogue
    assert thumb.assemble(f) == [thumb.PROLOGUE, 0x1234, 0xFFFF, 0xCDEF, 0x89AB, 0xE7FC,
                                 thumb.EPILOGUE]


@pytest.mark.parametrize("src", [
    "mov(r0, 256)", "mov(r0, -1)", "add(r8, 1)", "cmp(r9, 3)", "ldr(r0, [r1, 3])",
    "ldr(r0, [r1, 128])", "ldrh(r0, [r1, 1])", "ldrh(r0, [r1, 64])", "ldrb(r0, [r1, 32])",
    "ldr(r0, [r8, 0])", "lsl(r0, r1, 32)", "add(r0, r1, 8)", "sub(r0, r1, r9)", "and_(r8, r0)",
    "mul(r0, 1)", "push(r0)", "bx(r0, r1)", "mov(r0)", "mov(r0, xx)",
])
def test_encode_refuses_what_micropython_refuses(src):
    with pytest.raises(AsmError):
        thumb.encode(one(src), HERE, {})


@pytest.mark.parametrize("src, rel", [
    ("b(L)", 2048), ("b(L)", -2050), ("beq(L)", 256), ("bne(L)", -258), ("bl(L)", 1 << 22),
])
def test_branches_out_of_range_are_refused(src, rel):
    with pytest.raises(AsmError, match="range"):
        thumb.encode(one(src), HERE, {"L": HERE + 4 + rel})


def test_label_errors():
    with pytest.raises(AsmError, match="not defined"):
        thumb.assemble(thumb.parse("@micropython.asm_thumb\ndef f():\n    b(NOWHERE)\n")[0])
    with pytest.raises(AsmError, match="twice"):
        thumb.assemble(thumb.parse("@micropython.asm_thumb\ndef f():\n    label(A)\n"
                                   "    label(A)\n")[0])
    with pytest.raises(AsmError, match="not an instruction"):
        thumb.parse("@micropython.asm_thumb\ndef f():\n    x = 1\n")


def test_parse_takes_only_asm_thumb_functions():
    src = ("import micropython\ndef plain():\n    return 1\n@micropython.asm_thumb\n"
           "def k(r0, r1):\n    '''doc'''\n    mov(r0, r1)\n")
    (f,) = thumb.parse(src)
    assert (f.name, f.n_args, [i.op for i in f.body]) == ("k", 2, ["mov"])


# ---------------------------------------------------------------- geometry

def test_window_geometry():
    name = thumb.BLOB_NAME
    assert thumb.window(0) == (10, 126)            # marker, end offset, name length, 7-byte name
    assert thumb.window(0, "ab") == (6, 126)       # after a 2-byte name: rounded up to even
    for c in range(1, 6):
        assert thumb.window(c) == (128 * c + 2, 128 * c + 126)
    for c in range(6):
        lo, hi = thumb.window(c, name)
        assert lo % 2 == 0 and hi % 2 == 0
        assert lo > 128 * c and hi < 128 * c + 127       # marker and link bytes outside
        assert (c or lo >= 3 + len(name))                # the file header outside


def test_content_offset_is_the_file_byte_order():
    name = thumb.BLOB_NAME
    assert thumb.content_offset(10) == 0
    assert thumb.content_offset(126) == 116
    assert thumb.content_offset(129) == 117
    assert thumb.content_offset(128 * 3 + 1) == 117 + 2 * 126
    # every data byte of chunks 0..4 in order: the file's bytes 0, 1, 2, ... without gaps
    data = [a for a in range(5 * 128) if a % 128 not in (0, 127) and a >= 10]
    assert [thumb.content_offset(a, name) for a in data] == list(range(len(data)))
    for bad in (0, 1, 9, 127, 128, 255, 256, 128 * 4 + 127):
        with pytest.raises(AsmError):
            thumb.content_offset(bad, name)


# ---------------------------------------------------------------- link

def groups(instrs):
    """Pieces the layout keeps whole (thumb.link's docstring): mov(rX, pc) with the
    branch table after it; consecutive data statements."""
    out, i = [], 0
    while i < len(instrs):
        g = [instrs[i]]
        if instrs[i].op == "mov" and instrs[i].args[1:] == ["pc"]:
            while i + 1 < len(instrs) and instrs[i + 1].op == "b":
                i += 1
                g.append(instrs[i])
        elif instrs[i].op == "data":
            while i + 1 < len(instrs) and instrs[i + 1].op == "data":
                i += 1
                g.append(instrs[i])
        out.append(g)
        i += 1
    return out


def sx(v, bits):
    return v - (1 << bits) if v & (1 << (bits - 1)) else v


def branch_target(half, addr):
    """(kind, target) of the branch halfword(s) at addr, or None."""
    h = half(addr)
    if h & 0xF800 == 0xE000:
        return "b", addr + 4 + 2 * sx(h & 0x7FF, 11)
    if h & 0xF000 == 0xD000 and (h >> 8) & 15 < 14:
        return "b" + [k for k, v in thumb.CONDITIONS.items() if v == (h >> 8) & 15][0], \
            addr + 4 + 2 * sx(h & 0xFF, 8)
    if h & 0xF800 == 0xF000 and half(addr + 2) & 0xF800 == 0xF800:
        return "bl", addr + 4 + sx(((h & 0x7FF) << 12) | ((half(addr + 2) & 0x7FF) << 1), 23)
    return None


def check_layout(funcs, blob, name=thumb.BLOB_NAME):
    """Walk every function as the CPU runs it through the linked file; return
    the set of code addresses used (instructions and chunk jumps)."""
    def half(addr):
        i = thumb.content_offset(addr, name)
        assert thumb.content_offset(addr + 1, name) == i + 1
        return blob[i] | blob[i + 1] << 8 if i + 1 < len(blob) else 0

    count = blob[4] | blob[5] << 8
    end = blob[6] | blob[7] << 8
    entries = [blob[10 + 2 * i] | blob[11 + 2 * i] << 8 for i in range(count)]
    assert blob[:4] == thumb.MAGIC and count == len(funcs)
    used, where = set(), {}
    here = entries[0]
    assert here == thumb.window(0, name)[0] + 10 + 2 * count     # right after the header
    for f, entry in zip(funcs, entries):
        assert entry == here, f.name                   # functions follow each other
        chunk = here // thumb.CHUNK
        placed, labels = [], {}
        for g in groups(f.instructions()):
            size = sum(i.size for i in g)
            lo, hi = thumb.window(chunk, name)
            if here + size > hi - 2:                   # continued in the next chunk
                nxt = thumb.window(chunk + 1, name)[0]
                assert branch_target(half, here) == ("b", nxt), (f.name, here)
                used.add(here)
                chunk += 1
                here = nxt
                lo, hi = thumb.window(chunk, name)
                assert here + size <= hi - 2
            for ins in g:
                assert lo <= here and here + ins.size <= hi, (f.name, ins)   # not on marker/link
                if ins.op == "label":
                    labels[ins.args[0]] = here
                placed.append((here, ins))
                used.update(range(here, here + ins.size, 2))
                here += ins.size
        assert half(entry) == thumb.PROLOGUE and half(here - 2) == thumb.EPILOGUE, f.name
        where[f.name] = placed
        for addr, ins in placed:
            if ins.op == "label":
                continue
            if thumb.is_branch(ins.op):
                assert branch_target(half, addr) == (ins.op, labels[ins.args[0]]), (f.name, ins)
            else:
                want = thumb.encode(ins, addr, {})
                assert [half(addr + 2 * j) for j in range(len(want))] == want, (f.name, ins)
    assert here == end
    return used, entries, where


def test_link_lays_out_the_real_kernels():
    funcs = kernels.functions()
    blob, entries = thumb.link(funcs)
    assert blob == kernels.blob()
    used, heads, _ = check_layout(funcs, blob)
    assert heads == [entries[f.name] for f in funcs]
    # the sum in the header is the board's sum over the code windows
    halves = thumb.code_halfwords(blob)
    assert (sum(halves.values()) & 0xFFFF) == blob[8] | blob[9] << 8
    # every window halfword is code, a chunk jump, or unused (0) before a jump
    assert set(halves) >= used
    assert all(v == 0 for a, v in halves.items() if a not in used)
    assert len(blob) <= 29 * 1024                     # fits the V1's file system


def long_function(n_chunks=6):
    """A function spanning n_chunks chunks: distinct instructions (mov rK, imm),
    branches each way across chunk windows, a bl, a jump table, a data table."""
    lines, k = [], 0
    total = n_chunks * 60
    for i in range(total):
        if i % 37 == 0:
            lines.append("label(L%d)" % i)
        lines.append("mov(r%d, %d)" % (k % 8, k % 256))
        k += 1
        if i % 23 == 5:
            j = (i * 7) % total
            lines.append("b(L%d)" % (j - j % 37))
        if i % 29 == 3 and i + 40 < total:
            lines.append("beq(L%d)" % ((i + 36) - (i + 36) % 37))
        if i % 31 == 30:
            lines.append("bl(L%d)" % ((i * 13) % total - (i * 13) % total % 37))
        if i == 100:
            lines += ["mov(r1, pc)", "b(L0)", "b(L37)", "b(L74)"]
        if i == 150:
            lines.append("data(2, %s)" % ", ".join(str(0x100 + t) for t in range(50)))
    return "@micropython.asm_thumb\ndef big(r0):\n" + "".join("    %s\n" % l for l in lines)


def test_link_continues_code_and_branches_across_chunks():
    small, after = thumb.parse("@micropython.asm_thumb\ndef tiny(r0):\n    mov(r0, 1)\n"
                               "@micropython.asm_thumb\ndef tail(r0):\n    mov(r0, 2)\n")
    big = thumb.parse(long_function())[0]
    funcs = [small, big, after]
    blob, entries = thumb.link(funcs)
    used, _, placed = check_layout(funcs, blob)
    assert len({a // 128 for a in used}) >= 7          # it spans chunks
    labels = {ins.args[0]: a for a, ins in placed["big"] if ins.op == "label"}
    crossing = {ins.op for a, ins in placed["big"]
                if thumb.is_branch(ins.op) and labels[ins.args[0]] // 128 != a // 128}
    assert {"b", "beq", "bl"} <= crossing               # branches resolved across windows
    assert entries["tail"] > entries["big"] + 6 * 128


@pytest.mark.parametrize("table", ["mov(r1, pc)\n    b(A)\n    b(B)\n    b(A)\n    b(B)",
                                   "data(2, 1, 2, 3)\n    data(4, 0x12345678, 5)"])
def test_link_keeps_jump_and_data_tables_whole(table):
    """At every position relative to a chunk's end: mov(rX, pc) reads its own
    address, so the branch table after it must follow it in the same window;
    a data table is read as one block (check_layout walks them as one piece)."""
    moved = 0
    for pad in range(70):
        src = ("@micropython.asm_thumb\ndef t(r0):\n    label(A)\n" + "    mov(r2, 1)\n" * pad
               + "    %s\n    label(B)\n    mov(r0, 0)\n" % table)
        funcs = thumb.parse(src)
        blob, _ = thumb.link(funcs)
        _, _, placed = check_layout(funcs, blob)
        first = [a for a, ins in placed["t"][1:] if ins.op in ("data", "mov") and ins.args[-1] != 1][0]
        moved += first % 128 == 2          # the whole table went to the next chunk
    assert moved >= 1


def test_link_refuses_a_group_larger_than_a_chunk():
    table = "@micropython.asm_thumb\ndef t(r0):\n    data(2, %s)\n" % ", ".join(["1"] * 70)
    with pytest.raises(AsmError, match="larger than a chunk"):
        thumb.link(thumb.parse(table))


def test_code_halfwords_reads_the_windows_up_to_the_end():
    funcs = kernels.functions()
    blob = kernels.blob()
    halves = thumb.code_halfwords(blob)
    end = blob[6] | blob[7] << 8
    assert min(halves) == thumb.window(0)[0] + 10 + 2 * len(funcs)
    assert max(halves) == end - 2
    for a in halves:
        c = a // 128
        lo, hi = thumb.window(c)
        assert lo <= a < hi and (c == 0 and a >= min(halves) or c > 0)


# ------------------------------------------------ the image on the file system

def board_find(mem, a):
    """fwxa.F, transcribed: the address of fwk.bin's first chunk from a on, or 0."""
    h = lambda x: mem[x] | mem[x + 1] << 8
    while True:
        if a >= 1 << 18:
            return 0
        if mem[a] == 0xFE and h(a + 2) == 0x6607 and h(a + 10) == 0x444E and h(a + 12) == 0x314B:
            break
        a += 128
    end, r2, total, r6 = h(a + 16), h(a + 14) * 2 + 20, 0, 0
    while r6 + r2 < end:
        r3 = r6 + r2
        if r6 and mem[a + r6] + 1 != mem[a + r6 - 1]:
            return 0                       # the chunks do not follow each other
        stop = min(r6 + 126, end)
        while r3 < stop:
            total += h(a + r3)
            r3 += 2
        r6 += 128
        r2 = 2
    return a if total & 0xFFFF == h(a + 18) else 0


def flash_of(files, tmp_path):
    from intelhex import IntelHex
    from neurondyn.vboard.microbit import build_microbit_hex
    path = build_microbit_hex(files, tmp_path / "img.hex")
    ih = IntelHex(str(path))
    mem = bytearray(1 << 18)
    for start, stop in ih.segments():
        if stop <= len(mem):
            mem[start:stop] = ih.tobinstr(start, stop - 1)
    return mem


def test_the_board_finds_and_checks_fwk_bin_in_a_real_image(tmp_path):
    blob = kernels.blob()
    funcs = kernels.functions()
    files = {thumb.BLOB_NAME: blob, "main.py": b"x = 1\n", "other.bin": bytes(3000)}
    mem = flash_of(files, tmp_path)
    a = board_find(mem, 0x30000)
    assert a
    # every byte of the file where content_offset puts it
    n = 0
    for addr in range(len(blob) * 2):
        try:
            i = thumb.content_offset(addr)
        except AsmError:
            continue
        if i < len(blob):
            assert mem[a + addr] == blob[i], addr
            n += 1
    assert n == len(blob)
    # fwv1b's entries: E[i] = a + P(a + 20 + 2 i) + 1 (Thumb bit), each at a prologue
    P = lambda x: mem[x] | mem[x + 1] << 8
    E = tuple(a + P(a + 20 + 2 * i) + 1 for i in range(P(a + 14)))
    assert len(E) == len(funcs) == len(kernels.ENTRIES)
    assert all(P(e - 1) == thumb.PROLOGUE for e in E)
    # a damaged byte of code, or the chunks out of order, is refused
    bad = bytearray(mem)
    code = next(iter(thumb.code_halfwords(blob)))
    bad[a + code] ^= 1
    assert board_find(bad, 0x30000) == 0
    bad = bytearray(mem)
    bad[a + 128] = (bad[a + 128] + 5) & 255
    assert board_find(bad, 0x30000) == 0


def test_link_refuses_two_functions_of_the_same_name():
    """The header's entries and the labels are keyed by function name: a second
    function of that name would get the first one's (or the last one's) entry."""
    first, other, second = thumb.parse(
        "@micropython.asm_thumb\ndef f(r0):\n    mov(r0, 1)\n"
        "@micropython.asm_thumb\ndef g(r0):\n    mov(r0, 2)\n"
        "@micropython.asm_thumb\ndef f(r0):\n    mov(r0, 3)\n    mov(r0, 4)\n")
    with pytest.raises(AsmError, match="more than once: f"):
        thumb.link([first, other, second])
    blob, entries = thumb.link([first, other])      # distinct names still link
    assert set(entries) == {"f", "g"}


# ------------------------------------------------ fwxa as the micro:bit gets it

def _asm_defs(source):
    """{name: ast.FunctionDef} of the asm_thumb functions of a source."""
    import ast
    return {n.name: n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)
            and any(ast.unparse(d) == "micropython.asm_thumb" for d in n.decorator_list)}


def _code_names(source):
    """Every identifier of a source outside comments and strings (what the board interns)."""
    import io
    import tokenize
    return {t.string for t in tokenize.generate_tokens(io.StringIO(source).readline)
            if t.type == tokenize.NAME}


def test_as_data_of_fwxa_keeps_the_halfwords_and_drops_the_names():
    from neurondyn import boards, deploy
    from neurondyn.paths import firmware_dir
    source = (firmware_dir() / "fwxa.py").read_text()
    before = thumb.parse(source)
    assert [f.name for f in before] == ["X", "P", "F"]
    spelled = {i.op for f in before for i in f.body if i.op != "data"}
    spelled |= {i.args[0] for f in before for i in f.body if i.label}
    assert {"ldrh", "cmp", "bcs", "label", "LP", "BAD", "OUT"} <= spelled
    for made in (thumb.as_data(source),
                 # and the file the micro:bit image ships (compacted, names shortened)
                 deploy.firmware_files(boards.get_profile("microbit-v1"))["fwxa.py"].decode()):
        after = thumb.parse(made)
        assert [(f.name, f.n_args) for f in after] == [(f.name, f.n_args) for f in before]
        for old, new in zip(before, after):
            assert thumb.body(new) == thumb.body(old), old.name
            assert [i.op for i in new.body] == ["data"] * len(new.body)
            assert all(i.args[0] == 2 for i in new.body)
        defs = _asm_defs(made)
        body_names = {n for f in defs.values() for st in f.body for n in _code_names(
            __import__("ast").unparse(st))}
        assert body_names == {"data"}
        assert not (_code_names(made) & spelled), _code_names(made) & spelled
        assert "import micropython" in made

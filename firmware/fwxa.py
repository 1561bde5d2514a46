# The bridge to the Thumb kernels in fwk.bin (neurondyn.thumb lays them out
# in the micro:bit's flash file system, where they run in place: machine
# code kept in flash costs no heap). X(a, b, c, e) calls the kernel at
# address e (Thumb bit set) with a, b, c and returns what it returns; P(a)
# reads the halfword at a; F(a) finds fwk.bin from address a on and checks
# it (its chunks follow each other, its code sums to the header's sum):
# the address of its first chunk, or 0. Buffers arrive as their data
# address (bytearray/array, not bytes), ints as machine words. A
# SyntaxError on builds without asm_thumb. The micro:bit gets each body as
# its machine code (neurondyn.thumb.as_data: data(2, ...), the same
# halfwords): every name compiled there stays in its heap for good.
import micropython


@micropython.asm_thumb
def X(r0, r1, r2, r3):
    data(2, 0x4798)  # blx r3


@micropython.asm_thumb
def P(r0):
    ldrh(r0, [r0, 0])


@micropython.asm_thumb
def F(r0):
    mov(r1, 1)
    lsl(r1, r1, 18)
    label(LP)
    cmp(r0, r1)
    bcs(BAD)
    ldrb(r2, [r0, 0])
    cmp(r2, 0xFE)
    bne(NX)
    ldrh(r2, [r0, 2])
    mov(r3, 0x66)
    lsl(r3, r3, 8)
    add(r3, 0x07)
    cmp(r2, r3)
    bne(NX)
    ldrh(r2, [r0, 10])
    mov(r3, 0x44)
    lsl(r3, r3, 8)
    add(r3, 0x4E)
    cmp(r2, r3)
    bne(NX)
    ldrh(r2, [r0, 12])
    mov(r3, 0x31)
    lsl(r3, r3, 8)
    add(r3, 0x4B)
    cmp(r2, r3)
    beq(FND)
    label(NX)
    add(r0, 128)
    b(LP)
    label(FND)
    ldrh(r4, [r0, 16])
    ldrh(r2, [r0, 14])
    lsl(r2, r2, 1)
    add(r2, 20)
    mov(r5, 0)
    mov(r6, 0)
    label(CH)
    add(r3, r6, r2)
    cmp(r3, r4)
    bge(DONE)
    cmp(r6, 0)
    beq(W)
    add(r7, r0, r6)
    ldrb(r1, [r7, 0])
    add(r1, 1)
    sub(r7, 1)
    ldrb(r7, [r7, 0])
    cmp(r1, r7)
    bne(BAD)
    label(W)
    mov(r7, r6)
    add(r7, 126)
    cmp(r7, r4)
    ble(SL)
    mov(r7, r4)
    label(SL)
    cmp(r3, r7)
    bge(SN)
    add(r1, r0, r3)
    ldrh(r1, [r1, 0])
    add(r5, r5, r1)
    add(r3, 2)
    b(SL)
    label(SN)
    add(r6, 128)
    mov(r2, 2)
    b(CH)
    label(DONE)
    lsl(r5, r5, 16)
    lsr(r5, r5, 16)
    ldrh(r1, [r0, 18])
    cmp(r5, r1)
    beq(OUT)
    label(BAD)
    mov(r0, 0)
    label(OUT)

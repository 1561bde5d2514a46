# One-shot setup of fwdisp.run(), first part: the kernels (fwkl's Thumb
# ones where the build has asm_thumb, else fwcobs' plain Python: the same
# bytes), the clock, the board's name and whether feeling (fwtrain) ships.
# Run from its file and dropped after (see fwdisp.lazy); then fwline.py
# (the line) and fwwire.py (the buffers). Three files, not one: the V1
# reads each in one block and has no block for the whole.


def setup(me, rd, wr):
    try:
        from fwkl import crc16, decode, encode, scan, copy
        F = 2
    except Exception:
        from fwcobs import crc16, decode, encode, scan, copy
        F = 0
    try:
        from time import ticks_us, ticks_diff
        from gc import mem_free
        import micropython as M
        M.kbd_intr(-1)
    except ImportError:  # CPython unit tests
        from fwcobs import ticks_us, ticks_diff, mem_free
        M = None
    try:
        from fwcfg import IO, BOARD
    except ImportError:
        IO, BOARD = "stdin", "cpython"
    try:  # feeling (fwtrain) where the image ships it, imported when used
        open('fwtrain.py').close()
        T = 1
    except OSError:
        try:
            __import__('fwtrain')
            T = 1
        except ImportError:
            T = 0
    return (crc16, decode, encode, scan, copy, F, ticks_us, ticks_diff, mem_free,
            M, IO, BOARD, T)

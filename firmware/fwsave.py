# The model store after a commit: the .ndm buf goes into the slot NOT
# holding the newest whole model (me.K, from the boot's load or the last
# save) with the next gen (the layout of fwslot), and is read back; a power
# cut tears only that slot, so a restart finds the old model or the new
# one. OSError if it does not read back whole. No kernel runs here: on the
# V1 a file write may move fwk.bin, and the V1 restarts after a save.
# Run from this file (fwd.lazy).


def do(me, buf):
    i = 1 - me.K
    g = (me.G + 1) & 255
    n = len(buf)
    f = open("ndm_" + "ab"[i], "wb")
    f.write(bytes([g, n & 255, n >> 8]))
    f.write(buf)
    f.close()
    f = open("ndm_" + "ab"[i], "rb")
    h = f.read(3)
    c = bytearray(n)
    f.readinto(c)
    k = f.read(1)
    f.close()
    if h[0] != g or c != buf or k:
        raise OSError("model slot did not verify")
    me.K, me.G = i, g

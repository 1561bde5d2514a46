# Boot entry. First of all no Ctrl-C: a host frame arriving during boot may
# hold 0x03 (one that came even earlier is raised here, inside the try: try
# again). Then the serving loop (fwd), and on the micro:bit V1 the bridge
# to its Thumb kernels in fwk.bin (fwxa): the V1 compiles every file it
# runs, which takes a few KB of heap in few pieces, so the largest goes
# first, into the empty heap. The boot (the kernels, the line, the
# buffers, the last good model) is the V1's below, fwgo's elsewhere
# (fwd.run); then fwd.run serves until the host asks for the REPL.
while True:
    try:
        import micropython
        micropython.kbd_intr(-1)
        break
    except KeyboardInterrupt:
        pass
import fwd
r = None
try:  # the micro:bit V1: its Thumb kernels in fwk.bin, the bridge to them
    open('fwk.bin').close()
    import fwxa
    r = 1
except OSError:
    pass
if r:  # its boot, from here: fwv1f, then fwv1 with fwv1m, both compiled
    # before fwv1 allocates the buffers (no compile fits beside them), the
    # heap collected between steps from this shallowest frame (the GC is
    # conservative: stale words deeper on the stack would keep garbage)
    fwd.A = 2  # fwd.lazy collects after each compile
    L, C = fwd.lazy, __import__('gc').collect
    try:  # upload mode (the flag file ndm_u, left by UP_BEGIN): fwv, no model
        __import__('os').remove('ndm_u')
        r = __import__('fwv')
    except OSError:
        r = None
    C()
    m = r or L('fwv1m')  # compiled first: the largest
    C()
    L('fwv1f')(fwd)
    C()
    r = L('fwv1')(fwd, m, r)
    L = m = None
    C()  # fwd.run's frame, there for good, goes low
if 0:  # never run: names the files fwd.lazy() runs, for the image builder
    import fwgo, fwv, fwq, fwv1f, fwv1, fwv1m, fwkern, fwboot, fwbufs, fwload, fwslot, fwsave, fwrst, fwr10, fwupcp, fwr05
fwd.run(r=r)

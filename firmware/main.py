# Boot entry. First of all no Ctrl-C: a host frame arriving during boot may
# hold 0x03 (one that came even earlier is raised here, inside the try: try
# again). Then the resident modules, first thing (the V1 compiles sources on
# import and fails on a fragmented heap): the bridge to the Thumb kernels in
# fwk.bin (a SyntaxError where asm_thumb is missing) and the serving loop
# (fwd; it imports fwq, or fwv in the V1's upload mode, itself).
# fwd.run() sets up (fwv1 on the V1; else fwkern, fwboot, fwbufs), loads
# the last good model (fwv1m; fwload) and serves until the host asks for
# the REPL.
while True:
    try:
        import micropython
        micropython.kbd_intr(-1)
        break
    except KeyboardInterrupt:
        pass
try:
    import fwxa
except (ImportError, SyntaxError):
    pass
import fwd
if 0:  # never run: names the files fwd.lazy() runs, for the image builder
    import fwv, fwq, fwv1, fwv1b, fwv1m, fwkern, fwboot, fwbufs, fwload, fwslot, fwsave, fwrst, fwr10, fwupcp, fwr05
fwd.run()

# Boot entry. First of all no Ctrl-C: a host frame arriving during boot may
# hold 0x03 (one that came even earlier is raised here, inside the try: try
# again). Then the resident modules, all before the model is loaded (the V1
# compiles sources on import and fails on a fragmented heap), largest
# compile first: the model and link kernels, the serving loop, INFER,
# frames in. fwdisp.run() sets up (fwboot, fwline, fwwire), imports the
# model module (fwmodel, after the setup) and serves until the host asks
# for the REPL.
while True:
    try:
        import micropython
        micropython.kbd_intr(-1)
        break
    except KeyboardInterrupt:
        pass
try:
    import fwk
    import fwkl
except ImportError:
    import fwcobs
except SyntaxError:  # a build without asm_thumb
    import fwcobs
import fwdisp
import fwinfer
import fwlink
if 0:  # never run: names the files fwdisp.lazy() runs, for the image builder
    import fwboot, fwline, fwwire, fwctl, fwup, fwstore, fwinst, fwmload
fwdisp.run()

# Boot entry: import every firmware module, innermost first and all before the
# model is loaded (the V1 compiles sources on import; later imports fail on a
# fragmented heap), then serve until the host asks for the REPL (fwio.leave
# turns Ctrl-C back on).
# First of all no Ctrl-C: a host frame arriving during boot may hold 0x03
# (one that came even earlier is raised here, inside the try: try again).
while True:
    try:
        import micropython
        micropython.kbd_intr(-1)
        break
    except KeyboardInterrupt:
        pass
import gc
import fwio
import fwproto
import fwmodel
import fwstore
import fwinfer
import fwcmd
import fwdisp
gc.collect()
fwdisp.run()

# Boot entry: import every firmware module, innermost first and all before the
# model is loaded (the V1 compiles sources on import; later imports fail on a
# fragmented heap), then serve until the host asks for the REPL.
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

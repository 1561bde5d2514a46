"""The whole firmware on the virtual micro:bit V1 (MicroPython 1.9.2, ~9 KB heap).

* the link kernels the board runs (firmware/fwkl.py, pre-assembled) are what
  MicroPython 1.9.2's own assembler makes of firmware/asm/fwcasm.py;
* the resident firmware (main.py's imports, as deployed: minified, with the
  board's fwcfg.py) compiles and imports on the V1 in main.py's order and
  leaves at least the heap boards/microbit-v1.heap.json records, so code
  that grows the resident part cannot pass unnoticed.

Serving the 30 -> 12 model end to end on the V1 (stream parity, bad rows,
second upload) needs more heap than the firmware leaves today (figures:
boards/microbit-v1.heap.json); the frame layer alone is tested end to end
there in test_link_e2e.py.
"""
import json
import re
import time

from neurondyn import boards, deploy, fwasm
from neurondyn.paths import firmware_dir
from neurondyn.vboard import MicrobitVM

HEAP = json.loads((firmware_dir().parent / "boards" / "microbit-v1.heap.json").read_text())


def test_link_kernels_match_their_sources(tmp_path):
    fwasm.generate(tmp_path)
    assert (tmp_path / fwasm.LINK_TARGET).read_text() == \
        (firmware_dir() / fwasm.LINK_TARGET).read_text(), \
        "firmware/fwkl.py is stale: run `python -m neurondyn.fwasm`"


def measuring_main(source: str) -> str:
    """main.py that prints the free heap at boot and after its imports instead
    of setting up and serving (two prints only: every line of main.py costs
    heap too)."""
    body = [l for l in source.splitlines()
            if not l.startswith(("fwdisp.run(", "S = fwlink.boot("))]
    return "\n".join(["import gc", "gc.collect()", "print('heap', 'boot', gc.mem_free())"]
                     + body + ["gc.collect()", "print('heap', 'end', gc.mem_free())"]) + "\n"


def test_resident_firmware_imports_and_leaves_its_heap_on_v1():
    files = deploy.firmware_files(boards.get_profile("microbit-v1"), optional=False)
    files["main.py"] = measuring_main(files["main.py"].decode()).encode()
    with MicrobitVM(files=files) as vm:
        deadline = time.monotonic() + 60
        while "heap end" not in vm.console_log() and "Error" not in vm.console_log():
            assert time.monotonic() < deadline, vm.console_log()
            time.sleep(0.5)
        log = vm.console_log()
    assert "Traceback" not in log, log
    heap = {m: int(v) for m, v in re.findall(r"heap (\w+) (\d+)", log)}
    assert heap["end"] >= HEAP["heap_free_after_resident_imports"] - 256, heap

"""The whole firmware on the virtual micro:bit V1 (MicroPython 1.9.2, ~9 KB heap).

* the link kernels the board runs (firmware/fwkl.py, pre-assembled) are what
  MicroPython 1.9.2's own assembler makes of firmware/asm/fwcasm.py;

Serving the 30 -> 12 model end to end on the V1 (stream parity, bad rows,
second upload) needs more heap than the firmware leaves today (figures:
boards/microbit-v1.heap.json); the frame layer alone is tested end to end
there in test_link_e2e.py.
"""
from neurondyn import fwasm
from neurondyn.paths import firmware_dir


def test_link_kernels_match_their_sources(tmp_path):
    fwasm.generate(tmp_path)
    assert (tmp_path / fwasm.LINK_TARGET).read_text() == \
        (firmware_dir() / fwasm.LINK_TARGET).read_text(), \
        "firmware/fwkl.py is stale: run `python -m neurondyn.fwasm`"

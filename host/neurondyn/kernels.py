"""fwk.bin: the firmware's Thumb kernels, linked for the micro:bit's flash.

The kernels are written in MicroPython's inline assembler
(``firmware/asm/*.py``). On the micro:bit V1 they are not compiled on the
board (machine code made there would live in its 9 KB heap): ``blob()``
assembles them on the host (neurondyn.thumb, the same encoding as
MicroPython's assembler) into one file for the board's flash file system,
where they run in place. The firmware finds the file, checks it and calls a
kernel through ``fwxa.X(a, b, c, entry)``; ``ENTRIES`` is the order of the
entry table, the same as the tuple ``E`` in firmware/fwd.py.
"""
from __future__ import annotations

from functools import lru_cache

from . import thumb
from .paths import firmware_dir

# (module in firmware/asm, function): entry i of the table is ENTRIES[i]
ENTRIES = [("fwfeng", "eng"), ("fwcasm", "chk"), ("fwcasm", "frm"), ("fwcasm", "scan"), ("fwcasm", "copy"),
           ("fwfinf", "inf"), ("fwfastb", "crc32"), ("fwfval", "val"), ("fwfast", "addr"),
           ("fwfast", "liba"), ("fwfastb", "libb"), ("fwfch", "ch"), ("fwfat", "at"),
           ("fwfro", "ro"), ("fwfmsg", "msg"), ("fwfins", "ins"), ("fwfins", "xp"),
           ("fwfins", "ktab"), ("fwfins", "wir"), ("fwftrn", "trn")]
NAME = thumb.BLOB_NAME


def functions() -> list:
    """The asm_thumb functions of ENTRIES, parsed from firmware/asm, in order."""
    parsed = {}
    out = []
    for module, name in ENTRIES:
        if module not in parsed:
            source = (firmware_dir() / "asm" / (module + ".py")).read_text(encoding="utf-8")
            parsed[module] = {f.name: f for f in thumb.parse(source)}
        out.append(parsed[module][name])
    return out


@lru_cache(maxsize=1)
def blob() -> bytes:
    """The bytes of fwk.bin (layout: neurondyn.thumb.link)."""
    return thumb.link(functions())[0]

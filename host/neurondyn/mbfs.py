"""Where the micro:bit V1's file system will put the next file, so fwk.bin lands whole.

The Thumb kernels run in place from fwk.bin, so its flash chunks must follow
each other. MicroPython's micro:bit file system (128-byte chunks, a marker
byte each: 0xFF unused, 0x00 freed, 0xFE a file's first chunk) gives every
new chunk to the first *unused* chunk at or after a start chunk it draws at
random when it boots (wear levelling), wrapping at the end; freed chunks are
reused only once no unused one is left. A raw-REPL install therefore cannot
choose where fwk.bin goes, but it can see where the next chunk will go: it
creates an empty probe file and reads the chunk markers before and after
(``probe_script``); ``filler_chunks`` then says how many chunks a filler file
must take first so that fwk.bin's chunks come out consecutive. The chunk
area is the one micropython-microbit-fs writes images into (the V1's last
two flash pages are the magnetometer calibration and the file system's
scratch page), read from the bundled MicroPython hex.
"""
CHUNK = 128                  # bytes a chunk
CHUNK_DATA = 126             # a chunk's data bytes (a marker before, a next-chunk index after)
UNUSED = 0xFF
PROBE = "ndm_p"              # the empty probe file (one chunk)
FILLER = "ndm_f"             # the filler file


def chunk_area() -> tuple:
    """(first chunk's address, number of chunks) of the V1 file system."""
    from micropython_microbit_fs import filesystem
    from .vboard.microbit import device_info
    info = device_info()
    start = filesystem.get_fs_start_address(info)
    return start, (filesystem.get_last_page_address(info) - start) // CHUNK


def file_chunks(name: str, size: int) -> int:
    """Chunks a file of ``size`` bytes named ``name`` takes (header: end offset, name length, name)."""
    return (2 + len(name) + size + 1 + CHUNK_DATA - 1) // CHUNK_DATA


def filler_size(chunks: int) -> int:
    """Bytes of a file named FILLER that takes exactly ``chunks`` chunks (one byte to spare)."""
    return chunks * CHUNK_DATA - 2 - len(FILLER) - 2


def markers_script() -> str:
    """Board script defining M(): print every chunk's marker byte, in hex, on one line.

    (The V1's build has no ubinascii, and a list of 224 strings does not fit
    its heap: one '%02x' at a time.)"""
    start, count = chunk_area()
    return ("import machine\n"
            "def M():\n"
            "    m = machine.mem8\n"
            "    for i in range(%d):\n"
            "        print('%%02x' %% m[%d + 128 * i], end='')\n"
            "    print()\n" % (count, start))


def remove_script(names) -> str:
    """Board script: remove those of ``names`` that exist (the V1 has no os.stat)."""
    return ("import os\nfor n in %r:\n    if n in os.listdir():\n        os.remove(n)\n"
            % (tuple(names),))


def probe_script() -> str:
    """Board script: remove old probe/filler files, print the chunk markers, create the probe, print them again."""
    return (markers_script() + remove_script((PROBE, FILLER))
            + "M()\nopen(%r, 'wb').close()\nM()\n" % PROBE)


def filler_script(chunks: int) -> str:
    """Board script: write the filler file, ``chunks`` chunks long, 126 bytes at a time."""
    size = filler_size(chunks)
    return ("f = open(%r, 'wb')\n"
            "z = bytes(%d)\n"
            "for i in range(%d):\n"
            "    f.write(z)\n"
            "f.write(bytes(%d))\n"
            "f.close()\n"
            "del f, z\n" % (FILLER, CHUNK_DATA, size // CHUNK_DATA, size % CHUNK_DATA))


def read_probe(output: str) -> tuple:
    """(markers before, markers after) from what ``probe_script`` printed; ValueError if
    it is not two lines of hex (not the file system this module knows)."""
    lines = output.split()
    if len(lines) != 2:
        raise ValueError("the probe printed %d lines, not 2" % len(lines))
    return bytes.fromhex(lines[0]), bytes.fromhex(lines[1])


def probe_chunk(before: bytes, after: bytes) -> int:
    """The 0-based chunk the probe file took: the one chunk that went from unused to a file start."""
    taken = [i for i, (b, a) in enumerate(zip(before, after)) if b == UNUSED and a != UNUSED]
    if len(taken) != 1:
        raise ValueError("the probe file took %d chunks, not 1" % len(taken))
    return taken[0]


def filler_chunks(markers: bytes, probe: int, need: int):
    """How many chunks a filler must take so the next ``need`` chunks are consecutive, or None.

    ``markers`` are the chunk markers with the probe in place at ``probe``:
    the next chunks go to the unused ones after it, in circular order.
    """
    count = len(markers)
    order = [(probe + 1 + k) % count for k in range(count - 1)]
    unused = [i for i in order if markers[i] == UNUSED]
    for skip in range(len(unused) - need + 1):
        if unused[skip + need - 1] - unused[skip] == need - 1:
            return skip
    return None

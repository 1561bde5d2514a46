"""neurondyn.mbfs: planning fwk.bin's chunks on the micro:bit V1 file system.

The plan is checked against a model of the allocator (hypothesis) and the
model against the real file system of MicroPython 1.9.2 on the virtual V1.
"""
import serial
from hypothesis import given, settings, strategies as st

from neurondyn import mbfs
from neurondyn.vboard import MicrobitVM
from neurondyn.vboard.rawrepl import MICROBIT_LOADER, RawRepl

UNUSED = mbfs.UNUSED


def allocate(markers: bytearray, start: int, n: int) -> list:
    """The micro:bit's rule: each new chunk is the first unused one at or after ``start``, circularly."""
    got = []
    for _ in range(n):
        i = next(k % len(markers) for k in range(start, start + len(markers))
                 if markers[k % len(markers)] == UNUSED)
        markers[i] = 0x01
        got.append(i)
    return got


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([UNUSED, UNUSED, UNUSED, 0x00, 0x05]), min_size=8, max_size=60),
       st.data())
def test_the_filler_makes_the_next_chunks_consecutive(markers, data):
    markers = bytearray(markers)
    if markers.count(UNUSED) < 2:
        return
    start = data.draw(st.integers(0, len(markers) - 1))
    need = data.draw(st.integers(1, 12))
    probe = allocate(markers, start, 1)[0]
    skip = mbfs.filler_chunks(bytes(markers), probe, need)
    if skip is None:
        # then no run of `need` unused chunks exists (wrapping is not a run)
        assert not any(set(markers[i:i + need]) == {UNUSED} for i in range(len(markers) - need + 1))
        return
    allocate(markers, start, skip)
    placed = allocate(markers, start, need)
    assert placed == list(range(placed[0], placed[0] + need))


def test_filler_size_fills_whole_chunks():
    for chunks in (1, 2, 7, 41):
        assert mbfs.file_chunks(mbfs.FILLER, mbfs.filler_size(chunks)) == chunks


def _markers(repl):
    return bytes.fromhex(repl.exec(mbfs.markers_script() + "M()\n").strip())


def test_the_allocator_model_is_the_v1_file_system():
    """On MicroPython 1.9.2 (virtual V1): the probe, a 3-chunk filler and a 5-chunk
    file take exactly the chunks the model predicts, from the random start on."""
    with MicrobitVM(files={"keep.py": "x = 1\n"}) as vm:
        ser = serial.Serial(vm.port, 115200, timeout=0.2)
        try:
            repl = RawRepl(ser, loader=MICROBIT_LOADER)
            repl.enter(timeout=30)
            before, after = mbfs.read_probe(repl.exec(mbfs.probe_script()))
            probe = mbfs.probe_chunk(before, after)
            assert after[probe] == 0xFE
            model = bytearray(after)
            filler = allocate(model, probe, 3)
            name = "big.bin"
            body = bytes(range(256)) * 2                       # 512 bytes: 5 chunks with its header
            assert mbfs.file_chunks(name, len(body)) == 5
            file = allocate(model, probe, 5)
            repl.exec(mbfs.filler_script(3))
            repl.exec("f = open(%r, 'wb')\nf.write(bytes(range(256)) * 2)\nf.close()\n" % name)
            now = _markers(repl)
            changed = [i for i in range(len(now)) if now[i] != after[i]]
            assert changed == sorted(filler + file)
            assert now[filler[0]] == 0xFE and now[file[0]] == 0xFE
            assert repl.exec("print(len(open(%r, 'rb').read()))\n" % name).strip() == "512"
        finally:
            ser.close()

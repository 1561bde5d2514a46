"""Write an image into the virtual micro:bit's flash through QEMU's gdb stub.

Why not ``-device loader``: QEMU copies a loader's image into flash again at
every system reset, so a file the board wrote over one of the image's files
comes back as the old one after ``microbit.reset()`` (seen: rewrite a file,
reset, it reads as before; two files of the same name after an upload into a
slot the image held). A real micro:bit keeps its flash across a reset. Memory
written by a debugger is written once: the VM starts paused (``-S``), the
image goes in through the gdb remote protocol (``M`` packets), then the
monitor resets the CPU (which now reads its vectors from that flash) and
continues; later resets leave the flash alone.

Only what is needed of the GDB remote serial protocol: packets
``$data#checksum`` acknowledged with ``+``.
"""
from __future__ import annotations

import socket
import time

from ..errors import DeviceError

CHUNK = 1024                 # bytes of memory per M packet (QEMU's stub takes 4 KB packets)


def _checksum(data: bytes) -> bytes:
    return b"%02x" % (sum(data) & 0xFF)


class GdbClient:
    """A connection to QEMU's gdb stub on a Unix socket."""

    def __init__(self, path: str, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(timeout)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise DeviceError("QEMU's gdb stub did not open %s" % path)
                time.sleep(0.05)
        self.buf = b""

    def _read_packet(self) -> bytes:
        while True:
            start = self.buf.find(b"$")
            end = self.buf.find(b"#", start + 1) if start >= 0 else -1
            if start >= 0 and end >= 0 and len(self.buf) >= end + 3:
                data = self.buf[start + 1:end]
                self.buf = self.buf[end + 3:]
                self.sock.sendall(b"+")
                return data
            chunk = self.sock.recv(4096)
            if not chunk:
                raise DeviceError("QEMU's gdb stub closed the connection")
            self.buf += chunk

    def request(self, data: bytes) -> bytes:
        """Send one packet, wait for its acknowledgement and the reply packet."""
        self.sock.sendall(b"$" + data + b"#" + _checksum(data))
        return self._read_packet()

    def write_memory(self, addr: int, data: bytes) -> None:
        for off in range(0, len(data), CHUNK):
            part = data[off:off + CHUNK]
            reply = self.request(b"M%x,%x:%s" % (addr + off, len(part), part.hex().encode()))
            if reply != b"OK":
                raise DeviceError("QEMU's gdb stub refused a flash write at 0x%x: %r"
                                  % (addr + off, reply[:40]))

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


FLASH_SIZE = 0x40000         # the nRF51822's 256 KB of flash


def segments(hex_path):
    """(address, bytes) runs of an Intel HEX image: the whole flash first, every byte
    the image does not set 0xFF, then what lies beyond the flash (UICR).

    A real micro:bit's unwritten flash is erased, 0xFF; QEMU's starts zeroed,
    which the file system reads as every chunk freed (0x00): each new chunk
    then costs a page erase, and files land wherever a page was reclaimed.
    """
    from intelhex import IntelHex
    ih = IntelHex(str(hex_path))
    ih.padding = 0xFF
    yield 0, ih.tobinstr(start=0, size=FLASH_SIZE)
    for start, end in ih.segments():
        if start >= FLASH_SIZE:
            yield start, ih.tobinstr(start=start, size=end - start)


def write_image(gdb_path: str, hex_path) -> int:
    """Write every segment of ``hex_path`` into the paused VM; returns the byte count."""
    client = GdbClient(gdb_path)
    try:
        total = 0
        for addr, data in segments(hex_path):
            client.write_memory(addr, data)
            total += len(data)
        return total
    finally:
        client.close()

"""The virtual BBC micro:bit V1: the official MicroPython 1.9.2 hex run by QEMU.

``build_microbit_hex`` puts files into the filesystem region of the V1 hex that
``micropython-microbit-fs`` ships (the same image a user drags onto the MICROBIT
drive). ``MicrobitVM`` boots such an image with ``qemu-system-arm -M microbit``;
its UART becomes a pty (``vm.port``) that pyserial opens like ``/dev/ttyACM0``.
``-icount shift=6`` makes every instruction 64 ns of virtual time (~16 MHz), so
``time.ticks_us()`` on the board gives repeatable figures. Stopping QEMU is a
power cut.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from functools import lru_cache
from pathlib import Path

from ..errors import DeviceError, UserError
from ..fsutil import atomic_write_text
from .process import VirtualBoard

QEMU = "qemu-system-arm"
INSTALL_HINT = "install it with: sudo apt-get install qemu-system-arm"
_PTY_LINE = re.compile(r"char device redirected to (/dev/pts/\d+)")


def bundled_hex():
    """The V1 MicroPython image micropython-microbit-fs ships (version, text)."""
    import micropython_microbit_fs as mfs
    h = mfs.get_bundled_hex(1)
    return h.version, h.content


@lru_cache(maxsize=1)
def device_info():
    """The bundled V1 image's flash layout (micropython-microbit-fs's DeviceInfo:
    file-system start and end, page size...); read once, the hex is ~600 KB of text."""
    import micropython_microbit_fs as mfs
    return mfs.get_device_info(bundled_hex()[1])


def microbit_fs_capacity() -> int:
    """Bytes of file system the bundled V1 image offers (files + their headers)."""
    return device_info().fs_size


def build_microbit_hex(files: dict, out_path, minify: bool = False) -> Path:
    """Write a complete micro:bit V1 image (MicroPython + ``files``) to ``out_path``.

    ``files`` maps flat file names (the micro:bit fs has no folders) to bytes or
    text. ``minify`` compacts ``.py`` files (vboard.minify.minify_checked:
    comments and docstrings gone, line numbers not kept). The write is atomic; a file set that does not fit
    is a UserError.
    """
    import micropython_microbit_fs as mfs
    entries = []
    for name, content in files.items():
        if isinstance(content, str):
            content = content.encode("utf-8")
        if "/" in name:
            raise UserError("micro:bit file names are flat, got %r" % name)
        if minify and name.endswith(".py"):
            from .minify import minify_checked
            content = minify_checked(content.decode("utf-8"), name).encode("utf-8")
        entries.append(mfs.File(name=name, content=bytes(content)))
    try:
        image = mfs.add_files(bundled_hex()[1], entries)
    except mfs.StorageFullError as exc:
        raise UserError("files do not fit the micro:bit file system: %s" % exc)
    except mfs.InvalidFileError as exc:
        raise UserError("cannot put file on the micro:bit: %s" % exc)
    atomic_write_text(out_path, image)
    return Path(out_path)


def fs_region():
    """(start, end) flash addresses of the V1 image's file system."""
    info = device_info()
    return info.fs_start_address, info.fs_end_address


def overlay_flash(hex_path, flash_bin) -> None:
    """Write a saved file-system region (``MicrobitVM.save_flash``) over an image."""
    from intelhex import IntelHex
    start, end = fs_region()
    data = Path(flash_bin).read_bytes()
    if len(data) != end - start:
        raise UserError("%s is not a micro:bit V1 flash state (%d bytes, expected %d)"
                        % (flash_bin, len(data), end - start))
    ih = IntelHex(str(hex_path))
    ih.puts(start, data)
    tmp = str(hex_path) + ".tmp"
    ih.write_hex_file(tmp)
    os.replace(tmp, hex_path)


def require_qemu() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise DeviceError("%s not found (the virtual micro:bit needs it): %s" % (QEMU, INSTALL_HINT))
    return path


class MicrobitVM(VirtualBoard):
    """A running virtual micro:bit V1. Use as a context manager; ``.port`` is its pty.

    Give either ``hex_path`` (an image to boot) or ``files`` (built into a
    temporary image with the bundled MicroPython; ``minify`` shrinks its ``.py``
    files as build_microbit_hex does). ``icount`` is QEMU's
    ``-icount shift``: 6 means ~16 MHz like the real nRF51822.

    Flash: the image is written into the VM's flash once, at power-on
    (vboard.gdbflash), so the board's own writes survive its resets
    (``microbit.reset()``) as on a real micro:bit. They are lost with the
    process: ``save_flash(path)`` snapshots the file-system region through
    QEMU's monitor -- at any instant, like a power cut would leave it -- and
    ``flash_state=path`` boots with such a snapshot laid over the image. The
    monitor is always open, on a Unix socket in the VM's temporary folder.
    """

    def __init__(self, hex_path=None, files=None, icount: int = 6,
                 boot_timeout: float = 20.0, minify: bool = False, flash_state=None):
        if (hex_path is None) == (files is None):
            raise ValueError("give exactly one of hex_path or files")
        require_qemu()        # before any work: the clearest error first
        self._tmp = tempfile.mkdtemp(prefix="ndyn-microbit-")
        self.hex_path = Path(self._tmp) / "image.hex"
        self.icount = icount
        self.monitor = str(Path(self._tmp) / "monitor.sock")   # always: it starts the VM
        self.boot_timeout = boot_timeout
        self.port = None
        self.proc = None
        self.log_path = Path(self._tmp) / "qemu.log"
        self.console_path = Path(self._tmp) / "console.log"
        try:
            if files is not None:
                build_microbit_hex(files, self.hex_path, minify=minify)
            elif not Path(hex_path).is_file():
                raise UserError("no such micro:bit image: %s" % hex_path)
            else:
                shutil.copy(hex_path, self.hex_path)
            if flash_state is not None:
                overlay_flash(self.hex_path, flash_state)
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        qemu = require_qemu()
        # the UART is a pty, and everything the board prints is also logged
        # (console_log(): boot tracebacks a handshake would otherwise hide)
        # paused (-S) with no image: the image goes into flash through the gdb
        # stub (vboard.gdbflash: a loader would rewrite the flash at every
        # reset), then the monitor resets the CPU and lets it run
        gdb = str(Path(self._tmp) / "gdb.sock")
        cmd = [qemu, "-M", "microbit", "-S", "-gdb", "unix:%s,server=on,wait=off" % gdb,
               "-chardev", "pty,id=uart0,logfile=%s,logappend=off" % self.console_path,
               "-serial", "chardev:uart0", "-nographic",
               "-monitor", "unix:%s,server,nowait" % self.monitor]
        if self.icount is not None:
            cmd += ["-icount", "shift=%d" % self.icount]
        log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + self.boot_timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            found = _PTY_LINE.search(text)
            if found:
                self.port = found.group(1)
                from .gdbflash import write_image
                write_image(gdb, self.hex_path)
                self.monitor_command("system_reset")
                self.monitor_command("cont")
                return
            if self.proc.poll() is not None:
                raise DeviceError("%s exited at start: %s" % (QEMU, text.strip()[-300:] or "no output"))
            time.sleep(0.02)
        raise DeviceError("%s gave no serial pty within %.0f s" % (QEMU, self.boot_timeout))

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def console_log(self) -> str:
        """Everything the board has printed on its UART so far."""
        try:
            return self.console_path.read_bytes().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def log(self) -> str:
        """What the board printed (its UART: tracebacks land there): WasmBoard's name."""
        return self.console_log()

    def boot_error(self) -> str:
        """The exception line of the first traceback the board printed ('' if none).

        The first one: after a crash the REPL echoes whatever a host sends
        (handshake probes included), which can print later, unrelated errors.
        """
        lines = [l.strip().strip("\x00") for l in self.console_log().splitlines()]
        if not any(l.startswith("Traceback") for l in lines):
            return ""
        first = [l.startswith("Traceback") for l in lines].index(True)
        errors = [l for l in lines[first:] if re.match(r"^[A-Za-z_]*(Error|Exception|Interrupt)\b", l)]
        return errors[0] if errors else ""

    def monitor_command(self, command: str, timeout: float = 10.0) -> str:
        """Run one QEMU human-monitor command; return its output."""
        import socket
        if not self.running:
            raise DeviceError("the virtual micro:bit has no monitor (not running)")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(self.monitor)
            buf = b""
            while not buf.endswith(b"(qemu) "):
                buf += sock.recv(4096)
            sock.sendall(command.encode() + b"\n")
            buf = b""
            while not buf.endswith(b"(qemu) "):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                buf += chunk
        text = buf.decode(errors="replace")
        return text[:-len("(qemu) ")] if text.endswith("(qemu) ") else text

    def save_flash(self, path) -> None:
        """Snapshot the board's file-system flash region into ``path`` (atomic)."""
        start, end = fs_region()
        tmp = Path(self._tmp) / "flash.bin"
        out = self.monitor_command('memsave %d %d "%s"' % (start, end - start, tmp))
        if not tmp.is_file() or tmp.stat().st_size != end - start:
            raise DeviceError("QEMU did not save the flash: %s" % out.strip()[-200:])
        from ..fsutil import atomic_write_bytes
        atomic_write_bytes(path, tmp.read_bytes())
        tmp.unlink()

    def power_cut(self, save_to=None) -> None:
        """Cut the power now: freeze the CPU, optionally snapshot the flash as it
        is at this instant into ``save_to``, then kill QEMU (no clean shutdown)."""
        if self.running:
            self.monitor_command("stop")
            if save_to is not None:
                self.save_flash(save_to)
            self.proc.kill()
            self.proc.wait()
        self.stop()


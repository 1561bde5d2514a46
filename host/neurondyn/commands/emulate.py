"""``ndyn emulate``: run our firmware on a virtual board and print its serial port.

The first stdout line is ``port: /dev/pts/N``, printed once the firmware
answers the protocol handshake; the board then serves until SIGINT/SIGTERM,
when the emulator is stopped and its temporary files removed. SIGUSR1 (or
``--power-cut-after``) cuts the power instead: the CPU stops where it is and,
with ``--state``, the flash is kept exactly as it was at that instant.
"""
import os
import signal
import sys
import time

from .. import boards, deploy
from ..errors import DeviceError, UserError

EMULATED = ("microbit-v1", "mpy-wasm")


def register(subparsers):
    p = subparsers.add_parser("emulate", help="run the firmware on a virtual board; prints its serial port")
    p.add_argument("model", nargs="?", metavar="MODEL.ndm",
                   help="model to boot with (default: none; the firmware waits for an upload)")
    p.add_argument("--board", default="microbit-v1", choices=EMULATED,
                   help="virtual board (default: microbit-v1 under QEMU)")
    p.add_argument("--state", metavar="DIR",
                   help="keep the board's flash in DIR across restarts (saved when stopped "
                        "with SIGINT/SIGTERM on the micro:bit; live files on mpy-wasm)")
    p.add_argument("--line-faults", metavar="SPEC",
                   help="a bad cable between you and the board: drop=P,corrupt=P,dup=P,stall=MS"
                        "[,stall_p=P][,seed=S] (the printed port is the faulty end)")
    p.add_argument("--power-cut-after", type=float, metavar="S",
                   help="cut the power S seconds after the port is printed (as SIGUSR1 does "
                        "at any time): the flash is kept in --state exactly as it was then")
    p.add_argument("--boot-timeout", type=float, default=60.0, metavar="S",
                   help="seconds to wait for the firmware's handshake (default 60)")
    p.set_defaults(func=run)


class _Stop(Exception):
    pass


class _PowerCut(Exception):
    pass


def _on_signal(signum, frame):
    raise _Stop()


def _on_power_cut(signum, frame):
    raise _PowerCut()


MICROBIT_STATE = "microbit-flash.bin"


def start_board(profile, files, state=None, fresh=True):
    """Boot the virtual board of ``profile``; returns the running VM.

    micro:bit with a saved state and ``fresh`` False: boot the flash as it was
    saved (firmware and model included); otherwise the image holds ``files``.
    """
    from ..vboard import MicrobitVM, WasmBoard
    if profile.name == "mpy-wasm":
        return WasmBoard(files=files, flash_dir=state)
    saved = os.path.join(state, MICROBIT_STATE) if state else None
    if saved and not fresh and os.path.isfile(saved):
        return MicrobitVM(files={}, flash_state=saved)
    return MicrobitVM(files=files)


def run(args) -> int:
    profile = boards.get_profile(args.board)
    if args.line_faults is not None:
        from ..vboard.faults import parse_spec
        parse_spec(args.line_faults)          # a bad spec fails before anything boots
    if profile.name == "microbit-v1":
        from ..vboard import require_qemu
        require_qemu()
    if args.power_cut_after is not None and not args.state:
        raise UserError("--power-cut-after needs --state DIR (where the flash is kept)")
    ndm_bytes = deploy.read_model_bytes(args.model) if args.model else None
    say = lambda msg: print(msg, file=sys.stderr, flush=True)
    files = deploy.fitting_firmware(profile, ndm_bytes, say) if ndm_bytes else deploy.firmware_files(profile)
    if ndm_bytes:
        files.update(deploy.model_store_files(ndm_bytes, profile))
        if args.state and profile.name == "mpy-wasm":
            # a slot of a higher generation left in the state folder would win
            for name in deploy.store_slot_names(profile):
                if name not in files:
                    try:
                        os.unlink(os.path.join(args.state, name))
                    except FileNotFoundError:
                        pass
    old_int = signal.signal(signal.SIGINT, _on_signal)
    old_term = signal.signal(signal.SIGTERM, _on_signal)
    old_usr1 = signal.signal(signal.SIGUSR1, _on_power_cut)
    vm = line = None
    try:
        if args.state:
            os.makedirs(args.state, exist_ok=True)
        vm = start_board(profile, files, args.state, fresh=ndm_bytes is not None)
        if deploy._link() is not None:
            info = deploy.wait_for_hello(vm.port, args.boot_timeout, give_up=vm.boot_error)
            if info is None:
                why = vm.boot_error()
                if why:
                    raise DeviceError("the firmware on the virtual %s crashed at boot: %s"
                                      % (profile.name, why))
                raise DeviceError("the firmware on the virtual %s did not answer the handshake "
                                  "within %.0f s" % (profile.name, args.boot_timeout))
        port = vm.port
        if args.line_faults is not None:
            from ..vboard.faults import FaultyLine
            line = FaultyLine(vm.port, args.line_faults)
            port = line.port
        print("port: %s" % port, flush=True)
        print("serving on virtual %s; Ctrl-C to stop" % profile.name, file=sys.stderr, flush=True)
        cut_at = (time.monotonic() + args.power_cut_after) if args.power_cut_after is not None else None
        while vm.running:
            if cut_at is not None and time.monotonic() >= cut_at:
                raise _PowerCut()
            time.sleep(0.02 if cut_at is not None else 0.2)
        raise DeviceError("the virtual %s stopped by itself" % profile.name)
    except _Stop:
        return 0
    except _PowerCut:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if vm is None:
            pass
        elif profile.name == "mpy-wasm":
            vm.power_cut()
        else:
            vm.power_cut(save_to=os.path.join(args.state, MICROBIT_STATE) if args.state else None)
        print("power cut", file=sys.stderr, flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        if line is not None:
            line.stop()
            print("line faults: %s" % line.counts, file=sys.stderr, flush=True)
        if vm is not None:
            try:
                if args.state and profile.name != "mpy-wasm" and vm.running:
                    vm.save_flash(os.path.join(args.state, MICROBIT_STATE))
            finally:
                vm.stop()
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGUSR1, old_usr1)

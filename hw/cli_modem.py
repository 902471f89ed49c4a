"""The `sim-modem` command: run the modem simulator on a pty until Ctrl-C."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Callable

from .sim.protocol import DIALECTS, OUTCOMES, SIM_STATES
from .sim.simulator import ModemSimulator

DEFAULT_PATH = "/tmp/switchboard-modem/usb-Switchboard_Simulated_Modem-if00"
HELP = "Run a simulated GSM or FXO modem on a pty (for tests and demos without hardware)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The simulator's options."""
    parser.add_argument("--dialect", choices=DIALECTS, default="sim7600", help="which modem to be")
    parser.add_argument("--path", default=DEFAULT_PATH, help="symlink to create for the AT port "
                        "(GSM dialects add PATH-audio for PCM) (default: %(default)s)")
    parser.add_argument("--incoming", metavar="NUMBER", help="ring the box from this number")
    parser.add_argument("--name", default="", help="caller name sent with --incoming")
    parser.add_argument("--after", type=float, default=5.0, metavar="SECONDS",
                        help="when to ring, after start (default %(default)s)")
    parser.add_argument("--on-dial", choices=OUTCOMES, default="answer", help="how dialled calls end up")
    parser.add_argument("--answer-after", type=float, default=2.0, metavar="SECONDS",
                        help="how long a dialled call rings before the outcome (default %(default)s)")
    parser.add_argument("--play", metavar="WAV", help="play this WAV to the box on every connected call")
    parser.add_argument("--record", metavar="WAV", help="save what the box sent here on exit")
    parser.add_argument("--signal", type=int, default=20, metavar="CSQ", help="signal, 0-31 or 99")
    parser.add_argument("--sim", choices=SIM_STATES, default="READY", help="SIM state")


def run(args: argparse.Namespace) -> int:
    """Start the simulator and keep it going until interrupted."""
    sim = ModemSimulator(args.dialect, args.path, signal_csq=args.signal, sim=args.sim,
                         on_dial=args.on_dial, answer_after=args.answer_after)
    sim.start()
    print(f"simulated {args.dialect} modem on {sim.path}")
    if sim.audio_path:
        print(f"audio (16-bit 8 kHz PCM) on {sim.audio_path}")
    sys.stdout.flush()
    stop = threading.Event()
    old = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if args.incoming:
            if not stop.wait(args.after):
                print(f"ringing from {args.incoming}", flush=True)
                sim.ring(args.incoming, args.name)
        played = False
        while not stop.wait(0.1):
            if args.play and sim.audio_on and not played:
                sim.play_wav(args.play)
                played = True
            elif not sim.audio_on:
                played = False
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, old)
        sim.stop()
        if args.record:
            sim.save_received(args.record)
            print(f"recorded {len(sim.received()) // 16000:.0f} s to {args.record}")
    return 0


def add_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `sim-modem` through the CLI's command(name, func, help) helper."""
    add_arguments(command("sim-modem", run, HELP))

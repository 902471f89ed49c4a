"""python -m hw.sim: the modem simulator without the rest of the box."""
from __future__ import annotations

import argparse
import logging
import sys

from ..cli_modem import HELP, add_arguments, run


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run the simulator."""
    parser = argparse.ArgumentParser(prog="python -m hw.sim", description=HELP)
    add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the simulator does")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

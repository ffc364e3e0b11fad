"""``stylecast`` command line: one entry, one sub-command per job.

Each sub-command lives in the module that owns its concept and registers itself through a
``register(subparsers)`` function that sets ``func`` (``args -> exit code``). User errors
(:class:`realtime.errors.StylecastError`) print one line and exit non-zero; tracebacks appear only
with ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from realtime.errors import StylecastError

#: module -> the sub-commands it registers (for the help text only; each module registers its own parsers)
COMMAND_MODULES: dict[str, str] = {
    "train.cli": "train",
    "realtime.export": "export",
    "calibration.cli": "calibrate",
    "realtime.compile": "compile",
    "realtime.commands": "run, webcam, styles",
    "benchmarks.cli": "bench",
}

log = logging.getLogger("stylecast")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stylecast",
        description="Real-time multi-style video stylization.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        module.register(sub)
    return parser


def setup_logging(debug: bool, quiet: bool) -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    # Logs go to stderr so stdout stays clean for results that scripts read.
    handler = RichHandler(console=Console(stderr=True), show_path=debug, show_time=debug,
                          rich_tracebacks=debug, markup=False)
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.debug, args.quiet)
    try:
        code = args.func(args)
    except StylecastError as e:
        if args.debug:
            raise
        print(f"stylecast: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("stylecast: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())

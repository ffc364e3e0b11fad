"""``stylecast`` command line: one entry, one sub-command per job.

Each sub-command lives in the module that owns its concept and registers itself through a
``register(subparsers)`` function that sets ``func`` (``args -> exit code``). User errors
(:class:`realtime.errors.StylecastError`) print one line and exit non-zero; tracebacks appear only
with ``--debug``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from realtime.errors import StylecastError

#: module -> the sub-commands it registers (for the help text only; each module registers its own parsers)
COMMAND_MODULES: dict[str, str] = {
    "train.cli": "train",
    "train.add_style_cli": "add-style",
    "realtime.artifact_commands": "export, calibrate, compile",
    "realtime.commands": "run, webcam, styles",
    "benchmarks.cli": "bench",
    "benchmarks.eval_cli": "eval",
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


class _StdoutGuard:
    """``sys.stdout`` that remembers a failed write: a closed pipe (``| head``) or a full device
    (``> /dev/full``), told apart from every other ``OSError``."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.failed = stream, False

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError:
            self.failed = True
            raise

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError:
            self.failed = True
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.debug, args.quiet)
    stdout = _StdoutGuard(sys.stdout)
    sys.stdout = stdout
    try:
        code = args.func(args)
        stdout.flush()  # what is still buffered fails here, not in the interpreter's exit
    except StylecastError as e:
        if args.debug:
            raise
        # One line, whatever the message holds: a path may contain newlines.
        message = str(e).replace("\r", "\\r").replace("\n", "\\n")
        print(f"stylecast: error: {message}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("stylecast: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        if not stdout.failed:
            raise
        return _stdout_failed(stdout.stream, e)
    finally:
        sys.stdout = stdout.stream
    return int(code or 0)


def _stdout_failed(stream: TextIO, e: OSError) -> int:
    """Say once, on stderr, that the report could not be written (the work itself is done)."""
    with contextlib.suppress(OSError, ValueError):
        # The interpreter flushes stdout again at exit; /dev/null takes what is left.
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
    print(f"stylecast: error: cannot write to standard output: {e.strerror or e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

"""The one check every command that writes runs before it starts: never destroy an input, never
replace a file the user did not name with ``--overwrite``, and say now, not after minutes of work,
when the output cannot be written.

Inputs and outputs are compared as files, not as names: resolved paths (``..``, symlinks) and the
same inode (hard links) both count, and a ``file://`` URL is the file it names.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

from realtime.errors import OutputError

__all__ = ["check_output", "input_path", "writable_folder"]


def input_path(spec: Path | str) -> Path | None:
    """The local file an input names: a path, or a ``file://`` URL; None for other URLs (no file)."""
    if isinstance(spec, Path):
        return spec
    if "://" not in spec:
        return Path(spec)
    url = urlparse(spec)
    return Path(unquote(url.path)) if url.scheme == "file" and url.netloc in ("", "localhost") else None


def _resolve(path: Path, what: str) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop (Python < 3.13)
        raise OutputError(f"{what} {path} cannot be resolved: {_reason(e)}") from None


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.errno is not None:
        return os.strerror(e.errno)
    return str(e) or type(e).__name__


def _stat(path: Path) -> os.stat_result | None:
    """``os.stat`` of an output, None when it does not exist; a name the system refuses is an OutputError.

    A dangling symlink exists too (its own ``lstat``): the user made it, so replacing it needs --overwrite.
    """
    try:
        return path.stat()
    except FileNotFoundError:
        return path.lstat() if path.is_symlink() else None
    except (OSError, RuntimeError) as e:
        if isinstance(e, OSError) and e.errno == errno.ENOTDIR:
            raise OutputError(f"output folder does not exist: {path.parent} (a part of it is a file)") from None
        raise OutputError(f"output {path} cannot be used: {_reason(e)}") from None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (or cannot be read): not the same file
        return False


def _check_not_input(output: Path, resolved: Path, is_dir: bool, inputs: Sequence[Path | str]) -> None:
    for spec in inputs:
        inp = input_path(spec)
        if inp is None:
            continue
        inp_resolved = _resolve(inp, "input")
        if inp_resolved == resolved or _same_file(inp, output):
            raise OutputError(f"output {output} is the input {spec}; choose another name")
        if is_dir and inp_resolved.is_relative_to(resolved):
            # Outputs are named after their inputs: writing into the input's folder replaces it.
            raise OutputError(f"output folder {output} holds the input {spec}; choose another folder")


def _has_entries(folder: Path) -> bool:
    try:
        return any(folder.iterdir())
    except OSError as e:
        raise OutputError(f"output folder {folder} cannot be read: {_reason(e)}") from None


def _probe(folder: Path) -> None:
    """Create and remove a file in ``folder``: os.access says yes to root on read-only mounts and /proc."""
    with tempfile.TemporaryFile(dir=folder):
        pass


def _check_writable(folder: Path, make_parents: bool) -> None:
    probe = folder
    if make_parents:
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"output folder does not exist: {folder}" if not probe.exists() else f"not a folder: {probe}")
    try:
        _probe(probe)
    except OSError as e:
        raise OutputError(f"output folder {probe} is not writable: {_reason(e)}") from None


def writable_folder(folder: Path, what: str, fix: str = "") -> Path:
    """``folder``, created if missing, or an OutputError naming ``what`` it is and ``fix``, the way out."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _probe(folder)
    except OSError as e:
        raise OutputError(f"{what} {folder} is not writable ({_reason(e)})" + (f"; {fix}" if fix else "")) from None
    return folder


def check_output(
    output: Path,
    inputs: Sequence[Path | str],
    overwrite: bool,
    *,
    folder: bool | None = None,
    make_parents: bool = False,
) -> None:
    """Refuse an ``output`` that is one of ``inputs``, exists without ``overwrite``, or cannot be written.

    ``inputs`` are paths or source specs (URLs other than ``file://`` have no file to compare).
    ``folder``: True when the command writes files into ``output``, False when it writes ``output``
    itself, None when an existing folder means the former. ``make_parents``: the command creates
    missing parent folders, so only the nearest existing one must be writable.
    """
    st = _stat(output)
    is_dir = folder if folder is not None else st is not None and os.path.isdir(output)
    _check_not_input(output, _resolve(output, "output"), is_dir, inputs)
    if st is not None:
        exists_as_dir = os.path.isdir(output)
        if exists_as_dir and not is_dir:
            raise OutputError(f"output {output} is a folder; name a file")
        if is_dir and not exists_as_dir:
            raise OutputError(f"output {output} is a file; name a folder")
        if not overwrite and not is_dir:
            raise OutputError(f"output {output} exists; pass --overwrite to replace it")
        if not overwrite and _has_entries(output):
            raise OutputError(f"output folder {output} is not empty; pass --overwrite to write into it")
    _check_writable(output if st is not None and is_dir else output.parent, make_parents)

"""User-facing errors: the CLI prints these as one line and exits non-zero, without a traceback."""

from __future__ import annotations


class StylecastError(Exception):
    """Base for every error caused by the user's input, files or environment (not by a bug)."""

    exit_code = 2


class InputError(StylecastError):
    """An input (video, image, camera, folder) is missing, unreadable or unusable."""


class OutputError(StylecastError):
    """An output cannot be written (missing/unwritable directory, exists, same as input, disk full)."""


class ModelError(StylecastError):
    """A model file, ONNX file or engine is missing, corrupt or incompatible."""


class StyleError(StylecastError):
    """A style name, weight vector or schedule is invalid."""


class BackendUnavailable(StylecastError):
    """A requested backend or precision cannot run here (missing package, no GPU)."""

    exit_code = 3

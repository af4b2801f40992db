"""``python -m pytorch_grad_cam.app``: serve the explorer page on this machine.

python -m pytorch_grad_cam.app [--host 127.0.0.1] [--port 7860] [--no-browser] [--offline]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

PROGRAM = "python -m pytorch_grad_cam.app"
#: What to run when gradio is missing.
INSTALL_HINT = 'pip install -e ".[app]"'


def build_parser() -> argparse.ArgumentParser:
    """The command line of the explorer."""
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Serve the pytorch_grad_cam explorer: a local web page to compare CAM methods on the demo "
        "scenes (with ground-truth scores) or on your own images.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for other machines)"
    )
    parser.add_argument("--port", type=int, default=None, help="port (default: the first free one from 7860)")
    parser.add_argument("--no-browser", action="store_true", help="do not open the page in a browser")
    parser.add_argument(
        "--offline",
        action="store_true",
        help="never try to download pretrained weights (timm models then fail at once when not cached)",
    )
    parser.add_argument("--model", default=None, help="the model selected first (default demo:cnn)")
    parser.add_argument("--scene", default=None, help="the demo scene shown first (default 'single 0')")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and serve the page until interrupted; returns the exit status (2 when gradio is
    missing or an argument is wrong)."""
    args = build_parser().parse_args(argv)
    if args.port is not None and not 0 < args.port < 65536:
        print(f"{PROGRAM}: error: --port must be in 1..65535; got {args.port}", file=sys.stderr)
        return 2
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if args.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import gradio  # noqa: F401
    except ImportError as error:
        print(
            f"{PROGRAM}: error: the explorer needs gradio, which is not installed ({error}).\n"
            f"Install the app extra from the repository root: {INSTALL_HINT}",
            file=sys.stderr,
        )
        return 2
    from pytorch_grad_cam.app.ui import DEFAULT_MODEL, DEFAULT_SCENE, launch

    try:
        launch(
            host=args.host,
            port=args.port,
            open_browser=not args.no_browser,
            default_scene=args.scene or DEFAULT_SCENE,
            default_model=args.model or DEFAULT_MODEL,
        )
    except (OSError, ValueError) as error:  # a bad --scene, a port in use
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

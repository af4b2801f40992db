"""Explain one image from the command line: ``python cam.py --model demo`` (offline) or
``python cam.py --image-path photo.jpg --method gradcam++``. See ``python cam.py --help``."""

import sys

from pytorch_grad_cam.cli import main

if __name__ == "__main__":
    sys.exit(main())

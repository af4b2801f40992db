"""``python -m pytorch_grad_cam.batch`` (also under ``torchrun -m``): the dataset command line."""

import sys

from pytorch_grad_cam.batch.cli import main

sys.exit(main())

"""Every script in usage_examples/ runs offline on a small input and writes its figure."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "usage_examples"
HELPERS = {"example_utils.py"}

# script -> small-size arguments (random weights, no download)
RUNS = {
    "vit_example.py": ["--size", "64"],
    "swinT_example.py": ["--size", "64"],
    "clip_example.py": ["--size", "64", "--labels", "a cat", "a dog"],
    "detection_example.py": ["--size", "96"],
    "segmentation_example.py": ["--size", "64"],
    "yolo_example.py": ["--size", "64"],
    "video_3d_example.py": ["--size", "32", "--frames", "4"],
    "signal_1d_example.py": ["--size", "64", "--steps", "30"],
}


def test_every_example_is_exercised() -> None:
    scripts = {path.name for path in EXAMPLES.glob("*.py")} - HELPERS
    assert scripts == set(RUNS)


# script -> the optional library it needs (the test is skipped without it)
NEEDS = {"yolo_example.py": "ultralytics"}


@pytest.mark.parametrize("script", sorted(RUNS))
def test_example_runs_and_writes_its_figure(script: str, tmp_path: Path) -> None:
    if script in NEEDS and importlib.util.find_spec(NEEDS[script]) is None:
        pytest.skip(f"{script} needs {NEEDS[script]}")
    output = tmp_path / "figures" / (Path(script).stem + ".png")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    # ultralytics: never download, and keep its settings file out of the home folder
    env.update(YOLO_OFFLINE="1", YOLO_CONFIG_DIR=str(tmp_path / "ultralytics"))
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *RUNS[script], "--output", str(output)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figure = cv2.imread(str(output))
    assert figure is not None, f"{script} wrote no readable figure to {output}"
    assert figure.ndim == 3 and min(figure.shape[:2]) >= 32
    assert figure.std() > 5  # an actual picture, not a blank canvas

"""The README's commands are the ones CI runs, and its Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_starts_with_install_and_test_commands_that_ci_runs() -> None:
    install, test = _blocks("bash")[0].strip().splitlines()
    ci = (ROOT / ".ci" / "run").read_text()
    # .ci/run makes its own venv, then runs the README's install steps and test command verbatim.
    for step in install.split(" && ")[2:]:
        assert step in ci
    assert test in ci
    assert "python3 -m venv" in install and 'pip install -e ".[dev]"' in install
    assert test == "python -m pytest -q"


def test_readme_integration_install_is_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    between = README.split("```")[2]  # the paragraph after the install and test commands
    commands = re.findall(r"`(pip install [^`]+)`", between)
    assert commands == ['pip install -e ".[dev,integrations]"', 'pip install --no-deps "ultralytics>=8.1"']
    for command in commands:
        assert command in ci, command


def test_readme_main_command_is_the_offline_demo() -> None:
    main = _blocks("bash")[1].strip()
    assert main.startswith("python cam.py --model demo")


def test_readme_first_example_runs() -> None:
    namespace: dict = {}
    exec(compile(_blocks("python")[0], "README.md", "exec"), namespace)
    grayscale = namespace["grayscale_cam"]
    assert grayscale.shape == (1, 224, 224) and grayscale.dtype == np.float32
    assert grayscale.min() >= 0.0 and grayscale.max() <= 1.0 and grayscale.max() > 0.5
    assert namespace["visualization"].dtype == np.uint8
    np.testing.assert_allclose(namespace["as_tensor"].numpy(), grayscale, atol=1e-6)


def test_readme_metrics_snippet_runs() -> None:
    """The reference README's metrics snippet (placeholders filled in, in the Metrics item of "Beyond
    classification"), indented inside its list item."""
    import textwrap

    import torch

    (snippet,) = [block for block in _blocks("python") if "ROADCombined" in block]
    namespace: dict = {}
    torch.manual_seed(0)
    exec(compile(textwrap.dedent(snippet), "README.md", "exec"), namespace)
    assert namespace["grayscale_cams"].shape == (1, 112, 112)
    visualization = namespace["visualization"]
    assert visualization.dtype == np.uint8 and visualization.shape == (3, 112, 112)
    assert np.asarray(namespace["perturbation_visualizations"]).shape == (1, 3, 112, 112)
    for name in ("scores", "arcc_score"):
        values = np.asarray(namespace[name], dtype=np.float64)
        assert values.shape == (1,) and np.isfinite(values).all(), name
    assert 0.0 <= float(namespace["arcc_score"][0]) <= 1.0

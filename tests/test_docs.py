"""The code of docs/writing_a_method.md runs as written, and its classes behave as the page says."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from conftest import hook_count

from pytorch_grad_cam import FinerCAM, GradCAM, NoiseTunnel, RefineCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

PAGE = Path(__file__).parent.parent / "docs" / "writing_a_method.md"
TARGETS = [ClassifierOutputTarget(1), ClassifierOutputTarget(3)]


def _namespace() -> dict:
    namespace: dict = {"__name__": "user_code"}  # a user's module, as outside this package
    for block in re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S):
        exec(compile(block, str(PAGE), "exec"), namespace)
    return namespace


def test_the_page_examples_run_and_give_the_documented_maps(tiny_cnn, golden_input, golden) -> None:
    code = _namespace()
    layers = [tiny_cnn[6]]
    maps = code["MaxGradCAM"](tiny_cnn, layers)(golden_input, TARGETS)
    assert maps.shape == (2, 24, 28) and maps.dtype == np.float32 and maps.max() <= 1
    assert code["MaxGradCAM"].torch_native is False  # defined outside the package, but it uses channel_weights
    smooth = NoiseTunnel(code["MaxGradCAM"](tiny_cnn, layers), num_samples=1, noise_level=0.0, progress=False)
    np.testing.assert_allclose(
        smooth(golden_input, TARGETS), maps / (maps.max(axis=(1, 2), keepdims=True) + 1e-7), atol=1e-5
    )

    gradcam = GradCAM(tiny_cnn, layers)(golden_input, TARGETS)
    sharpened = code["Sharpened"](tiny_cnn, layers)(golden_input, TARGETS)
    expected = gradcam**2 / np.maximum((gradcam**2).max(axis=(1, 2), keepdims=True), 1e-7)
    np.testing.assert_allclose(sharpened, expected, atol=1e-5)
    assert code["Sharpened"](base_method=FinerCAM(tiny_cnn, layers))(golden_input).shape == (2, 24, 28)
    refined = RefineCAM(tiny_cnn, [tiny_cnn[4], tiny_cnn[6]], base_method=code["Sharpened"])(golden_input, TARGETS)
    assert refined.shape == (2, 24, 28)

    np.testing.assert_allclose(
        code["MyGradCAM"](tiny_cnn, layers)(golden_input, TARGETS), golden["GradCAM/one/targets"], atol=1e-5
    )
    assert hook_count(tiny_cnn) == 0


def test_every_row_of_the_architectures_table_names_a_test_that_exists() -> None:
    """docs/architectures.md: each row of the real-library table is backed by a test function that exists."""
    text = (PAGE.parent / "architectures.md").read_text()
    table = text[text.index("## Real model libraries") :]
    table = table[: table.index("\n\n", table.index("| library |"))]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| library")]
    assert len(rows) >= 20
    tests_dir = PAGE.parent.parent / "tests"
    for row in rows:
        found = re.findall(r"`tests/(test_\w+\.py)::(test_\w+)`", row)
        assert found, f"no test named in: {row}"
        for module, name in found:
            assert re.search(rf"^def {name}\(", (tests_dir / module).read_text(), flags=re.M), f"{module}::{name}"

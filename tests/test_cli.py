"""cam.py end to end: every method on the offline demo model, and clear errors for bad flags."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pytorch_grad_cam.cli import main
from pytorch_grad_cam.methods import METHOD_NAMES

ROOT = Path(__file__).resolve().parents[1]


def run_cam_py(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "cam.py"), *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )


def check_outputs(out_dir: Path, method: str, size: tuple[int, int], uniform_cam: bool = False) -> None:
    """The three images written, at ``size``, none uniform (``uniform_cam``: a map of zeros is allowed, which
    random weights can give, and so a uniform cam × guided-backprop image)."""
    for suffix in ("cam", "gb", "cam_gb"):
        path = out_dir / f"{method}_{suffix}.jpg"
        assert path.is_file(), f"{path} was not written"
        image = cv2.imread(str(path))
        assert image is not None and image.shape[:2] == size
        assert image.std() > 1.0 or (uniform_cam and suffix == "cam_gb"), f"{path} is uniform"


@pytest.fixture(scope="module")
def vit_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision ViT-B/32 state dict with random weights (the real loading path of ``--weights``)."""
    import torch
    from torchvision.models import vit_b_32

    torch.manual_seed(0)
    model = vit_b_32(weights=None)
    torch.nn.init.normal_(model.heads.head.weight, std=0.02)  # torchvision starts the head at zero
    path = tmp_path_factory.mktemp("vit") / "vit_b_32.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.parametrize("method", list(METHOD_NAMES))
def test_every_registry_method_through_cam_py(method: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Every name of the registry runs through cam.py (in process): the ViT-only ones on a ViT given as a
    weights file, the others on the demo model."""
    from pytorch_grad_cam.core import BaseCAM
    from pytorch_grad_cam.methods import METHODS

    cls = METHODS[method]
    if issubclass(cls, BaseCAM) and cls.needs.attention_maps:
        weights = request.getfixturevalue("vit_weights")
        args = ["--model", "vit_b_32", "--weights", str(weights)]
        size = (256, 385)  # the bundled photo's size
    else:
        args, size = ["--model", "demo"], (64, 64)
    assert main([*args, "--method", method, "--output-dir", str(tmp_path)]) == 0
    check_outputs(tmp_path, method, size)


def test_demo_with_flags_in_process(tmp_path: Path) -> None:
    image_path = tmp_path / "scene.png"
    from pytorch_grad_cam.demo import demo_image

    image, label, _ = demo_image(seed=3)
    cv2.imwrite(str(image_path), np.uint8(image[:, :, ::-1] * 255))
    status = main(
        [
            "--model",
            "demo",
            "--image-path",
            str(image_path),
            "--method",
            "gradcam++",
            "--aug-smooth",
            "--eigen-smooth",
            "--target",
            str(label),
            "--target-layer",
            "features.-1",
            "--device",
            "cpu",
            "--output-dir",
            str(tmp_path / "out"),
        ]
    )
    assert status == 0
    check_outputs(tmp_path / "out", "gradcam++", (64, 64))


def test_vit_only_method_on_a_cnn_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model", "demo", "--method", "legrad", "--output-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("cam.py: error: ")


def test_compare_writes_one_figure(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="--compare: legrad skipped"):
        assert main(["--model", "demo", "--compare", "--output-dir", str(tmp_path)]) == 0
    figure = cv2.imread(str(tmp_path / "compare.png"))
    assert figure is not None and figure.std() > 1.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "gradcamm"], "unknown method 'gradcamm'; expected one of gradcam, .* Did you mean gradcam"),
        (["--image-path", "/no/such/file.png"], "--image-path: no such file: /no/such/file.png"),
        (["--target-layer", "features.99"], "--target-layer: "),
        (["--target-layer", "featurez"], "--target-layer: .*featurez"),
        (["--device", "cuda:7"], "--device cuda:7: "),
        (["--device", "tpu"], "--device"),
        (["--target", "giraffe"], "--target: unknown class name 'giraffe'"),
        (["--target", "9"], r"--target: class index must be in \[0, 5\); got 9"),
        (["--batch-size", "0"], "--batch-size must be a positive integer; got 0"),
    ],
)
def test_bad_flags_exit_non_zero_with_a_message(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--model", "demo", "--output-dir", str(tmp_path), *args]) == 2
    error = capsys.readouterr().err
    assert error.startswith("cam.py: error: ")
    assert __import__("re").search(message, error), error


def test_unreadable_image_and_bad_flag_as_a_subprocess(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    result = run_cam_py("--model", "demo", "--image-path", str(broken), "--output-dir", str(tmp_path))
    assert result.returncode == 2 and f"cannot read {broken} as an image" in result.stderr
    result = run_cam_py("--no-such-flag")
    assert result.returncode == 2 and "unrecognized arguments: --no-such-flag" in result.stderr


def test_pretrained_model_offline_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """torchvision's real weight loading path is kept; when it cannot download, the error says what to do."""
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    assert main(["--model", "resnet18", "--output-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "could not load its pretrained weights" in error and "--model demo" in error and "--weights" in error


def test_torchvision_model_with_a_weights_file(tmp_path: Path) -> None:
    import torch
    from torchvision.models import resnet18

    weights = tmp_path / "resnet18.pt"
    torch.manual_seed(0)
    torch.save(resnet18(weights=None).state_dict(), weights)
    status = main(
        [
            "--model",
            "resnet18",
            "--weights",
            str(weights),
            "--method",
            "eigencam",
            "--output-dir",
            str(tmp_path / "out"),
        ]
    )
    assert status == 0
    check_outputs(tmp_path / "out", "eigencam", (256, 385))  # the bundled photo's own size, as the reference writes


def _non_square_photo(tmp_path: Path, size: tuple[int, int] = (150, 90)) -> Path:
    """The demo scene as a ``size`` = (width, height) photo, so it differs from the model's 64x64 input."""
    from pytorch_grad_cam.demo import demo_image

    image, _, _ = demo_image(seed=3)
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), cv2.resize(np.uint8(image[:, :, ::-1] * 255), size, interpolation=cv2.INTER_LINEAR))
    return path


def test_outputs_are_written_at_the_photo_resolution(tmp_path: Path) -> None:
    """As the reference's cam.py, the images have the size of the user's photo (not the model's input size)."""
    photo = _non_square_photo(tmp_path)
    for method in ("gradcam", "scorecam"):
        status = main(
            ["--model", "demo", "--image-path", str(photo), "--method", method, "--output-dir", str(tmp_path / "out")]
        )
        assert status == 0
        check_outputs(tmp_path / "out", method, (90, 150))
    cam_image = cv2.imread(str(tmp_path / "out" / "gradcam_cam.jpg"))
    original = cv2.imread(str(photo))
    # The overlay is the photo blended with the heatmap: strongly correlated with the photo itself.
    assert np.corrcoef(cam_image.mean(axis=2).ravel(), original.mean(axis=2).ravel())[0, 1] > 0.3


def test_compare_is_quiet_without_verbose(tmp_path: Path) -> None:
    """No tqdm bars, and each warning as one line on stderr (no Python source lines, no tracebacks)."""
    photo = _non_square_photo(tmp_path)
    result = run_cam_py("--model", "demo", "--image-path", str(photo), "--compare", "--output-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "it/s" not in result.stderr and "%|" not in result.stderr and "\r" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert all(line.startswith(("warning (", "cam.py: warning: ")) for line in lines), result.stderr
    assert "cam.py: warning: --compare: legrad skipped" in result.stderr
    assert cv2.imread(str(tmp_path / "compare.png")) is not None


def test_verbose_shows_progress_bars(tmp_path: Path) -> None:
    quiet = run_cam_py("--model", "demo", "--method", "scorecam", "--output-dir", str(tmp_path))
    assert quiet.returncode == 0 and "ScoreCAM" not in quiet.stderr and "it/s" not in quiet.stderr
    verbose = run_cam_py("--model", "demo", "--method", "scorecam", "--verbose", "--output-dir", str(tmp_path))
    assert verbose.returncode == 0 and "ScoreCAM" in verbose.stderr


def test_method_warnings_are_summarised_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """FullGrad warns that it ignores a --target-layer: one line on stderr, prefixed with the method's name;
    without --target-layer it gets no layers and so has nothing to warn about."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may escape as a real warning
        args = ["--model", "demo", "--method", "fullgrad", "--output-dir", str(tmp_path)]
        assert main([*args, "--target-layer", "features.3"]) == 0
        error = capsys.readouterr().err
        assert error.count("warning (fullgrad): ") == 1 and len(error.strip().splitlines()) == 1, error
        assert main(args) == 0
        assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("where", ["existing_file", "under_a_file"])
def test_output_dir_that_cannot_be_a_folder_is_a_one_line_error(where: str, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    out = blocker if where == "existing_file" else blocker / "inner"
    assert main(["--model", "demo", "--method", "gradcam", "--output-dir", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("cam.py: error: --output-dir: cannot create the folder") and "\n" not in error


@pytest.mark.parametrize("content", [b"\x00\x01random bytes, not a checkpoint", "list"])
def test_a_weights_file_that_is_not_a_state_dict_is_a_one_line_error(content, tmp_path: Path, capsys) -> None:
    import torch

    weights = tmp_path / "weights.pt"
    if content == "list":
        torch.save([torch.zeros(1)], weights)
        expected = "holds list, not a state dict of tensors"
    else:
        weights.write_bytes(content)
        expected = "cannot read"
    status = main(["--model", "resnet18", "--weights", str(weights), "--output-dir", str(tmp_path / "out")])
    assert status == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("cam.py: error: --weights: ") and expected in error and str(weights) in error


def test_an_image_path_that_is_not_utf8_works(tmp_path: Path) -> None:
    """cv2.imread crashes (segfault) on a str path with a lone surrogate; the bytes are read by Python."""
    import os

    from pytorch_grad_cam.demo import demo_image

    image, _, _ = demo_image(seed=5)
    name = os.fsdecode(b"scene-\xff.png")  # not valid UTF-8: a lone surrogate in the str
    path = tmp_path / name
    ok, encoded = cv2.imencode(".png", np.uint8(image[:, :, ::-1] * 255))
    assert ok
    path.write_bytes(encoded.tobytes())
    assert main(["--model", "demo", "--image-path", str(path), "--output-dir", str(tmp_path / "out")]) == 0
    check_outputs(tmp_path / "out", "gradcam", (64, 64))


def test_a_corrupt_image_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG not really")
    assert main(["--model", "demo", "--image-path", str(path), "--output-dir", str(tmp_path / "out")]) == 2
    assert "--image-path: cannot read" in capsys.readouterr().err


def _small_torchvision(name: str) -> Callable[..., torch.nn.Module]:
    """A builder of the real torchvision class behind ``name`` at a size a test can afford (same module names)."""
    from torchvision.models import SwinTransformer, VisionTransformer

    if name == "vit_b_16":
        return lambda weights=None: VisionTransformer(
            image_size=224, patch_size=16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64
        )
    return lambda weights=None: SwinTransformer(
        patch_size=[4, 4], embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=[7, 7]
    )


@pytest.mark.parametrize("method", list(METHOD_NAMES))
@pytest.mark.parametrize("name", ["vit_b_16", "swin_t"])
def test_every_registry_method_on_vit_and_swin_with_a_weights_file(
    name: str, method: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``cam.py --model vit_b_16|swin_t --weights FILE --method M``: the layer and reshape chosen automatically,
    the outputs written; the methods that cannot apply end in one clear line (exit 2), never a traceback. The
    torchvision classes are the real ones, built smaller so that every method fits the suite's time."""
    import torch
    from torchvision import models

    real_builder = models.get_model_builder
    monkeypatch.setattr(models, "get_model_builder", lambda n: _small_torchvision(n) if n == name else real_builder(n))
    torch.manual_seed(0)
    model = _small_torchvision(name)()
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):  # torchvision starts the ViT head at zero
            torch.nn.init.normal_(module.weight, std=0.05)
    weights = tmp_path / f"{name}.pt"
    torch.save(model.state_dict(), weights)
    args = ["--model", name, "--weights", str(weights), "--method", method, "--output-dir", str(tmp_path / "out")]
    status = main([*args, "--batch-size", "256"])
    error = capsys.readouterr().err
    assert "Traceback" not in error
    assert error.startswith("target layer: ")
    if method == "cam":  # CAM is defined for a GAP + linear head only
        assert status == 2 and "CAM needs a model whose output is fc_layer(global average pooling" in error
    elif method == "legrad" and name == "swin_t":  # windowed attention has no class-token attention map
        assert status == 2 and "cam.py: error: " in error
    else:
        assert status == 0, error
        check_outputs(tmp_path / "out", method, (256, 385), uniform_cam=True)


@pytest.mark.parametrize("method", ["gradcam", "ablationcam", "fullgrad", "scorecam"])
@pytest.mark.parametrize("name", ["test_vit", "test_convnext"])
def test_a_timm_model_with_a_weights_file(
    name: str, method: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--model timm:<name> --weights FILE``: built by timm without downloading, its input size and
    normalisation from timm's data config, the layer and reshape chosen automatically."""
    timm = pytest.importorskip("timm", reason="timm is not installed (pip install -e '.[integrations]')")
    import torch

    torch.manual_seed(0)
    weights = tmp_path / f"{name}.pt"
    torch.save(timm.create_model(name, pretrained=False).state_dict(), weights)
    out = tmp_path / "out"
    args = ["--model", f"timm:{name}", "--weights", str(weights), "--method", method, "--output-dir", str(out)]
    assert main(args) == 0
    error = capsys.readouterr().err
    assert error.startswith("target layer: ") and "Traceback" not in error, error
    check_outputs(out, method, (256, 385), uniform_cam=True)


def test_timm_names_and_offline_weights_are_one_line_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pytest.importorskip("timm", reason="timm is not installed (pip install -e '.[integrations]')")
    import huggingface_hub.constants

    assert main(["--model", "timm:resnet_18", "--output-dir", str(tmp_path)]) == 2
    assert "unknown timm model 'resnet_18'. Did you mean timm:resnet18" in capsys.readouterr().err
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # what an unreachable hub gives, fast
    assert main(["--model", "timm:test_vit", "--output-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--model timm:test_vit: could not load its pretrained weights" in error
    assert "--weights PATH" in error
    monkeypatch.setitem(sys.modules, "timm", None)  # timm not installed
    assert main(["--model", "timm:test_vit", "--output-dir", str(tmp_path)]) == 2
    assert "timm is not installed" in capsys.readouterr().err


def test_a_class_name_matches_one_synonym_of_a_description() -> None:
    from pytorch_grad_cam.cli import resolve_target

    names = ["goldfish, Carassius auratus", "tabby, tabby cat"]
    assert resolve_target("tabby cat", names, 2) == 1 and resolve_target("Goldfish", names, 2) == 0

"""The benchmark's demo models (pytorch_grad_cam.demo.model, .train): the MLP-head CNN and the ViT, their CAM target
layers, save / load round trips of every model name, the CAM methods they are meant to tell apart, and deterministic
training. No shipped weights of the new models are loaded (tests/test_demo_model.py covers the shipped CNN)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
import torch
from conftest import hook_count
from torch import nn

from pytorch_grad_cam import GradCAM, HiResCAM, LeGrad
from pytorch_grad_cam.demo.model import (
    DEMO_MODELS,
    DEMO_WEIGHTS,
    DemoCNN,
    DemoViT,
    check_model_name,
    demo_reshape_transform,
    demo_target_layers,
    load_demo_model,
    save_demo_model,
)
from pytorch_grad_cam.demo.scenarios import SHORTCUT_CLASSES, ShortcutTrainingScenes
from pytorch_grad_cam.demo.scenes import SHAPES, SceneDataset
from pytorch_grad_cam.demo.train import HELDOUT_SEED, RECIPES, TEST_SEED, build_model, scenes, train
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform

pytestmark = pytest.mark.usefixtures("one_thread")

NAMES = tuple(DEMO_MODELS)
Model = TypeVar("Model", bound=nn.Module)


def _with_statistics(model: Model) -> Model:
    """``model`` after one training-mode forward pass (BatchNorm running statistics away from 0 / 1), in eval
    mode."""
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 64, 64))
    return model.eval()


def _rounded(model: Model) -> Model:
    """A copy of ``model`` whose floating-point weights went through float16 (as :func:`save_demo_model` stores
    them)."""
    rounded = copy.deepcopy(model)
    rounded.load_state_dict(
        {key: value.half().float() if value.is_floating_point() else value for key, value in model.state_dict().items()}
    )
    return rounded.eval()


# ------------------------------------------------------------------------------------------------ models
def test_mlp_head_cnn_forward_and_layout() -> None:
    model = DemoCNN(head="mlp").eval()
    assert model.head == "mlp" and isinstance(model.neck, nn.Sequential)
    assert isinstance(model.neck[0], nn.Conv2d) and model.neck[0].kernel_size == (1, 1)
    assert model.neck[0].out_channels == 128 and isinstance(model.classifier, nn.Sequential)
    assert [layer.out_features for layer in model.classifier if isinstance(layer, nn.Linear)] == [64, len(SHAPES)]
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, len(SHAPES))
        assert model(torch.randn(1, 3, 48, 80)).shape == (1, len(SHAPES))
    assert DemoCNN(3, head="mlp")(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    assert model.config() == {"widths": [16, 32, 48, 64, 96], "head": "mlp"}
    with pytest.raises(ValueError, match="head must be 'linear' or 'mlp'"):
        DemoCNN(head="conv")  # type: ignore[arg-type]


def test_linear_head_cnn_keeps_the_first_release_layout() -> None:
    model = DemoCNN()
    assert model.head == "linear" and not hasattr(model, "neck") and isinstance(model.classifier, nn.Linear)
    keys = list(model.state_dict())
    assert [key for key in keys if not key.startswith("features.")] == ["classifier.weight", "classifier.bias"]
    # exactly the keys of the shipped weights (written by the first release, which had no other head)
    shipped = torch.load(DEMO_WEIGHTS, map_location="cpu", weights_only=True)["state_dict"]
    assert keys == list(shipped)
    assert model.config() == {"widths": [16, 32, 48, 64, 96], "head": "linear"}


def test_vit_forward_shapes_and_position_embeddings() -> None:
    model = DemoViT().eval()
    dim = model.settings["dim"]
    assert model.grid == 8 and model.pos_embed.shape == (1, 1 + 64, dim) and len(model.blocks) == 4
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, len(SHAPES))
        assert model.forward_features(torch.randn(2, 3, 64, 64)).shape == (2, 1 + 64, dim)
        # a non-square input: a 6 x 10 grid, the position embeddings interpolated
        assert model.forward_features(torch.randn(1, 3, 48, 80)).shape == (1, 1 + 60, dim)
        output = model(torch.randn(1, 3, 48, 80))
    assert output.shape == (1, len(SHAPES)) and torch.isfinite(output).all()
    small = DemoViT(2, dim=32, depth=1, heads=2, image_size=32).eval()
    with torch.no_grad():
        assert small(torch.randn(1, 3, 64, 64)).shape == (1, 2)
    assert small.config() == {"dim": 32, "depth": 1, "heads": 2, "mlp_ratio": 2, "image_size": 32}
    with pytest.raises(ValueError, match="image_size must be a multiple of 8"):
        DemoViT(image_size=60)


def test_target_layers_and_reshape_transform() -> None:
    vit, cnn, mlp = DemoViT(), DemoCNN(), DemoCNN(head="mlp")
    layers = demo_target_layers(vit)
    assert len(layers) == 1 and layers[0] is vit.blocks[-1].norm1
    assert demo_reshape_transform(vit) is vit_reshape_transform and callable(demo_reshape_transform(vit))
    for model in (cnn, mlp):
        layers = demo_target_layers(model)
        assert len(layers) == 1 and layers[0] is model.features[-1]
        assert demo_reshape_transform(model) is None
    for function in (demo_target_layers, demo_reshape_transform):
        with pytest.raises(TypeError, match="DemoCNN or DemoViT"):
            function(nn.Linear(2, 2))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name: str, tmp_path: Path) -> None:
    spec = DEMO_MODELS[name]
    model = _with_statistics(build_model(name))
    assert isinstance(model, DemoViT if name == "vit" else DemoCNN)
    path = tmp_path / "weights" / f"{name}.pt"  # the folder is created
    save_demo_model(model, path, {"heldout_accuracy": 0.5, "seed": 3}, classes=spec.classes)
    loaded = load_demo_model(path=path, name=name)  # type: ignore[arg-type]
    assert type(loaded) is type(model) and not loaded.training
    assert loaded.metadata == {"heldout_accuracy": 0.5, "seed": 3}
    assert loaded.config() == model.config()
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert payload["classes"] == list(spec.classes)
    assert payload["architecture"] == ("vit" if name == "vit" else "cnn")
    assert ("widths" in payload) == (name in ("cnn", "shortcut_cnn"))  # the first release's key: linear heads only
    assert all(v.dtype == torch.float16 for v in payload["state_dict"].values() if v.is_floating_point())
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        output = loaded(x)
        assert output.shape == (3, len(spec.classes))
        torch.testing.assert_close(output, _rounded(model)(x), rtol=1e-5, atol=1e-5)
    for key, value in loaded.state_dict().items():
        expected = model.state_dict()[key]
        if value.is_floating_point():
            assert value.dtype == torch.float32
            torch.testing.assert_close(value, expected.half().float(), rtol=0, atol=0)
        else:
            assert torch.equal(value, expected)


def test_build_model_matches_the_classes() -> None:
    assert set(RECIPES) == set(DEMO_MODELS)
    assert (
        DEMO_MODELS["shortcut_cnn"].classes == SHORTCUT_CLASSES and DEMO_MODELS["shortcut_cnn"].scenario == "shortcut"
    )
    for name in NAMES:
        assert check_model_name(name) == name
        model = build_model(name).eval()
        with torch.no_grad():
            assert model(torch.randn(1, 3, 64, 64)).shape == (1, len(DEMO_MODELS[name].classes))
    assert isinstance(build_model("mlp_head_cnn"), DemoCNN) and build_model("mlp_head_cnn").head == "mlp"
    assert build_model("shortcut_cnn").head == "linear"


def test_load_rejects_wrong_classes_names_and_files(tmp_path: Path) -> None:
    shortcut, shapes = tmp_path / "shortcut.pt", tmp_path / "shapes.pt"
    save_demo_model(build_model("shortcut_cnn"), shortcut, classes=SHORTCUT_CLASSES)
    save_demo_model(build_model("cnn"), shapes)  # the default classes: the shapes
    for name in ("cnn", "mlp_head_cnn", "vit"):
        with pytest.raises(ValueError, match=r"is for classes \('checker', 'stripes', 'no marker'\)"):
            load_demo_model(path=shortcut, name=name)
    with pytest.raises(ValueError, match=re.escape(f"the 'shortcut_cnn' model has {SHORTCUT_CLASSES}")):
        load_demo_model(path=shapes, name="shortcut_cnn")
    with pytest.raises(ValueError, match="name must be one of"):
        load_demo_model(name="nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name must be one of"):
        load_demo_model(path=shapes, name="nope")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="--model vit"):
        load_demo_model(path=tmp_path / "missing.pt", name="vit")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a weights file")
    with pytest.raises(ValueError, match="cannot read"):
        load_demo_model(path=garbage)
    # weights of another architecture under the right classes
    mismatched = tmp_path / "mismatched.pt"
    payload = torch.load(shapes, map_location="cpu", weights_only=True)
    payload["state_dict"] = {key: value for key, value in payload["state_dict"].items() if "classifier" not in key}
    torch.save(payload, mismatched)
    with pytest.raises(ValueError, match="do not fit the demo model"):
        load_demo_model(path=mismatched)
    # a file of another architecture than the name's
    mlp = tmp_path / "mlp.pt"
    save_demo_model(build_model("mlp_head_cnn"), mlp)
    with pytest.raises(ValueError, match="holds a cnn with a mlp head; the 'vit' model is a vit"):
        load_demo_model(path=mlp, name="vit")
    with pytest.raises(ValueError, match="the 'cnn' model is a cnn with a linear head"):
        load_demo_model(path=mlp, name="cnn")
    assert load_demo_model(path=mlp, name="mlp_head_cnn").head == "mlp"


def test_first_release_format_still_loads(tmp_path: Path) -> None:
    """A file without the "architecture" and "config" keys (the first release's) is a linear-head CNN."""
    model = _with_statistics(DemoCNN())
    path = tmp_path / "old.pt"
    save_demo_model(model, path)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    del payload["architecture"], payload["config"]
    torch.save(payload, path)
    loaded = load_demo_model(path=path)
    assert isinstance(loaded, DemoCNN) and loaded.head == "linear" and loaded.metadata == {}
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), _rounded(model)(x), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------------------- CAMs
def test_gradcam_and_legrad_run_on_the_vit() -> None:
    model = DemoViT().eval()
    x = torch.randn(2, 3, 64, 64)
    layers, reshape = demo_target_layers(model), demo_reshape_transform(model)
    with GradCAM(model, layers, reshape_transform=reshape) as cam:
        maps = cam(x, [ClassifierOutputTarget(1), ClassifierOutputTarget(4)])
    assert maps.shape == (2, 64, 64) and np.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1 + 1e-6
    with LeGrad(model, target_layers=layers, reshape_transform=reshape) as cam:
        maps = cam(x, [ClassifierOutputTarget(1), ClassifierOutputTarget(4)])
    assert maps.shape == (2, 64, 64) and np.isfinite(maps).all()
    # ReLU'd gradients of a random ViT: positive somewhere, scaled to [0, 1] per image
    np.testing.assert_allclose(maps.reshape(2, -1).max(axis=1), 1.0, atol=1e-6)
    assert maps.min() >= 0
    assert hook_count(model) == 0


def test_gradcam_and_hirescam_differ_on_the_mlp_head_only() -> None:
    """Behind a global average and a linear layer the gradient is the same at every position of the target layer,
    so HiResCAM's element-wise product equals GradCAM's channel weights; the 1 x 1 convolution and ReLU of the MLP
    head make it vary."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64).repeat_interleave(len(SHAPES), dim=0)  # each image explained for every class
    targets = [ClassifierOutputTarget(k) for k in range(len(SHAPES))] * 2
    for head in ("linear", "mlp"):
        torch.manual_seed(0)
        model = _with_statistics(DemoCNN(head=head))
        with GradCAM(model, demo_target_layers(model)) as cam:
            gradcam = cam(x, targets)
        with HiResCAM(model, demo_target_layers(model)) as cam:
            hirescam = cam(x, targets)
        assert gradcam.shape == hirescam.shape == (2 * len(SHAPES), 64, 64)
        # a random model's ReLU'd map may be 0 everywhere for some classes, not for all
        shown = (gradcam.reshape(len(x), -1).max(axis=1) > 0.5) & (hirescam.reshape(len(x), -1).max(axis=1) > 0.5)
        assert shown.sum() >= 2, head
        difference = np.abs(gradcam - hirescam).reshape(len(x), -1).max(axis=1)
        if head == "linear":
            assert difference.max() < 1e-5
        else:
            assert difference[shown].max() > 0.05


# ------------------------------------------------------------------------------------------- training
def _trained(name: str, out: Path, seed: int = 0) -> dict[str, float]:
    return train(name, out=out, epochs=1, seed=seed, train_size=48, heldout_size=8, batch_size=16, threads=1)


@pytest.mark.parametrize("name", NAMES)
def test_training_is_deterministic(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = _trained(name, tmp_path / "a.pt"), _trained(name, tmp_path / "b.pt")
    assert "final held-out accuracy" in capsys.readouterr().out
    assert first["heldout_accuracy"] == second["heldout_accuracy"]
    assert first["train_accuracy"] == second["train_accuracy"]
    assert first["parameters"] == sum(p.numel() for p in build_model(name).parameters())
    a, b = (torch.load(tmp_path / f, map_location="cpu", weights_only=True) for f in ("a.pt", "b.pt"))
    assert list(a["state_dict"]) == list(b["state_dict"]) == list(build_model(name).state_dict())
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    metadata = a["metadata"]
    assert metadata["seed"] == 0 and metadata["epochs"] == 1 and metadata["train_size"] == 48
    assert metadata["heldout_seed"] == HELDOUT_SEED and metadata["heldout_size"] == 8
    assert metadata["lr"] == RECIPES[name]["lr"]
    if name == "cnn":  # the first release's keys
        assert "model" not in metadata and "weight_decay" not in metadata
    else:
        assert metadata["model"] == name and metadata["scenario"] == DEMO_MODELS[name].scenario
        assert metadata["weight_decay"] == RECIPES[name]["weight_decay"]
    loaded = load_demo_model(path=tmp_path / "a.pt", name=name)  # type: ignore[arg-type]
    with torch.no_grad():
        assert loaded(torch.randn(1, 3, 64, 64)).shape == (1, len(DEMO_MODELS[name].classes))


def test_training_seed_changes_the_weights(tmp_path: Path) -> None:
    _trained("shortcut_cnn", tmp_path / "a.pt")
    _trained("shortcut_cnn", tmp_path / "b.pt", seed=1)
    a, b = (torch.load(tmp_path / f, map_location="cpu", weights_only=True)["state_dict"] for f in ("a.pt", "b.pt"))
    assert not torch.equal(a["classifier.weight"], b["classifier.weight"])


def test_training_scenes_and_bad_arguments(tmp_path: Path) -> None:
    assert isinstance(scenes("vit", 3, 0), SceneDataset) and isinstance(scenes("mlp_head_cnn", 3, 0), SceneDataset)
    training = scenes("shortcut_cnn", 3, 0)
    assert isinstance(training, ShortcutTrainingScenes) and len(training) == 3
    for seed in (TEST_SEED, HELDOUT_SEED):
        with pytest.raises(ValueError, match="seed must not be one of the held-out seeds"):
            train("vit", out=tmp_path / "x.pt", epochs=1, seed=seed, train_size=8, heldout_size=4, threads=1)
    with pytest.raises(ValueError, match="name must be one of"):
        train("resnet", out=tmp_path / "x.pt", epochs=1, train_size=8, heldout_size=4, threads=1)
    with pytest.raises(ValueError, match="name must be one of"):
        build_model("resnet")
    with pytest.raises(ValueError, match="epochs"):
        train("vit", out=tmp_path / "x.pt", epochs=0, train_size=8, heldout_size=4, threads=1)
    assert not (tmp_path / "x.pt").exists()


def test_verify_retrains_with_the_recorded_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--verify`` retrains a shipped model from its metadata and compares: here a tiny "shipped" model, so the
    retrained weights are bit-identical; a model trained otherwise is reported as different."""
    from pytorch_grad_cam.demo import train as train_module

    shipped = tmp_path / "shipped.pt"
    _trained("shortcut_cnn", shipped)
    spec = DEMO_MODELS["shortcut_cnn"]
    monkeypatch.setitem(train_module.DEMO_MODELS, "shortcut_cnn", type(spec)(shipped, *list(vars(spec).values())[1:]))
    report = train_module.verify("shortcut_cnn", tmp_path / "again.pt")
    assert report["identical"] and report["passed"] and report["max_abs_difference"] == 0.0
    assert report["retrained_accuracy"] == report["shipped_accuracy"]
    _trained("shortcut_cnn", shipped, seed=1)  # the "shipped" file now differs from what its metadata retrains...
    payload = torch.load(shipped, map_location="cpu", weights_only=True)
    payload["metadata"]["seed"] = 0  # ...while claiming seed 0
    payload["metadata"]["heldout_accuracy"] = 0.0
    torch.save(payload, shipped)
    report = train_module.verify("shortcut_cnn", tmp_path / "again.pt")
    assert not report["identical"] and report["max_abs_difference"] > 0
    assert report["passed"] == (report["retrained_accuracy"] <= train_module.ACCURACY_TOLERANCE)

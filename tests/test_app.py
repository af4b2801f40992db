"""The explorer's logic (pytorch_grad_cam.app.explorer) without a browser: models, images, layers, classes,
running methods and scoring them. Only the last tests need gradio (the page's construction)."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pytorch_grad_cam.app import explorer
from pytorch_grad_cam.app.explorer import (
    ExplorerError,
    decode_image,
    demo_scene,
    demo_scene_names,
    ground_truth_image,
    list_target_layers,
    load_model,
    prepare_input,
    resolve_target_layer,
    run_methods,
    score_map,
    top_classes,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cnn() -> explorer.ModelBundle:
    return load_model("demo:cnn")


@pytest.fixture(scope="module")
def scene() -> explorer.Scene:
    return demo_scene("single 0")


@pytest.fixture(scope="module")
def prepared(cnn: explorer.ModelBundle, scene: explorer.Scene) -> tuple[np.ndarray, torch.Tensor]:
    return prepare_input(cnn, scene.image)


def test_importing_the_package_does_not_import_gradio() -> None:
    code = "import sys, pytorch_grad_cam, pytorch_grad_cam.app.explorer; print('gradio' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "False"


def test_the_command_without_gradio_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytorch_grad_cam.app.__main__ import main

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio now raises ImportError
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    assert main(["--no-browser"]) == 2
    error = capsys.readouterr().err
    assert "needs gradio" in error and 'pip install -e ".[app]"' in error


def test_the_command_refuses_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    from pytorch_grad_cam.app.__main__ import main

    assert main(["--port", "70000", "--no-browser"]) == 2
    assert "--port must be in 1..65535" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ models
def test_demo_models_load_offline_and_are_cached() -> None:
    bundle = load_model("demo:cnn")
    assert load_model("demo") is bundle  # plain "demo" is the demo CNN, loaded once
    assert bundle.class_names == ("disc", "square", "triangle", "star", "cross")
    assert bundle.size == 64 and not bundle.model.training
    assert [value for _, value in explorer.model_choices()] == [
        "demo:cnn",
        "demo:mlp_head_cnn",
        "demo:vit",
        "demo:shortcut_cnn",
    ]


def test_an_offline_torchvision_model_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """No cached weights and no network: one message naming the model and the cache, never random weights."""
    from torchvision.models import _api

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(_api.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(ExplorerError, match=r"cannot load the model 'resnet18': could not load its pretrained weights"):
        load_model("resnet18")
    assert "resnet18" not in explorer._MODEL_CACHE


def test_unknown_models_are_clear_errors() -> None:
    with pytest.raises(ExplorerError, match="unknown torchvision classification model 'resnet5O'"):
        load_model("resnet5O")
    with pytest.raises(ExplorerError, match="unknown demo model 'nope'"):
        load_model("demo:nope")
    with pytest.raises(ExplorerError, match="choose a model"):
        load_model("  ")
    with pytest.raises(TypeError, match="name must be a string"):
        load_model(3)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ images
def test_demo_scenes_carry_their_ground_truth() -> None:
    names = demo_scene_names()
    assert len(names) == 40 and names[0] == "single 0" and "pair 9" in names
    single = demo_scene("single 3")
    assert single.image.shape == (64, 64, 3) and single.image.dtype == np.float32
    assert single.scenario == "single" and len(single.objects) == 1
    (mask,) = single.objects.values()
    assert mask.dtype == bool and mask.shape == (64, 64) and mask.any()
    pair = demo_scene("pair 1")
    assert len(pair.objects) == 2  # two objects of different classes
    shortcut = demo_scene("shortcut 0")
    assert set(shortcut.objects) <= {"checker", "stripes"}
    assert single.mask_for("no such class") is None
    for bad in ("single", "single x", "party 1", "single -1"):
        with pytest.raises(ExplorerError, match="unknown demo scene"):
            demo_scene(bad)


def test_an_uploaded_file_that_is_not_an_image_is_a_clear_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(ExplorerError, match=r"notes\.txt is not an image this explorer can decode"):
        decode_image(text)
    with pytest.raises(ExplorerError, match="is not an image"):
        decode_image(b"\x89PNG\r\n\x1a\n truncated")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ExplorerError, match=r"empty\.png is empty"):
        decode_image(empty)
    with pytest.raises(ExplorerError, match=r"cannot read missing\.png"):
        decode_image(tmp_path / "missing.png")
    with pytest.raises(TypeError, match="source must be a file path or bytes"):
        decode_image(42)  # type: ignore[arg-type]


def test_an_uploaded_image_decodes_to_rgb(tmp_path: Path, cnn: explorer.ModelBundle) -> None:
    bgr = np.zeros((30, 50, 3), np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR order
    path = tmp_path / "red.png"
    cv2.imwrite(str(path), bgr)
    scene = decode_image(path)
    assert scene.title == "red.png" and scene.scenario is None and not scene.objects
    assert scene.image.shape == (30, 50, 3) and np.allclose(scene.image[0, 0], [1, 0, 0])
    rgb, input_tensor = prepare_input(cnn, scene.image)  # squashed to the model's square input
    assert rgb.shape == (64, 64, 3) and tuple(input_tensor.shape) == (1, 3, 64, 64)


# ------------------------------------------------------------------------------------------------ layers, classes
def test_layers_are_listed_with_their_output_shapes(
    cnn: explorer.ModelBundle, prepared: tuple[np.ndarray, torch.Tensor]
) -> None:
    layers = list_target_layers(cnn.model, prepared[1])
    by_name = {option.name: option for option in layers}
    assert by_name["features.0.0"].shape == (1, 16, 32, 32)
    assert by_name["features.3"].shape == (1, 96, 8, 8)
    assert [option.name for option in layers if option.automatic] == ["features.3"]
    assert by_name["features.3"].label == "features.3 · Sequential · (1, 96, 8, 8) · auto"
    assert all(option.layout == "NCHW" for option in layers)


def test_vit_layers_are_token_maps_and_a_chosen_token_layer_runs(scene: explorer.Scene) -> None:
    vit = load_model("demo:vit")
    rgb, input_tensor = prepare_input(vit, scene.image)
    layers = {option.name: option for option in list_target_layers(vit.model, input_tensor)}
    assert layers["blocks.3.norm1"].automatic and layers["blocks.3.norm1"].layout == "tokens"
    assert layers["blocks.2.norm1"].grid == (8, 8) and layers["blocks.2.norm1"].extra_tokens == 1
    _, reshape, name = resolve_target_layer(vit.model, input_tensor, "blocks.2.norm1")
    assert name == "blocks.2.norm1" and reshape is not None
    assert tuple(reshape(torch.zeros(1, 65, 64)).shape) == (1, 64, 8, 8)
    (result,) = run_methods(vit, rgb, input_tensor, ["gradcam"], 0, layer="blocks.2.norm1")
    assert result.error is None and result.grayscale is not None and result.grayscale.shape == (64, 64)


def test_an_unknown_layer_is_a_clear_error(
    cnn: explorer.ModelBundle, prepared: tuple[np.ndarray, torch.Tensor]
) -> None:
    with pytest.raises(ExplorerError, match="layer 'pool' does not output a map"):
        resolve_target_layer(cnn.model, prepared[1], "pool")


def test_top_five_classes_come_from_one_forward_pass(
    cnn: explorer.ModelBundle, prepared: tuple[np.ndarray, torch.Tensor], scene: explorer.Scene
) -> None:
    top = top_classes(cnn, prepared[1])
    assert len(top) == 5 and {score.name for score in top} == set(cnn.class_names or ())
    probabilities = [score.probability for score in top]
    assert probabilities == sorted(probabilities, reverse=True) and abs(sum(probabilities) - 1) < 1e-5
    assert top[0].name in scene.objects  # the demo CNN gets this held-out scene right
    assert top[0].label == f"{top[0].name} · {top[0].probability:.3f}"
    assert len(top_classes(cnn, prepared[1], k=2)) == 2
    with pytest.raises(ValueError, match="k"):
        top_classes(cnn, prepared[1], k=0)


# ------------------------------------------------------------------------------------------------ running
def test_gradcam_on_a_demo_scene_gives_a_map_a_timing_and_scores(
    cnn: explorer.ModelBundle, prepared: tuple[np.ndarray, torch.Tensor], scene: explorer.Scene
) -> None:
    rgb, input_tensor = prepared
    (name,) = scene.objects
    calls: list[tuple[int, int, str]] = []
    (result,) = run_methods(
        cnn,
        rgb,
        input_tensor,
        ["gradcam"],
        cnn.class_names.index(name),  # type: ignore[union-attr]
        mask=scene.mask_for(name),
        progress=lambda done, total, title: calls.append((done, total, title)),
    )
    assert result.error is None and result.title == "GradCAM" and result.seconds > 0
    assert result.grayscale is not None and result.grayscale.shape == (64, 64)
    assert result.grayscale.min() >= 0 and result.grayscale.max() <= 1
    assert result.overlay is not None and result.overlay.shape == (256, 256, 3) and result.overlay.dtype == np.uint8
    assert result.pointing_game in (0.0, 1.0)
    assert result.relevance_mass is not None and 0 <= result.relevance_mass <= 1
    assert (result.pointing_game, result.relevance_mass) == score_map(result.grayscale, scene.mask_for(name))
    assert result.caption == f"GradCAM · {result.seconds:.3f} s"
    assert calls == [(0, 1, "GradCAM"), (1, 1, "done")]


def test_a_method_that_raises_is_reported_and_the_others_still_run(
    cnn: explorer.ModelBundle, prepared: tuple[np.ndarray, torch.Tensor]
) -> None:
    results = run_methods(cnn, *prepared, ["legrad", "HiResCAM", "eigencam"], 1, layer="features.2")
    assert [result.method for result in results] == ["legrad", "hirescam", "eigencam"]
    legrad, hires, eigen = results
    assert legrad.error is not None and legrad.error.startswith("ValueError: ") and "transformer block" in legrad.error
    assert legrad.grayscale is None and legrad.overlay is None
    for result in (hires, eigen):
        assert result.error is None and result.grayscale is not None
        assert result.pointing_game is None and result.relevance_mass is None  # no mask, no scores
    auto = run_methods(cnn, *prepared, ["hirescam"], 1)[0]
    assert not np.allclose(auto.grayscale, hires.grayscale)  # features.2 (16 × 16) is another map


def test_fullgrad_keeps_its_own_layers_with_the_automatic_choice(
    cnn: explorer.ModelBundle, prepared: tuple[np.ndarray, torch.Tensor]
) -> None:
    (result,) = run_methods(cnn, *prepared, ["fullgrad"], 1)
    assert result.error is None and result.grayscale is not None


def test_bad_run_arguments_are_clear_errors(
    cnn: explorer.ModelBundle, prepared: tuple[np.ndarray, torch.Tensor]
) -> None:
    with pytest.raises(ExplorerError, match="choose at least one method"):
        run_methods(cnn, *prepared, [], 0)
    with pytest.raises(ExplorerError, match="unknown method 'gradcan'"):
        run_methods(cnn, *prepared, ["gradcan"], 0)
    with pytest.raises(ExplorerError, match="class index 9 is out of range: demo:cnn has 5 classes"):
        run_methods(cnn, *prepared, ["gradcam"], 9)
    with pytest.raises(TypeError, match="methods must be a list"):
        run_methods(cnn, *prepared, "gradcam", 0)
    with pytest.raises(TypeError, match="bundle must be a ModelBundle"):
        run_methods(cnn.model, *prepared, ["gradcam"], 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="input_tensor must be one image"):
        run_methods(cnn, prepared[0], prepared[1][0], ["gradcam"], 0)
    with pytest.raises(ValueError, match="rgb must have the input's size"):
        run_methods(cnn, np.zeros((32, 32, 3), np.float32), prepared[1], ["gradcam"], 0)


def test_score_map_and_ground_truth_image() -> None:
    mask = np.zeros((8, 8), bool)
    mask[2:4, 2:4] = True
    cam = np.zeros((8, 8), np.float32)
    cam[3, 3] = 1.0
    assert score_map(cam, mask) == (1.0, 1.0)
    cam[6, 6] = 3.0
    assert score_map(cam, mask) == (0.0, 0.25)
    image = ground_truth_image(np.full((8, 8, 3), 0.5, np.float32), mask)
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    with pytest.raises(ValueError, match="mask must have the image's shape"):
        ground_truth_image(np.zeros((4, 4, 3), np.float32), mask)


# ------------------------------------------------------------------------------------------------ the page (gradio)
def test_the_page_builds_with_every_widget(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gradio", reason="the page needs the app extra: pip install -e '.[app]'")
    import tqdm
    import tqdm.auto

    from pytorch_grad_cam.app.ui import build_app

    # gradio patches tqdm for the whole process when a page tracks tqdm bars (fine in the app's own process): put
    # it back after the test, so that later tests see tqdm's own bars
    for name in ("__init__", "update", "close", "__exit__", "__iter__"):
        monkeypatch.setattr(tqdm.tqdm, name, getattr(tqdm.tqdm, name))
    monkeypatch.setattr(tqdm.auto, "tqdm", tqdm.auto.tqdm)

    app = build_app()
    ids = {block.elem_id for block in app.blocks.values() if getattr(block, "elem_id", None)}
    assert {"scene", "upload", "model", "layer", "class", "methods", "run", "message", "maps", "scores"} <= ids
    with pytest.raises(ValueError, match="default_scene must be one of the demo scenes"):
        build_app(default_scene="nowhere 3")


def test_the_page_helpers_need_no_gradio() -> None:
    """The page's table, class menu and Markdown escaping are plain functions (ui imports gradio lazily)."""
    from pytorch_grad_cam.app.ui import _class_menu, _plain, _scores_table

    assert _plain("target_layers[0] __init__ *x*") == r"target\_layers\[0\] \_\_init\_\_ \*x\*"

    scene = demo_scene("pair 1")
    names = ("disc", "square", "triangle", "star", "cross")
    scores = [explorer.ClassScore(i, names[i], p) for i, p in ((1, 0.6), (0, 0.3))]
    choices, default = _class_menu(scores, scene, names)
    truth = [names.index(name) for name in scene.objects]
    assert default == truth[0] and {value for _, value in choices} >= set(truth)
    results = [
        explorer.MethodResult("gradcam", "GradCAM", 0.01, pointing_game=1.0, relevance_mass=0.5),
        explorer.MethodResult("legrad", "LeGrad", 0.0, error="ValueError: no attention"),
    ]
    table = _scores_table(results, scene, names[truth[0]])
    assert "| GradCAM | 0.010 | 1 | 0.500 |" in table and "**LeGrad failed**: ValueError: no attention" in table
    assert "| LeGrad | 0.000 | failed | failed |" in table
    absent = next(name for name in names if name not in scene.objects)
    assert "not scored" in _scores_table(results[:1], scene, absent)
    assert "No ground truth for an uploaded image" in _scores_table(
        results[:1], explorer.Scene("x", scene.image), "disc"
    )

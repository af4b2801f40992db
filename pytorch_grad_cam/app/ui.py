"""The explorer's web page (gradio): widgets wired to the plain functions of :mod:`pytorch_grad_cam.app.explorer`.

Needs the ``app`` extra (``pip install -e ".[app]"``). Start it with ``python -m pytorch_grad_cam.app``; build the
page in a script with :func:`build_app` and serve it with :func:`launch`. Nothing here contacts the internet:
analytics and the version check are off, there is no share link, and the page's fonts are gradio's bundled ones.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
from typing import Any

from pytorch_grad_cam.app.explorer import (
    AUTO_LAYER,
    DEMO_PREFIX,
    ClassScore,
    ExplorerError,
    MethodResult,
    Scene,
    decode_image,
    demo_scene,
    demo_scene_names,
    display_image,
    ground_truth_image,
    list_target_layers,
    load_model,
    method_choices,
    model_choices,
    prepare_input,
    run_methods,
    top_classes,
)

__all__ = ["DEFAULT_MODEL", "DEFAULT_SCENE", "NO_SCENE", "build_app", "launch"]

#: The scene shown when the page opens.
DEFAULT_SCENE = "single 0"
#: The model selected when the page opens.
DEFAULT_MODEL = f"{DEMO_PREFIX}cnn"
#: The scene menu's entry for "use the uploaded image".
NO_SCENE = "(uploaded image)"
#: The largest upload the server accepts.
MAX_UPLOAD = "50mb"

_log = logging.getLogger(__name__)

_INTRO = (
    "# pytorch-grad-cam explorer\n"
    "Pick a demo scene (it has a ground-truth mask, so each map gets a pointing-game hit and a relevance mass) or "
    "upload an image; choose the model, the target layer, the class and any number of methods, then **Run**."
)


def _gradio() -> Any:
    """The gradio module (imported here, not at the package's import: it is an optional extra)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    return importlib.import_module("gradio")


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+\-!|~])")


def _plain(text: str) -> str:
    """``text`` with Markdown's special characters escaped, so that names such as ``__init__`` or ``layers[0]``
    show as they are."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _error_text(error: BaseException) -> str:
    """The message shown on the page: an :class:`ExplorerError` as it is, anything else with its type (the
    traceback goes to the server's log)."""
    if isinstance(error, ExplorerError):
        return str(error)
    _log.error("explorer: unexpected error", exc_info=error)
    return f"unexpected {type(error).__name__}: {error}"


def _class_menu(scores: list[ClassScore], scene: Scene, class_names: tuple[str, ...] | None) -> tuple[list, int]:
    """The class menu (top classes, plus the scene's ground-truth classes the model knows) and its default: the
    first ground-truth class the model knows, else the most probable class."""
    choices: list[tuple[str, int]] = []
    truth = [name for name in scene.objects if class_names and name in class_names]
    listed = {score.index for score in scores}
    for score in scores:
        marker = " (ground truth)" if score.name in truth else ""
        choices.append((score.label + marker, score.index))
    for name in truth:
        index = class_names.index(name) if class_names else -1
        if index not in listed:
            choices.append((f"{name} (ground truth, not in the top {len(scores)})", index))
    default = class_names.index(truth[0]) if truth and class_names else scores[0].index
    return choices, default


def _scores_table(results: list[MethodResult], scene: Scene, class_name: str) -> str:
    """A Markdown table of every method's time and scores, with the methods' errors and warnings below it."""
    lines = ["| method | time (s) | pointing game | relevance mass |", "| --- | --- | --- | --- |"]
    notes = []
    for result in results:
        if result.error is not None:
            lines.append(f"| {result.title} | {result.seconds:.3f} | failed | failed |")
            notes.append(f"- **{result.title} failed**: {_plain(result.error)}")
            continue
        pointing = "—" if result.pointing_game is None else f"{result.pointing_game:.0f}"
        mass = "—" if result.relevance_mass is None else f"{result.relevance_mass:.3f}"
        lines.append(f"| {result.title} | {result.seconds:.3f} | {pointing} | {mass} |")
        notes.extend(f"- {result.title} warned: {_plain(message)}" for message in result.warnings)
    if scene.scenario is None:
        notes.append("- No ground truth for an uploaded image: pick a demo scene to score the maps.")
    elif scene.mask_for(class_name) is None:
        notes.append(f"- This scene has no object of class {_plain(repr(class_name))}, so the maps are not scored.")
    return "\n".join(lines + (["", *notes] if notes else []))


def build_app(default_scene: str = DEFAULT_SCENE, default_model: str = DEFAULT_MODEL) -> Any:
    """The explorer page as a ``gradio.Blocks`` (call ``.launch()`` on it, or use :func:`launch`).

    Args:
        default_scene: the demo scene shown when the page opens (:data:`NO_SCENE` for none).
        default_model: the model selected when the page opens.
    """
    gr = _gradio()
    scenes = demo_scene_names()
    if default_scene != NO_SCENE and default_scene not in scenes:
        raise ValueError(f"default_scene must be one of the demo scenes ({scenes[0]!r}, ...); got {default_scene!r}")
    models = model_choices()

    # gradio hands a fresh tracker to each call of a handler whose parameter defaults to one of these.
    loading = gr.Progress()
    tracking = gr.Progress(track_tqdm=True)  # follows the methods' tqdm bars too

    def warn(text: str) -> str:
        gr.Warning(text)
        return f"**Error:** {_plain(text)}"

    def analyse(scene: Scene | None, model_name: str, progress: Any) -> tuple[Any, Any, Any, str]:
        """Layer menu, class menu, ground-truth image and status line for a scene and a model."""
        if scene is None:
            return gr.update(choices=[], value=None), gr.update(choices=[], value=None), None, ""
        progress(0.1, desc=f"loading {model_name}")
        bundle = load_model(model_name)
        progress(0.6, desc="listing the layers")
        _, input_tensor = prepare_input(bundle, scene.image)
        layers = list_target_layers(bundle.model, input_tensor)
        automatic = next((option for option in layers if option.automatic), None)
        auto_label = f"auto: {automatic.label.removesuffix(' · auto')}" if automatic else "auto"
        layer_menu = [(auto_label, AUTO_LAYER)] + [(option.label, option.name) for option in layers]
        scores = top_classes(bundle, input_tensor)
        class_menu, default_class = _class_menu(scores, scene, bundle.class_names)
        prediction = f"**{_plain(scores[0].name)}** ({scores[0].probability:.3f})"
        status = f"**{_plain(scene.title)}** · {_plain(bundle.name)} predicts {prediction}"
        if scene.scenario is not None and not scene.objects.keys() & set(bundle.class_names or ()):
            status += " · this model has none of the scene's classes: try demo:shortcut_cnn for shortcut scenes"
        mask = scene.mask_for(bundle.class_name(default_class))
        return (
            gr.update(choices=layer_menu, value=AUTO_LAYER),
            gr.update(choices=class_menu, value=default_class),
            None if mask is None else ground_truth_image(scene.image, mask),
            status,
        )

    def show_truth(scene: Scene | None, model_name: str, class_index: Any) -> Any:
        """The ground truth of the chosen class (nothing when the scene has no object of that class)."""
        if scene is None or not scene.objects or class_index is None:
            return None
        try:
            mask = scene.mask_for(load_model(model_name).class_name(int(class_index)))
        except (ExplorerError, TypeError, ValueError):
            return None
        return None if mask is None else ground_truth_image(scene.image, mask)

    def select(scene: Scene | None, model_name: str, progress: Any) -> tuple[Any, ...]:
        """Everything that follows from choosing an image: the preview, the menus, the ground truth, the status
        line, and cleared results."""
        preview = None if scene is None else display_image(scene.image)
        try:
            layer_update, class_update, truth_image, status = analyse(scene, model_name, progress)
        except Exception as error:  # shown on the page; the traceback of an unexpected one goes to the log
            empty = gr.update(choices=[], value=None)
            return scene, preview, empty, empty, None, warn(_error_text(error)), None, ""
        return scene, preview, layer_update, class_update, truth_image, status, None, ""

    def on_scene(scene_name: str, model_name: str, progress: Any = loading) -> tuple[Any, ...]:
        if not scene_name or scene_name == NO_SCENE:
            return (None, None, *select(None, model_name, progress)[1:])
        try:
            scene = demo_scene(scene_name)
        except ExplorerError as error:
            return (None, None, None, gr.update(), gr.update(), None, warn(str(error)), None, "")
        return (None, *select(scene, model_name, progress))

    def on_upload(path: str | None, model_name: str, progress: Any = loading) -> tuple[Any, ...]:
        if path is None:
            return (gr.update(), *select(None, model_name, progress))
        try:
            scene = decode_image(path, os.path.basename(path))
        except ExplorerError as error:
            empty = gr.update(choices=[], value=None)
            return (NO_SCENE, None, None, empty, empty, None, warn(str(error)), None, "")
        return (NO_SCENE, *select(scene, model_name, progress))

    def on_model(scene: Scene | None, model_name: str, progress: Any = loading) -> tuple[Any, ...]:
        return select(scene, model_name, progress)[2:]

    def on_run(
        scene: Scene | None,
        model_name: str,
        layer: str | None,
        class_index: Any,
        methods: list[str],
        progress: Any = tracking,
    ) -> tuple[Any, str, str]:
        if scene is None:
            return None, "", warn("pick a demo scene or upload an image first")
        try:
            bundle = load_model(model_name)
            if class_index is None:
                raise ExplorerError("choose a class to explain")
            class_index = int(class_index)
            rgb, input_tensor = prepare_input(bundle, scene.image)
            class_name = bundle.class_name(class_index)
            results = run_methods(
                bundle,
                rgb,
                input_tensor,
                list(methods or []),
                class_index,
                layer=layer or AUTO_LAYER,
                mask=scene.mask_for(class_name),
                progress=lambda done, total, title: progress((done, total), desc=title),
                method_bars=True,
            )
        except Exception as error:  # shown on the page; the traceback of an unexpected one goes to the log
            return None, "", warn(_error_text(error))
        gallery = [(result.overlay, result.caption) for result in results if result.overlay is not None]
        failed = [result.title for result in results if result.error is not None]
        status = f"explained **{_plain(class_name)}** with {len(gallery)} method(s)"
        if failed:
            status += f"; {', '.join(failed)} failed (see below)"
            gr.Warning(f"{', '.join(failed)} failed: see the notes under the table")
        return gallery, _scores_table(results, scene, class_name), status

    with gr.Blocks(title="pytorch-grad-cam explorer", analytics_enabled=False) as app:
        gr.Markdown(_INTRO)
        source = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                scene_menu = gr.Dropdown(
                    [NO_SCENE, *scenes], value=default_scene, label="Demo scene", elem_id="scene", filterable=True
                )
                upload = gr.File(label="…or upload an image", type="filepath", elem_id="upload", height=120)
                model_menu = gr.Dropdown(
                    models,
                    value=default_model,
                    label="Model",
                    info="a demo model (offline), a torchvision name (resnet50) or timm:<name>; pretrained weights "
                    "must be in the local cache when offline",
                    allow_custom_value=True,
                    elem_id="model",
                )
                layer_menu = gr.Dropdown([], label="Target layer (output shape)", elem_id="layer")
                class_menu = gr.Dropdown([], label="Class (top 5, probability)", elem_id="class")
                method_boxes = gr.Dropdown(
                    method_choices(),
                    value=["gradcam"],
                    multiselect=True,
                    label="Methods",
                    info="any number; each map is timed",
                    elem_id="methods",
                )
                run_button = gr.Button("Run", variant="primary", elem_id="run")
            with gr.Column(scale=2):
                message = gr.Markdown(elem_id="message")
                with gr.Row():
                    preview = gr.Image(
                        label="Input", interactive=False, elem_id="preview", height=260, buttons=["fullscreen"]
                    )
                    truth = gr.Image(
                        label="Ground truth", interactive=False, elem_id="truth", height=260, buttons=["fullscreen"]
                    )
                gallery = gr.Gallery(
                    label="Maps (method · time)",
                    columns=4,
                    fit_columns=False,
                    height=380,
                    format="png",
                    object_fit="contain",
                    buttons=["download", "fullscreen"],
                    elem_id="maps",
                )
                scores = gr.Markdown(elem_id="scores")

        selection = [source, preview, layer_menu, class_menu, truth, message, gallery, scores]
        scene_menu.input(on_scene, [scene_menu, model_menu], [upload, *selection])
        upload.upload(on_upload, [upload, model_menu], [scene_menu, *selection])
        upload.clear(on_upload, [upload, model_menu], [scene_menu, *selection])
        model_menu.input(on_model, [source, model_menu], selection[2:])
        class_menu.input(show_truth, [source, model_menu, class_menu], truth)
        run_button.click(on_run, [source, model_menu, layer_menu, class_menu, method_boxes], [gallery, scores, message])
        app.load(on_scene, [scene_menu, model_menu], [upload, *selection])
    return app


def launch(
    host: str = "127.0.0.1",
    port: int | None = None,
    open_browser: bool = True,
    default_scene: str = DEFAULT_SCENE,
    default_model: str = DEFAULT_MODEL,
) -> None:
    """Serve the explorer until interrupted (no share link, no analytics).

    Args:
        host: the address to listen on (``0.0.0.0`` to be reachable from other machines).
        port: the port (default: the first free one from 7860).
        open_browser: open the page in the default browser.
        default_scene: the demo scene shown first.
        default_model: the model selected first.
    """
    gr = _gradio()
    app = build_app(default_scene, default_model)
    app.queue(default_concurrency_limit=1)
    app.launch(
        server_name=host,
        server_port=port,
        inbrowser=open_browser,
        share=False,
        ssr_mode=False,
        mcp_server=False,
        max_file_size=MAX_UPLOAD,
        theme=gr.themes.Default(),
        show_error=False,
        quiet=False,
    )

"""The dataset pipeline (pytorch_grad_cam.batch): shards, index, resume after a fault, torchrun with 2 ranks."""

from __future__ import annotations

import errno
import gc
import os
import shutil
import signal
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from pytorch_grad_cam import GradCAM, HiResCAM
from pytorch_grad_cam.batch import (
    BatchMetric,
    ImageFolderDataset,
    InjectedFault,
    explain_dataset,
    map_metric,
    mask_metric,
    read_index,
    read_maps,
    storage,
)
from pytorch_grad_cam.batch.cli import main as dataset_main
from pytorch_grad_cam.demo import DemoCNN, load_demo_model, save_demo_model
from pytorch_grad_cam.demo.scenes import MEAN, STD
from pytorch_grad_cam.metrics import Complexity, DropInConfidence, pointing_game
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

NUM_IMAGES = 40
BATCH = 8
SIZE = 64
TIMEOUT_S = 240


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 generated PNGs (coloured rectangles, some 48×64 so they are resized) and a demo weights file."""
    root = tmp_path_factory.mktemp("batch")
    images = root / "images"
    (images / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(NUM_IMAGES):
        height = 48 if i % 5 == 0 else SIZE
        img = np.full((height, SIZE, 3), rng.integers(0, 256, 3), np.uint8)
        for _ in range(3):
            x, y = (int(v) for v in rng.integers(0, 40, 2))
            cv2.rectangle(img, (x, y), (x + 16, y + 16), [int(c) for c in rng.integers(0, 256, 3)], -1)
        cv2.imwrite(str(images / ("sub" if i % 4 == 0 else "") / f"img_{i:03d}.png"), img)
    torch.manual_seed(0)
    model = DemoCNN()
    with torch.no_grad():
        model.classifier.weight.mul_(30)  # several top classes among the 40 images
    save_demo_model(model, root / "demo.pt")
    return root


@pytest.fixture
def one_thread() -> Iterator[None]:
    """The same per-process thread count as each torchrun rank (OMP_NUM_THREADS=1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(folder: Path) -> DemoCNN:
    return load_demo_model(path=folder / "demo.pt")


def _dataset(folder: Path) -> ImageFolderDataset:
    return ImageFolderDataset(folder / "images", size=SIZE, mean=MEAN, std=STD)


def _random_metric() -> BatchMetric:
    """Draws from torch's generator: equal results need the per-shard seeding."""
    return BatchMetric(lambda batch: torch.rand(len(batch.targets)) + batch.cams.mean(dim=(1, 2)).cpu())


def _api_run(folder: Path, out: Path, model: DemoCNN | None = None, **kwargs: object):
    model = _model(folder) if model is None else model
    return explain_dataset(
        _dataset(folder),
        model,
        [model.features[-1]],
        out,
        "gradcam",
        batch_size=BATCH,
        num_workers=2,
        metrics={"random": _random_metric(), "complexity": map_metric(Complexity())},
        progress=False,
        **kwargs,
    )


def _run_subprocess(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run ``command`` in its own session; on timeout the whole process group (torchrun's ranks) is killed."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(command, process.returncode, output)


def _cli_args(folder: Path, out: Path) -> list[str]:
    return [
        str(folder / "images"),
        "--output-dir",
        str(out),
        "--model",
        "demo",
        "--weights",
        str(folder / "demo.pt"),
        "--batch-size",
        str(BATCH),
        "--num-workers",
        "1",
        "--num-threads",
        "1",
        "--metric",
        "complexity",
        "--metric",
        "drop_in_confidence",
        "--no-progress",
    ]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


@pytest.fixture(scope="module")
def api_reference(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted single-process run through the API."""
    out = tmp_path_factory.mktemp("api_reference")
    _api_run(folder, out)
    return out


def _temporary_files(out: Path) -> list[Path]:
    return sorted(out.rglob("*.tmp"))


def _assert_same_results(out: Path, reference: Path) -> None:
    assert (out / "index.csv").read_text() == (reference / "index.csv").read_text()
    np.testing.assert_array_equal(read_maps(out), read_maps(reference))
    assert read_maps(out).dtype == np.float32
    assert _temporary_files(out) == []
    assert sorted(p.name for p in out.iterdir()) == [".lock", "index.csv", "manifest.json", "shards"]


# ----------------------------------------------------------------------------------------------- contents
def test_index_and_maps_match_direct_cam_calls(folder: Path, api_reference: Path) -> None:
    index = read_index(api_reference)
    maps = read_maps(api_reference)
    dataset = _dataset(folder)
    assert index["index"].tolist() == list(range(NUM_IMAGES))
    assert index["image_id"].tolist() == sorted(dataset.files) == dataset.files
    assert index["image_id"][0] == "img_001.png" and "sub/img_000.png" in index["image_id"].tolist()
    assert index["shard"].tolist() == [f"shards/shard-{i // BATCH:06d}.npz" for i in range(NUM_IMAGES)]
    assert index["row"].tolist() == [i % BATCH for i in range(NUM_IMAGES)]
    assert (index["label"] == -1).all()
    assert len(set(index["target"].tolist())) > 1
    model = _model(folder)
    for first in range(0, NUM_IMAGES, BATCH):
        x = torch.stack([dataset[i]["image"] for i in range(first, first + BATCH)])
        with torch.no_grad():
            logits = model(x)
        top = logits.argmax(1)
        np.testing.assert_array_equal(index["target"][first : first + BATCH], top.numpy())
        np.testing.assert_array_equal(
            index["score"][first : first + BATCH], logits[torch.arange(BATCH), top].numpy().astype(np.float64)
        )
        with GradCAM(model, [model.features[-1]]) as cam:
            expected = cam(x, [ClassifierOutputTarget(int(c)) for c in top])
        np.testing.assert_array_equal(maps[first : first + BATCH], expected)
        np.testing.assert_array_equal(index["complexity"][first : first + BATCH], Complexity()(expected))
    assert maps.shape == (NUM_IMAGES, SIZE, SIZE) and maps.min() >= 0 and maps.max() <= 1


def test_tuple_dataset_label_target_float16_and_mask_metric(tiny_cnn: torch.nn.Module, tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(3)
    images = torch.randn(10, 3, 12, 12, generator=generator)
    labels = torch.tensor([0, 1, 2, 3, 4, 4, 3, 2, 1, 0])
    masks = torch.zeros(10, 12, 12, dtype=torch.bool)
    masks[:, 2:7, 3:9] = True
    loader = DataLoader(TensorDataset(images, labels, masks), batch_size=4, shuffle=True)  # sampler ignored
    run = explain_dataset(
        loader,
        tiny_cnn,
        [tiny_cnn[5]],
        tmp_path,
        HiResCAM,
        target="label",
        map_dtype="float16",
        metrics={"hit": mask_metric(pointing_game), "drop": DropInConfidence()},
        progress=False,
    )
    assert (run.rank, run.world_size, run.shards_written, run.shards_skipped) == (0, 1, [0, 1, 2], [])
    index, maps = read_index(tmp_path), read_maps(tmp_path)
    assert index["image_id"].tolist() == [str(i) for i in range(10)]
    assert index["target"].tolist() == index["label"].tolist() == labels.tolist()
    assert maps.dtype == np.float16
    for first in (0, 4, 8):
        x, y, m = images[first : first + 4], labels[first : first + 4], masks[first : first + 4]
        with HiResCAM(tiny_cnn, [tiny_cnn[5]]) as cam:
            expected = cam(x, [ClassifierOutputTarget(int(c)) for c in y])
        np.testing.assert_array_equal(maps[first : first + 4], expected.astype(np.float16))
        np.testing.assert_array_equal(index["hit"][first : first + 4], pointing_game(expected, m).astype(np.float64))
        np.testing.assert_array_equal(
            index["drop"][first : first + 4],
            DropInConfidence()(x, expected, [ClassifierOutputTarget(int(c)) for c in y], tiny_cnn).astype(np.float64),
        )


# -------------------------------------------------------------------------------------- fault and resume
def test_fault_then_resume_equals_uninterrupted_run(folder: Path, api_reference: Path, tmp_path: Path) -> None:
    with pytest.raises(InjectedFault):
        _api_run(folder, tmp_path, fail_after_shards=2)
    assert _temporary_files(tmp_path) == []  # the shard being written when it failed is gone
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["shard-000000.npz", "shard-000001.npz"]
    assert not (tmp_path / "index.csv").exists()
    for name in ("shard-000000.npz", "shard-000001.npz"):  # the finished shards are complete
        with np.load(tmp_path / "shards" / name) as done, np.load(api_reference / "shards" / name) as ref:
            for key in ref.files:
                np.testing.assert_array_equal(done[key], ref[key])
    model = _model(folder)
    torch.manual_seed(123)  # the caller's RNG state must not matter (nor be changed)
    state = torch.get_rng_state()
    run = _api_run(folder, tmp_path, model)
    assert torch.equal(torch.get_rng_state(), state)
    assert (run.shards_skipped, run.shards_written) == ([0, 1], [2, 3, 4])
    _assert_same_results(tmp_path, api_reference)
    again = _api_run(folder, tmp_path)  # a finished run is all skipped
    assert (again.shards_skipped, again.shards_written) == ([0, 1, 2, 3, 4], [])
    _assert_same_results(tmp_path, api_reference)


def test_killed_run_leaves_partial_file_that_resume_ignores(folder: Path, tmp_path: Path, one_thread: None) -> None:
    cli_reference = tmp_path / "reference"
    _api_cli_equivalent(folder, cli_reference)
    out = tmp_path / "killed"
    env = _env(GRAD_CAM_DATASET_FAIL_AFTER="1", GRAD_CAM_DATASET_FAIL_MODE="kill")
    result = _run_subprocess([sys.executable, "-m", "pytorch_grad_cam.batch", *_cli_args(folder, out)], env)
    assert result.returncode == -signal.SIGKILL, result.stdout
    leftovers = _temporary_files(out)
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".shard-000001.npz.")
    assert leftovers[0].stat().st_size > 0
    assert sorted(p.name for p in (out / "shards").glob("*.npz")) == ["shard-000000.npz"]
    # also damage a finished shard (as a disk fault would) and plant a foreign partial file under a final name
    finished = out / "shards" / "shard-000000.npz"
    finished.write_bytes(finished.read_bytes()[:-100])
    (out / "shards" / "shard-000002.npz").write_bytes(b"PK\x03\x04 not a zip")
    model = load_demo_model(path=folder / "demo.pt")
    with pytest.warns(UserWarning, match="damaged"):
        run = explain_dataset(
            _dataset(folder),
            model,
            [model.features[-1]],
            out,
            batch_size=BATCH,
            metrics={"complexity": map_metric(Complexity()), "drop_in_confidence": DropInConfidence()},
            settings={"model": "demo"},  # as the CLI records
            progress=False,
        )
    assert (run.shards_skipped, run.shards_written) == ([], [0, 1, 2, 3, 4])
    _assert_same_results(out, cli_reference)


def _api_cli_equivalent(folder: Path, out: Path) -> None:
    """What the CLI arguments of :func:`_cli_args` do, through the API, in this process."""
    model = _model(folder)
    explain_dataset(
        _dataset(folder),
        model,
        [model.features[-1]],
        out,
        "gradcam",
        batch_size=BATCH,
        num_workers=2,
        metrics={"complexity": map_metric(Complexity()), "drop_in_confidence": DropInConfidence()},
        settings={"model": "demo"},
        progress=False,
    )


# ------------------------------------------------------------------------------------------------ torchrun
def test_torchrun_two_processes_equal_single_process(folder: Path, tmp_path: Path, one_thread: None) -> None:
    single = tmp_path / "single"
    _api_cli_equivalent(folder, single)
    out = tmp_path / "torchrun"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "pytorch_grad_cam.batch",
        *_cli_args(folder, out),
    ]
    result = _run_subprocess(command, _env())
    assert result.returncode == 0, result.stdout
    assert result.stdout.count(str(out / "index.csv")) == 1  # printed by rank 0 only
    _assert_same_results(out, single)
    index = read_index(out)
    assert index["index"].tolist() == list(range(NUM_IMAGES))  # every image exactly once
    assert np.isfinite(index["drop_in_confidence"]).all() and len(set(index["target"].tolist())) > 1


# ------------------------------------------------------------------------------------------------ errors
def test_resume_with_other_settings_is_refused(folder: Path, api_reference: Path, tmp_path: Path) -> None:
    model = _model(folder)
    args = (_dataset(folder), model, [model.features[-1]])
    with pytest.raises(ValueError, match=r"other settings.*batch_size"):
        explain_dataset(
            *args,
            api_reference,
            batch_size=4,
            progress=False,
            metrics={"random": _random_metric(), "complexity": map_metric(Complexity())},
        )
    with pytest.raises(ValueError, match="batch_size must be a positive int; got 0"):
        explain_dataset(*args, tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="target must be None"):
        explain_dataset(*args, tmp_path, target="top")
    with pytest.raises(ValueError, match="map_dtype must be one of"):
        explain_dataset(*args, tmp_path, map_dtype="float64")
    with pytest.raises(ValueError, match="metric names must be identifiers"):
        explain_dataset(*args, tmp_path, metrics={"a b": Complexity()})
    with pytest.raises(TypeError, match="metrics\\['x'\\] must be callable"):
        explain_dataset(*args, tmp_path, metrics={"x": 3})
    with pytest.raises(ValueError, match="unknown method"):
        explain_dataset(*args, tmp_path, method="gradcan")
    with pytest.raises(ValueError, match="device must be a torch device"):
        explain_dataset(*args, tmp_path, device="gpu-zero")
    with pytest.raises(TypeError, match="dataset must be a map-style torch Dataset"):
        explain_dataset([1, 2], model, [model.features[-1]], tmp_path)
    with pytest.raises(ValueError, match="target='label' needs dataset items with a label"):
        explain_dataset(*args, tmp_path / "nolabel", target="label", progress=False)
    assert not (tmp_path / "manifest.json").exists()


def test_image_folder_reads_names_that_are_not_utf8(tmp_path: Path) -> None:
    name = os.fsdecode(b"cat-\xfe.png")
    image = np.full((8, 10, 3), 128, dtype=np.uint8)
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    (tmp_path / name).write_bytes(encoded.tobytes())
    dataset = ImageFolderDataset(tmp_path, size=8)
    item = dataset[0]
    assert item["image"].shape == (3, 8, 8) and torch.isfinite(item["image"]).all()


# --------------------------------------------------------------------------------- reliability (issue 13)
def _copy_images(folder: Path, tmp_path: Path) -> Path:
    images = tmp_path / "images"
    shutil.copytree(folder / "images", images)
    return images


def _explain_folder(images: Path, out: Path, model: DemoCNN, size: int = SIZE, **kwargs: object):
    return explain_dataset(
        ImageFolderDataset(images, size=size, mean=MEAN, std=STD),
        model,
        [model.features[-1]],
        out,
        batch_size=BATCH,
        metrics={"complexity": map_metric(Complexity())},
        progress=False,
        **kwargs,
    )


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("grad-cam-dataset: error: "), lines
    return lines[0]


def test_output_dir_that_is_a_file_or_unwritable_is_one_clear_error(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    model = _model(folder)
    with pytest.raises(ValueError, match=f"output_dir must be a folder; {a_file} is a file"):
        _explain_folder(folder / "images", a_file, model)
    with pytest.raises(ValueError, match=r"lies under .*a_file, which is a file"):
        _explain_folder(folder / "images", a_file / "sub", model)
    base = [str(folder / "images"), "--model", "demo", "--weights", str(folder / "demo.pt"), "--no-progress"]
    assert dataset_main([*base, "--output-dir", str(a_file)]) == 2
    assert f"--output-dir must be a folder; {a_file} is a file" in _one_error_line(capsys)
    assert dataset_main([*base, "--output-dir", str(a_file / "sub" / "deeper")]) == 2
    assert "--output-dir must be a folder" in _one_error_line(capsys)
    # an unwritable folder (the tests may run as root, for whom permissions do not apply: simulate it)
    locked = tmp_path / "read_only"
    locked.mkdir()
    monkeypatch.setattr(storage.os, "access", lambda path, mode: not str(path).startswith(str(locked)))
    assert dataset_main([*base, "--output-dir", str(locked)]) == 2
    assert f"--output-dir: cannot write into the folder {locked}: permission denied" in _one_error_line(capsys)

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    assert dataset_main([*base, "--output-dir", str(tmp_path / "new")]) == 2
    assert "--output-dir: cannot create the folder" in _one_error_line(capsys)


def test_disk_full_is_one_line_that_says_what_was_kept_and_resume_completes(
    folder: Path,
    api_reference: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    args = [*_cli_args(folder, out)[:-5], "--num-workers", "0", "--metric", "complexity", "--no-progress"]
    monkeypatch.setenv("GRAD_CAM_DATASET_FAIL_AFTER", "2")
    monkeypatch.setenv("GRAD_CAM_DATASET_FAIL_MODE", "disk-full")
    threads = torch.get_num_threads()
    try:
        assert dataset_main(args) == 2
    finally:
        torch.set_num_threads(threads)
    line = _one_error_line(capsys)
    assert "[Errno 28] no space left on the device of" in line and "shard-000002.npz" in line
    assert "the 2 finished shard(s) of 5 are kept; free some space and run the same command again to resume" in line
    assert _temporary_files(out) == [] and not (out / "index.csv").exists()
    monkeypatch.delenv("GRAD_CAM_DATASET_FAIL_AFTER")
    try:
        assert dataset_main(args) == 0
    finally:
        torch.set_num_threads(threads)
    index = read_index(out)
    reference = read_index(api_reference)
    np.testing.assert_array_equal(index["complexity"], reference["complexity"])
    np.testing.assert_array_equal(read_maps(out), read_maps(api_reference))


def test_resume_with_other_weights_or_image_size_is_refused(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    model = _model(folder)
    _explain_folder(folder / "images", out, model)
    manifest = storage.read_manifest(out)
    assert manifest is not None and manifest["format"] == 2
    assert manifest["model"] == {
        "class": "pytorch_grad_cam.demo.model.DemoCNN",
        "state_dict_sha256": storage.state_dict_fingerprint(model),
    }
    assert manifest["dataset"]["size"] == SIZE and manifest["dataset"]["fingerprint"] == "stat"
    other = _model(folder)
    with torch.no_grad():
        other.classifier.bias.add_(1e-3)
    with pytest.raises(ValueError, match=r"other settings \(model.state_dict_sha256: \"[0-9a-f]+"):
        _explain_folder(folder / "images", out, other)
    with pytest.raises(ValueError, match=r"dataset.size: 64 → 48"):
        _explain_folder(folder / "images", out, model, size=48)
    # the same through the CLI: another --weights file, another --image-size
    cli_out = tmp_path / "cli"
    base = [str(folder / "images"), "--output-dir", str(cli_out), "--model", "demo", "--num-workers", "0"]
    threads = torch.get_num_threads()
    try:
        assert dataset_main([*base, "--weights", str(folder / "demo.pt"), "--no-progress"]) == 0
        capsys.readouterr()
        save_demo_model(other, tmp_path / "other.pt")
        assert dataset_main([*base, "--weights", str(tmp_path / "other.pt"), "--no-progress"]) == 2
        assert "model.state_dict_sha256" in _one_error_line(capsys)
        assert dataset_main([*base, "--weights", str(folder / "demo.pt"), "--image-size", "32", "--no-progress"]) == 2
        assert "dataset.size: 64 → 32" in _one_error_line(capsys)
        corrupt = tmp_path / "corrupt.pt"
        corrupt.write_bytes(os.urandom(256))
        assert dataset_main([*base, "--weights", str(corrupt), "--no-progress"]) == 2
        assert f"--weights: cannot read {corrupt} as a demo weights file" in _one_error_line(capsys)
    finally:
        torch.set_num_threads(threads)


def test_replaced_images_are_recomputed_on_resume(folder: Path, tmp_path: Path) -> None:
    images = _copy_images(folder, tmp_path)
    model = _model(folder)
    out = tmp_path / "out"
    _explain_folder(images, out, model)
    before = read_maps(out)
    dataset = ImageFolderDataset(images, size=SIZE, mean=MEAN, std=STD)
    changed = images / dataset.files[10]  # in shard 1
    replacement = np.zeros((SIZE, SIZE, 3), np.uint8)
    replacement[20:40, 5:30] = (255, 0, 255)
    cv2.imwrite(str(changed), replacement)
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # also when the clock is coarse
    with pytest.warns(UserWarning, match=r"shard-000001.npz holds 1 image\(s\) that changed since it was written"):
        run = _explain_folder(images, out, model)
    assert (run.shards_skipped, run.shards_written) == ([0, 2, 3, 4], [1])
    fresh = tmp_path / "fresh"
    _explain_folder(images, fresh, model)
    np.testing.assert_array_equal(read_maps(out), read_maps(fresh))
    assert not np.array_equal(read_maps(out)[10], before[10])
    # sha256 fingerprints: a same-size replacement with the old modification time is still caught
    hashed = tmp_path / "hashed"
    explain_dataset(
        ImageFolderDataset(images, size=SIZE, mean=MEAN, std=STD, fingerprint="sha256"),
        model,
        [model.features[-1]],
        hashed,
        batch_size=BATCH,
        progress=False,
    )
    stat = changed.stat()
    replacement[0, 0] = (1, 2, 3)
    ok, encoded = cv2.imencode(".png", replacement)
    assert ok
    changed.write_bytes(encoded.tobytes())
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the old modification time
    with pytest.warns(UserWarning, match="changed since it was written"):
        run = explain_dataset(
            ImageFolderDataset(images, size=SIZE, mean=MEAN, std=STD, fingerprint="sha256"),
            model,
            [model.features[-1]],
            hashed,
            batch_size=BATCH,
            progress=False,
        )
    assert run.shards_written == [1]


def test_corrupt_and_unreadable_images_are_skipped_with_a_warning_and_listed(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = _copy_images(folder, tmp_path)
    names = ImageFolderDataset(images).files
    (images / names[3]).write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (images / names[9]).write_bytes(b"")
    model = _model(folder)
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match=r"skipped image .*: cannot decode") as caught:
        _explain_folder(images, out, model)
    assert sum("skipped image" in str(w.message) for w in caught) == 2
    index, maps = read_index(out), read_maps(out)
    failed = [i for i, error in enumerate(index["error"].tolist()) if error]
    assert failed == [3, 9]
    assert "cannot decode" in index["error"][3] and "(0 bytes)" in index["error"][9]
    assert index["target"][3] == -1 and np.isnan(index["score"][3]) and np.isnan(index["complexity"][3])
    assert np.isnan(maps[3]).all() and np.isnan(maps[9]).all()
    # the other images of those shards are explained as if alone
    dataset = ImageFolderDataset(images, size=SIZE, mean=MEAN, std=STD)
    keep = [i for i in range(BATCH) if i != 3]
    x = torch.stack([dataset[i]["image"] for i in keep])
    with GradCAM(model, [model.features[-1]]) as cam:
        expected = cam(x, [ClassifierOutputTarget(int(c)) for c in index["target"][keep]])
    np.testing.assert_allclose(maps[keep], expected, atol=1e-6)
    # the CLI goes on too, with the warning on stderr and exit 0
    cli_out = tmp_path / "cli"
    threads = torch.get_num_threads()
    try:
        with pytest.warns(UserWarning, match="skipped image"):
            assert (
                dataset_main([str(images), "--output-dir", str(cli_out), "--model", "demo", *_demo_rest(folder)]) == 0
            )
    finally:
        torch.set_num_threads(threads)
    assert read_index(cli_out)["error"].tolist() == index["error"].tolist()


def _demo_rest(folder: Path) -> list[str]:
    return ["--weights", str(folder / "demo.pt"), "--num-workers", "0", "--no-progress"]


def test_a_second_run_into_a_folder_in_use_is_refused(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    model = _model(folder)
    holder = subprocess.Popen(  # another run's process, holding the folder
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom pathlib import Path\nfrom pytorch_grad_cam.batch.storage import output_dir_lock\n"
            "with output_dir_lock(Path(sys.argv[1])):\n    print('locked', flush=True)\n    time.sleep(600)\n",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(
            storage.OutputDirInUse, match=rf"output_dir {out} is in use by another run \(pid {holder.pid}"
        ):
            _explain_folder(folder / "images", out, model)
        assert not (out / "manifest.json").exists()
        base = [str(folder / "images"), "--output-dir", str(out), "--model", "demo", *_demo_rest(folder)]
        assert dataset_main(base) == 2
        assert f"is in use by another run (pid {holder.pid} on " in _one_error_line(capsys)
    finally:
        holder.kill()
        holder.wait()
    # a lock file left by a killed run (its OS lock is gone with the process) does not block
    (out / ".lock").write_text("pid 999999 on elsewhere\n")
    run = _explain_folder(folder / "images", out, model)
    assert run.shards_written == [0, 1, 2, 3, 4]


def test_load_shard_closes_a_truncated_file(folder: Path, api_reference: Path, tmp_path: Path) -> None:
    shard = tmp_path / "shard.npz"
    shard.write_bytes((api_reference / "shards" / "shard-000000.npz").read_bytes()[:500])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert storage.load_shard(shard, np.arange(BATCH), ["random", "complexity"], np.dtype(np.float32)) is None
        gc.collect()
    assert [type(w.message) for w in caught] == [UserWarning] and "damaged" in str(caught[0].message)


def test_no_progress_also_silences_the_methods_own_bars(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    threads = torch.get_num_threads()
    try:
        args = [str(folder / "images"), "--output-dir", str(tmp_path), "--model", "demo", *_demo_rest(folder)]
        assert dataset_main([*args, "--method", "scorecam", "--batch-size", "20"]) == 0
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    assert "it/s" not in err and "%|" not in err

"""Explain a whole dataset: batches → CAMs and metrics → one ``.npz`` shard per batch, resumable, and
spread over processes with ``torchrun`` / ``torch.distributed``.

How the work is split. The dataset is cut into fixed batches of consecutive images, shard ``k`` holding
images ``k·B … (k+1)·B - 1``; process (rank) ``r`` of ``W`` explains the shards ``k`` with ``k mod W = r``.
A batch's content therefore does not depend on the number of processes, every image is explained exactly
once (no padding duplicates, unlike ``DistributedSampler``), and a single-process run, a 2-process run and a
resumed run write the same maps bit for bit (given the same per-process thread count; see
``docs/dataset_pipeline.md``). Random parts (ROAD's noise, ``RandomCAM``) draw from generators seeded by
``(seed, shard)`` inside a forked RNG state, so they are reproducible too and the caller's RNG is untouched.

Without ``torchrun`` (no ``WORLD_SIZE`` in the environment, or 1) the same code runs as rank 0 of 1.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from pytorch_grad_cam.batch import storage
from pytorch_grad_cam.cli import accepts_keyword
from pytorch_grad_cam.core import CAMMethod
from pytorch_grad_cam.core.checks import (
    check_callable,
    check_choice,
    check_int,
    check_model,
    check_positive_int,
    describe,
)
from pytorch_grad_cam.core.model import eval_mode, model_device
from pytorch_grad_cam.core.targets import ClassifierOutputTarget
from pytorch_grad_cam.methods import get_method

__all__ = [
    "BatchMetric",
    "DatasetRun",
    "ExplainedBatch",
    "InjectedFault",
    "explain_dataset",
    "map_metric",
    "mask_metric",
]

#: Environment variable (test hook): fail after this many shards have been written by a process.
FAIL_AFTER_ENV = "GRAD_CAM_DATASET_FAIL_AFTER"
#: Environment variable (test hook): ``raise`` (default), ``kill`` (SIGKILL, as an out-of-memory kill) or
#: ``disk-full`` (``OSError`` ENOSPC, as a full disk).
FAIL_MODE_ENV = "GRAD_CAM_DATASET_FAIL_MODE"
_FAIL_MODES = ("raise", "kill", "disk-full")
_MAP_DTYPES: dict[str, np.dtype] = {"float32": np.dtype(np.float32), "float16": np.dtype(np.float16)}


class InjectedFault(RuntimeError):
    """Raised by the fault-injection test hook in the middle of writing a shard."""


# ------------------------------------------------------------------------------------------------- metrics
@dataclass
class ExplainedBatch:
    """One explained batch, as a :class:`BatchMetric` sees it.

    Attributes:
        inputs: the images on the model's device, ``(B, C, H, W)``.
        cams: the maps, float32 ``(B, H, W)`` on the model's device.
        targets: the explained classes.
        target_callables: ``ClassifierOutputTarget`` per image, as the metrics of
            :mod:`pytorch_grad_cam.metrics` take them.
        model: the model.
        cam: the CAM object that made the maps (e.g. for ``Coherency``).
        fields: the dataset's other per-batch fields (``"mask"``, ``"label"``, ...), collated.
    """

    inputs: torch.Tensor
    cams: torch.Tensor
    targets: list[int]
    target_callables: list[ClassifierOutputTarget]
    model: nn.Module
    cam: CAMMethod
    fields: dict[str, Any] = field(default_factory=dict)


class BatchMetric:
    """A metric that takes the whole :class:`ExplainedBatch` and returns one number per image.

    Args:
        function: ``function(batch: ExplainedBatch) -> (B,)`` array-like.
    """

    def __init__(self, function: Callable[[ExplainedBatch], Any]) -> None:
        if not callable(function):
            raise TypeError(f"function must be callable; got {describe(function)}")
        self.function = function

    def __call__(self, batch: ExplainedBatch) -> Any:
        return self.function(batch)


def mask_metric(function: Callable[..., Any], key: str = "mask", **kwargs: Any) -> BatchMetric:
    """Adapt a metric of ``(cams, masks)`` (e.g. :func:`~pytorch_grad_cam.metrics.pointing_game`) to the
    pipeline; the masks are the dataset's ``key`` field (the third element of a tuple item)."""

    def run(batch: ExplainedBatch) -> Any:
        if key not in batch.fields:
            raise ValueError(
                f"this metric needs the dataset field {key!r} (a ground-truth mask per image); the dataset "
                f"gives {sorted(batch.fields) or 'none'}"
            )
        return function(batch.cams, batch.fields[key].to(batch.cams.device), **kwargs)

    return BatchMetric(run)


def map_metric(function: Callable[[torch.Tensor], Any]) -> BatchMetric:
    """Adapt a metric of the maps alone (e.g. :class:`~pytorch_grad_cam.metrics.Complexity`)."""
    return BatchMetric(lambda batch: function(batch.cams))


def _metric_values(name: str, metric: Callable[..., Any], batch: ExplainedBatch) -> np.ndarray:
    if isinstance(metric, BatchMetric):
        values = metric(batch)
    else:
        values = metric(batch.inputs, batch.cams, batch.target_callables, batch.model)
    if isinstance(values, tuple):  # (scores, visualization)
        values = values[0]
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.shape[0] != len(batch.targets):
        raise ValueError(
            f"metrics[{name!r}] must return one value per image ({len(batch.targets)}); got shape {np.shape(values)}"
        )
    return array


# ------------------------------------------------------------------------------------------- distribution
@dataclass
class _Group:
    rank: int
    world_size: int
    local_rank: int
    created: bool

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


@contextmanager
def _process_group(device: torch.device | None) -> Iterator[_Group]:
    """The current ``torch.distributed`` group; one is created (and destroyed after) under ``torchrun``."""
    if dist.is_available() and dist.is_initialized():
        yield _Group(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), False)
        return
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world_size <= 1:
        yield _Group(0, 1, local_rank, False)
        return
    if not dist.is_available():
        raise RuntimeError(f"WORLD_SIZE={world_size} asks for several processes, but torch.distributed is missing")
    use_cuda = torch.cuda.is_available() and (device is None or device.type == "cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    try:
        yield _Group(dist.get_rank(), dist.get_world_size(), local_rank, True)
    finally:
        dist.destroy_process_group()


def _parse_device(device: str | torch.device | None) -> torch.device | None:
    if device is None or isinstance(device, torch.device):
        return device
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda:0'; got {device!r}") from None


def _resolve_device(device: torch.device | None, model: nn.Module, world_size: int, local_rank: int) -> torch.device:
    """One device per rank: ``cuda`` (or ``device=None`` under torchrun with GPUs) means ``cuda:LOCAL_RANK``."""
    if device is None:
        if world_size > 1 and torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return model_device(model)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return device


@contextmanager
def _seeded(seed: int, shard: int, device: torch.device) -> Iterator[None]:
    """Seed torch, numpy and ``random`` from ``(seed, shard)`` inside; the caller's states are restored."""
    state = int(np.random.SeedSequence([seed, shard]).generate_state(1)[0])
    devices = (
        [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    )
    numpy_state, python_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(state)
        np.random.seed(state)
        random.seed(state)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)


# ---------------------------------------------------------------------------------------------- the batch
@dataclass
class _Batch:
    images: torch.Tensor
    labels: torch.Tensor | None
    ids: list[str] | None
    fields: dict[str, Any]
    errors: list[str]  # per image: empty, or why it could not be loaded
    fingerprints: list[str] | None  # per image, as the dataset read it


def _unpack(batch: Any, size: int, shard: int) -> _Batch:
    """Split a collated batch: a tensor; ``(image, label[, mask])``; or a mapping with ``"image"``."""
    if isinstance(batch, torch.Tensor):
        images, labels, ids, fields, errors, fingerprints = batch, None, None, {}, [""] * size, None
    elif isinstance(batch, Mapping):
        if "image" not in batch:
            raise ValueError(
                f"dataset items that are mappings must have an 'image' entry; got the keys {sorted(batch)}"
            )
        fields = {key: value for key, value in batch.items() if key not in ("image", "id", "error", "fingerprint")}
        images, labels = batch["image"], batch.get("label")
        ids = [str(i) for i in batch["id"]] if "id" in batch else None
        errors = [str(e) for e in batch["error"]] if "error" in batch else [""] * size
        fingerprints = [str(f) for f in batch["fingerprint"]] if "fingerprint" in batch else None
    elif isinstance(batch, (list, tuple)) and batch:
        images = batch[0]
        labels = batch[1] if len(batch) > 1 else None
        fields = {"label": labels} if labels is not None else {}
        if len(batch) > 2:
            fields["mask"] = batch[2]
        ids, errors, fingerprints = None, [""] * size, None
    else:
        raise TypeError(
            "dataset items must be an image tensor, a tuple (image, label[, mask]) or a mapping with an 'image' "
            f"entry; batch {shard} collated to {describe(batch)}"
        )
    if not isinstance(images, torch.Tensor) or images.ndim not in (4, 5) or images.shape[0] != size:
        raise ValueError(
            f"the images of batch {shard} must collate to a tensor of shape ({size}, C, H, W); got {describe(images)}"
        )
    if labels is not None:
        labels = torch.as_tensor(labels).reshape(-1)
        if labels.shape[0] != size or labels.is_floating_point():
            raise ValueError(f"dataset labels must be one integer per image; batch {shard} gave {describe(labels)}")
    if len(errors) != size or (fingerprints is not None and len(fingerprints) != size):
        raise ValueError(f"the 'error' and 'fingerprint' entries of batch {shard} must give one string per image")
    return _Batch(images, labels, ids, fields, errors, fingerprints)


# ------------------------------------------------------------------------------------------------- the run
@dataclass
class DatasetRun:
    """What :func:`explain_dataset` did in this process.

    Attributes:
        output_dir: the output folder.
        index_path: ``OUTPUT_DIR/index.csv`` (written by rank 0, present on every rank after the run).
        rank: this process's rank; world_size: the number of processes.
        shards_written: the shards this process computed; shards_skipped: those found finished on disk.
    """

    output_dir: Path
    index_path: Path
    rank: int
    world_size: int
    shards_written: list[int]
    shards_skipped: list[int]


def _layer_names(model: nn.Module, layers: Sequence[nn.Module]) -> list[str]:
    names = {id(module): name for name, module in model.named_modules()}
    return [names.get(id(layer), type(layer).__name__) for layer in layers]


def _check_arguments(batch_size: Any, num_workers: Any, map_dtype: Any, target: Any, metrics: Any) -> None:
    check_positive_int(batch_size, "batch_size")
    check_int(num_workers, "num_workers", minimum=0)
    check_choice(map_dtype, "map_dtype", sorted(_MAP_DTYPES))
    if isinstance(target, int):  # a class index; bools are refused
        check_int(target, "target")
    elif not (target is None or target == "label"):
        raise ValueError(f"target must be None (the top class), 'label' or a class index; got {target!r}")
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics must be a mapping of name → metric; got {describe(metrics)}")
    for name, metric in metrics.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"metric names must be identifiers (they become column names); got {name!r}")
        check_callable(metric, f"metrics[{name!r}]", allow_none=False)


def _fault_hook(fail_after_shards: int | None) -> tuple[int | None, str]:
    if fail_after_shards is None and os.environ.get(FAIL_AFTER_ENV):
        try:
            fail_after_shards = int(os.environ[FAIL_AFTER_ENV])
        except ValueError:
            raise ValueError(f"{FAIL_AFTER_ENV} must be an int; got {os.environ[FAIL_AFTER_ENV]!r}") from None
    mode = os.environ.get(FAIL_MODE_ENV, "raise")
    if mode not in _FAIL_MODES:
        raise ValueError(f"{FAIL_MODE_ENV} must be one of {', '.join(_FAIL_MODES)}; got {mode!r}")
    return fail_after_shards, mode


def _fault(mode: str, written: int) -> Callable[[Any], None]:
    def fail(_handle: Any) -> None:
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "disk-full":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        raise InjectedFault(f"fault injected after {written} shard(s), in the middle of writing the next one")

    return fail


def explain_dataset(
    dataset: Dataset | DataLoader,
    model: nn.Module,
    target_layers: Sequence[nn.Module],
    output_dir: str | os.PathLike[str],
    method: str | type[CAMMethod] = "gradcam",
    *,
    reshape_transform: Callable[[Any], torch.Tensor] | None = None,
    method_kwargs: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
    target: int | str | None = None,
    metrics: Mapping[str, Callable[..., Any]] | None = None,
    batch_size: int = 32,
    num_workers: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    map_dtype: str = "float32",
    aug_smooth: bool = False,
    eigen_smooth: bool = False,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    fail_after_shards: int | None = None,
) -> DatasetRun:
    """Explain every image of a dataset and write the maps, targets, scores and metrics to ``output_dir``.

    Run it as is for one process, or under ``torchrun --nproc_per_node=N`` for N processes (one per GPU;
    gloo on CPU): each process explains its share of the batches, then rank 0 merges the per-rank indexes
    into ``index.csv``. Running it again on the same folder resumes: finished shards are skipped, damaged or
    partial ones (and those whose images changed, see ``dataset``) are computed again. The run holds a lock
    on the folder: a second run into it at the same time is refused.

    Args:
        dataset: a map-style dataset whose items are an image tensor ``(C, H, W)``, a tuple
            ``(image, label[, mask])`` or a mapping with ``"image"`` and optionally ``"label"``, ``"id"``
            (the image id written to the index; default: the position) and other fields (e.g. ``"mask"``).
            A mapping item may carry ``"error"`` (a non-empty string: this image could not be loaded; it is
            skipped with a warning and listed in the index with the error) and ``"fingerprint"`` (a string
            identifying the image's content as read). A dataset with a method ``fingerprint(index) -> str``
            (cheap: e.g. file size and modification time) gets shards whose images changed since they were
            written computed again on resume; one with ``settings() -> dict`` has it recorded in the manifest.
            A ``DataLoader`` gives its dataset, batch size, workers and collate function (its sampler is
            ignored: images are explained in dataset order).
        model: the classifier (output ``(B, num_classes)``); moved to ``device``.
        target_layers: the layers to explain, as for any CAM method.
        output_dir: where the shards and the index go (created).
        method: a method name from :data:`pytorch_grad_cam.methods.METHODS` or a CAM class such as ``GradCAM``.
        reshape_transform: passed to the method (vision transformers).
        method_kwargs: extra constructor arguments of the method (e.g. ``{"batch_size": 64}`` for ScoreCAM).
        settings: anything else that changes the maps and that the run cannot see (e.g. ``{"model": "resnet50",
            "transform": repr(transform)}``), JSON-serialisable; recorded in the manifest like every setting
            of the run (the model's class and a SHA-256 of its state dict, the dataset's ``settings()``, the
            method and its options...), so that resuming with other ones is refused.
        target: ``None`` explains each image's top class, ``"label"`` the dataset's label, an int that class.
        metrics: ``{name: metric}``; a metric is either called as ``metric(inputs, cams, targets, model)`` like
            those of :mod:`pytorch_grad_cam.metrics`, or is a :class:`BatchMetric` (see :func:`mask_metric`,
            :func:`map_metric`). Each gives one value per image, stored as a column ``name``.
        batch_size: images per batch, and per shard file.
        num_workers: DataLoader worker processes decoding images.
        collate_fn: the DataLoader's collate function (default: torch's).
        map_dtype: ``"float32"`` (the exact maps, default) or ``"float16"`` (half the disk).
        aug_smooth: test-time augmentation smoothing.
        eigen_smooth: first principal component smoothing.
        seed: seeds the random parts (per shard), for reproducible metrics and random methods.
        device: the device of this process; under ``torchrun`` ``None`` or ``"cuda"`` mean ``cuda:LOCAL_RANK``.
        progress: show a tqdm bar (on rank 0).
        fail_after_shards: test hook: raise :class:`InjectedFault` while writing the shard after this many
            (also set by the ``GRAD_CAM_DATASET_FAIL_AFTER`` environment variable).

    Returns:
        A :class:`DatasetRun`; read the results with :func:`read_index` and :func:`read_maps`.

    Raises:
        ValueError: a bad argument; ``output_dir`` is a file or cannot be written; it holds a run with other
            settings. RuntimeError: another run is writing into ``output_dir``. OSError: ``errno.ENOSPC`` when
            the disk is full, saying how many shards were kept (the next run resumes from them).
    """
    if isinstance(dataset, DataLoader):
        loader = dataset
        dataset = loader.dataset
        batch_size = loader.batch_size if loader.batch_size is not None else batch_size
        num_workers = loader.num_workers
        collate_fn = collate_fn or loader.collate_fn
    if not isinstance(dataset, Dataset) or not hasattr(dataset, "__len__"):
        raise TypeError(
            f"dataset must be a map-style torch Dataset (with __len__) or a DataLoader; got {describe(dataset)}"
        )
    check_model(model)
    cam_class = get_method(method) if isinstance(method, str) else method
    if not (isinstance(cam_class, type) and issubclass(cam_class, CAMMethod)):
        raise TypeError(f"method must be a method name or a CAM class such as GradCAM; got {describe(method)}")
    _check_arguments(batch_size, num_workers, map_dtype, target, {} if metrics is None else metrics)
    metrics = dict(metrics or {})
    fail_after, fail_mode = _fault_hook(fail_after_shards)
    out = Path(output_dir)
    requested = _parse_device(device)
    fingerprint_of: Callable[[int], str] | None = getattr(dataset, "fingerprint", None)

    with _process_group(requested) as group:
        run_device = _resolve_device(requested, model, group.world_size, group.local_rank)
        model = model.to(run_device)
        count = len(dataset)
        num_shards = -(-count // batch_size)
        manifest = _as_json(
            {
                "format": 2,
                "model": {
                    "class": _qualified_name(type(model)),
                    "state_dict_sha256": storage.state_dict_fingerprint(model),
                },
                "dataset": {"class": _qualified_name(type(dataset)), **_dataset_settings(dataset)},
                "settings": dict(settings or {}),
                "method": _qualified_name(cam_class),
                "method_kwargs": {key: repr(value) for key, value in sorted((method_kwargs or {}).items())},
                "target_layers": _layer_names(model, target_layers),
                "reshape_transform": None if reshape_transform is None else _qualified_name(reshape_transform),
                "target": target,
                "metrics": list(metrics),
                "num_images": count,
                "batch_size": batch_size,
                "num_shards": num_shards,
                "map_dtype": map_dtype,
                "aug_smooth": aug_smooth,
                "eigen_smooth": eigen_smooth,
                "seed": seed,
            }
        )
        with _claimed(out, group.rank == 0):
            _check_resumable(out, storage.read_manifest(out), manifest)
            if group.rank == 0:
                storage.remove_temporary_files(out)
                storage.write_manifest(out, manifest)
            group.barrier()
            try:
                done, written = _explain_shards(
                    cam_class,
                    dataset,
                    model,
                    target_layers,
                    out,
                    group,
                    run_device,
                    count,
                    num_shards,
                    fingerprint_of,
                    reshape_transform=reshape_transform,
                    method_kwargs=method_kwargs,
                    target=target,
                    metrics=metrics,
                    batch_size=batch_size,
                    num_workers=num_workers,
                    collate_fn=collate_fn,
                    map_dtype=map_dtype,
                    aug_smooth=aug_smooth,
                    eigen_smooth=eigen_smooth,
                    seed=seed,
                    progress=progress,
                    fault=(fail_after, fail_mode),
                )
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                kept = sorted((out / storage.SHARD_DIR).glob("shard-*.npz"))
                raise OSError(
                    errno.ENOSPC,
                    f"no space left on the device of {out} (writing {error.filename or 'a file'}): the {len(kept)} "
                    f"finished shard(s) of {num_shards} are kept; free some space and run the same command again "
                    "to resume",
                ) from error
    return DatasetRun(out, out / storage.INDEX_FILE, group.rank, group.world_size, written, sorted(done))


def _qualified_name(thing: Any) -> str:
    return f"{getattr(thing, '__module__', '?')}.{getattr(thing, '__qualname__', type(thing).__qualname__)}"


def _dataset_settings(dataset: Dataset) -> dict[str, Any]:
    """What the dataset says changes its images (its optional ``settings()``: e.g. the size and normalisation)."""
    settings = getattr(dataset, "settings", None)
    return dict(settings()) if callable(settings) else {}


def _as_json(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest as it reads back from ``manifest.json`` (tuples become lists), so the two compare equal."""
    try:
        return json.loads(json.dumps(manifest))
    except TypeError as error:
        raise TypeError(f"settings (and the dataset's settings()) must be JSON-serialisable: {error}") from None


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_resumable(out: Path, previous: dict[str, Any] | None, manifest: dict[str, Any]) -> None:
    """Refuse to add to a folder whose run had other settings (another model, weights, image size...)."""
    if previous is None or previous == manifest:
        return
    changes = []
    for key in sorted(manifest.keys() | previous.keys()):
        before, now = previous.get(key), manifest.get(key)
        if before == now:
            continue
        if isinstance(before, dict) and isinstance(now, dict):
            changes += [
                f"{key}.{sub}: {_short(before.get(sub))} → {_short(now.get(sub))}"
                for sub in sorted(before.keys() | now.keys())
                if before.get(sub) != now.get(sub)
            ]
        else:
            changes.append(f"{key}: {_short(before)} → {_short(now)}")
    raise ValueError(
        f"output_dir {out} holds a run with other settings ({'; '.join(changes)}); resume with the same model, "
        "weights and settings, or use a new folder"
    )


@contextmanager
def _claimed(out: Path, is_rank_zero: bool) -> Iterator[None]:
    """Rank 0 creates the output folder and holds its lock for the whole run (other ranks write under it)."""
    if not is_rank_zero:
        yield
        return
    storage.prepare_output_dir(out)
    with storage.output_dir_lock(out):
        yield


def _explain_shards(
    cam_class: type[CAMMethod],
    dataset: Dataset,
    model: nn.Module,
    target_layers: Sequence[nn.Module],
    out: Path,
    group: _Group,
    device: torch.device,
    count: int,
    num_shards: int,
    fingerprint_of: Callable[[int], str] | None,
    *,
    reshape_transform: Callable[[Any], torch.Tensor] | None,
    method_kwargs: Mapping[str, Any] | None,
    target: int | str | None,
    metrics: Mapping[str, Callable[..., Any]],
    batch_size: int,
    num_workers: int,
    collate_fn: Callable[[list[Any]], Any] | None,
    map_dtype: str,
    aug_smooth: bool,
    eigen_smooth: bool,
    seed: int,
    progress: bool,
    fault: tuple[int | None, str],
) -> tuple[dict[int, dict[str, np.ndarray]], list[int]]:
    """This rank's shards: the finished ones read back, the others computed; then the index. Returns both."""
    mine = list(range(group.rank, num_shards, group.world_size))
    ranges = {k: np.arange(k * batch_size, min((k + 1) * batch_size, count), dtype=np.int64) for k in mine}
    names = list(metrics)
    done: dict[int, dict[str, np.ndarray]] = {}
    for shard in mine:
        now = None if fingerprint_of is None else [fingerprint_of(int(i)) for i in ranges[shard]]
        arrays = storage.load_shard(out / storage.shard_name(shard), ranges[shard], names, _MAP_DTYPES[map_dtype], now)
        if arrays is not None:
            done[shard] = arrays
    pending = [k for k in mine if k not in done]
    rows = {k: storage.shard_rows(arrays, storage.shard_name(k), names) for k, arrays in done.items()}
    written: list[int] = []
    if pending:
        data = DataLoader(
            dataset,
            batch_sampler=[ranges[k].tolist() for k in pending],
            num_workers=num_workers,
            collate_fn=collate_fn,
            pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(seed),  # worker seeds; the global RNG is not drawn from
        )
        bar = tqdm(
            total=len(mine),
            initial=len(done),
            unit="batch",
            disable=not progress or group.rank != 0,
            desc=f"explaining ({group.world_size} process{'es' if group.world_size > 1 else ''})",
        )
        fail_after, fail_mode = fault
        options = dict(method_kwargs or {})
        if not progress and "progress" not in options and accepts_keyword(cam_class, "progress"):
            options["progress"] = False  # no per-channel bars of the method either (ScoreCAM, AblationCAM...)
        # CAMMethod declares no constructor; every CAM class takes these keywords
        make_cam: Callable[..., CAMMethod] = cam_class
        with make_cam(
            model=model, target_layers=list(target_layers), reshape_transform=reshape_transform, **options
        ) as cam:
            try:
                for shard, batch in zip(pending, data):
                    unpacked = _unpack(batch, len(ranges[shard]), shard)
                    if unpacked.fingerprints is None and fingerprint_of is not None:
                        unpacked.fingerprints = [fingerprint_of(int(i)) for i in ranges[shard]]
                    with _seeded(seed, shard, device):
                        arrays = _explain_batch(
                            cam,
                            model,
                            unpacked,
                            ranges[shard],
                            shard,
                            device,
                            target,
                            metrics,
                            map_dtype,
                            aug_smooth,
                            eigen_smooth,
                        )
                    injected = None
                    if fail_after is not None and len(written) >= fail_after:
                        injected = _fault(fail_mode, len(written))
                    storage.write_shard(out / storage.shard_name(shard), arrays, injected)
                    rows[shard] = storage.shard_rows(arrays, storage.shard_name(shard), names)
                    written.append(shard)
                    bar.update(1)
            finally:
                bar.close()
    storage.write_rank_index(
        out / storage.rank_index_name(group.rank, group.world_size), [row for k in mine for row in rows[k]]
    )
    group.barrier()
    if group.rank == 0:
        _merge_indexes(out, group.world_size, count, names)
    group.barrier()
    return done, written


def _subset(value: Any, keep: list[int]) -> Any:
    """The entries ``keep`` of a collated per-image field (tensor, array or list); other values unchanged."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return value[keep]
    if isinstance(value, (list, tuple)):
        return [value[i] for i in keep]
    return value


def _explain_batch(
    cam: CAMMethod,
    model: nn.Module,
    batch: _Batch,
    indices: np.ndarray,
    shard: int,
    device: torch.device,
    target: int | str | None,
    metrics: Mapping[str, Callable[..., Any]],
    map_dtype: str,
    aug_smooth: bool,
    eigen_smooth: bool,
) -> dict[str, np.ndarray]:
    """The arrays of one shard. Images the dataset could not load are skipped with a warning: target ``-1``,
    NaN score, map and metrics, and their error kept."""
    size = len(indices)
    ids = batch.ids if batch.ids is not None else [str(i) for i in indices.tolist()]
    keep = [i for i, error in enumerate(batch.errors) if not error]
    for i, error in enumerate(batch.errors):
        if error:
            warnings.warn(f"skipped image {ids[i]}: {error} (listed in the index with this error)", stacklevel=4)
    dtype = _MAP_DTYPES[map_dtype]
    arrays: dict[str, np.ndarray] = {
        "indices": indices,
        "ids": np.array(ids, dtype=str),
        "targets": np.full(size, -1, dtype=np.int64),
        "labels": np.full(size, -1, dtype=np.int64),
        "scores": np.full(size, np.nan, dtype=np.float32),
        "maps": np.full((size, *batch.images.shape[2:]), np.nan, dtype=dtype),
        "errors": np.array(batch.errors, dtype=str),
        "fingerprints": np.array(batch.fingerprints or [""] * size, dtype=str),
        **{storage.METRIC_PREFIX + name: np.full(size, np.nan) for name in metrics},
    }
    if batch.labels is not None:
        arrays["labels"] = batch.labels.cpu().numpy().astype(np.int64)
    if not keep:
        return arrays
    if len(keep) < size:
        batch = _Batch(
            batch.images[keep],
            None if batch.labels is None else batch.labels[keep],
            None,
            {key: _subset(value, keep) for key, value in batch.fields.items()},
            [""] * len(keep),
            None,
        )
    inputs = batch.images.to(device, non_blocking=True)
    with eval_mode(model), torch.no_grad():
        logits = model(inputs)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != inputs.shape[0]:
        raise ValueError(
            f"the dataset pipeline explains classifiers with a (B, num_classes) output; the model returned "
            f"{describe(logits)}"
        )
    if target is None:
        classes = logits.argmax(dim=1).tolist()
    elif target == "label":
        if batch.labels is None:
            raise ValueError("target='label' needs dataset items with a label, e.g. (image, label)")
        classes = batch.labels.tolist()
    else:
        classes = [int(target)] * inputs.shape[0]
    if any(not 0 <= c < logits.shape[1] for c in classes):
        raise ValueError(f"target classes must be in [0, {logits.shape[1]}); batch {shard} has {classes}")
    callables = [ClassifierOutputTarget(c) for c in classes]
    cams = cam.compute(inputs, callables, aug_smooth=aug_smooth, eigen_smooth=eigen_smooth)
    explained = ExplainedBatch(inputs, cams.detach(), classes, callables, model, cam, batch.fields)
    scores = logits[torch.arange(len(classes), device=logits.device), torch.tensor(classes, device=logits.device)]
    arrays["targets"][keep] = classes
    arrays["scores"][keep] = scores.float().cpu().numpy()
    arrays["maps"][keep] = explained.cams.cpu().numpy().astype(dtype)
    for name, metric in metrics.items():
        arrays[storage.METRIC_PREFIX + name][keep] = _metric_values(name, metric, explained)
    return arrays


def _merge_indexes(out: Path, world_size: int, count: int, metric_names: list[str]) -> None:
    """Rank 0: the per-rank indexes → ``index.csv`` in dataset order, checking each image is there once."""
    rows: list[dict[str, Any]] = []
    paths = [out / storage.rank_index_name(rank, world_size) for rank in range(world_size)]
    for path in paths:
        rows.extend(storage.read_rank_index(path))
    rows.sort(key=lambda row: row["index"])
    positions = [row["index"] for row in rows]
    if positions != list(range(count)):
        missing = sorted(set(range(count)) - set(positions))[:10]
        raise RuntimeError(
            f"the per-rank indexes of {out} cover {len(positions)} entries for {count} images (missing e.g. "
            f"{missing}); run again to complete them"
        )
    storage.write_index(out / storage.INDEX_FILE, rows, metric_names)
    for path in paths:
        path.unlink(missing_ok=True)
    for stale in out.glob("index.rank*-of-*.jsonl"):  # left by an interrupted run with another world size
        stale.unlink(missing_ok=True)

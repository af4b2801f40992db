"""On-disk layout of a dataset run: one ``.npz`` shard per batch, per-rank index files, the final index.

::

    OUTPUT_DIR/
      manifest.json                 the run's configuration (a resumed run must match it)
      .lock                         held (an OS file lock) by the run writing into the folder
      shards/shard-000000.npz       batch 0: images 0 .. B-1
      shards/shard-000001.npz       batch 1: images B .. 2B-1
      ...
      index.csv                     one row per image, in dataset order (written by rank 0 at the end)

A shard holds the arrays ``indices`` (int64 dataset positions), ``ids`` (str), ``targets`` and ``labels``
(int64, ``-1`` for no label), ``scores`` (float32, the explained class's model output), ``maps`` (float32 or
float16, ``(n, H, W)``), ``errors`` (str, empty when the image was explained, else why it was skipped; its
map, score and metrics are NaN and its target ``-1``), ``fingerprints`` (str, the dataset's fingerprint of each
image when written, e.g. size and modification time of the file) and one float64 array ``metric__<name>`` per
metric.

Every file is written to a temporary name in the same folder, flushed to disk and moved into place with
``os.replace``, so a file under its final name is always complete; a leftover temporary file (a run that was
killed) is ignored and removed by the next run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import socket
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

SHARD_DIR = "shards"
INDEX_FILE = "index.csv"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".lock"
METRIC_PREFIX = "metric__"
#: The arrays every shard holds (metrics come on top).
SHARD_KEYS: tuple[str, ...] = ("indices", "ids", "targets", "labels", "scores", "maps", "errors", "fingerprints")
#: The leading columns of the index, before the metric columns and ``error``, ``shard``, ``row``.
INDEX_COLUMNS: tuple[str, ...] = ("index", "image_id", "target", "label", "score")


def shard_name(shard: int) -> str:
    """The file name of shard number ``shard``, relative to the output folder."""
    return f"{SHARD_DIR}/shard-{shard:06d}.npz"


def rank_index_name(rank: int, world_size: int) -> str:
    """The file name of one rank's index (merged into ``index.csv`` by rank 0)."""
    return f"index.rank{rank}-of-{world_size}.jsonl"


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_write(
    path: Path, write: Callable[[io.BufferedWriter], object], fault: Callable[[io.BufferedWriter], None] | None = None
) -> None:
    """Write ``path`` through a temporary file and ``os.replace``: the final name never holds a partial file.

    Args:
        path: the destination.
        write: writes the content into the open binary file (its return value is ignored).
        fault: test hook, called instead of ``write`` after part of the content is on disk; it must raise
            (or end the process), so that the run stops in the middle of writing.
    """
    tmp = _temporary(path)
    try:
        with open(tmp, "wb") as handle:
            if fault is not None:
                buffer = io.BytesIO()
                write(buffer)  # type: ignore[arg-type]
                data = buffer.getvalue()
                handle.write(data[: len(data) // 2])
                handle.flush()
                os.fsync(handle.fileno())
                fault(handle)
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        if error.filename is None:  # e.g. ENOSPC raised by a write: say which file
            error.filename = os.fspath(path)
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def prepare_output_dir(output_dir: Path, name: str = "output_dir") -> None:
    """Create ``output_dir`` and its shard folder, or raise a ``ValueError`` naming ``name`` that says why not.

    Args:
        output_dir: the folder of the run.
        name: what the user called it (``"output_dir"``; the CLI passes ``"--output-dir"``).

    Raises:
        ValueError: ``output_dir`` is a file, lies under a file, or cannot be created or written into.
    """
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"{name} must be a folder; {output_dir} is a file")
    blocking = next((parent for parent in output_dir.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise ValueError(f"{name} must be a folder; {output_dir} lies under {blocking}, which is a file")
    try:
        (output_dir / SHARD_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"{name}: cannot create the folder {output_dir}: {error.strerror or error}") from None
    if not os.access(output_dir, os.W_OK | os.X_OK) or not os.access(output_dir / SHARD_DIR, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: cannot write into the folder {output_dir}: permission denied")


class OutputDirInUse(RuntimeError):
    """Another run is writing into the output folder."""


@contextmanager
def output_dir_lock(output_dir: Path, name: str = "output_dir") -> Iterator[None]:
    """Hold ``OUTPUT_DIR/.lock`` (an operating-system lock, released even when the process is killed) inside.

    The file keeps the holder's host and pid, for the message a second run gets.

    Raises:
        OutputDirInUse: another run (another process) holds the folder (a ``RuntimeError``).
        ValueError: the lock file cannot be created (``name`` is named).
    """
    path = output_dir / LOCK_FILE
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise ValueError(f"{name}: cannot write into the folder {output_dir}: {error.strerror or error}") from None
    try:
        if not _try_lock(descriptor):
            os.lseek(descriptor, 0, os.SEEK_SET)
            holder = os.read(descriptor, 200).decode("utf-8", "replace").strip() or "another process"
            raise OutputDirInUse(
                f"{name} {output_dir} is in use by another run ({holder}); wait for it to finish or use another folder"
            )
        os.ftruncate(descriptor, 0)
        os.lseek(descriptor, 0, os.SEEK_SET)
        os.write(descriptor, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        yield
    finally:
        os.close(descriptor)  # closing releases the lock; the file stays (removing it would race a new holder)


def _try_lock(descriptor: int) -> bool:
    """Take an exclusive, non-blocking lock on the open file; False when another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def state_dict_fingerprint(model: nn.Module) -> str:
    """The SHA-256 of the model's state dict (names, dtypes, shapes and values): what identifies its weights.

    Raises:
        ValueError: when a tensor has no data (the ``meta`` device).
    """
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode("utf-8"))
        if not isinstance(value, torch.Tensor):
            digest.update(repr(value).encode("utf-8"))
            continue
        if value.is_meta:
            raise ValueError(f"model has tensors on the meta device ({key}): load its weights first")
        digest.update(f"{value.dtype}{tuple(value.shape)}".encode())
        data = value.detach().to("cpu").contiguous().reshape(-1)
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def remove_temporary_files(output_dir: Path) -> int:
    """Delete the temporary files left by an interrupted run; returns how many were removed."""
    removed = 0
    for folder in (output_dir, output_dir / SHARD_DIR):
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
                removed += 1
    return removed


# --------------------------------------------------------------------------------------------------- shards
def write_shard(
    path: Path, arrays: Mapping[str, np.ndarray], fault: Callable[[io.BufferedWriter], None] | None = None
) -> None:
    """Write one shard (uncompressed ``.npz``) atomically."""
    # numpy's stub gives savez a ``allow_pickle: bool`` keyword, which mypy matches against ``**arrays``;
    # the shard keys (SHARD_KEYS and "metric__..." names) never include it.
    atomic_write(path, lambda handle: np.savez(handle, **arrays), fault)  # type: ignore[arg-type]


def load_shard(
    path: Path,
    expected_indices: np.ndarray,
    metric_names: Sequence[str],
    map_dtype: np.dtype,
    fingerprints: Sequence[str] | None = None,
) -> dict[str, np.ndarray] | None:
    """Read a finished shard and check it; ``None`` (with a warning) when it is missing, partial or foreign.

    Every array is read in full, so a damaged file (bad zip CRC, truncated data) is detected.

    Args:
        path: the shard file.
        expected_indices: the dataset positions the shard must hold.
        metric_names: the run's metrics.
        map_dtype: the dtype the maps must have.
        fingerprints: the images' fingerprints now; a shard written for other file contents is stale.
    """
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        warnings.warn(f"{path} is damaged ({type(error).__name__}: {error}); it is computed again", stacklevel=3)
        return None
    expected_keys = {*SHARD_KEYS, *(METRIC_PREFIX + name for name in metric_names)}
    problem = None
    if set(arrays) != expected_keys:
        problem = f"arrays {sorted(arrays)}, expected {sorted(expected_keys)}"
    elif not np.array_equal(arrays["indices"], expected_indices):
        problem = "images other than this run's batch (was the batch size changed?)"
    elif arrays["maps"].dtype != map_dtype or arrays["maps"].shape[0] != len(expected_indices):
        problem = f"maps of shape {arrays['maps'].shape} and dtype {arrays['maps'].dtype}"
    elif any(arrays[key].shape[0] != len(expected_indices) for key in expected_keys):
        problem = "arrays of different lengths"
    elif fingerprints is not None and arrays["fingerprints"].tolist() != list(fingerprints):
        changed = [str(i) for i, a, b in zip(arrays["ids"], arrays["fingerprints"], fingerprints) if a != b]
        problem = f"{len(changed)} image(s) that changed since it was written (e.g. {changed[0]})"
    if problem is not None:
        warnings.warn(f"{path} holds {problem}; it is computed again", stacklevel=3)
        return None
    return arrays


def shard_rows(arrays: Mapping[str, np.ndarray], shard_file: str, metric_names: Sequence[str]) -> list[dict[str, Any]]:
    """The index rows (plain Python values) of one shard."""
    rows = []
    for row in range(len(arrays["indices"])):
        record: dict[str, Any] = {
            "index": int(arrays["indices"][row]),
            "image_id": str(arrays["ids"][row]),
            "target": int(arrays["targets"][row]),
            "label": int(arrays["labels"][row]),
            "score": float(arrays["scores"][row]),
        }
        for name in metric_names:
            record[name] = float(arrays[METRIC_PREFIX + name][row])
        record["error"] = str(arrays["errors"][row])
        record["shard"] = shard_file
        record["row"] = row
        rows.append(record)
    return rows


# ---------------------------------------------------------------------------------------------- the indexes
def write_rank_index(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """One rank's rows as JSON lines (floats written with ``repr``, so they read back bit for bit)."""
    text = "".join(json.dumps(dict(row)) + "\n" for row in rows)
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def read_rank_index(path: Path) -> list[dict[str, Any]]:
    """The rows of one rank's index file."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_index(path: Path, rows: Sequence[Mapping[str, Any]], metric_names: Sequence[str]) -> None:
    """The final index, ``index.csv``: one row per image in dataset order, floats with ``repr`` (exact)."""
    columns = [*INDEX_COLUMNS, *metric_names, "error", "shard", "row"]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([repr(row[c]) if isinstance(row[c], float) else row[c] for c in columns])
    atomic_write(path, lambda handle: handle.write(text.getvalue().encode("utf-8")))


def read_index(output_dir: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The final index of a finished run, as columns.

    Args:
        output_dir: the run's output folder.

    Returns:
        ``{"index": int64, "image_id": str, "target": int64, "label": int64, "score": float64, <metric>:
        float64 ..., "error": str, "shard": str, "row": int64}``, one entry per image in dataset order; ``error``
        is empty for the explained images and says why for the skipped ones (their score and metrics are NaN).

    Raises:
        FileNotFoundError: when the run has not finished (no ``index.csv``).
    """
    path = Path(output_dir) / INDEX_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no index at {path}: the run has not finished (run it again to resume)")
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        records = list(reader)
    columns: dict[str, np.ndarray] = {}
    for position, name in enumerate(header):
        values = [record[position] for record in records]
        if name in ("index", "target", "label", "row"):
            columns[name] = np.array([int(v) for v in values], dtype=np.int64)
        elif name in ("image_id", "error", "shard"):
            columns[name] = np.array(values, dtype=str)
        else:
            columns[name] = np.array([float(v) for v in values], dtype=np.float64)
    return columns


def read_maps(output_dir: str | os.PathLike[str]) -> np.ndarray:
    """Every map of a finished run, ``(N, H, W)`` in dataset order, in the dtype they were stored in (the maps
    of skipped images, those with an ``error`` in the index, are NaN)."""
    root = Path(output_dir)
    index = read_index(root)
    maps: list[np.ndarray] = []
    for shard in dict.fromkeys(index["shard"].tolist()):
        with open(root / shard, "rb") as handle, np.load(handle, allow_pickle=False) as data:
            maps.append(data["maps"])
    result = np.concatenate(maps) if maps else np.zeros((0, 0, 0), np.float32)
    rows = np.concatenate([np.arange(len(m)) for m in maps]) if maps else np.zeros(0, np.int64)
    if len(result) != len(index["index"]) or not np.array_equal(rows, index["row"]):
        raise ValueError(f"the shards of {root} do not match its index; run the pipeline again to repair it")
    return result


def read_manifest(output_dir: Path) -> dict[str, Any] | None:
    """The manifest of an earlier run in ``output_dir``, or ``None``."""
    path = output_dir / MANIFEST_FILE
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def write_manifest(output_dir: Path, manifest: Mapping[str, Any]) -> None:
    """Write ``manifest.json`` atomically."""
    text = json.dumps(dict(manifest), indent=2, sort_keys=True) + "\n"
    atomic_write(output_dir / MANIFEST_FILE, lambda handle: handle.write(text.encode("utf-8")))

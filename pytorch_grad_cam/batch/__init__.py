"""Explain a whole dataset, resumably, on one process or many (``torchrun`` + ``torch.distributed``).

>>> from pytorch_grad_cam.batch import explain_dataset, read_index, read_maps
>>> explain_dataset(dataset, model, [model.layer4[-1]], "out", method="gradcam",
...                 metrics={"road": ROADCombined()}, batch_size=32, num_workers=4)
>>> index, maps = read_index("out"), read_maps("out")

Command line: ``grad-cam-dataset IMAGE_DIR --output-dir out --model resnet50`` (or
``torchrun --nproc_per_node=N -m pytorch_grad_cam.batch ...``). See ``docs/dataset_pipeline.md``.
"""

from pytorch_grad_cam.batch.folder import ImageFolderDataset
from pytorch_grad_cam.batch.pipeline import (
    BatchMetric,
    DatasetRun,
    ExplainedBatch,
    InjectedFault,
    explain_dataset,
    map_metric,
    mask_metric,
)
from pytorch_grad_cam.batch.storage import read_index, read_maps


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``grad-cam-dataset`` console script (see :mod:`pytorch_grad_cam.batch.cli`)."""
    from pytorch_grad_cam.batch.cli import main as cli_main

    return cli_main(argv)


__all__ = [
    "BatchMetric",
    "DatasetRun",
    "ExplainedBatch",
    "ImageFolderDataset",
    "InjectedFault",
    "explain_dataset",
    "main",
    "map_metric",
    "mask_metric",
    "read_index",
    "read_maps",
]

"""The reference's module path of the model targets (defined in :mod:`pytorch_grad_cam.core.targets`, and for
ultralytics YOLO in :mod:`pytorch_grad_cam.core.yolo_targets`)."""

from pytorch_grad_cam.core.targets import (
    BinaryClassifierOutputTarget,
    ClassifierOutputReST,
    ClassifierOutputSoftmaxTarget,
    ClassifierOutputTarget,
    DetrBoxScoreTarget,
    FasterRCNNBoxScoreTarget,
    FinerWeightedTarget,
    ImageTextSimilarityTarget,
    RawScoresOutputTarget,
    SemanticSegmentationTarget,
    SimilarityToConceptTarget,
    SoftmaxOutputTarget,
    Target,
)
from pytorch_grad_cam.core.yolo_targets import YOLOBoxScoreTarget, yolo_detections

__all__ = [
    "BinaryClassifierOutputTarget",
    "ClassifierOutputReST",
    "ClassifierOutputSoftmaxTarget",
    "ClassifierOutputTarget",
    "DetrBoxScoreTarget",
    "FasterRCNNBoxScoreTarget",
    "FinerWeightedTarget",
    "ImageTextSimilarityTarget",
    "RawScoresOutputTarget",
    "SemanticSegmentationTarget",
    "SimilarityToConceptTarget",
    "SoftmaxOutputTarget",
    "Target",
    "YOLOBoxScoreTarget",
    "yolo_detections",
]

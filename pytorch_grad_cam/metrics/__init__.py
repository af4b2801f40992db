"""Metrics of CAM quality: the reference's perturbation metrics (ROAD, confidence change, ARCC), deletion /
insertion AUC (RISE), the pointing games and relevance mass / rank accuracy against ground-truth masks, the
model-randomisation sanity checks, and bootstrap statistics of per-image scores (confidence intervals of a mean,
paired comparisons of two methods), contrastive localisation (discriminative pointing game, relevance share)
and intervention tests of what a model relies on.

The reference's import paths are kept, e.g. ``from pytorch_grad_cam.metrics.road import ROADCombined``.
"""

import sys

from pytorch_grad_cam.metrics import arcc as _arcc_module
from pytorch_grad_cam.metrics.arcc import ARCC, Coherency, Complexity
from pytorch_grad_cam.metrics.cam_mult_image import (
    CamMultImageConfidenceChange,
    DropInConfidence,
    IncreaseInConfidence,
    multiply_tensor_with_cam,
)
from pytorch_grad_cam.metrics.deletion_insertion import DeletionAUC, InsertionAUC
from pytorch_grad_cam.metrics.intervention import InterventionResult, intervention_effect
from pytorch_grad_cam.metrics.localization import (
    discriminative_pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    relevance_share,
)
from pytorch_grad_cam.metrics.perturbation_confidence import (
    AveragerAcrossThresholds,
    PerturbationConfidenceMetric,
    RemoveLeastRelevantFirst,
    RemoveMostRelevantFirst,
)
from pytorch_grad_cam.metrics.pointing_game import energy_pointing_game, pointing_game
from pytorch_grad_cam.metrics.road import (
    NoisyLinearImputer,
    ROADCombined,
    ROADLeastRelevantFirst,
    ROADLeastRelevantFirstAverage,
    ROADMostRelevantFirst,
    ROADMostRelevantFirstAverage,
)
from pytorch_grad_cam.metrics.sanity_checks import (
    RandomizationResult,
    model_randomization_check,
    spearman_correlation,
    ssim,
)
from pytorch_grad_cam.metrics.statistics import (
    BootstrapInterval,
    PairedComparison,
    bootstrap_interval,
    paired_bootstrap,
)

# The reference's README imports ``pytorch_grad_cam.metrics.ARCC``, a module it never shipped (its file is
# arcc.py). A second file differing only in case would clash on case-insensitive file systems, so that import
# path is an alias of the arcc module.
sys.modules[f"{__name__}.ARCC"] = _arcc_module

__all__ = [
    "ARCC",
    "AveragerAcrossThresholds",
    "BootstrapInterval",
    "CamMultImageConfidenceChange",
    "Coherency",
    "Complexity",
    "DeletionAUC",
    "DropInConfidence",
    "IncreaseInConfidence",
    "InsertionAUC",
    "InterventionResult",
    "NoisyLinearImputer",
    "PairedComparison",
    "PerturbationConfidenceMetric",
    "ROADCombined",
    "ROADLeastRelevantFirst",
    "ROADLeastRelevantFirstAverage",
    "ROADMostRelevantFirst",
    "ROADMostRelevantFirstAverage",
    "RandomizationResult",
    "RemoveLeastRelevantFirst",
    "RemoveMostRelevantFirst",
    "bootstrap_interval",
    "discriminative_pointing_game",
    "energy_pointing_game",
    "intervention_effect",
    "model_randomization_check",
    "multiply_tensor_with_cam",
    "paired_bootstrap",
    "pointing_game",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "relevance_share",
    "spearman_correlation",
    "ssim",
]

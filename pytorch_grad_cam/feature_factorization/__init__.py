"""Deep Feature Factorization: concepts found by non-negative matrix factorization of activations."""

from pytorch_grad_cam.feature_factorization.deep_feature_factorization import (
    DeepFeatureFactorization,
    dff,
    run_dff_on_image,
)

__all__ = ["DeepFeatureFactorization", "dff", "run_dff_on_image"]

"""The orientation of the first principal component (EigenCAM family, ``eigen_smooth``).

The SVD's sign is arbitrary; ``orientation="norm"`` (the default) makes the projection correlate positively
with the per-position norm of what is decomposed, ``"energy"`` with its channel sum, ``"lobe"`` makes the
larger-magnitude lobe positive and ``"raw"`` keeps the SVD's sign (the reference release). Sign independence is
checked by negating the SVD's singular vectors (``torch.linalg.svd`` wrapped) or by computing the SVD with numpy
instead.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from conftest import golden_targets

import pytorch_grad_cam as pgc
from pytorch_grad_cam import kpca_cam
from pytorch_grad_cam.core import projection as core_projection
from pytorch_grad_cam.core.projection import ORIENTATIONS, centered_rows, orient, project_on_first_component
from pytorch_grad_cam.core.scaling import scale_cam_tensor
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection, get_2d_projection_with_sign_correction

pytestmark = pytest.mark.usefixtures("one_thread")

SVD = torch.linalg.svd


def negated_svd(a: torch.Tensor, full_matrices: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """torch's SVD with both singular vectors negated (an equally valid SVD)."""
    u, s, vh = SVD(a, full_matrices=full_matrices)
    return -u, s, -vh


def numpy_svd(a: torch.Tensor, full_matrices: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """numpy's (LAPACK gesdd) SVD, whose signs differ from torch's on some matrices."""
    u, s, vh = np.linalg.svd(a.detach().double().numpy(), full_matrices=full_matrices)
    return tuple(torch.from_numpy(x).to(a.dtype) for x in (u, s, vh))  # type: ignore[return-value]


def with_svd(monkeypatch: pytest.MonkeyPatch, svd: Callable, run: Callable[[], np.ndarray]) -> np.ndarray:
    """``run()`` with ``torch.linalg.svd`` replaced by ``svd``."""
    monkeypatch.setattr(core_projection.torch.linalg, "svd", svd)
    try:
        return run()
    finally:
        monkeypatch.undo()


def blob_activations() -> torch.Tensor:
    """``(2, 6, 8, 8)``: faint noise in every channel, and a bright 2×2 object in channels 0 and 1 (image 0 at
    the top left, image 1 at the bottom right)."""
    generator = torch.Generator().manual_seed(0)
    activations = 0.05 * torch.rand(2, 6, 8, 8, generator=generator)
    activations[0, :2, 1:3, 1:3] += 3.0
    activations[1, :2, 5:7, 5:7] += 2.0
    return activations


def object_mask() -> torch.Tensor:
    mask = torch.zeros(2, 8, 8, dtype=torch.bool)
    mask[0, 1:3, 1:3] = True
    mask[1, 5:7, 5:7] = True
    return mask


# ----------------------------------------------------------------------------------- hand-built activations
@pytest.mark.parametrize("orientation", ["norm", "energy", "lobe"])
@pytest.mark.parametrize("svd", [SVD, negated_svd, numpy_svd])
def test_oriented_projection_is_positive_on_the_object_for_any_svd_sign(orientation, svd, monkeypatch) -> None:
    activations = blob_activations()
    projection = with_svd(monkeypatch, svd, lambda: project_on_first_component(activations, orientation))
    mask = object_mask()
    for image in range(2):
        assert (projection[image][mask[image]] > 0).all()
        assert (projection[image][~mask[image]] < 0).all()


def test_raw_follows_the_svd_sign(monkeypatch) -> None:
    activations = blob_activations()
    plain = project_on_first_component(activations, "raw")
    flipped = with_svd(monkeypatch, negated_svd, lambda: project_on_first_component(activations, "raw"))
    torch.testing.assert_close(flipped, -plain)


def test_energy_keeps_a_large_object_that_the_lobe_rule_inverts() -> None:
    """An object covering most of the image: after centring its plateau is a small positive lobe and the empty
    corner a large negative one. ``"energy"`` keeps the object positive; ``"lobe"`` points at the corner."""
    activations = torch.zeros(1, 3, 6, 6)
    activations[0, 0] = 1.0
    activations[0, 0, :2, :2] = 0.0  # the empty corner (4 of 36 positions)
    corner = torch.zeros(6, 6, dtype=torch.bool)
    corner[:2, :2] = True
    for svd in (SVD, negated_svd):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(core_projection.torch.linalg, "svd", svd)
            energy = project_on_first_component(activations, "energy")[0]
            norm = project_on_first_component(activations, "norm")[0]
            lobe = project_on_first_component(activations, "lobe")[0]
        assert (energy[~corner] > 0).all() and (energy[corner] < 0).all()
        assert (norm[~corner] > 0).all() and (norm[corner] < 0).all()
        assert (lobe[corner] > 0).all() and (lobe[~corner] < 0).all()


@pytest.mark.parametrize(("rule", "reference"), [("energy", lambda a: a.sum(dim=1)), ("norm", lambda a: a.norm(dim=1))])
def test_oriented_projection_correlates_with_its_reference(rule, reference) -> None:
    """ "energy" correlates the projection with the channel sum, "norm" with the channel norm per position."""
    activations = torch.randn(5, 7, 4, 5, generator=torch.Generator().manual_seed(3))
    projection = project_on_first_component(activations, rule)
    values = reference(activations)
    assert ((projection * (values - values.mean(dim=(1, 2), keepdim=True))).sum(dim=(1, 2)) > 0).all()


def test_energy_makes_the_loadings_sum_positive() -> None:
    """For the linear PCA, "energy" is the sign that makes the component's loadings sum to a positive number."""
    activations = torch.randn(5, 7, 4, 5, generator=torch.Generator().manual_seed(3))
    projection = project_on_first_component(activations, "energy")
    rows = centered_rows(activations)
    for image in range(5):
        _, _, vh = SVD(rows[image], full_matrices=False)
        v1 = vh[0] if vh[0].sum() > 0 else -vh[0]
        torch.testing.assert_close(projection[image].flatten(), rows[image] @ v1)


def test_norm_points_at_a_blob_of_mixed_sign_channels() -> None:
    """A blob of mixed-sign channels (as gradient-weighted activations are) is positive under "norm", where
    "energy" follows its (here negative) channel sum."""
    blob = torch.zeros(1, 2, 6, 6)
    blob[0, 0, 2:4, 2:4] = 1.0
    blob[0, 1, 2:4, 2:4] = -3.0  # mostly negative evidence on the blob
    inside = torch.zeros(6, 6, dtype=torch.bool)
    inside[2:4, 2:4] = True
    assert (project_on_first_component(blob, "norm")[0][inside] > 0).all()
    assert (project_on_first_component(blob, "energy")[0][inside] < 0).all()


def test_orient_ties_fall_back_to_the_lobe_rule() -> None:
    """A projection uncorrelated with the channel sum (constant channel sum) is oriented by its larger lobe."""
    projection = torch.tensor([[[-3.0, 1.0, 2.0]]])
    constant = torch.ones(1, 2, 1, 3)
    for rule in ("energy", "norm"):
        torch.testing.assert_close(orient(projection, constant, rule), -projection)
        torch.testing.assert_close(orient(-projection, constant, rule), -projection)
    torch.testing.assert_close(orient(projection, constant, "raw"), projection)


# ------------------------------------------------------------------------------------------ the CAM classes
def _eigen_cam(model, orientation=None, **kwargs) -> Callable[[torch.Tensor], np.ndarray]:
    extra = {} if orientation is None else {"orientation": orientation}
    return pgc.EigenCAM(model, [model[6]], **extra, **kwargs)


def test_defaults() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    assert ORIENTATIONS[0] == "norm"
    for method in ("EigenCAM", "EigenGradCAM", "KPCA_CAM", "GradCAM", "HiResCAM", "ScoreCAM", "FullGrad"):
        layers = None if method == "FullGrad" else [model[0]]
        assert getattr(pgc, method)(model, layers).orientation == "norm"
    seg = pgc.SegEigenCAM(model, [model[0]])
    assert seg.orientation == "lobe" and seg.sign_correction  # Seg-Eigen-CAM's Eq. 13
    assert pgc.SegEigenCAM(model, [model[0]], orientation="energy").orientation == "energy"
    assert pgc.EigenCAM(model, [model[0]], sign_correction=True).orientation == "lobe"
    assert pgc.EigenCAM(model, [model[0]], sign_correction=False).orientation == "raw"
    cam = pgc.EigenCAM(model, [model[0]])
    assert not cam.sign_correction
    cam.sign_correction = True  # the former attribute
    assert cam.orientation == "lobe"


def test_raw_reproduces_the_svd_sign_maps(tiny_cnn, golden_input) -> None:
    """``orientation="raw"`` (and ``sign_correction=False``) give the unoriented torch projection, as before."""
    with torch.no_grad():
        activations = tiny_cnn[:7](golden_input)
    rows = centered_rows(activations)
    _, _, vh = SVD(rows, full_matrices=False)
    raw = (rows @ vh[:, 0, :, None])[..., 0].reshape(2, *activations.shape[2:])
    expected = scale_cam_tensor(scale_cam_tensor(raw.clamp_min(0), (24, 28))).numpy()
    np.testing.assert_allclose(_eigen_cam(tiny_cnn, "raw")(golden_input), expected, atol=1e-6)
    np.testing.assert_allclose(
        pgc.EigenCAM(tiny_cnn, [tiny_cnn[6]], sign_correction=False)(golden_input), expected, atol=1e-6
    )
    # the reference module's functions keep the raw sign
    torch.testing.assert_close(get_2d_projection(activations), raw)
    np.testing.assert_allclose(get_2d_projection(activations.numpy()), raw.numpy(), atol=1e-6)
    lobe = get_2d_projection_with_sign_correction(activations)
    torch.testing.assert_close(lobe, project_on_first_component(activations, sign_correction=True))


@pytest.mark.parametrize(
    ("method", "call"),
    [
        ("EigenCAM", {}),
        ("EigenGradCAM", {}),
        ("SegEigenCAM", {}),
        ("GradCAM", {"eigen_smooth": True}),
        ("GradCAMPlusPlus", {"eigen_smooth": True}),
        ("FullGrad", {"eigen_smooth": True}),
    ],
)
def test_default_does_not_depend_on_the_svd(method, call, tiny_cnn, golden_input, monkeypatch) -> None:
    def run(orientation: str | None = None) -> Callable[[], np.ndarray]:
        extra = {} if orientation is None else {"orientation": orientation}
        layers = None if method == "FullGrad" else [tiny_cnn[4], tiny_cnn[6]]
        return lambda: getattr(pgc, method)(tiny_cnn, layers, **extra)(golden_input, golden_targets(), **call)

    default = run()()
    for svd in (negated_svd, numpy_svd):
        np.testing.assert_allclose(with_svd(monkeypatch, svd, run()), default, atol=1e-5)
    raw = run("raw")()
    assert np.abs(with_svd(monkeypatch, negated_svd, run("raw")) - raw).max() > 0.1  # raw follows the SVD


def test_kpca_default_does_not_depend_on_the_kernel_pca_sign(tiny_cnn, golden_input, monkeypatch) -> None:
    original = kpca_cam.get_2d_projection_kernel
    default = pgc.KPCA_CAM(tiny_cnn, [tiny_cnn[6]])(golden_input)
    raw = pgc.KPCA_CAM(tiny_cnn, [tiny_cnn[6]], orientation="raw")(golden_input)
    monkeypatch.setattr(kpca_cam, "get_2d_projection_kernel", lambda *a, **k: -original(*a, **k))
    np.testing.assert_allclose(pgc.KPCA_CAM(tiny_cnn, [tiny_cnn[6]])(golden_input), default, atol=1e-6)
    flipped = pgc.KPCA_CAM(tiny_cnn, [tiny_cnn[6]], orientation="raw")(golden_input)
    assert np.abs(flipped - raw).max() > 0.1


def test_eigen_smooth_default_agrees_with_the_plain_map(tiny_cnn, golden_input) -> None:
    """With ``"energy"`` the eigen_smooth map correlates positively with the method's own map."""
    cam = pgc.GradCAM(tiny_cnn, [tiny_cnn[6]], orientation="energy")
    plain = cam(golden_input, golden_targets())
    smooth = cam(golden_input, golden_targets(), eigen_smooth=True)
    for image in range(2):
        assert np.corrcoef(plain[image].ravel(), smooth[image].ravel())[0, 1] > 0


def test_demo_scenes_point_at_the_object() -> None:
    """On the demo model the raw SVD sign points EigenCAM at the background; the default at the object."""
    from pytorch_grad_cam.demo import SceneDataset, demo_target_layers, load_demo_model, normalize
    from pytorch_grad_cam.demo.train import HELDOUT_SEED
    from pytorch_grad_cam.metrics import pointing_game

    model = load_demo_model()
    images, _, masks = SceneDataset(12, HELDOUT_SEED).arrays()
    inputs = normalize(images)
    default = pgc.EigenCAM(model, demo_target_layers(model))(inputs)
    raw = pgc.EigenCAM(model, demo_target_layers(model), orientation="raw")(inputs)
    assert pointing_game(default, masks).mean() >= 0.75
    assert pointing_game(raw, masks).mean() <= 0.25


# ------------------------------------------------------------------------------------------------ bad values
@pytest.mark.parametrize("value", ["Energy", "max", "", 1, True, None.__class__])
def test_bad_orientation_raises(value, tiny_cnn) -> None:
    for method in ("EigenCAM", "GradCAM", "KPCA_CAM"):
        with pytest.raises(ValueError, match="orientation must be one of 'norm', 'energy', 'lobe', 'raw'"):
            getattr(pgc, method)(tiny_cnn, [tiny_cnn[6]], orientation=value)
    with pytest.raises(ValueError, match="orientation"):
        project_on_first_component(torch.ones(1, 2, 3, 3), "up")  # type: ignore[arg-type]


def test_sign_correction_checks(tiny_cnn) -> None:
    with pytest.raises(TypeError, match="sign_correction"):
        pgc.EigenCAM(tiny_cnn, [tiny_cnn[6]], sign_correction="yes")
    with pytest.raises(ValueError, match="orientation or sign_correction"):
        pgc.EigenCAM(tiny_cnn, [tiny_cnn[6]], orientation="lobe", sign_correction=True)
    with pytest.raises(ValueError, match="orientation or sign_correction"):
        project_on_first_component(torch.ones(1, 2, 3, 3), "raw", sign_correction=True)

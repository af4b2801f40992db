"""SESS: Saliency Enhancing with Scaling and Sliding, a wrapper that makes any CAM method scale-robust."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pytorch_grad_cam.core import CAMMethod, CAMWrapper, Target
from pytorch_grad_cam.core.checks import (
    check_bool,
    check_choice,
    check_positive_int,
    check_real,
    deferred_checks,
    describe,
)
from pytorch_grad_cam.core.filters import gaussian_blur
from pytorch_grad_cam.core.outputs import check_finite_scores, detached, row_scores
from pytorch_grad_cam.core.perturbation import BatchSize
from pytorch_grad_cam.core.scaling import resize_cam_tensor, scale_cam_tensor
from pytorch_grad_cam.core.types import Layers, Reshape, Targets
from pytorch_grad_cam.grad_cam import GradCAM

__all__ = ["SESS", "sliding_window", "window_starts"]

POOLS = ("mean", "max")
#: Size and standard deviation of the Gaussian applied to the fused map when ``smooth=True``.
SMOOTH_KERNEL_SIZE = 11
SMOOTH_SIGMA = 5.0

#: A patch's place: ``(x1, y1, scaled_width, scaled_height)``, the top-left corner of the window in the image
#: resized to ``scaled_width × scaled_height``.
Coordinates = tuple[int, int, int, int]


class SESS(CAMWrapper):
    """SESS — Tyagi et al. 2022, "SESS: Saliency Enhancing with Scaling and Sliding", ECCV 2022,
    https://arxiv.org/abs/2207.01769

    A meta-method around any CAM method (``base_method``, Grad-CAM by default) that makes its maps robust to
    the object's scale, to several occurrences of it and to distractors. For each image:

    1. the image is resized so that its shorter side is each of the ``scales`` ``s_k`` (by default
       ``s_k = w + k · round(r · w)``, ``k = 0 … num_scales - 1``, with ``w`` the window size and
       ``r = scale_step_ratio``: 224, 288, … for a 224×224 image, as in the paper);
    2. a ``w × w`` window slides over every resized image with stride ``step_size`` (windows that would
       cross the right or bottom border are moved back inside), giving patches ``P_j``;
    3. each patch gets the target's score ``y_j`` on the softmax of the model output (raw score with
       ``use_softmax_scores=False``), clipped at 0; the ``pre_filter_ratio`` lowest-scoring patches are
       dropped, and the others weighted by ``a_j = y_j / max_j y_j`` (1 when every score is 0);
    4. the base method's map of each kept patch, ``a_j · CAM(P_j)``, is pasted at its window in a zero map of
       its resized image, and that map is resized back to the image (``M_j``);
    5. fusion, pixel by pixel: ``"mean"``: ``Σ_j M_j [M_j > θ] / Σ_j [M_j > θ]`` (0 where no patch is above
       ``θ``), or ``"max"``: ``max_j M_j``; then, with ``smooth``, a Gaussian blur (11×11, σ = 5, mirrored
       borders); finally each image's map is min-max scaled to [0, 1].

    Every image of the batch is enhanced on its own (its patches, scores and target). ``targets=None``
    explains each image's top class on the whole image. The numbers are the reference's (grad-cam 1.5.7).

    ``cam(input_tensor, targets=None, eigen_smooth=False)``: ``eigen_smooth`` (and ``aug_smooth``, by keyword)
    is passed to the base method for every patch.

    Args:
        model: the network to explain (leave out when ``base_method`` is a CAM object).
        target_layers: the base method's target layers.
        reshape_transform: as for the base method.
        base_method: the CAM of every patch: a CAM class of the library (built as
            ``base_method(model, target_layers, reshape_transform, **kwargs)``; ``None``: :class:`GradCAM`) or a
            CAM object.
        scales: the sizes the shorter side of the image is resized to, each at least the window size;
            ``None``: ``num_scales`` scales from the window size in steps of ``round(scale_step_ratio · w)``.
        num_scales: number of default scales.
        scale_step_ratio: step between default scales, as a fraction of the window size.
        window_size: side of the square window; ``None``: the shorter side of the input (so the smallest scale
            is the image itself).
        step_size: stride of the window; ``None``: the window size (non-overlapping windows, but for the ones
            moved back inside at the border).
        pre_filter_ratio: share of the lowest-scoring patches dropped before their maps are computed, in
            [0, 1).
        theta: threshold a pasted map must exceed at a pixel to count in the ``"mean"`` fusion there.
        pool: ``"mean"`` (the paper's spatially weighted average) or ``"max"``.
        smooth: blur the fused map with a Gaussian.
        use_softmax_scores: score patches on the softmax of the model output (the paper); ``False`` uses the
            target's raw score, e.g. for outputs that are not class logits.
        batch_size: patches per forward pass, for scoring and for the base method (also ``cam.batch_size``).
        **kwargs: further constructor arguments of ``base_method``.

    Raises:
        TypeError: for arguments of the wrong type (the message names the argument).
        ValueError: for out-of-range values, e.g. ``pool="median"``, or a scale below the window size at call
            time.
    """

    call_flags = ("eigen_smooth",)
    input_ndims = (4,)  # windows slide over 2-D images
    default_base_method = GradCAM
    batch_size = BatchSize()

    def __init__(
        self,
        model: nn.Module | None = None,
        target_layers: Layers | None = None,
        reshape_transform: Reshape = None,
        base_method: type[CAMMethod] | CAMMethod | None = None,
        scales: Sequence[int] | None = None,
        num_scales: int = 12,
        scale_step_ratio: float = 2.0 / 7.0,
        window_size: int | None = None,
        step_size: int | None = None,
        pre_filter_ratio: float = 0.0,
        theta: float = 0.0,
        pool: str = "mean",
        smooth: bool = True,
        use_softmax_scores: bool = True,
        batch_size: int = 32,
        **kwargs: Any,
    ) -> None:
        self.pool = check_choice(pool, "pool", POOLS)
        self.pre_filter_ratio = check_real(pre_filter_ratio, "pre_filter_ratio", 0.0, 1.0, high_open=True)
        self.num_scales = check_positive_int(num_scales, "num_scales")
        self.scale_step_ratio = check_real(scale_step_ratio, "scale_step_ratio", 0.0)
        self.scales = _check_scales(scales)
        self.window_size = check_positive_int(window_size, "window_size", allow_none=True)
        self.step_size = check_positive_int(step_size, "step_size", allow_none=True)
        self.theta = check_real(theta, "theta")
        self.smooth = check_bool(smooth, "smooth")
        self.use_softmax_scores = check_bool(use_softmax_scores, "use_softmax_scores")
        self.batch_size = batch_size
        self._outputs: Any = None
        super().__init__(model, target_layers, reshape_transform, base_method, **kwargs)

    @property
    def outputs(self) -> Any:
        """The model output of the last call's input images (not of their patches), detached."""
        return self._outputs

    # ------------------------------------------------------------------------------------- the method
    def explain(
        self, input_tensor: torch.Tensor, targets: Targets, *, aug_smooth: bool, eigen_smooth: bool, **options: Any
    ) -> torch.Tensor:
        with torch.no_grad():
            self._outputs = detached(self.model(input_tensor))
        if targets is None:
            targets = self.base_cam.default_targets(self._outputs, input_tensor.shape[0], **options)
        window, step = self.window_and_step(input_tensor)
        images = [input_tensor[i : i + 1] for i in range(input_tensor.shape[0])]
        # Every image's patches are scored first, then checked and ranked together: two waits for the device per
        # call (the finiteness check, the kept patches' indices) however many images and batches; the patches are
        # cut again for the maps, so that only one image's are held at a time.
        raw = torch.stack(
            [
                self.patch_scores(self.collect_patches(image, window, step)[0], target)
                for image, target in zip(images, targets)
            ]
        )
        check_finite_scores(raw, targets)
        scores = raw.clamp_min(0)
        kept = self.kept_patches(scores)
        weights = self.patch_weights(scores, kept)
        cam_options = {"aug_smooth": aug_smooth, "eigen_smooth": eigen_smooth, **options}
        with deferred_checks():  # the base method's checks of every batch of patches: one wait, at the end
            maps = [
                self.fuse(image, target, weights[i], order, window, step, **cam_options)
                for i, (image, target, order) in enumerate(zip(images, targets, kept.tolist()))
            ]
        return scale_cam_tensor(torch.stack(maps))

    def enhance(self, image: torch.Tensor, target: Target, **cam_options: Any) -> torch.Tensor:
        """The fused (and smoothed) ``(H, W)`` map of one image ``(1, C, H, W)``, before the final scaling."""
        window, step = self.window_and_step(image)
        scores = self.get_scores(self.collect_patches(image, window, step)[0], target)[None]
        kept = self.kept_patches(scores)
        weights = self.patch_weights(scores, kept)
        with deferred_checks():
            return self.fuse(image, target, weights[0], kept[0].tolist(), window, step, **cam_options)

    def fuse(
        self,
        image: torch.Tensor,
        target: Target,
        weights: torch.Tensor,
        order: list[int],
        window_size: int,
        step_size: int,
        **cam_options: Any,
    ) -> torch.Tensor:
        """Steps 3 to 5 for one image ``(1, C, H, W)``: the base method's maps of the kept patches, weighted,
        pasted and fused (and smoothed), ``(H, W)`` before the final scaling.

        Args:
            image: the image.
            target: its target.
            weights: the ``(K,)`` weights ``a_j`` of the kept patches (:meth:`patch_weights`).
            order: the indices of the kept patches, lowest score first (:meth:`kept_patches`, read from the
                device once for every image of a call).
            window_size: the window side.
            step_size: the window stride.
            **cam_options: passed to the base method's ``compute`` for every batch of patches.
        """
        height, width = image.shape[2:]
        patches, coordinates = self.collect_patches(image, window_size, step_size)
        total = torch.zeros(height, width, device=image.device)
        counts = torch.zeros(height, width, device=image.device)
        for start in range(0, len(order), self.batch_size):
            chosen = order[start : start + self.batch_size]
            batch = torch.cat([patches[j] for j in chosen])
            maps = self.base_cam.compute(batch, [target] * len(chosen), **cam_options).detach().float()
            maps = maps * weights[start : start + len(chosen)].to(maps.device)[:, None, None]
            for cam, j in zip(maps, chosen):
                pasted = self.paste_cam(cam, coordinates[j], (height, width)).to(total.device)
                if self.pool == "max":
                    total = torch.maximum(total, pasted)
                else:
                    inside = pasted > self.theta
                    total = total + torch.where(inside, pasted, torch.zeros_like(pasted))
                    counts = counts + inside
        fused = total if self.pool == "max" else torch.where(counts > 0, total / counts.clamp_min(1), 0.0)
        if self.smooth:
            fused = gaussian_blur(fused, SMOOTH_KERNEL_SIZE, SMOOTH_SIGMA, border="reflect101")
        return fused

    # --------------------------------------------------------------------------------------- the steps
    def window_and_step(self, image: torch.Tensor) -> tuple[int, int]:
        """The window side and stride for images of ``image``'s size: :attr:`window_size` (default: the shorter
        side) and :attr:`step_size` (default: the window side)."""
        height, width = image.shape[2:]
        window = self.window_size if self.window_size is not None else min(height, width)
        return window, self.step_size if self.step_size is not None else window

    def kept_patches(self, scores: torch.Tensor) -> torch.Tensor:
        """The indices of the patches kept by the pre-filter, lowest score first, for ``(B, N)`` clipped scores:
        ``(B, K)`` on their device (no wait for the device)."""
        dropped = int(scores.shape[-1] * self.pre_filter_ratio)
        return torch.argsort(scores, dim=-1, stable=True)[..., dropped:]

    @staticmethod
    def patch_weights(scores: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
        """The weights ``a_j = y_j / max_j y_j`` of the kept patches (1 when every score is 0), ``(B, K)`` for
        ``(B, N)`` clipped scores and the ``(B, K)`` indices of :meth:`kept_patches` (no wait for the device)."""
        best = scores.max(dim=-1, keepdim=True).values  # the last kept patch's: only the lowest are dropped
        kept_scores = scores.gather(-1, kept)
        return torch.where(best > 0, kept_scores / best, torch.ones_like(kept_scores))

    def get_scales(self, window_size: int) -> list[int]:
        """The shorter-side sizes the image is resized to: :attr:`scales`, or ``window_size + k · step`` for
        ``k < num_scales`` with ``step = round(window_size · scale_step_ratio)``."""
        if self.scales is not None:
            return list(self.scales)
        step = round(window_size * self.scale_step_ratio)
        return [window_size + step * k for k in range(self.num_scales)]

    def collect_patches(
        self, image: torch.Tensor, window_size: int, step_size: int
    ) -> tuple[list[torch.Tensor], list[Coordinates]]:
        """Every ``window_size`` square window of ``image`` resized to each scale, with its
        :data:`Coordinates`.

        Raises:
            ValueError: when a scale is below ``window_size``.
        """
        patches: list[torch.Tensor] = []
        coordinates: list[Coordinates] = []
        for scale in self.get_scales(window_size):
            if scale < window_size:
                raise ValueError(f"scales must all be at least the window size {window_size}; got {scale}")
            scaled = resize_shorter_side(image, scale)
            scaled_height, scaled_width = scaled.shape[2:]
            for x1, y1 in sliding_window(scaled_height, scaled_width, step_size, window_size):
                patches.append(scaled[:, :, y1 : y1 + window_size, x1 : x1 + window_size])
                coordinates.append((x1, y1, scaled_width, scaled_height))
        return patches, coordinates

    def get_scores(self, patches: list[torch.Tensor], target: Target) -> torch.Tensor:
        """The target's score of every patch (on the softmax of the output with :attr:`use_softmax_scores`),
        clipped at 0, as a float32 ``(len(patches),)`` tensor.

        Raises:
            ValueError: when a score is NaN or infinite (one wait for the device, however many batches).
        """
        scores = self.patch_scores(patches, target)
        check_finite_scores(scores, [target] * len(patches), None)
        return scores.clamp_min(0)

    def patch_scores(self, patches: list[torch.Tensor], target: Target) -> torch.Tensor:
        """:meth:`get_scores` before the finiteness check and the clipping: no wait for the device.

        Raises:
            ValueError: when ``use_softmax_scores`` is on and the model output is not a tensor.
        """
        scores = []
        with torch.no_grad():
            for start in range(0, len(patches), self.batch_size):
                batch = torch.cat(patches[start : start + self.batch_size])
                outputs = self.model(batch)
                if self.use_softmax_scores:
                    if not isinstance(outputs, torch.Tensor):
                        raise ValueError(
                            "use_softmax_scores=True needs a (B, num_classes) tensor output to take the softmax "
                            f"of, but the model returned {describe(outputs)}; pass use_softmax_scores=False"
                        )
                    outputs = torch.softmax(outputs.float(), dim=-1)
                scores.append(row_scores(target, outputs, batch.shape[0], check=False))
        return torch.cat(scores)

    @staticmethod
    def paste_cam(cam: torch.Tensor, coordinates: Coordinates, target_size: tuple[int, int]) -> torch.Tensor:
        """A patch's ``(h, w)`` map placed at its window in a zero map of its resized image, resized
        (bilinearly) to ``target_size`` ``(H, W)``."""
        x1, y1, scaled_width, scaled_height = coordinates
        canvas = cam.new_zeros(scaled_height, scaled_width)
        canvas[y1 : y1 + cam.shape[0], x1 : x1 + cam.shape[1]] = cam
        return resize_cam_tensor(canvas[None], target_size)[0]


def resize_shorter_side(image: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, C, H, W)`` images resized bilinearly (antialiased when shrinking) so that their shorter side is
    ``size``, the longer one ``int(size · long / short)``, as ``torchvision.transforms.functional.resize``."""
    height, width = image.shape[2:]
    if width <= height:
        new_width, new_height = size, int(size * height / width)
    else:
        new_height, new_width = size, int(size * width / height)
    if (new_height, new_width) == (height, width):
        return image
    resized = F.interpolate(
        image.float(), size=(new_height, new_width), mode="bilinear", align_corners=False, antialias=True
    )
    return resized.to(image.dtype)


def window_starts(length: int, step_size: int, window_size: int) -> list[int]:
    """Start offsets of windows of ``window_size`` every ``step_size`` along an axis of ``length``; the first
    window that would reach the end is moved back to end there (``max(length - window_size, 0)``), and is the
    last."""
    grid = range(0, length, step_size)
    starts = [start for start in grid if start + window_size < length]
    if len(starts) < len(grid):
        starts.append(max(length - window_size, 0))
    return starts


def sliding_window(height: int, width: int, step_size: int, window_size: int) -> list[tuple[int, int]]:
    """Top-left corners ``(x, y)`` of the windows covering a ``height × width`` image, row by row (see
    :func:`window_starts`)."""
    return [
        (x, y)
        for y in window_starts(height, step_size, window_size)
        for x in window_starts(width, step_size, window_size)
    ]


def _check_scales(scales: Any) -> list[int] | None:
    if scales is None:
        return None
    if isinstance(scales, (str, bytes)) or not isinstance(scales, Sequence):
        raise TypeError(f"scales must be a list of positive ints or None; got {describe(scales)}")
    if len(scales) == 0:
        raise ValueError("scales must hold at least one size; got an empty list")
    return [check_positive_int(scale, f"scales[{index}]") for index, scale in enumerate(scales)]

#!/usr/bin/env python3
r"""pytorch-grad-cam's CAM methods as map methods of
:func:`~captum_srae.evaluation.compare.compare`.

:class:`PytorchGradCam` runs one of pytorch-grad-cam's CAM classes
(``GradCAM``, ``GradCAMPlusPlus``, ``ScoreCAM``, ``EigenCAM``, ...) on the
explained layer with a ``ClassifierOutputTarget`` per image, and follows the
map-method protocol ``(model, layer, x, target) -> (N, H, W)``. The maps are
pytorch-grad-cam's: the ReLU of the layer map, resized to the input
(OpenCV bilinear, as Captum's ``LayerAttribution.interpolate``) and scaled
per image to ``[0, 1]`` (minus the minimum, over the maximum). EigenCAM
ignores ``target``: it is the projection of the activations on their first
principal component, the same map for every class.

pytorch-grad-cam (the ``peers`` extra) is imported when a map is computed,
through :func:`~captum_srae.evaluation.peers.import_peer`.
"""

from __future__ import annotations

import contextlib
import io

import torch
from torch import Tensor, nn

from captum_srae.evaluation.peers.requirements import import_peer
from captum_srae.utils.validation import check_int

__all__ = ["PGC_CAMS", "PytorchGradCam"]

#: Method name in :func:`compare` → pytorch-grad-cam class.
PGC_CAMS: dict[str, str] = {
    "pgc-GradCAM": "GradCAM",
    "pgc-GradCAM++": "GradCAMPlusPlus",
    "pgc-ScoreCAM": "ScoreCAM",
    "pgc-EigenCAM": "EigenCAM",
}


class PytorchGradCam:
    r"""A pytorch-grad-cam CAM class as a map method.

    Args:
        cam (str): the class name in ``pytorch_grad_cam``, e.g. ``"GradCAM"``,
            ``"GradCAMPlusPlus"``, ``"ScoreCAM"``, ``"EigenCAM"`` (any CAM
            class of the package with the ``(model, target_layers)``
            constructor works).
        batch_size (int, optional): masked images per forward pass of
            ScoreCAM. Default: 32

    Examples::

        >>> from captum_srae.evaluation.peers.gradcam import PytorchGradCam
        >>> maps = PytorchGradCam("GradCAMPlusPlus")(cnn, cnn.conv4, x, pred)
        >>> maps.shape  # (N, H, W), each map in [0, 1]
    """

    def __init__(self, cam: str, *, batch_size: int = 32) -> None:
        if not isinstance(cam, str) or not cam:
            raise ValueError(f"cam must be a pytorch_grad_cam class name, got {cam!r}")
        self.cam = cam
        self.batch_size = check_int(batch_size, "batch_size")

    def __repr__(self) -> str:
        return f"PytorchGradCam({self.cam!r})"

    def __call__(
        self, model: nn.Module, layer: nn.Module, x: Tensor, target: Tensor
    ) -> Tensor:
        r"""Maps ``(N, H, W)`` of class ``target[i]`` on image ``x[i]``.

        Args:
            model (nn.Module): the classifier.
            layer (nn.Module): the target layer (spatial output).
            x (Tensor): images ``(N, C, H, W)``.
            target (Tensor): class per image ``(N,)``.

        Returns:
            *Tensor*: ``(N, H, W)`` in ``x``'s dtype, each map in ``[0, 1]``.

        Raises:
            ValueError: if grad-cam is missing or of an unsupported version,
                or ``cam`` is not one of its classes.
        """
        pgc = import_peer("grad-cam", "pytorch_grad_cam")
        targets_module = import_peer("grad-cam", "pytorch_grad_cam.utils.model_targets")
        cls = getattr(pgc, self.cam, None)
        if cls is None:
            raise ValueError(f"cam must be a pytorch_grad_cam class, got {self.cam!r}")
        targets = [targets_module.ClassifierOutputTarget(int(c)) for c in target]
        was_training = model.training  # pytorch-grad-cam calls model.eval()
        cam = cls(model=model, target_layers=[layer])
        cam.batch_size = self.batch_size  # read by ScoreCAM only
        try:
            # ScoreCAM draws a progress bar per image on stderr
            with contextlib.redirect_stderr(io.StringIO()):
                maps = cam(input_tensor=x, targets=targets)
        finally:
            cam.activations_and_grads.release()
            model.train(was_training)
        return torch.as_tensor(maps).to(dtype=x.dtype, device=x.device)

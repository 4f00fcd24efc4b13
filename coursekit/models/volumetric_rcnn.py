r"""Volumetric R-CNN: a 3D region proposal network and joint recognition on a fused TSDF volume.

The slide's volumetric take on the two-stage detector (Deep Sliding Shapes: Song & Xiao,
"Deep Sliding Shapes for Amodal 3D Object Detection in RGB-D Images", CVPR 2016): the input
is not a point cloud but what a depth sensor gives, depth maps from a few cameras, fused into
a **truncated signed distance volume** (Curless & Levoy 1996; :mod:`coursekit.geometry.tsdf`):

.. math::

    \eta = D(\pi(x)) - z_{cam}(x),\qquad f = \min\!\Big(1, \frac{\eta}{\mu}\Big)\ \ (\eta \ge -\mu),\qquad
    F \leftarrow \frac{W F + f}{W + 1},\quad W \leftarrow W + 1

A 3D RPN (anchors of class mean sizes at every cell of the feature grid, objectness and
box deltas) proposes boxes on the volume, and a second stage does **joint recognition**:
one head on the RoI-pooled volume predicts the class and refines the box together
(:class:`coursekit.models.two_stage_detector.TwoStageDetector`, run on TSDF channels).

The volume sees only what the cameras see: occluded furniture is missing, as in a real scan.
"""

from __future__ import annotations

from typing import Sequence

import torch
from tqdm.auto import tqdm

from coursekit.geometry.camera import fov_intrinsics, pixel_grid, unproject
from coursekit.geometry.render import render_mesh
from coursekit.geometry.tsdf import tsdf_fuse

from .sliding_shapes import ClassStatistics, grid_shape
from .two_stage_detector import TwoStageDetector

__all__ = ["TSDF_CHANNELS", "render_scan", "tsdf_features", "tsdf_volumes", "VolumetricRCNN"]

TSDF_CHANNELS = ("tsdf", "observed", "near surface")
"""Channels of :func:`tsdf_features`."""


def render_scan(scene, n_views: int = 8, image_size: tuple[int, int] = (96, 128), fov_deg: float = 70.0) -> dict[str, torch.Tensor]:
    """Depth maps of a room from ``n_views`` cameras inside it (:meth:`Scene.viewpoints`), and the partial
    point cloud they see with its labels (a scan).

    Args:
        scene: a :class:`~coursekit.data.world.scenes.Scene`.
        n_views: cameras on an ellipse at eye height.
        image_size: ``(H, W)`` pixels.
        fov_deg: horizontal field of view.

    Returns:
        dict ``depth (V, H, W)`` (camera ``z``, 0 = no surface), ``K (V, 3, 3)``, ``R (V, 3, 3)``,
        ``t (V, 3)``, and the scan ``points (P, 3)``, ``semantic (P,)``, ``instance (P,)``.
    """
    R, t = scene.viewpoints(n_views)
    K = fov_intrinsics(fov_deg, image_size).expand(n_views, 3, 3)
    view = render_mesh(scene.vertices, scene.faces, K, R, t, image_size)
    H, W = image_size
    uv = pixel_grid(H, W).reshape(1, -1, 2).expand(n_views, -1, 2)
    points = unproject(uv, view["depth"].reshape(n_views, -1), K, R, t)
    valid = view["mask"].reshape(n_views, -1)
    face = view["face_index"].reshape(n_views, -1)[valid]
    return {"depth": view["depth"], "K": K, "R": R, "t": t, "points": points[valid],
            "semantic": scene.face_semantic[face], "instance": scene.face_instance[face]}


def tsdf_features(tsdf: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    r"""Network input from a fused volume: the TSDF where observed, the observed mask, and surface proximity.

    .. math::  V = \big(F\,[W > 0],\ [W > 0],\ (1 - |F|)\,[W > 0]\big)

    Args:
        tsdf, weight: ``(D, H, W)`` from :func:`coursekit.geometry.tsdf.tsdf_fuse`.

    Returns:
        ``(3, D, H, W)``, channels :data:`TSDF_CHANNELS`.
    """
    if tsdf.dim() != 3 or weight.shape != tsdf.shape:
        raise ValueError(f"tsdf and weight must both be (D, H, W), got {tuple(tsdf.shape)} and {tuple(weight.shape)}")
    observed = (weight > 0).to(tsdf.dtype)
    return torch.stack([tsdf * observed, observed, (1 - tsdf.abs()) * observed])


def tsdf_volumes(scenes: Sequence, bounds, voxel_size: float, n_views: int = 8, image_size: tuple[int, int] = (96, 128),
                 truncation_voxels: float = 2.0, progress: bool = True) -> torch.Tensor:
    """Render each room (:func:`render_scan`), fuse its depth maps into a TSDF on the detector's grid.

    Args:
        scenes: rooms.
        bounds: ``(2, 3)`` grid bounds (:func:`~coursekit.models.sliding_shapes.scene_bounds`).
        voxel_size: voxel edge.
        n_views, image_size: cameras per room and their resolution.
        truncation_voxels: :math:`\\mu` in voxels.
        progress: ``tqdm.auto`` bar.

    Returns:
        ``(B, 3, D, H, W)`` :func:`tsdf_features` of every room.
    """
    shape = grid_shape(bounds, voxel_size)
    out = []
    for scene in tqdm(scenes, desc="TSDF fusion", disable=not progress, leave=False):
        scan = render_scan(scene, n_views, image_size)
        tsdf, weight = tsdf_fuse(scan["depth"], scan["K"], scan["R"], scan["t"], bounds, shape, truncation_voxels * voxel_size)
        out.append(tsdf_features(tsdf, weight))
    return torch.stack(out)


class VolumetricRCNN(TwoStageDetector):
    """The two-stage detector on :data:`TSDF_CHANNELS` volumes (:func:`tsdf_volumes`): 3D RPN, then joint
    class + box recognition on RoI-pooled TSDF and backbone features.

    Args:
        stats, bounds, voxel_size, width, roi_grid, context: as :class:`TwoStageDetector`.
    """

    def __init__(self, stats: ClassStatistics, bounds, voxel_size: float, width: int = 32, roi_grid: int = 4, context: float = 1.25):
        super().__init__(stats, bounds, voxel_size, in_channels=len(TSDF_CHANNELS), width=width, roi_grid=roi_grid, context=context)

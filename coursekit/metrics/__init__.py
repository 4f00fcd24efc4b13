r"""Metrics for 3D generation and reconstruction (lecture 05, "Metric" slides).

Point-set distances (``(B, N, 3)`` clouds, per-pair ``(B,)`` results):

* :func:`chamfer_distance` — the slide's sum of squared NN distances by default; PyTorch3D,
  AtlasNet, PSGN and Occupancy Networks conventions by name (table in
  :mod:`coursekit.metrics.chamfer`).
* :func:`emd_exact` (the slide's bijection, with the assignment; differentiable through it)
  and :func:`emd_sinkhorn` (entropic approximation; see :mod:`coursekit.metrics.emd` for the gap).
* :func:`fscore` / :func:`precision_recall` at a threshold (Tatarchenko et al. 2019),
  :func:`normal_consistency` (Occupancy Networks), :func:`voxel_iou` (occupancy grids),
  :func:`light_field_distance` (the Light Field Descriptor of two meshes).

Set-to-set metrics for free generation (:mod:`coursekit.metrics.set_metrics`): MMD, COV,
1-NNA on Chamfer or EMD, JSD of occupancy grids; and :func:`frechet_distance` (FPD) on features,
:func:`frechet_point_distance` with the shipped PointNet features (:mod:`~coursekit.metrics.fpd_features`).
"""

from ..geometry.voxels import voxel_iou
from .chamfer import CONVENTIONS, ChamferConvention, chamfer_distance, nearest_sq_dists
from .emd import emd_exact, emd_sinkhorn, optimal_assignment
from .fpd_features import frechet_point_distance
from .frechet import frechet_distance, frechet_distance_from_stats
from .fscore import fscore, precision_recall
from .light_field import lfd_distance, light_field_descriptor, light_field_distance
from .normals import normal_consistency
from .set_metrics import (coverage, jsd, minimum_matching_distance, one_nn_accuracy, pairwise_distances,
                          set_metrics)

__all__ = [
    "CONVENTIONS", "ChamferConvention", "chamfer_distance", "nearest_sq_dists",
    "emd_exact", "emd_sinkhorn", "optimal_assignment",
    "fscore", "precision_recall", "normal_consistency", "voxel_iou",
    "light_field_descriptor", "lfd_distance", "light_field_distance", "frechet_point_distance",
    "pairwise_distances", "set_metrics", "minimum_matching_distance", "coverage", "one_nn_accuracy", "jsd",
    "frechet_distance", "frechet_distance_from_stats",
]

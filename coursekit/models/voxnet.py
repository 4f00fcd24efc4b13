r"""A volumetric CNN on occupancy grids at VoxNet / 3D ShapeNets scale ("3D CNN on volumetric data").

Paper: Maturana, Scherer, "VoxNet: a 3D convolutional neural network for real-time object
recognition", IROS 2015 (32^3 grids); the slides' 3D ShapeNets (Wu et al., CVPR 2015) works on
30^3 grids with a convolutional deep belief network, which we do not reproduce: the same
network below runs on 30^3 too.

**Kept** (VoxNet exactly, at its sizes in the ``cpu`` and ``gpu`` profiles): input
``(B, 1, 32, 32, 32)`` occupancy; Conv3d(32 filters, 5x5x5, stride 2) - leaky ReLU(0.1) -
dropout 0.2; Conv3d(32, 3x3x3) - leaky ReLU - 2x2x2 max pool - dropout 0.3; FC 128 - ReLU -
dropout 0.4; FC to the classes (about 0.9 M parameters for 32^3).

**Scaled down**: only in the ``fast`` profile (16 filters on 16^3 grids). VoxNet's rotation
augmentation and voting over 12 rotated copies are left to the training code.

Input: ``(B, 1, R, R, R)`` occupancy (axes ``(z, y, x)``, :mod:`coursekit.geometry.voxels`).
From a world :class:`~coursekit.data.world.shapes.Shape`:
``voxelize_mesh_surface(shape.vertices, shape.faces, 32)`` (``(1, 1, R, R, R)``, concatenate a
batch) or, from its point samples, ``voxelize_points(points, 32)`` (:meth:`VoxNet.prepare`).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import runtime
from ..geometry.voxels import Bounds, voxelize_points

#: Sizes per runtime profile: grid resolution, filters per conv layer, hidden FC units.
SIZES = {
    "fast": dict(resolution=16, filters=16, hidden=64),
    "cpu": dict(resolution=32, filters=32, hidden=128),
    "gpu": dict(resolution=32, filters=32, hidden=128),
}


def _check_grid(occupancy: torch.Tensor, resolution: int) -> None:
    want = (1, resolution, resolution, resolution)
    if not isinstance(occupancy, torch.Tensor) or occupancy.dim() != 5 or tuple(occupancy.shape[1:]) != want:
        raise ValueError(f"occupancy must have shape (B, {', '.join(map(str, want))}), got "
                         f"{tuple(getattr(occupancy, 'shape', ()))}; voxelise at the model's resolution {resolution}")


class VoxNet(nn.Module):
    r"""VoxNet: two 3-D convolutions, a max pool and two fully connected layers on an occupancy grid.

    .. math::  \text{logits} = \mathrm{FC}\Big(\mathrm{FC}_{128}\big(\operatorname{pool}(\sigma(W_2 * \sigma(W_1 *_{2} O)))\big)\Big)

    with :math:`*_2` a stride-2 5x5x5 convolution, :math:`W_2` 3x3x3, :math:`\sigma` leaky ReLU.

    Args:
        n_classes: number of classes.
        resolution, filters, hidden: default from :data:`SIZES` for the active profile
            (``resolution >= 12``).
        bounds: the cube :meth:`prepare` voxelises.

    Shapes:
        ``occupancy (B, 1, R, R, R)`` -> logits ``(B, n_classes)``.
    """

    def __init__(self, n_classes: int, resolution: int | None = None, filters: int | None = None,
                 hidden: int | None = None, bounds: Bounds = (-1.0, 1.0)):
        super().__init__()
        sizes = runtime.pick(SIZES)
        self.resolution = resolution or sizes["resolution"]
        filters = filters or sizes["filters"]
        hidden = hidden or sizes["hidden"]
        if self.resolution < 12:
            raise ValueError(f"resolution must be at least 12, got {self.resolution}")
        self.bounds = bounds
        side = ((self.resolution - 5) // 2 + 1 - 2) // 2  # conv5 stride 2, conv3, pool 2
        self.features = nn.Sequential(
            nn.Conv3d(1, filters, 5, stride=2), nn.LeakyReLU(0.1), nn.Dropout(0.2),
            nn.Conv3d(filters, filters, 3), nn.LeakyReLU(0.1), nn.MaxPool3d(2), nn.Dropout(0.3),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(filters * side ** 3, hidden), nn.ReLU(), nn.Dropout(0.4), nn.Linear(hidden, n_classes),
        )

    def prepare(self, points: torch.Tensor) -> torch.Tensor:
        """Occupancy grids of ``(B, N, 3)`` clouds at the model's resolution: ``(B, 1, R, R, R)``."""
        return voxelize_points(points, self.resolution, self.bounds)

    def forward(self, occupancy: torch.Tensor) -> torch.Tensor:
        _check_grid(occupancy, self.resolution)
        return self.classifier(self.features(occupancy))

r"""X-ray CNN: project the occupancy grid along the three axes, classify the images with a 2-D CNN.

Slides, "Idea 1: learn to project": "X-ray rendering + image (2D) CNNs: very low #param, very low
computation". The idea is that of Qi, Su, Niessner, Dai, Yan, Guibas, "Volumetric and
multi-view CNNs for object classification on 3D data", CVPR 2016 (its anisotropic probing
kernels learn the projection; the plain X-ray sum is their fixed baseline).

**Kept**: the projection is a sum of occupancy along each ray
(:func:`~coursekit.geometry.xray.xray_views`, divided by the ray length), the three axis
projections are the channels of one image, and a small image CNN classifies it.

**Scaled down / ours**: the 2-D CNN is three 3x3 conv - BN - ReLU - max pool blocks and a
global average pool before one linear layer (the paper uses a NIN-style network on learned
projections). It has far fewer parameters than :class:`~coursekit.models.voxnet.VoxNet` on the
same grid (24 k against 918 k at the ``cpu`` sizes, 37x fewer; ``benchmarks/grid_models.py`` prints both).

Input: ``(B, 1, R, R, R)`` occupancy, as for VoxNet (``voxelize_points(points, R)`` or
``voxelize_mesh_surface(shape.vertices, shape.faces, R)``).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import runtime
from ..geometry.voxels import Bounds, voxelize_points
from ..geometry.xray import xray_views

#: Sizes per runtime profile: grid resolution and base width of the 2-D CNN.
SIZES = {
    "fast": dict(resolution=16, width=8),
    "cpu": dict(resolution=32, width=16),
    "gpu": dict(resolution=32, width=32),
}


class XRayCNN(nn.Module):
    r"""Sum the grid along x, y and z, stack the three images as channels, classify with a 2-D CNN.

    .. math::  I_a[h, w] = \frac{1}{R} \sum_{d} O_a[d, h, w] \quad (a \in \{x, y, z\}), \qquad
               \text{logits} = \mathrm{CNN}_{2D}([I_x; I_y; I_z])

    Args:
        n_classes: number of classes.
        resolution, width: default from :data:`SIZES` for the active profile.
        bounds: the cube :meth:`prepare` voxelises.

    Shapes:
        ``occupancy (B, 1, R, R, R)`` -> logits ``(B, n_classes)``.
    """

    def __init__(self, n_classes: int, resolution: int | None = None, width: int | None = None,
                 bounds: Bounds = (-1.0, 1.0)):
        super().__init__()
        sizes = runtime.pick(SIZES)
        self.resolution = resolution or sizes["resolution"]
        width = width or sizes["width"]
        self.bounds = bounds
        layers, c = [], 3
        for i in range(3):
            layers += [nn.Conv2d(c, width * 2 ** i, 3, padding=1, bias=False), nn.BatchNorm2d(width * 2 ** i),
                       nn.ReLU(), nn.MaxPool2d(2)]
            c = width * 2 ** i
        self.cnn = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, n_classes))

    def prepare(self, points: torch.Tensor) -> torch.Tensor:
        """Occupancy grids of ``(B, N, 3)`` clouds at the model's resolution: ``(B, 1, R, R, R)``."""
        return voxelize_points(points, self.resolution, self.bounds)

    def forward(self, occupancy: torch.Tensor) -> torch.Tensor:
        want = (1,) + (self.resolution,) * 3
        if not isinstance(occupancy, torch.Tensor) or occupancy.dim() != 5 or tuple(occupancy.shape[1:]) != want:
            raise ValueError(f"occupancy must have shape (B, 1, {self.resolution}, {self.resolution}, {self.resolution}), "
                             f"got {tuple(getattr(occupancy, 'shape', ()))}")
        return self.cnn(xray_views(occupancy, normalize=True))


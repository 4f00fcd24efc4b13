r"""From a point cloud to every representation the classification lecture feeds its networks.

The slides' methods differ first in what they read: rendered views (MVCNN), an occupancy grid
(VoxNet, 3D ShapeNets), X-ray images (sums of the grid along the axes), an octree or a sparse set
of occupied cells (O-CNN, SparseConvNet), the points themselves (PointNet and its successors), a
kNN graph (DGCNN, spectral CNNs) or a function on the sphere (spherical CNNs). Every adapter here
starts from the same ``(B, N, 3)`` clouds, so one test object, perturbed once (points dropped,
noise, a rotation: :func:`drop_points`, :func:`jitter`, :func:`rotate_about_up`), reaches every
model in the form it needs. The adapters call the geometry ops that own each representation
(:mod:`coursekit.geometry.voxels`, :mod:`~coursekit.geometry.xray`, :mod:`~coursekit.geometry.octree`
through :class:`~coursekit.nn.octree_conv.OctreeBatch`, :mod:`~coursekit.geometry.sparse`,
:mod:`~coursekit.geometry.spherical`, :mod:`~coursekit.geometry.graphs`,
:mod:`~coursekit.geometry.camera`); the one op of their own is :func:`point_views`, a z-buffered
splat of the points into MVCNN's cameras (the mesh renderer,
:func:`coursekit.geometry.render.render_views`, needs a mesh, which a perturbed point cloud is not).

Convention
    Clouds are ``(B, N, 3)`` in the unit ball, ``+y`` up (the world's and the camera module's
    up axis); grids are ``(B, 1, D, H, W)`` with ``(D, H, W) = (z, y, x)`` over ``[-1, 1]^3``;
    views are ``(B, V, 1, H, W)``; spherical functions ``(B, 1, 2L, 2L)`` with the pole on ``+y``.
"""

from __future__ import annotations

import math

import torch

from ..geometry.camera import project
from ..geometry.render import view_rig
from ..geometry.graphs import knn_graph as _knn_graph
from ..geometry.spherical import spherical_function_points
from ..geometry.validate import check_points
from ..geometry.voxels import Bounds, voxelize_points
from ..geometry.xray import xray_views
from ..nn.octree_conv import OctreeBatch
from ..nn.sparse_conv import SparseTensor

__all__ = [
    "first_points",
    "drop_points",
    "jitter",
    "rotate_about_up",
    "occupancy",
    "xray_images",
    "point_views",
    "octree",
    "sparse_voxels",
    "spherical_function",
    "knn_graphs",
]


def _check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


# ---------------------------------------------------------------- perturbations of the clouds

def first_points(points: torch.Tensor, n: int) -> torch.Tensor:
    """The first ``n`` points of every cloud: a uniform subsample when the points are i.i.d. surface samples.

    Args:
        points: ``(B, N, 3)``.
        n: ``1 <= n <= N``.

    Returns:
        ``(B, n, 3)`` (a view).
    """
    check_points(points)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= points.shape[1]:
        raise ValueError(f"n must be an int in [1, N = {points.shape[1]}], got {n!r}")
    return points[:, :n]


def drop_points(points: torch.Tensor, keep: float = 0.5, generator: torch.Generator | None = None,
                scores: torch.Tensor | None = None) -> torch.Tensor:
    r"""Keep a random fraction of every cloud's points ("50 % of the points dropped").

    .. math::  P' = \{p_i : i \in S\}, \qquad S \subset \{1..N\}\ \text{uniform},\ |S| = \lfloor \text{keep}\cdot N \rfloor

    Args:
        points: ``(B, N, 3)``.
        keep: fraction kept, in ``(0, 1]``.
        generator: draws which points stay.
        scores: optional ``(B, M)`` random keys with ``M >= N`` (the lowest ``|S|`` of the first
            ``N`` win), so that clouds cut to different sizes from the same ``M`` points lose
            the same points.

    Returns:
        ``(B, floor(keep * N), 3)``, the kept points in their original order.
    """
    check_points(points)
    _check_generator(generator)
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    B, N, _ = points.shape
    n_keep = max(1, int(math.floor(keep * N)))
    if scores is None:
        scores = torch.rand(B, N, generator=generator).to(points.device)
    elif scores.shape[0] != B or scores.dim() != 2 or scores.shape[1] < N:
        raise ValueError(f"scores must have shape ({B}, M >= {N}), got {tuple(scores.shape)}")
    kept = scores[:, :N].to(points.device).argsort(dim=1)[:, :n_keep].sort(dim=1).values
    return points.gather(1, kept.unsqueeze(-1).expand(-1, -1, 3))


def jitter(points: torch.Tensor, sigma: float = 0.01, generator: torch.Generator | None = None,
           noise: torch.Tensor | None = None) -> torch.Tensor:
    r"""Add i.i.d. Gaussian noise to every coordinate.

    .. math::  p'_i = p_i + \sigma\,\varepsilon_i, \qquad \varepsilon_i \sim \mathcal{N}(0, I_3)

    Args:
        points: ``(B, N, 3)``.
        sigma: standard deviation (in the units of the unit-ball clouds).
        generator: draws the noise.
        noise: optional standard-normal ``(B, M, 3)`` with ``M >= N`` to use instead of drawing.

    Returns:
        ``(B, N, 3)``.
    """
    check_points(points)
    _check_generator(generator)
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    B, N, _ = points.shape
    if noise is None:
        noise = torch.randn(B, N, 3, generator=generator, dtype=points.dtype)
    elif noise.dim() != 3 or noise.shape[0] != B or noise.shape[1] < N or noise.shape[2] != 3:
        raise ValueError(f"noise must have shape ({B}, M >= {N}, 3), got {tuple(noise.shape)}")
    return points + sigma * noise[:, :N].to(points)


def rotate_about_up(points: torch.Tensor, angles: torch.Tensor | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Rotate every cloud about the up axis ``+y`` by its own angle (uniform in :math:`[0, 2\pi)` unless given).

    .. math::  p' = R_y(\theta)\, p, \qquad R_y(\theta) = \begin{pmatrix} \cos\theta & 0 & \sin\theta \\
               0 & 1 & 0 \\ -\sin\theta & 0 & \cos\theta \end{pmatrix}

    (the yaw of :func:`coursekit.data.world.shapes.random_rotation` ``("up")``): heights and
    distances to the origin are unchanged.

    Args:
        points: ``(B, N, 3)``.
        angles: optional ``(B,)`` angles in radians.
        generator: draws the angles when not given.

    Returns:
        ``(B, N, 3)``.
    """
    check_points(points)
    _check_generator(generator)
    B = points.shape[0]
    if angles is None:
        angles = 2 * math.pi * torch.rand(B, generator=generator, dtype=torch.float64)
    angles = torch.as_tensor(angles, dtype=torch.float64)
    if angles.shape != (B,):
        raise ValueError(f"angles must have shape ({B},), got {tuple(angles.shape)}")
    c, s = angles.cos(), angles.sin()
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    R = torch.stack([torch.stack([c, zero, s], -1), torch.stack([zero, one, zero], -1),
                     torch.stack([-s, zero, c], -1)], -2)  # (B, 3, 3)
    return points @ R.transpose(1, 2).to(points)


# ---------------------------------------------------------------- grids

def occupancy(points: torch.Tensor, resolution: int = 32, bounds: Bounds = (-1.0, 1.0)) -> torch.Tensor:
    r"""Binary occupancy grid (VoxNet, 3D ShapeNets): :func:`~coursekit.geometry.voxels.voxelize_points`.

    .. math::  O[b, 0, d, h, w] = \mathbb{1}\left[\exists j:\ \text{cell}(p_{bj}) = (d, h, w)\right]

    Args:
        points: ``(B, N, 3)``.
        resolution: cells per axis (the slides: 30 for 3D ShapeNets, 32 for VoxNet).
        bounds: the cube ``[lo, hi]^3``.

    Returns:
        ``(B, 1, R, R, R)`` float.
    """
    return voxelize_points(points, resolution, bounds)


def xray_images(points: torch.Tensor, resolution: int = 32, bounds: Bounds = (-1.0, 1.0)) -> torch.Tensor:
    r"""The three axis X-ray images of the occupancy grid, stacked as channels ("learn to project").

    .. math::  I_a[h, w] = \frac{1}{R}\sum_d O_a[d, h, w], \qquad a \in \{x, y, z\}

    Args:
        points: ``(B, N, 3)``.
        resolution: cells per axis ``R``.
        bounds: the cube ``[lo, hi]^3``.

    Returns:
        ``(B, 3, R, R)`` in ``[0, 1]`` (:func:`~coursekit.geometry.xray.xray_views`, normalised).
    """
    return xray_views(voxelize_points(points, resolution, bounds), normalize=True)


def octree(points: torch.Tensor, depth: int, bounds: Bounds = (-1.0, 1.0)) -> OctreeBatch:
    """The octrees of a batch of clouds down to ``depth`` (``2**depth`` leaves per axis), O-CNN's input.

    Args:
        points: ``(B, N, 3)``.
        depth: finest level.
        bounds: the cube the octree partitions.

    Returns:
        :class:`~coursekit.nn.octree_conv.OctreeBatch` (occupied octants only, Morton-key hash lookup).
    """
    return OctreeBatch.build(points, depth, bounds)


def sparse_voxels(points: torch.Tensor, resolution: int, bounds: Bounds = (-1.0, 1.0),
                  features: torch.Tensor | None = None) -> SparseTensor:
    r"""The occupied cells only, with features averaged per cell (SparseConvNet's input).

    .. math::  f_v = \frac{1}{|P_v|}\sum_{p \in P_v} f_p

    Args:
        points: ``(B, N, 3)``.
        resolution: cells per axis.
        bounds: the cube.
        features: ``(B, N, C)``; default one channel of ones (occupancy).

    Returns:
        :class:`~coursekit.nn.sparse_conv.SparseTensor` with ``(n_sites, 4)`` ``(batch, z, y, x)`` sites.
    """
    return SparseTensor.from_points(points, resolution, bounds, features)


# ---------------------------------------------------------------- views

def point_views(points: torch.Tensor, n_views: int = 12, size: int = 32, layout: str = "ring",
                elevation_deg: float = 30.0, distance: float = 2.5, fov_deg: float = 50.0,
                splat: int = 3) -> torch.Tensor:
    r"""Depth-shaded splats of point clouds seen from MVCNN's cameras (a point cloud has no mesh to render).

    Every point is projected (:func:`~coursekit.geometry.camera.project`) into every camera; each
    pixel keeps its nearest point (a z-buffer), shaded by nearness, and a ``splat x splat``
    max filter grows each point into a small disc so that the surface looks closed:

    .. math::  I_v(u) = \max_{u' \in \text{splat}(u)}\ \max_{i:\ \pi_v(p_i) = u'} \frac{z_{far} - z_v(p_i)}{z_{far} - z_{near}},
               \qquad z_{near, far} = d \mp 1

    (background 0; the clouds lie in the unit ball, so depths lie in ``[d - 1, d + 1]``).

    Args:
        points: ``(B, N, 3)`` clouds in the unit ball, ``+y`` up.
        n_views: cameras; ``"ring"``: any number (MVCNN: 12), ``"dodecahedron"``: 20.
        size: image side in pixels.
        layout: ``"ring"`` (:func:`~coursekit.geometry.camera.ring_cameras`, ``elevation_deg``
            above the horizon) or ``"dodecahedron"``.
        elevation_deg, distance, fov_deg: camera placement and field of view (those of
            :func:`coursekit.geometry.render.render_views`).
        splat: odd side of the max filter in pixels (1: single pixels).

    Returns:
        ``(B, n_views, 1, size, size)`` in ``[0, 1]``.
    """
    check_points(points)
    K, R, t = view_rig(n_views, size, layout, elevation_deg, distance, fov_deg)
    if isinstance(splat, bool) or not isinstance(splat, int) or splat < 1 or splat % 2 == 0:
        raise ValueError(f"splat must be an odd positive int, got {splat!r}")
    B, N, _ = points.shape
    V = n_views
    K = K.to(points)
    R, t = R.to(points), t.to(points)
    flat = points.reshape(1, B * N, 3).expand(V, -1, -1)
    uv, depth = project(flat, K, R, t)  # (V, B*N, 2), (V, B*N)
    col, row = uv[..., 0].floor().long(), uv[..., 1].floor().long()
    inside = (col >= 0) & (col < size) & (row >= 0) & (row < size) & (depth > 0)
    nearness = ((distance + 1.0 - depth) / 2.0).clamp(0.0, 1.0)
    view = torch.arange(V, device=points.device).unsqueeze(1).expand(V, B * N)
    cloud = torch.arange(B, device=points.device).repeat_interleave(N).unsqueeze(0).expand(V, -1)
    pixel = ((cloud * V + view) * size + row.clamp(0, size - 1)) * size + col.clamp(0, size - 1)
    image = points.new_zeros(B * V * size * size)
    image.scatter_reduce_(0, pixel[inside], nearness[inside], reduce="amax")
    image = image.view(B * V, 1, size, size)
    if splat > 1:
        image = torch.nn.functional.max_pool2d(image, splat, stride=1, padding=splat // 2)
    return image.view(B, V, 1, size, size)


# ---------------------------------------------------------------- sphere and graphs

def spherical_function(points: torch.Tensor, bandwidth: int) -> torch.Tensor:
    r"""The cloud seen from its centre on the equiangular ``2L x 2L`` grid (spherical CNN input).

    .. math::  f(u) = \max\{\lVert p \rVert : \angle(p, u) \le \pi / L\}

    (:func:`~coursekit.geometry.spherical.spherical_function_points`; pole on ``+y``, so a yaw
    of the object rolls the grid along its last axis).

    Args:
        points: ``(B, N, 3)`` centred clouds.
        bandwidth: ``L``.

    Returns:
        ``(B, 1, 2L, 2L)``.
    """
    return spherical_function_points(points, bandwidth).unsqueeze(1)


def knn_graphs(points: torch.Tensor, k: int) -> list[torch.Tensor]:
    r"""The kNN graph of every cloud (DGCNN's first graph, the spectral CNNs' domain).

    .. math::  \mathcal{E} = \{(j \to i) : j \in \mathcal{N}_k(i)\}

    Args:
        points: ``(B, N, 3)``.
        k: neighbours per point (the point itself excluded).

    Returns:
        ``B`` ``(2, N k)`` ``int64`` ``edge_index`` tensors (:func:`~coursekit.geometry.graphs.knn_graph`).
    """
    check_points(points)
    return [_knn_graph(cloud, k) for cloud in points]

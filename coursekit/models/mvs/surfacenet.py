r"""SurfaceNet: surface reconstruction as voxel occupancy prediction from colored voxel cubes.

Ji, Gall, Zheng, Liu, Fang, "SurfaceNet: An End-to-end 3D Neural Network for Multiview
Stereopsis", ICCV 2017 (arXiv:1708.01749). The slide "Surface Reconstruction as Voxel
Occupancy Prediction":

1. **Colored voxel cubes** (CVC): every voxel of a cube takes the colour of the pixel it
   projects to in view :math:`v`, so the colour of a pixel is repeated along its viewing ray:

   .. math::  I^C_v[x] = I_v\big(\pi_v(x)\big), \qquad x \in C

   (:func:`colored_voxel_cube`, through :func:`sample_views_at_points`, which the LSM module
   reuses for learnt features). Two views :math:`v_i, v_j` give a 6-channel cube; where the
   two rays that meet in a voxel carry the same colour, the voxel is likely on the surface.
2. A **3D CNN** predicts a per-voxel surface confidence :math:`p_x` (:class:`SurfaceNet`).
3. Trained with the **class-balanced cross-entropy** (:func:`class_balanced_loss`)

   .. math::  L(I^C_{v_i}, I^C_{v_j}, \hat S^C) = -\sum_{x \in C} \big\{\alpha\,\hat s_x \log p_x
              + (1 - \alpha)(1 - \hat s_x)\log(1 - p_x)\big\}

   where :math:`\hat s_x \in \{0, 1\}` marks surface voxels (:func:`surface_labels`) and
   :math:`\alpha` (default here: the fraction of *empty* voxels, which balances the classes) up-weights the rare
   surface voxels.
4. **Binarisation** as post-processing (:func:`binarize`, :func:`surface_points`).

The paper trains on small cubes and reconstructs a scene cube by cube: :class:`TrainingCubes` cuts
training cubes from a scene grid finer than one cube, and :func:`reconstruct` runs the (fully
convolutional) network on the whole grid at once.

The slide's limitations are measurable here: the CVC holds only RGB at the cube's resolution,
and binarised voxels cannot place the surface better than the voxel grid:
:func:`quantization_error` measures the accuracy/completeness that even *perfect* surface
voxels reach, against the voxel size (about a quarter to half a voxel side).

Convention
    A cube is given by its ``center (B, 3)`` (world) and ``side`` (world units) and has
    ``resolution`` ``s`` voxels per axis; voxel grids are ``(B, C, D, H, W)`` with
    ``D <- z, H <- y, W <- x`` (:mod:`coursekit.geometry.voxels`), i.e. the cube is
    ``voxels`` bounds ``(-side/2, side/2)`` shifted by ``center``. Cameras follow
    :mod:`coursekit.geometry.camera` (all projection goes through it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...geometry.camera import project
from ...geometry.homography import pixels_to_grid
from ...geometry.validate import check_count, check_points
from ...geometry.voxels import devoxelize, voxel_centers, voxelize_points
from ...metrics.dtu import accuracy_completeness

__all__ = [
    "sample_views_at_points",
    "cube_centers",
    "colored_voxel_cube",
    "surface_labels",
    "class_balanced_loss",
    "SurfaceNet",
    "binarize",
    "surface_points",
    "quantization_error",
    "scene_cube",
    "scene_cubes",
    "TrainingCubes",
    "reconstruct",
]


def _check_views(maps: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor, name: str = "images") -> tuple[int, int]:
    if not isinstance(maps, torch.Tensor) or maps.dim() != 5:
        raise ValueError(f"{name} must have shape (B, V, C, H, W), got {tuple(getattr(maps, 'shape', ()))}")
    B, V = maps.shape[:2]
    for n, m, tail in (("K", K, (3, 3)), ("R", R, (3, 3)), ("t", t, (3,))):
        if not isinstance(m, torch.Tensor) or tuple(m.shape) != (B, V, *tail):
            raise ValueError(f"{n} must have shape {(B, V, *tail)} to match {name}, got {tuple(getattr(m, 'shape', ()))}")
    return B, V


def sample_views_at_points(maps: torch.Tensor, points: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor,
                           image_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Bilinearly sample each view's image or feature map where world points project.

    .. math::  f_v(x) = F_v\big(\pi_v(x)\big), \qquad
               \lambda (u, v, 1)^\top = K_v (R_v x + t_v), \qquad
               \text{grid} = \Big(\tfrac{2u}{W} - 1,\ \tfrac{2v}{H} - 1\Big)

    The normalised grid uses ``align_corners=False`` with the camera module's pixel convention
    (pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``), so a map of any resolution ``(h, w)``
    covering the whole ``(H, W)`` image (a stride-``s`` feature map) is sampled at the right
    place without rescaling ``K``. Points behind a camera or outside its image get 0 and
    ``valid = False``.

    Args:
        maps: ``(B, V, C, h, w)`` images or feature maps of ``V`` views.
        points: ``(B, N, 3)`` world points.
        K, R, t: ``(B, V, 3, 3)``, ``(B, V, 3, 3)``, ``(B, V, 3)`` cameras of the views.
        image_size: ``(H, W)`` of the images the cameras' pixels refer to.

    Returns:
        ``values (B, V, C, N)`` and ``valid (B, V, N)`` bool.
    """
    B, V = _check_views(maps, K, R, t, "maps")
    check_points(points)
    if points.shape[0] != B:
        raise ValueError(f"points has batch {points.shape[0]}, maps has {B}")
    H, W = image_size
    N = points.shape[1]
    flat = points.unsqueeze(1).expand(B, V, N, 3).reshape(B * V, N, 3)
    uv, depth = project(flat, K.reshape(-1, 3, 3), R.reshape(-1, 3, 3), t.reshape(-1, 3))
    inside = (depth > 0) & (uv[..., 0] >= 0) & (uv[..., 0] <= W) & (uv[..., 1] >= 0) & (uv[..., 1] <= H)
    grid = torch.where(inside.unsqueeze(-1), pixels_to_grid(uv, (H, W)), uv.new_full((), 2.0))  # 2: outside -> zeros
    values = F.grid_sample(maps.reshape(B * V, *maps.shape[2:]), grid.unsqueeze(1), mode="bilinear",
                           padding_mode="zeros", align_corners=False)
    values = values.squeeze(2) * inside.unsqueeze(1)
    return values.reshape(B, V, maps.shape[2], N), inside.reshape(B, V, N)


def cube_centers(center: torch.Tensor, side: float, resolution: int) -> torch.Tensor:
    r"""World positions of the voxel centres of cubes of side ``side`` centred at ``center``.

    .. math::  x_{dhw} = c + \Big(-\tfrac{a}{2} + (w + \tfrac12)\tfrac{a}{s},\
               -\tfrac{a}{2} + (h + \tfrac12)\tfrac{a}{s},\ -\tfrac{a}{2} + (d + \tfrac12)\tfrac{a}{s}\Big)

    Args:
        center: ``(B, 3)`` cube centres.
        side: cube side :math:`a` (world units).
        resolution: voxels per axis :math:`s`.

    Returns:
        ``(B, s, s, s, 3)`` ``(x, y, z)`` positions indexed ``[b, d, h, w]``.
    """
    if not isinstance(center, torch.Tensor) or center.dim() != 2 or center.shape[-1] != 3:
        raise ValueError(f"center must have shape (B, 3), got {tuple(getattr(center, 'shape', ()))}")
    check_count(resolution, "resolution")
    if not side > 0:
        raise ValueError(f"side must be positive, got {side}")
    local = voxel_centers(resolution, (-side / 2, side / 2), dtype=center.dtype, device=center.device)
    return local + center[:, None, None, None, :]


def colored_voxel_cube(images: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor, center: torch.Tensor,
                       side: float, resolution: int) -> torch.Tensor:
    r"""SurfaceNet's colored voxel cubes: each view's colours projected back along its rays.

    .. math::  I^C_v[:, d, h, w] = I_v\big(\pi_v(x_{dhw})\big)

    Args:
        images: ``(B, V, 3, H, W)`` RGB of ``V`` views (``V = 2`` in the paper).
        K, R, t: ``(B, V, 3, 3)``, ``(B, V, 3, 3)``, ``(B, V, 3)``.
        center, side, resolution: the cube (:func:`cube_centers`).

    Returns:
        ``(B, 3 V, s, s, s)``: the ``V`` cubes stacked on channels (view-major), 0 where a
        voxel is outside a view.

    >>> from coursekit.geometry.camera import fov_intrinsics, ring_cameras
    >>> R, t = ring_cameras(2, distance=2.0); K = fov_intrinsics(50.0, (32, 32)).expand(2, 3, 3)
    >>> cube = colored_voxel_cube(torch.rand(1, 2, 3, 32, 32), K[None], R[None], t[None], torch.zeros(1, 3), 1.0, 16)
    >>> cube.shape
    torch.Size([1, 6, 16, 16, 16])
    """
    B, V = _check_views(images, K, R, t)
    points = cube_centers(center, side, resolution).reshape(B, -1, 3)
    values, _ = sample_views_at_points(images, points, K, R, t, tuple(images.shape[-2:]))
    return values.reshape(B, V * images.shape[2], resolution, resolution, resolution)


def surface_labels(surface: torch.Tensor, center: torch.Tensor, side: float, resolution: int) -> torch.Tensor:
    r"""Ground-truth surface voxels :math:`\hat s_x`: 1 where a dense surface sample falls in the voxel.

    .. math::  \hat s_x = \mathbb{1}\big[\exists j:\ p_j \in \text{voxel}(x)\big]

    Args:
        surface: ``(B, N, 3)`` dense samples of the true surface (world).
        center, side, resolution: the cube.

    Returns:
        ``(B, 1, s, s, s)`` float labels.
    """
    check_points(surface, "surface")
    return voxelize_points(surface - center[:, None, :], resolution, (-side / 2, side / 2))


def class_balanced_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float | None = None) -> torch.Tensor:
    r"""SurfaceNet's class-balanced cross-entropy, summed over a cube's voxels, averaged over cubes.

    .. math::  L = -\sum_{x \in C} \big\{\alpha\,\hat s_x \log p_x + (1 - \alpha)(1 - \hat s_x)\log(1 - p_x)\big\},
               \qquad p_x = \sigma(z_x)

    computed from the logits :math:`z_x` with ``logsigmoid`` (:math:`\log(1 - p) = \log\sigma(-z)`)
    so that saturated predictions do not give ``inf``.

    Args:
        logits: ``(B, 1, D, H, W)`` (any shape ``(B, ...)``) scores :math:`z_x`.
        target: same shape, :math:`\hat s_x \in \{0, 1\}` (floats in ``[0, 1]`` allowed).
        alpha: weight of the surface class in ``[0, 1]``; ``None``: the fraction of empty
            voxels in ``target``, :math:`\alpha = 1 - \operatorname{mean}(\hat s)` (balances the classes;
            the paper's exact setting is not transcribed in REFERENCES.md).

    Returns:
        scalar: mean over the ``B`` cubes of the per-cube sum.
    """
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must have the same shape")
    target = target.to(logits.dtype)
    if alpha is None:
        alpha = 1.0 - target.mean().detach()
    elif not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    per_voxel = alpha * target * F.logsigmoid(logits) + (1 - alpha) * (1 - target) * F.logsigmoid(-logits)
    return -per_voxel.reshape(logits.shape[0], -1).sum(1).mean()


def _conv_block(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


class SurfaceNet(nn.Module):
    r"""The SurfaceNet 3D CNN (scaled down): CVCs -> per-voxel surface confidence logits.

    Layout as in the paper's Fig. 3: conv blocks ``l1..l3`` with pooling, a dilated block
    ``l4`` (dilation 2) that widens the receptive field without pooling, side outputs ``s1..s4``
    of every block upsampled to the cube resolution and summed, then ``1x1x1`` convolutions to
    one logit per voxel (the paper ends with a sigmoid: :math:`p_x = \sigma(z_x)`).

    Args:
        in_channels: ``3 V`` (6 for a view pair).
        width: channels of the first block (paper 32); blocks use ``w, 2w, 2w, 2w``.
        side_channels: channels of every side output (paper 16).

    Shapes:
        ``cubes (B, 3V, s, s, s) -> logits (B, 1, s, s, s)``, ``s`` divisible by 4.

    >>> SurfaceNet(width=8)(torch.rand(2, 6, 16, 16, 16)).shape
    torch.Size([2, 1, 16, 16, 16])
    """

    def __init__(self, in_channels: int = 6, width: int = 16, side_channels: int = 8):
        super().__init__()
        w, sc = int(width), int(side_channels)
        self.l1 = nn.Sequential(_conv_block(in_channels, w), _conv_block(w, w))
        self.l2 = nn.Sequential(nn.MaxPool3d(2), _conv_block(w, 2 * w), _conv_block(2 * w, 2 * w))
        self.l3 = nn.Sequential(nn.MaxPool3d(2), _conv_block(2 * w, 2 * w), _conv_block(2 * w, 2 * w))
        self.l4 = nn.Sequential(_conv_block(2 * w, 2 * w, dilation=2), _conv_block(2 * w, 2 * w, dilation=2))
        self.sides = nn.ModuleList([nn.Conv3d(c, sc, 1) for c in (w, 2 * w, 2 * w, 2 * w)])
        self.head = nn.Sequential(nn.ReLU(inplace=True), nn.Conv3d(sc, sc, 1), nn.ReLU(inplace=True), nn.Conv3d(sc, 1, 1))

    def forward(self, cubes: torch.Tensor) -> torch.Tensor:
        if cubes.dim() != 5 or cubes.shape[1] != self.l1[0][0].in_channels:
            raise ValueError(f"cubes must have shape (B, {self.l1[0][0].in_channels}, s, s, s), got {tuple(cubes.shape)}")
        s = cubes.shape[2:]
        if any(n % 4 for n in s):
            raise ValueError(f"the cube resolution must be divisible by 4, got {tuple(s)}")
        x1 = self.l1(cubes - 0.5)  # centre colours around 0 (the paper subtracts the mean colour)
        x2 = self.l2(x1)
        x3 = self.l3(x2)
        x4 = self.l4(x3)
        total = 0
        for side, x in zip(self.sides, (x1, x2, x3, x4)):
            total = total + F.interpolate(side(x), size=s, mode="trilinear", align_corners=False)
        return self.head(total)


def binarize(probability: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    r"""SurfaceNet's post-processing: surface voxels are those with :math:`p_x > \tau`.

    Args:
        probability: ``(B, 1, D, H, W)`` confidences :math:`p_x` (apply ``sigmoid`` to logits).
        threshold: :math:`\tau`.

    Returns:
        ``(B, 1, D, H, W)`` bool.
    """
    return probability > threshold


def surface_points(probability: torch.Tensor, center: torch.Tensor, side: float, threshold: float = 0.5) -> list[torch.Tensor]:
    """World positions of the voxel centres kept by :func:`binarize` (the reconstructed cloud).

    Args:
        probability: ``(B, 1, s, s, s)`` confidences.
        center, side: the cubes (``center (B, 3)``).
        threshold: binarisation threshold.

    Returns:
        a list of ``B`` tensors ``(N_b, 3)``.
    """
    clouds = devoxelize(probability, (-side / 2, side / 2), threshold)
    return [c + center[b] for b, c in enumerate(clouds)]


def quantization_error(surface: torch.Tensor, center: torch.Tensor, side: float, resolutions) -> list[dict]:
    r"""The quantisation limit of binarised voxels: error of the *perfect* surface voxels.

    For each resolution the ground-truth surface voxels (:func:`surface_labels`) are turned
    into their centres — what a perfect classifier of these labels outputs — and compared with the
    true surface samples:

    .. math::  \text{acc} = d(\text{centres}, S), \quad \text{comp} = d(S, \text{centres}),
               \quad \text{overall} = \tfrac12(\text{acc} + \text{comp})

    (:func:`coursekit.metrics.dtu.accuracy_completeness`, no outlier cut-off). Both grow linearly
    with the voxel size :math:`a/s` (a voxel centre is up to :math:`\tfrac{\sqrt 3}{2}` voxel
    from the surface through it); measured: overall ~0.35-0.45 voxel.

    Args:
        surface: ``(N, 3)`` dense samples of the true surface inside the cube.
        center: ``(3,)`` cube centre; side: cube side.
        resolutions: iterable of voxels per axis.

    Returns:
        one dict per resolution: ``resolution, voxel_size, accuracy, completeness, overall``.
    """
    rows = []
    for s in resolutions:
        labels = surface_labels(surface[None], center[None], side, int(s))
        recon = surface_points(labels, center[None], side)[0]
        acc, comp = accuracy_completeness(recon, surface, max_dist=None).tolist()
        rows.append(dict(resolution=int(s), voxel_size=side / int(s), accuracy=acc, completeness=comp, overall=(acc + comp) / 2))
    return rows


# ---------------------------------------------------------------------------- scenes of coursekit.data.mvs

def scene_cube(points: torch.Tensor, margin: float = 0.05) -> tuple[torch.Tensor, float]:
    """The cube reconstructed for a scene: the bounding box of its evaluated region, made cubic and
    grown by ``margin`` on every side (DTU likewise evaluates inside a known bounding volume).

    Args:
        points: ``(M, 3)`` the region (e.g. ``MVSScene.points``, the ground-truth cloud).
        margin: world units added around it.

    Returns:
        ``center (3,)`` and ``side``.
    """
    lo, hi = points.amin(0), points.amax(0)
    return (lo + hi) / 2, float((hi - lo).max()) + 2 * margin


def scene_cubes(scene, center: torch.Tensor, side: float, resolution: int) -> torch.Tensor:
    """One colored-voxel-cube pair per view of an :class:`coursekit.data.mvs.MVSScene`: view ``v`` with its
    best source ``scene.pairs[v, 0]`` (the view-selection score).

    Returns:
        ``(V, 6, s, s, s)``.
    """
    views = torch.stack([torch.arange(len(scene)), scene.pairs[:, 0]], 1)  # (V, 2)
    V = len(views)
    return colored_voxel_cube(scene.images[views], scene.K[views], scene.R[views], scene.t[views],
                              center.expand(V, 3), side, resolution)


class TrainingCubes(torch.utils.data.Dataset):
    r"""Training cubes of ``cube``:sup:`3` voxels cut at random places from the scenes' grids of ``grid``:sup:`3` voxels.

    SurfaceNet is trained on small cubes and reconstructs a scene cube by cube, so its voxels can be
    much finer than one cube spanning the scene (the quantisation limit): item ``k`` is view ``v`` of a
    scene with its best source (``scene.pairs[v, 0]``), a cube of side ``cube`` voxels of the scene's
    grid (:func:`scene_cube` divided into ``grid`` voxels per axis) at a random voxel offset, its colored
    voxel cube and its :func:`surface_labels`. Since the network is fully convolutional,
    :func:`reconstruct` then runs it on the whole ``grid``:sup:`3` scene at once.

    Args:
        scenes: :class:`coursekit.data.mvs.MVSScene` list (with ground-truth ``points``).
        grid: voxels per axis of a scene; cube: voxels per axis of a training cube (``<= grid``,
            divisible by 4).
        generator: draws the offsets (a new one at every access).

    Items: dict ``cubes (6, s, s, s)``, ``labels (1, s, s, s)``.
    """

    def __init__(self, scenes, grid: int, cube: int, generator: torch.Generator | None = None):
        check_count(grid, "grid")
        check_count(cube, "cube")
        if cube > grid or cube % 4:
            raise ValueError(f"cube must be divisible by 4 and at most grid = {grid}, got {cube}")
        self.scenes, self.grid, self.cube, self.generator = scenes, int(grid), int(cube), generator
        self.index = [(s, v) for s, scene in enumerate(scenes) for v in range(len(scene))]
        self.bounds = [scene_cube(scene.points) for scene in scenes]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> dict:
        s, v = self.index[k]
        scene, (center, side) = self.scenes[s], self.bounds[s]
        voxel = side / self.grid
        offset = torch.randint(0, self.grid - self.cube + 1, (3,), generator=self.generator)
        sub = (center - side / 2 + (offset + self.cube / 2) * voxel)[None]
        views = torch.tensor([v, int(scene.pairs[v, 0])])
        cubes = colored_voxel_cube(scene.images[views][None], scene.K[views][None], scene.R[views][None],
                                   scene.t[views][None], sub, self.cube * voxel, self.cube)
        return {"cubes": cubes[0], "labels": surface_labels(scene.points[None], sub, self.cube * voxel, self.cube)[0]}


@torch.no_grad()
def reconstruct(model: SurfaceNet, scene, resolution: int, threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    r"""SurfaceNet's reconstruction of a scene: the surface confidences of all view pairs averaged
    (the paper fuses pairs by a weighted average), then binarised.

    .. math::  \bar p_x = \frac{1}{|\mathcal P|} \sum_{(i, j) \in \mathcal P} p_x^{(i, j)}

    Returns:
        ``points (N, 3)`` (voxel centres with :math:`\bar p_x > \tau`) and ``probability (1, 1, s, s, s)``.
    """
    model.eval()
    center, side = scene_cube(scene.points)
    device = next(model.parameters()).device
    prob = torch.sigmoid(model(scene_cubes(scene, center, side, resolution).to(device))).mean(0, keepdim=True).cpu()
    return surface_points(prob, center[None], side, threshold)[0], prob

r"""Multi-view stereo data: calibrated scenes from the procedural world, and a DTU-style folder loader.

**Procedural MVS scenes** (:func:`make_mvs_scene`), modelled on DTU's set-up: one to
three objects of the world (:func:`coursekit.data.world.make_shape`) standing on a
ground square at ``y = 0``, seen by ``V`` cameras on a spherical sector in front of
them (two rows of elevations, azimuths within ``+-azimuth_deg``), all looking at the
objects. Units are **metres** (objects ~0.6 m, cameras ~1.4 m away); the tables report
millimetres like DTU. Every surface carries a view-independent **solid texture**
(a sum of random 3D sinusoids, so photometric matching has something to match) under
Lambertian shading from a fixed world light, so a surface point has the same colour in
every view — the assumption every MVS cost makes. Rendering is
:func:`coursekit.geometry.render.render_mesh` (depth, normals); colours come from the
texture at the unprojected world points (:func:`coursekit.geometry.camera.unproject`).

The ground-truth cloud is the union of the ground-truth depth maps above the ground
plane (DTU evaluates the structured-light scan "above the table plane"), so it holds
what the cameras see, like a real scan.

**View selection** (MVSNet §4.1): for reference view ``i`` and source ``j``,

.. math::  s(i, j) = \sum_p \mathcal G(\theta_{ij}(p)), \qquad
           \theta_{ij}(p) = \tfrac{180}{\pi} \arccos\frac{(c_i - p)\cdot(c_j - p)}{\lVert c_i - p\rVert \lVert c_j - p\rVert}

over surface points :math:`p` seen by both views, with the piecewise Gaussian
:math:`\mathcal G(\theta) = \exp(-\frac{(\theta - \theta_0)^2}{2\sigma_1^2})` for
:math:`\theta \le \theta_0` and :math:`\exp(-\frac{(\theta - \theta_0)^2}{2\sigma_2^2})`
otherwise, :math:`\theta_0 = 5^\circ, \sigma_1 = 1, \sigma_2 = 10` (baseline-angle preference).

**Folder format** (MVSNet's DTU release, read by :func:`load_mvs_folder`, written by
:func:`save_mvs_folder`)::

    <scan>/images/00000000.png|jpg   RGB images
    <scan>/cams/00000000_cam.txt     "extrinsic" 4x4 world-to-camera [R|t; 0 0 0 1],
                                     "intrinsic" 3x3 K, then "DEPTH_MIN DEPTH_INTERVAL [DEPTH_NUM DEPTH_MAX]"
    <scan>/pair.txt                  N, then per view: its id, and "M id score id score ..."
    <scan>/depths/00000000.pfm       optional ground-truth depth (PFM)

MVSNet's ``K`` puts pixel *centres* at integer coordinates (OpenCV); coursekit puts the
image corner at ``(0, 0)`` (:mod:`coursekit.geometry.camera`), so the loader adds ``0.5``
to ``cx, cy`` and the writer subtracts it. DTU's units are millimetres.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..geometry.camera import fov_intrinsics, look_at, project, unproject, camera_centers, pixel_grid
from ..geometry.homography import depth_planes
from ..geometry.render import render_mesh
from .world.datasets import sample_seed
from .world.shapes import CLASSES, as_generator, make_shape

__all__ = [
    "MVSScene",
    "solid_texture",
    "make_mvs_scene",
    "make_mvs_scenes",
    "make_stereo_pairs",
    "render_textured",
    "view_selection_scores",
    "select_pairs",
    "MVSSamples",
    "read_cam_txt",
    "write_cam_txt",
    "read_pair_txt",
    "write_pair_txt",
    "read_pfm",
    "write_pfm",
    "load_mvs_folder",
    "save_mvs_folder",
]


@dataclass(eq=False)
class MVSScene:
    """One calibrated multi-view scene.

    Attributes:
        images: ``(V, 3, H, W)`` float32 RGB in ``[0, 1]``.
        K: ``(V, 3, 3)`` intrinsics; R: ``(V, 3, 3)``; t: ``(V, 3)`` world-to-camera extrinsics.
        depth: ``(V, H, W)`` ground-truth camera depth, ``0`` where nothing was hit
            (``None`` for a folder without depth maps).
        mask: ``(V, H, W)`` bool: the evaluated objects (above the ground plane).
        depth_range: ``(d_min, d_max)`` of the plane sweep, shared by all views (as on DTU).
        pairs: ``(V, S)`` int64 source views of each reference view, best first.
        scores: ``(V, V)`` view-selection scores (``0`` on the diagonal).
        points: ``(M, 3)`` ground-truth cloud (``None`` if unknown).
        name: a label.
    """

    images: torch.Tensor
    K: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor
    depth: torch.Tensor | None
    mask: torch.Tensor | None
    depth_range: tuple[float, float]
    pairs: torch.Tensor
    scores: torch.Tensor
    points: torch.Tensor | None
    name: str = "scene"

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)``."""
        return tuple(self.images.shape[-2:])

    def __len__(self) -> int:
        return self.images.shape[0]


def solid_texture(points: torch.Tensor, generator: torch.Generator, n_waves: int = 8,
                  frequency: tuple[float, float] = (15.0, 45.0)) -> torch.Tensor:
    r"""View-independent albedo: random 3D sinusoids per channel, squashed to ``[0.05, 0.95]``.

    .. math::  a_c(x) = 0.5 + 0.45 \tanh\Big(\frac{1.5}{\sqrt{n}} \sum_{k=1}^{n} \sin(w_{ck} \cdot x + \phi_{ck})\Big)

    Args:
        points: ``(N, 3)`` world points.
        generator: draws the frequencies ``w`` (norms in ``frequency``, rad/unit) and phases.
        n_waves: sinusoids per channel.
        frequency: ``(lo, hi)`` range of ``|w|``.

    Returns:
        ``(N, 3)`` albedo.
    """
    dirs = torch.nn.functional.normalize(torch.randn(3, n_waves, 3, generator=generator, dtype=torch.float64), dim=-1)
    norms = frequency[0] + (frequency[1] - frequency[0]) * torch.rand(3, n_waves, 1, generator=generator, dtype=torch.float64)
    phase = 2 * math.pi * torch.rand(3, n_waves, generator=generator, dtype=torch.float64)
    waves = torch.sin(torch.einsum("nd,ckd->nck", points.double(), dirs * norms) + phase)  # (N, 3, n)
    return (0.5 + 0.45 * torch.tanh(1.5 * waves.sum(-1) / math.sqrt(n_waves))).to(points.dtype)


def _ground(half: float) -> tuple[torch.Tensor, torch.Tensor]:
    v = torch.tensor([[-half, 0.0, -half], [half, 0.0, -half], [half, 0.0, half], [-half, 0.0, half]])
    return v, torch.tensor([[0, 1, 2], [0, 2, 3]])


def _sector_cameras(n: int, distance: float, azimuth_deg: float, elevations=(25.0, 45.0), target=(0.0, 0.3, 0.0)):
    """``n`` cameras in two rows on a spherical sector in front of ``target`` (DTU-like)."""
    rows = [n - n // 2, n // 2]
    eyes = []
    for elev, m in zip(elevations, rows):
        for a in (torch.linspace(-azimuth_deg, azimuth_deg, m, dtype=torch.float64) if m > 1 else torch.zeros(1, dtype=torch.float64)):
            a, e = math.radians(float(a)), math.radians(elev)
            eyes.append([distance * math.cos(e) * math.sin(a), distance * math.sin(e), distance * math.cos(e) * math.cos(a)])
    eye = torch.tensor(eyes, dtype=torch.float64) + torch.tensor(target, dtype=torch.float64)
    R, t = look_at(eye, torch.tensor(target, dtype=torch.float64))
    return R.float(), t.float()


def view_selection_scores(points: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor,
                          depth: torch.Tensor, theta0: float = 5.0, sigma1: float = 1.0, sigma2: float = 10.0,
                          visibility_tol: float = 0.02) -> torch.Tensor:
    r"""MVSNet's view-selection score :math:`s(i, j) = \sum_p \mathcal G(\theta_{ij}(p))` (module docstring).

    A point counts for a pair when both views see it: it projects inside the image and its
    depth is within ``visibility_tol`` (relative) of the view's depth map there.

    Args:
        points: ``(M, 3)`` surface points (e.g. a sparse reconstruction).
        K, R, t: ``(V, 3, 3)``, ``(V, 3, 3)``, ``(V, 3)`` cameras.
        depth: ``(V, H, W)`` depth maps for the visibility test.
        theta0, sigma1, sigma2: the Gaussian's parameters in degrees.
        visibility_tol: relative depth tolerance.

    Returns:
        ``(V, V)`` symmetric scores, ``0`` on the diagonal.
    """
    V, H, W = depth.shape
    uv, z = project(points.expand(V, -1, -1), K, R, t)  # (V, M, 2), (V, M)
    col, row = uv[..., 0].floor().long(), uv[..., 1].floor().long()
    inside = (z > 0) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
    d = depth[torch.arange(V)[:, None], row.clamp(0, H - 1), col.clamp(0, W - 1)]
    seen = inside & ((d - z).abs() < visibility_tol * z)  # (V, M)
    rays = torch.nn.functional.normalize(camera_centers(R, t)[:, None] - points[None], dim=-1)  # (V, M, 3)
    cos = torch.einsum("imc,jmc->ijm", rays, rays).clamp(-1, 1)
    theta = torch.rad2deg(torch.arccos(cos))
    sigma = torch.where(theta <= theta0, torch.full_like(theta, sigma1), torch.full_like(theta, sigma2))
    g = torch.exp(-(theta - theta0) ** 2 / (2 * sigma ** 2)) * (seen[:, None] & seen[None]).to(theta.dtype)
    s = g.sum(-1)
    return s * (1 - torch.eye(V, dtype=s.dtype))


def select_pairs(scores: torch.Tensor, n_src: int) -> torch.Tensor:
    """``(V, n_src)`` int64: the ``n_src`` best-scoring source views of every view (never itself)."""
    V = scores.shape[0]
    if not 1 <= n_src < V:
        raise ValueError(f"n_src must be in [1, {V - 1}], got {n_src}")
    masked = scores - torch.eye(V, dtype=scores.dtype) * (scores.abs().max() + 1)
    return masked.argsort(dim=1, descending=True)[:, :n_src]


def _scene_mesh(g: torch.Generator, n_objects, classes, object_scale):
    """Objects of the world standing on a ground square (``y = 0``); returns ``vertices, faces``."""
    count = int(torch.randint(n_objects[0], n_objects[1] + 1, (), generator=g))
    vertices, faces, offset = [], [], 0
    slots = torch.tensor([[0.0, 0.0], [-0.45, -0.15], [0.45, -0.1], [0.0, 0.45]])
    for k in range(count):
        cls = classes[int(torch.randint(len(classes), (), generator=g))]
        shape = make_shape(cls, int(torch.randint(1 << 30, (), generator=g)), rotation="up")
        s = object_scale[0] + (object_scale[1] - object_scale[0]) * float(torch.rand((), generator=g))
        v = shape.vertices * s
        v = v - torch.tensor([0.0, float(v[:, 1].min()), 0.0]) + torch.tensor([float(slots[k, 0]), 0.0, float(slots[k, 1])])
        vertices.append(v)
        faces.append(shape.faces + offset)
        offset += v.shape[0]
    gv, gf = _ground(0.8)
    return torch.cat(vertices + [gv]), torch.cat(faces + [gf + offset])


def render_textured(vertices, faces, K, R, t, size, texture_seed: int, light=(0.3, 0.8, 0.5), ambient: float = 0.35):
    r"""Render a mesh with the solid texture of ``texture_seed`` under fixed Lambertian light.

    .. math::  \text{rgb}(p) = a(X_p)\,\big(\text{ambient} + (1 - \text{ambient})\,|n_p \cdot l|\big)

    with :math:`X_p` the world point seen at pixel :math:`p` (:func:`solid_texture`), so a
    surface point has the same colour in every view.

    Args:
        vertices, faces: the mesh; K, R, t: ``(V, ...)`` cameras; size: ``(H, W)``.
        texture_seed: seeds the texture (same seed, same surface colours in every call).
        light: world direction towards the light; ambient: the ambient term.

    Returns:
        ``images (V, 3, H, W)`` (black background), ``depth (V, H, W)``, ``hit (V, H, W)`` bool,
        ``world (V, H, W, 3)`` points seen.
    """
    V, (H, W) = R.shape[0], size
    r = render_mesh(vertices, faces, K, R, t, size)
    uv = pixel_grid(H, W).reshape(1, H * W, 2).expand(V, -1, -1)
    world = unproject(uv, r["depth"].reshape(V, H * W), K, R, t)
    albedo = solid_texture(world.reshape(-1, 3), torch.Generator().manual_seed(texture_seed)).reshape(V, H * W, 3)
    normal = r["normal"].permute(0, 2, 3, 1).reshape(V, H * W, 3)
    light = torch.nn.functional.normalize(torch.tensor(light, dtype=torch.float32), dim=0)
    shade = ambient + (1 - ambient) * (normal @ light).abs()
    rgb = (albedo * shade[..., None]).reshape(V, H, W, 3).permute(0, 3, 1, 2)
    images = torch.where(r["mask"][:, None], rgb, torch.zeros_like(rgb)).contiguous()
    return images, r["depth"], r["mask"], world.reshape(V, H, W, 3)


def make_mvs_scene(seed: int | torch.Generator = 0, *, n_views: int = 7, size: tuple[int, int] = (48, 64),
                   n_objects: tuple[int, int] = (1, 3), classes: tuple[str, ...] = CLASSES, fov_deg: float = 45.0,
                   distance: float = 1.4, azimuth_deg: float = 40.0, object_scale: tuple[float, float] = (0.25, 0.35),
                   n_src: int = 4, name: str | None = None) -> MVSScene:
    """Render one DTU-like scene (module docstring): textured objects on a textured ground square.

    Args:
        seed: int or ``torch.Generator`` (the only randomness).
        n_views: cameras ``V`` (two rows on a sector).
        size: ``(H, W)`` image size.
        n_objects: ``(lo, hi)`` inclusive number of objects.
        classes: object classes to draw from.
        fov_deg: horizontal field of view.
        distance: camera distance from the look-at point ``(0, 0.3, 0)``.
        azimuth_deg: the sector's half-width.
        object_scale: ``(lo, hi)`` radius of each object (they are unit-ball shapes scaled down).
        n_src: source views stored per reference view in ``pairs``.
        name: a label (default ``"scene<seed>"``).

    Returns:
        the :class:`MVSScene`.
    """
    g = as_generator(seed)
    vertices, faces = _scene_mesh(g, n_objects, classes, object_scale)
    texture_seed = int(torch.randint(1 << 30, (), generator=g))
    R, t = _sector_cameras(n_views, distance, azimuth_deg)
    K = fov_intrinsics(fov_deg, size).expand(n_views, 3, 3).contiguous()
    images, depth, hit, world = render_textured(vertices, faces, K, R, t, size, texture_seed)
    mask = hit & (world[..., 1] > 2e-3)
    points = world[mask]
    z = depth[hit]
    depth_range = (float(z.min()) * 0.95, float(z.max()) * 1.05)
    sparse = points[torch.randperm(points.shape[0], generator=g)[:2000]]
    scores = view_selection_scores(sparse, K, R, t, depth)
    return MVSScene(images, K, R, t, depth, mask, depth_range, select_pairs(scores, min(n_src, n_views - 1)),
                    scores, points, name or f"scene{seed if isinstance(seed, int) else ''}")


def make_stereo_pairs(seed: int | torch.Generator = 0, *, n_pairs: int = 4, size: tuple[int, int] = (48, 64),
                      baseline: float = 0.12, doffs: float = 0.0, fov_deg: float = 45.0, distance: float = 1.4,
                      azimuth_deg: float = 40.0,
                      n_objects: tuple[int, int] = (1, 3), classes: tuple[str, ...] = CLASSES,
                      object_scale: tuple[float, float] = (0.25, 0.35)) -> dict:
    r"""Rectified stereo pairs (GC-Net's input) of one DTU-like scene.

    The left cameras sit on the same sector as :func:`make_mvs_scene`'s; each right camera
    has the same rotation, shifted by ``baseline`` along the left camera's ``+x`` axis
    (:math:`t_r = t_l - (b, 0, 0)`), so epipolar lines are image rows. The right camera's
    principal point may sit ``doffs`` pixels right of the left one's (:math:`c_{x,r} = c_{x,l} +
    \text{doffs}`, Middlebury's ``doffs``): with a wide baseline the objects then stay inside the
    right image instead of leaving it by its left edge (keep ``doffs`` below :math:`f_x b / z_{max}`:
    a disparity of 0 marks pixels without ground truth), and

    .. math::  \text{disparity} = u_l - u_r = \frac{f_x\, b}{z} - \text{doffs}, \qquad
               z = \frac{f_x\, b}{\text{disparity} + \text{doffs}}

    Returns:
        dict ``left``, ``right`` ``(P, 3, H, W)``, ``disparity`` ``(P, H, W)`` (0 where
        nothing was hit), ``depth`` ``(P, H, W)``, ``mask`` ``(P, H, W)`` (objects), ``K``,
        ``R``, ``t`` of the left cameras, ``baseline``, ``doffs``, ``points (M, 3)`` ground truth.
    """
    g = as_generator(seed)
    vertices, faces = _scene_mesh(g, n_objects, classes, object_scale)
    texture_seed = int(torch.randint(1 << 30, (), generator=g))
    R, t = _sector_cameras(n_pairs, distance, azimuth_deg)
    K = fov_intrinsics(fov_deg, size).expand(n_pairs, 3, 3).contiguous()
    t_right = t - torch.tensor([baseline, 0.0, 0.0])
    K_right = K.clone()
    K_right[:, 0, 2] += doffs
    images, depth, hit, world = render_textured(vertices, faces, torch.cat([K, K_right]), torch.cat([R, R]),
                                                torch.cat([t, t_right]), size, texture_seed)
    P = n_pairs
    depth_l, hit_l = depth[:P], hit[:P]
    disparity = torch.where(hit_l, K[:, 0, 0, None, None] * baseline / depth_l.clamp_min(1e-6) - doffs,
                            torch.zeros_like(depth_l))
    mask = hit_l & (world[:P, ..., 1] > 2e-3)
    return {"left": images[:P], "right": images[P:], "disparity": disparity, "depth": depth_l, "mask": mask,
            "K": K, "R": R, "t": t, "baseline": baseline, "doffs": doffs, "points": world[:P][mask]}


def make_mvs_scenes(n: int, seed: int = 0, split: str = "train", **kwargs) -> list[MVSScene]:
    """``n`` scenes with per-scene seeds hashed from ``(seed, split, index)`` (train and test never share one).
    Keyword arguments go to :func:`make_mvs_scene`."""
    return [make_mvs_scene(sample_seed(seed, "mvs", split, i), name=f"{split}{i}", **kwargs) for i in range(n)]


class MVSSamples(torch.utils.data.Dataset):
    """Training samples (MVSNet style): a reference view, its best sources, depth planes and GT depth.

    Item ``k`` of ``scenes`` x views gives a dict:

    * ``images`` ``(1 + S, 3, H, W)`` reference first, then its ``S`` sources (``scene.pairs``);
    * ``K`` ``(1 + S, 3, 3)``, ``R`` ``(1 + S, 3, 3)``, ``t`` ``(1 + S, 3)``;
    * ``depth`` ``(H, W)`` reference GT depth; ``valid`` ``(H, W)`` bool (``depth > 0``);
    * ``mask`` ``(H, W)`` bool evaluated objects;
    * ``depth_values`` ``(D,)`` plane depths spanning the scene's ``depth_range`` uniformly.

    Default collation stacks them into a batch.
    """

    def __init__(self, scenes: list[MVSScene], n_src: int = 2, n_depths: int = 32):
        self.scenes, self.n_src, self.n_depths = scenes, n_src, n_depths
        self.index = [(s, v) for s in range(len(scenes)) for v in range(len(scenes[s]))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> dict:
        s, v = self.index[k]
        sc = self.scenes[s]
        views = torch.cat([torch.tensor([v]), sc.pairs[v, :self.n_src]])
        return {"images": sc.images[views], "K": sc.K[views], "R": sc.R[views], "t": sc.t[views],
                "depth": sc.depth[v], "valid": sc.depth[v] > 0, "mask": sc.mask[v],
                "depth_values": depth_planes(*sc.depth_range, self.n_depths)}


# ---------------------------------------------------------------------------- folder format

def write_cam_txt(path, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor, depth_min: float, depth_interval: float,
                  depth_num: int | None = None) -> None:
    """Write one MVSNet ``*_cam.txt`` (``K`` in coursekit's convention; written with ``cx, cy - 0.5``)."""
    E = np.eye(4)
    E[:3, :3], E[:3, 3] = R.double().numpy(), t.double().numpy()
    Kc = K.double().numpy().copy()
    Kc[0, 2] -= 0.5
    Kc[1, 2] -= 0.5
    lines = ["extrinsic"] + [" ".join(f"{x:.10g}" for x in row) for row in E] + ["", "intrinsic"]
    lines += [" ".join(f"{x:.10g}" for x in row) for row in Kc] + [""]
    tail = [depth_min, depth_interval] + ([depth_num, depth_min + depth_interval * (depth_num - 1)] if depth_num else [])
    lines.append(" ".join(f"{x:.10g}" for x in tail))
    Path(path).write_text("\n".join(lines) + "\n")


def read_cam_txt(path) -> dict:
    """Read an MVSNet ``*_cam.txt``.

    Returns:
        dict with ``K (3, 3)`` (coursekit convention: ``cx, cy + 0.5``), ``R (3, 3)``, ``t (3,)``
        float32, ``depth_min``, ``depth_interval`` and, when present, ``depth_num`` and ``depth_max``.
    """
    words = Path(path).read_text().split()
    try:
        e, i = words.index("extrinsic"), words.index("intrinsic")
    except ValueError as err:
        raise ValueError(f"{path}: not an MVSNet camera file (needs 'extrinsic' and 'intrinsic' blocks)") from err
    E = np.array(words[e + 1:e + 17], dtype=np.float64).reshape(4, 4)
    K = np.array(words[i + 1:i + 10], dtype=np.float64).reshape(3, 3)
    K[0, 2] += 0.5
    K[1, 2] += 0.5
    tail = [float(x) for x in words[i + 10:]]
    if len(tail) < 2:
        raise ValueError(f"{path}: missing the 'DEPTH_MIN DEPTH_INTERVAL' line")
    out = {"K": torch.tensor(K, dtype=torch.float32), "R": torch.tensor(E[:3, :3], dtype=torch.float32),
           "t": torch.tensor(E[:3, 3], dtype=torch.float32), "depth_min": tail[0], "depth_interval": tail[1]}
    if len(tail) >= 4:
        out["depth_num"], out["depth_max"] = int(tail[2]), tail[3]
    return out


def write_pair_txt(path, pairs: torch.Tensor, scores: torch.Tensor) -> None:
    """Write MVSNet's ``pair.txt`` from ``pairs (V, S)`` and the ``(V, V)`` score matrix."""
    lines = [str(pairs.shape[0])]
    for v in range(pairs.shape[0]):
        lines.append(str(v))
        lines.append(" ".join([str(pairs.shape[1])] + [f"{int(j)} {float(scores[v, j]):.4f}" for j in pairs[v]]))
    Path(path).write_text("\n".join(lines) + "\n")


def read_pair_txt(path) -> tuple[list[int], list[list[int]], list[list[float]]]:
    """Read ``pair.txt``: reference view ids, their source ids and scores (lists, best first)."""
    words = Path(path).read_text().split()
    n, k, refs, srcs, scores = int(words[0]), 1, [], [], []
    for _ in range(n):
        ref, m = int(words[k]), int(words[k + 1])
        pairs = words[k + 2:k + 2 + 2 * m]
        refs.append(ref)
        srcs.append([int(x) for x in pairs[0::2]])
        scores.append([float(x) for x in pairs[1::2]])
        k += 2 + 2 * m
    return refs, srcs, scores


def write_pfm(path, image: np.ndarray) -> None:
    """Write a single-channel float32 PFM (``Pf``, little-endian, rows bottom to top)."""
    image = np.asarray(image, dtype=np.float32)
    with open(path, "wb") as f:
        f.write(f"Pf\n{image.shape[1]} {image.shape[0]}\n-1\n".encode())
        f.write(np.flipud(image).astype("<f4").tobytes())


def read_pfm(path) -> np.ndarray:
    """Read a PFM (``Pf`` grey or ``PF`` colour) into an ``(H, W)`` or ``(H, W, 3)`` float32 array."""
    with open(path, "rb") as f:
        kind = f.readline().strip()
        if kind not in (b"Pf", b"PF"):
            raise ValueError(f"{path}: not a PFM file (header {kind!r})")
        w, h = map(int, re.findall(rb"\d+", f.readline()))
        scale = float(f.readline().strip())
        data = np.frombuffer(f.read(), dtype="<f4" if scale < 0 else ">f4")
    shape = (h, w, 3) if kind == b"PF" else (h, w)
    return np.flipud(data.reshape(shape)).astype(np.float32).copy()


def save_mvs_folder(scene: MVSScene, folder, n_depths: int = 192) -> Path:
    """Write a scene in the MVSNet/DTU folder format (PNG images, cams, pair.txt, PFM depths)."""
    from PIL import Image

    folder = Path(folder)
    for sub in ("images", "cams", "depths"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    d_min, d_max = scene.depth_range
    for v in range(len(scene)):
        rgb = (scene.images[v].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(rgb).save(folder / "images" / f"{v:08d}.png")
        write_cam_txt(folder / "cams" / f"{v:08d}_cam.txt", scene.K[v], scene.R[v], scene.t[v], d_min,
                      (d_max - d_min) / (n_depths - 1), n_depths)
        if scene.depth is not None:
            write_pfm(folder / "depths" / f"{v:08d}.pfm", scene.depth[v].numpy())
    write_pair_txt(folder / "pair.txt", scene.pairs, scene.scores)
    return folder


def load_mvs_folder(folder, n_depths: int | None = None) -> MVSScene:
    """Load a DTU-style scan folder (module docstring) into an :class:`MVSScene`.

    ``depth_range`` comes from the reference camera file's ``DEPTH_MIN`` and either its
    ``DEPTH_MAX`` or ``DEPTH_MIN + DEPTH_INTERVAL * (n_depths - 1)`` (MVSNet's 192 planes by
    default). Depth maps are read from ``depths/*.pfm`` when all are present. ``mask`` is
    ``depth > 0`` then, else ``None``; ``points`` is ``None`` (DTU's scans are separate files).
    """
    from PIL import Image

    folder = Path(folder)
    refs, srcs, scores_list = read_pair_txt(folder / "pair.txt")
    V = len(refs)
    images, K, R, t, depths = [], [], [], [], []
    for v in range(V):
        found = sorted((folder / "images").glob(f"{v:08d}.*"))
        if not found:
            raise FileNotFoundError(f"{folder / 'images'}: no image {v:08d}.*")
        images.append(torch.from_numpy(np.asarray(Image.open(found[0]).convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1))
        cam = read_cam_txt(folder / "cams" / f"{v:08d}_cam.txt")
        K.append(cam["K"]), R.append(cam["R"]), t.append(cam["t"])
        if v == 0:
            num = n_depths or cam.get("depth_num", 192)
            depth_range = (cam["depth_min"], cam.get("depth_max", cam["depth_min"] + cam["depth_interval"] * (num - 1)))
        pfm = folder / "depths" / f"{v:08d}.pfm"
        depths.append(torch.from_numpy(read_pfm(pfm)) if pfm.exists() else None)
    scores = torch.zeros(V, V)
    for ref, src, sc in zip(refs, srcs, scores_list):
        scores[ref, src] = torch.tensor(sc)
    S = min(len(s) for s in srcs)
    pairs = torch.zeros(V, S, dtype=torch.int64)
    for ref, src in zip(refs, srcs):
        pairs[ref] = torch.tensor(src[:S])
    depth = torch.stack(depths) if all(d is not None for d in depths) else None
    return MVSScene(torch.stack(images), torch.stack(K), torch.stack(R), torch.stack(t), depth,
                    depth > 0 if depth is not None else None, depth_range, pairs, scores, None, folder.name)

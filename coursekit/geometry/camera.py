r"""Pinhole cameras: the one module that owns projection and unprojection.

Convention (used by every coursekit module; nothing else projects points):

* **World frame**: right-handed, ``+y`` up.
* **Extrinsics** ``[R | t]`` map world to camera: :math:`x_{cam} = R\,x_{world} + t`;
  the camera centre is :math:`C = -R^\top t`. ``R`` is a proper rotation (det +1).
* **Camera frame**: the camera looks down ``+z``; ``+x`` is image right, ``+y`` is
  image *down* (OpenCV / COLMAP convention, not OpenGL's).
* **Intrinsics** ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` in pixels.
* **Pixel coordinates** ``(u, v)`` are continuous, ``u`` to the right and ``v`` down,
  with the image's top-left *corner* at ``(0, 0)``: pixel ``(row i, col j)`` covers
  ``[j, j+1) x [i, i+1)`` and its centre is ``(j + 0.5, i + 0.5)``. So ``cx = W / 2``
  puts the principal point at the image centre.
* **Depth** is the camera-frame :math:`z` (distance along the optical axis), not the
  distance along the ray.

.. math::

    \lambda \begin{pmatrix} u \\ v \\ 1 \end{pmatrix} = K (R\,x + t), \qquad
    \text{depth} = \lambda = (R\,x + t)_z

Shapes: points ``(B, N, 3)``, pixels ``(B, N, 2)``, depths ``(B, N)``, ``K, R``
``(B, 3, 3)``, ``t`` ``(B, 3)``. A batch of one broadcasts against ``B``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .validate import check_points

__all__ = [
    "Camera",
    "intrinsics",
    "fov_intrinsics",
    "look_at",
    "world_to_camera",
    "camera_to_world",
    "perspective",
    "project",
    "unproject",
    "pixel_grid",
    "camera_centers",
    "ring_cameras",
    "dodecahedron_cameras",
]


def _check_matrices(name: str, m: torch.Tensor, shape: tuple[int, ...]) -> None:
    if not isinstance(m, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(m).__name__}")
    if m.dim() != len(shape) + 1 or tuple(m.shape[1:]) != shape:
        want = "(B, " + ", ".join(map(str, shape)) + ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(m.shape)}")
    if not m.dtype.is_floating_point:
        raise ValueError(f"{name} must be a float tensor, got {m.dtype}")


def _check_extrinsics(R: torch.Tensor, t: torch.Tensor) -> None:
    _check_matrices("R", R, (3, 3))
    _check_matrices("t", t, (3,))
    if R.shape[0] != t.shape[0]:
        raise ValueError(f"R and t disagree on the batch size: {R.shape[0]} vs {t.shape[0]}")


def intrinsics(fx, fy, cx, cy, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    r"""Pinhole intrinsic matrix.

    .. math::  K = \begin{pmatrix} f_x & 0 & c_x \\ 0 & f_y & c_y \\ 0 & 0 & 1 \end{pmatrix}

    Args:
        fx, fy: focal lengths in pixels (floats, or ``(B,)`` tensors).
        cx, cy: principal point in pixels (see the module's pixel convention).
        dtype: of the result.

    Returns:
        ``(3, 3)`` for scalar arguments, ``(B, 3, 3)`` if any argument is a ``(B,)`` tensor.
    """
    args = [torch.as_tensor(a, dtype=dtype) for a in (fx, fy, cx, cy)]
    fx, fy, cx, cy = torch.broadcast_tensors(*args)
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    rows = [torch.stack([fx, zero, cx], -1), torch.stack([zero, fy, cy], -1), torch.stack([zero, zero, one], -1)]
    return torch.stack(rows, -2)


def fov_intrinsics(fov_deg: float, size: tuple[int, int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    r"""``(3, 3)`` intrinsics of square pixels with horizontal field of view ``fov_deg`` for an
    image of ``size = (H, W)``: :math:`f = \frac{W/2}{\tan(\mathrm{fov}/2)}`, principal point at the centre."""
    if not 0 < fov_deg < 180:
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
    H, W = size
    f = (W / 2) / math.tan(math.radians(fov_deg) / 2)
    return intrinsics(f, f, W / 2, H / 2, dtype)


def look_at(eye: torch.Tensor, target: torch.Tensor, up=(0.0, 1.0, 0.0)) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Extrinsics of cameras at ``eye`` looking at ``target``, image-up towards ``up``.

    The camera axes in world coordinates are the rows of ``R``:

    .. math::  z_c = \frac{\text{target} - \text{eye}}{\lVert\cdot\rVert},\quad
               x_c = \frac{z_c \times \text{up}}{\lVert\cdot\rVert},\quad
               y_c = z_c \times x_c, \qquad R = \begin{pmatrix} x_c^\top \\ y_c^\top \\ z_c^\top \end{pmatrix},
               \quad t = -R\,\text{eye}

    so the target lies on the optical axis and ``up`` points up in the image (``y_c``
    points down). When the viewing direction is parallel to ``up``, the world axis
    least aligned with it is used as ``up`` instead.

    Args:
        eye: ``(B, 3)`` camera centres.
        target: ``(B, 3)`` or ``(3,)`` points looked at.
        up: world up direction ``(3,)``.

    Returns:
        ``R (B, 3, 3)``, ``t (B, 3)``.
    """
    _check_matrices("eye", eye, (3,))
    target = torch.as_tensor(target, dtype=eye.dtype, device=eye.device).expand_as(eye)
    up = torch.as_tensor(up, dtype=eye.dtype, device=eye.device).expand_as(eye)
    forward = target - eye
    if (forward.norm(dim=-1) == 0).any():
        raise ValueError("look_at: eye and target coincide for some camera")
    z = torch.nn.functional.normalize(forward, dim=-1)
    x = torch.linalg.cross(z, up)
    degenerate = x.norm(dim=-1) < 1e-6 * up.norm(dim=-1)
    if degenerate.any():
        alt = torch.eye(3, dtype=eye.dtype, device=eye.device)[z.abs().argmin(-1)]
        x = torch.where(degenerate[:, None], torch.linalg.cross(z, alt), x)
    x = torch.nn.functional.normalize(x, dim=-1)
    y = torch.linalg.cross(z, x)
    R = torch.stack([x, y, z], dim=-2)
    t = -(R @ eye.unsqueeze(-1)).squeeze(-1)
    return R, t


def world_to_camera(points: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    r"""Camera-frame coordinates :math:`x_{cam} = R\,x + t` of world points ``(B, N, 3)`` -> ``(B, N, 3)``."""
    check_points(points, allow_empty=True)
    _check_extrinsics(R, t)
    return points @ R.transpose(-1, -2) + t.unsqueeze(-2)


def camera_to_world(points: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    r"""World coordinates :math:`x = R^\top (x_{cam} - t)` of camera-frame points ``(B, N, 3)`` -> ``(B, N, 3)``."""
    check_points(points, allow_empty=True)
    _check_extrinsics(R, t)
    return (points - t.unsqueeze(-2)) @ R


def perspective(points_cam: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    r"""Pixel coordinates of camera-frame points: :math:`(u, v) = (f_x x/z + c_x,\ f_y y/z + c_y)`
    (general ``K`` including skew). ``points_cam (B, N, 3)``, ``K (B, 3, 3)`` -> ``(B, N, 2)``.
    Points at ``z = 0`` give infinities; callers clip first."""
    _check_matrices("K", K, (3, 3))
    homogeneous = points_cam @ K.transpose(-1, -2)
    return homogeneous[..., :2] / homogeneous[..., 2:3]


def project(points: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Project world points into the images.

    .. math::  \lambda\,(u, v, 1)^\top = K (R\,x + t), \qquad \text{depth} = \lambda

    Args:
        points: ``(B, N, 3)`` world points.
        K: ``(B, 3, 3)`` intrinsics.
        R: ``(B, 3, 3)`` world-to-camera rotations.
        t: ``(B, 3)`` world-to-camera translations.

    Returns:
        ``uv (B, N, 2)`` pixel coordinates and ``depth (B, N)`` (camera ``z``; a point
        behind the camera has negative depth and a meaningless ``uv``).
    """
    cam = world_to_camera(points, R, t)
    return perspective(cam, K), cam[..., 2]


def unproject(uv: torch.Tensor, depth: torch.Tensor, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    r"""World points at pixels ``uv`` with camera depth ``depth`` (the inverse of :func:`project`).

    .. math::  x = R^\top\big(\text{depth}\cdot K^{-1}(u, v, 1)^\top - t\big)

    Args:
        uv: ``(B, N, 2)`` pixel coordinates.
        depth: ``(B, N)`` camera-frame depths.
        K, R, t: as in :func:`project`.

    Returns:
        ``(B, N, 3)`` world points.
    """
    check_points(uv, "uv", dim=2, allow_empty=True)
    _check_matrices("K", K, (3, 3))
    if depth.shape != uv.shape[:-1]:
        raise ValueError(f"depth must have shape {tuple(uv.shape[:-1])} to match uv, got {tuple(depth.shape)}")
    homogeneous = torch.cat([uv, torch.ones_like(uv[..., :1])], -1)
    rays = torch.linalg.solve(K, homogeneous.transpose(-1, -2)).transpose(-1, -2)  # z = 1
    return camera_to_world(rays * depth.unsqueeze(-1), R, t)


def pixel_grid(H: int, W: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """``(H, W, 2)`` pixel centres ``(u, v) = (j + 0.5, i + 0.5)`` of every pixel ``(row i, col j)``.

    ``pixel_grid(H, W).reshape(1, H * W, 2)`` feeds :func:`unproject` with a depth map
    ``depth.reshape(1, H * W)`` (row-major).
    """
    if H <= 0 or W <= 0:
        raise ValueError(f"image size must be positive, got {(H, W)}")
    v, u = torch.meshgrid(torch.arange(H, dtype=dtype, device=device), torch.arange(W, dtype=dtype, device=device), indexing="ij")
    return torch.stack([u, v], -1) + 0.5


def camera_centers(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    r"""``(B, 3)`` camera centres in world coordinates, :math:`C = -R^\top t`."""
    _check_extrinsics(R, t)
    return -(R.transpose(-1, -2) @ t.unsqueeze(-1)).squeeze(-1)


def ring_cameras(
    n: int = 12, elevation_deg: float = 30.0, distance: float = 2.5, target=(0.0, 0.0, 0.0), dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``n`` cameras on a circle around the up axis, all looking at ``target`` (MVCNN's 12 views).

    Camera ``k`` sits at azimuth :math:`2\pi k/n` (from ``+z`` towards ``+x``) and
    elevation ``elevation_deg`` above the horizontal plane, at ``distance`` from
    ``target``:

    .. math::  C_k = \text{target} + d\,(\cos e \sin a_k,\ \sin e,\ \cos e \cos a_k)

    Returns:
        ``R (n, 3, 3)``, ``t (n, 3)``.
    """
    if n <= 0 or distance <= 0:
        raise ValueError(f"need n > 0 and distance > 0, got n={n}, distance={distance}")
    a = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
    e = math.radians(elevation_deg)
    offsets = torch.stack([math.cos(e) * a.sin(), torch.full_like(a, math.sin(e)), math.cos(e) * a.cos()], -1)
    target = torch.as_tensor(target, dtype=torch.float64)
    R, t = look_at(target + distance * offsets, target)
    return R.to(dtype), t.to(dtype)


def dodecahedron_cameras(distance: float = 2.5, target=(0.0, 0.0, 0.0), dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    r"""20 cameras on the vertices of a regular dodecahedron around ``target`` (MVCNN's 80-view set
    uses these 20 positions, each with 4 in-plane rotations).

    Vertices: :math:`(\pm1, \pm1, \pm1)`, :math:`(0, \pm\varphi^{-1}, \pm\varphi)`,
    :math:`(\pm\varphi^{-1}, \pm\varphi, 0)`, :math:`(\pm\varphi, 0, \pm\varphi^{-1})`,
    scaled to norm ``distance`` (:math:`\varphi` the golden ratio); none lies on the up axis.

    Returns:
        ``R (20, 3, 3)``, ``t (20, 3)``.
    """
    if distance <= 0:
        raise ValueError(f"distance must be positive, got {distance}")
    phi = (1 + math.sqrt(5)) / 2
    s = (-1.0, 1.0)
    vertices = [(x, y, z) for x in s for y in s for z in s]
    vertices += [(0.0, a / phi, b * phi) for a in s for b in s]
    vertices += [(a / phi, b * phi, 0.0) for a in s for b in s]
    vertices += [(a * phi, 0.0, b / phi) for a in s for b in s]
    v = torch.tensor(vertices, dtype=torch.float64)
    target = torch.as_tensor(target, dtype=torch.float64)
    R, t = look_at(target + distance * v / v.norm(dim=-1, keepdim=True), target)
    return R.to(dtype), t.to(dtype)


@dataclass(frozen=True, eq=False)
class Camera:
    """A batch of pinhole cameras sharing one image size.

    Attributes:
        K: ``(B, 3, 3)`` intrinsics.
        R: ``(B, 3, 3)`` world-to-camera rotations.
        t: ``(B, 3)`` world-to-camera translations.
        size: ``(H, W)`` image size in pixels.
    """

    K: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor
    size: tuple[int, int]

    def __post_init__(self):
        _check_matrices("K", self.K, (3, 3))
        _check_extrinsics(self.R, self.t)
        if self.K.shape[0] != self.R.shape[0]:
            raise ValueError(f"K and R disagree on the batch size: {self.K.shape[0]} vs {self.R.shape[0]}")

    def __len__(self) -> int:
        return self.R.shape[0]

    def __getitem__(self, index) -> "Camera":
        """The cameras selected by ``index`` (an int keeps a batch of one)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return Camera(self.K[index], self.R[index], self.t[index], self.size)

    @property
    def centers(self) -> torch.Tensor:
        """``(B, 3)`` camera centres in world coordinates."""
        return camera_centers(self.R, self.t)

r"""Functions on the sphere: a shape seen from its centre, the equiangular grid, spherical harmonics.

A spherical CNN (Cohen et al., ICLR 2018; Esteves et al., ECCV 2018) reads a shape as a function
on the sphere: cast a ray from the centre in every direction and record how far the shape
extends, :math:`f(u) = \max\{t : t u \in \text{surface}\}` (0 where the ray misses).

Convention
    The **polar axis is** ``+y`` (the world's up), so a yaw of the object is a rotation about
    the pole. A direction with polar angle :math:`\beta \in [0, \pi]` (from ``+y``) and azimuth
    :math:`\alpha` (from ``+z`` towards ``+x``, as :func:`~coursekit.geometry.camera.ring_cameras`) is

    .. math::  u(\beta, \alpha) = (\sin\beta \sin\alpha,\ \cos\beta,\ \sin\beta \cos\alpha)

    so the rotation :math:`R_y(\gamma)` about ``+y`` maps :math:`u(\beta, \alpha)` to
    :math:`u(\beta, \alpha + \gamma)`.

    **Equiangular (Driscoll-Healy) grid** of bandwidth :math:`L`: ``2L x 2L`` samples

    .. math::  \beta_j = \frac{\pi (2j + 1)}{4L}, \qquad \alpha_k = \frac{2\pi k}{2L}, \qquad j, k = 0..2L-1

    stored as ``(..., 2L, 2L)`` tensors indexed ``[j, k]``. Rotating a shape by :math:`R_y(2\pi s / 2L)`
    rolls its grid function by ``s`` along the last axis: these are the rotations "that map
    the grid to itself".

    **Real spherical harmonics**, orthonormal on the sphere, no Condon-Shortley phase; degree
    :math:`l < L`, order :math:`|m| \le l`, flattened at index :math:`l^2 + l + m`:

    .. math::  Y_{lm} = \sqrt{2}\,\bar P_l^{m}(\cos\beta) \cos(m\alpha)\ (m > 0), \quad
               \bar P_l^{0}(\cos\beta)\ (m = 0), \quad
               \sqrt{2}\,\bar P_l^{|m|}(\cos\beta) \sin(|m|\alpha)\ (m < 0)

    with :math:`\bar P_l^m = \sqrt{\tfrac{2l+1}{4\pi}\tfrac{(l-m)!}{(l+m)!}}\,P_l^m`.

The transform is quadrature on the grid, exact for functions of bandwidth :math:`L`:

.. math::  \hat f_{lm} = \frac{2\pi}{2L} \sum_{j,k} w_j\, f(\beta_j, \alpha_k)\, Y_{lm}(\beta_j, \alpha_k),
           \qquad w_j = \frac{2}{L} \sin\beta_j \sum_{i=0}^{L-1} \frac{\sin\big((2i+1)\beta_j\big)}{2i+1}

(Driscoll & Healy, "Computing Fourier transforms and convolutions on the 2-sphere", 1994).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import torch

from .validate import check_count, check_mesh
from .validate import check_points

__all__ = [
    "equiangular_grid",
    "grid_directions",
    "quadrature_weights",
    "real_spherical_harmonics",
    "sht",
    "isht",
    "power_spectrum",
    "rotate_about_pole",
    "ray_cast_mesh",
    "spherical_function_mesh",
    "spherical_function_sdf",
    "spherical_function_points",
]

_PAIRS = 1 << 21  # (ray, triangle) pairs tested at once


def _check_bandwidth(bandwidth: int) -> int:
    check_count(bandwidth, "bandwidth")
    return bandwidth


def equiangular_grid(bandwidth: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The ``(2L,)`` polar angles :math:`\beta_j = \pi(2j+1)/(4L)` and ``(2L,)`` azimuths :math:`\alpha_k = \pi k / L`."""
    L = _check_bandwidth(bandwidth)
    j = torch.arange(2 * L, dtype=torch.float64)
    return (math.pi * (2 * j + 1) / (4 * L)).to(dtype), (math.pi * j / L).to(dtype)


def grid_directions(bandwidth: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""``(2L, 2L, 3)`` unit directions :math:`u(\beta_j, \alpha_k) = (\sin\beta\sin\alpha, \cos\beta, \sin\beta\cos\alpha)`."""
    beta, alpha = equiangular_grid(bandwidth, torch.float64)
    b, a = torch.meshgrid(beta, alpha, indexing="ij")
    return torch.stack([b.sin() * a.sin(), b.cos(), b.sin() * a.cos()], -1).to(dtype)


def quadrature_weights(bandwidth: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""``(2L,)`` Driscoll-Healy weights: :math:`\sum_j w_j\, g(\beta_j) = \int_0^\pi g(\beta) \sin\beta\, d\beta`
    for :math:`g` a polynomial in :math:`\cos\beta` of degree below :math:`2L`.

    .. math::  w_j = \frac{2}{L} \sin\beta_j \sum_{i=0}^{L-1} \frac{\sin\big((2i+1)\beta_j\big)}{2i+1}
    """
    L = _check_bandwidth(bandwidth)
    beta, _ = equiangular_grid(L)
    i = torch.arange(L, dtype=torch.float64)
    w = (2.0 / L) * beta.sin() * (torch.sin((2 * i + 1) * beta.unsqueeze(1)) / (2 * i + 1)).sum(1)
    return w.to(dtype)


def _legendre_normalized(l_max: int, x: torch.Tensor) -> torch.Tensor:
    r"""``(l_max + 1, l_max + 1, *x.shape)`` :math:`\bar P_l^m(x)` for :math:`0 \le m \le l \le l_{max}` (zeros for m > l).

    Stable three-term recurrence in float64, no Condon-Shortley phase:
    :math:`\bar P_m^m = \sqrt{\tfrac{2m+1}{2m}} \sqrt{1 - x^2}\, \bar P_{m-1}^{m-1}`,
    :math:`\bar P_{m+1}^m = \sqrt{2m + 3}\, x\, \bar P_m^m`,
    :math:`\bar P_l^m = a_{lm} (x \bar P_{l-1}^m - b_{lm} \bar P_{l-2}^m)`.
    """
    x = x.double()
    s = (1 - x * x).clamp_min(0).sqrt()
    P = torch.zeros(l_max + 1, l_max + 1, *x.shape, dtype=torch.float64)
    P[0, 0] = math.sqrt(1 / (4 * math.pi))
    for m in range(1, l_max + 1):
        P[m, m] = math.sqrt((2 * m + 1) / (2 * m)) * s * P[m - 1, m - 1]
    for m in range(0, l_max):
        P[m + 1, m] = math.sqrt(2 * m + 3) * x * P[m, m]
    for m in range(0, l_max + 1):
        for l in range(m + 2, l_max + 1):
            a = math.sqrt((4 * l * l - 1) / (l * l - m * m))
            b = math.sqrt(((l - 1) ** 2 - m * m) / (4 * (l - 1) ** 2 - 1))
            P[l, m] = a * (x * P[l - 1, m] - b * P[l - 2, m])
    return P


def real_spherical_harmonics(bandwidth: int, beta: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    r"""Real orthonormal :math:`Y_{lm}(\beta, \alpha)` for all :math:`l < L`, at index :math:`l^2 + l + m`.

    Args:
        bandwidth: ``L``.
        beta, alpha: polar angles and azimuths of the same (broadcastable) shape ``S``.

    Returns:
        ``(L^2, *S)`` float64.
    """
    L = _check_bandwidth(bandwidth)
    beta, alpha = torch.broadcast_tensors(beta.double(), alpha.double())
    P = _legendre_normalized(L - 1, beta.cos())
    Y = torch.zeros(L * L, *beta.shape, dtype=torch.float64)
    for l in range(L):
        Y[l * l + l] = P[l, 0]
        for m in range(1, l + 1):
            Y[l * l + l + m] = math.sqrt(2) * P[l, m] * torch.cos(m * alpha)
            Y[l * l + l - m] = math.sqrt(2) * P[l, m] * torch.sin(m * alpha)
    return Y


@lru_cache(maxsize=32)
def _grid_harmonics(bandwidth: int, dtype: torch.dtype = torch.float64,
                    device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Y, Y * quadrature)``, both ``(L^2, 2L, 2L)``, for the grid of bandwidth ``L`` (computed in float64, cached)."""
    beta, alpha = equiangular_grid(bandwidth)
    Y = real_spherical_harmonics(bandwidth, beta.unsqueeze(1), alpha.unsqueeze(0))
    weighted = Y * (quadrature_weights(bandwidth).view(1, -1, 1) * (2 * math.pi / (2 * bandwidth)))
    return Y.to(dtype=dtype, device=device), weighted.to(dtype=dtype, device=device)


def _check_grid_function(f: torch.Tensor, bandwidth: int) -> None:
    if not isinstance(f, torch.Tensor) or f.dim() < 2 or tuple(f.shape[-2:]) != (2 * bandwidth, 2 * bandwidth):
        raise ValueError(f"a grid function of bandwidth {bandwidth} has shape (..., {2 * bandwidth}, {2 * bandwidth}), "
                         f"got {tuple(getattr(f, 'shape', ()))}")


def sht(f: torch.Tensor, bandwidth: int) -> torch.Tensor:
    r"""Spherical harmonic transform of grid functions (quadrature, exact up to bandwidth ``L``).

    .. math::  \hat f_{lm} = \frac{2\pi}{2L} \sum_{j,k} w_j\, f_{jk}\, Y_{lm}(\beta_j, \alpha_k)

    Args:
        f: ``(..., 2L, 2L)`` samples on the equiangular grid.
        bandwidth: ``L``.

    Returns:
        ``(..., L^2)`` coefficients (index :math:`l^2 + l + m`), differentiable.
    """
    _check_bandwidth(bandwidth)
    _check_grid_function(f, bandwidth)
    _, weighted = _grid_harmonics(bandwidth, f.dtype, f.device)
    return torch.einsum("...jk,ijk->...i", f, weighted)


def isht(coeffs: torch.Tensor, bandwidth: int) -> torch.Tensor:
    r"""Inverse transform: evaluate :math:`f = \sum_{l < L} \sum_m \hat f_{lm} Y_{lm}` on the grid of bandwidth ``L``.

    Args:
        coeffs: ``(..., n)`` with ``n <= L^2`` (missing high degrees count as zero: a band-limited
            function can be sampled on a finer grid).
        bandwidth: ``L`` of the output grid.

    Returns:
        ``(..., 2L, 2L)``.
    """
    _check_bandwidth(bandwidth)
    n = coeffs.shape[-1]
    if n > bandwidth ** 2 or math.isqrt(n) ** 2 != n:
        raise ValueError(f"coeffs must hold l^2 coefficients with l <= {bandwidth}, got {n}")
    Y, _ = _grid_harmonics(bandwidth, coeffs.dtype, coeffs.device)
    return torch.einsum("...i,ijk->...jk", coeffs, Y[:n])


def _degree_index(n_coeffs: int, device=None) -> torch.Tensor:
    """``(n,)`` degree ``l`` of every flattened coefficient ``l^2 + l + m``."""
    L = math.isqrt(n_coeffs)
    if L * L != n_coeffs:
        raise ValueError(f"the last axis must hold L^2 coefficients, got {n_coeffs}")
    return torch.repeat_interleave(torch.arange(L, device=device), 2 * torch.arange(L, device=device) + 1)


def power_spectrum(coeffs: torch.Tensor) -> torch.Tensor:
    r"""Energy per degree, invariant to every rotation of the function.

    .. math::  P_l = \sum_{m=-l}^{l} \hat f_{lm}^2

    Args:
        coeffs: ``(..., L^2)``.

    Returns:
        ``(..., L)``.
    """
    degree = _degree_index(coeffs.shape[-1], coeffs.device)
    L = math.isqrt(coeffs.shape[-1])
    out = coeffs.new_zeros(*coeffs.shape[:-1], L)
    return out.index_add(-1, degree, coeffs * coeffs)


def rotate_about_pole(coeffs: torch.Tensor, angle: float) -> torch.Tensor:
    r"""Coefficients of :math:`f'(\beta, \alpha) = f(\beta, \alpha - \gamma)`, the function rotated by ``angle`` about ``+y``.

    .. math::  \hat f'_{l,m} = \hat f_{l,m} \cos m\gamma - \hat f_{l,-m} \sin m\gamma, \qquad
               \hat f'_{l,-m} = \hat f_{l,m} \sin m\gamma + \hat f_{l,-m} \cos m\gamma \quad (m > 0)

    Args:
        coeffs: ``(..., L^2)``.
        angle: :math:`\gamma` in radians (any angle, not only grid steps).

    Returns:
        ``(..., L^2)``.
    """
    degree = _degree_index(coeffs.shape[-1], coeffs.device)
    order = torch.arange(coeffs.shape[-1], device=coeffs.device) - degree * degree - degree  # m
    mirror = degree * degree + degree - order  # index of (l, -m)
    angles = order.abs().to(coeffs.dtype) * angle
    sign = -torch.sign(order).to(coeffs.dtype)  # m > 0: -sin * f_{l,-m};  m < 0: +sin * f_{l,|m|}
    return coeffs * torch.cos(angles) + sign * torch.sin(angles) * coeffs[..., mirror]


# ---------------------------------------------------------------- shapes -> spherical functions

def ray_cast_mesh(vertices: torch.Tensor, faces: torch.Tensor, directions: torch.Tensor,
                  origin=(0.0, 0.0, 0.0)) -> torch.Tensor:
    r"""Distance to the farthest intersection of each ray from ``origin`` with a triangle mesh.

    .. math::  f(u) = \max\{t > 0 : o + t u \in T_f \text{ for some face } f\}, \quad 0 \text{ if none}

    Moeller-Trumbore ray-triangle test for every (ray, triangle) pair, in float64. With every
    ray starting at the same origin, each of its terms is a dot product of the direction
    :math:`u` with a per-triangle vector (:math:`s = o - v_0`, :math:`q = s \times e_1`):

    .. math::  \det = u \cdot (e_2 \times e_1), \quad a = \frac{u \cdot (e_2 \times s)}{\det}, \quad
               b = \frac{u \cdot q}{\det}, \quad t = \frac{e_2 \cdot q}{\det}

    and a hit needs :math:`a, b \ge 0`, :math:`a + b \le 1`, :math:`t > 0`: three matrix products.

    Args:
        vertices: ``(V, 3)``; faces: ``(F, 3)`` ``int64``.
        directions: ``(..., 3)`` unit directions.
        origin: the ray origin ``(3,)``.

    Returns:
        ``(...)`` distances in ``directions``' dtype.
    """
    check_mesh(vertices, faces)
    shape = directions.shape[:-1]
    u = directions.reshape(-1, 3).double()
    tri = vertices.detach().cpu().double()[faces.cpu()] - torch.as_tensor(origin, dtype=torch.float64)
    e1, e2, s = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], -tri[:, 0]
    q = torch.linalg.cross(s, e1)
    t_num = (e2 * q).sum(-1)
    vectors = torch.stack([torch.linalg.cross(e2, e1), torch.linalg.cross(e2, s), q], -1)  # (F, 3, 3)
    best = torch.zeros(len(u), dtype=torch.float64)
    step = max(1, _PAIRS // max(1, len(tri)))
    for start in range(0, len(u), step):
        det, a_num, b_num = torch.einsum("mi,fij->jmf", u[start:start + step].to(vectors.device), vectors)
        ok = det.abs() > 1e-12
        det = torch.where(ok, det, torch.ones_like(det))
        a, b, t = a_num / det, b_num / det, t_num / det
        hit = ok & (a >= 0) & (b >= 0) & (a + b <= 1) & (t > 0)
        best[start:start + step] = torch.where(hit, t, torch.zeros_like(t)).amax(1)
    return best.to(directions.dtype).to(directions.device).reshape(shape)


def spherical_function_mesh(vertices: torch.Tensor, faces: torch.Tensor, bandwidth: int,
                            origin=(0.0, 0.0, 0.0)) -> torch.Tensor:
    r"""A mesh seen from ``origin``: the farthest surface point along every grid direction.

    .. math::  f(\beta_j, \alpha_k) = \max\{t : o + t\,u(\beta_j, \alpha_k) \in \text{mesh}\}

    Returns:
        ``(2L, 2L)`` in ``vertices``' dtype (0 where the ray misses).
    """
    dirs = grid_directions(bandwidth)
    return ray_cast_mesh(vertices, faces, dirs, origin).to(vertices.dtype)


def spherical_function_sdf(sdf: Callable[[torch.Tensor], torch.Tensor], bandwidth: int, radius: float = 1.0,
                           eps: float = 1e-5, max_steps: int = 200, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    r"""A solid given by its signed distance, seen from the origin: sphere tracing *inwards* from ``radius``.

    .. math::  t_0 = r, \qquad t_{i+1} = t_i - \max\big(\mathrm{sdf}(t_i u), 0\big)

    Starting outside the solid and stepping towards the centre by the distance to the surface
    never skips it, so the first hit is the farthest surface point on the ray: the same
    :math:`\max\{t\}` as :func:`spherical_function_mesh`. A ray that reaches the centre without a
    hit gives 0. Needs an SDF that is exact (or a lower bound) outside the solid, like
    :meth:`Shape.sdf <coursekit.data.world.shapes.Shape.sdf>`. A ray that only grazes the
    surface can use up ``max_steps`` before converging and then reports where it stopped.

    Args:
        sdf: ``(N, 3) -> (N,)`` signed distance (negative inside).
        bandwidth: ``L``.
        radius: start of the march (the solid must lie inside the ball of this radius).
        eps: a point closer than this to the surface is a hit.
        max_steps: march length limit.

    Returns:
        ``(2L, 2L)`` distances.
    """
    u = grid_directions(bandwidth, torch.float32).reshape(-1, 3)
    t = torch.full((len(u),), float(radius))
    active = torch.ones(len(u), dtype=torch.bool)
    for _ in range(max_steps):
        if not active.any():
            break
        d = sdf(t[active, None] * u[active]).float()
        t[active] = t[active] - d.clamp_min(0)
        done = d < eps
        idx = torch.nonzero(active).flatten()
        active[idx[done]] = False
        active &= t > 0
    t = torch.where(t > 0, t, torch.zeros_like(t))
    return t.reshape(2 * bandwidth, 2 * bandwidth).to(dtype)


def spherical_function_points(points: torch.Tensor, bandwidth: int, cone: float | None = None) -> torch.Tensor:
    r"""Point clouds seen from the origin: the farthest point within a cone around every grid direction.

    .. math::  f(u) = \max\{\lVert p \rVert : \angle(p, u) \le \theta\}, \quad 0 \text{ if the cone is empty}

    The clouds' stand-in for ray casting (a ray hits no point); a rotation about ``+y`` by a
    grid step rolls the result exactly like the mesh version's.

    Args:
        points: ``(B, N, 3)`` clouds around the origin.
        bandwidth: ``L``.
        cone: half-angle :math:`\theta` (default :math:`\pi / L`, one azimuth step at the equator).

    Returns:
        ``(B, 2L, 2L)`` in ``points``' dtype.
    """
    check_points(points)
    L = _check_bandwidth(bandwidth)
    cone = math.pi / L if cone is None else float(cone)
    u = grid_directions(L, points.dtype).reshape(-1, 3).to(points.device)
    out = []
    for cloud in points:  # one cloud at a time: an (N, 4L^2) table each
        r = cloud.norm(dim=-1, keepdim=True)  # (N, 1)
        inside = (cloud / r.clamp_min(1e-12)) @ u.T >= math.cos(cone)
        out.append(torch.where(inside, r, torch.zeros((), dtype=r.dtype, device=r.device)).amax(0))
    return torch.stack(out).reshape(points.shape[0], 2 * L, 2 * L)

"""Notebook 01's exercises: the spatial transformer's grid generators, sampler and TPS solve.

Cases are chosen so that every listed mistake shows: batches larger than one,
non-square sizes, non-symmetric matrices, coordinates outside the image,
float64 throughout.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..stn.grids import affine_grid, attention_grid, attention_theta
from ..stn.sampler import bilinear_sample
from ..stn.tps import tps_control_points, tps_kernel, tps_solve
from .core import Case, Exercise, Mistake

f64 = torch.float64


def _uniform(gen: torch.Generator, shape: tuple[int, ...], low: float, high: float) -> torch.Tensor:
    return torch.rand(shape, generator=gen, dtype=f64) * (high - low) + low


def _rotation_theta(gen: torch.Generator, batch: int) -> torch.Tensor:
    """Rotation + anisotropic scale + translation: a generic (non-symmetric) affine ``theta``."""
    angle = _uniform(gen, (batch,), -math.pi, math.pi)
    sx, sy = _uniform(gen, (batch,), 0.6, 1.4), _uniform(gen, (batch,), 0.6, 1.4)
    tx, ty = _uniform(gen, (batch,), -0.5, 0.5), _uniform(gen, (batch,), -0.5, 0.5)
    cos, sin = angle.cos(), angle.sin()
    return torch.stack([torch.stack([sx * cos, -sy * sin, tx], -1), torch.stack([sx * sin, sy * cos, ty], -1)], -2)


# ------------------------------------------------------------------------- stn.affine_grid

def _affine_cases(gen: torch.Generator) -> list[Case]:
    generic = torch.eye(2, 3, dtype=f64) + 0.4 * torch.randn(2, 2, 3, generator=gen, dtype=f64)
    shifted = _rotation_theta(gen, 1)
    shifted[:, :, 2] += torch.tensor([0.9, -0.7], dtype=f64)
    return [
        Case("a batch of 2 non-symmetric thetas, non-square 5x7 output", (generic, (5, 7)), grad=(0,)),
        Case("a batch of 3 rotations with scale and shift, 4x6 output", (_rotation_theta(gen, 3), (4, 6)), grad=(0,)),
        Case("one theta with a large shift (coordinates outside [-1, 1]), 3x8 output", (shifted, (3, 8))),
    ]


def _affine_xy_swapped(theta, size):
    return affine_grid(theta, size).flip(-1)


def _affine_align_corners(theta, size):
    return F.affine_grid(theta, (theta.shape[0], 1, *size), align_corners=True)


def _affine_inverse(theta, size):
    full = torch.cat([theta, theta.new_tensor([0.0, 0.0, 1.0]).expand(theta.shape[0], 1, 3)], dim=1)
    return affine_grid(torch.linalg.inv(full)[:, :2], size)


def _affine_transposed(theta, size):
    return affine_grid(theta, size).transpose(1, 2)


def _affine_theta_transposed(theta, size):
    return affine_grid(torch.cat([theta[:, :, :2].transpose(1, 2), theta[:, :, 2:]], dim=2), size)


# ---------------------------------------------------------------------- stn.bilinear_sample

def _sampler_cases(gen: torch.Generator) -> list[Case]:
    def image(b, c, h, w):
        return torch.randn(b, c, h, w, generator=gen, dtype=f64)

    # Coordinates never land exactly on pixel centres (where bilinear weights have kinks).
    spread = _uniform(gen, (2, 4, 6, 2), -1.5, 1.5)
    warped = affine_grid(_rotation_theta(gen, 3) * 1.2, (5, 5))
    return [
        Case("a batch of 2 three-channel 5x7 images, a 4x6 grid with coordinates in [-1.5, 1.5]",
             (image(2, 3, 5, 7), spread), grad=(0, 1)),
        Case("a batch of 3 one-channel 6x4 images, a rotated 5x5 grid (partly outside)",
             (image(3, 1, 6, 4), warped), grad=(0, 1)),
        Case("upsampling one 3x3 image to 8x9 (all samples inside)",
             (image(1, 2, 3, 3), _uniform(gen, (1, 8, 9, 2), -0.6, 0.6)), grad=(0, 1)),
    ]


def _sample_align_corners(U, grid):
    return F.grid_sample(U, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def _sample_xy_swapped(U, grid):
    return F.grid_sample(U, grid.flip(-1), mode="bilinear", padding_mode="zeros", align_corners=False)


def _sample_border(U, grid):
    return F.grid_sample(U, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _sample_nearest(U, grid):
    return F.grid_sample(U, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _sample_pixel_corners(U, grid):
    # x^s = (x + 1) W / 2: half a pixel off, as if pixel *corners* sat at the integers.
    height, width = U.shape[-2:]
    shift = grid.new_tensor([1 / width, 1 / height])
    return F.grid_sample(U, grid + shift, mode="bilinear", padding_mode="zeros", align_corners=False)


def _sample_detached_grid(U, grid):
    return F.grid_sample(U, grid.detach(), mode="bilinear", padding_mode="zeros", align_corners=False)


# ----------------------------------------------------------------------- stn.attention_grid

def _attention_cases(gen: torch.Generator) -> list[Case]:
    def params(b, s_low, s_high):
        scale = _uniform(gen, (b, 1), s_low, s_high)
        return torch.cat([scale, _uniform(gen, (b, 2), -0.6, 0.6)], dim=1)

    return [
        Case("a batch of 3 zooms (s < 1) with shifts, non-square 5x7 output", (params(3, 0.3, 0.8), (5, 7)), grad=(0,)),
        Case("a batch of 2 zoom-outs (s > 1) with shifts, 4x6 output", (params(2, 1.2, 1.8), (4, 6)), grad=(0,)),
    ]


def _attention_txty_swapped(params, size):
    return attention_grid(params[:, [0, 2, 1]], size)


def _attention_scaled_shift(params, size):
    scale = params[:, :1]
    return attention_grid(torch.cat([scale, scale * params[:, 1:]], dim=1), size)


def _attention_no_shift(params, size):
    return attention_grid(torch.cat([params[:, :1], torch.zeros_like(params[:, 1:])], dim=1), size)


def _attention_xy_swapped(params, size):
    return attention_grid(params, size).flip(-1)


def _attention_align_corners(params, size):
    return F.affine_grid(attention_theta(params), (params.shape[0], 1, *size), align_corners=True)


def _attention_inverse(params, size):
    scale, shift = params[:, :1], params[:, 1:]
    return attention_grid(torch.cat([1 / scale, -shift / scale], dim=1), size)


# ---------------------------------------------------------------------------- stn.tps_solve

def _tps_cases(gen: torch.Generator) -> list[Case]:
    grid4 = tps_control_points(4, dtype=f64)
    scattered = _uniform(gen, (9, 2), -1, 1)
    grid3 = tps_control_points(3, dtype=f64)
    theta = _rotation_theta(gen, 1)
    moved_affinely = grid3 @ theta[0, :, :2].T + theta[0, :, 2]
    return [
        Case("a batch of 2, the 4x4 control grid moved by random offsets",
             (grid4 + 0.15 * torch.randn(2, 16, 2, generator=gen, dtype=f64), grid4), grad=(0,)),
        Case("a batch of 3, 9 scattered control points (not a grid)",
             (scattered + 0.2 * torch.randn(3, 9, 2, generator=gen, dtype=f64), scattered), grad=(0,)),
        Case("one 3x3 control grid moved by an affine map (w should vanish)", (moved_affinely[None], grid3)),
    ]


def _tps_system(control: torch.Tensor, kernel) -> torch.Tensor:
    k = control.shape[0]
    r2 = (control[:, None] - control[None]).pow(2).sum(-1)
    p = torch.cat([control, control.new_ones(k, 1)], dim=1)
    top = torch.cat([kernel(r2), p], dim=1)
    bottom = torch.cat([p.T, control.new_zeros(3, 3)], dim=1)
    return torch.cat([top, bottom], dim=0)


def _tps_with_kernel(kernel):
    def answer(source_points, control):
        rhs = torch.cat([source_points, source_points.new_zeros(source_points.shape[0], 3, 2)], dim=1)
        return torch.linalg.solve(_tps_system(control, kernel), rhs)
    return answer


def _r_log_r(r2):
    r = r2.clamp_min(1e-300).sqrt()
    return torch.where(r2 > 0, r * torch.log(r), torch.zeros_like(r2))


_tps_kernel_on_r = _tps_with_kernel(_r_log_r)
_tps_half_kernel = _tps_with_kernel(lambda r2: tps_kernel(r2) / 2)


def _tps_no_affine(source_points, control):
    r2 = (control[:, None] - control[None]).pow(2).sum(-1)
    return torch.linalg.solve(tps_kernel(r2), source_points)


def _tps_wrong_direction(source_points, control):
    rhs = torch.cat([control.expand_as(source_points), source_points.new_zeros(source_points.shape[0], 3, 2)], dim=1)
    systems = torch.stack([_tps_system(points, tps_kernel) for points in source_points])
    return torch.linalg.solve(systems, rhs)


def _tps_affine_order(source_points, control):
    coefficients = tps_solve(source_points, control)
    k = control.shape[0]
    return torch.cat([coefficients[:, :k], coefficients[:, [k + 2, k, k + 1]]], dim=1)


EXERCISES = (
    Exercise(
        name="stn.affine_grid",
        points=2,
        reference=affine_grid,
        make_cases=_affine_cases,
        what="grid",
        forbidden=("affine_grid",),
        mistakes=(
            Mistake("x and y are swapped in the last axis: grid[..., 0] must be x (the width / column "
                    "direction) and grid[..., 1] y (the height / row direction)", _affine_xy_swapped),
            Mistake("you used the align_corners=True convention (pixel centres at linspace(-1, 1, W)); the course "
                    "uses align_corners=False: pixel centre j is at -1 + (2j + 1) / W", _affine_align_corners),
            Mistake("your grid maps source to target (you applied the inverse of A_theta); the grid generator maps "
                    "each TARGET pixel (x^t, y^t, 1) to its SOURCE location: (x^s, y^s) = A_theta (x^t, y^t, 1)",
                    _affine_inverse),
            Mistake("your grid is (B, W', H', 2) with rows and columns exchanged: torch.meshgrid defaults to "
                    "indexing='ij', so meshgrid(ys, xs) gives grids indexed [row (y), column (x)]",
                    _affine_transposed),
            Mistake("you applied the transpose of theta's 2x2 part: x^s = theta_11 x^t + theta_12 y^t + theta_13, "
                    "i.e. coordinates @ theta.transpose(1, 2), not @ theta[:, :2, :2]", _affine_theta_transposed),
        ),
    ),
    Exercise(
        name="stn.bilinear_sample",
        points=2,
        reference=bilinear_sample,
        make_cases=_sampler_cases,
        what="sampled image",
        forbidden=("grid_sample", "bilinear_sample"),
        mistakes=(
            Mistake("you used the align_corners=True convention (x^s = (x + 1)(W - 1) / 2); with align_corners=False "
                    "it is x^s = ((x + 1) W - 1) / 2", _sample_align_corners),
            Mistake("x and y are swapped: grid[..., 0] is x (indexes the width, columns m) and grid[..., 1] is y "
                    "(indexes the height, rows n)", _sample_xy_swapped),
            Mistake("outside the image you repeated the border pixels (clamped indices); the sum runs over the "
                    "image's pixels only, so neighbours outside contribute zero (padding_mode='zeros')",
                    _sample_border),
            Mistake("you sampled the nearest pixel; bilinear sampling weights the 4 neighbours by "
                    "k(x^s - m) k(y^s - n) with k(d) = max(0, 1 - |d|)", _sample_nearest),
            Mistake("your pixel coordinates are half a pixel off: x^s = (x + 1) W / 2 puts pixel corners at the "
                    "integers; pixel centres are at the integers, x^s = ((x + 1) W - 1) / 2", _sample_pixel_corners),
            Mistake("the values are right but no gradient reaches the grid: keep the weights k(x^s - m) "
                    "differentiable in x^s (floor only to find m, do not detach the coordinates or use .item())",
                    _sample_detached_grid),
        ),
    ),
    Exercise(
        name="stn.attention_grid",
        points=2,
        reference=attention_grid,
        make_cases=_attention_cases,
        what="grid",
        forbidden=("attention_grid", "attention_theta"),
        mistakes=(
            Mistake("t_x and t_y are swapped: params are (s, t_x, t_y) and t_x shifts x (the width direction)",
                    _attention_txty_swapped),
            Mistake("you scaled the translation too (x^s = s (x^t + t_x)); the matrix [[s, 0, t_x], [0, s, t_y]] "
                    "gives x^s = s x^t + t_x", _attention_scaled_shift),
            Mistake("the translation is missing: x^s = s x^t + t_x, y^s = s y^t + t_y", _attention_no_shift),
            Mistake("x and y are swapped in the last axis: grid[..., 0] must be x, grid[..., 1] y",
                    _attention_xy_swapped),
            Mistake("you used the align_corners=True convention; pixel centre j is at -1 + (2j + 1) / W",
                    _attention_align_corners),
            Mistake("your grid maps source to target ((x - t_x) / s); the generator maps target to source: "
                    "x^s = s x^t + t_x", _attention_inverse),
        ),
    ),
    Exercise(
        name="stn.tps_solve",
        points=2,
        reference=tps_solve,
        make_cases=_tps_cases,
        what="TPS coefficients",
        forbidden=("tps_solve",),
        mistakes=(
            Mistake("your radial basis is r log r; the course's kernel is U = r^2 log r^2, a function of the "
                    "SQUARED distance (feed it r^2, do not take the square root)", _tps_kernel_on_r),
            Mistake("your radial basis is r^2 log r (half the course's); use U = r^2 log r^2 so that the "
                    "coefficients w match", _tps_half_kernel),
            Mistake("the affine part is missing: solve the full (K+3)x(K+3) system [[K, P], [P^T, 0]] [w; a] = [v; 0] "
                    "with P = (x, y, 1) of the control points, and return w stacked on a", _tps_no_affine),
            Mistake("you solved the wrong direction (source -> control); the spline maps the control points "
                    "(target) to the source points: K and P are built from `control`, v = source_points",
                    _tps_wrong_direction),
            Mistake("the affine rows are in another order: P's columns, and so a's rows, are (x, y, 1) "
                    "like homogeneous target coordinates", _tps_affine_order),
        ),
    ),
)

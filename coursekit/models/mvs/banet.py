r"""BA-Net's differentiable Levenberg-Marquardt layer on a small two-view feature-metric problem.

Tang, Tan, "BA-Net: Dense Bundle Adjustment Network", ICLR 2019 (arXiv:1806.04807).
Bundle adjustment minimises a sum of squared residuals over camera poses and depths. BA-Net
makes the residual **feature-metric** (differences of learnt feature maps instead of
re-projection errors of matched points) and makes the solver a **layer**: a fixed number of
Levenberg-Marquardt steps whose damping :math:`\lambda` is *predicted* by a small MLP from the
residual, so that gradients flow from the solution back into the features and the damping net.

One LM step (:func:`lm_step`), with :math:`E(\mathcal X)` the stacked residuals and
:math:`J = \partial E / \partial \mathcal X`:

.. math::  \Delta\mathcal X = -\big(J^\top J + \lambda\, D(J^\top J)\big)^{-1} J^\top E(\mathcal X),
           \qquad \mathcal X \leftarrow \mathcal X + \Delta \mathcal X

with :math:`D(\cdot)` the diagonal (Marquardt's scaling, as in BA-Net). :math:`J` is computed by
automatic differentiation (:func:`residual_jacobian`, one double-backward pass per unknown) with
``create_graph=True``, so the step itself is differentiable (checked by ``gradcheck`` in float64).

The two-view problem (:class:`TwoViewProblem`): reference camera at the origin (``R = I, t = 0``),
source camera pose :math:`(\exp[\omega]_\times, \tau)`, reference depth from an inverse-depth
basis, :math:`1/d = \rho_0 + B w` (BA-Net's depth = linear combination of basis depth maps;
here the basis is a plane's, ``[x/z, y/z]``, and :math:`\rho_0` is fixed, which removes the
scale gauge). Unknowns :math:`\mathcal X = (\omega, \tau, w)`, residual per reference point
:math:`q` and feature channel:

.. math::  e_q(\mathcal X) = F_{src}\Big(\pi\big(K, \exp[\omega]_\times,\ \tau;\
           \mathrm{unproject}(q, d_q(w), K, I, 0)\big)\Big) - F_{ref}(q)

(projection and unprojection from :mod:`coursekit.geometry.camera`, sampling through
``grid_sample`` with :func:`coursekit.geometry.homography.pixels_to_grid`).

How far toward the full BA-Net this goes: the differentiable LM layer (fixed or predicted
damping, :class:`DampingNet` = BA-Net's MLP on the globally pooled absolute residual), the
feature-metric two-view residual, a depth basis and end-to-end gradients are here and tested
(against :func:`scipy.optimize.least_squares` ``method='lm'`` on the same residual, and
``gradcheck``). Not here: the learnt feature pyramid (BA-Net: DRN-54 backbone, features made
for BA), the network that *generates* 128 basis depth maps per image, multi-view (> 2) problems,
coarse-to-fine LM over three pyramid levels (5 steps each), and training on ScanNet/KITTI with
pose and depth losses. :func:`make_two_view_problem` builds synthetic problems (a textured plane)
whose true solution is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...geometry.camera import project, unproject
from ...geometry.homography import pixels_to_grid

__all__ = [
    "so3_exp",
    "residual_jacobian",
    "lm_step",
    "levenberg_marquardt",
    "DampingNet",
    "LMLayer",
    "TwoViewProblem",
    "make_two_view_problem",
    "solve_scipy",
]


def so3_exp(omega: torch.Tensor) -> torch.Tensor:
    r"""Rotation matrices from axis-angle vectors (Rodrigues), smooth at :math:`\omega = 0`.

    .. math::  \exp[\omega]_\times = I + \frac{\sin\theta}{\theta}[\omega]_\times
               + \frac{1 - \cos\theta}{\theta^2}[\omega]_\times^2, \qquad \theta = \lVert\omega\rVert

    (Taylor expansions below :math:`\theta = 10^{-4}`, so gradients stay finite.)

    Args:
        omega: ``(..., 3)``.

    Returns:
        ``(..., 3, 3)``.
    """
    theta2 = (omega * omega).sum(-1, keepdim=True)[..., None]
    small = theta2 < 1e-8
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta2), theta2))
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta**2)
    x, y, z = omega.unbind(-1)
    zero = torch.zeros_like(x)
    W = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*omega.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=omega.dtype, device=omega.device)
    return eye + a * W + b * (W @ W)


def residual_jacobian(residual_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Residuals and their Jacobian, differentiable (``create_graph``) for LM layers.

    .. math::  J_{:, i} = \frac{\partial E}{\partial x_i} = \frac{\partial}{\partial u}
               \Big(\big(\tfrac{\partial E}{\partial x}\big)^{\!\top} u\Big)^{\!\top} e_i

    (the double-backward trick: one cheap pass per unknown, as the problems here have few
    unknowns and many residuals).

    Args:
        residual_fn: ``x (P,) -> E (M,)``.
        x: ``(P,)``.

    Returns:
        ``E (M,)`` and ``J (M, P)``.
    """
    if x.dim() != 1:
        raise ValueError(f"x must be a vector (P,), got {tuple(x.shape)}")
    with torch.enable_grad():
        xg = x if x.requires_grad else x.detach().requires_grad_()
        e = residual_fn(xg)
        if e.dim() != 1:
            raise ValueError(f"residual_fn must return a vector (M,), got {tuple(e.shape)}")
        u = torch.zeros_like(e, requires_grad=True)
        (jt_u,) = torch.autograd.grad(e, xg, u, create_graph=True, materialize_grads=True)
        eye = torch.eye(x.numel(), dtype=x.dtype, device=x.device)
        cols = [torch.autograd.grad(jt_u, u, eye[i], create_graph=True, retain_graph=True, materialize_grads=True)[0]
                for i in range(x.numel())]
    return e, torch.stack(cols, -1)


def lm_step(residual_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, damping) -> torch.Tensor:
    r"""One differentiable Levenberg-Marquardt step (BA-Net's layer).

    .. math::  x' = x - \big(J^\top J + \lambda\, D(J^\top J)\big)^{-1} J^\top E(x)

    Args:
        residual_fn: ``x (P,) -> E (M,)``.
        x: ``(P,)`` current estimate.
        damping: :math:`\lambda`: a float, a 0-d tensor, or a callable ``E (M,) -> lambda``
            (e.g. :class:`DampingNet`).

    Returns:
        ``(P,)`` the updated estimate (differentiable in ``x``, in whatever ``residual_fn``
        closes over, and in ``damping``).
    """
    e, J = residual_jacobian(residual_fn, x)
    lam = damping(e) if callable(damping) else damping
    A = J.T @ J
    A = A + lam * torch.diag_embed(torch.diagonal(A))
    return x - torch.linalg.solve(A, J.T @ e)


def levenberg_marquardt(residual_fn: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, iterations: int = 10,
                        damping=1e-3, adaptive: bool = True, tol: float = 1e-12) -> tuple[torch.Tensor, list[float]]:
    r"""Run LM: classical (``adaptive``: accept a step only if the cost drops, then
    :math:`\lambda \leftarrow \lambda/10`, else reject and :math:`\lambda \leftarrow 10\lambda`)
    or BA-Net's fixed number of always-accepted steps (``adaptive=False``; ``damping`` may then be
    a :class:`DampingNet`).

    .. math::  C(x) = \tfrac12 \lVert E(x) \rVert^2

    Args:
        residual_fn: ``x (P,) -> E (M,)``.
        x0: ``(P,)`` start.
        iterations: LM steps tried.
        damping: initial (``adaptive``) or fixed/predicted :math:`\lambda`.
        adaptive: classical accept/reject schedule.
        tol: stop when the relative cost decrease of an accepted step is below ``tol``.

    Returns:
        the estimate ``(P,)`` and the cost after every iteration.
    """
    x, costs = x0, []
    cost = 0.5 * float((residual_fn(x).detach() ** 2).sum())
    lam = damping
    for _ in range(iterations):
        candidate = lm_step(residual_fn, x, lam)
        if not adaptive:
            x = candidate
            cost = 0.5 * float((residual_fn(x).detach() ** 2).sum())
        else:
            new = 0.5 * float((residual_fn(candidate).detach() ** 2).sum())
            if new < cost:
                converged = cost - new <= tol * max(cost, 1e-300)
                x, cost, lam = candidate, new, lam / 10
                if converged:
                    costs.append(cost)
                    break
            else:
                lam = lam * 10
        costs.append(cost)
    return x, costs


class DampingNet(nn.Module):
    r"""BA-Net's damping predictor: an MLP on the globally pooled absolute residual.

    .. math::  \lambda = \operatorname{softplus}\Big(\mathrm{MLP}\big(\tfrac1N \textstyle\sum_q |e_q|\big)\Big) + \epsilon

    Args:
        channels: ``C``, residual channels per point (the residual vector is read as ``(N, C)``).
        hidden: MLP width.
        eps: lower bound of :math:`\lambda`.

    Shapes:
        ``E (N * C,) -> lambda`` (0-d tensor).
    """

    def __init__(self, channels: int, hidden: int = 16, eps: float = 1e-4):
        super().__init__()
        self.channels, self.eps = int(channels), float(eps)
        self.mlp = nn.Sequential(nn.Linear(self.channels, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, residual: torch.Tensor) -> torch.Tensor:
        pooled = residual.reshape(-1, self.channels).abs().mean(0)
        return F.softplus(self.mlp(pooled.to(self.mlp[0].weight.dtype))).squeeze(-1).to(residual.dtype) + self.eps


class LMLayer(nn.Module):
    """A fixed number of differentiable LM steps with a fixed or predicted damping (BA-Net's solver).

    Args:
        iterations: steps (BA-Net: 5 per pyramid level).
        damping: a float (fixed :math:`\\lambda`) or a :class:`DampingNet`.

    Shapes:
        ``forward(residual_fn, x0 (P,)) -> (P,)``.
    """

    def __init__(self, iterations: int = 5, damping: float | DampingNet = 1e-2):
        super().__init__()
        self.iterations = int(iterations)
        self.damping = damping

    def forward(self, residual_fn: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for _ in range(self.iterations):
            x = lm_step(residual_fn, x, self.damping)
        return x


@dataclass(eq=False)
class TwoViewProblem:
    """A two-view feature-metric BA problem (module docstring).

    Attributes:
        ref_features: ``(1, C, H, W)`` reference feature map.
        src_features: ``(1, C, H, W)`` source feature map.
        K: ``(3, 3)`` intrinsics of both views (feature-map pixels).
        uv: ``(N, 2)`` reference pixels with residuals.
        inv_depth_base: ``(N,)`` fixed :math:`\\rho_0` part of the inverse depth.
        inv_depth_basis: ``(N, k)`` basis :math:`B`.
        x_true: ``(6 + k,)`` the true ``(omega, tau, w)`` if known (synthetic problems).
    """

    ref_features: torch.Tensor
    src_features: torch.Tensor
    K: torch.Tensor
    uv: torch.Tensor
    inv_depth_base: torch.Tensor
    inv_depth_basis: torch.Tensor
    x_true: torch.Tensor | None = None

    @property
    def channels(self) -> int:
        return self.ref_features.shape[1]

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.ref_features.shape[-2:])

    def sample(self, features: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
        """Bilinear features ``(N, C)`` of ``features (1, C, H, W)`` at pixels ``uv (N, 2)``."""
        grid = pixels_to_grid(uv, self.size).reshape(1, 1, -1, 2)
        return F.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=False)[0, :, 0].T

    def depth(self, w: torch.Tensor) -> torch.Tensor:
        r"""Reference depths :math:`d = 1 / (\rho_0 + B w)`, ``(N,)``."""
        return 1.0 / (self.inv_depth_base + self.inv_depth_basis @ w)

    def source_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Where the reference points land in the source view, ``(N, 2)``."""
        eye = torch.eye(3, dtype=x.dtype, device=x.device)[None]
        points = unproject(self.uv[None], self.depth(x[6:])[None], self.K[None], eye, x.new_zeros(1, 3))
        return project(points, self.K[None], so3_exp(x[:3])[None], x[3:6][None])[0][0]

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`E(\mathcal X)`, ``(N * C,)`` point-major: :math:`F_{src}(\pi(\dots)) - F_{ref}(q)`."""
        e = self.sample(self.src_features, self.source_pixels(x)) - self.sample(self.ref_features, self.uv)
        return e.reshape(-1)


def make_two_view_problem(size: tuple[int, int] = (64, 64), channels: int = 3, grid: int = 12, focal: float = 32.0,
                          omega=(0.02, -0.05, 0.01), tau=(0.3, 0.05, 0.02), plane=(0.5, 0.3, -0.2),
                          frequency: float = 8.0, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64) -> TwoViewProblem:
    r"""A synthetic two-view problem: a smoothly textured plane seen by two cameras.

    The plane in the reference frame is :math:`1/z = \rho_0 + a\,x/z + b\,y/z`
    (``plane = (rho0, a, b)``; i.e. :math:`n \cdot X = 1`, :math:`n = (a, b, \rho_0)`); its
    texture is ``channels`` sinusoids of the 3D position with random frequencies (each component
    uniform in ``[-frequency, frequency]`` rad per unit) and phases.
    Each feature map is rendered exactly (ray-plane intersection at every pixel centre); the
    residual points are a ``grid x grid`` lattice of reference pixels away from the border.

    Conditioning: a plane seen by two views is close to ambiguous (tilt against translation)
    when the field of view, the baseline or the texture is small; the defaults (90 degree
    field of view, baseline 0.3 at depth 2, a tilted plane) give LM a solution within ~0.005 of
    ``x_true`` from a start 0.03 away. The true solution is not the exact minimum: bilinear
    sampling of the rendered maps leaves a small residual at ``x_true``.

    Returns:
        a :class:`TwoViewProblem` with ``x_true = (omega, tau, a, b)``.
    """
    H, W = size
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    freq = (torch.rand(channels, 3, generator=gen, dtype=dtype) * 2 - 1) * frequency
    phase = torch.rand(channels, generator=gen, dtype=dtype) * 6.28
    rho0, a, b = plane
    n = torch.tensor([a, b, rho0], dtype=dtype)
    K = torch.tensor([[focal, 0, W / 2], [0, focal, H / 2], [0, 0, 1]], dtype=dtype)
    R = so3_exp(torch.tensor(omega, dtype=dtype))
    t = torch.tensor(tau, dtype=dtype)
    v, u = torch.meshgrid(torch.arange(H, dtype=dtype) + 0.5, torch.arange(W, dtype=dtype) + 0.5, indexing="ij")
    rays = torch.stack([u, v, torch.ones_like(u)], -1) @ torch.linalg.inv(K).T  # camera rays, z = 1

    def render(R_cam, t_cam):
        centre = -R_cam.T @ t_cam
        d = rays @ R_cam  # world directions R^T r
        s = (1 - centre @ n) / (d @ n)
        X = centre + s[..., None] * d
        return torch.sin(X @ freq.T + phase).permute(2, 0, 1)[None]

    ref = render(torch.eye(3, dtype=dtype), torch.zeros(3, dtype=dtype))
    src = render(R, t)
    margin = 0.2
    lin = lambda n_, size_: (margin + (1 - 2 * margin) * (torch.arange(n_, dtype=dtype) + 0.5) / n_) * size_  # noqa: E731
    gv, gu = torch.meshgrid(lin(grid, H), lin(grid, W), indexing="ij")
    uv = torch.stack([gu, gv], -1).reshape(-1, 2)
    basis = torch.stack([(uv[:, 0] - K[0, 2]) / focal, (uv[:, 1] - K[1, 2]) / focal], -1)
    x_true = torch.cat([torch.tensor(omega, dtype=dtype), t, torch.tensor([a, b], dtype=dtype)])
    return TwoViewProblem(ref, src, K, uv, torch.full((len(uv),), rho0, dtype=dtype), basis, x_true)


def solve_scipy(residual_fn: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, **kwargs) -> torch.Tensor:
    """The reference solver: :func:`scipy.optimize.least_squares` with ``method='lm'`` (MINPACK) on the
    same residual, with the autograd Jacobian. Extra ``kwargs`` go to ``least_squares``.

    Returns:
        ``(P,)`` the solution, in ``x0``'s dtype.
    """
    from scipy.optimize import least_squares

    def fun(x):
        return residual_fn(torch.from_numpy(x).to(x0.dtype)).detach().numpy().astype(np.float64)

    def jac(x):
        return residual_jacobian(residual_fn, torch.from_numpy(x).to(x0.dtype))[1].detach().numpy().astype(np.float64)

    options = dict(method="lm", xtol=1e-12, ftol=1e-12, gtol=1e-12)
    options.update(kwargs)
    result = least_squares(fun, x0.detach().double().numpy(), jac=jac, **options)
    return torch.from_numpy(result.x).to(x0.dtype)

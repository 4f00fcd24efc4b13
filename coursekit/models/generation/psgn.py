r"""PSGN: a point set straight from one image (Fan, Su, Guibas, "A Point Set Generation Network for 3D
Object Reconstruction from a Single Image", CVPR 2017).

"It is possible to generate a **set**": the network outputs ``N`` points as an ``(N, 3)``
array, and the loss must not depend on their order. The two losses of the paper:

.. math::  d_{CD}(S_1, S_2) = \sum_{x \in S_1} \min_{y \in S_2} \lVert x - y \rVert_2^2
                            + \sum_{y \in S_2} \min_{x \in S_1} \lVert x - y \rVert_2^2, \qquad
           d_{EMD}(S_1, S_2) = \min_{\phi: S_1 \to S_2} \sum_{x \in S_1} \lVert x - \phi(x) \rVert_2

**CD blurs, EMD spreads** (the paper's Fig. 8): when the image leaves the shape uncertain,
the CD minimiser puts points where *some* plausible shape has surface and may pile many
points on one spot (the nearest-neighbour terms do not care how many predicted points share a
target), a "mean shape" with clumps; EMD's bijection forces the prediction to have the
target's point *density*, so points spread over the whole surface. :func:`spacing_statistics`
measures it: the coefficient of variation of nearest-neighbour spacing inside a predicted
cloud is larger for CD-trained predictions.

Which CD and EMD (see :mod:`coursekit.metrics.chamfer`, :mod:`coursekit.metrics.emd`):
training uses the ``"pytorch3d"`` Chamfer (mean of squared distances each way, summed) and
the Sinkhorn EMD with ``point_reduction="mean"`` at the ``eps`` and iteration counts of
:data:`SIZES`, between random subsets of ``emd_points`` points when the clouds are larger (an
approximation twice over; the paper used its own ``approxmatch`` on all 1024 points).

Kept: the image encoder -> fully connected point regressor (the paper's "vanilla" FC branch).
Not built: the paper's deconvolution branch and hourglass variants, the 2D-to-3D distribution
modelling with a random input vector.
"""

from __future__ import annotations

import torch
from torch import nn

from ... import runtime
from ...geometry.neighbors import knn
from ...metrics.chamfer import chamfer_distance
from ...metrics.emd import emd_sinkhorn
from .encoders import ImageEncoder

__all__ = ["SIZES", "PSGN", "psgn_loss", "spacing_statistics"]

SIZES = {
    "fast": dict(latent=64, widths=(8, 16, 32, 64), hidden=(128,), sinkhorn_eps=0.05, sinkhorn_iters=3,
                 sinkhorn_max_iters=20, emd_points=128),
    "cpu": dict(latent=128, widths=(16, 32, 64, 128), hidden=(256, 256), sinkhorn_eps=0.02, sinkhorn_iters=4,
                sinkhorn_max_iters=30, emd_points=256),
    "gpu": dict(latent=256, widths=(32, 64, 128, 256), hidden=(512, 512), sinkhorn_eps=0.005, sinkhorn_iters=20,
                sinkhorn_max_iters=200, emd_points=1024),
}
"""Widths per profile (encoder stages, latent size, the FC regressor's hidden layers) and the EMD loss's
settings: Sinkhorn ``eps``, updates per scaling stage, most updates at the final ``eps``, and ``emd_points``,
the size of the random subsets of prediction and target matched at each step (the ``N x N`` plan of
1024+ points is too slow on a CPU)."""


class PSGN(nn.Module):
    r"""Image -> ``n_points`` 3D points through an image encoder and a fully connected regressor.

    .. math::  S = \mathrm{reshape}_{N \times 3}\big(\mathrm{MLP}(E(I))\big)

    Args:
        n_points: ``N``, points per predicted set.
        in_channels: image channels.
        sizes: a :data:`SIZES` entry (default: the active profile's).

    Shapes:
        ``images (B, C, H, W) -> points (B, N, 3)``.
    """

    def __init__(self, n_points: int, in_channels: int = 1, sizes: dict | None = None):
        super().__init__()
        sizes = dict(sizes or runtime.pick(SIZES))
        self.encoder = ImageEncoder(in_channels, sizes["latent"], sizes["widths"])
        layers, c = [], sizes["latent"]
        for h in sizes["hidden"]:
            layers += [nn.Linear(c, h), nn.ReLU()]
            c = h
        layers.append(nn.Linear(c, n_points * 3))
        self.regressor = nn.Sequential(*layers)
        self.n_points = n_points

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.regressor(self.encoder(images)).reshape(-1, self.n_points, 3)


def psgn_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "chamfer", sizes: dict | None = None) -> torch.Tensor:
    r"""Batch-mean training loss of PSGN: Chamfer (``"chamfer"``) or approximate EMD (``"emd"``).

    .. math::  \mathcal L_{CD} = \frac1N \sum_x d^2(x, Y) + \frac1M \sum_y d^2(y, X), \qquad
               \mathcal L_{EMD} \approx \frac1N \min_\phi \sum_x \lVert x - \phi(x) \rVert_2

    Args:
        pred: ``(B, N, 3)``; target: ``(B, M, 3)``.
        kind: ``"chamfer"`` or ``"emd"`` (between random subsets of ``emd_points`` points of each when
            the clouds are larger: "mini-batch" transport, positive even for identical clouds, whose
            expectation still favours a prediction with the target's point density).
        sizes: Sinkhorn settings (default: the profile's :data:`SIZES`).

    Returns:
        scalar tensor.
    """
    if kind == "chamfer":
        return chamfer_distance(pred, target, "pytorch3d", reduction="mean")
    if kind == "emd":
        s = dict(sizes or runtime.pick(SIZES))
        n = min(s["emd_points"], pred.shape[1], target.shape[1])
        if n < pred.shape[1] or n < target.shape[1]:  # equal random subsets (fresh each step, PyTorch's global stream)
            pred = pred[:, torch.randperm(pred.shape[1], device=pred.device)[:n]]
            target = target[:, torch.randperm(target.shape[1], device=target.device)[:n]]
        return emd_sinkhorn(pred, target, eps=s["sinkhorn_eps"], iters=s["sinkhorn_iters"],
                            max_iters=s["sinkhorn_max_iters"], tol=1e-2, point_reduction="mean", reduction="mean")
    raise ValueError(f"kind must be 'chamfer' or 'emd', got {kind!r}")


def spacing_statistics(points: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""How evenly a cloud's points are spread: mean nearest-neighbour spacing and its coefficient of variation.

    .. math::  s_i = \min_{j \ne i} \lVert x_i - x_j \rVert_2, \qquad
               \bar s = \frac1N \sum_i s_i, \qquad \mathrm{CV} = \operatorname{std}(s) / \bar s

    Clumped clouds (many points on one spot) have a small :math:`\bar s` and a large CV.

    Args:
        points: ``(B, N, 3)``, ``N >= 2``.

    Returns:
        ``{"mean_spacing": (B,), "cv": (B,)}``.
    """
    if points.dim() != 3 or points.shape[1] < 2:
        raise ValueError(f"points must have shape (B, N >= 2, 3), got {tuple(points.shape)}")
    with torch.no_grad():
        d2, _ = knn(points.detach(), points.detach(), 2)  # the nearest is the point itself
        s = d2[..., 1].clamp_min(0).sqrt()
    mean = s.mean(1)
    return {"mean_spacing": mean, "cv": s.std(1) / mean.clamp_min(1e-12)}

r"""FoldingNet: a 2D grid folded twice into the surface (Yang, Feng, Shen, Tian, "FoldingNet: Point Cloud
Auto-encoder via Deep Grid Deformation", CVPR 2018).

"Learn to warp a plane to surface": the decoder replicates the shape code :math:`z` for every
point :math:`u_j` of a fixed 2D grid, concatenates, and maps each row through a shared MLP
(the first **fold**, 2D -> 3D); the 3D result is concatenated with :math:`z` again and folded
a second time:

.. math::  p^{(1)}_j = f_1\big([z,\ u_j]\big), \qquad p^{(2)}_j = f_2\big([z,\ p^{(1)}_j]\big),
           \qquad f_k(x) = W_{k,2}\, \mathrm{ReLU}(W_{k,1} x + b_{k,1}) + b_{k,2}

Every output point is the image of one grid point, so the decoder is a continuous map of the
square (neighbouring grid points land close together): the output is a sampled surface patch,
not an unordered set of free points. The loss is Chamfer (the paper's, "augmented" max of the
two sides; here the ``"pytorch3d"`` sum of the two means).

Kept: the two folds with concatenated codeword, the grid, the Chamfer loss. Changed: each fold
is a two-layer perceptron (paper: three layers of 512), the grid is ``m x m`` on
:math:`[-1, 1]^2` (paper: 45 x 45 on :math:`[-0.3, 0.3]^2`), each fold's first layer starts with
the point's columns scaled up so that the grid is not drowned by the codeword
(:func:`balance_fold_init`; with PyTorch's default init the folds start collapsed onto one point
and, in the ``cpu`` budget, end worse than the class mean shape), and the encoder is
:class:`~coursekit.models.generation.encoders.PointEncoder` (paper: a graph-based encoder) or
the image encoder. :func:`folding_decoder` is the decoder in weights form — the notebook's
exercise ``generation.folding_decoder``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ... import runtime
from .encoders import ImageEncoder, PointEncoder

__all__ = ["SIZES", "square_grid", "balance_fold_init", "folding_decoder", "FoldingNet"]

SIZES = {
    "fast": dict(latent=64, grid_size=16, hidden=64, encoder_widths=(32, 64, 128), image_widths=(8, 16, 32, 64)),
    "cpu": dict(latent=128, grid_size=32, hidden=256, encoder_widths=(64, 128, 256), image_widths=(16, 32, 64, 128)),
    "gpu": dict(latent=512, grid_size=45, hidden=512, encoder_widths=(64, 128, 512), image_widths=(32, 64, 128, 256)),
}
"""Widths per profile: code size, grid side ``m`` (``m^2`` output points), fold hidden width, encoders."""


def square_grid(m: int, lo: float = -1.0, hi: float = 1.0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The ``m x m`` regular grid on ``[lo, hi]^2``, row-major (``u`` fastest).

    Returns:
        ``(m * m, 2)`` points ``(u, v)``.
    """
    if m < 2:
        raise ValueError(f"the grid needs m >= 2 points per side, got {m}")
    t = torch.linspace(lo, hi, m, dtype=dtype)
    v, u = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([u.reshape(-1), v.reshape(-1)], dim=-1)


def balance_fold_init(layer: nn.Linear, code_size: int) -> None:
    r"""Rescale a fold's first layer at initialisation so that the point and the codeword weigh alike.

    The layer reads :math:`[z, u]`: ``code_size`` codeword entries, then the ``d`` coordinates
    of the point (2 for the grid, 3 for the first fold's output). PyTorch's default fan-in
    initialisation gives every input column the same scale, so the point's share of a hidden
    unit's input is about :math:`\sqrt{d / C}` of the codeword's (1/8 for ``C = 128``, ``d = 2``);
    after two folds the grid barely moves the output (every shape starts collapsed to a point,
    spread ~1e-3) and Chamfer training needs most of its budget to unfold it. Multiplying the
    point's columns by :math:`\sqrt{C / d}` balances the two shares:

    .. math::  W_{:, C:} \leftarrow \sqrt{C / d}\; W_{:, C:}

    Args:
        layer: the fold's first ``nn.Linear`` (``in_features = code_size + d``), changed in place.
        code_size: ``C``, the codeword's size.
    """
    d = layer.in_features - code_size
    if d < 1:
        raise ValueError(f"the layer reads {layer.in_features} features, not more than the code size {code_size}")
    with torch.no_grad():
        layer.weight[:, code_size:] *= math.sqrt(code_size / d)


def folding_decoder(codeword: torch.Tensor, grid: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor,
                    b2: torch.Tensor, v1: torch.Tensor, c1: torch.Tensor, v2: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
    r"""FoldingNet's decoder: fold the grid with the codeword, then fold the result again.

    .. math::  p^{(1)}_j = W_2\, \mathrm{ReLU}\big(W_1 [z, u_j] + b_1\big) + b_2, \qquad
               p^{(2)}_j = V_2\, \mathrm{ReLU}\big(V_1 [z, p^{(1)}_j] + c_1\big) + c_2

    with :math:`[z, u]` the concatenation along the feature axis, the codeword first.

    Args:
        codeword: ``(B, C)`` shape codes :math:`z`.
        grid: ``(M, 2)`` grid points :math:`u_j`.
        w1: ``(H, C + 2)``, b1: ``(H,)``, w2: ``(3, H)``, b2: ``(3,)``: the first fold.
        v1: ``(H, C + 3)``, c1: ``(H,)``, v2: ``(3, H)``, c2: ``(3,)``: the second fold.

    Returns:
        ``(B, M, 3)`` the twice-folded points :math:`p^{(2)}`.
    """
    if codeword.dim() != 2 or grid.dim() != 2 or grid.shape[1] != 2:
        raise ValueError(f"codeword must be (B, C) and grid (M, 2), got {tuple(codeword.shape)} and {tuple(grid.shape)}")
    B, M = codeword.shape[0], grid.shape[0]
    z = codeword[:, None, :].expand(B, M, codeword.shape[1])
    first = F.linear(F.relu(F.linear(torch.cat([z, grid.expand(B, M, 2)], dim=-1), w1, b1)), w2, b2)
    return F.linear(F.relu(F.linear(torch.cat([z, first], dim=-1), v1, c1)), v2, c2)


class FoldingNet(nn.Module):
    r"""Encoder (partial points or an image) -> codeword -> two folds of an ``m x m`` grid.

    .. math::  \hat S = \{ f_2([z, f_1([z, u_j])]) \}_{j=1}^{m^2}, \qquad z = E(\text{input})

    Args:
        condition: ``"points"`` (shape completion from a partial cloud) or ``"image"``.
        sizes: a :data:`SIZES` entry (default: the active profile's).
        in_channels: image channels (for ``"image"``).

    Shapes:
        ``(B, N, 3)`` or ``(B, C, H, W)`` ``-> (B, m^2, 3)``.
    """

    def __init__(self, condition: str = "points", sizes: dict | None = None, in_channels: int = 1):
        super().__init__()
        s = dict(sizes or runtime.pick(SIZES))
        if condition == "points":
            self.encoder = PointEncoder(s["latent"], s["encoder_widths"])
        elif condition == "image":
            self.encoder = ImageEncoder(in_channels, s["latent"], s["image_widths"])
        else:
            raise ValueError(f"condition must be 'points' or 'image', got {condition!r}")
        self.fold1 = nn.Sequential(nn.Linear(s["latent"] + 2, s["hidden"]), nn.ReLU(), nn.Linear(s["hidden"], 3))
        self.fold2 = nn.Sequential(nn.Linear(s["latent"] + 3, s["hidden"]), nn.ReLU(), nn.Linear(s["hidden"], 3))
        balance_fold_init(self.fold1[0], s["latent"])
        balance_fold_init(self.fold2[0], s["latent"])
        self.register_buffer("grid", square_grid(s["grid_size"]), persistent=False)
        self.condition = condition

    def decode(self, codeword: torch.Tensor, grid: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, C)`` codes (and optionally another ``(M, 2)`` grid) -> ``(B, M, 3)`` points."""
        grid = self.grid if grid is None else grid
        (w1, b1), (w2, b2) = [(m.weight, m.bias) for m in self.fold1 if isinstance(m, nn.Linear)]
        (v1, c1), (v2, c2) = [(m.weight, m.bias) for m in self.fold2 if isinstance(m, nn.Linear)]
        return folding_decoder(codeword, grid.to(codeword), w1, b1, w2, b2, v1, c1, v2, c2)

    def fold_once(self, codeword: torch.Tensor) -> torch.Tensor:
        """The intermediate result :math:`p^{(1)}` (after the first fold), ``(B, m^2, 3)``."""
        z = codeword[:, None, :].expand(-1, self.grid.shape[0], -1)
        return self.fold1(torch.cat([z, self.grid.to(codeword).expand(codeword.shape[0], -1, -1)], dim=-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encoder(x))

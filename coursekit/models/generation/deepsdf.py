r"""DeepSDF: an auto-decoder of signed distance functions (Park et al., CVPR 2019).

The slide's implicit field :math:`F(x) = f_\theta(z, x)` is an MLP on a shape code :math:`z`
and a query point :math:`x`. There is **no encoder**: every training shape :math:`i` owns a
code :math:`z_i` (an ``nn.Embedding`` row) learned jointly with the decoder weights
:math:`\theta` (the "auto-decoder"), minimising the clamped L1 loss with a Gaussian prior
on the codes:

.. math::  \mathcal{L}(\theta, \{z_i\}) = \sum_i \Big( \frac{1}{K} \sum_{k=1}^{K}
           \big| \operatorname{clamp}(f_\theta(z_i, x_k), \delta) - \operatorname{clamp}(s_k, \delta) \big|
           + \lambda \lVert z_i \rVert_2^2 \Big), \qquad \operatorname{clamp}(s, \delta) = \min(\delta, \max(-\delta, s))

(the paper's :math:`\frac{1}{\sigma^2}\lVert z\rVert^2` with :math:`\lambda = 1/\sigma^2` scaled
to the sample count; :math:`\delta = 0.1` in the paper for shapes in the unit sphere).

**Inference** (:func:`infer_codes`): a new shape's code is found by optimising :math:`z`
alone, the decoder frozen, against its observed SDF samples (all of them, or only those a
partial scan sees: shape completion):

.. math::  \hat z = \arg\min_z \frac{1}{K} \sum_k \big| \operatorname{clamp}(f_\theta(z, x_k), \delta)
           - \operatorname{clamp}(s_k, \delta)\big| + \lambda \lVert z \rVert_2^2

Kept from the paper: clamped L1, code prior, skip connection re-injecting the input
halfway, ``tanh`` output, codes initialised :math:`\mathcal{N}(0, 0.01^2)`. Added: the output layer
starts near zero (weights x 0.01, bias 0), so that every prediction starts inside the clamp band
(a prediction clamped at :math:`\pm\delta` gets no gradient; a random start beyond the band can
stall training at a constant field). Changed: no
weight normalisation, widths and layer counts from the profile tables (paper: 8 layers of
512, latent 256, dropout 0.2). Kept in
:func:`~coursekit.models.generation.implicit_table.train_deepsdf`: Adam with its own step size for the codes
(each code is updated once per epoch only, so too few epochs leave the codes near their start and the
decoder at the median field of all training shapes, with no zero crossing: empty meshes).

Shapes: points ``(B, N, 3)``, codes ``(B, C)``, SDF values ``(B, N)``.
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from ...geometry.validate import check_points

__all__ = ["DeepSDFDecoder", "AutoDecoder", "clamped_l1", "deepsdf_loss", "infer_codes", "interpolate_codes"]


class DeepSDFDecoder(nn.Module):
    r"""The DeepSDF MLP :math:`f_\theta(z, x)`: ``[z, x]`` through ReLU layers, re-injected halfway, ``tanh`` out.

    .. math::  h_0 = [z, x], \quad h_{l+1} = \mathrm{ReLU}(W_l h_l + b_l)\ \ (h_{L/2} \leftarrow [h_{L/2}, z, x]),
               \quad f = \tanh(w^\top h_L + b)

    Args:
        latent_dim: ``C``, the code size.
        hidden: width of every hidden layer.
        n_layers: number of hidden layers (the skip joins before layer ``n_layers // 2``).
        dropout: dropout after each hidden layer.

    Shapes:
        ``points (B, N, 3)``, ``codes (B, C) -> (B, N)``.
    """

    def __init__(self, latent_dim: int, hidden: int = 256, n_layers: int = 6, dropout: float = 0.0):
        super().__init__()
        if latent_dim < 1 or hidden < 1 or n_layers < 2:
            raise ValueError(f"need latent_dim >= 1, hidden >= 1, n_layers >= 2; got {latent_dim}, {hidden}, {n_layers}")
        self.latent_dim = latent_dim
        self.skip = n_layers // 2
        d_in = latent_dim + 3
        self.layers = nn.ModuleList()
        for i in range(n_layers):
            c_in = d_in if i == 0 else hidden + (d_in if i == self.skip else 0)
            self.layers.append(nn.Linear(c_in, hidden))
        self.out = nn.Linear(hidden, 1)
        with torch.no_grad():  # start inside the clamp band: a clamped prediction has no gradient
            self.out.weight.mul_(0.01)
            self.out.bias.zero_()
        self.dropout = nn.Dropout(dropout)

    def forward(self, points: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        check_points(points)
        if codes.dim() != 2 or codes.shape != (points.shape[0], self.latent_dim):
            raise ValueError(f"codes must have shape ({points.shape[0]}, {self.latent_dim}), got {tuple(codes.shape)}")
        x = torch.cat([codes[:, None].expand(-1, points.shape[1], -1), points], -1)
        h = x
        for i, layer in enumerate(self.layers):
            if i == self.skip:
                h = torch.cat([h, x], -1)
            h = self.dropout(torch.relu(layer(h)))
        return torch.tanh(self.out(h)).squeeze(-1)


class AutoDecoder(nn.Module):
    """A :class:`DeepSDFDecoder` plus one learned code per training shape.

    Args:
        n_shapes: number of training shapes ``S``.
        decoder: the shared :class:`DeepSDFDecoder`.
        init_std: standard deviation of the initial codes (paper 0.01).
        generator: draws the initial codes.

    Shapes:
        ``index (B,)`` int64, ``points (B, N, 3) -> (sdf (B, N), codes (B, C))``; the codes come
        back so that :func:`deepsdf_loss` can add their prior.
    """

    def __init__(self, n_shapes: int, decoder: DeepSDFDecoder, init_std: float = 0.01,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.decoder = decoder
        self.codes = nn.Embedding(n_shapes, decoder.latent_dim)
        with torch.no_grad():
            self.codes.weight.copy_(init_std * torch.randn(n_shapes, decoder.latent_dim, generator=generator))

    def forward(self, index: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes = self.codes(index)
        return self.decoder(points, codes), codes


def clamped_l1(pred: torch.Tensor, sdf: torch.Tensor, delta: float = 0.1) -> torch.Tensor:
    r"""Mean clamped L1 distance between predicted and true SDF values.

    .. math::  \frac{1}{BN} \sum \big|\operatorname{clamp}(f, \delta) - \operatorname{clamp}(s, \delta)\big|

    Args:
        pred, sdf: ``(B, N)``.
        delta: the clamp :math:`\delta` (only the band :math:`|s| < \delta` near the surface matters).

    Returns:
        A scalar.
    """
    if pred.shape != sdf.shape:
        raise ValueError(f"pred and sdf must have the same shape, got {tuple(pred.shape)} and {tuple(sdf.shape)}")
    return (pred.clamp(-delta, delta) - sdf.clamp(-delta, delta)).abs().mean()


def deepsdf_loss(output: tuple[torch.Tensor, torch.Tensor], sdf: torch.Tensor, delta: float = 0.1,
                 code_reg: float = 1e-4) -> torch.Tensor:
    r"""The auto-decoder loss: :func:`clamped_l1` plus the code prior :math:`\lambda\, \overline{\lVert z\rVert^2}`.

    Args:
        output: ``(pred (B, N), codes (B, C))`` as :class:`AutoDecoder` returns.
        sdf: ``(B, N)`` true signed distances.
        delta: clamp.
        code_reg: :math:`\lambda`.

    Returns:
        A scalar (usable as ``loss_fn`` of :func:`coursekit.train.fit`).
    """
    pred, codes = output
    return clamped_l1(pred, sdf, delta) + code_reg * codes.pow(2).sum(-1).mean()


def infer_codes(decoder: DeepSDFDecoder, points: torch.Tensor, sdf: torch.Tensor, steps: int = 300, lr: float = 5e-3,
                delta: float = 0.1, code_reg: float = 1e-4, init_std: float = 0.01,
                generator: torch.Generator | None = None, progress: bool = False) -> tuple[torch.Tensor, list[float]]:
    r"""Codes of new shapes by optimising :math:`z` against observed SDF samples, the decoder frozen.

    .. math::  \hat z_b = \arg\min_z \operatorname{mean}_k \big|\operatorname{clamp}(f_\theta(z, x_{bk}), \delta)
               - \operatorname{clamp}(s_{bk}, \delta)\big| + \lambda \lVert z \rVert^2

    The ``B`` problems are independent; they are solved together (one Adam over a ``(B, C)`` tensor).

    Args:
        decoder: a trained :class:`DeepSDFDecoder` (left unchanged, put in eval mode).
        points: ``(B, K, 3)`` observed sample positions; sdf: ``(B, K)`` their signed distances.
        steps, lr: Adam iterations and step size.
        delta, code_reg: as in training.
        init_std: standard deviation of the starting codes.
        generator: draws the starting codes.
        progress: show a ``tqdm.auto`` bar.

    Returns:
        ``codes (B, C)`` (detached) and the loss of every step (a list of ``steps`` floats).
    """
    check_points(points)
    if sdf.shape != points.shape[:2]:
        raise ValueError(f"sdf must have shape {tuple(points.shape[:2])}, got {tuple(sdf.shape)}")
    decoder.eval()
    device = next(decoder.parameters()).device
    points, sdf = points.to(device), sdf.to(device)
    z = (init_std * torch.randn(points.shape[0], decoder.latent_dim, generator=generator)).to(device).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    losses = []
    for p in decoder.parameters():
        p.requires_grad_(False)
    try:
        for _ in tqdm(range(steps), desc="infer codes", disable=not progress, leave=False):
            opt.zero_grad()
            loss = clamped_l1(decoder(points, z), sdf, delta) * points.shape[0] + code_reg * z.pow(2).sum()
            loss.backward()
            opt.step()
            losses.append(loss.item() / points.shape[0])
    finally:
        for p in decoder.parameters():
            p.requires_grad_(True)
    return z.detach(), losses


def interpolate_codes(z0: torch.Tensor, z1: torch.Tensor, steps: int = 5) -> torch.Tensor:
    r"""Codes on the segment between two codes (the slide's latent interpolation).

    .. math::  z(t) = (1 - t)\, z_0 + t\, z_1, \qquad t \in \{0, \tfrac{1}{n-1}, \dots, 1\}

    Args:
        z0, z1: ``(C,)`` codes.
        steps: ``n >= 2`` codes, ends included.

    Returns:
        ``(n, C)``; decode row ``i`` with ``decoder(points, codes[i:i+1])``.
    """
    if z0.shape != z1.shape or z0.dim() != 1:
        raise ValueError(f"z0 and z1 must be (C,) codes of the same size, got {tuple(z0.shape)} and {tuple(z1.shape)}")
    if steps < 2:
        raise ValueError(f"steps must be at least 2, got {steps}")
    t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device)[:, None]
    return (1 - t) * z0 + t * z1

r"""R-MVSNet (Yao et al., CVPR 2019): the cost volume regularised slice by slice along depth with conv GRUs.

The slide's "Idea 1": MVSNet's 3D U-Net holds the whole ``C x D x h x w`` volume (and its
activations) at once, so memory grows linearly with the number of depth planes ``D``.
R-MVSNet builds the variance cost map of **one plane at a time**,

.. math::  C(d) = \frac{1}{N}\sum_i V_i(d)^2 - \bar V(d)^2 \qquad (\text{one } C \times h \times w \text{ slice})

and regularises the sequence :math:`C(d_0), C(d_1), \dots` with stacked convolutional GRUs
(:class:`ConvGRUCell`), whose hidden states carry context along the depth direction:

.. math::  r = \sigma(W_r * [C(d), h]), \quad z = \sigma(W_z * [C(d), h]), \quad
           \tilde h = \tanh(W_h * [C(d), r \odot h]), \quad h' = (1 - z) \odot h + z \odot \tilde h

Each step emits one regularised cost map; only those ``1 x h x w`` maps are kept, so peak
memory at inference is independent of ``D`` up to that thin ``D x h x w`` volume
(measured against MVSNet by :func:`memory_vs_depth`). The paper trains with a
cross-entropy loss on the probability volume :math:`P = \operatorname{softmax}_d(-C_{reg})`
(:func:`depth_cross_entropy`) and reads the depth by **winner-take-all** (argmax). A
winner-take-all depth lies on the planes (a staircase); with ``subplane`` the argmax is moved between
the planes by the classical sub-pixel step of stereo, the vertex of the parabola through the
log-probabilities of the winner and its two neighbours (:func:`subplane_argmax`), and the paper
removes the steps with its variational refinement of the depth map (Sec. 4.2,
:class:`coursekit.models.mvs.variational.VariationalRefinement`, which wraps this model in the table).

Same model interface as :class:`coursekit.models.mvs.mvsnet.MVSNet`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...geometry.homography import homography_warp, scale_intrinsics
from .cost_volume import expectation, probability_confidence
from .memory import peak_tensor_memory
from .mvsnet import FeatureNet, resize_depth

__all__ = ["ConvGRUCell", "RMVSNet", "subplane_argmax", "depth_cross_entropy", "memory_vs_depth"]


class ConvGRUCell(nn.Module):
    r"""A convolutional GRU cell (module docstring's update).

    Shapes: input ``(B, C_in, h, w)``, hidden ``(B, C_h, h, w)`` -> hidden ``(B, C_h, h, w)``.
    """

    def __init__(self, in_channels: int, hidden: int, kernel: int = 3):
        super().__init__()
        self.gates = nn.Conv2d(in_channels + hidden, 2 * hidden, kernel, padding=kernel // 2)
        self.candidate = nn.Conv2d(in_channels + hidden, hidden, kernel, padding=kernel // 2)
        self.hidden = hidden

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        r, z = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, 1)
        candidate = torch.tanh(self.candidate(torch.cat([x, r * h], 1)))
        return (1 - z) * h + z * candidate


def subplane_argmax(log_prob: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    r"""Winner-take-all moved between the planes: the vertex of the parabola through the argmax and its neighbours.

    With :math:`\ell_k = \log P_k` and :math:`k^* = \arg\max_k \ell_k`,

    .. math::  \delta = \frac{\ell_{k^*-1} - \ell_{k^*+1}}{2\,(\ell_{k^*-1} - 2\ell_{k^*} + \ell_{k^*+1})}
               \in [-\tfrac12, \tfrac12], \qquad
               \hat d = d_{k^*} + \delta\, \frac{d_{k^*+1} - d_{k^*-1}}{2}

    (exact for a Gaussian-shaped peak; :math:`\delta = 0` at the first and last plane and where
    the three values are flat). No gradient (like the argmax).

    Args:
        log_prob: ``(B, D, h, w)`` log-probabilities (or negated costs: any per-pixel offset cancels).
        values: ``(B, D)`` increasing, uniformly spaced plane depths.

    Returns:
        ``(B, h, w)`` depths within half a plane of the winner-take-all depth.
    """
    B, D = log_prob.shape[:2]
    k = log_prob.argmax(1, keepdim=True)
    left, right = (k - 1).clamp(0, D - 1), (k + 1).clamp(0, D - 1)
    l0, lm, lp = (log_prob.gather(1, i)[:, 0] for i in (k, left, right))
    curvature = lm - 2 * l0 + lp
    inner = (k[:, 0] > 0) & (k[:, 0] < D - 1) & (curvature < 0)
    delta = torch.where(inner, (lm - lp) / (2 * curvature).clamp(max=-1e-12), torch.zeros_like(l0)).clamp(-0.5, 0.5)
    vals = values[..., None, None].expand(B, D, *log_prob.shape[-2:])
    step = (vals.gather(1, right) - vals.gather(1, left))[:, 0] / (right - left)[:, 0].clamp_min(1)
    return vals.gather(1, k)[:, 0] + delta * step


class RMVSNet(nn.Module):
    """R-MVSNet: shared features, per-plane variance cost, three stacked conv GRUs, per-plane cost.

    Args:
        channels: feature channels ``C`` (the paper: 32).
        stride: feature down-sampling (the paper: 4).
        hidden: the GRUs' hidden channels (the paper: 16, 4, 2).
        subplane: read the depth by :func:`subplane_argmax` instead of the plain winner-take-all.

    ``forward(images, K, R, t, depth_values)`` -> dict ``depth`` ``(B, h, w)`` (winner-take-all, or its
    ``subplane`` refinement, in eval mode; soft argmin in training mode, which the loss does not use),
    ``confidence`` ``(B, h, w)``, ``prob`` ``(B, D, h, w)`` and ``depth_values`` ``(B, D)``.
    """

    def __init__(self, channels: int = 16, stride: int = 2, hidden: tuple[int, int, int] = (16, 4, 2),
                 subplane: bool = False):
        super().__init__()
        self.subplane = subplane
        self.features = FeatureNet(channels, stride)
        ins = (channels,) + hidden[:-1]
        self.cells = nn.ModuleList(ConvGRUCell(i, h) for i, h in zip(ins, hidden))
        self.out = nn.Conv2d(hidden[-1], 1, 3, padding=1)
        self.stride = stride

    def forward(self, images, K, R, t, depth_values) -> dict:
        B, V, _, H, W = images.shape
        if depth_values.dim() == 1:
            depth_values = depth_values.unsqueeze(0).expand(B, -1)
        feats = self.features.per_view(images)
        Ks = scale_intrinsics(K.reshape(-1, 3, 3), 1.0 / self.stride).reshape(B, V, 3, 3)
        h, w = feats.shape[-2:]
        states = [feats.new_zeros(B, c.hidden, h, w) for c in self.cells]
        costs = []
        for d in range(depth_values.shape[1]):
            plane = depth_values[:, d:d + 1]
            total, squares = feats[:, 0], feats[:, 0] ** 2
            for i in range(1, V):
                warped = homography_warp(feats[:, i], Ks[:, 0], R[:, 0], t[:, 0], Ks[:, i], R[:, i], t[:, i], plane)[:, :, 0]
                total, squares = total + warped, squares + warped ** 2
            x = squares / V - (total / V) ** 2
            for k, cell in enumerate(self.cells):
                states[k] = cell(x, states[k])
                x = states[k]
            costs.append(self.out(x))
        log_prob = F.log_softmax(-torch.cat(costs, 1), dim=1)
        prob = log_prob.exp()
        if self.training:
            depth = expectation(prob, depth_values)
        elif self.subplane:
            depth = subplane_argmax(log_prob.detach(), depth_values)
        else:
            depth = depth_values.gather(1, prob.argmax(1).flatten(1)).reshape(B, h, w)
        return {"depth": depth, "prob": prob, "depth_values": depth_values,
                "confidence": probability_confidence(prob, depth_values, depth.detach())}


def depth_cross_entropy(output: dict, depth_gt: torch.Tensor) -> torch.Tensor:
    r"""R-MVSNet's loss: cross entropy of the probability volume against the GT's nearest plane.

    .. math::  L = -\frac{1}{|P|} \sum_{p \in P} \log P_{k^*(p)}(p), \qquad k^*(p) = \arg\min_k |d_k - d(p)|

    Args:
        output: the model's dict (``prob (B, D, h, w)``, ``depth_values (B, D)``).
        depth_gt: ``(B, H, W)`` ground truth, ``0`` = invalid (resized to ``(h, w)``).
    """
    prob, values = output["prob"], output["depth_values"]
    gt = resize_depth(depth_gt, prob.shape[-2:])
    target = (gt.unsqueeze(1) - values[..., None, None]).abs().argmin(1)
    nll = -torch.log(prob.clamp_min(1e-8)).gather(1, target.unsqueeze(1))[:, 0]
    valid = (gt > 0) & (gt >= values[:, 0, None, None]) & (gt <= values[:, -1, None, None])
    return (nll * valid).sum() / valid.sum().clamp_min(1)


def memory_vs_depth(models: dict, depth_counts, size: tuple[int, int] = (64, 80), n_views: int = 3,
                    train: bool = False) -> list[dict]:
    """Peak tensor memory (:func:`~coursekit.models.mvs.memory.peak_tensor_memory`) of each model against ``D``.

    Random images and a simple camera rig of ``n_views`` views; inference under ``no_grad``
    (``train=False``) or a forward + backward pass (``train=True``).

    Args:
        models: ``name -> model`` with the MVS interface.
        depth_counts: the numbers of planes ``D`` (multiples of 4 for MVSNet's U-Net).
        size: ``(H, W)`` image size.
        n_views: views per sample.
        train: measure a training step instead of inference.

    Returns:
        one dict per ``D``: ``D`` and ``<name>_MiB`` per model.
    """
    from ...geometry.camera import fov_intrinsics, look_at

    g = torch.Generator().manual_seed(0)
    H, W = size
    images = torch.rand(1, n_views, 3, H, W, generator=g)
    eye = torch.stack([torch.tensor([0.1 * i, 0.0, -1.5]) for i in range(n_views)])
    R, t = look_at(eye, torch.zeros(3))
    K = fov_intrinsics(45.0, size).expand(n_views, 3, 3)
    rows = []
    for D in depth_counts:
        values = torch.linspace(1.0, 2.0, D).unsqueeze(0)
        row = {"D": D}
        for name, model in models.items():
            model.train(train)

            def step(model=model):
                with torch.set_grad_enabled(train):
                    out = model(images, K[None], R[None], t[None], values)
                    if train:
                        out["depth"].sum().backward()
                return None

            _, peak = peak_tensor_memory(step)
            row[f"{name}_MiB"] = peak / 2 ** 20
        rows.append(row)
    return rows

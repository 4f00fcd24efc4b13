r"""3D-GAN: a volumetric generator and discriminator trained with the slide's GAN objective.

Wu, Zhang, Xue, Freeman, Tenenbaum, "Learning a Probabilistic Latent Space of Object Shapes via
3D Generative-Adversarial Modeling", NeurIPS 2016. The generator maps a Gaussian code to an
occupancy grid, the discriminator tells real grids from generated ones:

.. math::  L_{\text{3D-GAN}} = \log D(x) + \log\big(1 - D(G(z))\big), \qquad z \sim \mathcal N(0, I)

maximised by ``D`` and minimised by ``G``. As in the paper's code (and Goodfellow et al.'s
recommendation) ``G`` minimises the non-saturating :math:`-\log D(G(z))` instead of
:math:`\log(1 - D(G(z)))`; both have the same fixed point, but only the slide's minimax term loses
its gradient when ``D`` rejects the samples confidently (``g_objective="minimax"`` trains with it;
the training history records :math:`\lVert \nabla_{\theta_G} L_G \rVert` to show it).

Kept from the paper: the all-convolutional architecture (``G``: a 4^3 projection of ``z`` by a
transposed convolution, then transposed convolutions of kernel 4 and stride 2 with BatchNorm +
ReLU, sigmoid output; ``D``: its mirror with LeakyReLU 0.2), Adam with ``beta1 = 0.5``, and the
trick that keeps a strong discriminator in check: **D is updated only if its accuracy on the last
batch was at most 80%**. At ``gpu`` size: the paper's 64^3 grid, ``z`` of 200, widths 512-256-128-64
and its learning rates (G 0.0025, D 1e-5). Scaled down in ``fast``/``cpu``: grid 16^3/32^3, ``z``
and every width (table :data:`SIZES`), learning rates (the small nets train with G 2e-3, D 2e-4),
batch size and iterations.

Grids are ``(B, 1, D, H, W)`` occupancies of the cube ``[-1, 1]^3`` (the unit ball of the world's
normalised shapes), the layout of :mod:`coursekit.geometry.voxels`.
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from ... import runtime
from ...geometry.voxels import voxel_centers, voxelize_mesh_solid, voxelize_mesh_surface

SIZES = {
    "fast": dict(resolution=16, z_dim=32, channels=(32, 16), batch_size=16, iterations=30, lr_g=2e-3, lr_d=2e-4),
    "cpu": dict(resolution=32, z_dim=64, channels=(64, 32, 16), batch_size=32, iterations=600, lr_g=2e-3, lr_d=2e-4),
    "gpu": dict(resolution=64, z_dim=200, channels=(512, 256, 128, 64), batch_size=100, iterations=20000,
                lr_g=2.5e-3, lr_d=1e-5),
}
"""Sizes per profile; ``channels`` are the generator's widths from the 4^3 stage up (the
discriminator uses them reversed); ``resolution = 4 * 2**len(channels)``."""

D_ACCURACY_LIMIT = 0.8
"""The paper's rule: skip the discriminator update when its last-batch accuracy exceeds this."""


def _check_sizes(resolution: int, channels) -> None:
    if resolution != 4 * 2 ** len(channels):
        raise ValueError(f"resolution must be 4 * 2**len(channels) = {4 * 2 ** len(channels)}, got {resolution}")


class VoxelGenerator(nn.Module):
    r"""3D-GAN generator: code -> occupancy probabilities.

    .. math::  G(z) = \sigma\big(\text{ConvT}_L \circ \cdots \circ \phi(\text{ConvT}_0(z))\big), \qquad
               \phi = \text{ReLU} \circ \text{BN}

    Args:
        z_dim: code size.
        channels: widths of the 4^3, 8^3, ... stages (``len(channels)`` doublings follow the 4^3 stage).

    Shapes:
        ``z (B, z_dim) -> (B, 1, R, R, R)`` in ``(0, 1)``, ``R = 4 * 2**len(channels)``.
    """

    def __init__(self, z_dim: int, channels):
        super().__init__()
        self.z_dim = int(z_dim)
        chans = list(channels)
        layers: list[nn.Module] = [nn.ConvTranspose3d(self.z_dim, chans[0], 4, bias=False), nn.BatchNorm3d(chans[0]), nn.ReLU()]
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [nn.ConvTranspose3d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm3d(c_out), nn.ReLU()]
        layers += [nn.ConvTranspose3d(chans[-1], 1, 4, 2, 1)]
        self.net = nn.Sequential(*layers)
        self.resolution = 4 * 2 ** len(chans)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, z_dim) -> (B, 1, R, R, R)`` pre-sigmoid occupancy logits."""
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (B, {self.z_dim}), got {tuple(z.shape)}")
        return self.net(z[:, :, None, None, None])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(z))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` grids ``(n, 1, R, R, R)`` of occupancy probabilities from :math:`z \\sim N(0, I)` (no gradient)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.z_dim, generator=generator).to(device)
        with torch.no_grad():
            was = self.training
            self.eval()
            out = self(z)
            self.train(was)
        return out


class VoxelDiscriminator(nn.Module):
    r"""3D-GAN discriminator: occupancy grid -> one logit :math:`\operatorname{logit} D(x)`.

    .. math::  D(x) = \sigma\big(\text{Conv}_{4^3 \to 1} \circ \psi(\text{Conv}_L(\cdots \psi(\text{Conv}_1 x)))\big),
               \qquad \psi = \text{LeakyReLU}_{0.2} \circ \text{BN}

    (no BatchNorm after the first layer, as DCGAN).

    Args:
        channels: the generator's widths; the discriminator runs them in reverse.

    Shapes:
        ``x (B, 1, R, R, R) -> (B,)`` logits.
    """

    def __init__(self, channels):
        super().__init__()
        chans = list(channels)[::-1]
        layers: list[nn.Module] = [nn.Conv3d(1, chans[0], 4, 2, 1), nn.LeakyReLU(0.2)]
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv3d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm3d(c_out), nn.LeakyReLU(0.2)]
        layers += [nn.Conv3d(chans[-1], 1, 4)]
        self.net = nn.Sequential(*layers)
        self.resolution = 4 * 2 ** len(chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.resolution
        if x.dim() != 5 or tuple(x.shape[1:]) != (1, r, r, r):
            raise ValueError(f"x must have shape (B, 1, {r}, {r}, {r}), got {tuple(x.shape)}")
        return self.net(x).reshape(-1)


def gan_objective(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    r"""The slide's value :math:`\mathbb E[\log D(x)] + \mathbb E[\log(1 - D(G(z)))]` from logits.

    .. math::  V = \tfrac{1}{B}\sum_i \log \sigma(a_i) + \tfrac{1}{B'}\sum_j \log\big(1 - \sigma(b_j)\big)

    computed as ``logsigmoid(a)`` and ``logsigmoid(-b)`` (stable for large logits).

    Args:
        real_logits: ``(B,)`` :math:`\operatorname{logit} D(x)`; fake_logits: ``(B',)`` :math:`\operatorname{logit} D(G(z))`.

    Returns:
        scalar, ``<= 0``; 0 for a perfect discriminator, :math:`2 \log \tfrac12` at ``D = 1/2``.
    """
    return nn.functional.logsigmoid(real_logits).mean() + nn.functional.logsigmoid(-fake_logits).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    r"""What ``D`` minimises: :math:`-V = -\mathbb E\log D(x) - \mathbb E\log(1 - D(G(z)))` (``(B,)``, ``(B',)`` -> scalar)."""
    return -gan_objective(real_logits, fake_logits)


def generator_loss(fake_logits: torch.Tensor, objective: str = "non_saturating") -> torch.Tensor:
    r"""What ``G`` minimises (``(B,)`` logits -> scalar): the non-saturating form (default) or the slide's minimax term.

    .. math::  L_G^{\text{ns}} = -\mathbb E \log D(G(z)), \qquad L_G^{\text{minimax}} = \mathbb E \log\big(1 - D(G(z))\big)

    With :math:`b = \operatorname{logit} D(G(z))`, :math:`\partial L_G^{\text{minimax}} / \partial b = -\sigma(b)`
    vanishes when ``D`` rejects the samples confidently (:math:`b \to -\infty`), while
    :math:`\partial L_G^{\text{ns}} / \partial b = -(1 - \sigma(b)) \to -1` does not (Goodfellow et al. 2014).

    Args:
        fake_logits: ``(B,)`` :math:`\operatorname{logit} D(G(z))`.
        objective: ``"non_saturating"`` or ``"minimax"``.
    """
    if objective == "non_saturating":
        return -nn.functional.logsigmoid(fake_logits).mean()
    if objective == "minimax":
        return nn.functional.logsigmoid(-fake_logits).mean()
    raise ValueError(f"objective must be 'non_saturating' or 'minimax', got {objective!r}")


def gradient_norm(parameters) -> float:
    r"""Euclidean norm of the gradients currently stored in ``parameters`` (all of them as one vector).

    .. math::  \lVert \nabla_\theta L \rVert_2 = \Big(\sum_{p \in \theta} \sum_i (\partial L / \partial p_i)^2\Big)^{1/2}

    Parameters without a gradient count as zero.

    Args:
        parameters: iterable of tensors (e.g. ``G.parameters()`` right after ``loss.backward()``).

    Returns:
        the norm as a float.
    """
    total = 0.0
    for p in parameters:
        if p.grad is not None:
            total += float(p.grad.detach().double().pow(2).sum())
    return total ** 0.5


def discriminator_accuracy(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> float:
    """Fraction of the batch ``D`` classifies right (real logit > 0, fake logit < 0)."""
    right = (real_logits > 0).sum() + (fake_logits < 0).sum()
    return float(right) / (len(real_logits) + len(fake_logits))


def shape_voxels(shapes, resolution: int) -> torch.Tensor:
    r"""Occupancy grids of world shapes: the solid (cells whose centre is inside) or'ed with the
    surface (cells the surface crosses), so thin parts (legs, boards) survive low resolutions.

    .. math::  O = O_{\text{solid}} \lor O_{\text{surface}}

    Args:
        shapes: sequence of :class:`~coursekit.data.world.Shape` (normalised into the unit ball).
        resolution: cells per axis over ``[-1, 1]^3``.

    Returns:
        ``(S, 1, R, R, R)`` float32 in ``{0, 1}``.
    """
    grids = [(voxelize_mesh_solid(s.vertices, s.faces, resolution).bool()
              | voxelize_mesh_surface(s.vertices, s.faces, resolution).bool()) for s in shapes]
    return torch.cat(grids).float()


def voxels_to_points(grids: torch.Tensor, n_points: int, generator: torch.Generator | None = None,
                     threshold: float = 0.5) -> torch.Tensor:
    r"""Point clouds from occupancy grids: points uniform in random *surface* cells.

    A surface cell is occupied and has an empty 6-neighbour (outside the grid counts as empty).
    ``n_points`` cells are drawn with replacement and a point is placed uniformly inside each:

    .. math::  p = c_k + h\,u, \quad u \sim U[-\tfrac12, \tfrac12]^3, \qquad h = 2 / R

    A grid without occupied cells gives ``n_points`` copies of the origin (it scores as badly as it should).

    Args:
        grids: ``(B, 1, R, R, R)`` occupancies or probabilities over ``[-1, 1]^3``.
        n_points: points per cloud.
        generator: random source.
        threshold: occupancy threshold.

    Returns:
        ``(B, n_points, 3)`` float32 ``(x, y, z)`` clouds.
    """
    if grids.dim() != 5 or grids.shape[1] != 1:
        raise ValueError(f"grids must have shape (B, 1, D, H, W), got {tuple(grids.shape)}")
    occ = grids.detach().cpu() > threshold
    padded = nn.functional.pad(occ.float(), (1, 1, 1, 1, 1, 1))
    full6 = padded.clone()  # min over the cell and its 6 neighbours (the padding is empty)
    for dim in (2, 3, 4):
        full6 = torch.minimum(full6, torch.minimum(padded.roll(1, dim), padded.roll(-1, dim)))
    surface = occ & (full6[:, :, 1:-1, 1:-1, 1:-1] < 0.5)
    res = grids.shape[-1]
    centres = voxel_centers(res).reshape(-1, 3)
    cell = 2.0 / res
    out = []
    for s in surface.reshape(len(grids), -1):
        idx = s.nonzero().reshape(-1)
        if len(idx) == 0:
            out.append(torch.zeros(n_points, 3))
            continue
        pick = idx[torch.randint(len(idx), (n_points,), generator=generator)]
        jitter = (torch.rand(n_points, 3, generator=generator) - 0.5) * cell
        out.append(centres[pick] + jitter)
    return torch.stack(out)


def train_voxel_gan(voxels: torch.Tensor, *, sizes: dict | None = None, generator: torch.Generator | None = None,
                    d_lr_scale: float = 1.0, d_steps: int = 1, throttle: bool = True,
                    g_objective: str = "non_saturating", progress: bool = True):
    r"""Train a 3D-GAN on occupancy grids (alternating D and G steps on the slide's objective).

    .. math::  \max_D\ \mathbb E\log D(x) + \mathbb E\log(1 - D(G(z))), \qquad \min_G\ L_G

    (:math:`L_G` from :func:`generator_loss`). One iteration: ``d_steps`` discriminator steps, each on
    a fresh real batch and fresh codes (with the paper's throttle, a step is skipped while D's accuracy on its batch is above 80%), then one
    generator step on the codes of the last D step. The generator's gradient norm
    :math:`\lVert \nabla_{\theta_G} L_G \rVert` is recorded before each G step: with the minimax
    objective it vanishes when an unthrottled discriminator saturates.

    Args:
        voxels: ``(S, 1, R, R, R)`` training grids (:func:`shape_voxels`), ``R = sizes["resolution"]``.
        sizes: a :data:`SIZES` entry (default: the active profile's).
        generator: random source of batches and codes.
        d_lr_scale: multiplies D's learning rate (the "strong D" ablation uses 5).
        d_steps: discriminator steps per generator step (the "D x5 steps" ablation uses 5).
        throttle: the paper's rule, update D only when its accuracy on the batch is <= 80%.
        g_objective: ``"non_saturating"`` (default, the paper's code) or ``"minimax"`` (the slide's
            :math:`\log(1 - D(G(z)))`), see :func:`generator_loss`.
        progress: tqdm bar.

    Returns:
        ``(G, D, history)``: :class:`VoxelGenerator`, :class:`VoxelDiscriminator` (both on the
        CPU) and ``history``, a dict of per-iteration lists ``d_loss``, ``d_acc`` (D's loss and
        accuracy on the last D batch, before its step), ``d_updated`` (how many of the
        ``d_steps`` D steps were taken), ``g_loss``, ``g_grad_norm`` (:func:`gradient_norm` of
        G's parameters after ``g_loss.backward()``) and ``fake_d`` (mean :math:`D(G(z))` of the
        G step).
    """
    sizes = dict(sizes or runtime.pick(SIZES))
    _check_sizes(sizes["resolution"], sizes["channels"])
    r = sizes["resolution"]
    if voxels.dim() != 5 or tuple(voxels.shape[1:]) != (1, r, r, r):
        raise ValueError(f"voxels must have shape (S, 1, {r}, {r}, {r}), got {tuple(voxels.shape)}")
    if int(d_steps) != d_steps or d_steps < 1:
        raise ValueError(f"d_steps must be a positive integer, got {d_steps}")
    generator_loss(torch.zeros(1), g_objective)  # validates the objective name before training
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator)))  # initial weights
    device = runtime.device()
    g_net = VoxelGenerator(sizes["z_dim"], sizes["channels"]).to(device)
    d_net = VoxelDiscriminator(sizes["channels"]).to(device)
    opt_g = torch.optim.Adam(g_net.parameters(), lr=sizes["lr_g"], betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d_net.parameters(), lr=sizes["lr_d"] * d_lr_scale, betas=(0.5, 0.999))
    history: dict[str, list] = {k: [] for k in ("d_loss", "d_acc", "d_updated", "g_loss", "g_grad_norm", "fake_d")}
    bs = min(sizes["batch_size"], len(voxels))
    for _ in tqdm(range(sizes["iterations"]), disable=not progress, desc="3D-GAN"):
        updated = 0
        for _step in range(int(d_steps)):
            real = voxels[torch.randint(len(voxels), (bs,), generator=generator)].to(device)
            z = torch.randn(bs, g_net.z_dim, generator=generator).to(device)
            fake = g_net(z)
            real_logits, fake_logits = d_net(real), d_net(fake.detach())
            d_loss = discriminator_loss(real_logits, fake_logits)
            acc = discriminator_accuracy(real_logits, fake_logits)
            if not throttle or acc <= D_ACCURACY_LIMIT:
                opt_d.zero_grad()
                d_loss.backward()
                opt_d.step()
                updated += 1
        fake_logits = d_net(fake)
        g_loss = generator_loss(fake_logits, g_objective)
        opt_g.zero_grad()
        g_loss.backward()
        history["g_grad_norm"].append(gradient_norm(g_net.parameters()))
        opt_g.step()
        for key, value in (("d_loss", float(d_loss.detach())), ("d_acc", acc), ("d_updated", updated),
                           ("g_loss", float(g_loss.detach())),
                           ("fake_d", float(torch.sigmoid(fake_logits.detach()).mean()))):
            history[key].append(value)
    return g_net.cpu(), d_net.cpu(), history

r"""Point cloud GANs: r-GAN (raw points) and l-GAN (latent space of a point autoencoder), WGAN-GP.

Achlioptas, Diamanti, Mitliagkas, Guibas, "Learning Representations and Generative Models for 3D
Point Clouds", ICML 2018 (code optas/latent_3d_points). The slide: "FC layer as generator,
PointNet as discriminator, WGAN".

* **r-GAN**: a fully connected generator outputs the ``N x 3`` coordinates of a cloud at once;
  the critic is PointNet's vanilla architecture (shared per-point MLP, max pool, FC head).
* **l-GAN**: first a point autoencoder (PointNet encoder with max pool, FC decoder, trained with
  Chamfer); then a small GAN of MLPs in its latent space; samples are decoded codes.

Both are trained here as WGAN-GP (Gulrajani et al., NeurIPS 2017), the objective the paper's
best latent model (l-WGAN) used:

.. math::  L_D = \mathbb E_{\tilde x \sim P_g} D(\tilde x) - \mathbb E_{x \sim P_r} D(x)
                 + \lambda\, \mathbb E_{\hat x}\big(\lVert \nabla_{\hat x} D(\hat x) \rVert_2 - 1\big)^2,
           \qquad L_G = -\mathbb E_{\tilde x \sim P_g} D(\tilde x)

with :math:`\hat x = \epsilon x + (1 - \epsilon)\tilde x`, :math:`\epsilon \sim U[0, 1]` per sample,
:math:`\lambda = 10`, ``n_critic = 5`` critic steps per generator step, Adam
(lr 1e-4, betas (0.5, 0.9)).

Kept from the paper: the architectures' kinds and, at ``gpu`` size, their widths (generator FC
64-128-512-1024-3N on ``z`` of 128; critic per-point 64-128-256-256-512, FC 128-64-1; AE encoder
64-128-128-256-128 with BatchNorm, decoder FC 256-256-3N; l-GAN generator FC 128 -> code,
critic FC 256-512-1) and 2048 points. Changed: the r-GAN of the paper was a plain GAN, here it
is a WGAN-GP as the issue asks; the critic has no BatchNorm (the gradient penalty is
per-sample, so batch statistics would couple the samples; Gulrajani et al. §4); the
autoencoder is trained with Chamfer (the paper's AE-CD, not its approximate-EMD AE). Scaled
down in ``fast``/``cpu``: points, widths and iterations (table :data:`SIZES`).
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from ... import runtime
from ...geometry.validate import check_points
from ...metrics.chamfer import chamfer_distance
from ...nn.mlp import SharedMLP

SIZES = {
    "fast": dict(n_points=128, z_dim=16, generator=(32, 64, 128), critic=(16, 32, 64), critic_fc=(32,),
                 encoder=(16, 32, 64), code_dim=32, decoder=(64, 128), latent_generator=(64,), latent_critic=(64, 64),
                 batch_size=16, iterations=20, n_critic=5, ae_epochs=3, latent_iterations=100),
    "cpu": dict(n_points=512, z_dim=64, generator=(64, 128, 256, 512), critic=(32, 64, 128), critic_fc=(64,),
                encoder=(32, 64, 128, 256), code_dim=64, decoder=(256, 256), latent_generator=(128,),
                latent_critic=(256, 256), batch_size=32, iterations=250, n_critic=5, ae_epochs=60,
                latent_iterations=2000),
    "gpu": dict(n_points=2048, z_dim=128, generator=(64, 128, 512, 1024), critic=(64, 128, 256, 256, 512),
                critic_fc=(128, 64), encoder=(64, 128, 128, 256), code_dim=128, decoder=(256, 256),
                latent_generator=(128,), latent_critic=(256, 512), batch_size=50, iterations=20000, n_critic=5,
                ae_epochs=500, latent_iterations=20000),
}
"""Sizes per profile (``gpu`` = the paper's widths and 2048 points)."""

GP_WEIGHT = 10.0
"""WGAN-GP's :math:`\\lambda` (Gulrajani et al. 2017)."""


def _mlp(channels, last_activation: bool = False, negative_slope: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
        layers.append(nn.Linear(c_in, c_out))
        if i < len(channels) - 2 or last_activation:
            layers.append(nn.LeakyReLU(negative_slope) if negative_slope else nn.ReLU())
    return nn.Sequential(*layers)


class _Sampler(nn.Module):
    """Mixin: draw ``z ~ N(0, I)`` and run ``forward`` without gradient in eval mode."""

    z_dim: int

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples from :math:`z \\sim N(0, I)` (no gradient)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.z_dim, generator=generator).to(device)
        was = self.training
        self.eval()
        with torch.no_grad():
            out = self(z)
        self.train(was)
        return out


class PointGenerator(_Sampler):
    r"""r-GAN generator: an MLP from the code to all ``N`` points at once.

    .. math::  G(z) = \operatorname{reshape}_{N \times 3}\big(W_L\, \phi(\cdots \phi(W_1 z))\big), \qquad \phi = \text{ReLU}

    Args:
        z_dim: code size; hidden: hidden widths; n_points: ``N``.

    Shapes:
        ``z (B, z_dim) -> (B, N, 3)``.
    """

    def __init__(self, z_dim: int, hidden, n_points: int):
        super().__init__()
        self.z_dim, self.n_points = int(z_dim), int(n_points)
        self.net = _mlp([self.z_dim, *hidden, 3 * self.n_points])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (B, {self.z_dim}), got {tuple(z.shape)}")
        return self.net(z).reshape(len(z), self.n_points, 3)


class PointCritic(nn.Module):
    r"""PointNet critic (vanilla PointNet: no T-Nets, no BatchNorm): one unbounded score per cloud.

    .. math::  D(X) = \gamma\big(\max_i h(x_i)\big), \qquad h, \gamma \text{ MLPs with LeakyReLU}_{0.2}

    Permutation invariant by the max pool.

    Args:
        widths: per-point MLP widths; fc: hidden widths of the head (its output is 1).

    Shapes:
        ``(B, N, 3) -> (B,)``.
    """

    def __init__(self, widths, fc):
        super().__init__()
        self.point_mlp = SharedMLP([3, *widths], norm=False, negative_slope=0.2)
        self.head = _mlp([widths[-1], *fc, 1], negative_slope=0.2)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        check_points(points)
        return self.head(self.point_mlp(points).amax(1)).reshape(-1)


class PointAutoencoder(nn.Module):
    r"""Point autoencoder of Achlioptas et al.: PointNet encoder (max pool) and FC decoder.

    .. math::  c = \max_i h(x_i), \qquad \hat X = \operatorname{reshape}_{N \times 3}(g(c))

    Args:
        n_points: ``N``; encoder: per-point widths (BatchNorm + ReLU); code_dim: latent size;
        decoder: hidden widths of the FC decoder.

    Shapes:
        ``encode: (B, N', 3) -> (B, code_dim)``; ``decode: (B, code_dim) -> (B, N, 3)``.
    """

    def __init__(self, n_points: int, encoder, code_dim: int, decoder):
        super().__init__()
        self.n_points, self.code_dim = int(n_points), int(code_dim)
        self.encoder = SharedMLP([3, *encoder, self.code_dim])
        self.decoder = _mlp([self.code_dim, *decoder, 3 * self.n_points])

    def encode(self, points: torch.Tensor) -> torch.Tensor:
        check_points(points)
        return self.encoder(points).amax(1)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return self.decoder(code).reshape(len(code), self.n_points, 3)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(points))


class LatentGAN(_Sampler):
    r"""l-GAN sampler: a latent generator followed by the (frozen) autoencoder's decoder.

    .. math::  X = g_{AE}\big(G_{lat}(z)\big)

    Shapes:
        ``z (B, z_dim) -> (B, N, 3)``.
    """

    def __init__(self, autoencoder: PointAutoencoder, latent_generator: nn.Module, z_dim: int):
        super().__init__()
        self.autoencoder, self.latent_generator, self.z_dim = autoencoder, latent_generator, int(z_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode(self.latent_generator(z))


def wasserstein_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    r"""The critic's WGAN loss without the penalty: :math:`\mathbb E D(\tilde x) - \mathbb E D(x)` (``(B,)``, ``(B',)`` -> scalar)."""
    return fake_scores.mean() - real_scores.mean()


def wasserstein_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    r"""The generator's WGAN loss :math:`-\mathbb E D(\tilde x)` (``(B,)`` -> scalar)."""
    return -fake_scores.mean()


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None, weight: float = GP_WEIGHT) -> torch.Tensor:
    r"""WGAN-GP's penalty on the critic's gradient norm at random interpolates.

    .. math::  \lambda\, \frac{1}{B}\sum_b \big(\lVert \nabla_{\hat x} D(\hat x_b) \rVert_2 - 1\big)^2,
               \qquad \hat x_b = \epsilon_b x_b + (1 - \epsilon_b)\, \tilde x_b,\ \epsilon_b \sim U[0, 1]

    The gradient norm is over all of a sample's entries (a cloud's ``N x 3`` coordinates);
    the critic must score each sample independently (no BatchNorm). ``create_graph=True`` so the
    penalty can be backpropagated into the critic.

    Args:
        critic: maps ``(B, *)`` to ``(B,)`` scores.
        real, fake: ``(B, *)`` samples of the same shape.
        generator: source of :math:`\epsilon`.
        weight: :math:`\lambda`.

    Returns:
        scalar penalty.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    eps = torch.rand(len(real), *([1] * (real.dim() - 1)), generator=generator).to(real)
    mixed = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    grad, = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return weight * ((grad.reshape(len(real), -1).norm(dim=1) - 1) ** 2).mean()


def train_wgan_gp(gen_net: _Sampler, critic: nn.Module, data: torch.Tensor, *, iterations: int, batch_size: int,
                  n_critic: int = 5, lr: float = 1e-4, critic_lr_scale: float = 1.0,
                  generator: torch.Generator | None = None, progress: bool = True, desc: str = "WGAN-GP") -> dict:
    r"""Alternate ``n_critic`` critic steps and one generator step of WGAN-GP on ``data``.

    .. math::  \min_D\ \mathbb E D(G(z)) - \mathbb E D(x) + \lambda\,\text{GP}, \qquad \min_G\ -\mathbb E D(G(z))

    Args:
        gen_net: generator with ``z_dim`` (modified in place); critic: ``(B, *) -> (B,)`` (in place).
        data: ``(S, *)`` real samples (clouds for r-GAN, codes for l-GAN).
        iterations: generator steps; batch_size, n_critic, lr: as above (Adam, betas (0.5, 0.9)).
        critic_lr_scale: multiplies the critic's learning rate (the "strong critic" ablation).
        generator: random source; progress: tqdm bar; desc: its label.

    Returns:
        dict of per-generator-step lists: ``critic_loss`` (with penalty), ``wasserstein``
        (the critic's estimate :math:`\mathbb E D(x) - \mathbb E D(G(z))`), ``gp``, ``g_loss``.
    """
    device = next(gen_net.parameters()).device
    opt_g = torch.optim.Adam(gen_net.parameters(), lr=lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(critic.parameters(), lr=lr * critic_lr_scale, betas=(0.5, 0.9))
    history: dict[str, list] = {"critic_loss": [], "wasserstein": [], "gp": [], "g_loss": []}
    bs = min(batch_size, len(data))
    for _ in tqdm(range(iterations), disable=not progress, desc=desc):
        for _ in range(n_critic):
            real = data[torch.randint(len(data), (bs,), generator=generator)].to(device)
            with torch.no_grad():
                fake = gen_net(torch.randn(bs, gen_net.z_dim, generator=generator).to(device))
            w_loss = wasserstein_critic_loss(critic(real), critic(fake))
            gp = gradient_penalty(critic, real, fake, generator)
            opt_d.zero_grad()
            (w_loss + gp).backward()
            opt_d.step()
        g_loss = wasserstein_generator_loss(critic(gen_net(torch.randn(bs, gen_net.z_dim, generator=generator).to(device))))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        for key, value in (("critic_loss", w_loss + gp), ("wasserstein", -w_loss), ("gp", gp), ("g_loss", g_loss)):
            history[key].append(float(value.detach()))
    return history


def _seed_weights(generator: torch.Generator) -> None:
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator)))


def train_r_gan(clouds: torch.Tensor, *, sizes: dict | None = None, generator: torch.Generator | None = None,
                critic_lr_scale: float = 1.0, progress: bool = True):
    """Train an r-GAN (FC generator, PointNet critic, WGAN-GP) on ``(S, N, 3)`` clouds.

    Args:
        clouds: ``(S, N, 3)`` training clouds, ``N = sizes["n_points"]``.
        sizes: a :data:`SIZES` entry (default: the active profile's).
        generator: random source (weights, batches, codes).
        critic_lr_scale: multiplies the critic's learning rate.
        progress: tqdm bar.

    Returns:
        ``(G, critic, history)``: :class:`PointGenerator` (``G.sample(n, gen) -> (n, N, 3)``),
        :class:`PointCritic`, and :func:`train_wgan_gp`'s history.
    """
    sizes = dict(sizes or runtime.pick(SIZES))
    check_points(clouds, "clouds")
    if clouds.shape[1] != sizes["n_points"]:
        raise ValueError(f"clouds must have {sizes['n_points']} points, got {clouds.shape[1]}")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    _seed_weights(generator)
    device = runtime.device()
    g_net = PointGenerator(sizes["z_dim"], sizes["generator"], sizes["n_points"]).to(device)
    critic = PointCritic(sizes["critic"], sizes["critic_fc"]).to(device)
    history = train_wgan_gp(g_net, critic, clouds, iterations=sizes["iterations"], batch_size=sizes["batch_size"],
                            n_critic=sizes["n_critic"], critic_lr_scale=critic_lr_scale, generator=generator,
                            progress=progress, desc="r-GAN")
    return g_net.cpu(), critic.cpu(), history


def train_point_autoencoder(clouds: torch.Tensor, *, sizes: dict | None = None, generator: torch.Generator | None = None,
                            progress: bool = True) -> tuple[PointAutoencoder, list[float]]:
    r"""Train the point autoencoder with Chamfer (PyTorch3D convention: sum of the two mean squared NN distances).

    .. math::  \min\ \tfrac1N \sum_{x} d^2(x, \hat X) + \tfrac1N \sum_{\hat x} d^2(\hat x, X)

    Adam lr 5e-4 (Achlioptas et al.).

    Args:
        clouds: ``(S, N, 3)``; sizes, generator, progress: as :func:`train_r_gan`.

    Returns:
        ``(autoencoder, losses)``: the model (CPU, eval mode) and the mean loss of each epoch.
    """
    sizes = dict(sizes or runtime.pick(SIZES))
    check_points(clouds, "clouds")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    _seed_weights(generator)
    device = runtime.device()
    ae = PointAutoencoder(sizes["n_points"], sizes["encoder"], sizes["code_dim"], sizes["decoder"]).to(device)
    opt = torch.optim.Adam(ae.parameters(), lr=5e-4)
    losses = []
    bs = min(sizes["batch_size"], len(clouds))
    for _ in tqdm(range(sizes["ae_epochs"]), disable=not progress, desc="point AE"):
        order, total = torch.randperm(len(clouds), generator=generator), 0.0
        for start in range(0, len(clouds) - bs + 1, bs):
            x = clouds[order[start:start + bs]].to(device)
            loss = chamfer_distance(ae(x), x, "pytorch3d", reduction="mean")
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * bs
        losses.append(total / (len(clouds) // bs * bs))
    return ae.cpu().eval(), losses


def train_l_gan(clouds: torch.Tensor, *, sizes: dict | None = None, generator: torch.Generator | None = None,
                autoencoder: PointAutoencoder | None = None, critic_lr_scale: float = 1.0, progress: bool = True):
    r"""Train an l-GAN: the autoencoder (unless given), then WGAN-GP on its codes.

    .. math::  c_s = E(X_s), \qquad \min_{G_{lat}} \max_{D_{lat}}\ \text{WGAN-GP}(\{c_s\}), \qquad X = g_{AE}(G_{lat}(z))

    Args:
        clouds: ``(S, N, 3)``; sizes, generator, critic_lr_scale, progress: as :func:`train_r_gan`.
        autoencoder: a trained :class:`PointAutoencoder` to reuse.

    Returns:
        ``(lgan, history)``: :class:`LatentGAN` (``lgan.sample(n, gen) -> (n, N, 3)``; its
        ``autoencoder`` attribute is the AE) and a dict: ``ae_loss`` (per epoch, empty when
        reused) plus :func:`train_wgan_gp`'s lists.
    """
    sizes = dict(sizes or runtime.pick(SIZES))
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    ae_losses: list[float] = []
    if autoencoder is None:
        autoencoder, ae_losses = train_point_autoencoder(clouds, sizes=sizes, generator=generator, progress=progress)
    autoencoder = autoencoder.eval()
    with torch.no_grad():
        codes = torch.cat([autoencoder.encode(c) for c in clouds.split(64)])
    _seed_weights(generator)
    latent_g = _mlp([sizes["z_dim"], *sizes["latent_generator"], autoencoder.code_dim])
    critic = _mlp([autoencoder.code_dim, *sizes["latent_critic"], 1], negative_slope=0.2)
    critic_fn = _Flatten(critic)
    history = train_wgan_gp(_LatentSampler(latent_g, sizes["z_dim"]), critic_fn, codes,
                            iterations=sizes["latent_iterations"], batch_size=sizes["batch_size"],
                            n_critic=sizes["n_critic"], critic_lr_scale=critic_lr_scale, generator=generator,
                            progress=progress, desc="l-GAN")
    for p in autoencoder.parameters():
        p.requires_grad_(False)
    return LatentGAN(autoencoder, latent_g, sizes["z_dim"]), {"ae_loss": ae_losses, **history}


class _Flatten(nn.Module):
    """``(B, C) -> (B,)``: a critic MLP's single output as a vector."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).reshape(-1)


class _LatentSampler(_Sampler):
    """The latent generator as a ``_Sampler`` (``z_dim`` attribute) for :func:`train_wgan_gp`."""

    def __init__(self, net: nn.Module, z_dim: int):
        super().__init__()
        self.net, self.z_dim = net, int(z_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

r"""The four distorted-MNIST datasets of the STN paper: R, RTS, P and E.

Each distortion is a random spatial transformation, drawn per digit from a
``torch.Generator`` and applied by the same machinery a spatial transformer
uses: a grid generator of :mod:`coursekit.stn` gives, for every pixel of the
distorted image, the location in the clean digit to read (target -> source,
see :mod:`coursekit.stn`), and bilinear sampling reads it (``F.grid_sample``,
which equals :func:`~coursekit.stn.bilinear_sample` and is faster; zeros
outside the digit).

========  ===============================================================  ==========
kind      distortion of a 28x28 digit                                      output
========  ===============================================================  ==========
``R``     rotation by :math:`\alpha \sim U[-90°, 90°]` about the centre       28x28
``RTS``   rotation :math:`U[-45°, 45°]`, scale :math:`U[0.7, 1.2]`, placed      42x42
          at a random location of a 42x42 canvas (the scaled 28x28 frame
          stays inside it)
``P``     scale :math:`U[0.75, 1]`, then each of the 4 corners moved by         28x28
          :math:`\mathcal N(0, 5\,\text{px})`: the homography through them
``E``     scale :math:`U[0.75, 1]`, then the 16 control points of a 4x4 grid    28x28
          moved by :math:`\mathcal N(0, 1.5\,\text{px})`: the thin-plate spline
========  ===============================================================  ==========

**Sources.** The paper (Jaderberg et al. 2015, §4.1) names the four
distortions and defers the details to its Appendix A, which we could not read.
The ranges above are the ones quoted from the appendix by reimplementations
(see ``REFERENCES.md`` A.4): RTS is corroborated by two of them (hvy/chainer-
spatial-transformer-networks ``train.py`` and a course lab), R, P and E are
**unverified**. Pixel amounts refer to the 28x28 input. How to make these
distortions is our choice: each is a *forward* warp of the digit (turn,
scale and place it, move its corners or control points); the sampling grids
of R, RTS and P are its exact inverse, E's the first-order inverse (control
point :math:`c_k` reads the source at :math:`(c_k + n_k)/s`, :math:`n_k` the
Gaussian displacement, distributed like :math:`(c_k - n_k)/s`). P redraws the
1.4% of corner perturbations that would fold the digit (non-convex corners).

Ground truth: :func:`distort` can return a :class:`Distortion` with the drawn
factors (angle, scale, shift, displacements) and the grid parameters, so a
notebook can compare what a trained spatial transformer undid with what was done.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator

import torch
import torch.nn.functional as F

from ..data.digits import to_image_batch
from .grids import affine_grid, projective_grid
from .tps import tps_control_points, tps_grid

KINDS = ("R", "RTS", "P", "E")

ROTATION_R = 90.0                 # degrees, R: U[-90, 90]
ROTATION_RTS = 45.0               # degrees, RTS: U[-45, 45]
SCALE_RTS = (0.7, 1.2)
CANVAS_RTS = 1.5                  # canvas side / digit side: 42 for 28
SCALE_PE = (0.75, 1.0)
CORNER_SIGMA_PX = 5.0             # P
CONTROL_SIGMA_PX = 1.5            # E
CONTROL_GRID = 4                  # E: 4x4 = 16 control points


@dataclass
class Distortion:
    """The ground truth of one distorted batch.

    Attributes:
        kind: ``"R"``, ``"RTS"``, ``"P"`` or ``"E"``.
        transform: grid generator used: ``"affine"``, ``"projective"`` or ``"tps"``.
        params: its parameters (target -> source, normalised coordinates): ``(B, 2, 3)``
            affine ``theta``, ``(B, 8)`` homography entries, or ``(B, 16, 2)`` TPS source points.
        size: ``(H', W')`` of the distorted images.
        factors: the drawn quantities, each ``(B,)`` or ``(B, K, 2)``: ``angle`` (degrees,
            counter-clockwise on screen), ``scale``, ``shift`` (``(B, 2)`` px, RTS),
            ``corner_shift`` (``(B, 4, 2)`` px, P), ``control_shift`` (``(B, 16, 2)`` px, E).
    """

    kind: str
    transform: str
    params: torch.Tensor
    size: tuple[int, int]
    factors: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.params.shape[0]

    def __getitem__(self, index: slice | torch.Tensor) -> "Distortion":
        """The distortions of a sub-batch (``truth[10:20]``)."""
        return Distortion(self.kind, self.transform, self.params[index], self.size,
                          {k: v[index] for k, v in self.factors.items()})

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "Distortion":
        """A copy with parameters and factors on ``device`` (and of ``dtype``)."""
        return Distortion(self.kind, self.transform, self.params.to(device, dtype), self.size,
                          {k: v.to(device, dtype) for k, v in self.factors.items()})

    def grid(self) -> torch.Tensor:
        """The ``(B, H', W', 2)`` sampling grid that produced the distorted images."""
        if self.transform == "affine":
            return affine_grid(self.params, self.size)
        if self.transform == "projective":
            return projective_grid(self.params, self.size)
        return tps_grid(self.params, self.size, tps_control_points(CONTROL_GRID, self.params.dtype,
                                                                   self.params.device))


def _uniform(gen: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=gen.device, dtype=torch.float64) * (high - low) + low


def _normal(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=gen, device=gen.device, dtype=torch.float64)


def _inverse_rotation(angle_deg: torch.Tensor) -> torch.Tensor:
    r"""``(B, 2, 2)`` :math:`R(\alpha)^{-1}` in image coordinates (x right, y down).

    A digit turned counter-clockwise on screen by :math:`\alpha` sends ``p`` to
    :math:`R p` with :math:`R = \begin{bmatrix}\cos\alpha & \sin\alpha\\ -\sin\alpha & \cos\alpha\end{bmatrix}`
    (y points down); the sampling grid needs its inverse :math:`R^\top`.
    """
    a = torch.deg2rad(angle_deg)
    c, s = torch.cos(a), torch.sin(a)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def _rotation(batch: int, gen: torch.Generator, size: int) -> Distortion:
    r"""R: :math:`\theta = [R(\alpha)^{-1} \mid 0]`, :math:`\alpha \sim U[-90°, 90°]`."""
    angle = _uniform(gen, batch, -ROTATION_R, ROTATION_R)
    theta = torch.cat([_inverse_rotation(angle), angle.new_zeros(batch, 2, 1)], dim=2)
    return Distortion("R", "affine", theta, (size, size), {"angle": angle})


def _rotation_scale_translation(batch: int, gen: torch.Generator, size: int) -> Distortion:
    r"""RTS: the digit (side ``S``) turned, scaled by ``s`` and moved by ``t`` px on a canvas of side ``C``.

    In pixels from the centres, :math:`P^t = s R P^s + t`; in normalised coordinates
    (:math:`P = p\,C/2` on the canvas, :math:`p\,S/2` on the digit):

    .. math::
        p^s = \frac{C}{S s} R^\top \Big(p^t - \frac{2t}{C}\Big), \qquad
        t \sim U\Big[-\frac{C - sS}{2}, \frac{C - sS}{2}\Big]^2 .
    """
    canvas = round(CANVAS_RTS * size)
    angle = _uniform(gen, batch, -ROTATION_RTS, ROTATION_RTS)
    scale = _uniform(gen, batch, *SCALE_RTS)
    room = (canvas - scale * size) / 2
    shift = (torch.rand(batch, 2, generator=gen, device=gen.device, dtype=torch.float64) * 2 - 1) * room[:, None]
    linear = _inverse_rotation(angle) * (canvas / (size * scale))[:, None, None]
    offset = -(linear @ (2 * shift / canvas)[:, :, None])
    theta = torch.cat([linear, offset], dim=2)
    return Distortion("RTS", "affine", theta, (canvas, canvas),
                      {"angle": angle, "scale": scale, "shift": shift})


def homography_from_points(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    r"""The 8 homography parameters of :func:`~coursekit.stn.projective_grid` through 4 point pairs.

    Solves, for each pair :math:`(x, y) \mapsto (u, v)` (direct linear transform with
    :math:`p_8 = 1`),

    .. math::
        p_0 x + p_1 y + p_2 - p_6 x u - p_7 y u = u, \qquad
        p_3 x + p_4 y + p_5 - p_6 x v - p_7 y v = v .

    Args:
        target: ``(B, 4, 2)`` points in the output (no three on a line).
        source: ``(B, 4, 2)`` where they read the input.

    Returns:
        ``(B, 8)`` parameters, dtype of ``target``.
    """
    x, y = target.unbind(-1)
    u, v = source.unbind(-1)
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_u = torch.stack([x, y, one, zero, zero, zero, -x * u, -y * u], -1)
    rows_v = torch.stack([zero, zero, zero, x, y, one, -x * v, -y * v], -1)
    system = torch.cat([rows_u, rows_v], dim=1)                          # (B, 8, 8)
    rhs = torch.cat([u, v], dim=1)                                       # (B, 8)
    return torch.linalg.solve(system.double(), rhs.double()).to(target.dtype)


def _convex(quads: torch.Tensor) -> torch.Tensor:
    """``(B,)`` whether each ``(B, 4, 2)`` quadrilateral (corners in order) is strictly convex."""
    edges = quads.roll(-1, dims=1) - quads
    turns = edges[..., 0] * edges.roll(-1, dims=1)[..., 1] - edges[..., 1] * edges.roll(-1, dims=1)[..., 0]
    return (turns > 0).all(1) | (turns < 0).all(1)


def _projective(batch: int, gen: torch.Generator, size: int) -> Distortion:
    r"""P: corners :math:`c_k = (\pm 1, \pm 1)` move to :math:`d_k = s\,c_k + n_k`; the grid maps :math:`d_k \mapsto c_k`.

    A homography cannot send the square onto a non-convex quadrilateral without
    folding the image through the horizon line, so draws whose moved corners are
    not convex (1.4% of them with 5 px noise) are redrawn.
    """
    scale = _uniform(gen, batch, *SCALE_PE)
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]],
                           dtype=torch.float64, device=gen.device).expand(batch, 4, 2)
    shift = _normal(gen, batch, 4, 2) * CORNER_SIGMA_PX
    while True:
        moved = scale[:, None, None] * corners + shift * (2 / size)
        folded = torch.nonzero(~_convex(moved)).flatten()
        if len(folded) == 0:
            break
        shift[folded] = _normal(gen, len(folded), 4, 2) * CORNER_SIGMA_PX
    params = homography_from_points(moved, corners)
    return Distortion("P", "projective", params, (size, size), {"scale": scale, "corner_shift": shift})


def _elastic(batch: int, gen: torch.Generator, size: int) -> Distortion:
    r"""E: the TPS through the 4x4 control points :math:`c_k \mapsto (c_k + n_k)/s`."""
    scale = _uniform(gen, batch, *SCALE_PE)
    control = tps_control_points(CONTROL_GRID, torch.float64, gen.device)
    shift = _normal(gen, batch, control.shape[0], 2) * CONTROL_SIGMA_PX
    source = (control + shift * (2 / size)) / scale[:, None, None]
    return Distortion("E", "tps", source, (size, size), {"scale": scale, "control_shift": shift})


_DRAW = {"R": _rotation, "RTS": _rotation_scale_translation, "P": _projective, "E": _elastic}


def output_size(kind: str, size: int = 28) -> int:
    """Side of the distorted images for ``size``-pixel digits (42 for RTS on 28, else 28)."""
    _check_kind(kind)
    return round(CANVAS_RTS * size) if kind == "RTS" else size


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown distortion {kind!r}; choose one of {KINDS}")


def draw_distortion(kind: str, batch: int, generator: torch.Generator, size: int = 28) -> Distortion:
    """Draw ``batch`` random distortions of one kind (float64 parameters on the generator's device).

    Args:
        kind: ``"R"``, ``"RTS"``, ``"P"`` or ``"E"``.
        batch: how many.
        generator: the only source of randomness.
        size: side of the (square) input digits, 28 for MNIST.
    """
    _check_kind(kind)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    return _DRAW[kind](batch, generator, size)


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[2] != images.shape[3]:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a (B, C, H, H) float tensor of square digits, got {shape}")
    if not images.dtype.is_floating_point:
        raise ValueError(f"images must be float (see coursekit.data.digits.to_image_batch), got {images.dtype}")


def warp(images: torch.Tensor, truth: Distortion) -> torch.Tensor:
    """Apply given distortions: bilinear sampling of ``images`` at ``truth.grid()``.

    Args:
        images: ``(B, C, H, H)`` float.
        truth: ``B`` distortions (:func:`draw_distortion`).

    Returns:
        ``(B, C, H', W')`` on ``images.device``.
    """
    _check_images(images)
    if len(truth) != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {len(truth)} distortions")
    grid = truth.to(images.device, images.dtype).grid()
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def distort(images: torch.Tensor, kind: str, generator: torch.Generator,
            return_params: bool = False) -> torch.Tensor | tuple[torch.Tensor, Distortion]:
    """Distort a batch of digits, each with its own random transformation.

    Args:
        images: ``(B, 1, H, H)`` float images (square; MNIST: ``H = 28``, values in [0, 1]).
        kind: ``"R"``, ``"RTS"``, ``"P"`` or ``"E"`` (see the module table).
        generator: ``torch.Generator`` drawing the transformations; the same seed gives
            the same batch on any device (numbers are drawn on the generator's device).
        return_params: also return the :class:`Distortion` (ground truth, float64, on the
            generator's device).

    Returns:
        ``(B, 1, H', H')`` distorted images on ``images.device`` (``H' = 1.5 H`` for RTS,
        else ``H``), and the :class:`Distortion` if asked.

    >>> x = torch.rand(2, 1, 28, 28)
    >>> distort(x, "RTS", torch.Generator().manual_seed(0)).shape
    torch.Size([2, 1, 42, 42])
    """
    _check_images(images)
    truth = draw_distortion(kind, images.shape[0], generator, images.shape[-1])
    out = warp(images, truth)
    return (out, truth) if return_params else out


def make_distorted_dataset(images: torch.Tensor, labels: torch.Tensor, kind: str, seed: int, *,
                           device: torch.device | str | None = None,
                           chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed distorted copy of a digit set (for test sets and figures).

    Args:
        images: ``(N, 28, 28)`` uint8 (as loaded) or ``(N, 1, 28, 28)`` float in [0, 1].
        labels: ``(N,)`` int64.
        kind: ``"R"``, ``"RTS"``, ``"P"`` or ``"E"``.
        seed: seeds the generator; the same seed gives the same dataset (whatever ``chunk``).
        device: where to compute and return (default: where ``images`` are).
        chunk: digits warped at once (bounds memory).

    Returns:
        images ``(N, 1, H', H')`` float and labels ``(N,)``, on ``device``.
    """
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    images = to_image_batch(images).to(device or images.device)
    truth = draw_distortion(kind, len(images), torch.Generator().manual_seed(seed), images.shape[-1])
    side = output_size(kind, images.shape[-1])
    out = images.new_empty(len(images), images.shape[1], side, side)
    for start in range(0, len(images), chunk):
        out[start:start + chunk] = warp(images[start:start + chunk], truth[start:start + chunk])
    return out, labels.to(out.device)


class DistortedBatches:
    """Training batches distorted afresh on every pass (the distortions as a dataset transform).

    Iterating yields ``(images, labels)`` batches: a new shuffle and new random
    distortions each epoch, drawn from one generator seeded once, so a whole
    training run is reproducible while no digit is seen twice in the same pose.

    Args:
        images: ``(N, 28, 28)`` uint8 or ``(N, 1, 28, 28)`` float digits.
        labels: ``(N,)`` int64.
        kind: ``"R"``, ``"RTS"``, ``"P"`` or ``"E"``.
        batch_size: digits per batch (the last batch may be smaller).
        seed: seeds the shuffle and the distortions.
        device: where batches are made (default: where ``images`` are).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, kind: str, *, batch_size: int,
                 seed: int, device: torch.device | str | None = None) -> None:
        _check_kind(kind)
        if len(images) != len(labels) or len(images) == 0:
            raise ValueError(f"need as many labels as images, at least one; got {len(images)} and {len(labels)}")
        self.images = to_image_batch(images).to(device or images.device)
        self.labels = labels.to(self.images.device)
        self.kind = kind
        self.batch_size = int(batch_size)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.images), generator=self.generator).to(self.images.device)
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size]
            yield distort(self.images[index], self.kind, self.generator), self.labels[index]

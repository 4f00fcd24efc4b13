r"""Spatial Transformer Networks: grid generators, samplers, localisation nets, the module.

A spatial transformer (Jaderberg et al., NeurIPS 2015) has three differentiable
blocks: a **localisation network** predicts transformation parameters
:math:`\theta` from the input :math:`U`, a **grid generator** maps every pixel
of the output to a location in the input, and a **sampler** reads :math:`U` at
those locations to produce the output :math:`V`.

Coordinate convention (the one place it is stated; every function in ``stn/``
follows it and the tests compare against ``F.affine_grid``/``F.grid_sample``):

* Coordinates are **normalised to [-1, 1]** over the image: ``-1`` is the left
  (top) edge of the first pixel, ``+1`` the right (bottom) edge of the last.
* **align_corners=False**: the centre of pixel ``i`` of a side with ``W``
  pixels lies at :math:`-1 + (2i + 1)/W`, so the corners -1 and 1 are pixel
  *edges*, not pixel centres.
* A sampling grid has shape ``(B, H', W', 2)``; ``grid[..., 0]`` is **x**
  (along the width, column index) and ``grid[..., 1]`` is **y** (along the
  height, row index), as in ``torch.nn.functional.grid_sample``.
* A transformation maps the **target** coordinates :math:`(x^t_i, y^t_i)` of
  output pixel ``i`` to the **source** coordinates :math:`(x^s_i, y^s_i)` in
  the input where that pixel is read (target -> source, "inverse warping"):

  .. math::
      \begin{pmatrix} x_i^s \\ y_i^s \end{pmatrix} = \mathcal{T}_\theta(G_i),
      \qquad G_i = (x_i^t, y_i^t).

* Samples outside the input read zeros (``padding_mode="zeros"``).

Modules: :mod:`~coursekit.stn.grids` (identity, affine, attention, projective
grids), :mod:`~coursekit.stn.tps` (thin-plate spline grid),
:mod:`~coursekit.stn.sampler` (bilinear / nearest sampling written from the
slide's kernel formula), :mod:`~coursekit.stn.localisation` (the paper's FC and
conv localisation nets, identity-initialised) and
:mod:`~coursekit.stn.transformer` (:class:`SpatialTransformer`).
"""

from .grids import (
    IDENTITY_AFFINE,
    IDENTITY_ATTENTION,
    IDENTITY_PROJECTIVE,
    affine_grid,
    attention_grid,
    attention_theta,
    identity_grid,
    projective_grid,
    target_coordinates,
)
from .localisation import ConvLocalisation, FCLocalisation, identity_regression
from .sampler import bilinear_sample, nearest_sample, sample
from .tps import tps_control_points, tps_grid, tps_kernel, tps_solve
from .transformer import TRANSFORMS, SpatialTransformer, identity_params, n_params

__all__ = [
    "IDENTITY_AFFINE", "IDENTITY_ATTENTION", "IDENTITY_PROJECTIVE", "TRANSFORMS",
    "ConvLocalisation", "FCLocalisation", "SpatialTransformer",
    "affine_grid", "attention_grid", "attention_theta", "bilinear_sample", "identity_grid",
    "identity_params", "identity_regression", "n_params", "nearest_sample", "projective_grid",
    "sample", "target_coordinates", "tps_control_points", "tps_grid", "tps_kernel", "tps_solve",
]

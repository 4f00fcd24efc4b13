"""Exercises of lecture 05 on the generators themselves: FoldingNet's decoder forward.

The cases use a batch of 2 different codewords, a non-square grid of ``M`` points that is not
symmetric about 0, a hidden width different from 3 and from the code size, and float64 weights
with non-zero biases, so that dropping the grid, folding once, swapping the concatenation order,
feeding the grid to the second fold or skipping the ReLU each give a different output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.generation.folding import folding_decoder
from .core import Case, Exercise, Mistake


def _folding_cases(gen: torch.Generator) -> list[Case]:
    def case(label: str, b: int, c: int, m: int, h: int) -> Case:
        r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)  # noqa: E731
        grid = torch.rand(m, 2, generator=gen, dtype=torch.float64) * torch.tensor([2.0, 1.0], dtype=torch.float64) - 0.3
        args = (r(b, c), grid, r(h, c + 2) / 2, r(h), r(3, h) / 2, r(3), r(h, c + 3) / 2, r(h), r(3, h) / 2, r(3))
        return Case(label, args, grad=(0, 2, 6))

    return [case("2 codewords of size 5, a grid of 7 points, hidden width 6", 2, 5, 7, 6),
            case("3 codewords of size 4, a grid of 12 points, hidden width 9", 3, 4, 12, 9)]


def _reference(codeword, grid, w1, b1, w2, b2, v1, c1, v2, c2):
    return folding_decoder(codeword, grid, w1, b1, w2, b2, v1, c1, v2, c2)


def _mlp(x, wa, ba, wb, bb, relu=True):
    h = F.linear(x, wa, ba)
    return F.linear(F.relu(h) if relu else h, wb, bb)


def _tiled(codeword, m):
    return codeword[:, None, :].expand(-1, m, -1)


def _no_grid(codeword, grid, w1, b1, w2, b2, v1, c1, v2, c2):
    z = _tiled(codeword, grid.shape[0])
    first = _mlp(torch.cat([z, torch.zeros_like(z[..., :2])], -1), w1, b1, w2, b2)
    return _mlp(torch.cat([z, first], -1), v1, c1, v2, c2)


def _one_fold(codeword, grid, w1, b1, w2, b2, v1, c1, v2, c2):
    z = _tiled(codeword, grid.shape[0])
    return _mlp(torch.cat([z, grid.expand(len(codeword), -1, -1)], -1), w1, b1, w2, b2)


def _swapped_order(codeword, grid, w1, b1, w2, b2, v1, c1, v2, c2):
    z = _tiled(codeword, grid.shape[0])
    first = _mlp(torch.cat([grid.expand(len(codeword), -1, -1), z], -1), w1, b1, w2, b2)
    return _mlp(torch.cat([first, z], -1), v1, c1, v2, c2)


def _grid_twice(codeword, grid, w1, b1, w2, b2, v1, c1, v2, c2):
    z = _tiled(codeword, grid.shape[0])
    g = grid.expand(len(codeword), -1, -1)
    return _mlp(torch.cat([z, g, torch.zeros_like(g[..., :1])], -1), v1, c1, v2, c2)


def _no_relu(codeword, grid, w1, b1, w2, b2, v1, c1, v2, c2):
    z = _tiled(codeword, grid.shape[0])
    first = _mlp(torch.cat([z, grid.expand(len(codeword), -1, -1)], -1), w1, b1, w2, b2, relu=False)
    return _mlp(torch.cat([z, first], -1), v1, c1, v2, c2, relu=False)


EXERCISES = (
    Exercise(
        name="generation.folding_decoder",
        points=2,
        reference=_reference,
        make_cases=_folding_cases,
        what="folded points",
        forbidden=("folding_decoder", "FoldingNet"),
        mistakes=(
            Mistake("the grid is not concatenated: every point gets the same input [z] and all M points collapse "
                    "onto one; concatenate the replicated codeword with the grid point, [z, u_j]", _no_grid),
            Mistake("you folded only once; the second fold maps [z, p1_j] (the codeword with the first fold's "
                    "3D output) through V1, V2", _one_fold),
            Mistake("the concatenation order along the feature dimension is swapped: W1 expects [z, u_j] "
                    "(codeword first, then the grid point), and V1 expects [z, p1_j]", _swapped_order),
            Mistake("the second fold reads the 2D grid again; it must fold the first fold's 3D points "
                    "[z, p1_j]", _grid_twice),
            Mistake("each fold is Linear -> ReLU -> Linear; the ReLU between the two layers is missing", _no_relu),
        ),
    ),
)

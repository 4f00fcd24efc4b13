"""Exercises on the 3-D geometry ops: voxelisation, farthest point sampling, ball query, octrees.

The cases put points well inside cells (never within a tenth of a cell of a boundary), so a
correct answer does not depend on how it rounds; batches, anisotropic clouds, radii other than
1 and points outside the bounds make every listed mistake visible.
"""

from __future__ import annotations

import torch

from ..geometry.neighbors import ball_query, knn
from ..geometry.octree import octree_occupancy
from ..geometry.sampling import farthest_point_sample
from ..geometry.voxels import voxelize_points
from .core import Case, Exercise, Mistake


def _inside_cells(gen: torch.Generator, shape: tuple[int, ...], resolution: int, low_corner: bool = False) -> torch.Tensor:
    """Points in ``[-1, 1]^3`` at least 0.1 cell from every cell boundary (float64).

    With ``low_corner`` the cloud is squeezed towards small x and large z, so axis swaps show.
    """
    cells = torch.randint(resolution, (*shape, 3), generator=gen)
    if low_corner:
        cells[..., 0] = cells[..., 0] // 2
        cells[..., 2] = resolution - 1 - cells[..., 2] // 2
    frac = torch.rand(*shape, 3, generator=gen, dtype=torch.float64) * 0.8 + 0.1
    return -1 + (cells + frac) * (2 / resolution)


# ------------------------------------------------------------------ voxelize_points

def _voxel_cases(gen: torch.Generator) -> list[Case]:
    def clouds(b: int, n: int, r: int) -> torch.Tensor:
        p = _inside_cells(gen, (b, n), r, low_corner=True)
        twins = p[:, : n // 4] + (torch.rand(b, n // 4, 3, generator=gen, dtype=torch.float64) - 0.5) * 1e-3  # same cells
        # four points per cloud outside the bounds along one random axis, inside along the others
        outside = torch.rand(b, 4, 3, generator=gen, dtype=torch.float64) * 1.6 - 0.8
        axis = torch.randint(3, (b, 4, 1), generator=gen)
        sign = torch.randint(2, (b, 4, 1), generator=gen) * 2 - 1
        outside.scatter_(2, axis, sign * (1.1 + 0.4 * torch.rand(b, 4, 1, generator=gen, dtype=torch.float64)))
        return torch.cat([p, twins, outside], 1).float()

    return [
        Case("a batch of 2 clouds, resolution 4, with points outside [-1, 1]^3", (clouds(2, 40, 4), 4)),
        Case("a batch of 3 clouds, resolution 5", (clouds(3, 60, 5), 5)),
        Case("one cloud, resolution 8", (clouds(1, 200, 8), 8)),
    ]


def _voxel_grid(points, resolution, cells, keep, accumulate=False):
    B, N, _ = points.shape
    grid = torch.zeros(B, 1, resolution, resolution, resolution)
    b = torch.arange(B).unsqueeze(1).expand(B, N)
    index = (b[keep], torch.zeros_like(b[keep]), cells[..., 0][keep], cells[..., 1][keep], cells[..., 2][keep])
    return grid.index_put_(index, torch.ones(int(keep.sum())), accumulate=accumulate)


def _scaled(points, resolution):
    return (points + 1) * (resolution / 2)


def _inside(points):
    return ((points >= -1) & (points <= 1)).all(-1)


def _voxel_xz_swapped(points, resolution):
    cells = _scaled(points, resolution).floor().long().clamp(0, resolution - 1)  # (x, y, z) used as (D, H, W)
    return _voxel_grid(points, resolution, cells, _inside(points))


def _voxel_round(points, resolution):
    cells = _scaled(points, resolution).round().long().clamp(0, resolution - 1).flip(-1)
    return _voxel_grid(points, resolution, cells, _inside(points))


def _voxel_clamped(points, resolution):
    cells = _scaled(points, resolution).floor().long().clamp(0, resolution - 1).flip(-1)
    return _voxel_grid(points, resolution, cells, torch.ones(points.shape[:2], dtype=torch.bool))


def _voxel_counts(points, resolution):
    cells = _scaled(points, resolution).floor().long().clamp(0, resolution - 1).flip(-1)
    return _voxel_grid(points, resolution, cells, _inside(points), accumulate=True)


def _voxel_batch_merged(points, resolution):
    merged = voxelize_points(points, resolution).amax(0, keepdim=True)
    return merged.expand(points.shape[0], -1, -1, -1, -1).clone()


# ------------------------------------------------------------------ farthest point sampling

def _fps_cases(gen: torch.Generator) -> list[Case]:
    def clouds(b: int, n: int) -> torch.Tensor:
        scale = torch.tensor([2.0, 1.0, 0.4], dtype=torch.float64)
        return torch.randn(b, n, 3, generator=gen, dtype=torch.float64) * scale + torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)

    return [
        Case("a batch of 2 clouds of 50 points, 10 samples", (clouds(2, 50), 10)),
        Case("a batch of 3 clouds of 40 points, 16 samples", (clouds(3, 40), 16)),
        Case("one cloud of 12 points, all 12 sampled", (clouds(1, 12), 12)),
    ]


def _fps_loop(points, n_samples, first, score):
    """FPS skeleton: ``score(points, chosen, min_d) -> next index`` per cloud."""
    out = []
    for cloud in points:
        chosen = [first(cloud)]
        min_d = ((cloud - cloud[chosen[0]]) ** 2).sum(-1)
        while len(chosen) < n_samples:
            nxt = score(cloud, chosen, min_d)
            chosen.append(nxt)
            min_d = torch.minimum(min_d, ((cloud - cloud[nxt]) ** 2).sum(-1))
        out.append(chosen)
    return torch.tensor(out, dtype=torch.int64)


def _fps_nearest(points, n_samples):
    def nearest(cloud, chosen, min_d):
        d = min_d.clone()
        d[chosen] = float("inf")
        return int(d.argmin())
    return _fps_loop(points, n_samples, lambda c: 0, nearest)


def _fps_last_only(points, n_samples):
    return _fps_loop(points, n_samples, lambda c: 0,
                     lambda cloud, chosen, min_d: int(((cloud - cloud[chosen[-1]]) ** 2).sum(-1).argmax()))


def _fps_centroid_start(points, n_samples):
    start = ((points - points.mean(1, keepdim=True)) ** 2).sum(-1).argmax(1)
    return farthest_point_sample(points, n_samples, start_idx=start)


def _fps_start_missing(points, n_samples):
    if n_samples == points.shape[1]:
        return farthest_point_sample(points, n_samples)[:, [*range(1, n_samples), 0]]
    return farthest_point_sample(points, n_samples + 1)[:, 1:]


def _fps_float(points, n_samples):
    return farthest_point_sample(points, n_samples).float()


# ------------------------------------------------------------------ ball query

def _ball_cases(gen: torch.Generator) -> list[Case]:
    def case(b: int, n: int, m: int, radius: float, s: int, label: str) -> Case:
        scale = torch.tensor([1.0, 0.6, 0.3], dtype=torch.float64)
        points = (torch.rand(b, n, 3, generator=gen, dtype=torch.float64) * 2 - 1) * scale
        centres = torch.stack([torch.randperm(n, generator=gen)[:m] for _ in range(b)])
        query = torch.stack([points[i, centres[i]] for i in range(b)])  # centres are cloud points: no empty ball
        return Case(label, (query, points, radius, s))

    return [
        case(2, 120, 20, 0.3, 8, "a batch of 2 clouds of 120 points, 20 centres, radius 0.3, 8 samples"),
        case(3, 80, 10, 0.45, 16, "a batch of 3 clouds of 80 points, 10 centres, radius 0.45, 16 samples"),
        case(1, 200, 30, 0.2, 5, "one cloud of 200 points, 30 centres, radius 0.2, 5 samples"),
    ]


def _in_ball(query, points, inside_fn):
    d2 = ((query.unsqueeze(2) - points.unsqueeze(1)) ** 2).sum(-1)
    return inside_fn(d2)


def _first_in_order(mask, s, pad):
    n = mask.shape[-1]
    key = torch.where(mask, torch.arange(n), n)
    first = key.sort(-1).values[..., :s]
    found = first < n
    if pad == "first":
        fill = first[..., :1]
    else:
        fill = torch.full_like(first[..., :1], pad)
    return torch.where(found, first, fill)


def _ball_knn(query, points, radius, max_samples):
    return knn(query, points, max_samples)[1]


def _ball_nearest_in_ball(query, points, radius, max_samples):
    d2 = ((query.unsqueeze(2) - points.unsqueeze(1)) ** 2).sum(-1)
    order = d2.argsort(-1)[..., :max_samples]
    inside = d2.gather(-1, order) < radius ** 2
    return torch.where(inside, order, order[..., :1])


def _ball_pad_zero(query, points, radius, max_samples):
    return _first_in_order(_in_ball(query, points, lambda d2: d2 < radius ** 2), max_samples, 0)


def _ball_pad_minus_one(query, points, radius, max_samples):
    return _first_in_order(_in_ball(query, points, lambda d2: d2 < radius ** 2), max_samples, -1)


def _ball_radius_squared(query, points, radius, max_samples):
    return _first_in_order(_in_ball(query, points, lambda d2: d2.sqrt() < radius ** 2), max_samples, "first")


def _ball_squared_vs_radius(query, points, radius, max_samples):
    return _first_in_order(_in_ball(query, points, lambda d2: d2 < radius), max_samples, "first")


# ------------------------------------------------------------------ octree occupancy

def _octree_cases(gen: torch.Generator) -> list[Case]:
    return [
        Case("120 points, depth 3", (_inside_cells(gen, (120,), 8, low_corner=True), 3)),
        Case("40 points, depth 2", (_inside_cells(gen, (40,), 4, low_corner=True), 2)),
        Case("300 points, depth 4", (_inside_cells(gen, (300,), 16, low_corner=True), 4)),
    ]


def _octree_xyz_axes(points, depth):
    return [grid.permute(2, 1, 0).contiguous() for grid in octree_occupancy(points, depth)]


def _octree_no_root(points, depth):
    return octree_occupancy(points, depth)[1:]


def _octree_leaves_first(points, depth):
    return octree_occupancy(points, depth)[::-1]


def _octree_level_off_by_one(points, depth):
    return octree_occupancy(points, depth + 1)[1:]


def _octree_folded_parents(points, depth):
    grids = [octree_occupancy(points, depth)[-1]]
    for _ in range(depth):
        r = grids[0].shape[0] // 2
        grids.insert(0, grids[0].reshape(2, r, 2, r, 2, r).any(4).any(2).any(0))
    return grids


EXERCISES = (
    Exercise(
        name="geometry.voxelize_points",
        points=2,
        reference=voxelize_points,
        make_cases=_voxel_cases,
        what="occupancy grid",
        mistakes=(
            Mistake("axis order: dim 2 (D) comes from z, dim 3 (H) from y, dim 4 (W) from x; "
                    "you indexed the grid with (x, y, z)", _voxel_xz_swapped),
            Mistake("a point's cell is floor((p + 1) / 2 * R), not round(...): cell i covers "
                    "[-1 + i s, -1 + (i + 1) s)", _voxel_round),
            Mistake("points outside [-1, 1]^3 must be dropped, not clamped onto the border cells", _voxel_clamped),
            Mistake("occupancy is binary: set occupied cells to 1 instead of counting the points in them", _voxel_counts),
            Mistake("each cloud needs its own grid: you merged the clouds of the batch; index dim 0 with "
                    "each point's batch index", _voxel_batch_merged),
        ),
    ),
    Exercise(
        name="geometry.farthest_point_sample",
        points=2,
        reference=farthest_point_sample,
        make_cases=_fps_cases,
        what="sampled indices",
        mistakes=(
            Mistake("you chose the nearest point each step; FPS takes the point whose distance to the "
                    "chosen set is largest (argmax)", _fps_nearest),
            Mistake("keep each point's minimum distance to ALL chosen points (min_d = minimum(min_d, d_new)); "
                    "you used the distance to the last chosen point only", _fps_last_only),
            Mistake("start at index 0 (as PointNet++'s kernel does), not at a random point or the point "
                    "farthest from the centroid", _fps_centroid_start),
            Mistake("the start point (index 0) is the first sample: put it in the output before choosing "
                    "the farthest ones", _fps_start_missing),
            Mistake("indices must be int64 (torch.long), not float: they are used to index the points", _fps_float),
        ),
    ),
    Exercise(
        name="geometry.ball_query",
        points=2,
        reference=ball_query,
        make_cases=_ball_cases,
        what="neighbour indices",
        mistakes=(
            Mistake("this is k nearest neighbours: a ball query keeps only points closer than radius "
                    "and pads the remaining slots with the first index found", _ball_knn),
            Mistake("take the FIRST max_samples points of the ball in index order (PointNet++ scans "
                    "j = 0, 1, 2, ...), not the nearest ones", _ball_nearest_in_ball),
            Mistake("pad the unused slots with the first index found in the ball (PointNet++), not with 0",
                    _ball_pad_zero),
            Mistake("pad the unused slots with the first index found in the ball (PointNet++), not with -1: "
                    "every slot must be a valid index for the grouping step", _ball_pad_minus_one),
            Mistake("you compared the distance with radius squared; compare squared distance with "
                    "radius ** 2 (or distance with radius)", _ball_radius_squared),
            Mistake("you compared the squared distance with radius; compare it with radius ** 2",
                    _ball_squared_vs_radius),
        ),
    ),
    Exercise(
        name="geometry.octree_occupancy",
        points=2,
        reference=octree_occupancy,
        make_cases=_octree_cases,
        what="octree levels",
        mistakes=(
            Mistake("axis order: index each grid as [z, y, x] (D, H, W), not [x, y, z]", _octree_xyz_axes),
            Mistake("the list starts at the root, level 0 (a single 1x1x1 cell), and ends at level depth: "
                    "depth + 1 grids", _octree_no_root),
            Mistake("order the levels root first: level 0 (1 cell) ... level depth (2**depth cells per axis)",
                    _octree_leaves_first),
            Mistake("level L has 2**L cells per axis (level 0 is the root), so each level's children are one "
                    "level finer; yours are off by one level", _octree_level_off_by_one),
            Mistake("a parent is the 2x2x2 block of its children: cell (z, y, x) covers cells 2z..2z+1, "
                    "2y..2y+1, 2x..2x+1 one level finer (reshape to (r, 2, r, 2, r, 2) and reduce dims 1, 3, 5)",
                    _octree_folded_parents),
        ),
    ),
)

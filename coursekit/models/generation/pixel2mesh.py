r"""Template deformation: Pixel2Mesh (Wang, Zhang, Li, Fu, Liu, Jiang, "Pixel2Mesh: Generating 3D Mesh
Models from Single RGB Images", ECCV 2018).

"Polygon meshes are irregular — learn to deform a template mesh": an ico-sphere is moved,
vertex by vertex, by a graph convolutional network on the mesh's edges. Each vertex reads
the image where it projects (perceptual feature pooling through the known camera), the
network predicts an offset, the mesh is subdivided (graph unpooling: a new vertex at every
edge midpoint) and deformed again, coarse to fine.

Graph convolution (the paper's eq. 1, with the neighbour sum averaged):

.. math::  f'_p = W_0 f_p + W_1 \frac{1}{|\mathcal N(p)|} \sum_{q \in \mathcal N(p)} f_q

Losses (:func:`mesh_losses`; the paper's weights in :data:`LOSS_WEIGHTS`, unverified):

.. math::  \mathcal L = \mathcal L_{CD} + \lambda_n \sum_p \sum_{q \in \mathcal N(p)}
           \Big\langle \frac{p - q}{\lVert p - q\rVert}, n_{\hat g(p)} \Big\rangle^2
           + \lambda_e \sum_p \sum_{q \in \mathcal N(p)} \lVert p - q \rVert_2^2
           + \lambda_l \sum_p \lVert \delta'_p - \delta_p \rVert_2^2, \quad
           \delta_p = p - \frac{1}{|\mathcal N(p)|}\sum_{q \in \mathcal N(p)} q

with :math:`\hat g(p)` the ground-truth point nearest to vertex :math:`p`, :math:`n` its normal
and :math:`\delta'` / :math:`\delta` the Laplacian coordinates after / before the stage's
deformation (sums replaced by means here).

**The topology limit**: deformation never changes the template's connectivity, so every
prediction stays a sphere (:func:`euler_characteristic` ``V - E + F = 2``, genus 0). A mug's
handle or a chair back with a hole (genus >= 1) cannot be reproduced: the network can only
stretch a membrane across the hole. The notebook shows it on a mug.

**Part-level variant** (the slide's "part-level deformation ... modify the topology of the
template"): what is built is ``n_templates > 1`` — the template is a union of ``K``
ico-spheres, each tagged with a one-hot id that the GCN reads, deformed jointly; overlapping
deformed spheres can form a union with holes (a handle attached at both ends). Not built: the
cited methods' part-aware templates per class, part labels in the loss and the learned
topology modification (face pruning) of later work.

Kept: ico-sphere template, perceptual pooling from several CNN stages via the camera
(:func:`coursekit.geometry.camera.project` and ``grid_sample`` with ``align_corners=False``),
G-ResNet blocks, coarse-to-fine unpooling, the four losses. Changed: sizes from :data:`SIZES`
(paper: VGG-16, 3 stages of 14 graph layers, 156 -> 628 -> 2466 vertices; here an
ico-sphere of 42 or 162 vertices and one or two subdivisions).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ... import runtime
from ...geometry.camera import project
from ...geometry.graphs import mesh_edges
from ...metrics.chamfer import chamfer_distance, nearest_sq_dists
from .encoders import ImageEncoder

__all__ = ["SIZES", "LOSS_WEIGHTS", "subdivide", "ico_sphere", "template", "euler_characteristic", "GraphConv", "neighbour_mean", "laplacian_coordinates",
           "Pixel2Mesh", "mesh_losses"]

SIZES = {
    "fast": dict(ico_level=1, stages=2, hidden=48, blocks=1, image_widths=(8, 16, 32, 64), latent=32),
    "cpu": dict(ico_level=2, stages=2, hidden=96, blocks=2, image_widths=(16, 32, 64, 128), latent=64),
    "gpu": dict(ico_level=2, stages=3, hidden=192, blocks=6, image_widths=(32, 64, 128, 256), latent=128),
}
"""Per profile: starting ico-sphere level, stages (one subdivision between stages), hidden width,
G-ResNet blocks per stage (two graph convolutions each), image encoder widths, global code size."""

LOSS_WEIGHTS = dict(chamfer=1.0, normal=1.6e-4, edge=0.3, laplacian=1.5)
"""The paper's loss weights (chamfer, normal, edge length, Laplacian); unverified against the official code."""


def subdivide(vertices: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Loop-style 1-to-4 subdivision without smoothing (Pixel2Mesh's graph unpooling).

    A new vertex at the midpoint of every edge; every triangle ``(a, b, c)`` becomes four.

    .. math::  v_{ab} = \tfrac12 (v_a + v_b)

    Args:
        vertices: ``(..., V, 3)`` (a batch dimension is allowed); faces: ``(F, 3)`` int64.

    Returns:
        ``vertices (..., V + E, 3)``, ``faces (4F, 3)`` and ``edges (E, 2)``: new vertex ``V + e``
        is the midpoint of ``edges[e]`` (use it to unpool features the same way).
    """
    edges = mesh_edges(faces).T  # (E, 2), sorted
    V = vertices.shape[-2]
    key = edges[:, 0] * V + edges[:, 1]
    order = torch.argsort(key)

    def mid(a, b):
        lo, hi = torch.minimum(a, b), torch.maximum(a, b)
        return V + order[torch.searchsorted(key[order], lo * V + hi)]

    a, b, c = faces.unbind(1)
    ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
    new_faces = torch.cat([torch.stack(f, 1) for f in ((a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca))])
    new_vertices = torch.cat([vertices, 0.5 * (vertices[..., edges[:, 0], :] + vertices[..., edges[:, 1], :])], -2)
    return new_vertices, new_faces, edges


def ico_sphere(level: int = 2, radius: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The icosahedron subdivided ``level`` times, projected to the sphere of ``radius``.

    Returns:
        ``vertices (10 * 4**level + 2, 3)`` float32 and ``faces (20 * 4**level, 3)`` int64
        (outward counter-clockwise winding).
    """
    if level < 0:
        raise ValueError(f"level must be >= 0, got {level}")
    phi = (1 + math.sqrt(5)) / 2
    v = torch.tensor([[-1, phi, 0], [1, phi, 0], [-1, -phi, 0], [1, -phi, 0], [0, -1, phi], [0, 1, phi],
                      [0, -1, -phi], [0, 1, -phi], [phi, 0, -1], [phi, 0, 1], [-phi, 0, -1], [-phi, 0, 1]],
                     dtype=torch.float64)
    f = torch.tensor([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
                      [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5],
                      [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]])
    v = v / v.norm(dim=-1, keepdim=True)
    for _ in range(level):
        v, f, _ = subdivide(v, f)
        v = v / v.norm(dim=-1, keepdim=True)
    return (radius * v).float(), f


def template(level: int, n_templates: int = 1, radius: float = 0.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The starting mesh: one ico-sphere, or ``n_templates`` smaller ones spread on a ring (part-level variant).

    Returns:
        ``vertices (V, 3)``, ``faces (F, 3)`` and ``template_id (V,)`` int64.
    """
    if n_templates == 1:
        v, f = ico_sphere(level, radius)
        return v, f, torch.zeros(len(v), dtype=torch.int64)
    v, f = ico_sphere(level, radius / n_templates ** (1 / 3))
    angles = torch.arange(n_templates) * (2 * math.pi / n_templates)
    centres = 0.5 * radius * torch.stack([angles.cos(), torch.zeros(n_templates), angles.sin()], -1)
    verts = torch.cat([v + c for c in centres])
    faces = torch.cat([f + k * len(v) for k in range(n_templates)])
    return verts, faces, torch.arange(n_templates).repeat_interleave(len(v))


def euler_characteristic(n_vertices: int, faces: torch.Tensor) -> int:
    r""":math:`\chi = V - E + F` of a triangle mesh (2 for each sphere-like closed component, 0 for a torus)."""
    return int(n_vertices) - mesh_edges(faces).shape[1] + faces.shape[0]


class GraphConv(nn.Module):
    r"""Graph convolution on a mesh: :math:`f'_p = W_0 f_p + W_1\, \mathrm{mean}_{q \in \mathcal N(p)} f_q`.

    Args:
        in_channels, out_channels: feature sizes.

    Shapes:
        ``features (B, V, C_in)``, ``edges (2, E)`` undirected, each once ``-> (B, V, C_out)``.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.self_weight = nn.Linear(in_channels, out_channels)
        self.neighbour_weight = nn.Linear(in_channels, out_channels, bias=False)

    def forward(self, features: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        return self.self_weight(features) + self.neighbour_weight(neighbour_mean(features, edges))


def neighbour_mean(values: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """``(B, V, C)`` mean of each vertex's neighbours' values over undirected ``edges (2, E)``."""
    src = torch.cat([edges[0], edges[1]])
    dst = torch.cat([edges[1], edges[0]])
    total = values.new_zeros(values.shape).index_add_(1, dst, values[:, src])
    degree = torch.bincount(dst, minlength=values.shape[1]).clamp_min(1).to(values.dtype)
    return total / degree[:, None]


class _GResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1, self.conv2 = GraphConv(channels, channels), GraphConv(channels, channels)

    def forward(self, h: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        return 0.5 * (h + F.relu(self.conv2(F.relu(self.conv1(h, edges)), edges)))


class Pixel2Mesh(nn.Module):
    r"""Ico-sphere template deformed in stages by graph convolutions reading the image at projected vertices.

    .. math::  v^{(s)} = v^{(s-1)} + \mathrm{GCN}_s\big([P(v^{(s-1)}),\ v^{(s-1)},\ h^{(s-1)}]\big)

    with :math:`P(v)` the perceptual features: every CNN stage's map bilinearly sampled where
    :math:`v` projects (:func:`coursekit.geometry.camera.project`).

    Args:
        K, R, t: the camera of the input images (``(3, 3)``, ``(3, 3)``, ``(3,)``; one camera for
            the dataset, as the procedural renders use).
        image_size: ``(H, W)`` of the input images.
        n_templates: ``1`` (Pixel2Mesh) or more (part-level variant, module notes).
        sizes: a :data:`SIZES` entry (default: the active profile's).
        radius: template radius.

    Shapes:
        ``images (B, C, H, W) -> vertices (B, V, 3)`` of the last stage, whose faces are
        ``self.faces[-1]`` (:meth:`stages` gives every stage; ``self.faces[s]``, ``self.edges[s]``).
    """

    def __init__(self, K: torch.Tensor, R: torch.Tensor, t: torch.Tensor, image_size: tuple[int, int],
                 n_templates: int = 1, sizes: dict | None = None, in_channels: int = 1, radius: float = 0.5):
        super().__init__()
        s = dict(sizes or runtime.pick(SIZES))
        self.encoder = ImageEncoder(in_channels, s["latent"], s["image_widths"])
        verts, faces, ids = template(s["ico_level"], n_templates, radius)
        self.register_buffer("template_vertices", verts, persistent=False)
        self.register_buffer("template_id", F.one_hot(ids, n_templates).float(), persistent=False)
        self.faces, self.edges, self.unpool = [faces], [mesh_edges(faces)], []
        for _ in range(s["stages"] - 1):
            verts, faces, pairs = subdivide(verts, faces)
            self.unpool.append(pairs)
            self.faces.append(faces)
            self.edges.append(mesh_edges(faces))
        for name, value in (("K", K), ("R", R), ("t", t)):
            self.register_buffer(name, value.float()[None], persistent=False)
        self.image_size = tuple(image_size)
        pooled = sum(s["image_widths"]) + s["latent"]
        h = s["hidden"]
        self.inputs = nn.ModuleList([GraphConv(pooled + 3 + n_templates + (h if k else 0), h) for k in range(s["stages"])])
        self.blocks = nn.ModuleList([nn.ModuleList([_GResBlock(h) for _ in range(s["blocks"])]) for _ in range(s["stages"])])
        self.offsets = nn.ModuleList([GraphConv(h, 3) for _ in range(s["stages"])])
        self.n_templates = n_templates

    def perceptual_features(self, vertices: torch.Tensor, maps: list[torch.Tensor]) -> torch.Tensor:
        """``(B, V, sum C_k)`` CNN features bilinearly sampled at the vertices' projections."""
        B = vertices.shape[0]
        uv, _ = project(vertices, self.K.expand(B, 3, 3), self.R.expand(B, 3, 3), self.t.expand(B, 3))
        H, W = self.image_size
        grid = torch.stack([2 * uv[..., 0] / W - 1, 2 * uv[..., 1] / H - 1], -1)[:, :, None, :]  # align_corners=False
        return torch.cat([F.grid_sample(m, grid, align_corners=False)[..., 0].transpose(1, 2) for m in maps], -1)

    def stages(self, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every stage's ``(before, after)`` vertices ``(B, V_s, 3)``: its (unpooled) input and its output."""
        B, device = images.shape[0], images.device
        code, maps = self.encoder.features(images)
        vertices = self.template_vertices.expand(B, -1, -1)
        ids = self.template_id
        hidden = None
        out = []
        for s, (inp, blocks, offset) in enumerate(zip(self.inputs, self.blocks, self.offsets)):
            if s:  # graph unpooling: a new vertex (and feature) at every edge midpoint
                a, b = self.unpool[s - 1].to(device).T
                vertices = torch.cat([vertices, 0.5 * (vertices[:, a] + vertices[:, b])], 1)
                hidden = torch.cat([hidden, 0.5 * (hidden[:, a] + hidden[:, b])], 1)
                ids = torch.cat([ids, ids[a]])
            edges = self.edges[s].to(device)
            parts = [self.perceptual_features(vertices, maps), code[:, None].expand(-1, vertices.shape[1], -1),
                     vertices, ids.expand(B, -1, -1)]
            h = F.relu(inp(torch.cat(parts + ([hidden] if hidden is not None else []), -1), edges))
            for block in blocks:
                h = block(h, edges)
            out.append((vertices, vertices + offset(h, edges)))
            vertices, hidden = out[-1][1], h
        return out

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, V, 3)``: the final mesh's vertices (faces: ``self.faces[-1]``)."""
        return self.stages(images)[-1][1]

    def loss(self, images: torch.Tensor, gt_points: torch.Tensor, gt_normals: torch.Tensor) -> dict[str, torch.Tensor]:
        """:func:`mesh_losses` summed over the stages (the paper supervises every stage)."""
        total: dict[str, torch.Tensor] = {}
        for s, (before, after) in enumerate(self.stages(images)):
            for k, v in mesh_losses(after, self.edges[s].to(images.device), gt_points, gt_normals, before).items():
                total[k] = total.get(k, 0) + v
        return total


def laplacian_coordinates(vertices: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    r""":math:`\delta_p = p - \mathrm{mean}_{q \in \mathcal N(p)} q`, ``(B, V, 3)``."""
    return vertices - neighbour_mean(vertices, edges)


def mesh_losses(vertices: torch.Tensor, edges: torch.Tensor, gt_points: torch.Tensor, gt_normals: torch.Tensor,
                before: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""The four Pixel2Mesh losses of one stage (batch means; module notes for the formulas).

    Args:
        vertices: ``(B, V, 3)`` predicted vertices; edges: ``(2, E)`` of the mesh.
        gt_points, gt_normals: ``(B, M, 3)`` ground-truth surface samples and their normals.
        before: ``(B, V, 3)`` the same vertices before this stage's deformation (Laplacian term).

    Returns:
        ``{"chamfer", "normal", "edge", "laplacian", "total"}`` scalars; ``total`` uses :data:`LOSS_WEIGHTS`.
    """
    chamfer = chamfer_distance(vertices, gt_points, "pytorch3d", reduction="mean")
    _, nearest, _ = nearest_sq_dists(vertices, gt_points)
    normal_at = torch.gather(gt_normals, 1, nearest[..., None].expand(-1, -1, 3))  # (B, V, 3)
    a, b = edges
    direction = F.normalize(vertices[:, b] - vertices[:, a], dim=-1)
    normal = ((direction * normal_at[:, a]).sum(-1) ** 2).mean()
    edge = ((vertices[:, b] - vertices[:, a]) ** 2).sum(-1).mean()
    laplacian = ((laplacian_coordinates(vertices, edges) - laplacian_coordinates(before, edges)) ** 2).sum(-1).mean()
    terms = dict(chamfer=chamfer, normal=normal, edge=edge, laplacian=laplacian)
    terms["total"] = sum(LOSS_WEIGHTS[k] * v for k, v in terms.items())
    return terms

r"""StructureNet-style hierarchical graph VAE over part boxes: new part layouts, meshed from boxes.

Mo, Guerrero, Yi, Wang, Wonka, Mitra, Guibas, "StructureNet: Hierarchical Graph Networks for 3D
Shape Generation", SIGGRAPH Asia 2019. A shape is a tree of parts (the slide's "hierarchical
graph"); the children of every node are linked by *sibling edges* (here: ``contact`` and
``symmetric``). A recursive encoder folds the tree bottom-up into one code, a recursive
decoder unfolds a code top-down into a tree; trained as a VAE, sampling the prior gives new
layouts.

Encoder (bottom-up). A leaf's feature is an MLP of its box. An inner node's children carry
:math:`h_i^0 = \phi(W[f_i; \text{onehot}(\ell_i)])` and exchange messages along the sibling
edges for ``T`` rounds, then everything is max-pooled into the parent:

.. math::  h_i^{t+1} = \max_{(i, j, \tau) \in E} \text{MLP}_t\big([h_i^t; h_j^t; \text{onehot}(\tau)]\big), \qquad
           f_{\text{parent}} = \text{MLP}\big(\max_i [h_i^0; \dots; h_i^T]\big)

The root feature gives :math:`\mu, \log\sigma^2`, and :math:`z = \mu + \sigma \odot \epsilon`.

Decoder (top-down). A node's feature gives its box and ``K`` child slots; each slot predicts
existence, semantic label and leaf-ness, each pair of slots predicts its edge types; the
existing children then exchange messages weighted by the edge probabilities and recurse:

.. math::  c_k = \phi(W_k f), \quad p^{\text{exist}}_k = \sigma(w_e^\top c_k), \quad
           p^{\tau}_{kl} = \sigma(\text{MLP}_E([c_k; c_l]))_\tau, \quad
           c_k^{t+1} = c_k^t + \phi\Big(\frac{\sum_{l \ne k, \tau} p^\tau_{kl}\, \text{MLP}_t([c_k^t; c_l^t; \tau])}{1 + \sum_{l \ne k, \tau} p^\tau_{kl}}\Big)

Loss (per shape, StructureNet's terms): the decoded child slots are matched to the true children
by the Hungarian algorithm on box L1 + label cross-entropy; then box L1 on every node, BCE on
existence (all slots), cross-entropy on labels, BCE on leaf-ness and on edges (matched slots),
and the KL term :math:`-\tfrac12 \sum (1 + \log\sigma^2 - \mu^2 - \sigma^2)` weighted by ``beta``.

What is kept and what is scaled down:
    * Kept: the recursive hierarchical graph encoder/decoder, sibling edges with message passing
      in both directions, child slots with existence / semantics / leaf flags, Hungarian
      matching of slots to children, edge prediction, the VAE with a KL weight (0.05).
    * Scaled down: the world's hierarchy has two levels (object -> part groups such as "leg"
      -> part instances, :class:`~coursekit.data.world.PartGraph`) where PartNet's is deeper
      (the code recurses to any depth); boxes are axis-aligned ``(cx, cy, cz, sx, sy, sz)``
      (the world's parts are mostly axis-aligned; PartNet uses oriented boxes); 2 edge types
      (contact, same-primitive symmetry) instead of 4 (adjacency, rotational / translational /
      reflective symmetry); no per-part point-cloud geometry; widths 64 / 96 in the ``fast`` / ``cpu``
      profiles (256 at ``gpu`` size, as the paper); one model per class, as the paper.

A generated layout is meshed by :func:`layout_shape` (one :class:`~coursekit.data.world.primitives.Box`
per leaf), which gives a :class:`~coursekit.data.world.Shape` with mesh, SDF and surface sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn
from tqdm.auto import tqdm

from ... import runtime
from ...data.world.primitives import Box, Part, make_pose
from ...data.world.shapes import PART_NAMES, Shape

EDGE_TYPES = ("contact", "symmetric")
"""Sibling edge types, in the order of the ``type`` column of :attr:`PartTree.edges`."""

MIN_SIZE = 1e-3
"""Smallest box side a decoder can output (sizes are ``softplus(.) + MIN_SIZE``)."""

SIZES = {
    "fast": dict(feature=64, hidden=64, z_dim=32, rounds=2, epochs=6, batch_size=4, lr=1e-3, beta=0.05, box_weight=10.0),
    "cpu": dict(feature=96, hidden=96, z_dim=64, rounds=2, epochs=25, batch_size=16, lr=1e-3, beta=0.05, box_weight=10.0),
    "gpu": dict(feature=256, hidden=256, z_dim=256, rounds=2, epochs=200, batch_size=32, lr=1e-3, beta=0.05, box_weight=10.0),
}
"""Sizes per profile (``gpu`` ~ the paper's widths; the paper trains for hundreds of epochs)."""


@dataclass(frozen=True, eq=False)
class PartTree:
    """A part hierarchy with one axis-aligned box per node and typed sibling edges.

    Node 0 is the root. An inner node's box is the union box of its children's.

    Attributes:
        boxes: ``(n, 6)`` float32 ``(cx, cy, cz, sx, sy, sz)``, sizes ``> 0``.
        labels: ``(n,)`` int64 part label in the class vocabulary (``-1`` for the root).
        children: per node, the tuple of its children's node indices.
        edges: per node, ``(E, 3)`` int64 rows ``(i, j, type)`` between its children ``i, j``
            (positions in ``children[node]``), both directions listed; ``type`` indexes :data:`EDGE_TYPES`.
    """

    boxes: torch.Tensor
    labels: torch.Tensor
    children: tuple[tuple[int, ...], ...]
    edges: tuple[torch.Tensor, ...]

    def __len__(self) -> int:
        return len(self.children)

    def leaves(self) -> list[int]:
        """Indices of the nodes without children (the parts that get meshed)."""
        return [i for i, c in enumerate(self.children) if not c]

    def height(self, node: int = 0) -> int:
        """Levels below ``node`` (0 for a leaf)."""
        return 0 if not self.children[node] else 1 + max(self.height(c) for c in self.children[node])


def _union(boxes: torch.Tensor) -> torch.Tensor:
    lo = (boxes[:, :3] - boxes[:, 3:] / 2).amin(0)
    hi = (boxes[:, :3] + boxes[:, 3:] / 2).amax(0)
    return torch.cat([(lo + hi) / 2, hi - lo])


def part_tree(shape: Shape) -> PartTree:
    r"""The :class:`PartTree` of a world shape: object -> part groups -> part instances.

    Leaf boxes are the parts' axis-aligned bounds (:meth:`~coursekit.data.world.primitives.Part.bounds`),
    inner boxes the union of their children's. Edges between two part instances come from
    the shape's :class:`~coursekit.data.world.PartGraph` (``contact``, ``symmetric``); two groups
    are in contact when any of their parts are.

    Args:
        shape: a world :class:`~coursekit.data.world.Shape`.

    Returns:
        the :class:`PartTree` (node indices as in ``shape.part_graph``).
    """
    graph = shape.part_graph
    n = len(graph.names)
    children = tuple(tuple(graph.children(i)) for i in range(n))
    boxes = torch.zeros(n, 6)
    labels = torch.full((n,), -1, dtype=torch.int64)
    for node in range(n):
        if graph.part[node] >= 0:
            part = shape.parts[graph.part[node]]
            lo, hi = (torch.as_tensor(b, dtype=torch.float32) for b in part.bounds())
            boxes[node] = torch.cat([(lo + hi) / 2, (hi - lo).clamp_min(MIN_SIZE)])
            labels[node] = part.label
    for node in sorted(range(n), key=lambda i: -_depth(graph.parent, i)):
        if children[node]:
            boxes[node] = _union(boxes[list(children[node])])
            if node:
                labels[node] = labels[children[node][0]]

    def leaves_under(node: int) -> list[int]:
        return [graph.part[node]] if not children[node] else [p for c in children[node] for p in leaves_under(c)]

    relations = torch.stack([graph.contact, graph.symmetric])  # (T, P, P) over parts
    edges = []
    for node in range(n):
        rows = []
        kids = children[node]
        for a in range(len(kids)):
            for b in range(len(kids)):
                if a == b:
                    continue
                pa, pb = leaves_under(kids[a]), leaves_under(kids[b])
                for t in range(len(EDGE_TYPES)):
                    related = relations[t][pa][:, pb]
                    if related.any() and (t == 0 or (len(pa) == 1 and len(pb) == 1)):
                        rows.append((a, b, t))
        edges.append(torch.tensor(rows, dtype=torch.int64).reshape(-1, 3))
    return PartTree(boxes, labels, children, tuple(edges))


def _depth(parent, node: int) -> int:
    d = 0
    while parent[node] >= 0:
        node, d = parent[node], d + 1
    return d


def layout_shape(tree: PartTree, class_name: str) -> Shape:
    r"""Mesh a layout: one box part per leaf of ``tree``, assembled into a world :class:`Shape`.

    .. math::  \text{part}_\ell = \{x : |x - c_\ell| \le s_\ell / 2\}, \qquad \text{shape} = \bigcup_{\ell \in \text{leaves}} \text{part}_\ell

    Args:
        tree: a :class:`PartTree` (e.g. a sample of :meth:`StructureNetVAE.sample`).
        class_name: the class whose part vocabulary the labels index.

    Returns:
        a :class:`~coursekit.data.world.Shape` (mesh, per-face part labels, SDF, ``sample``).
    """
    names = PART_NAMES[class_name]
    parts = []
    for leaf in tree.leaves():
        label = int(tree.labels[leaf])
        if not 0 <= label < len(names):
            raise ValueError(f"leaf {leaf} has label {label}, outside the {class_name} vocabulary {names}")
        centre, size = tree.boxes[leaf, :3].double(), tree.boxes[leaf, 3:].double().clamp_min(MIN_SIZE)
        parts.append(Part(names[label], label, Box(tuple((size / 2).tolist())), make_pose(None, centre.tolist())))
    if not parts:
        raise ValueError("the tree has no leaves to mesh")
    return Shape.from_parts(class_name, parts)


def _mlp(channels) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(channels[:-1], channels[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(channels) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class StructureNetVAE(nn.Module):
    r"""Hierarchical graph VAE over :class:`PartTree` boxes (module docstring for the equations).

    Args:
        n_labels: size of the part vocabulary (``len(PART_NAMES[class])``).
        max_children: ``K`` child slots per node (at least the most children in the data).
        max_depth: deepest level the decoder unfolds (the world's trees have height 2).
        sizes: a :data:`SIZES` entry (default: the active profile's).

    Methods:
        ``encode(tree) -> (mu, logvar)`` each ``(z_dim,)``; ``loss(tree, generator) -> dict`` of
        scalar terms with ``"total"``; ``decode(z (z_dim,)) -> PartTree``;
        ``sample(n, generator) -> list[PartTree]``; ``reconstruct(tree) -> PartTree`` (decodes ``mu``).
    """

    def __init__(self, n_labels: int, max_children: int, max_depth: int = 2, sizes: dict | None = None):
        super().__init__()
        sizes = dict(sizes or runtime.pick(SIZES))
        d, h, self.z_dim, self.rounds = sizes["feature"], sizes["hidden"], sizes["z_dim"], sizes["rounds"]
        self.n_labels, self.max_children, self.max_depth, self.beta = int(n_labels), int(max_children), int(max_depth), sizes["beta"]
        self.box_weight = sizes["box_weight"]
        n_types = len(EDGE_TYPES)
        # encoder
        self.leaf_encoder = _mlp([6, h, d])
        self.child_in = nn.Linear(d + self.n_labels, d)
        self.enc_messages = nn.ModuleList(_mlp([2 * d + n_types, h, d]) for _ in range(self.rounds))
        self.parent_out = _mlp([(self.rounds + 1) * d, h, d])
        self.mu, self.logvar = nn.Linear(d, self.z_dim), nn.Linear(d, self.z_dim)
        # decoder
        self.root_in = nn.Linear(self.z_dim, d)
        self.box_head = _mlp([d, h, 6])
        self.child_head = nn.Linear(d, self.max_children * d)
        self.exist_head, self.label_head, self.leaf_head = nn.Linear(d, 1), nn.Linear(d, self.n_labels), nn.Linear(d, 1)
        self.edge_head = _mlp([2 * d, h, n_types])
        self.dec_messages = nn.ModuleList(_mlp([2 * d + n_types, h, d]) for _ in range(self.rounds))
        self.child_out = _mlp([(self.rounds + 1) * d, h, d])

    # ------------------------------------------------------------------ encoder
    def _encode_node(self, tree: PartTree, node: int) -> torch.Tensor:
        kids = tree.children[node]
        if not kids:
            return torch.relu(self.leaf_encoder(tree.boxes[node]))
        feats = torch.stack([self._encode_node(tree, c) for c in kids])
        onehot = nn.functional.one_hot(tree.labels[list(kids)].clamp_min(0), self.n_labels).float()
        hs = [torch.relu(self.child_in(torch.cat([feats, onehot], 1)))]
        e = tree.edges[node]
        for mlp in self.enc_messages:
            hs.append(self._messages_max(hs[-1], e, mlp))
        return torch.relu(self.parent_out(torch.cat(hs, 1).amax(0)))

    @staticmethod
    def _messages_max(h: torch.Tensor, edges: torch.Tensor, mlp: nn.Module) -> torch.Tensor:
        out = torch.zeros_like(h)
        if len(edges) == 0:
            return out
        i, j, t = edges.unbind(1)
        msg = torch.relu(mlp(torch.cat([h[i], h[j], nn.functional.one_hot(t, len(EDGE_TYPES)).float()], 1)))
        return out.scatter_reduce(0, i[:, None].expand_as(msg), msg, "amax", include_self=True)

    def encode(self, tree: PartTree) -> tuple[torch.Tensor, torch.Tensor]:
        r"""``tree -> (mu, logvar)``, each ``(z_dim,)``: the posterior :math:`q(z \mid \text{tree})`."""
        root = self._encode_node(tree, 0)
        return self.mu(root), self.logvar(root)

    # ------------------------------------------------------------------ decoder
    def _box(self, feature: torch.Tensor) -> torch.Tensor:
        raw = self.box_head(feature)
        return torch.cat([raw[..., :3], nn.functional.softplus(raw[..., 3:]) + MIN_SIZE], -1)

    def _slots(self, feature: torch.Tensor):
        c = torch.relu(self.child_head(feature)).reshape(self.max_children, -1)
        k = self.max_children
        pairs = torch.cat([c[:, None].expand(k, k, -1), c[None].expand(k, k, -1)], -1)
        return (c, self.exist_head(c).squeeze(-1), self.label_head(c), self.leaf_head(c).squeeze(-1),
                self.edge_head(pairs))

    def _refine(self, c: torch.Tensor, edge_logits: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Message passing among the kept slots, weighted by the edge probabilities; ``(k, D)``."""
        c, p = c[keep], torch.sigmoid(edge_logits[keep][:, keep])  # (k, D), (k, k, T)
        k = len(c)
        p = p * (1 - torch.eye(k, device=c.device))[..., None]
        hs = [c]
        types = torch.eye(len(EDGE_TYPES), device=c.device)
        for mlp in self.dec_messages:
            h = hs[-1]
            msg = torch.stack([torch.relu(mlp(torch.cat([h[:, None].expand(k, k, -1), h[None].expand(k, k, -1),
                                                           types[t].expand(k, k, -1)], -1))) for t in range(len(EDGE_TYPES))], 2)
            agg = (p[..., None] * msg).sum((1, 2)) / (1 + p.sum((1, 2)))[:, None]
            hs.append(h + torch.relu(agg))
        return torch.relu(self.child_out(torch.cat(hs, 1)))

    def decode(self, z: torch.Tensor) -> PartTree:
        r"""Unfold a code ``(z_dim,)`` into a :class:`PartTree` (children kept where :math:`p^{\text{exist}} > 0.5`,
        edges where :math:`p^\tau > 0.5`, recursion where the leaf flag is < 0.5 and depth allows)."""
        if z.shape != (self.z_dim,):
            raise ValueError(f"z must have shape ({self.z_dim},), got {tuple(z.shape)}")
        boxes, labels, children, edges = [], [], [], []

        def grow(feature: torch.Tensor, label: int, depth: int) -> int:
            node = len(boxes)
            boxes.append(self._box(feature))
            labels.append(label)
            children.append(())
            edges.append(torch.zeros(0, 3, dtype=torch.int64))
            if depth >= self.max_depth:
                return node
            c, exist, lab, leaf, edge_logits = self._slots(feature)
            keep = exist > 0
            if not keep.any():
                return node
            refined = self._refine(c, edge_logits, keep)
            kept_labels = lab[keep].argmax(-1).tolist()
            kept_leaf = (leaf[keep] > 0).tolist()
            e = (edge_logits[keep][:, keep] > 0).nonzero()
            edges[node] = e[e[:, 0] != e[:, 1]]
            kids = []
            for f, lb, is_leaf in zip(refined, kept_labels, kept_leaf):
                kids.append(grow(f, lb, self.max_depth if is_leaf else depth + 1))
            children[node] = tuple(kids)
            return node

        with torch.no_grad():
            grow(torch.relu(self.root_in(z)), -1, 0)
        return PartTree(torch.stack(boxes).float(), torch.tensor(labels, dtype=torch.int64), tuple(children), tuple(edges))

    def sample(self, n: int, generator: torch.Generator | None = None) -> list[PartTree]:
        r"""``n`` new layouts decoded from :math:`z \sim \mathcal N(0, I)`."""
        z = torch.randn(n, self.z_dim, generator=generator)
        return [self.decode(zi) for zi in z]

    def reconstruct(self, tree: PartTree) -> PartTree:
        """Decode the posterior mean of ``tree`` (the autoencoder path)."""
        with torch.no_grad():
            return self.decode(self.encode(tree)[0])

    # ------------------------------------------------------------------ loss
    def _node_loss(self, feature: torch.Tensor, tree: PartTree, node: int, terms: dict) -> None:
        terms["box"].append(nn.functional.l1_loss(self._box(feature), tree.boxes[node], reduction="sum"))
        kids = tree.children[node]
        if not kids:
            return
        if len(kids) > self.max_children:
            raise ValueError(f"node {node} has {len(kids)} children, more than max_children={self.max_children}")
        c, exist, lab, leaf, edge_logits = self._slots(feature)
        gt_boxes, gt_labels = tree.boxes[list(kids)], tree.labels[list(kids)]
        with torch.no_grad():  # Hungarian matching of slots to children
            cost = (self._box(c)[:, None] - gt_boxes[None]).abs().sum(-1) \
                - torch.log_softmax(lab, -1)[:, gt_labels]
            slot, child = linear_sum_assignment(cost.cpu().numpy())
        order = np.argsort(child)
        slot = torch.as_tensor(slot[order], dtype=torch.int64)  # slot of child 0, 1, ...
        target = torch.zeros(self.max_children)
        target[slot] = 1
        terms["exist"].append(nn.functional.binary_cross_entropy_with_logits(exist, target, reduction="sum"))
        terms["label"].append(nn.functional.cross_entropy(lab[slot], gt_labels, reduction="sum"))
        is_leaf = torch.tensor([float(not tree.children[k]) for k in kids])
        terms["leaf"].append(nn.functional.binary_cross_entropy_with_logits(leaf[slot], is_leaf, reduction="sum"))
        gt_edges = torch.zeros(len(kids), len(kids), len(EDGE_TYPES))
        e = tree.edges[node]
        if len(e):
            gt_edges[e[:, 0], e[:, 1], e[:, 2]] = 1
        off = ~torch.eye(len(kids), dtype=torch.bool)
        pred_edges = edge_logits[slot][:, slot]
        terms["edge"].append(nn.functional.binary_cross_entropy_with_logits(pred_edges[off], gt_edges[off], reduction="sum"))
        keep = torch.zeros(self.max_children, dtype=torch.bool)
        keep[slot] = True
        refined = self._refine(c, edge_logits, keep)  # rows in slot order
        rank = torch.cumsum(keep, 0) - 1
        for k, s in zip(kids, slot.tolist()):
            self._node_loss(refined[rank[s]], tree, k, terms)

    def loss(self, tree: PartTree, generator: torch.Generator | None = None, sample: bool = True) -> dict[str, torch.Tensor]:
        r"""The VAE loss of one tree: reconstruction terms (sums over nodes) + ``beta`` * KL.

        .. math::  L = w_{\text{box}} L_{\text{box}} + L_{\text{exist}} + L_{\text{label}} + L_{\text{leaf}} + L_{\text{edge}}
                   + \beta\, D_{KL}\big(q(z \mid \text{tree}) \,\|\, \mathcal N(0, I)\big)

        Args:
            tree: a :class:`PartTree`; generator: source of the reparameterisation noise.
            sample: decode :math:`z = \mu + \sigma \epsilon` (the VAE); ``False`` decodes :math:`\mu`
            (a plain autoencoder step, e.g. to overfit one tree).
            (``w_box`` is ``sizes["box_weight"]`` = 10: box errors of a few hundredths must weigh
            as much as a wrong edge.)

        Returns:
            dict of scalars: ``box``, ``exist``, ``label``, ``leaf``, ``edge``, ``kl``, ``total``.
        """
        mu, logvar = self.encode(tree)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=generator).to(mu) if sample else mu
        terms: dict[str, list] = {k: [] for k in ("box", "exist", "label", "leaf", "edge")}
        self._node_loss(torch.relu(self.root_in(z)), tree, 0, terms)
        out = {k: torch.stack(v).sum() if v else mu.new_zeros(()) for k, v in terms.items()}
        out["kl"] = -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum()
        out["total"] = (self.box_weight * out["box"] + sum(out[k] for k in ("exist", "label", "leaf", "edge"))
                        + self.beta * out["kl"])
        return out


def train_structurenet(trees: list[PartTree], n_labels: int, *, sizes: dict | None = None,
                       generator: torch.Generator | None = None, progress: bool = True):
    """Train a :class:`StructureNetVAE` on part trees (Adam, mean loss over a mini-batch of trees).

    Args:
        trees: training :class:`PartTree` s of one class (:func:`part_tree`).
        n_labels: the class's vocabulary size.
        sizes: a :data:`SIZES` entry (default: the active profile's).
        generator: random source (weights, order, noise); progress: tqdm bar.

    Returns:
        ``(model, history)``: the trained model (eval mode) and a dict with the per-epoch mean of
        each loss term (``total``, ``box``, ``exist``, ``label``, ``leaf``, ``edge``, ``kl``).
    """
    sizes = dict(sizes or runtime.pick(SIZES))
    if not trees:
        raise ValueError("trees is empty")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator)))
    max_children = max(len(c) for t in trees for c in t.children)
    model = StructureNetVAE(n_labels, max_children, max(t.height() for t in trees), sizes)
    opt = torch.optim.Adam(model.parameters(), lr=sizes["lr"])
    history: dict[str, list] = {k: [] for k in ("total", "box", "exist", "label", "leaf", "edge", "kl")}
    bs = sizes["batch_size"]
    for _ in tqdm(range(sizes["epochs"]), disable=not progress, desc="StructureNet"):
        order = torch.randperm(len(trees), generator=generator).tolist()
        sums = {k: 0.0 for k in history}
        for start in range(0, len(order), bs):
            batch = [trees[i] for i in order[start:start + bs]]
            losses = [model.loss(t, generator) for t in batch]
            total = torch.stack([l["total"] for l in losses]).mean()
            opt.zero_grad()
            total.backward()
            opt.step()
            for l in losses:
                for k in sums:
                    sums[k] += float(l[k].detach())
        for k in history:
            history[k].append(sums[k] / len(trees))
    return model.eval(), history

"""The procedural 3D world: labelled objects, furnished rooms, and the datasets drawn from them.

One generator feeds every 3D lecture, so a sample's part labels, instance boxes,
SDF and rendered views agree with each other. Everything is deterministic given
a seed (an ``int`` or a ``torch.Generator``).

=================================  ================================================================
module                             what
=================================  ================================================================
:mod:`.primitives`                 closed primitive solids (mesh + exact SDF), posed :class:`Part`
:mod:`.shapes`                     :func:`make_shape`: 12 object classes with part labels
:mod:`.scenes`                     :func:`make_scene`: rooms with semantic/instance labels, boxes
:mod:`.datasets`                   classification, part segmentation, scene and multi-view splits
=================================  ================================================================

>>> from coursekit.data.world import make_shape
>>> chair = make_shape("chair", seed=0)
>>> chair.vertices.shape[1], chair.part_names
(3, ('back', 'seat', 'leg', 'arm'))
"""

from .datasets import (
    MultiViewSet,
    PointCloudSet,
    SceneSet,
    make_classification_split,
    make_multiview_split,
    make_part_segmentation_split,
    make_scene_split,
    part_vocabulary,
    partial_scan,
    split_table,
)
from .primitives import Part
from .scenes import FURNITURE, SCENE_CLASSES, Scene, SceneObject, box_corners, make_scene
from .shapes import CLASSES, PART_NAMES, PartGraph, Shape, make_shape

__all__ = [
    "CLASSES",
    "PART_NAMES",
    "FURNITURE",
    "SCENE_CLASSES",
    "Part",
    "Shape",
    "PartGraph",
    "Scene",
    "SceneObject",
    "PointCloudSet",
    "SceneSet",
    "MultiViewSet",
    "make_shape",
    "make_scene",
    "box_corners",
    "make_classification_split",
    "make_part_segmentation_split",
    "make_scene_split",
    "make_multiview_split",
    "part_vocabulary",
    "partial_scan",
    "split_table",
]

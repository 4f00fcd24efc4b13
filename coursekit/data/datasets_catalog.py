"""The dataset slides as data: what each 3-D dataset holds, how big it is, and how to read a real copy.

The lecture names ShapeNet, ModelNet, PartNet, SceneNet, ScanNet, KITTI, Semantic KITTI
and Waymo (plus ShapeNetPart, the part benchmark coursekit has a loader for). Each entry
says what one sample contains and how it is labelled, gives sizes with their source, names
the coursekit function that reads a copy you already have (nothing is ever downloaded), and
the procedural-world generator that plays the dataset's role offline.

Sizes: every :class:`Count` names where it was read. ``checked=True`` means the number was
read in that source (the slides, a paper's abstract, the dataset's own documentation);
``checked=False`` marks numbers quoted from memory of the paper: verify before relying on them.

>>> print(catalog_table())  # doctest: +ELLIPSIS
| dataset | ...
>>> dataset("ModelNet").loader
'coursekit.data.modelnet.load_modelnet'
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Count", "DatasetInfo", "CATALOG", "dataset", "catalog_table", "counts_table", "loaders_table"]


@dataclass(frozen=True)
class Count:
    """One size figure of a dataset.

    Attributes:
        what: what is counted ("CAD models", "train / test split").
        value: the figure as published ("12,311", "9,843 / 2,468").
        source: where it was read.
        checked: whether it was read in ``source`` (``False``: quoted, verify first).
    """

    what: str
    value: str
    source: str
    checked: bool


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset of the slides.

    Attributes:
        name: the dataset's name.
        slide: the slide it appears on.
        kind: ``"objects"``, ``"object parts"``, ``"indoor scenes"`` or ``"outdoor scenes"``.
        source_data: how the data was made (synthetic CAD, RGB-D scans, LiDAR ...).
        contains: what one sample holds.
        labels: how it is annotated.
        counts: sizes, each with its source.
        reference: the paper.
        loader: the dotted name of the coursekit function that reads a real copy, or ``None``.
        read: one line of code that reads a copy (with the coursekit reader, or plain NumPy), or ``""``.
        read_note: the folder layout, what the reader leaves out, or why there is no reader.
        stand_in: what plays the dataset's role offline in the course (procedural world).
    """

    name: str
    slide: str
    kind: str
    source_data: str
    contains: str
    labels: str
    counts: tuple[Count, ...]
    reference: str
    loader: str | None
    read: str
    read_note: str
    stand_in: str


_SLIDES = "lecture slides"
_MODELNET_DOCS = "PyG and KPConv-PyTorch dataset documentation"

CATALOG: tuple[DatasetInfo, ...] = (
    DatasetInfo(
        name="ShapeNet",
        slide="Large-scale Synthetic Objects: ShapeNet",
        kind="objects",
        source_data="synthetic: 3-D CAD models collected from the web",
        contains="a textured CAD mesh per model (ShapeNetCore: OBJ, aligned and size-normalised); "
                 "precomputed solid and surface voxelisations (binvox, 128^3)",
        labels="WordNet category per model; consistent alignment; parts and symmetry planes for subsets",
        counts=(
            Count("models indexed", "> 3,000,000", "Chang et al., arXiv:1512.03012, abstract", True),
            Count("models classified", "220,000 in 3,135 categories (WordNet synsets)",
                  "Chang et al., arXiv:1512.03012, abstract", True),
            Count("ShapeNetCore", "55 categories, about 51,300 models", "Chang et al., arXiv:1512.03012", False),
            Count("voxelisations", "solid and surface, resolution 128 (binvox)", "shapenet.org/annotations", True),
        ),
        reference='Chang et al., "ShapeNet: An Information-Rich 3D Model Repository", arXiv 2015',
        loader="coursekit.data.mesh_io.load_mesh",
        read='vertices, faces = load_mesh("<ShapeNetCore.v2>/<synset>/<model id>/models/model_normalized.obj")',
        read_note="one mesh at a time; sample points with geometry.sampling.sample_mesh_surface",
        stand_in="coursekit.data.world.make_shape / make_classification_split",
    ),
    DatasetInfo(
        name="ModelNet",
        slide="ModelNet: absorbed by ShapeNet",
        kind="objects",
        source_data="synthetic: CAD models (3D Warehouse), manually classified",
        contains="one OFF mesh per model, in <class>/<train|test>/ folders "
                 "(not consistently aligned, many not watertight)",
        labels="one object class per model",
        counts=(
            Count("ModelNet40", "12,311 CAD models in 40 classes", _MODELNET_DOCS, True),
            Count("ModelNet40 train / test", "9,843 / 2,468", _MODELNET_DOCS, True),
            Count("ModelNet10", "4,899 models in 10 classes (3,991 / 908)", "Wu et al., CVPR 2015", False),
        ),
        reference='Wu et al., "3D ShapeNets: A deep representation for volumetric shapes", CVPR 2015',
        loader="coursekit.data.modelnet.load_modelnet",
        read='train = load_modelnet("<root>/ModelNet40", split="train", n_points=1024)',
        read_note="layout <root>/<class>/<split>/*.off; copes with the 'OFF490 518 0' header quirk and "
                  "skips (and lists) unreadable files",
        stand_in="coursekit.data.world.make_classification_split",
    ),
    DatasetInfo(
        name="ShapeNetPart",
        slide="Datasets for 3D Object Parts (the coarse benchmark before PartNet)",
        kind="object parts",
        source_data="ShapeNetCore models, points sampled on the surface",
        contains="a point cloud per shape (x y z per line) with one part label per point",
        labels="2-6 parts per category, numbered within the category (50 in all)",
        counts=(
            Count("categories / part labels", "16 / 50", "Yi et al., SIGGRAPH Asia 2016", False),
            Count("shapes", "16,881", "Yi et al., SIGGRAPH Asia 2016", False),
        ),
        reference='Yi et al., "A Scalable Active Framework for Region Annotation in 3D Shape Collections", '
                  "SIGGRAPH Asia 2016",
        loader="coursekit.data.shapenetpart.load_shapenetpart",
        read='train = load_shapenetpart("<root>/shapenetcore_partanno_segmentation_benchmark_v0", split="train")',
        read_note="layout synsetoffset2category.txt, <synset>/points/*.pts, <synset>/points_label/*.seg, "
                  "train_test_split/shuffled_<split>_file_list.json",
        stand_in="coursekit.data.world.make_part_segmentation_split",
    ),
    DatasetInfo(
        name="PartNet",
        slide="Fine-grained Part: PartNet (ShapeNetPart2019)",
        kind="object parts",
        source_data="ShapeNetCore models annotated by experts with part templates",
        contains="per model: mesh parts and a hierarchy of part instances (fine-grained, towards mobility)",
        labels="fine-grained, instance-level and hierarchical part annotations",
        counts=(
            Count("part instances", "573,585", "Mo et al., CVPR 2019, abstract / project page", True),
            Count("models", "26,671 in 24 categories", "Mo et al., CVPR 2019, abstract / project page", True),
        ),
        reference='Mo et al., "PartNet: A Large-scale Benchmark for Fine-grained and Hierarchical Part-level '
                  '3D Object Understanding", CVPR 2019',
        loader=None,
        read="",
        read_note="no coursekit reader: PartNet ships JSON hierarchies and per-part OBJ files "
                  "(each part loads with mesh_io.load_mesh)",
        stand_in="Shape.part_graph (hierarchy, contact, symmetry) and make_part_segmentation_split",
    ),
    DatasetInfo(
        name="SceneNet",
        slide="Large-scale Synthetic Scenes: SceneNet",
        kind="indoor scenes",
        source_data="synthetic: rooms assembled from CAD furniture, rendered photorealistically",
        contains="3-D room meshes; RGB-D frames along camera trajectories with their poses",
        labels="per-pixel semantic and instance labels, camera poses (pixel-perfect, rendered)",
        counts=(
            Count("images", "5M photorealistic", f"{_SLIDES}; McCormac et al., ICCV 2017, abstract", True),
            Count("trajectories", "over 15K (16K in the ICCV abstract)", "McCormac et al., arXiv:1612.05079, abstract",
                  True),
        ),
        reference='Handa et al., "Understanding Real World Indoor Scenes with Synthetic Data", CVPR 2016; '
                  'McCormac et al., "SceneNet RGB-D: Can 5M Synthetic Images Beat Generic ImageNet '
                  'Pre-training on Indoor Segmentation?", ICCV 2017',
        loader=None,
        read="",
        read_note="no coursekit reader (PNG frames and protobuf trajectory files)",
        stand_in="coursekit.data.world.make_scene + Scene.viewpoints + geometry.render.render_mesh",
    ),
    DatasetInfo(
        name="ScanNet",
        slide="Large-scale Scanned Real Scenes: ScanNet",
        kind="indoor scenes",
        source_data="real: RGB-D video of rooms (structure sensor on an iPad), reconstructed",
        contains="RGB-D frames with 3-D camera poses; a surface reconstruction (PLY mesh) per scan",
        labels="instance-level semantic segmentation of the reconstruction (20 benchmark classes)",
        counts=(
            Count("views / scans", "2.5M views in 1500 RGB-D scans", _SLIDES, True),
            Count("views / scans", "2.5M views in 1513 scenes", "Dai et al., CVPR 2017, abstract", True),
        ),
        reference='Dai et al., "ScanNet: Richly-annotated 3D Reconstructions of Indoor Scenes", CVPR 2017',
        loader="coursekit.data.mesh_io.load_mesh",
        read='vertices, faces = load_mesh("<scans>/<scene>/<scene>_vh_clean_2.ply")',
        read_note="geometry only: the labels (*_vh_clean_2.labels.ply, *.aggregation.json) are not read by coursekit",
        stand_in="coursekit.data.world.make_scene / make_scene_split (SCENE_CLASSES = the 20 classes)",
    ),
    DatasetInfo(
        name="KITTI",
        slide="KITTI: LiDAR data, labeled by 3D b.boxes",
        kind="outdoor scenes",
        source_data="real: a car with a Velodyne HDL-64E LiDAR and stereo cameras",
        contains="per frame: a LiDAR sweep (x, y, z, reflectance), camera images, calibration",
        labels="3-D boxes (class, size h w l, position, yaw about the camera's vertical axis)",
        counts=(
            Count("3-D object benchmark", "7,481 training and 7,518 test frames (images and point clouds)",
                  "KITTI object devkit readme", True),
        ),
        reference='Geiger et al., "Are we ready for autonomous driving? The KITTI vision benchmark suite", CVPR 2012',
        loader=None,
        read='points = np.fromfile("<root>/training/velodyne/000000.bin", np.float32).reshape(-1, 4)',
        read_note="no coursekit reader; columns x y z reflectance; boxes in training/label_2/*.txt "
                  "(camera frame, y down)",
        stand_in="Scene.boxes (oriented boxes with a yaw about the up axis)",
    ),
    DatasetInfo(
        name="Semantic KITTI",
        slide="Semantic KITTI: LiDAR data, labeled per point",
        kind="outdoor scenes",
        source_data="real: the LiDAR sweeps of the KITTI odometry benchmark",
        contains="per scan: a full 360-degree LiDAR sweep and one label per point, scans posed along sequences",
        labels="dense point-wise semantic (and instance) labels",
        counts=(
            Count("sequences", "22 (00-10 train with 08 for validation, 11-21 test)",
                  "KPConv-PyTorch SemanticKITTI documentation", True),
            Count("scans / classes", "43,552 scans, 28 classes", "Behley et al., ICCV 2019", False),
        ),
        reference='Behley et al., "SemanticKITTI: A Dataset for Semantic Scene Understanding of LiDAR Sequences", '
                  "ICCV 2019",
        loader=None,
        read='labels = np.fromfile("<sequence>/labels/000000.label", np.uint32)',
        read_note="no coursekit reader; semantic = labels & 0xFFFF, instance = labels >> 16; "
                  "points as KITTI's velodyne/*.bin",
        stand_in="Scene.sample (semantic and instance label per point)",
    ),
    DatasetInfo(
        name="Waymo Open Dataset",
        slide="Waymo Open Dataset: LiDAR data, labeled by 3D b.boxes",
        kind="outdoor scenes",
        source_data="real: 5 LiDARs and 5 cameras on Waymo vehicles, urban and suburban",
        contains="20-second scenes of synchronised, calibrated LiDAR and camera frames",
        labels="2-D (camera) and 3-D (LiDAR) boxes with consistent ids across frames; 3-D boxes are 7-DOF "
               "(zero pitch and roll, heading about the vertical axis)",
        counts=(
            Count("scenes", "1,150 of 20 s each", "Sun et al., CVPR 2020, abstract", True),
            Count("3-D box labels", "about 12M", "Sun et al., CVPR 2020", False),
        ),
        reference='Sun et al., "Scalability in Perception for Autonomous Driving: Waymo Open Dataset", CVPR 2020',
        loader=None,
        read="",
        read_note="no coursekit reader (TFRecord / Parquet files, read with the waymo-open-dataset package)",
        stand_in="Scene.boxes (7-DOF boxes: centre, size, yaw about +y)",
    ),
)
"""The datasets of the slides, in slide order (ShapeNetPart next to PartNet)."""


def dataset(name: str) -> DatasetInfo:
    """The catalog entry called ``name`` (case-insensitive)."""
    for entry in CATALOG:
        if entry.name.lower() == name.lower():
            return entry
    raise KeyError(f"no dataset {name!r}; known: {[d.name for d in CATALOG]}")


def _cell(text: str, code: bool = False) -> str:
    """A markdown table cell: ``|`` escaped; code in backticks, else ``<``, ``>`` (not HTML tags) and ``*`` escaped."""
    text = text.replace("|", "\\|").replace("\n", " ")
    return f"`{text}`" if code else text.replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*")


def catalog_table() -> str:
    """A markdown table: one row per dataset, what it contains, its labels and its headline size."""
    lines = ["| dataset | kind | data | contains | labels | size |", "| --- | --- | --- | --- | --- | --- |"]
    for d in CATALOG:
        size = "; ".join(f"{c.value}{'' if c.checked else ' (?)'}" for c in d.counts[:2])
        lines.append("| " + " | ".join(_cell(x) for x in (d.name, d.kind, d.source_data, d.contains, d.labels, size))
                     + " |")
    return "\n".join(lines)


def counts_table() -> str:
    """A markdown table of every size figure with its source (``?``: quoted, not checked in the source)."""
    lines = ["| dataset | what | value | source | checked |", "| --- | --- | --- | --- | --- |"]
    for d in CATALOG:
        for c in d.counts:
            lines.append("| " + " | ".join(_cell(x) for x in (d.name, c.what, c.value, c.source,
                                                               "yes" if c.checked else "?")) + " |")
    return "\n".join(lines)


def loaders_table() -> str:
    """A markdown table: how to read a real copy of each dataset, and what stands in for it offline."""
    lines = ["| dataset | coursekit reader | read a copy | notes | offline stand-in |",
             "| --- | --- | --- | --- | --- |"]
    for d in CATALOG:
        cells = (_cell(d.name), _cell(d.loader, code=True) if d.loader else "—",
                 _cell(d.read, code=True) if d.read else "—", _cell(d.read_note), _cell(d.stand_in))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

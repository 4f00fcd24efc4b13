"""Data for the course: real-format loaders and the procedural 3D world.

Nothing is downloaded: loaders read files the user already has, and the
procedural world makes every 3D notebook run out of the box. Submodules are
imported on demand (``from coursekit.data import modelnet``).

====================================  =========================================================
module                                what
====================================  =========================================================
:mod:`coursekit.data.mnist`           the original MNIST IDX files (gzipped or raw)
:mod:`coursekit.data.digits`          scikit-learn's 8x8 handwritten digits
:mod:`coursekit.data.mesh_io`         OFF / OBJ / PLY / STL meshes (ModelNet's OFF quirk too)
:mod:`coursekit.data.modelnet`        ``<root>/<class>/<split>/*.off`` -> labelled point clouds
:mod:`coursekit.data.shapenetpart`    ShapeNetPart ``points`` / ``points_label`` folders
:mod:`coursekit.data.world`           procedural objects with parts and SDFs, furnished rooms
                                      with instance boxes, and the datasets drawn from them
====================================  =========================================================
"""

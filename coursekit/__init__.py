"""coursekit: a tested PyTorch library and Jupyter notebooks for two lectures,
Spatial Transformer Networks and Deep Learning for 3D Vision.

Start with ``notebooks/00_getting_started.ipynb``; the command line is ``coursekit --help``.
Submodules are imported on demand (``from coursekit import runtime, train``).
"""

__version__ = "0.1.0"

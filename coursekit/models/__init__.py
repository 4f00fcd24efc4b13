"""The named architectures of the lectures, built from :mod:`coursekit.nn` and :mod:`coursekit.stn`.

One module per paper: :mod:`~coursekit.models.stn_mnist` holds the eight networks of
the STN paper's distorted-MNIST table (``build_model("ST-CNN TPS")``).
"""

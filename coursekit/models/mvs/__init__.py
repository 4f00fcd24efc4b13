r"""Multi-view stereo models of lecture 06 ("Task: Reconstruction" .. "Results on DTU benchmark").

===========================  ====================================================================
module                       what
===========================  ====================================================================
:mod:`.plane_sweep`          classical plane sweep, NCC / SAD window costs, winner-take-all
:mod:`.cost_volume`          variance and concatenation cost volumes, soft argmin, confidence
:mod:`.surfacenet`           SurfaceNet: colored voxel cubes, 3D CNN, class-balanced loss
:mod:`.lsm`                  Learnt Stereo Machines: features unprojected into a grid, fused
:mod:`.gcnet`                GC-Net: rectified stereo, concatenation volume, soft argmin
:mod:`.mvsnet`               MVSNet: features, homography warping, variance volume, 3D U-Net
:mod:`.rmvsnet`              R-MVSNet: slice-by-slice conv-GRU regularisation, memory vs ``D``
:mod:`.variational`          R-MVSNet's variational refinement: photometric error + smoothness
:mod:`.point_mvsnet`         Point-MVSNet: PointFlow refinement of a coarse depth map
:mod:`.banet`                BA-Net: a differentiable Levenberg-Marquardt layer
:mod:`.memory`               peak tensor memory of a computation (any device)
:mod:`.mvs_table`            the DTU-layout table, every method trained and evaluated
===========================  ====================================================================

The depth-map methods share one interface: ``model(images, K, R, t, depth_values)`` with
``images (B, V, 3, H, W)`` (view 0 the reference), cameras ``(B, V, ...)`` in the
:mod:`coursekit.geometry.camera` convention and ``depth_values (B, D)`` (a batch of
:class:`coursekit.data.mvs.MVSSamples`), returning a dict with ``depth (B, h, w)`` and
``confidence (B, h, w)``; a depth map of size ``(h, w)`` covers the whole image, so its
cameras are :func:`coursekit.geometry.homography.scale_intrinsics` of the images'.
The geometry lives in :mod:`coursekit.geometry.homography` (plane-sweep warping) and
:mod:`coursekit.geometry.depth_fusion` (fusion); the metrics in :mod:`coursekit.metrics.dtu`.
"""

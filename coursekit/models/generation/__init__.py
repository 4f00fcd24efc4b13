r"""Generators of lecture 05 (3D generation), one paper a module, in the slides' order.

Conditional generation (single-image reconstruction, shape completion):

=================================  ==============================================================
module                             what
=================================  ==============================================================
:mod:`.encoders`                   the image CNN and PointNet encoders the decoders below share
:mod:`.ogn`                        octree generation: empty / filled / mixed cells, only mixed
                                   refined; memory against a dense 3D decoder
:mod:`.psgn`                       PSGN: image -> point set, Chamfer vs EMD losses
:mod:`.folding`                    FoldingNet: a 2D grid folded twice (``folding_decoder``)
:mod:`.atlasnet`                   AtlasNet: K learned maps of the unit square, meshes for free
:mod:`.pixel2mesh`                 Pixel2Mesh: an ico-sphere deformed by graph convolutions;
                                   the topology limit; a part-level (several templates) variant
:mod:`.deepsdf`                    DeepSDF auto-decoder (clamped L1, code inference)
:mod:`.occupancy_network`          Occupancy Networks (encoder + occupancy decoder, BCE)
:mod:`.imnet`                      IM-Net decoder
:mod:`.marching`                   marching cubes of a field or a grid, and scoring the mesh
:mod:`.marrnet`                    MarrNet: image -> 2.5D sketches -> voxels, reprojection losses
:mod:`.structurenet`               StructureNet-style hierarchical part-graph VAE
:mod:`.conditional_table`          every point/mesh/octree generator above trained and scored on
                                   the world against the class-mean-shape and sphere baselines
:mod:`.implicit_table`             the implicit-field models' table
=================================  ==============================================================

Free generation:

=================================  ==============================================================
:mod:`.gan_voxel`                  3D-GAN (voxel generator and discriminator)
:mod:`.gan_points`                 r-GAN / l-GAN (FC generator, PointNet critic, WGAN-GP)
:mod:`.free_table`                 MMD / COV / 1-NNA / JSD / FPD of the free generators
=================================  ==============================================================

Import the module you need (``from coursekit.models.generation import psgn``); nothing is
imported here, so each stays independent of the others.
"""

"""Geometry ops on point clouds, meshes, voxels and cameras (no learnable parameters)."""

"""Figures for the notebooks: matplotlib plots, k3d scenes and ipywidgets explorers.

Import the module you need (``from coursekit.viz.history import plot_history``);
nothing is imported here so that a notebook pays only for what it shows.
"""

r"""Layers for point clouds and graphs, one concept per module, built on :mod:`coursekit.geometry`.

========================  ==========================================================================
module                    layer (paper)
========================  ==========================================================================
:mod:`.mlp`               :class:`~.mlp.SharedMLP` (the per-point MLP :math:`h` of PointNet),
                          :class:`~.mlp.NormAct`, :func:`~.mlp.classifier_head`
:mod:`.tnet`              :class:`~.tnet.TNet` joint alignment network and its orthogonality loss
                          (PointNet, Qi et al. CVPR 2017)
:mod:`.set_abstraction`   farthest-point sampling + ball query / kNN + a local operator
                          (:class:`~.set_abstraction.SetAbstraction`, PointNet++, Qi et al. NeurIPS 2017)
:mod:`.edgeconv`          :class:`~.edgeconv.EdgeConv` on the dynamic kNN graph (DGCNN, Wang et al. TOG 2019)
:mod:`.rsconv`            :class:`~.rsconv.RSConv` relation-shape convolution (RS-CNN, Liu et al. CVPR 2019)
:mod:`.pointconv`         :class:`~.pointconv.PointConv` Monte-Carlo convolution with inverse density
                          weights (PointConv, Wu et al. CVPR 2019; Hermosilla et al. SIGGRAPH Asia 2018)
:mod:`.kpconv`            :class:`~.kpconv.KPConv` rigid and deformable kernel point convolution
                          (Thomas et al. ICCV 2019)
:mod:`.pcnn`              :class:`~.pcnn.PCNNConv` RBF-interpolated kernel (PCNN by extension
                          operators, Atzmon et al. TOG 2018)
========================  ==========================================================================

Grid, graph-spectral and view layers live beside them: :mod:`.view_pooling` (MVCNN),
:mod:`.sparse_conv` (sparse 3-D convolution), :mod:`.octree_conv` (O-CNN / OctNet),
:mod:`.spectral` (spectral graph convolution) and :mod:`.spherical` (spherical CNN).

Conventions shared by the point layers above
    * Points ``(B, N, 3)``, features ``(B, N, C)`` (channels LAST, like the rest of coursekit);
      neighbourhoods are ``(B, M, S)`` ``int64`` indices into the ``N`` points plus a
      ``(B, M, S)`` boolean ``valid`` mask (ball query pads short rows with the first index,
      so sums and means must skip the padded slots; maxima need not).
    * The local convolutions (:class:`~.rsconv.RSConv`, :class:`~.pointconv.PointConv`,
      :class:`~.kpconv.KPConv`, :class:`~.pcnn.PCNNConv`, :class:`~.set_abstraction.MiniPointNet`)
      share one call signature, ``conv(points, features, centres, idx, valid) -> (B, M, C_out)``,
      so :class:`~.set_abstraction.SetAbstraction` can plug any of them into PointNet++'s
      sample-and-group hierarchy.
    * Normalisation is BatchNorm over the channel axis (all points, neighbours and clouds of the
      batch pooled, as ``BatchNorm2d`` on the originals' ``(B, C, M, S)`` tensors). Properties
      such as permutation invariance are stated for ``eval()`` mode, where BatchNorm is a fixed
      per-channel affine map.
    * Layers with an auxiliary loss (deformable :class:`~.kpconv.KPConv`) expose
      ``regularizer()``; the models sum these in their own ``regularizer()``.
"""

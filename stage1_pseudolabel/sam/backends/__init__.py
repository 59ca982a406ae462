"""Stage-1 model backends: SAM 1 (vit_h / vit_l / vit_b, MobileSAM vit_t, proxy), SAM 2.1, HQ-SAM.

* :mod:`~stage1_pseudolabel.sam.backends.variants`: every model type as one table (backend,
  architecture, checkpoint file, download URL, where it is published); standard library only.
* :mod:`~stage1_pseudolabel.sam.backends.base`: the interface, :class:`~stage1_pseudolabel.sam.backends.base.SamBackend`.
* :mod:`~stage1_pseudolabel.sam.backends.sam1`, :mod:`~stage1_pseudolabel.sam.backends.sam2`,
  :mod:`~stage1_pseudolabel.sam.backends.hq`: one module per backend, each with its model builder
  and its backend class (whose ``build`` classmethod builds a model type of the table).
* :mod:`~stage1_pseudolabel.sam.backends.loading`: strict ``weights_only`` loading with errors that
  name the file, the model type and where the official file is.
* :mod:`~stage1_pseudolabel.sam.backends.build`: :func:`~stage1_pseudolabel.sam.backends.build.build_backend`,
  the backend of any model type.

Importing this package imports nothing: no model package is imported and no stand-in installed until a
backend is built.
"""

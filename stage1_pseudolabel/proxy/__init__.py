"""The project's own *proxy SAM*: a small SAM-architecture stand-in for pretrained SAM.

Official SAM weights cannot ship with the project and cannot be downloaded everywhere, so the demo
uses a model the project trains itself, offline, on CPU (``make proxy-sam``): a compact CNN image
encoder producing SAM's 256-channel embedding, with ``segment_anything``'s own ``PromptEncoder`` and
``MaskDecoder`` (reduced MLP widths), pretrained from box and point prompts on synthetic *source*
scenes. It is **not** pretrained SAM: numbers obtained with it say that the method works, not how
well it works with SAM. Users with official weights pass ``SAM_CHECKPOINT`` instead.

* :func:`stage1_pseudolabel.sam.proxy.build_proxy_sam` builds it (model type ``"proxy"`` of
  :func:`stage1_pseudolabel.sam.backends.sam1.build_sam`).
* :mod:`stage1_pseudolabel.proxy.train_proxy` pretrains it and writes
  ``data/checkpoints/proxy_sam.pth`` (a plain state dict) with a JSON sidecar.
"""

"""Stage-1 pipeline: weak labels -> cached SAM embeddings -> fine-tuned mask decoder -> pseudo-masks.

Each step is a module with a ``main()`` CLI (and a Makefile target) and a ``run_*`` function:

* :mod:`.embed` (``make stage1-embed``): frozen image encoder once per image, fp16 cache.
* :mod:`.train` (``make stage1-train``): mask decoder fine-tuned with the logic loss (DDP via torchrun).
* :mod:`.generate` (``make stage1-generate`` / ``stage1-zeroshot``): VOC palette PNG pseudo-masks.

Shared pieces: :mod:`.config` (YAML + overrides), :mod:`.cache` (embedding cache), :mod:`.model`
(SAM from the config, decoder checkpoints), :mod:`.prepare` (objects, prompts, constraints per image),
:mod:`.predict` (decoder call, class distribution, mask), :mod:`.sharding`, :mod:`.logs`.
"""

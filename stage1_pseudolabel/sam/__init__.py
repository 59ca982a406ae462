"""SAM models: building, checkpoint loading, the encoder's input, the batched decoder call.

Nothing happens at import: ``segment_anything`` (and, where torchvision is missing, the project's
torchvision stand-in) is imported by :func:`stage1_pseudolabel.sam.modeling.sam_modeling` the first
time a model is built.
"""

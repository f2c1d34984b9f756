"""The bottom layer: what the components, the trainer, the serving runtime and the pipeline share.

  config            the one frozen PipelineConfig and its sections
  schema            prepared and joined feature names, the data directory layout
  artifacts         sidrec's TFX artifact types
  *_io              one reader/writer module per artifact type and its on-disk layout
  registry          the extension points: representations, codebook methods, reported metrics

Nothing here imports components, trainer, serving or tfx_pipeline (tests/test_layering.py).
"""

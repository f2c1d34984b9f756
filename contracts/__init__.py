"""The bottom layer: what the components, the trainer, the serving runtime and the pipeline share.

  config            the one frozen PipelineConfig and its sections
  schema            prepared and joined feature names, the data directory layout
  artifacts         sidrec's TFX artifact types
  *_io              one module per artifact type: its on-disk layout, names and readers
  transform_settings, trainer_io   the Transform and Trainer boundaries (typed settings)
  serving_api       the exported ranker's signature, input and output names
  beam_runners      which Beam runners run in the launching process
  registry          the extension points: representations, codebook methods, reported metrics

Nothing here imports components, trainer, serving or tfx_pipeline (tests/test_layering.py).
"""

"""The serving runtime for pushed sidrec models (TF Serving's model-server config, warmup,
client, server). It talks to SavedModels and TF Serving's protos only: it imports neither
trainer nor tfx_pipeline (tests/test_layering.py)."""

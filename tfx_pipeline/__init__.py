"""The pipeline DAG, its runners, the CLI, the report and the experiment (the top layer).
"""
import os as _os

# TFRS needs Keras 2 (tf_keras): set before TensorFlow loads. This package is the entry point of
# the CLI and of the runners used as a library.
_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

"""The ranking model, its Transform preprocessing_fn and the Trainer's run_fn.
"""
import os as _os

# TFRS needs Keras 2 (tf_keras): set before TensorFlow loads. This package is the entry point of
# run_fn / preprocessing_fn loaded by TFX's stock executors, and of direct use of the model.
_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

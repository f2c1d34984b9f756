"""sidrec's custom TFX components, one folder each (component.py, spec.py, executor.py).
"""
import os as _os

# TFRS needs Keras 2 (tf_keras): set before TensorFlow loads. This package is the entry point of
# every executor process: Beam workers and Kubeflow containers import executors by dotted path.
_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import os as _os

# TFRS needs Keras 2 (tf_keras). Set before TensorFlow is imported by anything in this package,
# including in Beam workers and Kubeflow containers that import our executors by dotted path.
_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

"""Test-session set-up shared by every test directory.

TFRS needs Keras 2 (tf_keras): TF_USE_LEGACY_KERAS must be set before anything imports
TensorFlow, and this file is loaded by pytest before any test module.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Nothing in the test suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

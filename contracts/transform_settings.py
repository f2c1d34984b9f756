"""The Transform boundary: the one JSON section `trainer.preprocessing.preprocessing_fn` reads.

Transform's `custom_config` is `{"settings": TransformSettings JSON}`. Widths come from the
data, not from here: the joined schema gives each codebook's codes and the history a fixed
shape (SemanticIdJoiner), and preprocessing_fn reads those static shapes. K per codebook is a
setting because preprocessing_fn cannot read artifact properties (the SentencePiece analyzer
maps (level, code) to one character, level * K + code).
"""
import dataclasses
import json
from typing import Any, Dict, Tuple

from contracts import schema

SETTINGS_KEY = "settings"
# Name prefixes of the transformed features that carry a codebook's codes, and of every history
# twin (trainer/model/features.py builds the names from them; ExamplePacker's chunk key leaves
# the code features out).
ITEM_CODES_PREFIX = schema.ITEM_CODES_PREFIX  # a codebook's codes keep their joined name
ITEM_SPM_TOKENS_PREFIX = "item_spm_tokens_"
HISTORY_PREFIX = "history_"


@dataclasses.dataclass(frozen=True)
class TransformSettings:
  # Rows of the hashed random item id (RankingConfig.random_id_rows).
  random_id_rows: int
  # Item-id vocabulary OOV buckets for items outside the training split.
  item_oov_buckets: int
  # SentencePiece sub-ID vocabulary size (RankingConfig.table_budget).
  spm_vocab_size: int
  # K of every codebook whose codes are joined: {codebook name: codebook_size}.
  codebook_sizes: Dict[str, int]
  # Codebooks whose SIDs get SentencePiece sub-ID tokens (the SID codebook).
  spm_codebooks: Tuple[str, ...] = ()

  def __post_init__(self):
    object.__setattr__(self, "spm_codebooks", tuple(self.spm_codebooks))
    missing = [c for c in self.spm_codebooks if c not in self.codebook_sizes]
    if missing:
      raise ValueError(f"TransformSettings: spm_codebooks {missing} have no codebook_sizes "
                       f"(known: {sorted(self.codebook_sizes)})")

  def custom_config(self) -> Dict[str, Any]:
    """Transform's `custom_config`."""
    return {SETTINGS_KEY: json.dumps(dataclasses.asdict(self), sort_keys=True)}

  @classmethod
  def from_custom_config(cls, custom_config: Dict[str, Any]) -> "TransformSettings":
    if SETTINGS_KEY not in (custom_config or {}):
      raise ValueError("preprocessing_fn needs Transform's custom_config "
                       "{'settings': TransformSettings JSON} (contracts/transform_settings.py)")
    return cls(**json.loads(custom_config[SETTINGS_KEY]))

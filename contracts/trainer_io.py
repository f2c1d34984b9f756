"""The Trainer boundary: SidRankingTrainer's settings, what its executor hands `run_fn`, and
the ModelRun files run_fn writes.

`fn_args.custom_config` holds two JSON sections: `settings` (TrainerSettings, from the DAG:
the RankingConfig) and `inputs` (TrainerInputs, added by the executor: the URIs and code
shapes of the artifacts the exported model embeds, and whether the train / eval files are
ExamplePacker's chunks). The stock Trainer cannot pass artifact URIs itself: its
custom_config is JSON-dumped when the pipeline is built, before any artifact exists.
"""
import dataclasses
import json
from typing import Any, Dict

from contracts import config as config_lib

SETTINGS_KEY = "settings"
INPUTS_KEY = "inputs"
TRAIN_STATS_FILE = "train_stats.json"  # in the ModelRun artifact


@dataclasses.dataclass(frozen=True)
class TrainerSettings:
  ranking: config_lib.RankingConfig

  def custom_config(self) -> Dict[str, Any]:
    return {SETTINGS_KEY: config_lib.to_json(self)}

  @classmethod
  def from_custom_config(cls, custom_config: Dict[str, Any]) -> "TrainerSettings":
    if SETTINGS_KEY not in (custom_config or {}):
      raise ValueError("run_fn needs the Trainer's custom_config {'settings': TrainerSettings "
                       "JSON} (contracts/trainer_io.py)")
    values = json.loads(custom_config[SETTINGS_KEY])
    return cls(ranking=config_lib.from_dict(config_lib.RankingConfig, values["ranking"]))


@dataclasses.dataclass(frozen=True)
class CodesInput:
  """One codebook's SemanticIds artifact: where, C code columns, codes in [0, K)."""
  uri: str
  code_columns: int
  codebook_size: int


@dataclasses.dataclass(frozen=True)
class TrainerInputs:
  """What run_fn reads besides the examples: every codebook's codes, the content (raw, or the
  ContentAligner's for aligned_dense), the chunks flag; for aligned representations the
  alignment (its map) and the aligned codebooks' SavedModels {codebook: dir}, which the
  exported ranker embeds to rank a new item from its raw content embedding; and where the
  item_id_vocab Trainer writes its learned item table (contracts/item_vectors_io.py)."""
  codes: Dict[str, CodesInput]
  item_embeddings_uri: str = ""
  packed: bool = False
  alignment_uri: str = ""
  aligned_codebooks: Dict[str, str] = dataclasses.field(default_factory=dict)
  item_vectors_uri: str = ""

  def __post_init__(self):
    object.__setattr__(self, "codes", {
        name: c if isinstance(c, CodesInput) else CodesInput(**c)
        for name, c in sorted(self.codes.items())})

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), sort_keys=True)

  @classmethod
  def from_custom_config(cls, custom_config: Dict[str, Any]) -> "TrainerInputs":
    if INPUTS_KEY not in (custom_config or {}):
      raise ValueError("run_fn needs the `inputs` SidRankingTrainer's executor adds to "
                       "custom_config: run it through SidRankingTrainer, not the stock Trainer")
    return cls(**json.loads(custom_config[INPUTS_KEY]))

"""report.md's alignment section: the R^2, the alignment stages' share and aligned vs raw."""
from contracts import config as config_lib
from tfx_pipeline import report
from tfx_pipeline import report_markdown


def test_alignment_section_counts_only_the_stages_alignment_adds():
  config = config_lib.PipelineConfig(representations=("no_item", "sid_prefix_ngram",
                                                      "aligned_sid_prefix_ngram", "aligned_moc"))
  stages = report.alignment_stages(config)
  assert stages == ["ContentAligner", "AlignedRqKMeansCodebookTrainer",
                    "AlignedRqKMeansSemanticIdAssigner", "AlignedMixtureOfCodesCodebookTrainer",
                    "AlignedMixtureOfCodesSemanticIdAssigner", "ItemIdVocabTrainer"]
  seconds = {s: 10.0 for s in stages}
  # The aligned representations' own stages are what any representation costs: not counted.
  seconds.update({"AlignedSidPrefixNgramTrainer": 500.0, "AlignedMocEvaluator": 500.0,
                  "Transform": 100.0})
  reps = {"sid_prefix_ngram": {"auc": 0.70, "auc_new_items": 0.62, "gauc_new_items": 0.54},
          "aligned_sid_prefix_ngram": {"auc": 0.71, "auc_new_items": 0.65,
                                       "gauc_new_items": 0.58},
          "aligned_moc": {"auc": 0.69, "auc_new_items": 0.64, "gauc_new_items": 0.57}}
  text = "\n".join(report_markdown.alignment_lines(
      {"alignment": {"method": "ridge", "fit_items": 2828, "min_train_interactions": 20,
                     "folds": 5, "r2_held_out": 0.15, "r2_in_sample": 0.6, "stages": stages},
       "components": {"seconds": seconds, "pipeline_seconds": 600.0}}, reps))
  assert "held-out R² 0.150 (in sample 0.600)" in text
  assert "took 60 s of this run's 600 s (10%)" in text
  assert "| `aligned_sid_prefix_ngram` | `sid_prefix_ngram` | 0.7100 (+0.0100) | " \
         "0.6500 (+0.0300) | 0.5800 (+0.0400) |" in text
  # The raw counterpart was not run: no difference is made up.
  assert "| `aligned_moc` | `moc` | 0.6900 (–) |" in text
  assert report_markdown.alignment_lines({"alignment": None}, reps) == []


def test_with_item_id_vocab_listed_only_its_item_table_export_counts_as_alignment():
  config = config_lib.PipelineConfig(representations=("item_id_vocab", "aligned_sid_spm"))
  stages = report.alignment_stages(config)
  assert "ItemIdVocabTrainer" not in stages
  seconds = {s: 10.0 for s in stages}
  seconds["ItemIdVocabTrainer"] = 300.0
  got = report_markdown.alignment_seconds(
      {"alignment": {"stages": stages, "item_vectors_seconds": 4.5},
       "components": {"seconds": seconds, "pipeline_seconds": 900.0}})
  assert got == {"alignment": 10.0 * len(stages) + 4.5, "pipeline": 900.0}
  # Served from cache, the Trainer exported nothing in this run.
  cached = report_markdown.alignment_seconds(
      {"alignment": {"stages": stages, "item_vectors_seconds": 4.5},
       "components": {"seconds": seconds, "pipeline_seconds": 900.0,
                      "cached": ["ItemIdVocabTrainer"]}})
  assert cached["alignment"] == 10.0 * len(stages)

"""Registry of evaluation metrics: what the Evaluator computes and what every report shows.

TFMA_METRICS are the TFMA metric classes of the Evaluator's EvalConfig (tfx_pipeline/
evaluation.py), each with the metric keys it outputs. REPORTED are the figures of one
representation's evaluation, in column order: a TFMA key on a slice, the EvaluationConfig
field whose lower bound gates the push (if any), and where the figure appears (`table`: the
report.md / experiment tables and the printed summary; `experiment`: summarized over seeds).
report.py, report_markdown.py, experiment.py, experiment_markdown.py and their tests read it.
"""
import dataclasses
from typing import Optional, Tuple

from contracts import schema

# TFMA slice keys; () = the whole eval split.
OVERALL = ()
NEW_ITEMS = ((schema.ITEM_COHORT, schema.COHORT_NEW),)
SEEN_ITEMS = ((schema.ITEM_COHORT, schema.COHORT_SEEN),)


@dataclasses.dataclass(frozen=True)
class TfmaMetric:
  class_name: str
  module: str
  outputs: Tuple[str, ...]
  config: str = ""  # JSON keyword arguments of the metric class


@dataclasses.dataclass(frozen=True)
class ReportedMetric:
  key: str
  label: str
  tfma_name: str
  slice: tuple = OVERALL
  gate: Optional[str] = None
  # True: a bound of 0 means "not gated" (the metric is reported only). Otherwise a bound of 0
  # still gates: TFMA then fails a model whose eval split lacks the slice.
  gate_off_at_zero: bool = False
  # The EvaluationConfig field bounding how much the figure may drop against the baseline
  # model (the model already serving), if any.
  change_gate: Optional[str] = None
  table: bool = False
  experiment: bool = False
  count: bool = False  # an integer count, not a rate


# All three share one TFMA combiner (tfx_pipeline/slice_metrics.py), run once per example and
# slice; each names the keys it reports and gates.
TFMA_METRICS = (
    # Exact pooled AUC from the GAUC combiner: TFMA's native AUC gave the same values (to 6
    # decimals on every ML-1M slice) and TFMA took 189 s instead of 125 s.
    TfmaMetric("ExactAUC", "tfx_pipeline.gauc", ("auc",)),
    TfmaMetric("PerUserAUC", "tfx_pipeline.gauc", ("gauc", "gauc_users"), '{"name": "gauc"}'),
    # example_count, calibration, binary_crossentropy, mean_label, mean_prediction under TFMA's
    # own keys from the same combiner: TFMA's five native metrics gave the same values for 31% of
    # the ML-1M Evaluator's time.
    TfmaMetric("LabelScoreStatistics", "tfx_pipeline.score_stats",
               ("example_count", "calibration", "binary_crossentropy", "mean_label",
                "mean_prediction")),
)

REPORTED = (
    ReportedMetric("auc", "AUC", "auc", OVERALL, gate="min_auc", change_gate="max_auc_drop",
                   table=True, experiment=True),
    ReportedMetric("auc_new_items", "AUC new", "auc", NEW_ITEMS, gate="min_auc_new_items",
                   change_gate="max_auc_drop_new_items", table=True, experiment=True),
    ReportedMetric("auc_seen_items", "AUC seen", "auc", SEEN_ITEMS, table=True,
                   experiment=True),
    ReportedMetric("gauc", "GAUC", "gauc", OVERALL, gate="min_gauc", gate_off_at_zero=True,
                   table=True, experiment=True),
    ReportedMetric("gauc_new_items", "GAUC new", "gauc", NEW_ITEMS, table=True,
                   experiment=True),
    ReportedMetric("gauc_seen_items", "GAUC seen", "gauc", SEEN_ITEMS, table=True,
                   experiment=True),
    ReportedMetric("gauc_users", "GAUC users", "gauc_users", OVERALL, count=True),
    ReportedMetric("gauc_users_new_items", "GAUC users new", "gauc_users", NEW_ITEMS,
                   count=True),
    ReportedMetric("calibration", "calibration", "calibration", OVERALL, experiment=True),
    ReportedMetric("binary_crossentropy", "BCE", "binary_crossentropy", OVERALL),
    ReportedMetric("eval_examples", "eval examples", "example_count", OVERALL, count=True),
    ReportedMetric("eval_examples_new_items", "eval examples new", "example_count", NEW_ITEMS,
                   count=True),
)

TABLE = tuple(m for m in REPORTED if m.table)
EXPERIMENT = tuple(m.key for m in REPORTED if m.experiment)


def producer(tfma_name: str) -> TfmaMetric:
  """The TFMA metric class that outputs `tfma_name`."""
  for metric in TFMA_METRICS:
    if tfma_name in metric.outputs:
      return metric
  raise ValueError(f"no TFMA metric in the registry outputs {tfma_name!r}")

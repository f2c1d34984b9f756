"""`sidrec.<Type>`: the import path of sidrec's custom artifact types in a Kubeflow V2 task.

The V2 compiler gives a custom artifact type the schema title `TYPE_NAME` (`sidrec.Codebook`,
contracts/artifacts.py), and TFX's container entry point turns a title it does not know back
into a class by importing the title as `<module>.<class>`
(tfx/orchestration/kubeflow/v2/container/kubeflow_v2_entrypoint_utils.py `_retrieve_class_path`
-> `import_utils.import_class_by_path`). Without this module every task that reads or writes a
sidrec artifact fails with `ImportError: Could not import sidrec.ItemEmbeddings`
(found by `sidrec run-compiled`). The types themselves live in contracts/artifacts.py.
"""
from contracts.artifacts import Codebook, ItemEmbeddings, ItemVectors, PackedExamples, SemanticIds

__all__ = ["Codebook", "ItemEmbeddings", "ItemVectors", "PackedExamples", "SemanticIds"]

"""The packages import downward only: the import graph, derived from the code with ast.

  layer 0  contracts                         config, feature names, artifacts, io, registries
  layer 1  components, trainer, serving      each imports contracts only (not each other)
  layer 2  tfx_pipeline                      the DAG, runners, CLI, report, experiment

Product modules never import tests (test helpers live in tests/fixtures, outside the
installed packages); test modules may import anything. The units of a layer (a sub-package such
as components.codebook or trainer.model, or a top-level module such as trainer.run) must not
import each other in a cycle.
"""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = {"contracts": 0, "components": 1, "trainer": 1, "serving": 1, "tfx_pipeline": 2}
OURS = set(LAYERS) | {"tests", "benchmarks"}


def _is_test(path: str) -> bool:
  name = os.path.basename(path)
  return name.endswith("_test.py") or name.startswith("test_") or name == "conftest.py"


def _module_name(path: str) -> str:
  rel = os.path.relpath(path, ROOT)[:-len(".py")].replace(os.sep, ".")
  return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def _product_modules():
  """{module name: path} of every non-test module of the layered packages."""
  out = {}
  for package in LAYERS:
    for folder, _, files in os.walk(os.path.join(ROOT, package)):
      for name in files:
        path = os.path.join(folder, name)
        if name.endswith(".py") and not _is_test(path):
          out[_module_name(path)] = path
  return out


def imports_of(path: str, module: str):
  """Every module of ours that `path` imports, anywhere in the file (lazy imports included)."""
  tree = ast.parse(open(path).read(), filename=path)
  package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        parts = package.split(".")
        base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
      names = [base] + [f"{base}.{alias.name}" for alias in node.names]
    else:
      continue
    found.update(n for n in names if n.split(".")[0] in OURS)
  return found


MODULES = _product_modules()


def _edges():
  """(importer, imported) between our product modules; an imported name that is a package
  attribute (`from trainer import preprocessing`) resolves to the module when one exists."""
  edges = set()
  for module, path in MODULES.items():
    for name in imports_of(path, module):
      if name.split(".")[0] == "tests":
        edges.add((module, name))
        continue
      target = name if name in MODULES else name.rpartition(".")[0]
      if target in MODULES and target != module:
        edges.add((module, target))
  return edges


def test_the_layering_is_derived_from_real_modules():
  # The walk finds the modules the layers are about (a broken walk would pass trivially).
  for expected in ("contracts.config", "components.semantic_id_joiner.executor",
                   "trainer.signatures", "tfx_pipeline.pipeline", "serving"):
    assert expected in MODULES, expected
  edges = _edges()
  assert ("tfx_pipeline.pipeline", "components.semantic_id_joiner.component") in edges
  assert ("trainer.preprocessing", "contracts.schema") in edges


def test_no_upward_or_sideways_import_between_layers():
  bad = []
  for importer, imported in sorted(_edges()):
    a, b = importer.split(".")[0], imported.split(".")[0]
    if b == "tests":
      bad.append(f"{importer} imports test code {imported}")
    elif a != b and LAYERS[b] >= LAYERS[a]:
      bad.append(f"{importer} (layer {LAYERS[a]}) imports {imported} (layer {LAYERS[b]})")
  assert not bad, "imports against the layering:\n" + "\n".join(bad)


def _unit(module: str) -> str:
  return ".".join(module.split(".")[:2])


def test_no_import_cycle_between_units():
  graph = {}
  for importer, imported in _edges():
    a, b = _unit(importer), _unit(imported)
    if a != b and b.split(".")[0] != "tests":
      graph.setdefault(a, set()).add(b)
  state, cycles = {}, []

  def visit(node, stack):
    state[node] = "open"
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == "open":
        cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
      elif nxt not in state:
        visit(nxt, stack + [nxt])
    state[node] = "done"

  for node in sorted(graph):
    if node not in state:
      visit(node, [node])
  assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("source, expected", [
    ("from trainer import signatures\n", "layer 1) imports trainer.signatures (layer 1)"),
    ("import tfx_pipeline.pipeline\n", "imports tfx_pipeline.pipeline (layer 2)"),
    ("def f():\n  from tests.fixtures import sids\n", "imports test code tests.fixtures.sids"),
])
def test_a_bad_import_is_caught(tmp_path, monkeypatch, source, expected):
  """The checks fail on a planted violation (in a module of `serving`, layer 1)."""
  path = os.path.join(ROOT, "serving", "_planted_import.py")
  monkeypatch.setitem(MODULES, "serving._planted_import", path)
  real_open = open

  def fake_open(p, *args, **kwargs):
    if p == path:
      planted = tmp_path / "planted.py"
      planted.write_text(source)
      return real_open(planted, *args, **kwargs)
    return real_open(p, *args, **kwargs)

  monkeypatch.setattr("builtins.open", fake_open)
  with pytest.raises(AssertionError, match=expected.replace("(", r"\(").replace(")", r"\)")):
    test_no_upward_or_sideways_import_between_layers()

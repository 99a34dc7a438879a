"""Import checks beside import-linter's contracts (`make imports`, part of `make lint`).

1. No import cycle between files of plugins/tender_pipeline/ and search_api/: a cycle makes
   import order matter and hides which module owns what. Every import counts, also one inside a
   function (a lazy import that only dodges the cycle at run time is still a cycle in the design).
2. The DAG files (dags/) import only the standard library, Airflow (and pendulum, Airflow's date
   library) and our own packages: the work belongs in tender_pipeline, where it is tested without
   Airflow. Which of our packages they may import is an import-linter contract (pyproject.toml).

Reads the import graph with grimp (import-linter's own library). Run from the repo root:

    PYTHONPATH=plugins:. .venv/bin/python scripts/check_imports.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tender_pipeline", "search_api")
DAG_THIRD_PARTY = {"airflow", "pendulum"}
OWN = {"tender_pipeline", "search_api", "dags"}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def check_cycles(graph: grimp.ImportGraph) -> list[str]:
    modules = {m for m in graph.modules if m.split(".")[0] in PACKAGES}
    edges = {m: set(graph.find_modules_directly_imported_by(m)) & modules for m in modules}
    problems = []
    for component in _cycles(edges):
        lines = [f"import cycle between {len(component)} files: {', '.join(component)}"]
        for importer in component:
            for imported in sorted(edges[importer] & set(component)):
                for detail in graph.get_import_details(importer=importer, imported=imported):
                    lines.append(f"    {importer} -> {imported} (l.{detail['line_number']}: "
                                 f"{detail['line_contents']})")
        lines.append("  Fix: move what both sides need into a module of its own that imports neither "
                     "(e.g. tender_pipeline/validation_result.py, embed/unit_vectors.py).")
        problems.append("\n".join(lines))
    return problems


def check_dags(graph: grimp.ImportGraph) -> list[str]:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    problems = []
    for dag in sorted(m for m in graph.modules if m.startswith("dags.")):
        for imported in sorted(graph.find_modules_directly_imported_by(dag)):
            top = imported.split(".")[0]
            if top in stdlib or top in OWN or top in DAG_THIRD_PARTY:
                continue
            for detail in graph.get_import_details(importer=dag, imported=imported):
                problems.append(f"{dag} imports {imported} (l.{detail['line_number']}: {detail['line_contents']}): "
                                f"a DAG file imports only Airflow and tender_pipeline; move the code that "
                                f"needs {top} into a function of the package and call that from the task.")
    return problems


def main() -> int:
    sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]
    graph = grimp.build_graph(*PACKAGES, "dags", include_external_packages=True, cache_dir=None)
    problems = check_cycles(graph) + check_dags(graph)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"imports: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    dags = sum(1 for m in graph.modules if m.startswith("dags."))
    print(f"imports: no cycle between the files of {', '.join(PACKAGES)}; "
          f"the {dags} DAG files import only Airflow, pendulum, the standard library and our packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())

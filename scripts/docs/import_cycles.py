"""An import-linter contract type: no module imports itself back, through any chain of imports.

import-linter's own ``acyclic_siblings`` compares sibling modules and packages.
It does not see a package's ``__init__`` importing a submodule that imports the
package back, nor a cycle that runs through two root packages. This contract
looks at every module of every root package at once and fails on each group of
modules that import one another in a circle (a strongly connected component),
listing the imports inside it. ``pyproject.toml`` registers it and
``make lint`` runs it with the other contracts (``lint-imports``).
"""

from __future__ import annotations

import grimp
from importlinter import Contract, ContractCheck, output


class AcyclicModulesContract(Contract):
    type_name = "acyclic_modules"

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        cycles: list[list[tuple[str, str]]] = []
        placed: set[str] = set()
        for module in sorted(graph.modules):
            if module in placed:
                continue
            # Everything `module` reaches that also reaches `module`: its cycle, if it has one.
            component = graph.find_upstream_modules(module) & graph.find_downstream_modules(module)
            if not component:
                continue
            component.add(module)
            placed |= component
            cycles.append(
                [
                    (importer, imported)
                    for importer in sorted(component)
                    for imported in sorted(graph.find_modules_directly_imported_by(importer) & component)
                ]
            )
        return ContractCheck(kept=not cycles, metadata={"cycles": cycles})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for imports in check.metadata["cycles"]:
            modules = sorted({module for pair in imports for module in pair})
            output.print_error(f"Import cycle among {len(modules)} modules: {', '.join(modules)}")
            for importer, imported in imports:
                output.print_error(f"- {importer} -> {imported}", bold=False)
            output.new_line()

"""The documentation's promises: every public name has a docstring, and the README's tables of
results are the ones the benchmarks' JSON files give (benchmarks/readme_tables.py)."""
import inspect
import subprocess
import sys
import types
from pathlib import Path

import tfvae

ROOT = Path(__file__).resolve().parents[1]


def public_names():
    """(qualified name, object) of every public class, function and method reachable from
    `tfvae.__all__`: the package's names, its modules' `__all__`, and the public methods and
    properties that tfvae's classes define themselves (not those inherited from Keras; an override
    of a documented Keras method, such as `call` or `get_config`, inherits its docstring)."""
    seen, found = set(), []

    def visit(qualname, obj):
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, types.ModuleType):
            if not obj.__name__.startswith("tfvae"):
                return
            found.append((qualname, obj))
            for name in getattr(obj, "__all__", []):
                visit(f"{qualname}.{name}", getattr(obj, name))
        elif inspect.isclass(obj):
            if not obj.__module__.startswith("tfvae"):
                return
            found.append((qualname, obj))
            for name, member in vars(obj).items():
                if name.startswith("_"):
                    continue
                function = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
                if inspect.isfunction(function):  # looked up on the class: an override of a
                    found.append((f"{qualname}.{name}", getattr(obj, name)))  # documented method inherits its doc
        elif inspect.isfunction(obj) and obj.__module__.startswith("tfvae"):
            found.append((qualname, obj))

    for name in tfvae.__all__:
        visit(f"tfvae.{name}", getattr(tfvae, name))
    return found


def test_every_public_name_has_a_docstring():
    names = public_names()
    assert len(names) > 100  # the walk reaches the modules, their classes and methods
    missing = [name for name, obj in names if not (inspect.getdoc(obj) or "").strip()]
    assert not missing, "public names without a docstring:\n  " + "\n  ".join(missing)


def test_readme_tables_match_the_benchmark_results():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "readme_tables.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

"""The package's shape: imports run one way (no cycle, lazy imports included), and no module grows past ~400 lines."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "memorability"
MAX_LINES = 420


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package modules `path` imports anywhere in it (function-level imports too: a lazy import that closes a
    circle is still a circle in the design)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {target for target in targets if target in modules}
    return found - {name}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    return {module_name(path): imports_of(path, modules) for path in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert "memorability.modeling_memorability" in graph
    assert find_cycle(graph) is None, " → ".join(find_cycle(graph))


def test_no_module_is_past_about_400_lines():
    long = {module_name(path): n for path in PACKAGE.rglob("*.py") if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, long


# Loaded only where they are used: none of them is needed to register the model or to answer --help.
LOADED_WHERE_USED = (
    "onnxruntime", "onnx", "gradio", "datasets", "pandas", "pyarrow", "cv2", "matplotlib", "skimage", "sklearn",
    "facenet_pytorch", "memorability.image_processing", "memorability.inference", "memorability.data",
    "memorability.quantization", "memorability.ablations",
)  # fmt: skip
STARTED = """
import json, sys
import memorability
from transformers import AutoConfig, AutoModel
from memorability.cli import build_parser
registered = AutoModel._model_mapping[AutoConfig.for_model("memorability").__class__].__name__
build_parser()
print(json.dumps({"registered": registered, "loaded": sorted(sys.modules)}))
"""


def test_importing_the_package_and_its_command_line_loads_nothing_heavy():
    """`import memorability` registers the model with transformers' Auto classes and loads nothing else heavy, and
    building the command line (what --help needs) adds nothing: their start costs what torch and transformers'
    model classes cost (bench/start_time.py measures it)."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", STARTED], capture_output=True, text=True, check=True)
    started = json.loads(done.stdout)
    assert started["registered"] == "MemorabilityModel"
    assert not set(LOADED_WHERE_USED) & set(started["loaded"])

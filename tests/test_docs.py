"""The front door and the documentation site: the README stays short and its links resolve; the site builds with
``mkdocs build --strict`` (a broken link, a missing anchor or a page missing from the nav fails); the findings page
quotes the runner's reports unchanged; and every code block a user can copy runs as written.

Code blocks, by language: ``python`` runs in a plain Python process (nothing of hbert imported first) in a folder
that holds ``RUN_DIR/final``, a checkpoint of a real tiny pretraining run; ``console`` is a ``$ command`` and its
output, run and compared; ``bash`` runs line by line unless a ``<!-- not run: REASON -->`` comment precedes it (then
the test is skipped with that reason, so ``pytest -ra`` lists every block not run and why), and every ``hbert``,
``make`` and ``python`` command in it is checked either way: the command line parses, the configs and recipes it
names load, the targets and scripts exist; ``yaml`` parses, and a task spec passes ``read_spec``; ``text`` is not
code (diagrams, layouts) and is only listed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from markdown.extensions.toc import slugify

from hbert.experiments import findings

from .training_helpers import TINY_RUN, make_corpus

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = {"python", "bash", "console", "yaml", "text"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<language>\S*)[^\n]*\n(?P<code>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
NOT_RUN = re.compile(r"<!--\s*not run:\s*(.*?)\s*-->\s*$", re.S)
BIN = Path(sys.executable).parent


@dataclass
class Block:
    page: Path
    line: int
    language: str
    code: str
    not_run: str | None  # the reason, when a ``<!-- not run: ... -->`` comment precedes the block

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def code_blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n")
        comment = NOT_RUN.search(before.rsplit("\n\n", 1)[-1])
        line = text.count("\n", 0, match.start()) + 1
        code = textwrap.dedent(match["code"])  # a block inside a list item is indented with it
        blocks.append(Block(page, line, match["language"], code, comment[1] if comment else None))
    return blocks


BLOCKS = [block for page in PAGES for block in code_blocks(page)]


def _blocks(*languages: str) -> list:
    return [pytest.param(b, id=b.where) for b in BLOCKS if b.language in languages]


def _env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HBERT_DEBUG")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    return env


# ------------------------------------------------------------------------------------------ the README


def test_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; the documentation site takes the rest"
    first_screen = "\n".join(lines[:40])
    assert "make demo" in first_screen and "make test" in first_screen


def _anchors(page: Path) -> set[str]:
    headings = re.findall(r"^#{1,6} (.+?)\s*$", page.read_text(encoding="utf-8"), re.M)
    return {slugify(re.sub(r"[`*]", "", h), "-") for h in headings}


def test_readme_links_resolve():
    """The README is read on the code host, outside the site: its relative links and their anchors must exist."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = ROOT / path if path else ROOT / "README.md"
        assert file.exists(), f"README.md links to {target}, which does not exist"
        if anchor and file.suffix == ".md":
            assert anchor in _anchors(file), f"README.md links to {target}: {path} has no heading #{anchor}"


# ------------------------------------------------------------------------------------------ the site


def _build(root: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=root, capture_output=True, text=True, timeout=300)  # fmt: skip


def test_docs_site_builds_strict(tmp_path):
    result = _build(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stderr[-3000:]
    for page in (ROOT / "docs").glob("*.md"):
        assert (tmp_path / "site" / page.stem / "index.html").is_file() or page.stem == "index", page
    assert (tmp_path / "site" / "results" / "payoff-cpu" / "payoff.png").is_file()  # the reports travel with it


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("gpu.md", "\n[a report](../results/no-such-recipe/REPORT.md)\n"), "not found among documentation files"),
        (("gpu.md", "\n[a section](findings.md#no-such-section)\n"), "does not contain an anchor"),
        (("stray.md", "# A page nobody listed\n"), 'not included in the "nav" configuration'),
    ],
)
def test_strict_build_fails_on_a_broken_link_anchor_or_unlisted_page(tmp_path, change, message):
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", root)
    shutil.copytree(ROOT / "docs", root / "docs")
    for folder in ("results", "benchmarks", "recipes", "configs"):
        (root / folder).symlink_to(ROOT / folder)
    name, text = change
    with open(root / "docs" / name, "a", encoding="utf-8") as f:
        f.write(text)
    result = _build(root, tmp_path / "site")
    assert result.returncode != 0 and message in result.stderr, result.stderr[-3000:]


# ------------------------------------------------------------------------------------------ findings


def test_findings_page_quotes_the_reports_unchanged():
    """Every table and verdict on the findings page is the report's own text (``--check`` is what fails when a
    recipe's report changed and the page was not regenerated, or a quoted table was edited by hand)."""
    page = ROOT / "docs" / "findings.md"
    text = page.read_text(encoding="utf-8")
    blocks = list(findings.BLOCK.finditer(text))
    assert len(blocks) >= 10
    assert findings.render(page) == text, "run: python -m hbert.experiments.findings"
    for match in blocks:
        report = (page.parent / match["path"]).read_text(encoding="utf-8")
        for line in match["body"].splitlines():
            assert not line or line.startswith("**") or line in report.splitlines(), line
    result = subprocess.run([sys.executable, "-m", "hbert.experiments.findings", "--check"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_findings_check_catches_a_hand_edit_and_regenerates(tmp_path):
    (tmp_path / "results" / "r").mkdir(parents=True)
    report = tmp_path / "results" / "r" / "REPORT.md"
    report.write_text("# r\n\nprose\n\n| arm | acc |\n|---|---:|\n| a | 0.50 |\n\n## Floors\n\n| floor | acc |\n"
                      "|---|---:|\n| majority class | 0.10 |\n\n## What the data says\n\n- `a` beats it.\n\n"
                      "![plot](p.png)\n")  # fmt: skip
    page = tmp_path / "docs" / "findings.md"
    page.parent.mkdir()
    page.write_text("# F\n\n<!-- report ../results/r/REPORT.md: What the data says -->\n<!-- end report -->\n")
    run = [sys.executable, "-m", "hbert.experiments.findings", str(page)]
    assert subprocess.run([*run, "--check"], capture_output=True, timeout=120).returncode == 1
    assert subprocess.run(run, capture_output=True, timeout=120).returncode == 0
    quoted = page.read_text()
    assert "| a | 0.50 |" in quoted and "- `a` beats it." in quoted and "majority class" not in quoted
    assert "p.png" not in quoted and "prose" not in quoted
    assert subprocess.run([*run, "--check"], capture_output=True, timeout=120).returncode == 0
    page.write_text(quoted.replace("0.50", "0.55"))  # a number typed by hand
    assert subprocess.run([*run, "--check"], capture_output=True, timeout=120).returncode == 1
    page.write_text(quoted.replace("What the data says", "Verdicts"))
    bad = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no section 'Verdicts'" in bad.stderr


# ------------------------------------------------------------------------------------------ code blocks


def test_every_code_block_names_its_language():
    unknown = [f"{b.where} ({b.language or 'no language'})" for b in BLOCKS if b.language not in LANGUAGES]
    assert not unknown, f"code blocks need one of {sorted(LANGUAGES)}: {unknown}"
    assert sum(b.language == "python" for b in BLOCKS) >= 8


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A folder holding ``RUN_DIR/final``: what ``hbert pretrain ... out=RUN_DIR`` leaves, from a real tiny run."""
    root = tmp_path_factory.mktemp("docs-sandbox")
    corpus = make_corpus(root / "data")
    args = [f"corpus={corpus}", f"out={root / 'RUN_DIR'}", "budget=4-steps", "train.checkpoint_every=0"]
    result = subprocess.run(
        [sys.executable, "-m", "hbert", "pretrain", *args, *TINY_RUN], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def _workdir(sandbox: Path, tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / "RUN_DIR").symlink_to(sandbox / "RUN_DIR")
    return work


@pytest.mark.slow
@pytest.mark.parametrize("block", _blocks("python"))
def test_python_block_runs_as_written(block, sandbox, tmp_path):
    assert block.not_run is None, f"{block.where}: every Python block runs"
    result = subprocess.run([sys.executable, "-c", block.code], cwd=_workdir(sandbox, tmp_path),
                            env=_env(tmp_path), capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, f"{block.where}:\n{result.stderr[-3000:]}"


@pytest.mark.parametrize("block", _blocks("console"))
def test_console_block_prints_what_it_shows(block, sandbox, tmp_path):
    command, *shown = block.code.rstrip("\n").split("\n")
    assert command.startswith("$ "), f"{block.where}: a console block starts with '$ command'"
    result = subprocess.run(command[2:], shell=True, cwd=_workdir(sandbox, tmp_path), env=_env(tmp_path),
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert [line.rstrip() for line in result.stdout.rstrip("\n").split("\n")] == [line.rstrip() for line in shown]


def _commands(code: str) -> list[list[str]]:
    """The command lines of a shell block (continuations joined, comments dropped) as argument lists."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [argv for line in joined.splitlines() if (argv := shlex.split(line, comments=True))]


def _check_hbert(argv: list[str], where: str) -> None:
    from hbert.cli import _parse
    from hbert.config import load_config
    from hbert.experiments.recipe import Recipe

    argv = [a for a in argv if a != "..."]  # "..." stands for the rest of a command shown above it
    try:
        args = _parse(argv)
    except SystemExit as err:
        raise AssertionError(f"{where}: `hbert {shlex.join(argv)}` does not parse") from err
    if args.command == "pretrain" and not args.resume:
        items = list(args.items)
        path = items.pop(0) if items and "=" not in items[0] else None
        load_config(str(ROOT / path) if path else None, items)  # the config exists, every key and value is valid
    if args.command == "compare":
        assert (ROOT / args.recipe).is_file(), f"{where}: no recipe {args.recipe}"
        Recipe.load(str(ROOT / args.recipe), [o for o in args.overrides if not o.startswith("out=")])


def _check_command(argv: list[str], where: str) -> None:
    if argv[0] in ("torchrun", "python") and "-m" in argv and argv[argv.index("-m") + 1] == "hbert":
        argv = ["hbert", *argv[argv.index("-m") + 2 :]]
    if argv[0] == "hbert":
        _check_hbert(argv[1:], where)
    elif argv[0] == "make":
        targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M)
        missing = [t for t in argv[1:] if "=" not in t and t not in targets]
        assert not missing, f"{where}: no make target {missing}"
    elif argv[0] in ("python", "python3") and argv[1].endswith(".py"):
        assert (ROOT / argv[1]).is_file(), f"{where}: no script {argv[1]}"


@pytest.mark.parametrize("block", _blocks("bash"))
def test_shell_block_runs_or_says_why_not(block, sandbox, tmp_path):
    for argv in _commands(block.code):
        _check_command(argv, block.where)
    if block.not_run is not None:
        assert block.not_run, f"{block.where}: say why the block is not run"
        pytest.skip(f"{block.where} not run: {block.not_run}")
    work = _workdir(sandbox, tmp_path)
    for argv in _commands(block.code):
        result = subprocess.run(argv, cwd=work, env=_env(tmp_path), capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{block.where}: {shlex.join(argv)}\n{result.stderr[-3000:]}"


@pytest.mark.parametrize("block", _blocks("yaml"))
def test_yaml_block_is_valid(block, tmp_path):
    from hbert.data.tasks import read_spec

    data = yaml.safe_load(block.code)
    assert isinstance(data, dict), block.where
    if "kind" in data and "files" in data:  # a task spec
        spec = tmp_path / "spec.yaml"
        spec.write_text(block.code)
        assert read_spec(spec).name == data["name"]


def test_text_blocks_are_not_code():
    """Diagrams and layouts, listed so that a shell or Python block cannot hide among them."""
    for block in BLOCKS:
        if block.language == "text":
            assert not re.match(r"\s*(\$ |hbert |python |import |from \S+ import )", block.code), block.where

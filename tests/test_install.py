"""The install story: ranges in pyproject.toml, exact pins in constraints files, optional packages imported lazily.

``test_lowest_smoke`` is also what ``make test-lowest`` runs in a venv holding only the lowest supported versions.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement
from packaging.version import Version

from hbert import PRESETS, HBertConfig, HBertForMaskedLM

from .training_helpers import TINY_RUN, make_corpus

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
ROOT = Path(__file__).resolve().parent.parent


def _pins(path: Path) -> dict[str, Version]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{path.name}: {line} is not an exact pin"
            pins[_norm(req.name)] = Version(spec.version)
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_core_lower_bounds_are_the_lowest_tested_versions():
    lowest = _pins(ROOT / "constraints-lowest.txt")
    for line in _project()["dependencies"]:
        req = Requirement(line)
        lower = [Version(s.version) for s in req.specifier if s.operator == ">="]
        assert lower, f"{line}: a dependency needs a lower bound"
        name = _norm(req.name)
        assert name in lowest, f"{name} is missing from constraints-lowest.txt"
        if name == "torch":  # declared for the GPU image's CUDA torch 2.11; CI can only install the 2.13 CPU build
            assert lower[0] <= lowest[name]
        else:
            assert lower[0] == lowest[name], f"{line}: lower bound differs from the tested {lowest[name]}"
        assert not any(s.operator == "==" for s in req.specifier), f"{line}: a library declares ranges, not pins"


def test_ci_constraints_satisfy_every_declared_range():
    pins = _pins(ROOT / "constraints.txt")
    project = _project()
    lines = [*project["dependencies"], *(x for extra in project["optional-dependencies"].values() for x in extra)]
    for line in lines:
        req = Requirement(line)
        name = _norm(req.name)
        if name in ("hbert", "torch"):  # self-references of the extras; torch comes from the Makefile's TORCH_PIN
            continue
        assert name in pins, f"{name} ({line}) is not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"constraints.txt {name}=={pins[name]} vs {line}"


def test_license_is_an_spdx_expression_that_installs_without_a_deprecation_warning():
    """PEP 639: ``project.license`` is an SPDX string and the licence text ships; the table form made setuptools warn
    at every install. The build requirement is the first setuptools that reads the string form."""
    import warnings

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (requirement,) = [Requirement(r) for r in pyproject["build-system"]["requires"] if r.startswith("setuptools")]
    assert Version("77") in requirement.specifier and Version("76.1") not in requirement.specifier
    setuptools = pytest.importorskip("setuptools", minversion="77")
    from setuptools.config.pyprojecttoml import apply_configuration

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = apply_configuration(setuptools.dist.Distribution(), str(ROOT / "pyproject.toml"))
    assert not [str(w.message) for w in caught if "licen" in str(w.message).lower()]
    assert dist.metadata.license_expression == "Apache-2.0"
    assert dist.metadata.license_files == ["LICENSE"]
    assert "Apache License" in (ROOT / "LICENSE").read_text() and "Version 2.0" in (ROOT / "LICENSE").read_text()


@pytest.mark.parametrize(
    ("module", "extra", "call"),
    [
        ("datasets", "data", "from hbert.data.tasks import load_task; load_task('rt-polarity')"),
        (
            "rdata",
            "data",
            "from hbert.data.sources import read_r_lazyload as r; from pathlib import Path; r(Path('x'))",
        ),
        ("sklearn", "eval", "from hbert.finetune.metrics import compute_metrics as m; m(['accuracy'], [1], [1], 'x')"),
    ],
)
def test_missing_optional_package_names_the_extra(module, extra, call):
    """With the package hidden, the feature fails with one line naming the extra (not an ImportError traceback)."""
    script = f"import sys; sys.modules[{module!r}] = None\nfrom hbert._optional import MissingDependency\n"
    script += f"try:\n    {call}\nexcept MissingDependency as err:\n    print('MISSING', err)\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "MISSING" in out.stdout and f"hbert[{extra}]" in out.stdout, out.stdout


def test_lowest_smoke(tmp_path):
    """Import, every preset built and trained one step, and one real `hbert pretrain` step, in the current env."""
    for preset in PRESETS:
        config = HBertConfig.from_preset(preset)
        assert (config.hidden_size, config.num_hidden_layers, config.vocab_size) == (768, 12, 30522)
        small = HBertConfig.from_preset(preset, vocab_size=120, hidden_size=32, num_hidden_layers=4,
                                        num_attention_heads=4, intermediate_size=64)  # fmt: skip
        model = HBertForMaskedLM(small)
        ids = torch.randint(5, 120, (2, 16))
        labels = torch.full_like(ids, -100)
        labels[:, 3] = ids[:, 3]
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        assert torch.isfinite(loss), preset
    corpus = make_corpus(tmp_path / "data", n_docs=60)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "hbert", "pretrain", f"corpus={corpus}", f"out={run}", "budget=2-steps", *TINY_RUN]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 2

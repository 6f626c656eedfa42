"""The GPU check's dry run: the same script a GPU session runs, at a tiny shape on the CPU, so that it never rots."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hbert.experiments import Recipe, validate

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--tiny", "--cpu", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    assert (out / "gpu_check.json").exists(), done.stderr[-3000:]
    return done, json.loads((out / "gpu_check.json").read_text()), (out / "GPU_RESULTS.md").read_text()


def test_dry_run_passes_every_correctness_check(report):
    done, data, _ = report
    checks = {c["name"]: c for c in data["checks"]}
    failed = {n: c for n, c in checks.items() if c["status"] in ("fail", "error")}
    assert not failed and done.returncode == 0, (failed, done.stdout[-3000:])
    for name in ("bert bf16 autocast vs fp32", "hbert-mix bf16 autocast vs fp32", "sparse MLM head = dense head at "
                 "labelled rows", "self-entropy masking, candidates c=2", "teacher-entropy masking + KD"):  # fmt: skip
        assert checks[name]["status"] == "pass", checks[name]
    sigterm = [c for n, c in checks.items() if n.startswith("SIGTERM")]
    assert sigterm and sigterm[0]["status"] == "pass", sigterm
    breaks = [c for n, c in checks.items() if n.startswith("torch.compile graph breaks")]
    assert breaks and all(c["graph_breaks"] == 0 for c in breaks)
    assert sum(n.endswith("static index") for n in checks) == 2  # the GPU path's head: one graph, default settings


def test_cuda_only_checks_are_skipped_never_passed_on_cpu(report):
    _, data, markdown = report
    assert data["meta"]["cuda"] is False
    checks = {c["name"]: c for c in data["checks"]}
    for name in ("bert fp16 autocast", "SDPA fused kernel (flash / efficient)", "fp16 + GradScaler training steps"):
        assert checks[name]["status"] == "skipped: no CUDA"
    assert set(data["targets"]) == {"bert_vs_hf_eager", "bert_vs_modernbert", "mfu", "additive_vs_bert_8k",
                                    "self_entropy_cost"}  # fmt: skip
    for target in data["targets"].values():
        assert target["status"].startswith("skipped: no CUDA") and target["measured"] is not None
    assert "PASS" not in markdown and "| MISS |" not in markdown


def test_dry_run_measures_every_speed_figure(report):
    _, data, markdown = report
    speed = {c["name"]: c for c in data["checks"] if c["section"] == "speed"}
    for arm in ("hbert bert compiled", "HF BertForMaskedLM eager", "HF BertForMaskedLM compiled",
                "HF BertForMaskedLM, head at masked rows, eager", "HF ModernBertForMaskedLM eager",
                "HF ModernBertForMaskedLM compiled", "hbert additive compiled", "hbert hbert-v1 compiled",
                "hbert hbert-v2 compiled"):  # fmt: skip
        assert speed[f"train step, {arm}"]["seconds"] > 0
    for arm in ("random", "self-entropy c=2"):  # the real Engine.step at the gpu-24h settings, compiled
        engine = speed[f"Engine.step, {arm}"]
        assert engine["seconds"] > 0 and engine["compile"]["recompiles"] == 0 and engine["compile"]["graph_breaks"] == 0
        assert "host syncs per step: 0 at the known sync points" in engine["detail"]
    assert speed["cost of one host sync per step (hbert bert compiled)"]["seconds"] > 0
    assert any(n.startswith("encoder forward") for n in speed)
    assert "masking step, self, candidates c=2" in speed and "masking step, self, token-stats" in speed
    assert markdown.startswith("# hbert GPU check (tiny dry run)") and "## Targets" in markdown


def test_gpu_smoke_recipe_is_valid():
    recipe = Recipe.load(str(ROOT / "recipes" / "gpu-smoke.yaml"))
    validate(recipe)
    assert list(recipe.arms) == ["bert", "hbert-v1", "hbert-v1-self-entropy"] and recipe.budget == "2m"

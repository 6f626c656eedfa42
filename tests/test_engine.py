"""The training engine and its extension points: the loop computes what a hand-written nanoGPT-style loop over the
same parts computes (bit for bit), a masking strategy registered from outside is used without editing the loop,
an unknown strategy names every registered one, and the engine's files stay readable."""

import ast
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import hbert
from hbert.data.corpus import Corpus
from hbert.data.sampler import BlockSampler
from hbert.files import read_yaml
from hbert.masking import MASKING_KINDS, MaskedBatch, MaskingStrategy, RandomMasking, register_masking
from hbert.masking.base import SpecialIds, top_k_positions
from hbert.masking.teacher import load_teacher, sparse_logits
from hbert.objectives import kd_loss
from hbert.optim import adamw, lr_multiplier, step_lr_multiplier
from hbert.runtime import DeviceError, resolve_device, resolve_precision
from hbert.training import pretrain
from hbert.training.loop import build_model
from hbert.training.objective import micro_batches

from .training_helpers import make_corpus, tiny_config

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(hbert.__file__).resolve().parent


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def teacher(corpus, tmp_path_factory):
    run = tmp_path_factory.mktemp("teacher") / "run"
    pretrain(tiny_config(corpus, run, "budget=3-steps"))
    return str(run / "final")


# ------------------------------------------------------------------------------------------ same results


def reference_weights(corpus: str, config, teacher: str | None) -> dict[str, torch.Tensor]:
    """What ``pretrain`` must compute for a step budget with random masking: written out by hand from the parts
    (seeded init, per-step masking seed, micro-batches weighted by their share of the masked tokens, CE or the
    CE + KD mix, clipping, AdamW with no decay on 1-D parameters, the budget's learning-rate schedule)."""
    c = Corpus(corpus)
    tok = c.tokenizer()
    train, kd = config.train, config.objective.kd
    model, _ = build_model(config, tok, c.seq_len)  # seeds torch with train.seed, as a run does
    model.train()
    params = list(model.parameters())
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": train.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]  # fmt: skip
    opt = torch.optim.AdamW(groups, lr=train.lr, betas=train.betas, eps=train.eps, fused=True)
    kd_teacher = load_teacher(teacher, torch.device("cpu"), "fp32", len(tok), tok) if teacher else None
    masking = RandomMasking(SpecialIds.from_tokenizer(tok), config.masking.ratio)
    sampler = BlockSampler(len(c.blocks("train")), train.seed, 0, 1)
    steps, micro = int(config.budget.split("-")[0]), config.impl.micro_batch_size
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = train.lr * lr_multiplier(step / steps, train.schedule, train.warmup)
        batch = torch.from_numpy(c.blocks("train")[np.sort(sampler.take(train.batch_size))].astype(np.int64))
        full = masking(batch, None, torch.Generator().manual_seed(train.seed * 1_000_003 + step * 1_009))
        n_masked = (full.labels != -100).sum()
        for start in range(0, train.batch_size, micro):
            x, y, chosen = (t[start : start + micro] for t in (full.input_ids, full.labels, full.selected))
            out = model(x, labels=y, sparse_logits=True)
            loss = out.loss
            if kd_teacher is not None:
                with torch.no_grad():
                    teacher_logits = sparse_logits(kd_teacher, x, chosen)
                loss = kd.alpha * loss + (1 - kd.alpha) * kd_loss(out.logits, teacher_logits, kd.temperature)
            (loss * ((y != -100).sum() / n_masked)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return model.state_dict()


@pytest.mark.parametrize("with_kd", [False, True], ids=["ce", "ce+kd"])
def test_pretrain_equals_a_hand_written_loop_bit_for_bit(corpus, teacher, tmp_path, with_kd):
    extra = ["objective.kd.alpha=0.4", f"objective.kd.teacher={teacher}", "masking.teacher_precision=fp32"]
    config = tiny_config(corpus, tmp_path / "run", "budget=5-steps", "impl.micro_batch_size=4",
                         "train.grad_clip=0.5", "train.warmup=0.4", *(extra if with_kd else []))  # fmt: skip
    summary = pretrain(config)
    assert summary["steps"] == 5 and summary["kd_alpha"] == (0.4 if with_kd else 1.0)
    saved = load_file(str(tmp_path / "run" / "final" / "model.safetensors"))
    reference = reference_weights(corpus, config, teacher if with_kd else None)
    assert len(saved) > 10
    different = [name for name, value in saved.items() if not torch.equal(value, reference[name])]
    assert not different, f"{len(different)} tensors differ from the reference loop, e.g. {different[:3]}"
    initial = build_model(config, Corpus(corpus).tokenizer(), 32)[0].state_dict()
    assert not all(torch.equal(saved[k], initial[k]) for k in saved)  # the run did train


def test_micro_batches_weigh_by_their_share_of_the_masked_tokens():
    labels = torch.full((4, 6), -100)
    labels[0, :1] = labels[1, :2] = labels[2, :3] = labels[3, :6] = 7  # 1 + 2 + 3 + 6 = 12 masked tokens
    full = MaskedBatch(torch.zeros(4, 6, dtype=torch.long), labels, labels != -100, {})
    parts = list(micro_batches(full, 2))
    assert [rows for rows, _, _ in parts] == [slice(0, 2), slice(2, 4)]
    assert [float(share) for _, _, share in parts] == pytest.approx([3 / 12, 9 / 12])
    assert torch.equal(parts[1][1].labels, labels[2:])


def _bitwise_module():
    spec = importlib.util.spec_from_file_location("bitwise_check", ROOT / "benchmarks" / "bitwise_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_weights_match_the_hashes_recorded_before_the_engine_split(tmp_path):
    """benchmarks/bitwise_hashes.json holds the final-weight hashes of benchmarks/bitwise_check.py's runs made with
    the loop as it was before the engine split (and its fine-tuning loop). Such hashes depend on the torch build,
    the CPU's kernels and the thread count: this test runs where the first two match the recording, with its thread
    count."""
    recorded = json.loads((ROOT / "benchmarks" / "bitwise_hashes.json").read_text())
    here = {"torch": torch.__version__, "cpu": torch.backends.cpu.get_cpu_capability()}
    if any(recorded[k] != v for k, v in here.items()):
        pytest.skip(f"hashes recorded on {[recorded[k] for k in here]}, this is {list(here.values())}")
    threads = torch.get_num_threads()
    torch.set_num_threads(recorded["threads"])  # the thread count is the recording's, whatever the machine has
    try:
        hashes = _bitwise_module().run_cases(tmp_path)
    finally:
        torch.set_num_threads(threads)
    assert hashes == recorded["hashes"]


# ------------------------------------------------------------------------------------------ masking registry


class FirstTokens(MaskingStrategy):
    """A tiny strategy for the registry tests: the first k maskable positions of each sequence."""

    calls = 0

    def select(self, input_ids, candidates, counts, generator, model=None, progress: float = 0.0):
        FirstTokens.calls += 1
        position = torch.arange(input_ids.shape[1], dtype=torch.float32, device=input_ids.device)
        return top_k_positions((-position).expand(input_ids.shape).masked_fill(~candidates, float("-inf")), counts)


@pytest.fixture
def first_tokens():
    register_masking("first-tokens")(FirstTokens)
    FirstTokens.calls = 0
    yield FirstTokens
    MASKING_KINDS.pop("first-tokens")


def test_a_registered_strategy_is_used_by_the_loop_unchanged(corpus, tmp_path, first_tokens):
    masked = first_tokens(SpecialIds(mask_id=4, special=(0, 2, 3), vocab_size=90), ratio=0.25)(
        torch.tensor([[2, 10, 11, 12, 13, 14, 15, 16, 17, 3]]), None, torch.Generator().manual_seed(0)
    )
    assert masked.selected[0].nonzero().squeeze(1).tolist() == [1, 2]  # round(0.25 x 8 real tokens) = 2, the first
    first_tokens.calls = 0
    summary = pretrain(tiny_config(corpus, tmp_path / "run", "budget=3-steps", "masking=first-tokens",
                                   "masking.ratio=0.2"))  # fmt: skip
    assert summary["masking"] == "first-tokens" and summary["steps"] == 3
    assert first_tokens.calls == 3  # one call per step: the loop masked every batch with it
    random_run = pretrain(tiny_config(corpus, tmp_path / "random", "budget=3-steps", "masking.ratio=0.2"))
    assert summary["last_log"]["loss"] != random_run["last_log"]["loss"]


def test_an_unknown_strategy_names_every_registered_one(corpus, tmp_path, first_tokens):
    with pytest.raises(ValueError, match=r"masking\.kind='span'; accepted: random, entropy, first-tokens$"):
        pretrain(tiny_config(corpus, tmp_path / "run", "budget=2-steps", "masking=span"))
    assert not (tmp_path / "run").exists()  # stopped before anything was written
    with pytest.raises(ValueError, match="already registered"):
        register_masking("random")(FirstTokens)


def _readme_block(label: str) -> str:
    import re

    page = (Path(__file__).resolve().parents[1] / "docs" / "extending.md").read_text()
    match = re.search(rf"<!-- extending: {label} \([^>]*-->\s*```python\n(.*?)```", page, re.S)
    assert match, f"docs/extending.md has no '{label}' example"
    return match.group(1)


def test_the_readme_masking_strategy_example_runs_as_written(corpus, tmp_path):
    """The "Extending hbert" page's span strategy and its test, executed as written; then a run uses it."""
    namespace: dict = {"SpecialIds": SpecialIds}
    try:
        exec(compile(_readme_block("masking strategy"), "docs/extending.md", "exec"), namespace)
        exec(compile(_readme_block("masking strategy test"), "docs/extending.md", "exec"), namespace)
        namespace["test_span_masks_contiguous_runs"]()
        namespace["test_span_settings_are_checked"]()
        summary = pretrain(tiny_config(corpus, tmp_path / "run", "budget=2-steps", "masking=span", "masking.spans=2"))
        assert summary["masking"] == "span" and summary["steps"] == 2
        assert read_yaml(tmp_path / "run" / "config.yaml")["masking"]["spans"] == 2  # recorded with the run
    finally:
        MASKING_KINDS.pop("span", None)


# ------------------------------------------------------------------------------------------ one place each


def test_device_and_precision_resolution_explain_what_is_accepted():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert resolve_precision("auto", torch.device("cpu")) in ("bf16", "fp32")
    with pytest.raises(DeviceError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", torch.device("cpu"))
    with pytest.raises(DeviceError, match=r"impl\.precision='fp8'; accepted: auto, fp32, bf16, fp16"):
        resolve_precision("fp8", torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="device=cuda but no CUDA device is available"):
            resolve_device("cuda", key="device")


def test_the_shared_optimizer_skips_frozen_parameters_and_decays_only_matrices():
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    model[0].requires_grad_(False)  # a linear probe's frozen encoder
    decay, no_decay = adamw(model.parameters(), 1e-3, 0.01).param_groups
    assert [tuple(p.shape) for p in decay["params"]] == [(4, 4)] and decay["weight_decay"] == 0.01
    assert [tuple(p.shape) for p in no_decay["params"]] == [(4,), (4,), (4,)] and no_decay["weight_decay"] == 0.0


def test_the_fine_tuning_schedule_warms_up_then_decays_to_zero():
    got = [step_lr_multiplier(s, 2, 6) for s in range(6)]
    assert got == pytest.approx([0.5, 1.0, 1.0, 0.75, 0.5, 0.25])


# ------------------------------------------------------------------------------------------ readable


ENGINE_FILES = [*sorted((SRC / "training").glob("*.py")), *sorted((SRC / "masking").glob("*.py")),
                SRC / "finetune" / "trainer.py", SRC / "runtime.py"]  # fmt: skip


@pytest.mark.parametrize("path", ENGINE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_engine_functions_are_short_and_mutate_no_enclosing_state(path):
    tree = ast.parse(path.read_text())
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60]  # fmt: skip
    assert not long, f"functions over 60 lines: {long}"
    assert not any(isinstance(node, (ast.Nonlocal, ast.Global)) for node in ast.walk(tree))

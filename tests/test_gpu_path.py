"""The GPU path's mechanisms, checked on a CPU: the static index of the masked positions (the same rows as
nonzero(), a training step that compiles into one graph with no recompiles), a step free of host
synchronisations, the untimed compile warm-up, the eager fallback on compiler errors only, a fresh compile state
per recipe arm, teachers that must be reachable before anything trains, and the GPU configs' settings."""

import json
import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from hbert.cli import main
from hbert.config import load_config
from hbert.data.corpus import Corpus
from hbert.experiments import Recipe, run_recipe
from hbert.masking import build_masking
from hbert.masking.base import SpecialIds, flat_rows, static_positions
from hbert.modeling import HBertConfig, HBertForMaskedLM
from hbert.runtime import count_host_syncs
from hbert.training import TrainingError, pretrain
from hbert.training import loop as loop_mod

from .training_helpers import make_corpus, tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def teacher(corpus, tmp_path_factory):
    run = tmp_path_factory.mktemp("teacher") / "run"
    pretrain(tiny_config(corpus, run, "budget=3-steps"))
    return str(run / "final")


def _batches(corpus: str, n: int, size: int = 8) -> list[torch.Tensor]:
    """``n`` different batches of real blocks (documents joined by [SEP], so rows differ in their masked count)."""
    blocks = Corpus(corpus).blocks("train")
    rng = np.random.default_rng(0)
    return [torch.from_numpy(blocks[np.sort(rng.choice(len(blocks), size, replace=False))].astype(np.int64))
            for _ in range(n)]  # fmt: skip


def _masking(corpus: str, **settings):
    from hbert.masking.base import masking_settings

    ids = SpecialIds.from_tokenizer(Corpus(corpus).tokenizer())
    return build_masking(masking_settings(**settings), ids), ids


# ------------------------------------------------------------------------------------------ static index


def test_static_index_gathers_the_rows_nonzero_gives_in_the_same_order(corpus):
    masking, ids = _masking(corpus)
    counts_seen = set()
    for i, batch in enumerate(_batches(corpus, 10)):
        for row in range(batch.shape[0]):  # rows with fewer real tokens (short documents, [SEP] inside blocks)
            batch[row, 1 : 1 + 3 * row] = ids.special[-1]
        masked = masking(batch, None, torch.Generator().manual_seed(i))
        width = masking.max_count(batch.shape[1])
        positions = static_positions(masked.selected, width)
        assert positions.shape == (batch.shape[0], width)
        labels = masked.labels.reshape(-1)
        rows = flat_rows(positions, batch.shape[1])
        valid = rows[labels[rows] != -100]
        assert torch.equal(valid, (labels != -100).nonzero().squeeze(1))  # same rows, same (row-major) order
        counts_seen.update(masked.selected.sum(1).tolist())
        assert max(counts_seen) <= width
    assert len(counts_seen) > 1  # rows with fewer masks were padded, and still matched


def test_static_path_computes_the_eager_paths_loss_and_gradients(corpus):
    masking, ids = _masking(corpus)
    batch = _batches(corpus, 1)[0]
    masked = masking(batch, None, torch.Generator().manual_seed(0))
    positions = static_positions(masked.selected, masking.max_count(batch.shape[1]))
    config = HBertConfig.from_preset("hbert-v1", vocab_size=ids.vocab_size, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64, hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0)  # fmt: skip
    torch.manual_seed(0)
    model = HBertForMaskedLM(config)
    results = []
    for extra in ({}, {"masked_positions": positions}):
        model.zero_grad()
        out = model(masked.input_ids, labels=masked.labels, sparse_logits=True, **extra)
        out.loss.backward()
        grads = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None])
        results.append((out, grads))
    (eager, g_eager), (static, g_static) = results
    assert static.logits.shape[0] == positions.numel() > eager.logits.shape[0]  # padding rows, no loss
    keep = static.masked_labels != -100
    assert torch.equal(static.masked_labels[keep], eager.masked_labels)
    assert torch.allclose(static.logits[keep], eager.logits, atol=1e-6)
    assert torch.allclose(static.loss, eager.loss, atol=1e-6) and torch.allclose(g_static, g_eager, atol=1e-6)


@pytest.mark.slow
def test_training_step_compiles_into_one_graph_without_recompiles_across_20_batches(corpus):
    """inductor (the GPU's compiler) on the CPU, fullgraph=True: no graph break, no data-dependent size, and 20
    batches of different content (different masked counts per row) reuse the one graph."""
    from torch._dynamo.utils import counters

    masking, ids = _masking(corpus)
    config = HBertConfig.from_preset("hbert-v1", vocab_size=ids.vocab_size, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64)  # fmt: skip
    torch.manual_seed(0)
    model = HBertForMaskedLM(config).train()
    torch._dynamo.reset()
    counters.clear()
    step = torch.compile(model, fullgraph=True, backend="inductor")
    width = masking.max_count(32)
    losses = []
    for i, batch in enumerate(_batches(corpus, 20)):
        masked = masking(batch, None, torch.Generator().manual_seed(i))
        out = step(masked.input_ids, labels=masked.labels, sparse_logits=True,
                   masked_positions=static_positions(masked.selected, width))  # fmt: skip
        out.loss.backward()
        losses.append(float(out.loss.detach()))
    assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"]
    assert all(np.isfinite(losses)) and len(set(losses)) == 20
    torch._dynamo.reset()


def test_chunks_are_sized_by_memory_on_a_gpu_and_by_cache_on_a_cpu(monkeypatch):
    """BERT-base at batch 256 x 128 masks about 4,915 positions a step, scored among twice as many candidates: on a
    GPU entropy and the scoring head take them in a few chunks within the memory bound, not in the CPU's cache-sized
    32- and 128-row chunks (hundreds of chunks, each a few kernel launches)."""
    from hbert import objectives
    from hbert.masking import teacher as teacher_mod
    from hbert.runtime import CUDA_CHUNK_BYTES, chunk_rows

    masked, vocab = 256 * 128 * 15 // 100, 30522
    for row_bytes, cpu_rows in ((3 * 4 * vocab, objectives.CHUNK_ROWS), (4 * 4 * vocab, 128)):
        assert chunk_rows(torch.device("cpu"), row_bytes, cpu_rows) == cpu_rows
        gpu = chunk_rows(torch.device("cuda", 0), row_bytes, cpu_rows)
        chunks_gpu, chunks_cpu = -(-2 * masked // gpu), -(-2 * masked // cpu_rows)  # c = 2 scoring candidates
        assert gpu * row_bytes <= CUDA_CHUNK_BYTES and chunks_gpu <= 5 and chunks_cpu >= 15 * chunks_gpu
    asked = []

    def spy(device, row_bytes, cpu_rows):
        asked.append((device.type, row_bytes))
        return chunk_rows(device, row_bytes, cpu_rows)

    monkeypatch.setattr(objectives, "_chunk_rows", spy)
    monkeypatch.setattr(teacher_mod, "_chunk_rows", spy)
    objectives.entropy(torch.randn(5, 50))
    assert asked == [("cpu", 3 * 4 * 50)]  # the device of the logits decides


# ------------------------------------------------------------------------------------------ host synchronisations

SYNC_FREE_ARMS = {
    "random": [],
    "self-entropy candidates": ["masking=entropy", "masking.source=self", "masking.self_warmup=0"],
    "self-entropy token-stats": [
        "masking=entropy",
        "masking.source=self",
        "masking.scoring=token-stats",
        "masking.self_warmup=0",
    ],
    "teacher entropy + KD": ["masking=entropy", "masking.teacher=TEACHER", "objective.kd.alpha=0.5"],
    "teacher entropy + KD from the scoring forward": [
        "masking=entropy",
        "masking.teacher=TEACHER",
        "objective.kd.alpha=0.5",
        "objective.kd.reuse_scoring_forward=true",
    ],
}


@pytest.mark.parametrize("arm", list(SYNC_FREE_ARMS))
def test_a_step_that_is_not_logged_makes_no_host_synchronisation(corpus, teacher, tmp_path, arm):
    """The loop's whole step (batch, masking, scoring, forward, KD, backward, clipping, the non-finite check, the
    optimizer, charging the budget, the log window) counted on the known sync points; the eager CPU path, which
    reads on the host freely, is the control: the counter does see its synchronisations."""
    overrides = [x.replace("TEACHER", teacher) for x in SYNC_FREE_ARMS[arm]]
    counts = {}
    for shapes in ("on", "off"):
        config = tiny_config(corpus, tmp_path / shapes, "budget=20-steps", "impl.log_every=10",
                             "impl.micro_batch_size=4", f"impl.static_shapes={shapes}", *overrides)  # fmt: skip
        run = loop_mod.start_run(config, None)
        loop_mod.train_step(run)  # the first step may allocate and build caches
        with count_host_syncs() as syncs:
            for _ in range(3):
                loop_mod.train_step(run)  # steps 2-4: not logged
        counts[shapes] = syncs.where
        run.log.close()
    assert counts["on"] == [], counts["on"]
    assert len(counts["off"]) >= 3


def test_the_static_path_skips_non_finite_steps_and_stops_as_the_eager_path(corpus, tmp_path, monkeypatch):
    run = tmp_path / "run"
    config = tiny_config(corpus, run, "budget=20-steps", "train.max_nonfinite=3", "train.checkpoint_every=1-steps",
                         "impl.static_shapes=on")  # fmt: skip
    data = Corpus(corpus)
    initial = loop_mod.build_model(config, data.tokenizer(), data.seq_len)[0].state_dict()
    real_forward = HBertForMaskedLM.forward

    def poisoned(self, *args, **kwargs):
        out = real_forward(self, *args, **kwargs)
        out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(HBertForMaskedLM, "forward", poisoned)
    with pytest.raises(TrainingError, match="3 non-finite losses in a row"):
        pretrain(config)
    latest = (run / "checkpoints" / "latest").read_text()
    assert latest == "step-00000002"
    saved = load_file(run / "checkpoints" / latest / "model" / "model.safetensors")
    assert saved and all(torch.equal(saved[k], initial[k]) for k in saved)  # the fused optimizer skipped them
    state = torch.load(run / "checkpoints" / latest / "state.pt", weights_only=True)
    assert state["nonfinite"] == 2 and all(int(s["step"]) == 0 for s in state["optimizer"]["state"].values())


# ------------------------------------------------------------------------------------------ compilation

_COMPILE = ["impl.compile=true", "impl.compile_backend=eager"]  # dynamo's capture without code generation: quick


def _train(run) -> dict:
    """What ``pretrain`` does with a started run."""
    with loop_mod._Signals() as signals:
        run.signals = signals
        while not run.clock.exhausted(run.budget):
            loop_mod.train_step(run)
            loop_mod.between_steps(run, signals)
    return loop_mod.finish(run, "completed")


def test_the_compile_warm_up_is_untimed(corpus, tmp_path):
    """The warm-up compiles before the clock starts: charged time 0, no step, no data read, compile_seconds
    recorded apart (and never charged); the compiled run computes what the uncompiled one does."""
    run = loop_mod.start_run(tiny_config(corpus, tmp_path / "started", "budget=4-steps", *_COMPILE), None)
    assert run.engine.warmed and run.clock.compile_seconds > 0
    assert run.clock.charged_seconds == 0 and run.clock.steps == 0 and run.sampler.cursor == 0
    run.log.close()
    no_dropout = ["model.hidden_dropout_prob=0", "model.attention_probs_dropout_prob=0"]
    compiled = pretrain(tiny_config(corpus, tmp_path / "compiled", "budget=4-steps", *_COMPILE, *no_dropout))
    eager = pretrain(tiny_config(corpus, tmp_path / "eager", "budget=4-steps", "impl.static_shapes=on", *no_dropout))
    assert compiled["compiled"] is True and compiled["compile_seconds"] > 0 and eager["compile_seconds"] == 0
    assert compiled["compile"]["recompiles"] == 0 and compiled["compile"]["graph_breaks"] == 0
    a = load_file(tmp_path / "compiled" / "final" / "model.safetensors")
    b = load_file(tmp_path / "eager" / "final" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_the_warm_up_learns_nothing_and_puts_the_random_state_back(corpus, tmp_path):
    """A run with a warm-up before its first step (dropout on: the warm-up draws random numbers) ends with
    exactly the weights of the run without one."""
    plain = pretrain(tiny_config(corpus, tmp_path / "plain", "budget=4-steps", "impl.static_shapes=on"))
    run = loop_mod.start_run(tiny_config(corpus, tmp_path / "warmed", "budget=4-steps", "impl.static_shapes=on"), None)
    assert not run.engine.warmed and run.config.model.fields.get("hidden_dropout_prob", 0.1) > 0
    run.engine.warm_up(_batches(corpus, 1)[0])
    warmed = _train(run)
    assert warmed["steps"] == plain["steps"] == 4
    a = load_file(tmp_path / "plain" / "final" / "model.safetensors")
    b = load_file(tmp_path / "warmed" / "final" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def _register_backend(name, backend):
    from torch._dynamo import list_backends, register_backend

    if name not in list_backends(exclude_tags=()):
        register_backend(backend, name=name)


def _refusing_backend(gm, example_inputs):
    raise RuntimeError("this backend compiles nothing")


def _oom_backend(gm, example_inputs):
    def run(*args):
        raise torch.OutOfMemoryError("out of memory while running the compiled step")

    return run


def test_a_compiler_error_in_the_warm_up_falls_back_to_eager(corpus, tmp_path, capsys):
    _register_backend("hbert_test_refusing", _refusing_backend)
    summary = pretrain(tiny_config(corpus, tmp_path / "run", "budget=3-steps", "impl.compile=true",
                                   "impl.compile_backend=hbert_test_refusing"))  # fmt: skip
    assert summary["status"] == "completed" and summary["steps"] == 3
    assert summary["notes"] == ["torch.compile failed; ran in eager mode"] and summary["compiled"] is False
    err = capsys.readouterr().err
    assert "torch.compile failed (BackendCompilerFailed" in err and "continuing in eager mode" in err


def test_an_error_that_is_not_the_compilers_is_not_swallowed(corpus, tmp_path, capsys):
    """Out of memory (or a DDP error, or a bug) in the compiled step stops the run: no silent eager rerun that
    would have thrown away the micro-batches' gradients."""
    _register_backend("hbert_test_oom", _oom_backend)
    with pytest.raises(torch.OutOfMemoryError):
        pretrain(tiny_config(corpus, tmp_path / "run", "budget=3-steps", "impl.compile=true",
                             "impl.compile_backend=hbert_test_oom"))  # fmt: skip
    assert "continuing in eager mode" not in capsys.readouterr().err


@pytest.mark.slow
def test_a_recipe_of_more_than_eight_compiled_arms_keeps_every_arm_compiled(corpus, tmp_path):
    """Nine arms of different shapes in one process: each is a recompile of the model's forward for dynamo, whose
    limit is 8 per code object; a fresh compile state per run keeps the ninth compiled (without it, it would run
    eager while its summary said compiled)."""
    arms = {f"ffn{size}": [f"model.intermediate_size={size}"] for size in range(40, 40 + 8 * 9, 8)}
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(json.dumps({
        "name": "nine-compiled", "base": os.path.join(ROOT, "configs", "pretrain", "cpu-small.yaml"),
        "budget": "2-steps", "arms": arms, "suite": [], "inference": False, "floors": False, "eval_points": 0,
    }))  # fmt: skip
    tiny = [
        "model.hidden_size=32",
        "model.num_hidden_layers=1",
        "model.num_attention_heads=2",
        "train.batch_size=4",
        "train.eval_blocks=8",
        "impl.precision=fp32",
        "impl.tensorboard=false",
        *_COMPILE,
    ]
    recipe = Recipe.load(str(recipe_file), [f"corpus_path={corpus}", f"out={tmp_path / 'out'}"])
    recipe.arms = {arm: [*items, *tiny] for arm, items in recipe.arms.items()}
    out = run_recipe(recipe)
    summaries = [json.loads((out / "arms" / arm / "seed0" / "summary.json").read_text()) for arm in arms]
    assert len(summaries) == 9
    for summary in summaries:
        assert summary["compiled"] is True and summary["compile"]["recompile_limit_hits"] == 0
        assert summary["compile"]["recompiles"] == 0 and summary["compile"]["graphs"] >= 1
    assert "compiled" in (out / "results.csv").read_text().splitlines()[0]


# ------------------------------------------------------------------------------------------ teachers


def _teacher_recipe(tmp_path, reference: str) -> str:
    path = tmp_path / "teacher-recipe.yaml"
    path.write_text(json.dumps({
        "name": "teacher-reachable", "base": os.path.join(ROOT, "configs", "pretrain", "cpu-small.yaml"),
        "budget": "2-steps", "reference": reference, "suite": [], "inference": False, "floors": False,
        "arms": {"random": [], "teacher-high": ["masking=entropy", "masking.teacher={reference}"],
                 "kd": ["objective.kd.alpha=0.5", "objective.kd.teacher={reference}"]},
    }))  # fmt: skip
    return str(path)


def test_an_unreachable_hub_teacher_stops_a_recipe_before_anything_trains(corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as a machine without network: the hub cannot serve the name
    out = tmp_path / "out"
    code = main(["compare", _teacher_recipe(tmp_path, "hbert-test/no-such-teacher"), f"corpus_path={corpus}",
                 f"out={out}"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "teacher 'hbert-test/no-such-teacher' cannot be loaded" in err and "reference=PATH" in err
    assert not (out / "arms").exists()  # the random arm, first in the recipe, never started


def test_a_recipes_teacher_is_overridden_by_a_local_folder_in_one_place(corpus, teacher, tmp_path):
    recipe = Recipe.load(_teacher_recipe(tmp_path, "bert-base-uncased"), [f"reference={teacher}"])
    from hbert.experiments.recipe import check_teachers, validate
    from hbert.experiments.runner import arm_overrides

    arms = validate(recipe)
    check_teachers(recipe)  # the local teacher loads: no hub needed
    for arm in ("teacher-high", "kd"):
        items = arm_overrides(recipe, arms[arm], 0, corpus, {})
        assert any(item.endswith(f"={teacher}") for item in items)
        assert not any("bert-base-uncased" in item for item in items)


def test_gpu_recipes_name_their_teacher_in_one_place():
    for name in ("entropy-gpu", "ratio-gpu"):
        lines = open(os.path.join(ROOT, "recipes", f"{name}.yaml")).read().splitlines()
        settings = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
        recipe = Recipe.load(os.path.join(ROOT, "recipes", f"{name}.yaml"))
        assert recipe.reference == "bert-base-uncased" and settings.count("bert-base-uncased") == 1
        assert any("{reference}" in item for items in recipe.arms.values() for item in items)
        assert recipe.finetune == {"protocol": "sane", "precision": "bf16"}  # sized to the budget, bf16


def test_every_gpu_recipe_fine_tunes_sized_to_the_budget_in_bf16():
    """The GPU recipes that fine-tune use the ``sane`` protocol (not ``author``'s up to 50 epochs) in bf16."""
    for name in ("hbert-gpu", "entropy-gpu", "ratio-gpu"):
        recipe = Recipe.load(os.path.join(ROOT, "recipes", f"{name}.yaml"))
        assert recipe.suite and recipe.finetune == {"protocol": "sane", "precision": "bf16"}, name


def test_a_student_with_a_padded_vocabulary_distils_from_a_teacher(corpus, teacher, tmp_path):
    """gpu-24h pads the vocabulary to a multiple of 64; the teacher keeps the tokenizer's: KD compares the
    tokenizer's ids (a padding id is never a label)."""
    vocab = len(Corpus(corpus).tokenizer())
    padded = -(-vocab // 64) * 64
    summary = pretrain(tiny_config(corpus, tmp_path / "run", "budget=3-steps", f"model.vocab_size={padded}",
                                   "objective.kd.alpha=0.5", f"objective.kd.teacher={teacher}"))  # fmt: skip
    assert summary["status"] == "completed" and padded > vocab
    assert load_file(tmp_path / "run" / "final" / "model.safetensors")["head.decoder.bias"].shape[0] == padded


# ------------------------------------------------------------------------------------------ the GPU configs


def test_gpu_24h_settings():
    config = load_config(os.path.join(ROOT, "configs", "pretrain", "gpu-24h.yaml"))
    fields = config.model.fields
    assert fields["vocab_size"] % 64 == 0 and fields["vocab_size"] >= 30522
    assert fields["hidden_dropout_prob"] == 0 and fields["attention_probs_dropout_prob"] == 0
    assert config.budget.endswith("tokens") and config.impl.compile and config.impl.micro_batch_size == 0
    # the budget is BERT-base's own: 1M steps x 256 sequences x 128 tokens (Devlin et al. 2019)
    from hbert.budget import Budget

    assert Budget.parse(config.budget).amount == 1_000_000 * 256 * 128


def test_fine_tuning_on_a_gpu_lets_float32_matmuls_use_tf32():
    from hbert.finetune.trainer import _device
    from hbert.runtime import allow_tf32

    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        assert _device("cpu").type == "cpu" and torch.get_float32_matmul_precision() == "highest"  # CPU: unchanged
        allow_tf32(torch.device("cuda"))  # what fine-tuning's _device does with a GPU
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(before)


def test_deterministic_on_cuda_sets_the_cublas_workspace(monkeypatch):
    """cuBLAS is deterministic only with a fixed workspace, which must be set before its first call: _runtime
    sets it (a user's own value stays) before it even looks for the device; a CPU run leaves it alone."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    loop_mod._runtime(load_config(None, ["impl.deterministic=true", "impl.device=cpu"]))
    torch.use_deterministic_algorithms(False)
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    from hbert.runtime import DeviceError, cuda_available

    config = load_config(None, ["impl.deterministic=true", "impl.device=cuda"])
    if cuda_available():
        loop_mod._runtime(config)
        torch.use_deterministic_algorithms(False)
    else:
        with pytest.raises(DeviceError):
            loop_mod._runtime(config)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_carry_teacher_writes_a_loadable_bf16_teacher(teacher, tmp_path, capsys):
    """What `make gpu-carry GPU_TEACHER=FOLDER` runs: the teacher in bf16 beside its tokenizer, checked to load;
    a folder that is no checkpoint, or a teacher too large for the carry, is one line and writes nothing."""
    import sys

    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from carry_teacher import main as carry_main
    from hbert.masking.teacher import teacher_config

    dest = tmp_path / "carry" / "teacher"
    assert carry_main([teacher, str(dest)]) == 0
    weights = load_file(dest / "model.safetensors")
    assert all(t.dtype == torch.bfloat16 for t in weights.values() if t.is_floating_point())
    assert teacher_config(str(dest)).vocab_size == teacher_config(teacher).vocab_size
    assert (dest / "tokenizer.json").exists()
    original = load_file(os.path.join(teacher, "model.safetensors"))
    assert all(torch.equal(weights[k], original[k].to(torch.bfloat16)) for k in original)
    capsys.readouterr()
    for args in ([str(tmp_path), str(tmp_path / "no")], [teacher, str(tmp_path / "small"), "--max-mb", "0.001"]):
        assert carry_main(args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and not (tmp_path / "no").exists() and not (tmp_path / "small").exists()


@pytest.mark.slow
def test_two_ranks_on_the_static_path_agree_and_drop_out_on_their_own(corpus, tmp_path):
    """torchrun with two gloo ranks on the static-shape path: the non-finite flag reduced on the device, one packed
    host all-reduce per step, every rank stopping at the same step, and a random state of its own per rank (saved
    per rank, so a resumed run keeps them apart)."""
    import subprocess
    import sys

    from .training_helpers import TINY_RUN

    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29519", "-m",
           "hbert", "pretrain", f"corpus={corpus}", f"out={run}", *TINY_RUN, "budget=6-steps", "impl.device=cpu",
           "impl.static_shapes=on", "impl.log_every=3"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 6 and summary["static_shapes"] is True
    latest = (run / "checkpoints" / "latest").read_text()
    rng = torch.load(run / "checkpoints" / latest / "state.pt", weights_only=True)["rng"]
    assert isinstance(rng, list) and len(rng) == 2 and not torch.equal(rng[0]["torch"], rng[1]["torch"])


@pytest.mark.parametrize("shapes", ["on", "off"])
def test_a_step_on_several_ranks_makes_one_packed_host_all_reduce(corpus, tmp_path, monkeypatch, shapes):
    """Charged time, evaluation / checkpoint / stop due: one packed host all-reduce per step. On the static-shape
    path the non-finite flag is reduced on the device (no host wait); the eager path decides it on the host before
    the update. Counted on a one-process gloo group standing in for two ranks."""
    import torch.distributed as dist

    from hbert.training.distributed import Dist

    calls = []
    real = dist.all_reduce

    def counting(tensor, *args, **kwargs):
        calls.append((tensor.device.type, tensor.numel(), kwargs.get("group") is None))
        return real(tensor, *args, **kwargs)

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        monkeypatch.setattr(loop_mod, "setup_distributed", lambda kind: Dist(rank=0, world=2))
        config = tiny_config(corpus, tmp_path / "run", "budget=20-steps", "impl.log_every=10", "impl.device=cpu",
                             f"impl.static_shapes={shapes}")  # fmt: skip
        run = loop_mod.start_run(config, None)
        loop_mod.train_step(run)
        monkeypatch.setattr(dist, "all_reduce", counting)
        for _ in range(3):
            loop_mod.train_step(run)  # steps 2-4: not logged, no evaluation, no checkpoint
        run.log.close()
    finally:
        dist.destroy_process_group()
    gradients = [c for c in calls if c[1] > 4]  # DDP's bucketed gradients go through its reducer, not here
    decisions = [c for c in calls if c[1] <= 4]
    assert gradients == []
    packed = [c for c in decisions if c[1] == 4]  # charged seconds + evaluation, checkpoint, stop due
    assert len(packed) == 3  # one per step
    others = [c for c in decisions if c[1] != 4]
    assert len(others) == 3 and all(n == 1 for _, n, _ in others)  # the non-finite flag, one per step

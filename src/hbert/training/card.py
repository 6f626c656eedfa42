"""The model card (``README.md``) written into every exported ``final/`` folder, in the Hugging Face model-card format:
YAML metadata with a ``model-index`` (the held-out masked-LM accuracy), ``license``, ``datasets`` and, for a run
initialised from a checkpoint, ``base_model``; then a short description of the run.

``huggingface_hub`` (a transformers dependency) writes the metadata, so the card reads back with ``ModelCard.load``
exactly as the hub would parse it.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .. import __version__
from ..modeling.attention_hbert import ATTENTION_KINDS


def command_line(argv: list[str] | None = None) -> str:
    """The command that started this process, as a user would type it (``hbert pretrain ...``)."""
    argv = list(sys.argv if argv is None else argv)
    if argv and (argv[0].endswith("hbert") or argv[0].endswith("__main__.py")):
        argv[0] = "hbert"
    return shlex.join(argv)


def _sources(manifest: dict) -> list[dict]:
    return [
        {"name": s["name"], "licence": s["licence"], "train_tokens": s["tokens"]["train"]}
        for s in manifest.get("sources", [])
    ]


# Licences a source records when hbert cannot know them: the user's own files, a hub dataset (its card says).
UNKNOWN_LICENCES = ("user supplied", "see the dataset card")


def card_license(sources: list[dict]) -> tuple[str, str | None]:
    """(``license``, ``license_name``) for the card's metadata. The weights are a product of the corpus, so the card
    names no licence the corpus does not grant: ``unknown`` when a source's licence is not known to hbert (local
    files, hub datasets), otherwise ``other`` with the name ``corpus-licences`` (the card lists each source's)."""
    if not sources or any(s["licence"] in UNKNOWN_LICENCES for s in sources):
        return "unknown", None
    return "other", "corpus-licences"


def card_datasets(sources: list[dict]) -> list[str]:
    """The ``datasets`` metadata: the hub id of a hub source (``hf:wikitext:wikitext-103-raw-v1`` -> ``wikitext``),
    the name of a source of the offline bundle (``gcide``); local files and folders have no public name."""
    names = []
    for s in sources:
        name = s["name"]
        if name.startswith("hf:"):
            names.append(name[3:].split(":")[0])
        elif not name.startswith(("files:", "disk:")):
            names.append(name)
    return names


def base_model_name(source: str) -> str | None:
    """The ``base_model`` of a run initialised from ``source``: a hub id as given; for a local checkpoint, the
    ``model_name`` of its own card (the run it came from), else its folder's name (the run's, for ``final/``)."""
    if not source:
        return None
    folder = Path(source)
    if not folder.is_dir():
        return source
    readme = folder / "README.md"
    if readme.is_file():
        try:
            name = ModelCard.load(readme).data.model_name
        except Exception:  # a card hbert did not write: fall back to the folder's name
            name = None
        if name:
            return str(name)
    folder = folder.resolve()
    return folder.parent.name if folder.name == "final" else folder.name


def model_card(
    config, parameters: int, manifest: dict, summary: dict, name: str, command: str, base_model: str | None = None
) -> str:
    """The card's text. ``summary`` is the run summary (budget state and held-out metrics); ``manifest`` the
    prepared corpus's manifest (sources and their licences); ``base_model`` the model a transfer started from."""
    corpus = manifest.get("settings", {}).get("corpus", "unknown")
    sources = _sources(manifest)
    license_id, license_name = card_license(sources)
    accuracy = summary.get("heldout_mlm_acc")
    results = []
    if accuracy is not None:
        results.append(
            EvalResult(
                task_type="fill-mask",
                task_name="Masked language modelling",
                dataset_type=f"hbert-corpus:{corpus}",
                dataset_name=f"{corpus} (held-out split)",
                dataset_split="heldout",
                metric_type="accuracy",
                metric_name="held-out MLM accuracy",
                metric_value=round(float(accuracy), 6),
            )
        )
    hbert_meta = {
        "version": __version__,
        "command": command,
        "architecture": {
            "layer_pattern": config.layer_pattern,
            "norm_scheme": config.norm_scheme,
            "hidden_size": config.hidden_size,
            "num_hidden_layers": config.num_hidden_layers,
            "num_attention_heads": config.num_attention_heads,
            "max_position_embeddings": config.max_position_embeddings,
        },
        "parameters": int(parameters),
        "budget": {
            "spec": summary.get("budget"),
            "kind": summary.get("budget_kind"),
            "steps": summary.get("steps"),
            "charged_seconds": summary.get("charged_seconds"),
        },
        "tokens_seen": summary.get("tokens"),
        "heldout_mlm_acc": accuracy,
        "corpus": {"name": corpus, "sources": sources},
    }
    extra = {"license_name": license_name} if license_name else {}
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag="fill-mask",
        license=license_id,
        datasets=card_datasets(sources) or None,
        base_model=base_model,
        tags=["hbert", "fill-mask", "custom_code", f"layers-{config.layer_pattern}"],
        model_name=name,
        eval_results=results or None,
        hbert=hbert_meta,
        **extra,
    )
    body = _body(config, parameters, summary, corpus, sources, accuracy, command, name, base_model)
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))


def _letters() -> str:
    """``S = softmax, A = additive, ...``: the letters of every registered attention kind."""
    return ", ".join(f"{kind.letter} = {kind.name}" for kind in ATTENTION_KINDS.values())


def _body(config, parameters, summary, corpus, sources, accuracy, command, name, base_model) -> str:
    lines = [
        f"# {name}",
        "",
        f"A masked-language-model encoder pretrained with hbert {__version__} (layer pattern "
        f"`{config.layer_pattern}`: {_letters()} attention; norm scheme "
        f"`{config.norm_scheme}`), {parameters:,} parameters. Load it with "
        "`AutoModelForMaskedLM.from_pretrained(path, trust_remote_code=True)` (the modeling code is in this folder).",
        "",
        f"- Budget: {summary.get('budget')} ({summary.get('steps', 0):,} steps, "
        f"{summary.get('charged_seconds', 0.0):,.0f} s charged)",
        f"- Tokens seen: {summary.get('tokens', 0):,}",
        f"- Held-out MLM accuracy: {accuracy:.4f}" if accuracy is not None else "- Held-out MLM accuracy: not measured",
        f"- Longest input: {config.max_position_embeddings} tokens",
        f"- Corpus: `{corpus}`",
    ]
    lines += [f"  - {s['name']}: {s['licence']} ({s['train_tokens']:,} train tokens)" for s in sources]
    if base_model:
        lines.append(f"- Initialised from: `{base_model}`")
    lines += [
        "",
        "Licence: the weights are learnt from the corpus above, whose sources carry the licences listed; choose the "
        "licence you publish them under accordingly (the metadata says `other` or `unknown` until you do).",
    ]
    lines += ["", "Command:", "", "```", command, "```", ""]
    return "\n".join(lines)


__all__ = ["command_line", "model_card"]

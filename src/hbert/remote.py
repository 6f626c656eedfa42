"""Loading models and tokenizers through the transformers Auto classes without running foreign code by surprise,
and without silently getting random weights.

hbert's own classes are registered with the Auto factories, so an hbert checkpoint never needs remote code. Any
other checkpoint (or tokenizer) that ships Python files (``auto_map`` with a class transformers does not know) runs
that code only when the user said so: ``--trust-remote-code`` on the command line, ``masking.trust_remote_code=true``
in a pretraining config (the Hugging Face convention). Every load passes ``trust_remote_code`` explicitly, so
transformers never asks on the terminal; where hbert offers no opt-in (a corpus's tokenizer, ``hbert info``, a
transfer source) such code is refused.

A model load checks what transformers reports: weights the checkpoint does not hold stay at their random
initialisation, which is expected only for a task head put on a pretrained encoder (and BERT's pooler, which
masked-LM checkpoints lack). Anything else missing (e.g. a ``config.json`` naming another model type than the
weights) is refused.
"""

from __future__ import annotations

from transformers import AutoTokenizer

import hbert.modeling  # noqa: F401 - registers the hbert classes: hbert checkpoints load without remote code


class RemoteCodeError(ValueError):
    """A checkpoint needs its own code and the user did not allow it."""


class IncompleteWeightsError(ValueError):
    """Loading a checkpoint would leave weights of the model at their random initialisation."""


def auto_from_pretrained(factory, path: str, trust_remote_code: bool = False, option: str | None = "--trust-remote-code",
                         new_head: bool | None = None, **kwargs):  # fmt: skip
    """``factory.from_pretrained(path, ...)`` (factory: an Auto class, including ``AutoTokenizer``) with an explicit
    remote-code decision; a refusal becomes a one-line RemoteCodeError naming the checkpoint and the opt-in
    (``option``; None where hbert offers none).

    ``new_head`` (model factories): check the weights loaded. True: a task head outside the base model may be
    new; False: every weight must come from the checkpoint. Missing weights raise IncompleteWeightsError."""
    try:
        if new_head is None:
            return factory.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
        model, info = factory.from_pretrained(
            path, trust_remote_code=trust_remote_code, output_loading_info=True, **kwargs
        )
    except ValueError as err:
        if trust_remote_code or "trust_remote_code" not in str(err):
            raise
        raise remote_code_refusal(path, option) from None
    check_complete(model, info, path, new_head)
    return model


def remote_code_refusal(path, option: str | None) -> RemoteCodeError:
    if option:
        return RemoteCodeError(
            f"{path} ships its own Python code, which loading it would run; hbert runs such code only when asked: "
            f"pass {option} if you trust its source (hbert checkpoints never need it)"
        )
    return RemoteCodeError(
        f"{path} ships its own Python code, which loading it would run; hbert does not run such code here; "
        f"accepted: a folder that transformers loads without code of its own (hbert and BERT checkpoints, "
        f"tokenizer.json / vocab.txt tokenizers)"
    )


def tokenizer_from_pretrained(path, trust_remote_code: bool = False, option: str | None = "--trust-remote-code"):
    """``AutoTokenizer.from_pretrained(path)`` with an explicit remote-code decision (see ``auto_from_pretrained``)."""
    return auto_from_pretrained(AutoTokenizer, str(path), trust_remote_code, option)


def check_complete(model, info: dict, path, new_head: bool) -> None:
    """Refuse a load that left weights at their random initialisation, except (``new_head``) a task head outside
    the base model and a pooler."""
    prefix = getattr(model, "base_model_prefix", "")
    has_base = bool(prefix) and hasattr(model, prefix) and getattr(model, prefix) is not model

    def may_be_new(key: str) -> bool:
        if not new_head:
            return False
        return "pooler" in key.split(".") or (has_base and not key.startswith(prefix + "."))

    missing = sorted(k for k in info.get("missing_keys", ()) if not may_be_new(k))
    if not missing:
        return
    total = sum(1 for _ in model.state_dict())
    model_type = getattr(model.config, "model_type", "?")
    unexpected = len(info.get("unexpected_keys", ()))
    why = (
        f"; the checkpoint holds {unexpected} weight(s) of other names: its config.json (model_type {model_type!r}) "
        f"does not describe its weights"
        if unexpected
        else ""
    )
    raise IncompleteWeightsError(
        f"{path}: {len(missing)} of the model's {total} weights are not in the checkpoint (first: "
        f"{', '.join(missing[:3])}), so they would stay random{why}; accepted: a checkpoint whose config.json "
        f"matches its weights"
    )


__all__ = [
    "IncompleteWeightsError",
    "RemoteCodeError",
    "auto_from_pretrained",
    "check_complete",
    "remote_code_refusal",
    "tokenizer_from_pretrained",
]

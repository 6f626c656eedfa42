"""Loading models through the transformers Auto classes without running foreign code by surprise.

hbert's own classes are registered with the Auto factories, so an hbert checkpoint never needs remote code. Any
other checkpoint that ships Python files (``auto_map`` with a model type transformers does not know) runs that
code only when the user said so: ``--trust-remote-code`` on the command line, ``masking.trust_remote_code=true``
in a pretraining config (the Hugging Face convention).
"""

from __future__ import annotations


class RemoteCodeError(ValueError):
    """A checkpoint needs its own code and the user did not allow it."""


def auto_from_pretrained(factory, path: str, trust_remote_code: bool = False, option: str = "--trust-remote-code",
                         **kwargs):  # fmt: skip
    """``factory.from_pretrained(path, ...)`` (factory: an Auto class) with an explicit remote-code decision; a
    refusal becomes a one-line RemoteCodeError naming the checkpoint and the opt-in."""
    import hbert.modeling  # noqa: F401 - registers the hbert classes: hbert checkpoints load without remote code

    try:
        return factory.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
    except ValueError as err:
        if trust_remote_code or "trust_remote_code" not in str(err):
            raise
        raise RemoteCodeError(
            f"{path} ships its own Python code, which loading it would run; hbert runs such code only when asked: "
            f"pass {option} if you trust its source (hbert checkpoints never need it)"
        ) from None

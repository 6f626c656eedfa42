"""The masking-strategy interface and the pieces every strategy shares."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import torch

from ..settings import check_value, setting


@dataclass
class MaskedBatch:
    input_ids: torch.Tensor  # (B, T) with replacements applied
    labels: torch.Tensor  # (B, T): original ids at the selected positions, -100 elsewhere
    selected: torch.Tensor  # (B, T) bool: the positions chosen for prediction
    stats: dict[str, float | torch.Tensor]  # tensors are read (float()) only when a step is logged
    # (B, K) the static index of the selected positions (``static_positions``), on the static-shape path only
    positions: torch.Tensor | None = None


@dataclass
class SpecialIds:
    """The ids a strategy needs to know: never masked (cls, sep, pad and any other special ids), the [MASK] id,
    and the range of ordinary ids random replacements are drawn from."""

    mask_id: int
    special: tuple[int, ...]
    vocab_size: int
    random_low: int = 0  # random replacements are drawn from [random_low, vocab_size)

    @classmethod
    def from_tokenizer(cls, tokenizer, vocab_size: int | None = None) -> SpecialIds:
        """Special ids of a BERT-style tokenizer; random replacements skip every bracketed entry such as
        ``[unused12]`` at the start of the vocabulary."""
        vocab = tokenizer.get_vocab()
        bracketed = [i for t, i in vocab.items() if t.startswith("[") and t.endswith("]")]
        special = tuple(sorted(set(tokenizer.all_special_ids)))
        return cls(tokenizer.mask_token_id, special, vocab_size or len(vocab), max(bracketed, default=-1) + 1)

    def special_tensor(self, device) -> torch.Tensor:
        return _id_tensor(self.special, torch.device(device))


@functools.lru_cache(maxsize=32)
def _id_tensor(values: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Built once per device: a host-to-device copy per step would be a wait on a GPU."""
    return torch.tensor(values, device=device, dtype=torch.long)


def candidate_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor | None, ids: SpecialIds) -> torch.Tensor:
    """(B, T) bool: positions that may be masked (real, non-special tokens)."""
    ok = ~torch.isin(input_ids, ids.special_tensor(input_ids.device))
    if attention_mask is not None:
        ok &= attention_mask.bool()
    return ok


def mask_counts(candidates: torch.Tensor, ratio: float) -> torch.Tensor:
    """(B,) the fixed number of masks per sequence: k = round(ratio x real tokens), at least 1 where possible."""
    real = candidates.sum(dim=1)
    return torch.clamp(torch.round(real.float() * ratio).long(), min=1).minimum(real)


def max_mask_count(seq_len: int, ratio: float) -> int:
    """The largest count ``mask_counts`` gives a row of ``seq_len`` tokens (the count grows with the real tokens):
    a host number, computed with the same operations, that sizes the static index."""
    return int(mask_counts(torch.ones(1, seq_len, dtype=torch.bool), ratio)[0])


def static_positions(selected: torch.Tensor, k: int) -> torch.Tensor:
    """(B, k) long: each row's selected positions in increasing order (the order ``nonzero()`` gives them), then,
    in a row with fewer than k, unselected positions as padding (their label is -100: no loss, no accuracy). Its
    shape does not depend on the data, so a compiled step needs neither a host synchronisation nor a recompile."""
    length = selected.shape[1]
    key = torch.where(selected, 0, length) + torch.arange(length, device=selected.device)
    return torch.topk(key, min(k, length), dim=1, largest=False, sorted=True).indices


def flat_rows(positions: torch.Tensor, length: int) -> torch.Tensor:
    """(B * K,) row indices into a (B * length, ...) flattening of the (B, K) ``positions``."""
    offsets = torch.arange(positions.shape[0], device=positions.device)[:, None] * length
    return (positions + offsets).reshape(-1)


def top_k_positions(scores: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: for each row, the ``counts[row]`` positions with the highest score (-inf never chosen)."""
    order = scores.argsort(dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(scores.shape[1], device=scores.device).expand_as(order))
    return (rank < counts[:, None]) & torch.isfinite(scores)


def apply_replacement(
    input_ids: torch.Tensor,
    selected: torch.Tensor,
    ids: SpecialIds,
    mask_prob: float,
    random_prob: float,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The replacement split: of the selected positions, ``mask_prob`` become [MASK], ``random_prob`` a random
    ordinary token, the rest keep their token. Returns (masked input_ids, labels). Element-wise selects only (no
    boolean indexing, no host-side test): nothing here waits for a GPU."""
    labels = torch.where(selected, input_ids, -100)
    u = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    masked = torch.where(selected & (u < mask_prob), ids.mask_id, input_ids)
    if random_prob > 0:  # drawn whether or not a slot needs one: the last use of the generator in a masking call
        random_slot = selected & (u >= mask_prob) & (u < mask_prob + random_prob)
        draws = torch.randint(
            ids.random_low, ids.vocab_size, input_ids.shape, generator=generator, device=input_ids.device
        )
        masked = torch.where(random_slot, draws, masked)
    return masked, labels


TEACHER_PRECISIONS = ("bf16", "fp32")


@dataclass
class MaskingSettings:
    """The ``masking`` settings every strategy shares: ``kind`` (a registered strategy); ``ratio``: share of real
    tokens masked per sequence (a fixed count k = round(ratio x real tokens)); of those, ``mask_prob`` become [MASK],
    ``random_prob`` a random token, the rest stay unchanged. ``teacher``: masked-LM checkpoint folder or hub name of
    a strategy that scores with a teacher, and the default distillation teacher; ``teacher_precision`` of its
    forwards; ``trust_remote_code``: let a teacher (masking or distillation) that ships its own Python code run it.
    A strategy's own settings are its ``Settings`` dataclass, added to this section when it registers."""

    kind: str = setting("random", choices=lambda: MASKING_KINDS)
    ratio: float = setting(0.15, low=0.0, high=1.0, low_open=True, high_open=True)
    mask_prob: float = setting(0.8, low=0.0, high=1.0)
    random_prob: float = setting(0.1, low=0.0, high=1.0)
    teacher: str = setting("", text=True)
    teacher_precision: str = setting("bf16", choices=TEACHER_PRECISIONS)
    trust_remote_code: bool = setting(False)


def check_shared(ratio: float, mask_prob: float, random_prob: float) -> None:
    """The shared settings' declared ranges, and their one joint rule: the replacement shares sum to at most 1."""
    declared = {f.name: f for f in dataclasses.fields(MaskingSettings)}
    for name, value in (("ratio", ratio), ("mask_prob", mask_prob), ("random_prob", random_prob)):
        check_value(declared[name], value, f"masking.{name}", ValueError)
    if mask_prob + random_prob > 1.0:
        raise ValueError("masking.mask_prob + masking.random_prob exceed 1; accepted: a sum of at most 1")


class MaskingStrategy:
    """Turns a batch into a ``MaskedBatch``. ``model`` and ``progress`` (share of the budget spent) are there for
    strategies that score tokens with a model; ``observe`` receives the training forward's outputs. ``Settings``: a
    dataclass of the strategy's own ``masking.*`` settings, declared with ``hbert.settings.setting`` (default,
    choices, range); they are read, type-checked and range-checked with every other setting."""

    name = "base"

    @dataclass
    class Settings:
        pass

    def __init__(self, ids: SpecialIds, ratio: float = 0.15, mask_prob: float = 0.8, random_prob: float = 0.1):
        check_shared(ratio, mask_prob, random_prob)
        self.ids, self.ratio, self.mask_prob, self.random_prob = ids, ratio, mask_prob, random_prob

    def select(self, input_ids, candidates, counts, generator, model=None, progress: float = 0.0) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} does not define select()")

    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        model=None,
        progress: float = 0.0,
    ) -> MaskedBatch:
        candidates = candidate_mask(input_ids, attention_mask, self.ids)
        counts = mask_counts(candidates, self.ratio)
        selected = self.select(input_ids, candidates, counts, generator, model=model, progress=progress)
        masked, labels = apply_replacement(input_ids, selected, self.ids, self.mask_prob, self.random_prob, generator)
        return MaskedBatch(masked, labels, selected, {})

    def max_count(self, seq_len: int) -> int:
        """The most positions ``select`` chooses in a row of ``seq_len`` tokens: the width of the static index
        (``static_positions``) on the static-shape path. A strategy that selects more than round(ratio x real
        tokens) per row must say so here."""
        return max_mask_count(seq_len, self.ratio)

    static = False  # set by the engine on the static-shape path: no host synchronisation, no data-dependent size

    def observe(self, masked: MaskedBatch, logits: torch.Tensor) -> None:
        """Called with the training forward's sparse logits: rows = the selected positions in row-major order, or
        on the static-shape path the rows of ``masked.positions`` (padding rows have label -100); default:
        nothing."""

    scoring_seconds = 0.0  # time spent in scorer forwards (charged to the budget unless configured otherwise)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    keep_logits = False  # set by distillation that reuses the scoring forward's teacher logits

    def shares_scoring_forward(self, teacher) -> bool:
        """Can distillation from ``teacher`` take its logits from this strategy's own scoring forward
        (``teacher_rows``)? Only a strategy that runs that teacher at every masked position can say yes."""
        return False

    @classmethod
    def from_config(cls, config, ids: SpecialIds, teacher_for=None, precision: str = "fp32") -> MaskingStrategy:
        """Build from the ``masking`` config section; ``teacher_for(path)`` gives a loaded teacher model."""
        return cls(ids, config.ratio, config.mask_prob, config.random_prob)


# ------------------------------------------------------------------------------------------ the registry

MASKING_KINDS: dict[str, type[MaskingStrategy]] = {}  # masking.kind -> strategy class; filled by register_masking


def register_masking(kind: str):
    """Class decorator: make a strategy available as ``masking.kind=KIND``, with its ``Settings`` as ``masking.*``
    keys. The class builds itself from the ``masking`` config section with ``from_config``; nothing else in hbert
    names it."""

    def register(cls: type[MaskingStrategy]) -> type[MaskingStrategy]:
        if kind in MASKING_KINDS and MASKING_KINDS[kind] is not cls:
            raise ValueError(f"masking kind {kind!r} is already registered ({MASKING_KINDS[kind].__name__})")
        owners = {f.name: "every strategy" for f in dataclasses.fields(MaskingSettings)}
        for other, registered in MASKING_KINDS.items():
            owners.update({f.name: other for f in dataclasses.fields(registered.Settings) if other != kind})
        clash = [f"{f.name} ({owners[f.name]})" for f in dataclasses.fields(cls.Settings) if f.name in owners]
        if clash:
            raise ValueError(f"masking kind {kind!r}: setting(s) {', '.join(clash)} exist already; choose other names")
        cls.name = kind
        MASKING_KINDS[kind] = cls
        return cls

    return register


_SECTIONS: dict[tuple, type] = {}


def masking_section_class() -> type[MaskingSettings]:
    """The ``masking`` section as it stands: the shared settings, then each registered strategy's own, in the order
    of registration (a strategy registered later, e.g. from a user's module, is part of the next config made)."""
    owners = tuple((kind, cls.Settings) for kind, cls in MASKING_KINDS.items())
    if owners not in _SECTIONS:
        extra = [
            (
                f.name,
                f.type,
                dataclasses.field(default=f.default, default_factory=f.default_factory, metadata=f.metadata),
            )
            for _, settings in owners
            for f in dataclasses.fields(settings)
        ]
        section = dataclasses.make_dataclass("MaskingConfig", extra, bases=(MaskingSettings,))
        section.__module__ = __name__
        _SECTIONS[owners] = section
    return _SECTIONS[owners]


def masking_settings(**values) -> MaskingSettings:
    """A ``masking`` section with the given values (unchecked: ``hbert.config.validate_config`` checks a run's)."""
    return masking_section_class()(**values)


def masking_class(kind: str) -> type[MaskingStrategy]:
    """The strategy registered as ``kind``; an unknown kind is an error naming every registered one."""
    try:
        return MASKING_KINDS[kind]
    except KeyError:
        raise ValueError(f"masking.kind={kind!r}; accepted: {', '.join(MASKING_KINDS)}") from None


def build_masking(config, ids: SpecialIds, teacher=None, precision: str = "fp32", teachers=None) -> MaskingStrategy:
    """The strategy of the ``masking`` config section. A strategy that scores with a teacher asks for it by path:
    from ``teachers`` (a ``TeacherCache``, which loads each checkpoint once) when given, else ``teacher``."""

    def teacher_for(path: str):
        return teachers.get(path) if teachers is not None else teacher

    return masking_class(config.kind).from_config(config, ids, teacher_for=teacher_for, precision=precision)

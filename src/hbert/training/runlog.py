"""What a pretraining run reports as it goes: ``log.jsonl`` (one JSON record per logged step or evaluation),
TensorBoard scalars when asked, a progress bar, and the window of steps a logged record averages over."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from tqdm.auto import tqdm


@dataclasses.dataclass
class Window:
    """Sums over the steps since the last logged record (skipped, non-finite steps add time but no loss). A step's
    numbers stay on the device until ``settle`` reads them (on a GPU, reading is a wait: once per logged step)."""

    loss: float = 0.0
    ce: float = 0.0
    kd: float = 0.0
    correct: int = 0
    n: int = 0
    steps: int = 0
    seconds: float = 0.0
    masking: dict = dataclasses.field(default_factory=dict)
    pending: list = dataclasses.field(default_factory=list)

    def add(self, result, seconds: float, measured: bool, masking_stats: dict | None = None) -> None:
        self.pending.append((result.finite, result.loss, result.ce, result.kd))
        if measured:
            self.masking = masking_stats or {}
            self.pending.append((result.correct, result.n))
        self.seconds += seconds

    def settle(self) -> None:
        """Read the pending steps' numbers, in order."""
        for item in self.pending:
            if len(item) == 2:
                self.correct += int(item[0])
                self.n += int(item[1])
            elif bool(item[0]):
                self.loss += float(item[1])
                self.ce += float(item[2])
                self.kd += float(item[3])
                self.steps += 1
        self.pending.clear()
        self.masking = {k: v if isinstance(v, (int, float)) else float(v) for k, v in self.masking.items()}

    def averages(self, tokens_per_step: int) -> dict:
        return {
            "loss": self.loss / self.steps,
            "mlm_acc": self.correct / self.n if self.n else None,  # the measured steps' masks
            "tokens_per_s": tokens_per_step * self.steps / max(self.seconds, 1e-9),
        }

    def kd_terms(self) -> dict:
        return {"loss_ce": self.ce / self.steps, "loss_kd": self.kd / self.steps}


class RunLog:
    """Writes records on the main rank only; ``close`` is safe to call more than once."""

    def __init__(self, run_dir: Path | None, tensorboard: bool = False, progress: bool = False):
        self.file = self.writer = self.bar = None
        self.history: list[dict] = []
        self.window = Window()
        self.last_acc = 0.0
        if run_dir is None:
            return
        self.file = open(run_dir / "log.jsonl", "a")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # optional: the report extra

                self.writer = SummaryWriter(str(run_dir / "tb"))
            except ImportError:
                self.writer = None
        if progress:
            self.bar = tqdm(total=100, unit="%", desc="pretrain", bar_format="{l_bar}{bar}| {n:.1f}/100% {postfix}")

    def write(self, record: dict) -> None:
        if self.file is not None:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        if self.writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step",):
                    self.writer.add_scalar(key, value, record["step"])

    def step_record(self, record: dict, charged_seconds: float) -> None:
        """Write a training record (and start a new window); the progress bar shows it with the time left."""
        self.write(record)
        self.history.append(record)
        self.window = Window()
        if record["mlm_acc"] is not None:
            self.last_acc = record["mlm_acc"]
        if self.bar is not None:
            left = (1 - record["progress"]) * charged_seconds / max(record["progress"], 1e-9)
            self.bar.n = 100 * record["progress"]
            self.bar.set_postfix_str(
                f"loss {record['loss']:.3f} acc {self.last_acc:.3f} "
                f"{record['tokens_per_s']:,.0f} tok/s left {left / 60:.1f} min",
                refresh=True,
            )

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def close(self) -> None:
        self.close_bar()
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None

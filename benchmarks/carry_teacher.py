"""Copy a local masked-LM teacher into a folder that travels to a GPU machine without network (``make gpu-carry
GPU_TEACHER=FOLDER``): weights in bf16 (the precision teachers run in by default, masking.teacher_precision=bf16;
half the bytes), its other files (tokenizer) beside them, checked to load as a teacher before anything is copied.

    python benchmarks/carry_teacher.py SOURCE_FOLDER DEST_FOLDER [--max-mb 40]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

WEIGHTS = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".ckpt", ".onnx")


def carry(source: Path, dest: Path, max_mb: float) -> float:
    """Write the bf16 teacher to ``dest`` (replaced only once complete); returns its size in MB."""
    import torch
    from transformers import AutoModelForMaskedLM
    from transformers.utils import logging

    logging.disable_progress_bar()

    from hbert.masking.teacher import TeacherError, teacher_config
    from hbert.remote import auto_from_pretrained

    teacher_config(str(source))  # one line naming the problem when it is not a loadable checkpoint
    model = auto_from_pretrained(AutoModelForMaskedLM, str(source))
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        staged = Path(tmp) / "teacher"
        model.to(torch.bfloat16).save_pretrained(staged, safe_serialization=True)
        for path in source.iterdir():  # tokenizer files, code of a remote-code model: whatever is not weights
            if path.is_file() and not path.name.endswith(WEIGHTS) and not (staged / path.name).exists():
                shutil.copy2(path, staged / path.name)
        size = sum(f.stat().st_size for f in staged.rglob("*") if f.is_file()) / 1e6
        if size > max_mb:
            raise TeacherError(f"teacher {source} is {size:.0f} MB in bf16, more than --max-mb {max_mb:g} (what a "
                               f"GPU machine's carry has room for beside the corpus); accepted: a smaller teacher")  # fmt: skip
        teacher_config(str(staged))
        if dest.exists():
            shutil.rmtree(dest)
        staged.rename(dest)
    return size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--max-mb", type=float, default=40.0, help="refuse a teacher larger than this (bf16)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    try:
        size = carry(args.source, args.dest, args.max_mb)
    except (ValueError, OSError) as err:
        print(f"carry_teacher: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    print(f"teacher {args.source} -> {args.dest} ({size:.1f} MB, bf16); use reference={args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

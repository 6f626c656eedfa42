"""A tiny prepared corpus and tiny run settings for the training tests."""

import random

from hbert.config import load_config
from hbert.data.corpus import CorpusSettings, prepare_corpus

WORDS = [f"w{i}" for i in range(80)]


def make_corpus(folder, n_docs=200, seq_len=32, heldout=0.1, seed=0):
    rng = random.Random(seed)
    text = folder / "text"
    text.mkdir(parents=True, exist_ok=True)
    docs = []
    for _ in range(n_docs):  # a little structure to learn: each word is often followed by its successor
        start = rng.randrange(80)
        words = [
            WORDS[(start + j) % 80] if rng.random() < 0.7 else rng.choice(WORDS) for j in range(rng.randint(20, 80))
        ]
        docs.append(" ".join(words) + " .")
    (text / "docs.txt").write_text("\n\n".join(docs) + "\n")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *WORDS]) + "\n")
    settings = CorpusSettings(
        corpus=f"files:{text}/*.txt",
        seq_len=seq_len,
        tokenizer=f"vocab:{vocab}",
        heldout_fraction=heldout,
        decontaminate=(),
    )
    return str(prepare_corpus(settings, folder / "corpus", progress=False))


TINY_RUN = [
    "model.hidden_size=32",
    "model.num_hidden_layers=2",
    "model.num_attention_heads=2",
    "model.intermediate_size=64",
    "train.batch_size=8",
    "train.lr=3e-3",
    "train.eval_blocks=16",
    "impl.progress=false",
    "impl.log_every=1",
    "impl.tensorboard=false",
    "impl.precision=fp32",
]


def tiny_config(corpus, out, *overrides):
    return load_config(None, [f"corpus={corpus}", f"out={out}", *TINY_RUN, *overrides])

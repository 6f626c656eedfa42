"""Data: tokenizer, pretraining corpora (offline bundle, hub, local files) and downstream task data."""

from .corpus import Corpus, CorpusError, CorpusSettings, prepare_corpus
from .tasks import TaskError, TaskSpec, get_task, load_task, registered_tasks

__all__ = [
    "Corpus",
    "CorpusError",
    "CorpusSettings",
    "TaskError",
    "TaskSpec",
    "get_task",
    "load_task",
    "prepare_corpus",
    "registered_tasks",
]

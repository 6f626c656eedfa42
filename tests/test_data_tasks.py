"""Task specs and loaders: GLUE through a mocked hub boundary, grouped splits, local YAML specs, bad input."""

import json

import datasets
import pytest

from hbert.cli import main
from hbert.data import tasks as T


def _glue_files(tmp_path, task):
    """Small local files in GLUE's own column format, one per split."""
    rows = {
        "mnli": lambda i: {"premise": f"a man plays {i}", "hypothesis": f"someone plays {i}", "label": i % 3, "idx": i},
        "stsb": lambda i: {"sentence1": f"cats sit {i}", "sentence2": f"a cat sits {i}", "label": i / 2.0, "idx": i},
        "cola": lambda i: {"sentence": f"the book was read {i}", "label": i % 2, "idx": i},
        "qqp": lambda i: {"question1": f"how to cook {i}", "question2": f"cooking {i}?", "label": i % 2, "idx": i},
    }[task]
    splits = T.GLUE_TASKS[task].splits.values()
    files = {}
    for split in splits:
        path = tmp_path / f"{task}-{split}.jsonl"
        path.write_text(
            "\n".join(json.dumps(rows(i) if "test" not in split else {**rows(i), "label": -1}) for i in range(6))
        )
        files[split] = str(path)
    return files


@pytest.mark.parametrize("task", ["mnli", "stsb", "cola", "qqp"])
def test_glue_loader_through_a_mocked_hub(tmp_path, monkeypatch, task):
    files = _glue_files(tmp_path, task)
    real_load = datasets.load_dataset
    calls = []

    def fake_load_dataset(path, name=None, **kwargs):
        calls.append((path, name))
        assert path == "nyu-mll/glue"
        return real_load("json", data_files=files)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = T.load_task(task)
    spec = T.GLUE_TASKS[task]
    assert calls == [("nyu-mll/glue", task)]
    assert set(data) == set(spec.splits)
    assert data["train"].column_names == [*spec.text_fields, "label"]
    if task == "mnli":
        assert {"validation", "validation_mismatched", "test_mismatched"} <= set(data)
        assert spec.num_labels == 3
    assert (
        spec.metrics
        == {
            "mnli": ("accuracy",),
            "stsb": ("pearson", "spearmanr"),
            "cola": ("matthews_correlation",),
            "qqp": ("f1", "accuracy"),
        }[task]
    )
    assert (spec.kind == "regression") == (task == "stsb")


def test_nine_glue_tasks_and_four_offline_tasks():
    assert list(T.GLUE_TASKS) == ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"]
    assert list(T.OFFLINE_TASKS) == [
        "rt-polarity",
        "vader-movie",
        "vader-tweets",
        "vitaminc",
        "vader-amazon",
        "vader-nyt",
    ]
    for spec in T.registered_tasks().values():
        spec.validate()


def test_grouped_split_keeps_every_sentence_in_one_split():
    rows = [{"sentence": f"sentence number {i % 40}!", "label": i % 2} for i in range(200)]
    parts = T.grouped_split(rows, ("sentence",), seed=0)
    where = {}
    for role, items in parts.items():
        for row in items:
            where.setdefault(T.sentence_key(row["sentence"]), set()).add(role)
    assert all(len(roles) == 1 for roles in where.values())
    assert sum(len(v) for v in parts.values()) == 200
    assert T.grouped_split(rows, ("sentence",), seed=0) == parts  # deterministic
    assert T.grouped_split(rows, ("sentence",), seed=1) != parts


def test_grouped_split_links_pairs_that_share_a_sentence():
    rows = [{"evidence": f"evidence {i // 3}", "claim": f"claim {i}", "label": 0} for i in range(300)]
    rows += [{"evidence": "evidence 999", "claim": "claim 0", "label": 1}]  # shares a claim with group 0
    parts = T.grouped_split(rows, ("evidence", "claim"))
    where = {}
    for role, items in parts.items():
        for row in items:
            for f in ("evidence", "claim"):
                where.setdefault(T.sentence_key(row[f]), set()).add(role)
    assert all(len(roles) == 1 for roles in where.values())


def test_split_fractions_are_roughly_80_10_10():
    rows = [{"sentence": f"unique sentence {i}", "label": 0} for i in range(5000)]
    parts = T.grouped_split(rows, ("sentence",))
    assert 0.77 < len(parts["train"]) / 5000 < 0.83 and 0.08 < len(parts["test"]) / 5000 < 0.12


def _spec(tmp_path, **overrides):
    data = {
        "name": "toy",
        "files": {"train": "train.csv", "validation": "dev.jsonl"},
        "text_fields": ["text"],
        "kind": "classification",
        "label_names": ["neg", "pos"],
        "metrics": ["accuracy", "f1"],
        **overrides,
    }
    (tmp_path / "train.csv").write_text("text,label\ngood film,pos\nbad film,neg\nfine,1\n")
    (tmp_path / "dev.jsonl").write_text('{"text": "great", "label": "pos"}\n{"text": "awful", "label": 0}\n')
    import yaml

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_local_spec_loads_and_checks(tmp_path, capsys):
    path = _spec(tmp_path)
    data = T.load_task(str(path))
    assert data["train"]["label"] == [1, 0, 1] and data["validation"]["label"] == [1, 0]
    assert main(["data", "tasks", "--check", str(path)]) == 0
    assert "valid task 'toy'" in capsys.readouterr().out


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"colour": "red"}, "unknown key(s) colour"),
        ({"kind": "ranking"}, "accepted: classification, regression"),
        ({"metrics": ["bleu"]}, "unknown metric(s) ['bleu']"),
        (
            {"kind": "regression", "label_names": None, "metrics": ["accuracy"]},
            "need classes but the task is a regression",
        ),
        ({"metrics": ["pearson"]}, "regression metrics but the task has classes"),
        ({"text_fields": ["a", "b", "c"]}, "1 or 2 columns"),
    ],
)
def test_bad_specs_are_refused_with_a_clear_message(tmp_path, overrides, message):
    with pytest.raises(T.TaskError) as err:
        T.read_spec(_spec(tmp_path, **overrides))
    assert message in str(err.value)


def test_bad_data_files(tmp_path, capsys):
    path = _spec(tmp_path, label_field="sentiment")
    with pytest.raises(T.TaskError, match="column 'sentiment' missing"):
        T.load_task(str(path))
    path = _spec(tmp_path)
    (tmp_path / "train.csv").write_text("text,label\ngood,maybe\n")
    with pytest.raises(T.TaskError, match="label 'maybe'; accepted: neg, pos"):
        T.load_task(str(path))
    (tmp_path / "train.csv").write_text("text,label\ngood,7\n")
    with pytest.raises(T.TaskError, match=r"outside 0\.\.1"):
        T.load_task(str(path))
    assert main(["data", "tasks", "--check", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(T.TaskError, match=r"unknown task 'sst3'.*sst2.*rt-polarity"):
        T.get_task("sst3")


def test_local_task_texts_feed_decontamination(tmp_path):
    path = _spec(tmp_path)
    banned, report = T.evaluation_hashes((str(path),))
    assert report["tasks_checked"] == ["toy"]
    assert T.sentence_hash("Good film") in banned and T.sentence_hash("good, film!") in banned


def test_data_tasks_listing(capsys):
    assert main(["data", "tasks"]) == 0
    out = capsys.readouterr().out
    for name in ["cola", "mnli", "rt-polarity", "vitaminc"]:
        assert name in out


def test_a_heavy_task_counts_as_fetched_only_when_its_own_download_is_complete(tmp_path, monkeypatch):
    from hbert.data.fetch import pypi_folder

    monkeypatch.setenv("HBERT_CACHE", str(tmp_path))
    vitaminc = T.OFFLINE_TASKS["vitaminc"]
    other = T.TaskSpec("heavy-x", ("text",), "classification", 2, ("accuracy",), "offline", heavy=True)
    assert not T._already_fetched(vitaminc) and not T._already_fetched(other)
    done = pypi_folder(T._HEAVY_SOURCES["vitaminc"], source=True) / ".complete"
    done.parent.mkdir(parents=True)
    done.touch()
    assert T._already_fetched(vitaminc) and not T._already_fetched(other)  # another heavy task is not vitaminc

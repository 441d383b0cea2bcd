"""Tokenise once (trainer/data_cache.py): a second run of the same data reads the cached tables; anything that
changes the encoding changes the key; the cached records are exactly what encoding in Python lists gives, with the
same train / validation split; several encoding processes give the same records as one."""

from __future__ import annotations

import json
import random
import shutil

import pytest

from tests.trainer_fixtures import train_config, write_dataset


@pytest.fixture(scope="module")
def tok(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model), local_files_only=True)


def rows(items) -> list[tuple[int, list[int], list[int]]]:
    return [(e.record, list(e.input_ids), list(e.labels)) for e in items]


def listed(path, tok, model, seed=42, val_size=0.2, max_seq_len=96):
    """The records as `prepare` encoded them before the cache: in Python lists, shuffled with the seed."""
    from trainer.data import load_conversations
    from trainer.encoding import Encoder

    convs, fmt, _skipped, _total = load_conversations(path)
    enc = Encoder(tok, max_seq_len, True, str(model))
    items = [enc.encode(i, m, fmt)[0] for i, m in convs]
    random.Random(seed).shuffle(items)
    n_val = max(1, round(len(items) * val_size))
    return items[n_val:], items[:n_val]


def test_second_prepare_reads_the_cache_and_gives_the_records_lists_gave(tmp_path, tok, tiny_model):
    from trainer.data import prepare

    data = write_dataset(tmp_path / "d.jsonl", n=50)
    first = prepare(data, tok, max_seq_len=96, val_size=0.2, model_path=str(tiny_model), cache_dir=tmp_path / "c")
    second = prepare(data, tok, max_seq_len=96, val_size=0.2, model_path=str(tiny_model), cache_dir=tmp_path / "c")
    assert (first.cache.hit, second.cache.hit) == (False, True)
    assert first.cache.key == second.cache.key and second.cache.processes == 0
    assert second.cache.path == str(tmp_path / "c" / "prepared" / first.cache.key)
    train, val = listed(data, tok, tiny_model)
    assert rows(second.train) == rows(first.train) == rows(train)
    assert rows(second.val) == rows(first.val) == rows(val)
    assert len(second.val) == 10 and second.total == 50 and second.template_mode == first.template_mode
    assert second.train.lengths == [len(e.input_ids) for e in train]
    assert sorted(second.train.records + second.val.records) == list(range(50))


def test_what_changes_the_encoding_changes_the_key(tmp_path, tok, tiny_model):
    from trainer.data import prepare

    data = write_dataset(tmp_path / "d.jsonl", n=30)
    kw = dict(model_path=str(tiny_model), cache_dir=tmp_path / "c", val_size=0.2)
    base = prepare(data, tok, max_seq_len=96, **kw).cache.key
    assert prepare(data, tok, max_seq_len=64, **kw).cache.key != base
    assert prepare(data, tok, max_seq_len=96, seed=7, **kw).cache.key != base
    assert prepare(data, tok, max_seq_len=96, system_prompt="Be brief.", **kw).cache.key != base
    other = tok.__class__.from_pretrained(str(tiny_model), local_files_only=True)
    other.chat_template = other.chat_template.replace("<|im_start|>", "<|im_start|> ")  # data.chat_template
    assert prepare(data, other, max_seq_len=96, **kw).cache.key != base
    changed = tmp_path / "d2.jsonl"
    changed.write_text(data.read_text().replace("Oslo", "Bergen"))
    assert prepare(changed, tok, max_seq_len=96, **kw).cache.key != base
    # where and how it is cached is not part of it; nor is a byte-identical copy of the file elsewhere
    shutil.copy(data, tmp_path / "copy.jsonl")
    again = prepare(tmp_path / "copy.jsonl", tok, max_seq_len=96, model_path=str(tiny_model), val_size=0.2,
                    cache_dir=tmp_path / "c", num_proc=1)
    assert again.cache.key == base and again.cache.hit


def test_several_processes_encode_the_same_records(tmp_path, tok, tiny_model):
    from trainer.data import prepare

    data = write_dataset(tmp_path / "d.jsonl", n=80)
    one = prepare(data, tok, max_seq_len=96, model_path=str(tiny_model), cache=False, num_proc=1)
    two = prepare(data, tok, max_seq_len=96, model_path=str(tiny_model), cache=False, num_proc=2)
    assert two.cache.processes == 2 and one.cache.processes == 1
    assert rows(two.train) == rows(one.train) and rows(two.val) == rows(one.val)
    assert (two.truncated, two.skipped, two.total) == (one.truncated, one.skipped, one.total)


def test_cache_off_keeps_nothing_and_a_damaged_entry_is_rebuilt(tmp_path, tok, tiny_model):
    from trainer.data import prepare

    data = write_dataset(tmp_path / "d.jsonl", n=30)
    off = prepare(data, tok, max_seq_len=96, model_path=str(tiny_model), cache=False, cache_dir=tmp_path / "c")
    assert off.cache.path is None and not (tmp_path / "c").exists()
    built = prepare(data, tok, max_seq_len=96, model_path=str(tiny_model), cache_dir=tmp_path / "c")
    shutil.rmtree(tmp_path / "c" / "prepared" / built.cache.key / "train")
    again = prepare(data, tok, max_seq_len=96, model_path=str(tiny_model), cache_dir=tmp_path / "c")
    assert not again.cache.hit and rows(again.train) == rows(built.train) == rows(off.train)
    assert [p.name for p in (tmp_path / "c" / "prepared").iterdir()] == [built.cache.key]  # no staging left


def test_skips_and_untrainable_records_are_remembered_by_the_cache(tmp_path, tok, tiny_model):
    """What made records unusable is kept with the entry: a cached run stops (or drops them) like a fresh one."""
    from core.errors import UserError
    from trainer.data import prepare

    data = write_dataset(tmp_path / "d.jsonl", n=30)
    long = {"messages": [{"role": "user", "content": "word " * 400}, {"role": "assistant", "content": "ok"}]}
    data.write_text(data.read_text() + "{not json\n" + json.dumps(long) + "\n")
    kw = dict(max_seq_len=96, model_path=str(tiny_model), cache_dir=tmp_path / "c")
    for _ in range(2):  # built, then from the cache
        with pytest.raises(UserError, match="1 record\\(s\\) have no trainable tokens .* record 31"):
            prepare(data, tok, **kw)
    dropped = prepare(data, tok, drop_untrainable=True, **kw)
    assert dropped.cache.hit and dropped.skipped == {"invalid_json": [30], "no_trainable_tokens": [31]}
    assert len(dropped.train) + len(dropped.val) == 30


def test_train_dry_run_reports_the_cache_and_the_second_run_hits(tmp_path, tiny_model, cli):
    import yaml

    data = write_dataset(tmp_path / "d.jsonl", n=40)
    cfg = train_config(tiny_model, data, tmp_path / "out", {"name": "lora", "lora_r": 4})
    cfg["data"]["cache_dir"] = "cache"  # relative to the config file's folder
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(cfg))
    reports = []
    for _ in range(2):
        code, out, err = cli("train", path, "--dry-run", "--json")
        assert code == 0, err
        reports.append(json.loads(out)["data_cache"])
    assert [r["hit"] for r in reports] == [False, True]
    assert reports[1]["path"] == str(tmp_path / "cache" / "prepared" / reports[0]["key"])


def test_cache_settings_do_not_change_the_run_fingerprint(tiny_model, tmp_path):
    from core.train_config import TrainConfig

    data = write_dataset(tmp_path / "d.jsonl", n=10)
    base = TrainConfig.model_validate(train_config(tiny_model, data, tmp_path / "o", {"name": "lora"}))
    other = base.model_copy(update={"data": base.data.model_copy(update={"cache": False, "num_proc": 4,
                                                                          "cache_dir": "/elsewhere"})})
    assert other.fingerprint() == base.fingerprint()
    longer = base.model_copy(update={"data": base.data.model_copy(update={"max_seq_len": 512})})
    assert longer.fingerprint() != base.fingerprint()


def test_processes_policy():
    from trainer.data_cache import PROC_FROM_ROWS, ROWS_PER_PROC, processes_for

    assert (PROC_FROM_ROWS, ROWS_PER_PROC) == (20_000, 10_000)
    assert processes_for(PROC_FROM_ROWS - 1, None) == 1
    assert processes_for(10, 3) == 3
    assert 1 <= processes_for(10 * PROC_FROM_ROWS, None) <= 20


def test_json_arrays_and_parquet_go_through_the_cache_as_they_read(tmp_path, tok, tiny_model):
    """Records the reader parses itself (JSON arrays, Parquet) are stored as JSON: a lone surrogate in a text and
    a column JSON has no type for (a Parquet timestamp) do not stop the preparation."""
    import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.trainer_fixtures import make_records
    from trainer.data import prepare

    records = make_records(20)
    records[3]["messages"][2]["content"] += " \ud800"
    array = tmp_path / "d.json"
    array.write_text(json.dumps(records))  # ASCII escapes: the file itself is valid UTF-8
    got = prepare(array, tok, max_seq_len=96, model_path=str(tiny_model), val_size=0.2)
    train, val = listed(array, tok, tiny_model)
    assert rows(got.train) == rows(train) and rows(got.val) == rows(val)
    table = pa.table({"messages": [r["messages"] for r in make_records(20)],
                      "created": [datetime.datetime(2024, 1, 1 + i) for i in range(20)]})
    pq.write_table(table, tmp_path / "d.parquet")
    got = prepare(tmp_path / "d.parquet", tok, max_seq_len=96, model_path=str(tiny_model), val_size=0.2)
    assert len(got.train) + len(got.val) == 20 and not got.skipped

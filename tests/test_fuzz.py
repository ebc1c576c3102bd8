"""Property-based fuzzing (hypothesis) of everything a user hands divlab: spec fields, spec
files, data set folders and text corpora, and the CLI on top of them.

The one property, everywhere: a case is valid (a spec, documents), or it raises ONE
``ConfigError`` / ``DataError`` whose message names the problem (the field, the file, the
line) — never another exception type, and never a half-written output folder. Every test
is derandomized (the same examples on every run) and sized to keep the file under ~45 s.

A longer hunt: ``DIVLAB_FUZZ_SCALE=20 pytest tests/test_fuzz.py`` runs 20 times the
examples, random ones (not derandomized), so each such run explores new cases.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from divlab import experiments
from divlab.data.ginc import GincDataset, generate
from divlab.data.store import open_dataset
from divlab.data.text import prepare_text, read_documents
from divlab.errors import ConfigError, DataError, DivlabError
from divlab.experiments import registry
from divlab.experiments.kinds.diversity import plan as diversity_plan
from divlab.io import load_yaml
from divlab.train import TrainSpec
from tests.conftest import ginc_spec
from tests.experiments.tiny import tiny_kind_spec, tiny_spec

EXAMPLES = Path(__file__).parents[1] / "examples"
# Function-scoped fixtures (tmp_path) are shared by the examples of one test: each example
# works in a fresh folder below it, so the reuse is intended.
SHARED_TMP = [HealthCheck.function_scoped_fixture]


SCALE = int(os.environ.get("DIVLAB_FUZZ_SCALE", "1"))


def _settings(n: int):
    """``n`` examples, the same on every run (derandomized, no example database); with
    DIVLAB_FUZZ_SCALE, that many times ``n`` random ones."""
    return settings(
        max_examples=n * SCALE,
        deadline=None,
        derandomize=SCALE == 1,
        suppress_health_check=[*SHARED_TMP, HealthCheck.too_slow],
        database=None,
    )


def _fresh(root: Path) -> Path:
    """A new empty folder below ``root`` for one hypothesis example."""
    n = sum(1 for _ in root.iterdir())
    path = root / f"case{n}"
    path.mkdir()
    return path


# ---- 1. spec fields ------------------------------------------------------------------------


def _base_specs() -> dict[str, dict]:
    """Valid specs of every registered kind: the shipped examples and the tests' tiny ones."""
    bases = {
        p.stem: load_yaml(p)
        for p in sorted(EXAMPLES.glob("*.yaml"))
        if not p.name.startswith(("ginc-", "train-"))
    }
    domains = [{"name": "a", "concepts": [0, 1]}, {"name": "b", "concepts": [2, 3]}]
    concepts = {"plan": "ids", "ids": [0, 1]}
    bases["tiny"] = tiny_spec()
    bases["tiny-sets"] = tiny_spec(
        plan={
            "kind": "sets",
            "sets": [
                {"name": "raw", "concepts": concepts, "noise": {"fraction": 0.3}},
                {"name": "near", "concepts": concepts, "curate": {"method": "near", "n": 3}},
                {"name": "d4", "concepts": concepts, "curate": {"method": "d4", "clusters": 4}},
                {"name": "fast", "concepts": concepts, "train": {"optimizer": {"lr": 0.02}}},
            ],
        },
        allow_unfair=True,  # the train override of set "fast": free-form, checked later
    )
    bases["tiny-collapse"] = tiny_kind_spec(
        "collapse",
        name="collapse-tiny",
        seeds=[0],
        collapse={
            "gaussian": {"M": [4, 8, 16], "chains": 10},
            "discrete": {"probabilities": [0.5, 0.25, 0.25], "M": 5},
            "lm": {"generations": 2, "real_fraction": [0.0, 0.5], "window": 16},
        },
    )
    bases["tiny-merging"] = tiny_kind_spec(
        "merging", merging={"partitions": [[0], [1], [2, 3]], "weights": [1, 2, 1]}
    )
    bases["tiny-mixtures"] = tiny_kind_spec(
        "mixtures", seeds=[0], mixtures={"domains": domains, "n_mixtures": 4, "n_candidates": 50}
    )
    bases["tiny-curriculum"] = tiny_kind_spec(
        "curriculum",
        seeds=[0],
        curriculum={
            "domains": domains,
            "orderings": [
                {"name": "shuffle", "kind": "shuffle"},
                {"name": "sched", "kind": "schedule", "weights": [[1, 0], [0, 1]]},
            ],
        },
    )
    bases["tiny-scaling"] = tiny_kind_spec(
        "scaling", seeds=[0], scaling={"token_budgets": [1024, 2048, 4096, 8192]}
    )
    for name, tree in bases.items():
        registry.spec_from_dict(copy.deepcopy(tree), source=name)  # every base is valid
    return bases


BASES = _base_specs()
assert {registry.spec_from_dict(t, "base").kind for t in BASES.values()} == set(registry.KINDS)

TreePath = tuple  # a path into a spec tree: keys and list indices


def _paths(tree, prefix: TreePath = ()) -> list[TreePath]:
    """Every node's path below the root of a spec tree."""
    found = []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    for key, value in items:
        path = (*prefix, key)
        found.append(path)
        if isinstance(value, dict | list):
            found += _paths(value, path)
    return found


BASE_PATHS = {name: _paths(tree) for name, tree in BASES.items()}

# Values of every type a YAML or JSON file can hold (usually the wrong type for the field
# they land in); bytes are YAML's !!binary, and text of arbitrary bytes a binary blob.
SCALARS = st.one_of(
    st.text(max_size=8),
    st.integers(-1000, 100_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.binary(max_size=6).map(lambda b: b.decode("latin-1")),
)
JSON_VALUES = st.one_of(
    SCALARS,
    st.lists(st.integers(-3, 40), max_size=3),
    st.lists(st.text(max_size=3), min_size=1, max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(-2, 5), max_size=2),
)
ANY_VALUE = st.one_of(JSON_VALUES, st.binary(max_size=6))
BAD_NUMBERS = st.sampled_from([0, -1, -7, 0.0, -0.5, -1e9, float("nan"), float("-inf")])
# numbers past int64 and float64's integers (numpy refuses them when a check builds arrays)
HUGE_NUMBERS = st.sampled_from([10**20, 2**63, 1e300])
# YAML keys: mostly text (any characters), sometimes a number, null or a boolean
FIELD_NAMES = st.one_of(st.text(min_size=1, max_size=12), st.integers(), st.none(), st.booleans())


@st.composite
def mutations(draw, name: str):
    """One change to spec ``name``: (op, path, value)."""
    paths = BASE_PATHS[name]
    op = draw(st.sampled_from(["set", "set", "number", "unknown", "remove", "scalar", "root"]))
    if op == "root":
        top = st.one_of(st.lists(st.integers(), max_size=2), SCALARS, st.binary(max_size=6))
        return op, (), draw(top)
    if op == "unknown":
        mappings = [()] + [p for p in paths if isinstance(_get(BASES[name], p), dict)]
        return op, (*draw(st.sampled_from(mappings)), draw(FIELD_NAMES)), 1
    if op == "number":
        numeric = [p for p in paths if isinstance(_get(BASES[name], p), int | float)]
        return op, draw(st.sampled_from(numeric)), draw(BAD_NUMBERS | HUGE_NUMBERS)
    if op == "remove":
        keyed = [p for p in paths if isinstance(p[-1], str)]
        return op, draw(st.sampled_from(keyed)), None
    if op == "scalar":
        nested = [p for p in paths if isinstance(_get(BASES[name], p), dict | list)]
        value = draw(st.one_of(st.text(max_size=5), st.integers(), st.booleans(), st.none()))
        return op, draw(st.sampled_from(nested)), value
    return op, draw(st.sampled_from(paths)), draw(ANY_VALUE)


def _get(tree, path: TreePath):
    for key in path:
        tree = tree[key]
    return tree


def _apply(tree, mutation):
    """The spec tree with ``mutation`` made (a copy)."""
    op, path, value = mutation
    if op == "root":
        return value
    tree = copy.deepcopy(tree)
    parent = _get(tree, path[:-1])
    if op == "remove":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return tree


SPEC_CASES = st.sampled_from(sorted(BASES)).flatmap(
    lambda name: st.tuples(st.just(name), st.lists(mutations(name), min_size=1, max_size=2))
)


def _mutated(name: str, changes: list) -> tuple[object, list]:
    tree = BASES[name]
    done = []
    for change in changes:
        try:
            tree = _apply(tree, change)
        except (KeyError, IndexError, TypeError):  # the first change removed the path
            continue
        done.append(change)
    return tree, done


def _names_a_field(message: str, changes: list) -> bool:
    """Does ``message`` name a field on the path of one of the changes?

    Three changes name something else, fairly: the top level replaced (the message says a
    mapping is expected); ``kind`` removed from a spec of another kind than the default
    (the spec is read as a diversity spec, and the message names the other kind's
    section, which has the kind's name, as an unknown field); and a key that is not text
    (``1: x`` in YAML: the message says keys should be strings, at a location where
    pydantic writes ``False`` as ``0``)."""
    for op, path, _ in changes:
        if op == "root":
            if "mapping" in message:
                return True
            continue
        kind_removed = op == "remove" and path == ("kind",)
        if kind_removed and any(f"{k}: unknown field" in message for k in registry.KINDS):
            return True
        if (
            op == "unknown"
            and not isinstance(path[-1], str)
            and "Keys should be strings" in message
        ):
            return True  # a key that is not text (pydantic writes the key False as 0)
        if any(k in message or repr(k) in message for k in path if isinstance(k, str)):
            return True
    return False


def _known_unnamed(message: str) -> bool:
    """Errors known not to name their source: none left."""
    return False


def _huge_merging_eval(spec) -> bool:
    """Fixed (eval.n_concepts <= 1,000,000): nothing is left out of the properties."""
    return False


def _check_valid(spec) -> None:
    """What `divlab experiment validate` does with a valid spec: each step is fine, or
    one DivlabError (an input path that does not exist, a machine that lacks CUDA). What
    it accepts, every run can start with: a diversity spec's runs (a set's free-form
    ``train`` overrides included) each make a valid TrainSpec."""
    try:
        spec.check_machine()
        assert registry.get(spec.kind).describe(spec)
        experiments.cost(spec, rate=False)  # the plan on this machine, without timing it
        experiments.cost(spec, "H100")  # and on a named GPU
    except DivlabError as e:
        assert str(e) and "\n" not in str(e)
        return
    if spec.kind == "diversity":
        for run in diversity_plan.runs(spec):
            fields = {k: v for k, v in run.train.items() if k != "evaluation"}
            TrainSpec.from_dict({**fields, "data": "data"}, source=f"run {run.id}")


@_settings(500)
@given(case=SPEC_CASES)
@example(case=("tiny", [("root", (), [1, 2])]))
@example(case=("tiny", [("unknown", ("eval", "a\nb"), 1)]))
@example(case=("tiny-sets", [("set", ("plan", "sets", 3, "train", "optimizer", "lr"), "x")]))
@example(case=("tiny-sets", [("unknown", ("plan", "sets", 3, "train", "zz"), 1)]))
def test_spec_fields(case):
    name, changes = case
    tree, done = _mutated(name, changes)
    try:
        spec = registry.spec_from_dict(tree, source="fuzzed spec")
    except ConfigError as e:
        event(f"{done[-1][0]}: ConfigError")
        message = str(e)
        assert message.startswith("invalid fuzzed spec") or _known_unnamed(message), message
        assert "\n" not in message, message
        assert _names_a_field(message, done), (done, message)
        return
    event(f"{done[-1][0]}: valid")
    if not _huge_merging_eval(spec):
        _check_valid(spec)


# ---- 2. spec files -------------------------------------------------------------------------

EXAMPLE_TEXTS = {
    p.name: p.read_bytes()
    for p in sorted(EXAMPLES.glob("*.yaml"))
    if not p.name.startswith(("ginc-", "train-"))
}


@st.composite
def spec_files(draw) -> bytes:
    kind = draw(st.sampled_from(["truncated", "bytes", "flipped", "yaml", "tabs", "latin1"]))
    text = EXAMPLE_TEXTS[draw(st.sampled_from(sorted(EXAMPLE_TEXTS)))]
    if kind == "truncated":
        return text[: draw(st.integers(0, len(text)))]
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "flipped":  # a few bytes of a valid spec overwritten
        data = bytearray(text)
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == "yaml":  # any YAML document: a list, a scalar, nested junk
        value = draw(
            st.recursive(
                st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=6)),
                lambda inner: (
                    st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=3)
                ),
                max_leaves=6,
            )
        )
        return yaml.safe_dump(value).encode()
    if kind == "tabs":  # tabs as indentation: invalid YAML
        return text.replace(b"\n  ", b"\n\t", draw(st.integers(1, 3)))
    return text.decode().replace("e", "\u00e9").encode("latin-1")  # not UTF-8


@_settings(250)
@given(content=spec_files())
@example(content=b"\xff\xfe\x00")
@example(content=b"- a\n- b\n")
@example(content=b"name: [unclosed")
@example(content=b"name:\tx\n\tseq: 1")
@example(content=b"[" * 5000)  # nesting deeper than Python's recursion limit
@example(content=b"name: x\nseeds: [" + b"9" * 5000 + b"]\n")  # int() refuses > 4300 digits
@example(content=b"name: 2020-13-45\n")  # a timestamp with month 13
def test_spec_files(tmp_path, content):
    path = _fresh(tmp_path) / "spec.yaml"
    path.write_bytes(content)
    try:
        experiments.load_spec(path)
    except ConfigError as e:
        message = str(e)
        assert str(path) in message or _known_unnamed(message), message
        assert "\n" not in message, message


def test_merging_with_a_huge_eval_set():
    tree = {**BASES["merging"], "eval": {**BASES["merging"]["eval"], "n_concepts": 10**20}}
    try:
        spec = registry.spec_from_dict(tree, source="fuzzed spec")
    except ConfigError:
        return  # the fix: refused with the spec
    registry.get("merging").describe(spec)


def test_unknown_kind_names_its_source(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**BASES["tiny"], "kind": "nonsense"}))
    with pytest.raises(ConfigError) as error:
        experiments.load_spec(path)
    assert str(path) in str(error.value)


# ---- experiment folders (divlab results / report / experiment run FOLDER) -----------------


FOLDER_SPECS = st.one_of(
    SPEC_CASES.map(lambda case: json.dumps(_mutated(*case)[0], default=repr).encode()),
    st.binary(max_size=60),
    st.sampled_from(sorted(BASES)).flatmap(
        lambda name: st.integers(0, 400).map(lambda n: json.dumps(BASES[name]).encode()[:n])
    ),
)


@_settings(150)
@given(content=FOLDER_SPECS)
@example(content=b'{"name": "x", "kind": 3}')
@example(content=b"\x80")
def test_corrupt_experiment_folders(tmp_path, content):
    """An experiment folder whose spec.json is damaged: one DivlabError, never another
    (a ``kind`` that is a list or a mapping included)."""
    folder = _fresh(tmp_path) / "experiment"
    folder.mkdir()
    (folder / "spec.json").write_bytes(content)
    for read in (registry.load, registry.kind_of_folder):
        try:
            read(folder)
        except DivlabError as e:
            event(f"{read.__name__}: {type(e).__name__}")
            assert "\n" not in str(e), str(e)


def test_kind_of_folder_with_an_unhashable_kind(tmp_path):
    (tmp_path / "spec.json").write_text(json.dumps({**BASES["tiny"], "kind": ["diversity"]}))
    with pytest.raises(DivlabError):
        registry.kind_of_folder(tmp_path)


# ---- 3. corrupt data sets and corpora ------------------------------------------------------


@pytest.fixture(scope="module")
def ginc_folder(tmp_path_factory) -> Path:
    spec = ginc_spec(n_eval=2, train_docs=8, doc_length=32)
    return generate(spec, tmp_path_factory.mktemp("fuzz") / "ginc")


def _read_everything(path: Path) -> None:
    """Open a data set and read what training and the measures read."""
    dataset = open_dataset(path)
    assert dataset.vocab_size >= 0 and dataset.eos_token_id >= 0
    dataset.info()
    if isinstance(dataset, GincDataset):
        assert dataset.family.spec.vocab_size >= 2
        assert all(i >= 0 for i in dataset.concept_ids)
    for split in dataset.splits:
        documents = dataset.documents(split)
        assert len(documents) == dataset.table(split).num_rows
        assert all(d.ndim == 1 and d.dtype == np.int64 for d in documents)
        for _ in dataset.iter_token_blocks(split, 16):
            pass


TABLE_CHANGES = st.sampled_from(
    [
        "drop tokens",
        "tokens as text",
        "tokens as ints",
        "tokens as floats",
        "tokens as strings",
        "tokens nested",
        "no rows",
        "other table",
    ]
)


def _changed_table(table: pa.Table, change: str) -> pa.Table:
    tokens = table.column("tokens").to_pylist()
    i = table.column_names.index("tokens")
    if change == "drop tokens":
        return table.drop_columns(["tokens"])
    if change == "tokens as text":
        return table.set_column(i, "tokens", pa.array([str(t) for t in tokens]))
    if change == "tokens as ints":
        return table.set_column(i, "tokens", pa.array([len(t) for t in tokens]))
    if change == "tokens as floats":
        return table.set_column(i, "tokens", pa.array([[x + 0.5 for x in t] for t in tokens]))
    if change == "tokens as strings":
        return table.set_column(i, "tokens", pa.array([[str(x) for x in t] for t in tokens]))
    if change == "tokens nested":
        return table.set_column(i, "tokens", pa.array([[t] for t in tokens]))
    if change == "no rows":
        return table.slice(0, 0)
    return pa.table({"x": [1, 2]})


SUMMARY_CHANGES = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 2000)),
    st.tuples(
        st.just("drop"),
        st.sampled_from(["format_version", "kind", "tokenizer", "splits", "family", "concepts"]),
    ),
    st.tuples(
        st.just("set"),
        st.sampled_from(
            ["kind", "tokenizer", "splits", "family", "concepts", "format_version", "prompts"]
        ),
    ),
    st.tuples(st.just("tokenizer"), st.sampled_from(["vocab_size", "eos_token_id"])),
    st.tuples(st.just("family"), st.sampled_from(["vocab_size", "n_values", "seed", "junk"])),
    st.tuples(st.just("concepts"), st.just("ids")),
    st.tuples(st.just("bytes"), st.binary(max_size=40)),  # not JSON, maybe not UTF-8
    st.tuples(st.just("root"), st.just(None)),
    st.tuples(st.just("no split file"), st.just(None)),
)

CORRUPTIONS = st.one_of(
    st.tuples(st.just("truncate"), st.sampled_from(["train", "eval"]), st.integers(0, 5000)),
    st.tuples(st.just("bytes"), st.sampled_from(["train", "eval"]), st.binary(max_size=64)),
    st.tuples(st.just("table"), st.sampled_from(["train", "eval"]), TABLE_CHANGES),
    st.tuples(st.just("summary"), SUMMARY_CHANGES, JSON_VALUES),
)


def _corrupt(folder: Path, corruption) -> None:
    what, target, detail = corruption
    if what == "truncate":
        path = folder / f"{target}.parquet"
        path.write_bytes(path.read_bytes()[:detail])
    elif what == "bytes":
        (folder / f"{target}.parquet").write_bytes(detail)
    elif what == "table":
        path = folder / f"{target}.parquet"
        pq.write_table(_changed_table(pq.read_table(path), detail), path)
    else:
        _corrupt_summary(folder, target, detail)


def _corrupt_summary(folder: Path, change, value) -> None:
    path = folder / "summary.json"
    summary = json.loads(path.read_text())
    op, key = change
    if op == "truncate":
        path.write_text(path.read_text()[: key % len(path.read_text())])
        return
    if op == "no split file":
        (folder / "train.parquet").unlink()
        return
    if op == "bytes":
        path.write_bytes(key)
        return
    if op == "drop":
        del summary[key]
    elif op == "set":
        summary[key] = value
    elif op in ("tokenizer", "family", "concepts"):
        summary[op][key] = value
    else:
        summary = value
    path.write_text(json.dumps(summary, default=repr))


@_settings(200)
@given(corruption=CORRUPTIONS)
@example(corruption=("truncate", "train", 100))
@example(corruption=("table", "train", "drop tokens"))
@example(corruption=("summary", ("drop", "splits"), None))
@example(corruption=("summary", ("root", None), [1]))
@example(corruption=("summary", ("bytes", b"\x80"), None))
@example(corruption=("summary", ("bytes", b"[" * 5000), None))
@example(corruption=("summary", ("bytes", b"9" * 5000), None))
def test_corrupt_data_sets(ginc_folder, tmp_path, corruption):
    folder = _fresh(tmp_path) / "data"
    shutil.copytree(ginc_folder, folder)
    _corrupt(folder, corruption)
    try:
        _read_everything(folder)
    except (DataError, ConfigError) as e:
        event(f"{corruption[0]}: {type(e).__name__}")
        message = str(e)
        assert str(folder) in message and "\n" not in message, message
        return
    event(f"{corruption[0]}: still readable")


JSONL_LINES = st.one_of(
    st.fixed_dictionaries({"text": st.text(max_size=10)}).map(json.dumps),
    st.fixed_dictionaries({"text": JSON_VALUES}).map(json.dumps),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2).map(json.dumps),
    st.lists(st.integers(), max_size=2).map(json.dumps),
    st.sampled_from(["", "   ", "{", '{"text": }', "null", '"text"', "3", "[", "{'text': 1}"]),
    st.text(max_size=12),
)


@st.composite
def corpora(draw) -> bytes:
    lines = draw(st.lists(JSONL_LINES, max_size=6))
    data = "\n".join(lines).encode()
    if draw(st.booleans()):
        return data
    junk = draw(st.sampled_from(["binary", "latin1", "truncate", "bom", "crlf"]))
    if junk == "binary":
        return data + draw(st.binary(min_size=1, max_size=20))
    if junk == "latin1":
        return data + '\n{"text": "caf\u00e9"}'.encode("latin-1")
    if junk == "truncate":
        return data[: draw(st.integers(0, len(data)))]
    if junk == "bom":
        return b"\xef\xbb\xbf" + data
    return data.replace(b"\n", b"\r\n")


@_settings(300)
@given(content=corpora())
@example(content=b'{"text": "a"}\n[1, 2]\n')
@example(content=b'{"text": "a"}\n{"text": 3}\n')
@example(content=b'{"text": "a"}\n\xff\xfe\n')
@example(content=b"[" * 5000)
@example(content=b'{"text": "a", "n": ' + b"9" * 5000 + b"}")
def test_malformed_jsonl(tmp_path, content):
    path = _fresh(tmp_path) / "corpus.jsonl"
    path.write_bytes(content)
    try:
        documents = list(read_documents(path))
    except DataError as e:
        event("DataError")
        message = str(e)
        assert str(path) in message and "\n" not in message, message
        assert "line" in message, message
        return
    event("read")
    assert all(isinstance(d, str) for d in documents)


@st.composite
def parquet_corpora(draw) -> tuple[pa.Table, int | None]:
    values = draw(
        st.sampled_from(
            [
                pa.array(["a b", "c", None]),
                pa.array([1, 2]),
                pa.array([["a"], ["b"]]),
                pa.array([b"\xff", b"a"]),
            ]
        )
    )
    field = draw(st.sampled_from(["text", "body"]))
    cut = draw(st.none() | st.integers(0, 2000))
    return pa.table({field: values}), cut


@_settings(40)
@given(case=parquet_corpora())
@example(case=(pa.table({"text": ["a"]}), 300))
def test_malformed_parquet_corpora(tmp_path, case):
    table, cut = case
    path = _fresh(tmp_path) / "corpus.parquet"
    pq.write_table(table, path)
    if cut is not None:
        path.write_bytes(path.read_bytes()[:cut])
    try:
        documents = list(read_documents(path))
    except DataError as e:
        message = str(e)
        assert str(path) in message and "\n" not in message, message
        return
    assert all(isinstance(d, str) for d in documents)


GOOD_LINES = st.lists(
    st.fixed_dictionaries({"text": st.text(min_size=1, max_size=30)}).map(json.dumps),
    min_size=1,
    max_size=8,
)


@st.composite
def mostly_good_corpora(draw) -> bytes:
    """Documents to prepare: usually fine, sometimes with one bad line somewhere."""
    lines = draw(GOOD_LINES)
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(JSONL_LINES))
    return "\n".join(lines).encode()


@_settings(20)
@given(content=mostly_good_corpora())
@example(content=b'{"text": "fine"}\n{"text": oops}\n')
def test_prepare_leaves_nothing_half_written(tmp_path, content):
    root = _fresh(tmp_path)
    (root / "corpus.jsonl").write_bytes(content)
    try:
        prepare_text(root / "corpus.jsonl", root / "out", vocab_size=300, eval_docs=0)
    except (DataError, ConfigError) as e:
        event(type(e).__name__)
        assert "\n" not in str(e)
        assert sorted(p.name for p in root.iterdir()) == ["corpus.jsonl"]
        return
    event("prepared")
    open_dataset(root / "out")


# ---- 4. the CLI end to end -----------------------------------------------------------------


def _cli(capsys, monkeypatch, *args: str) -> tuple[int, str]:
    """Run ``divlab ARGS`` through the real entry point in this process: (exit code, stderr)."""
    from divlab.cli import main

    monkeypatch.setattr(sys, "argv", ["divlab", *args])
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    return code, capsys.readouterr().err


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


@_settings(30)
@given(case=SPEC_CASES)
@example(case=("tiny", [("set", ("eval", "n_docs"), "many")]))
def test_cli_validate(tmp_path, capsys, monkeypatch, case):
    tree, _ = _mutated(*case)
    path = _fresh(tmp_path) / "spec.yaml"
    path.write_text(yaml.safe_dump(tree))
    code, stderr = _cli(capsys, monkeypatch, "experiment", "validate", str(path))
    event(f"exit {code}")
    assert code in (0, 2), stderr
    if code == 2:
        _one_error_line(stderr)


@_settings(20)
@given(case=SPEC_CASES)
@example(case=("tiny", [("remove", ("name",), None)]))
@example(case=("tiny-sets", [("set", ("plan", "sets", 3, "train", "seq_len"), 100)]))
def test_cli_run_refuses_invalid_specs_before_writing(tmp_path, capsys, monkeypatch, case):
    """What validate refuses (the fields, or the plan: a set's train overrides, fairness,
    inputs), run refuses too, before it writes anything."""
    tree, _ = _mutated(*case)
    try:
        spec = registry.spec_from_dict(tree, source="fuzzed spec")
        spec.check_machine()
        registry.get(spec.kind).describe(spec)
        valid = True  # it would run the experiment: not here
    except DivlabError:
        valid = False
    assume(not valid)
    root = _fresh(tmp_path)
    (root / "spec.yaml").write_text(yaml.safe_dump(tree))
    code, stderr = _cli(
        capsys, monkeypatch, "experiment", "run", str(root / "spec.yaml"), "--out",
        str(root / "out"), "--no-progress",
    )  # fmt: skip
    assert code == 2, stderr
    _one_error_line(stderr)
    assert sorted(p.name for p in root.iterdir()) == ["spec.yaml"]

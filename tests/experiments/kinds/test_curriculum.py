"""Curricula (``kind: curriculum``): every ordering holds the same documents, staged and
scheduled orders put documents where they belong, spec errors, and a tiny end-to-end run
whose speed metrics are computed per concept and per domain."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from divlab.errors import ConfigError
from divlab.experiments import domains as dom
from divlab.experiments import registry as kinds
from divlab.experiments.kinds.curriculum import run as cur
from divlab.io import read_json
from tests.experiments.tiny import InProcess, assert_plan_matches, tiny_kind_spec

DOMAINS = [{"name": "a", "concepts": [0, 1]}, {"name": "b", "concepts": [2, 3]}]


def curriculum_spec(**section) -> dict:
    spec = tiny_kind_spec("curriculum", name="tiny-curriculum", seeds=[0])
    spec["token_budget"] = 4096
    spec["training_data"] = {"n_tokens": 4096, "doc_length": 63, "seed": 2}
    spec["eval"] = {"n_concepts": 4, "n_docs": 4, "doc_length": 64, "seed": 1}
    spec["evaluation"] = {"limit": 8, "prefix": 16, "length": 4, "icl": False}
    spec["eval_every_tokens"] = 1024
    spec["curriculum"] = {"domains": DOMAINS, "threshold_gap": 1.0, **section}
    return spec


def load(spec: dict):
    return kinds.spec_from_dict(spec, source="test spec")


def test_orders_keep_the_documents_and_put_them_where_they_belong():
    rng = np.random.default_rng(0)
    domain_of = np.array(["a"] * 30 + ["b"] * 50 + ["c"] * 20)
    rng.shuffle(domain_of)
    staged = dom.staged_order(domain_of, ["b", "c", "a"], rng)
    shuffled = dom.shuffled_order(len(domain_of), rng)
    scheduled = dom.scheduled_order(
        domain_of, ["a", "b", "c"], [[1, 0, 0], [0, 1, 0], [0, 0, 1]], rng
    )
    for order in (staged, shuffled, scheduled):
        assert sorted(order.tolist()) == list(range(len(domain_of)))  # a permutation
    assert domain_of[staged].tolist() == ["b"] * 50 + ["c"] * 20 + ["a"] * 30
    # the schedule's weight moves a -> b -> c: mean position of each domain increases
    positions = {d: np.flatnonzero(domain_of[scheduled] == d).mean() for d in "abc"}
    assert positions["a"] < positions["b"] < positions["c"]
    # a's weight is 0 after p = 1/2, where c's starts and b's later half lies: every a comes
    # before those 20 + 25 documents
    assert np.flatnonzero(domain_of[scheduled] == "a").max() < 100 - 45
    with pytest.raises(ConfigError, match="weight 0 throughout"):
        dom.scheduled_order(domain_of, ["a", "b", "c"], [[1, 1, 0], [1, 1, 0]], rng)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"orderings": [{"name": "s", "kind": "staged"}, {"name": "t", "kind": "staged"}]},
            "one of kind 'shuffle'",
        ),
        (
            {
                "orderings": [
                    {"name": "u", "kind": "shuffle"},
                    {"name": "s", "kind": "staged", "stages": ["a"]},
                ]
            },
            "must list every domain once",
        ),
        (
            {
                "orderings": [
                    {"name": "u", "kind": "shuffle"},
                    {"name": "w", "kind": "schedule", "weights": [[1, 0]]},
                ]
            },
            "needs >= 2 rows",
        ),
        (
            {"orderings": [{"name": "u", "kind": "shuffle"}, {"name": "w", "kind": "schedule"}]},
            "needs weights",
        ),
        ({"shares": [0.7, 0.7]}, "must sum to 1"),
        (
            {"domains": [{"name": "a", "concepts": [0, 2]}, {"name": "b", "concepts": [2]}]},
            "share concept 2",
        ),
    ],
)
def test_bad_curricula_are_config_errors(section, message):
    with pytest.raises(ConfigError, match=message):
        load(curriculum_spec(**section))


def test_tiny_curriculum_same_documents_and_per_concept_speed(tmp_path):
    import pandas as pd

    orderings = [
        {"name": "shuffle", "kind": "shuffle"},
        {"name": "a-then-b", "kind": "staged", "stages": ["a", "b"]},
    ]
    spec = load(curriculum_spec(orderings=orderings))
    out = tmp_path / "curriculum"
    result = cur.run(spec, out, executor=InProcess(), progress=False)
    assert result["trained"] == 2
    assert_plan_matches(spec, out)

    sets = sorted((out / "data").glob("order-*"))
    assert len(sets) == 2
    documents = {p.name.split("-")[1]: cur.documents_of(p) for p in sets}
    shuffled, staged = documents["shuffle"], documents["a"]
    assert Counter(shuffled) == Counter(staged)  # the same multiset of documents
    assert len(set(shuffled)) == len(shuffled) == dom.n_documents(spec)
    domains = [d for d, _ in staged]
    assert domains == sorted(domains)  # every a before every b
    assert [d for d, _ in shuffled] != domains

    speed = pd.read_parquet(out / "curriculum.parquet")
    from divlab.train.loop import load_curve

    run_dir = out / "runs" / speed.run_id.iloc[0]
    last = load_curve(run_dir)[-1]
    scored = sorted(last["per_concept"])  # the concepts among the curve's eval documents
    assert set(scored) <= {"0", "1", "2", "3"} and len(scored) >= 3
    concepts = speed[speed.level == "concept"]
    assert sorted(concepts.series.unique()) == scored
    assert len(concepts) == 2 * len(scored)  # every scored concept of every run
    assert set(speed[speed.level == "domain"].series) == {"a", "b"}
    assert speed.auc.notna().all() and (speed.auc > 0).all()
    # thresholds are each concept's oracle loss + gap, taken from the curve
    concept = scored[-1]
    row = concepts[concepts.run_id == speed.run_id.iloc[0]].set_index("series").loc[concept]
    assert row.threshold == pytest.approx(last["per_concept_oracle"][concept] + 1.0)
    assert row.final_loss == pytest.approx(last["per_concept"][concept])

    summary = read_json(out / "report" / "summary.json")
    assert summary["kind"] == "curriculum" and summary["reference"] == "shuffle"
    staged_auc = summary["orderings"]["a-then-b"]["all"]["auc"]["mean"]
    run_auc = speed[(speed.ordering == "a-then-b") & (speed.level == "all")].auc.iloc[0]
    assert staged_auc == pytest.approx(run_auc)
    assert "figure-curriculum-curves" in (out / "report" / "index.html").read_text()

"""``kind: collapse``: model collapse under recursive training (BRIEF section 7;
Shumailov et al. 2024, "AI models collapse when trained on recursively generated data").

Two parts, each optional (``collapse.gaussian`` / ``discrete`` / ``lm: null``):

* **Analytic chains** (``divlab.experiments.collapse_chains``): the Gaussian chain and the
  discrete (categorical) chain simulated over many independent chains, beside their exact
  expectations.
* **The language-model recursion** on GINC. Generation 0 trains on real data (the eval
  concepts' training set of ``training_data``), one run per seed shared by every arm;
  each later generation trains on data built from the models before it, by *workflow*
  (``lm.workflows``; Gerstgrasser et al. 2024, "Is model collapse inevitable?"; Kazdan et
  al. 2025, "Collapse or thrive?"):

  - ``replace``: a corpus sampled from generation ``g``'s model, of the real corpus's
    size, of which a share ``real_fraction`` is real documents (one arm ``real<f>`` per
    listed value); the spec's token budget.
  - ``accumulate``: the *pool*, the real corpus plus every synthetic corpus so far (each
    of the real corpus's size, sampled from generations ``0 .. g``); the token budget
    grows with the pool (``token_budget x (g + 1)``: the same epochs every generation).
  - ``accumulate-fixed``: the same pool at the spec's token budget, so later
    generations see it in part (fewer epochs).
  - ``accumulate-subsample``: a uniform draw without replacement of ``subsample_docs``
    documents (default: the real corpus's count) from that pool, at the spec's budget:
    fixed data and compute per generation.

  The runs of one generation (arms x seeds) go through the spec's executor in parallel;
  the sampling and the corpus measures run in the driver between generations.

**Sampling.** Each generated document continues a prompt: ``<eos>`` (a document boundary,
as in the packed training stream; ``prompt_tokens: 0``) or the first ``prompt_tokens``
tokens of a real document (the paper's setup: continuations of real blocks); the
document is the ``doc_length`` continuation tokens. HF ``model.generate`` draws it with
``decoding`` ``sample`` (``temperature``, ``top_p``), ``greedy`` or ``beam``
(``num_beams``), special tokens suppressed (a document is GINC symbols only), in
segments that keep the model inside its trained context: each call sees the last
``window`` tokens (default ``seq_len // 2``) and adds ``seq_len - window`` (beam search
is therefore per segment). The torch RNG is seeded from (run seed, generation); the real
documents kept are a prefix of one permutation drawn from the same pair (shared by the
arms), and the prompts are prefixes of the documents after it.

**Measures of the data each generation trains on** (replace: the mixed corpus; the
accumulating arms: the pool or its draw; generation 0: the real corpus). The concept
assignment of a document is computed once, when its corpus is written:

* ``tail_mass``: the share of the corpus's tokens that fall on the *tail* of the real
  corpus's unigram distribution at ``tail_quantile`` q: its rarest symbols that together
  hold at most a share q of the real tokens (``collapse_chains.tail_set``). About q at
  generation 0; collapse forgets the tail, so it falls.
* ``concepts_covered`` and ``concept_entropy`` (nats): each document is assigned the
  training concept whose HMM gives it the highest likelihood (the forward algorithm of
  ``divlab.data.ginc.oracle``, emissions through a substitution channel of rate
  ``assignment_noise`` so that a document no concept can emit exactly still gets a
  finite score); the number of distinct concepts assigned and the entropy of the
  assignment's histogram. ``assignment_nll``: the mean per-token NLL under the assigned
  concept (how HMM-like the text is); ``assignment_accuracy`` (real corpus only): the
  share of real documents assigned their true concept, the assignment's sanity check.
* ``vendi_ngram``, ``distinct_n``, ``compression_ratio`` (``divlab.measure.baselines``,
  with CIs) on a seeded sample of the same number of documents for every corpus (at most
  128, half the smallest corpus), so a growing pool is not scored by its size.
* ``real_share``, ``n_docs``, ``generated_docs``: what the data is made of.
* ``diversity``: the Task2Vec diversity coefficient (``divlab.measure``) under a fixed
  probe (default ``random:tiny`` with the data's vocabulary) and the ``diversity``
  settings; ``enabled: false`` skips it.

Folder: ``data/`` (GINC eval and real sets), ``corpora/<arm>-s<seed>-g<g>/`` (generated
corpora, data set folders with ``source`` real/generated, ``assigned_concept`` and
``assignment_nll`` columns), ``pools/<arm>-s<seed>-g<g>/`` (what an accumulating
generation trains on, rows tagged ``origin`` and ``origin_doc_id``),
``measures/<corpus>.json``, ``runs/``, and the tables

* ``collapse.parquet``: one row per (arm, seed, generation): ``workflow``,
  ``token_budget``, the run's metrics (``loss``, ``perplexity``, ``gap``,
  ``oracle_loss``, ``tokens``, ...) and its data's measures;
* ``collapse_gaussian.parquet`` / ``collapse_discrete.parquet``: one row per generation of
  each analytic chain; ``collapse_absorption.parquet``: the discrete chain's absorption.

Every stage skips what is on disk (runs, corpora, measures, tables), so a killed
experiment relaunched redoes only unfinished work.
"""

from divlab.experiments.kinds.collapse import report, run
from divlab.experiments.kinds.collapse.spec import TABLES, CollapseExperimentSpec
from divlab.experiments.registry import Kind

KIND = Kind(
    name="collapse",
    spec=CollapseExperimentSpec,
    run=run.run,
    describe=run.describe,
    workload=run.workload,
    report=report.sections,
    tables=tuple(TABLES.values()),
)

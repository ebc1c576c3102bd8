"""``kind: sft``: instruction-data experiments on GINC, where every response's correctness
is known (BRIEF section 11; LIMA, AlpaGasus, Deita, "Long is more").

* **Base model**: ``sft.base: pretrain`` trains one per seed on ``training_data`` (the eval
  concepts) with the spec's recipe; or a checkpoint folder shared by every seed.
* **Instruction pool** (``pool.build_pool``): in-context tasks of the eval concepts (the
  GINC ICL prompt format: ``n`` examples and a query) with the Bayes answer as response
  (the true concept's greedy continuation of 1..l tokens); knobs recorded per example:
  formats, response length, a share of wrong first tokens, exact duplicates. Pools:
  ``clean`` (no wrong, no duplicates), ``wrong<s>`` per listed share, and ``noisy``
  (``pool.wrong_share``, ``pool.duplicate_share``), all from one seed, so they differ in
  the knob only; ``held_out`` (all correct, its own seed) is the test set.
* **Arms**, at one fine-tuning recipe (``sft.token_budget`` tokens, ``sft.lr``, from the
  base model; the loss on response tokens only, on all tokens, or both as separate arms):
  ``quantity`` (N random examples of the clean pool: the LIMA curve), ``quality`` (N =
  ``sft.examples`` random examples of a pool with the listed wrong share), ``diversity``
  (N examples of the clean pool restricted to the first k concepts) and ``selectors`` (N
  chosen from the noisy pool by ``selectors.select``: random, longest, quality = minus the
  base model's response loss, k-center on the base model's mean-pooled embeddings,
  quality-diversity; exact duplicates dropped first). Each fine-tuning set is a data set
  in ``sft-data/`` with ``prompt_length`` and the pool's ground truth and the selector's
  ``reason`` per example.
* **Evaluation** (in the driver, ``scoring.score_examples``): exact match of the greedy
  first response token against the Bayes label on the held-out prompts, with Wilson CIs,
  overall and on the concepts each arm did / did not see; the mean NLL of the Bayes
  response (teacher forcing); the base model before fine-tuning as the reference row.

Table ``sft.parquet``: one row per (arm, seed) and the base model per seed. Every stage
skips what is on disk (pools, scores, data sets, runs, evaluations).
"""

from divlab.experiments.kinds.sft import report, run
from divlab.experiments.kinds.sft.spec import SFTExperimentSpec
from divlab.experiments.registry import Kind

KIND = Kind(
    name="sft",
    spec=SFTExperimentSpec,
    run=run.run,
    describe=run.describe,
    workload=run.workload,
    report=report.sections,
    tables=(run.TABLE,),
)

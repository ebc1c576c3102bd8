"""Data-ablation approximation by merging (``kind: merging``; BRIEF section 8).

Na et al. 2024, "Scalable Data Ablation Approximations for Language Models through
Modular Training and Merging" (code: clarana/ez-data-ablations): to learn how a model
trained on a *mixture* of data partitions would do, without training it, train one seed
model, continue pre-training one copy of it per partition (a fixed token count, constant
learning rate), and average the partition models' parameters. The claim tested here: the
perplexity of the uniform average of the n partition models of a mixture correlates
strongly with the perplexity of a model actually trained on that mixture (n x the tokens,
continued from the same seed at the same learning rate), across mixtures and eval sets.

The experiment, for every seed of the spec (GINC only; partitions are groups of concepts):

1. the seed model, trained from scratch on documents of every partition's concepts;
2. one continued-pre-training run per partition (``init_from`` the seed model, constant
   learning rate, no warmup, ``partition_tokens`` tokens);
3. the candidate mixtures (all subsets of >= 2 partitions up to a cap, or a listed set):
   the parameter average of each mixture's partition models (``average_checkpoints``);
4. for ``train_mixtures`` of them, a run on the union of the partitions' training sets
   (equal shares) with n x ``partition_tokens`` tokens, otherwise as in step 2;
5. the perplexity of every model on every eval set: the experiment's ``D_eval`` and one
   eval set per partition (documents of that partition's concepts, generated with a seed
   derived from the eval seed).

Tables (pandas / DuckDB):

* ``merging.parquet``: one row per (seed, mixture, eval set): ``merge_perplexity``,
  ``mixture_perplexity`` (NaN where the mixture was not trained), and the baselines
  ``component_mean_perplexity`` (the mean perplexity of the mixture's partition models)
  and ``seed_perplexity``, with the matching losses (nats per token);
* ``merging_models.parquet``: one row per (model, eval set) with its role (seed,
  partition, merge, mixture), loss, perplexity and oracle gap.

The averaging is plain code on purpose (a weighted sum of tensors is the product); model
soups and the ez-data-ablations scripts do the same on ``state_dict`` tensors.
"""

from divlab.experiments.kinds.merging import report, run
from divlab.experiments.kinds.merging.spec import MergingExperimentSpec
from divlab.experiments.registry import Kind

KIND = Kind(
    name="merging",
    spec=MergingExperimentSpec,
    run=run.run,
    describe=run.describe,
    workload=run.workload,
    report=report.sections,
    tables=("merging.parquet", "merging_models.parquet"),
)

"""SISA and RecEraser: the sharded-retraining baselines of the paper (docs/ARCHITECTURE.md §5).


Both split the training rows into ``k`` shards (10 in the paper), train one sub-model of
the backbone (MF or LightGCN) per shard on that shard's rows only, and train an attention
aggregator on top that merges the ``k`` sub-models into one recommender. A request to
forget rows retrains, from scratch, only the shards that hold them (on their remaining
rows), then refits the aggregator on all remaining rows: warm from the model's own, for at
most the epochs the Original's took (``ShardedConfig.warm_start``; fresh, it is the full
Retrain's; why: ``unlearn_sharded``). Shards and aggregator stop alike: ``patience`` epochs
without beating their best validation AUC by more than its noise. The methods differ only in the
partition, as in the authors' code (baiyimeng/IFRU, ``eraser_*.py`` with ``part_type``):

- ``sisa``: a balanced random partition (``random_partition``);
- ``receraser``: RecEraser's interaction-based balanced partition (InBP,
  ``interaction_balanced_partition``) over the embeddings of a pretrained MF.

Both use the same aggregator (``AttentionAggregator``, the authors' ``Model/Eraser.py``).

Layout. Shard ``j``'s table is ``embeddings[j]`` [N, d] (users, then items, like a
``Recommender``). Training and propagation use the *stacked* layout [k·U + k·I, d]: the
users of every shard, then the items of every shard, so shard ``j``'s user ``u`` is row
``j·U + u`` and its item ``i`` is row ``k·U + j·I + i``. In that layout the ``k``
sub-models are one recommender with ``k·U`` users and ``k·I`` items whose interactions
never cross shards: ``lightgcn_graph`` builds the block-diagonal graph of every shard
(each with its own degrees) in one call, one ``propagate`` runs all shards, and one gather
scores a batch that mixes shards.

Sub-models follow ``ifru_ext.train``'s protocol per shard (mean BCE, Adam, batches of
``batch_size``, best state kept), except that a shard's early stop reads only the validation
pairs its rows cover, with the noise margin above (``fit_shards`` says why),
and every optimiser step takes one batch from each shard still training. Shard ``j``
draws its initial table and its batch order from its own seed (``seed + 1 + j``), and
Adam keeps per-shard state, so a shard's training does not depend on which other shards
train beside it: retraining reproduces an unchanged shard bit for bit.
"""
from .method import ShardedConfig, load_sharded, save_sharded, unlearn_sharded
from .model import FORMAT, METHODS, AttentionAggregator, ShardedRecommender, shard_graph
from .partition import capacitated_assignment, interaction_balanced_partition, pretrain_mf, random_partition
from .training import train_sharded

__all__ = [
    "FORMAT",
    "METHODS",
    "AttentionAggregator",
    "ShardedConfig",
    "ShardedRecommender",
    "capacitated_assignment",
    "interaction_balanced_partition",
    "load_sharded",
    "pretrain_mf",
    "random_partition",
    "save_sharded",
    "shard_graph",
    "train_sharded",
    "unlearn_sharded",
]

"""ifru_ext: recommendation unlearning via influence functions, on fused torch ops.

Importing the package registers ``torch.ops.ifru.*`` (propagate, propagate_rows, hvp, bpr_hvp,
hvp_plan, hvp_planned, pair_sums, triple_sums, importance, csr_transpose, with_cuda, cuda_version; _gather_floor, a benchmark probe). The public API below runs the whole flow::

    import ifru_ext as ifru
    data = ifru.load_dataset("bookcrossing", attack_fraction=0.02)
    model, _ = ifru.train_new("mf", data, ifru.TrainConfig.for_model("mf"))
    result = ifru.unlearn(model, data, data.removal)          # IFRU, the default method
    print(ifru.evaluate(result.model, data)["test"])

The layout (data → models → training → unlearning → evaluation → experiments → CLI) is
described in docs/ARCHITECTURE.md §1.
"""
from .data import RecDataset, load_dataset, validate_removal
from .evaluation import evaluate
from .graph import CSRGraph, interaction_graph, lightgcn_graph
from .models import Recommender, build_model, load_checkpoint, save_checkpoint
from .ops import (HVPPlan, bpr_hvp, csr_transpose, hvp, importance, pair_sums, plan_bpr_hvp, plan_gauss_newton, plan_hvp,
                  propagate, propagate_rows, triple_sums, with_cuda)
from .training import TrainConfig, train, train_new
from .unlearning import (METHODS, AltEraserConfig, FinetuneConfig, RetrainConfig, ShardedConfig, UnlearnConfig,
                         UnlearnResult, unlearn)

__all__ = [
    "METHODS",
    "AltEraserConfig",
    "CSRGraph",
    "FinetuneConfig",
    "HVPPlan",
    "RecDataset",
    "Recommender",
    "RetrainConfig",
    "ShardedConfig",
    "TrainConfig",
    "UnlearnConfig",
    "UnlearnResult",
    "bpr_hvp",
    "build_model",
    "csr_transpose",
    "evaluate",
    "hvp",
    "importance",
    "interaction_graph",
    "lightgcn_graph",
    "pair_sums",
    "triple_sums",
    "load_checkpoint",
    "load_dataset",
    "plan_bpr_hvp",
    "plan_gauss_newton",
    "plan_hvp",
    "propagate",
    "propagate_rows",
    "save_checkpoint",
    "train",
    "train_new",
    "unlearn",
    "validate_removal",
    "with_cuda",
]

"""ifru_ext: recommendation unlearning via influence functions, on fused torch ops.

Importing the package registers ``torch.ops.ifru.*`` (propagate, hvp, importance,
csr_transpose, with_cuda, cuda_version).
"""
from .graph import CSRGraph, interaction_graph, lightgcn_graph
from .ops import csr_transpose, hvp, importance, propagate, with_cuda

__all__ = [
    "CSRGraph",
    "csr_transpose",
    "hvp",
    "importance",
    "interaction_graph",
    "lightgcn_graph",
    "propagate",
    "with_cuda",
]

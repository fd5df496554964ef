"""Synthetic power-law interaction graphs for the scaling benchmarks.

The generator lives in the package (``ifru_ext.data.synthetic``, which also labels the same
pairs from planted factors for ``load_dataset("planted:<n>")``); this module re-exports the
benchmarks' coin-flip-labelled graphs so ``from synthetic import power_law_interactions`` keeps
working here.
"""
from ifru_ext.data.synthetic import (ITEM_EXPONENT, ITEMS_PER_INTERACTION, POSITIVE_FRACTION, USER_EXPONENT,
                                     USERS_PER_INTERACTION, SyntheticInteractions, power_law_interactions, zipf_ids)

__all__ = ["ITEM_EXPONENT", "ITEMS_PER_INTERACTION", "POSITIVE_FRACTION", "USER_EXPONENT", "USERS_PER_INTERACTION",
           "SyntheticInteractions", "power_law_interactions", "zipf_ids"]

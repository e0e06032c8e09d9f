"""Training a stack: the greedy loop on cached codes, checkpoint and exact resume, the divergence
rules, and the Stack artifact it saves.

May import :mod:`pretrain.core`, :mod:`pretrain.data`, :mod:`pretrain.layers` and :mod:`pretrain.likelihood`.
"""

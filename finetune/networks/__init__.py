"""What a fine-tuned network is made of: a Source per ``--from`` kind, the Body it yields (a stack,
its random control, pixels, torchvision backbones), heads and the saved Classifier.

May import :mod:`pretrain` only.
"""

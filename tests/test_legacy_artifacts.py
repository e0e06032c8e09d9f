"""Artifacts written before the move into sub-packages still load and give the same outputs.

``tests/fixtures/main_ae7c17f`` holds a stack (rbm:16, ae:8 on digits) and a classifier
fine-tuned from it, saved by main at commit ae7c17f, with the codes and predictions that
main computed for 20 test images.
"""
from pathlib import Path

import numpy as np
import torch

import finetune
import pretrain

SAVED = Path(__file__).parent / "fixtures" / "main_ae7c17f"


def test_a_stack_saved_before_the_move_loads_and_encodes_as_it_did():
    expected = np.load(SAVED / "expected.npz")
    stack = pretrain.load_stack(SAVED / "stack")
    assert [layer.kind for layer in stack.layers] == ["rbm", "ae"]
    np.testing.assert_allclose(stack.transform(expected["x"]), expected["codes"], rtol=0, atol=1e-6)
    saved = torch.load(SAVED / "stack" / "stack.pt", weights_only=True)  # still a plain dict of tensors
    assert saved["format"] == "layerwise.stack"


def test_a_classifier_saved_before_the_move_predicts_as_it_did():
    expected = np.load(SAVED / "expected.npz")
    classifier = finetune.load_classifier(SAVED / "classifier")
    np.testing.assert_array_equal(classifier.predict(expected["x"]), expected["predictions"])
    np.testing.assert_allclose(classifier.predict_proba(expected["x"]), expected["proba"], rtol=0, atol=1e-5)

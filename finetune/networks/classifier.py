"""A fine-tuned classifier: body + head + the body's preprocessing, saved without pickled classes.

``DIR/classifier.pt`` is a plain dict (``torch.load(..., weights_only=True)``
loads it), in the manner of nanoGPT's checkpoints: the recipe that rebuilds
the body's modules, the constructor arguments of the head, and their states::

    {"format": "layerwise.classifier", "version": 2, "checksum": "<sha256>",
     "body": {"recipe", "name", "drop_top", "state"}, "head": {"config", "state"},
     "classes": [...], "metrics": {...}}

Loading checks the checksum (see :mod:`pretrain.core.io`); a version-1 file
(layerwise 0.1.0) loads with a warning.
"""
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch
from torch import nn

from pretrain.core.batches import map_batches
from pretrain.core.errors import LayerwiseError
from pretrain.core.io import artifact_file, load_artifact, load_state, rebuilding, save_artifact, save_json

from .body import Body

FORMAT = "layerwise.classifier"
HEAD_HELP = "linear or mlp:HIDDEN[,dropout=P], e.g. mlp:256,dropout=0.5"


def parse_head(text: str) -> Dict[str, Any]:
    """``linear`` or ``mlp:256[,dropout=0.5]`` -> the head's constructor arguments."""
    kind, _, rest = text.strip().partition(":")
    if kind == "linear" and not rest:
        return {"kind": "linear"}
    if kind == "mlp" and rest:
        hidden, *options = rest.split(",")
        config = {"kind": "mlp", "hidden": hidden.strip(), "dropout": "0.0"}
        for option in options:
            key, _, value = option.partition("=")
            if key.strip() != "dropout":
                raise LayerwiseError(f"head={text}: unknown option {key.strip()!r}; use {HEAD_HELP}")
            config["dropout"] = value
        try:
            config["hidden"], config["dropout"] = int(config["hidden"]), float(config["dropout"])
        except ValueError:
            raise LayerwiseError(f"head={text}: use {HEAD_HELP}") from None
        if config["hidden"] > 0 and 0 <= config["dropout"] < 1:
            return config
    raise LayerwiseError(f"head={text}: use {HEAD_HELP}")


def build_head(config: Dict[str, Any], in_features: int, n_classes: int) -> nn.Module:
    """The head of ``config`` (see :func:`parse_head`) on ``in_features`` features.

    Every head starts with a BatchNorm without affine parameters, as in MAE's
    linear probe (He et al. 2022): features of every body (sigmoid
    probabilities bunched near 0.5, unbounded ReLU maps) reach the classifier
    standardised, so one learning rate suits every source. Without it the
    nearly constant codes of a random-init control barely train under Adam.
    """
    layers = [nn.BatchNorm1d(in_features, affine=False)]
    if config["kind"] == "mlp":
        layers += [nn.Linear(in_features, config["hidden"]), nn.ReLU(), nn.Dropout(config["dropout"])]
        in_features = config["hidden"]
    return nn.Sequential(*layers, nn.Linear(in_features, n_classes))


class Classifier(nn.Module):
    """``head(body(preprocess(raw)))``; ``predict`` and ``predict_proba`` take raw data like the training data.

    ``classes_`` are the labels in the data's own terms, as scikit-learn's
    classifiers keep them: an image folder's class names, else the values of
    ``y``. ``predict`` returns those, ``predict_proba`` columns follow their order.
    """

    def __init__(self, body: Body, head: nn.Module, head_config: Dict[str, Any], classes: List,
                 drop_top: int = 0, metrics: Optional[Dict[str, Any]] = None):
        super().__init__()
        self.body = body
        self.head = head
        self.head_config = dict(head_config)
        self.classes_ = np.asarray(classes)
        self.drop_top = drop_top
        self.metrics = dict(metrics or {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of preprocessed inputs ``x``."""
        return self.head(self.body(x))

    def predict_proba(self, raw, batch_size: int = 1024) -> np.ndarray:
        """Class probabilities ``[N, n_classes]`` of raw inputs ``[N, ...]``, columns in the order of ``classes_``."""
        self.eval()
        device = next(self.parameters()).device
        raw = np.asarray(raw)
        if not len(raw):
            return np.zeros((0, len(self.classes_)), np.float32)
        return map_batches(lambda chunk: torch.softmax(self(self.body.preprocess(chunk).to(device)), 1).cpu(),
                           raw, batch_size).numpy()

    def predict(self, raw, batch_size: int = 1024) -> np.ndarray:
        """Predicted labels ``[N]``, values of ``classes_``."""
        return self.classes_[self.predict_proba(raw, batch_size).argmax(1)]

    def to_dict(self) -> Dict[str, Any]:
        def cpu_state(module):
            return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
        return {"body": {"recipe": self.body.info["recipe"], "name": self.body.name,
                         "drop_top": self.drop_top, "state": cpu_state(self.body)},
                "head": {"config": self.head_config, "state": cpu_state(self.head)},
                "classes": self.classes_.tolist(), "metrics": self.metrics}

    def save(self, out_dir: Union[str, Path]) -> Path:
        """Write ``classifier.pt`` (and a readable ``classifier.json``) into ``out_dir`` atomically."""
        out = Path(out_dir)
        saved = self.to_dict()
        save_artifact(saved, out / "classifier.pt", "classifier")
        save_json({"format": FORMAT, "body": {k: v for k, v in saved["body"].items() if k != "state"},
                   "head": self.head_config, "classes": self.classes_.tolist(), "metrics": self.metrics},
                  out / "classifier.json")
        return out / "classifier.pt"


def load_classifier(path: Union[str, Path]) -> Classifier:
    """Load a classifier saved by ``finetune --save DIR`` (the folder or its ``classifier.pt``)."""
    from .sources import body_from_recipe
    file = artifact_file(path, "classifier.pt",
                         f"no classifier at {path}: run `finetune DATA --from ... --save {path}` first")
    remedy = f"run `finetune DATA --from ... --save {file.parent}` again, or restore the file from a backup"
    saved = load_artifact(file, "classifier", remedy)
    with rebuilding(file, "classifier", remedy):
        body = body_from_recipe(saved["body"]["recipe"], saved["body"]["name"]).drop_top(saved["body"]["drop_top"])
        body.name = saved["body"]["name"]
        load_state(body, saved["body"]["state"], "its body")
        head = build_head(saved["head"]["config"], body.out_features, len(saved["classes"]))
        load_state(head, saved["head"]["state"], "its head")
        return Classifier(body, head, saved["head"]["config"], saved["classes"], saved["body"]["drop_top"],
                          saved["metrics"]).eval()

"""layerwise's fine-tuning half: does pretraining help with my few labels, and how much?

Python API::

    import finetune
    rows = finetune.compare("digits", ["runs/dbn", "random:runs/dbn"], ["linear", "two-stage"],
                            "1,10,100", seeds=3)
    model = finetune.fine_tune("digits", "runs/dbn", schedule="two-stage", labels_per_class=10)
    advice = finetune.advise("digits", ["runs/dbn"], labels_per_class=10)   # .recommendation["args"]
    model.save("runs/clf"); finetune.load_classifier("runs/clf").predict(raw_images)   # labels, as classes_

Names are imported lazily so that ``finetune --help`` does not wait for torch.
"""
import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "fine_tune": "study.experiment", "compare": "study.experiment", "advise": "study.advisor",
    "write_report": "study.report", "load_classifier": "networks.classifier", "Classifier": "networks.classifier",
    "Body": "networks.body", "load_source": "networks.sources", "parse_source": "networks.sources",
    "freeze_to": "training.freezing", "write_predictions": "predict",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'finetune' has no attribute {name!r}")

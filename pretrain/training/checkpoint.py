"""A pretraining run's record on disk: its settings, its checkpoint, and resuming it.

After every epoch the run writes ``OUT/checkpoint.pt`` atomically: the
finished layers, the current layer with its optimizer state, the random
state, and the history. ``--resume`` continues from it and ends with the same
weights as an uninterrupted run; a request whose settings differ from the
checkpoint's, or from a finished run's, is refused with one line.
"""
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from ..core.distributed import gather_objects, is_writer, rank, world_size
from ..core.errors import LayerwiseError
from ..core.io import load_artifact, rebuilding, save_artifact

CHECKPOINT = "checkpoint.pt"
STACK = "stack.pt"
#: what to do about a checkpoint that cannot be used.
CHECKPOINT_REMEDY = "delete it and start the run again with overwrite=True"


def random_state() -> Dict[str, Any]:
    """Everything an exact resume must restore of torch's random streams: CPU, and CUDA when used."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_random_state(state: Dict[str, Any]) -> None:
    """Put back what :func:`random_state` saved."""
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def rank_states(layer: torch.nn.Module) -> List[Dict[str, Any]]:
    """Every rank's random state and buffers (e.g. PCD chains), in rank order (a collective)."""
    buffers = {name: buffer.cpu() for name, buffer in layer.named_buffers()}
    return gather_objects({"rng": random_state(), "buffers": buffers})


def restore_rank_state(layer: torch.nn.Module, states: List[Dict[str, Any]]) -> None:
    """Put back this rank's part of what :func:`rank_states` gathered; the same world size is required."""
    if len(states) != world_size():
        raise LayerwiseError(f"the checkpoint was written by {len(states)} processes, this run has {world_size()}: "
                             f"resume with torchrun --nproc_per_node {len(states)} (same number of nodes x processes)")
    mine = states[rank()]
    restore_random_state(mine["rng"])
    for name, buffer in layer.named_buffers():
        target = layer.get_submodule(name.rpartition(".")[0]) if "." in name else layer
        setattr(target, name.rpartition(".")[2], mine["buffers"][name].to(buffer.device))


def layer_seed(seed: int, index: int) -> int:
    """Each layer starts its own random stream, so resuming never depends on earlier layers' draws."""
    return seed * 1000 + index


class Run:
    """One pretraining run's settings, its checkpoint file and its history.

    ``settings`` are what must match for a checkpoint to be resumed (data,
    seeds, epochs, rates, layers); ``finished`` the state dicts of the layers
    done; ``current`` the layer in training (its state, optimizer, epoch,
    random state).
    """

    def __init__(self, layers: List[str], out: Optional[Path], settings: Dict[str, Any]):
        self.layers = list(layers)
        self.out = Path(out) if out is not None else None
        self.settings = settings
        self.history: List[Dict[str, Any]] = []
        self.finished: List[Dict[str, torch.Tensor]] = []
        self.current: Optional[Dict[str, Any]] = None

    @property
    def checkpoint_path(self) -> Optional[Path]:
        return self.out / CHECKPOINT if self.out else None

    def describe(self) -> Dict[str, Any]:
        """What must match for a checkpoint, or a finished stack, to answer this request."""
        return {**self.settings, "layers": self.layers}

    def prepare(self, resume: bool, overwrite: bool) -> None:
        """Refuse to clobber an earlier run unless asked to; load the checkpoint when resuming."""
        if self.out is None:
            return
        held = [name for name in (STACK, CHECKPOINT) if (self.out / name).exists()]
        if held and not (resume or overwrite):
            raise LayerwiseError(f"{self.out} already holds a run ({held[0]}): pass resume=True to continue it, "
                                 "overwrite=True to start again, or choose another output folder")
        if resume and self.checkpoint_path.exists():
            self.restore()

    def finished_stack_matches(self, info: Dict[str, Any]) -> bool:
        """Whether a finished stack's record (``stack.json`` info) was made by this same request."""
        recorded = {key: info.get(key) for key in self.settings}
        return recorded == self.settings and info.get("layer_specs") == self.layers

    def restore(self) -> None:
        """Load the checkpoint's finished layers, current layer and history."""
        saved = load_artifact(self.checkpoint_path, "checkpoint", CHECKPOINT_REMEDY)
        with rebuilding(self.checkpoint_path, "checkpoint", CHECKPOINT_REMEDY):
            if saved["run"] != self.describe():
                raise LayerwiseError(
                    f"{self.checkpoint_path} was written by a run with other settings: resume with the same "
                    "data, layers and options, or start again with overwrite=True")
            self.finished, self.current, self.history = saved["finished"], saved["current"], saved["history"]

    def save(self) -> None:
        """Write the checkpoint atomically (nothing without an output folder, nor on ranks other than 0)."""
        if self.out is not None and is_writer():
            save_artifact({"run": self.describe(), "finished": self.finished, "current": self.current,
                           "history": self.history}, self.checkpoint_path, "checkpoint")

    def close(self) -> None:
        """The run finished and its stack is saved: the checkpoint is no longer needed."""
        if self.checkpoint_path is not None and is_writer():
            self.checkpoint_path.unlink(missing_ok=True)

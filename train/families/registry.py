"""The training/export half of a model family, and its registry (torch imported lazily, so
`rt-train --help` works without it).

    class MyTrainFamily(TrainFamily):
        name = "myfamily"                      # = the model's `kind` and the runtime family's name
        layout = GCNET                         # its dataset layout (train/data/layout.py)
        def build_model(self, config): ...     # nn.Module from its config dict (run folders)
        def paper_model(self): ...             # (model, run meta) for rt-bench's default bundle
        train_command = staticmethod(...)      # `rt-train <name>`: typer options, one library call
    register_train_family(MyTrainFamily())

The model object itself carries the export interface, required and optional capabilities
alike: export/capabilities.py.
"""

from __future__ import annotations

from anymodal.runtime.errors import DataError
from anymodal.runtime.families.registry import import_family_modules

from ..data.gcnet_layout import GCNET

_FAMILIES: dict = {}


class TrainFamily:
    name = "abstract"
    layout = GCNET  # the dataset layout: reader, evaluation protocol, calibration samples

    def build_model(self, config: dict):
        raise NotImplementedError  # abstract

    def evaluate_run(self, run, data, split: str, model, config: dict) -> dict:
        """`rt-eval`: the layout's evaluation protocol on the run's own split (train/data/layout.py)."""
        return self.layout.evaluate_model(model, config, data, split)

    def paper_model(self):
        raise NotImplementedError  # abstract

    # precisions of rt-bench's default (paper-sized, random-weight) bundle; int8 only where the
    # paper-sized graphs quantise in reasonable time on a small CPU
    paper_precisions: tuple[str, ...] = ("fp32", "fp16")
    # (model, masked-graph inputs, mode: eager | compiled | int8) -> callable computing what the
    # authors' public code computes, for rt-bench's reference-* rows; None where no such code exists
    reference_callable = None

    train_command = None  # optional: a typer command function for `rt-train <name>`


def register_train_family(family: TrainFamily) -> None:
    _FAMILIES[family.name] = family


def get_train_family(name: str) -> TrainFamily:
    if name not in _FAMILIES:
        import_family_modules()  # $ANYMODAL_FAMILIES
    if name not in _FAMILIES:
        raise DataError(f"unknown model kind {name!r} (known: {', '.join(_FAMILIES) or 'none'})")
    return _FAMILIES[name]


def train_family_names() -> tuple[str, ...]:
    import_family_modules()  # $ANYMODAL_FAMILIES
    return tuple(_FAMILIES)

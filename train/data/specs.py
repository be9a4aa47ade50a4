"""The benchmark datasets anymodal knows: task, labels, label-pickle names, split protocol."""

from __future__ import annotations

from dataclasses import dataclass

from anymodal.runtime.errors import DataError


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    task: str  # "emotion" (classification) or "sentiment" (regression in [-3, 3])
    label_names: tuple[str, ...]  # class names; empty for sentiment
    pickle_names: tuple[str, ...]  # label-pickle file names as distributed (GCNet layout)
    has_val_split: bool  # MOSI/MOSEI ship a validation split; IEMOCAP does not
    sessions: bool  # leave-one-session-out folds (IEMOCAP)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    @property
    def output_dim(self) -> int:
        return self.num_classes if self.task == "emotion" else 1


DATASETS: dict[str, DatasetSpec] = {
    "iemocap4": DatasetSpec(
        "iemocap4", "emotion", ("happy", "sad", "neutral", "angry"),
        ("IEMOCAP_features_raw_4way.pkl",), has_val_split=False, sessions=True),
    "iemocap6": DatasetSpec(
        "iemocap6", "emotion", ("happy", "sad", "neutral", "angry", "excited", "frustrated"),
        ("IEMOCAP_features_raw_6way.pkl",), has_val_split=False, sessions=True),
    "mosi": DatasetSpec(
        "mosi", "sentiment", (), ("CMUMOSI_features_raw_2way.pkl",),
        has_val_split=True, sessions=False),
    "mosei": DatasetSpec(
        "mosei", "sentiment", (), ("CMUMOSEI_features_raw_2way.pkl",),
        has_val_split=True, sessions=False),
}

# Synthetic tasks map onto the dataset whose layout they imitate.
SYNTH_TASK_TO_DATASET = {"emotion4": "iemocap4", "emotion6": "iemocap6", "sentiment": "mosi"}
SYNTH_FEATURES = ("synth-audio", "synth-text", "synth-visual")


def get_spec(name: str) -> DatasetSpec:
    key = name.lower()
    if key not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return DATASETS[key]

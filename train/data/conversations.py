"""In-memory form of a conversational multimodal dataset, shared by every reader."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from anymodal.runtime.patterns import MODALITIES

from .specs import DatasetSpec


@dataclass
class Conversation:
    """One dialogue (IEMOCAP) or video (MOSI/MOSEI): L utterances in order."""

    id: str
    utterances: list[str]
    features: dict[str, np.ndarray]  # modality -> [L, dim] float32
    labels: np.ndarray  # [L] int64 (emotion) or float32 (sentiment)
    speakers: list[str]

    def __len__(self) -> int:
        return len(self.utterances)


@dataclass
class ConversationDataset:
    spec: DatasetSpec
    feature_names: dict[str, str]  # modality -> feature folder name
    dims: dict[str, int]  # modality -> feature dim
    conversations: dict[str, Conversation]
    splits: dict[str, list[str]] = field(default_factory=dict)  # train/val/test -> ids

    def split_by(self, ids: list[str]) -> list[Conversation]:
        missing = [c for c in ids if c not in self.conversations]
        if missing:
            from anymodal.runtime.errors import DataError

            raise DataError(f"conversations not in the {self.spec.name} data: {missing[:5]}")
        return [self.conversations[c] for c in ids]

    def input_dims(self) -> tuple[int, int, int]:
        return tuple(self.dims[m] for m in MODALITIES)  # type: ignore[return-value]

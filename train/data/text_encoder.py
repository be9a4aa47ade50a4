"""Encoding MMSA `text_bert` token ids with a local BERT-style encoder folder (optional
`text` extra: transformers). Nothing is downloaded: the folder must hold the config and
weights (`save_pretrained` output). The encoder is frozen and runs outside the exported
bundle, as a featurizer: a served request brings its text already encoded the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anymodal.runtime.errors import DataError


def load_encoder(folder: str | Path):
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise DataError(f"--text-encoder {folder}: no config.json (expected a save_pretrained folder)")
    try:
        from transformers import AutoModel
    except ImportError as exc:
        raise DataError("--text-encoder needs transformers: pip install 'anymodal[text]'") from exc
    try:
        return AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    except (OSError, ValueError) as exc:
        raise DataError(f"--text-encoder {folder}: cannot load the encoder ({exc})") from exc


def encoder_parameters(encoder) -> int:
    return sum(p.numel() for p in encoder.parameters())


def encode_text_bert(ids: np.ndarray, encoder, batch_size: int = 64) -> np.ndarray:
    """ids [N, 3, T] (token ids / attention mask / segment ids) -> last hidden states
    [N, T, H] float32, padding positions zeroed."""
    import torch

    ids = np.asarray(ids)
    if ids.ndim != 3 or ids.shape[1] != 3 or not np.issubdtype(ids.dtype, np.integer):
        raise DataError(f"text_bert: expected integer [N, 3, T] ids/mask/segments, got {ids.dtype} {ids.shape}")
    vocab = encoder.config.vocab_size
    if ids[:, 0].max() >= vocab or ids.min() < 0:
        raise DataError(f"text_bert: token ids outside the encoder's vocabulary 0..{vocab - 1}")
    out = []
    with torch.no_grad():
        for i in range(0, len(ids), batch_size):
            chunk = torch.from_numpy(ids[i:i + batch_size].astype(np.int64))
            h = encoder(input_ids=chunk[:, 0], attention_mask=chunk[:, 1],
                        token_type_ids=chunk[:, 2]).last_hidden_state  # [b, T, H]
            out.append((h * chunk[:, 1, :, None]).float().numpy())
    return np.concatenate(out).astype(np.float32)

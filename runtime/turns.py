"""The turns of a live conversation as JSON Lines (`rt-run stream`): one utterance per line.

    {"audio": [0.12, -0.3, ...], "text": "feats/t17.npy", "visual": null}
    {"id": "u18", "audio": "feats/a18.npy", "text": [...], "visual": [...], "present": ["audio", "text"]}

* `audio`, `text`, `visual`: the utterance's features of that sensor — a JSON list of `dim`
  numbers, or the path of a `.npy` file holding `[dim]` or `[1, dim]` floats. A path is relative
  to the folder of the JSONL file (the current folder for stdin) and must stay inside it
  (symlinks followed): a turn file never makes anymodal read outside the folder its user named.
  `null` or a missing key: the sensor did not report this turn.
* `present` (optional): the sensors that reported this turn. Features of the others are not
  read (a recorder that always writes every field marks its dead sensors here); every sensor
  it names must carry features. Without it, every sensor with features reported.
* `id` (optional, a string or an integer): echoed in the turn's output.

Any other key, NaN/Infinity (in JSON; in a .npy unless --nonfinite absent), a wrong dim, a turn
where no sensor reported, a line that is not UTF-8 or not a JSON object is a TurnError naming
the line. Blank lines are skipped.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .patterns import MODALITIES, MODALITY_NAMES

SENSORS = {name: m for m, name in MODALITY_NAMES.items()}  # "audio" -> "a"
KEYS = (*SENSORS, "present", "id")
_FLOATS = (np.float16, np.float32, np.float64)


class TurnError(InputError):
    """A line of a turns file is malformed; the message starts with `line N:`."""

    def __init__(self, line: int, message: str):
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass(frozen=True)
class Turn:
    line: int  # 1-based line number in the source
    features: dict[str, np.ndarray]  # modality letter -> [dim] float32, the sensors that reported
    id: str | int | None = None

    def arrays(self) -> dict[str, np.ndarray | None]:
        """Keyword arguments for Conversation.add: {audio: [dim] or None, text: ..., visual: ...}."""
        return {MODALITY_NAMES[m]: self.features.get(m) for m in MODALITIES}

    @property
    def pattern(self) -> str:
        return "".join(m for m in MODALITIES if m in self.features)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _vector(value: list, sensor: str, dim: int, line: int) -> np.ndarray:
    for i, x in enumerate(value):  # bools are ints to Python and nested lists are no numbers
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise TurnError(line, f"{sensor}[{i}] is {json.dumps(x)[:40]}, expected a number")
    if len(value) != dim:
        raise TurnError(line, f"{sensor}: {len(value)} numbers, the model expects {dim}")
    try:
        with np.errstate(over="ignore"):
            arr = np.asarray(value, np.float64).astype(np.float32)
    except OverflowError:  # an integer beyond float64's range
        i = next(i for i, x in enumerate(value) if isinstance(x, int) and abs(x) >= 2**1024)
        raise TurnError(line, f"{sensor}: a value beyond float32's range at index {i}") from None
    if not np.isfinite(arr).all():  # numbers beyond float32's range
        raise TurnError(line, f"{sensor}: a value beyond float32's range at index {int(np.argmin(np.isfinite(arr)))}")
    return arr


def _inside(base: Path, ref: str, sensor: str, line: int) -> Path:
    """The .npy file a relative reference names, resolved inside `base` (symlinks followed)."""
    if not ref.endswith(".npy"):
        raise TurnError(line, f"{sensor}: {ref!r} is not a .npy file reference")
    if os.path.isabs(ref):
        raise TurnError(line, f"{sensor}: {ref!r} is absolute; give a path relative to {base}")
    try:
        real = Path(os.path.realpath(base / ref, strict=True))
    except OSError:
        raise TurnError(line, f"{sensor}: feature file {ref!r} not found in {base}") from None
    if not real.is_relative_to(base):
        raise TurnError(line, f"{sensor}: {ref!r} resolves to {real}, outside {base}")
    if not real.is_file():
        raise TurnError(line, f"{sensor}: {ref!r} is not a file")
    return real


def _npy(path: Path, ref: str, sensor: str, dim: int, line: int, allow_nonfinite: bool) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)  # never unpickles
    except (ValueError, OSError, EOFError) as exc:
        raise TurnError(line, f"{sensor}: {ref!r} is not a readable .npy array ({exc})") from None
    if arr.dtype.type not in _FLOATS:
        raise TurnError(line, f"{sensor}: {ref!r} has dtype {arr.dtype}; expected float16, float32 or float64")
    if arr.shape not in ((dim,), (1, dim)):
        raise TurnError(line, f"{sensor}: {ref!r} has shape {arr.shape}; expected ({dim},) or (1, {dim})")
    with np.errstate(over="ignore", invalid="ignore"):
        arr = arr.reshape(dim).astype(np.float32)
    if not allow_nonfinite and not np.isfinite(arr).all():  # float64 beyond float32's range becomes Inf
        raise TurnError(line, f"{sensor}: {ref!r} holds NaN or Inf (as float32; --nonfinite absent: that sensor "
                              "counts as absent this turn)")
    return arr


def _present(value, line: int) -> set[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise TurnError(line, f"present: expected a list of sensor names ({', '.join(SENSORS)}), got "
                              f"{json.dumps(value)[:60]}")
    unknown = [s for s in value if s not in SENSORS]
    if unknown:
        raise TurnError(line, f"present: unknown sensor {unknown[0]!r}; sensors: {', '.join(SENSORS)}")
    if len(set(value)) != len(value):
        raise TurnError(line, f"present: a sensor named twice in {value}")
    return set(value)


def parse_turn(text: str | bytes, line: int, base: Path, dims: dict[str, int],
               allow_nonfinite: bool = False) -> Turn:
    """One JSONL line -> Turn. base: the resolved folder feature-file references live in;
    dims: the bundle's feature dim per modality letter; allow_nonfinite: NaN/Inf in a .npy is
    passed on (Conversation.add(nonfinite="absent") then treats that sensor as absent)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TurnError(line, f"not UTF-8 ({exc})") from None
    try:
        obj = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise TurnError(line, f"not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise TurnError(line, f"expected a JSON object {{\"audio\": …, \"text\": …, \"visual\": …}}, got "
                              f"{type(obj).__name__}")
    extra = [k for k in obj if k not in KEYS]
    if extra:
        raise TurnError(line, f"unknown key {extra[0]!r}; a turn has {', '.join(KEYS)}")
    tid = obj.get("id")
    if tid is not None and (isinstance(tid, bool) or not isinstance(tid, (str, int))):
        raise TurnError(line, f"id: expected a string or an integer, got {json.dumps(tid)[:40]}")
    given = [s for s in SENSORS if obj.get(s) is not None]
    reported = set(given) if obj.get("present") is None else _present(obj["present"], line)
    missing = sorted(reported - set(given))
    if missing:
        raise TurnError(line, f"present names {missing[0]!r} but the turn has no {missing[0]} features")
    if not reported:
        raise TurnError(line, "no sensor reported this turn (every modality null, absent or left out of "
                              "present); a turn needs at least one of " + ", ".join(SENSORS))
    features = {}
    for sensor in SENSORS:
        if sensor not in reported:
            continue
        m, value = SENSORS[sensor], obj[sensor]
        if isinstance(value, list):
            features[m] = _vector(value, sensor, dims[m], line)
        elif isinstance(value, str):
            features[m] = _npy(_inside(base, value, sensor, line), value, sensor, dims[m], line, allow_nonfinite)
        else:
            raise TurnError(line, f"{sensor}: expected a list of {dims[m]} numbers, a .npy path or null, got "
                                  f"{type(value).__name__}")
    return Turn(line, features, tid)


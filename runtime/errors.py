"""Typed errors shared by every layer. Each names what was wrong, what was expected and what came."""


class AnymodalError(Exception):
    """Base class of every error anymodal raises on purpose."""


class InputError(AnymodalError, ValueError):
    """A request to the runtime (or a CLI argument) is malformed: wrong rank, dims, dtype, NaN..."""


class RequestError(InputError):
    """A predict() request is malformed: wrong type, dtype, rank, dims, lengths, masks, NaN/Inf,
    nothing present. A ValueError; the message names the argument and what was expected."""


class ModelError(AnymodalError):
    """A graph returned something that must not be served (NaN/Inf); the message names the graph."""


class PatternError(InputError):
    """A modality-availability pattern could not be parsed."""


class BundleError(AnymodalError):
    """A bundle folder is missing files, has a corrupted file or an unsupported manifest."""


class ConversationError(BundleError):
    """The bundle's model cannot follow a conversation turn by turn (e.g. DERL scores one sample
    at a time); the message names the family."""


class DataError(AnymodalError):
    """A dataset on disk does not follow the layout it claims (missing file, bad dims, unsafe pickle)."""


class BackendUnavailableError(AnymodalError):
    """A backend asked for by name cannot run here; the message carries the install hint."""


class ExportError(AnymodalError):
    """Export or its verification failed; the message names pattern, output and error."""


class UnsupportedArchError(AnymodalError, ValueError):
    """The fused kernels cannot be compiled for this GPU architecture (newer than the code
    knows: its PTX ISA version is unknown); the message names the arch and the known ones.
    Only the fused plugin is skipped: standard graphs still build."""


class OverloadedError(AnymodalError):
    """The Scheduler refused work: its queue (max_queue) or stream table (max_streams) is full.
    Try again later or raise the bound; the message names which bound and its value."""


class StreamClosedError(InputError):
    """A turn that continues a stream (start=False; over Triton: a sequence request without START)
    names a stream that is not open: never started, its first turn refused, ended, or evicted
    after idle_timeout_s. The message names the stream and which of these it was."""


class SchedulerClosedError(AnymodalError):
    """Work submitted to a closed Scheduler, or pending when it was closed without draining."""


class BenchWorkerError(AnymodalError):
    """An rt-bench worker process (one variant each) failed or broke the protocol; the message
    names the variant and carries the worker's error or the tail of its stderr."""


class CalibrationDataError(ExportError):
    """INT8 engines need the training data the bundle records (or --calib-data) and it is not
    there or does not fit; the message names what is missing. Never replaced by random data."""


class EngineParityError(ExportError):
    """A built TensorRT engine disagrees with ONNX Runtime on the same feeds beyond the tolerance
    of its precision; the message names the graph, output, error and tolerance."""


class MissingDependencyError(ExportError):
    """A build step needs a Python package that is not installed (e.g. onnx/onnxruntime for INT8
    calibration on a Jetson); the message names what to install."""


class BackendClosedError(AnymodalError):
    """A backend was used after close(); its sessions are not re-created behind the caller's back."""


class ProfileError(AnymodalError):
    """rt-bench profile could not read a per-op profile out of ONNX Runtime's trace."""

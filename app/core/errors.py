"""The small error hierarchy: every error labelgate raises on purpose is a LabelgateError."""


class LabelgateError(Exception):
    """Base of every labelgate error."""


class ConfigError(LabelgateError):
    """Settings are invalid or inconsistent."""


class DataError(LabelgateError):
    """A data file (taxonomy, rules, queries, docs) is malformed; the message names file, line and reason."""


class InputError(LabelgateError):
    """A caller passed something we refuse (empty query, unknown label, unknown thread)."""


class StoreUnavailableError(LabelgateError):
    """A store labelgate depends on (checkpoints, feedback, Chroma) failed or cannot be reached: retry later."""


class ModelNotBuiltError(LabelgateError):
    """A model directory is missing or corrupt; the message names the command that builds it."""


class ReviewError(LabelgateError):
    """A review cannot be resumed (not paused, invalid labels, missing reviewer)."""


class NotPendingError(ReviewError):
    """The thread does not exist or is not waiting for a review."""

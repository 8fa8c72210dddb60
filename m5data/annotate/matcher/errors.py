"""The matcher's one error type, below every matcher module (features, model and training all raise it)."""

from ...errors import UserError


class MatcherError(UserError):
    """A matcher problem the user can act on (no model, a bad model file, a bad labels or pairs file)."""

"""Exceptions of the reward package. Each is a JobFailure: a job that raises one fails with its code."""

from workers.contract import JobFailure


class RewardError(JobFailure, RuntimeError):
    """A reward component failed on more completions of a step than its max_error_rate allows.

    The message names the reward, the count and a sample of the failures, ready for JobError.message.
    """

    code = "reward_error"

    def __init__(self, reward: str, errors: int, total: int, max_error_rate: float, samples: list[str]) -> None:
        self.reward, self.errors, self.total = reward, errors, total
        self.max_error_rate, self.samples = max_error_rate, samples
        shown = "; ".join(repr(s) for s in samples)
        super().__init__(
            f"reward {reward!r} failed on {errors} of {total} completions "
            f"({errors / max(total, 1):.0%} > max_error_rate {max_error_rate:.0%}); e.g. {shown}"
        )


class RewardConfigError(JobFailure, ValueError):
    """A reward spec cannot be built here (e.g. a length reward in tokens without a tokenizer)."""

    code = "invalid_reward"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class RewardValidationError(RewardConfigError):
    """A reward definition failed validation at creation time (syntax, signature or dry run)."""


class SandboxUnavailable(JobFailure, RuntimeError):
    """Isolation could not be set up (no privileges for namespaces, ...). Nothing ran unsandboxed."""

    code = "sandbox_unavailable"


class ProgramError(JobFailure, RuntimeError):
    """A sandboxed program failed to load (exception at import time, no `reward` defined)."""

    code = "reward_program_error"

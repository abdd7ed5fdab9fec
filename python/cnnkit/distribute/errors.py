"""The errors of distributed training. Each names the rank it is about: a user reading one
rank's traceback among N learns which process to look at."""

__all__ = ["DistributedError", "RankFailedError", "CollectiveTimeoutError"]


class DistributedError(RuntimeError):
    """Distributed training cannot go on (the base of the two below)."""


class RankFailedError(DistributedError):
    """Another rank raised an exception, and said so before it stopped; .rank is that rank."""

    def __init__(self, rank, message):
        super().__init__(f"rank {rank} failed: {message}")
        self.rank = rank


class CollectiveTimeoutError(DistributedError):
    """A collective operation made no progress within the timeout: a rank died without a word
    (killed, out of memory) or hangs. .ranks are those that did not answer a ping."""

    def __init__(self, what, timeout, ranks):
        who = (f"rank(s) {', '.join(map(str, ranks))} did not answer: killed, or hung"
               if ranks else "every rank answered, so one is stuck outside cnnkit's collectives")
        super().__init__(f"{what}: no progress for {timeout:g} s; {who}")
        self.ranks = list(ranks)

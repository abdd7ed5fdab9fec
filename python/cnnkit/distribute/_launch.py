"""Whether this process was started by an MPI launcher, read from the environment alone, so
that a plain `python train.py` never imports mpi4py (nor needs it installed).

Launchers set their rank and size in the environment: MPICH's and Intel MPI's Hydra (PMI_RANK,
PMI_SIZE; also Slurm's srun --mpi=pmi2), Open MPI (OMPI_COMM_WORLD_RANK/SIZE), MVAPICH. Slurm's
own SLURM_NTASKS is not read: a batch script's plain `python` sees it too, unlaunched.
"""
import os

__all__ = ["launched_size", "launched_rank"]

_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")


def _first_int(names):
    for name in names:
        value = os.environ.get(name)
        if value is not None:
            try:
                return int(value)
            except ValueError:
                continue
    return None


def launched_size():
    """The number of processes the launcher started (1 when none did)."""
    size = _first_int(_SIZE_VARS)
    return size if size and size > 0 else 1


def launched_rank():
    rank = _first_int(_RANK_VARS)
    return rank if rank is not None and rank >= 0 else 0

"""Communicator: cnnkit's use of MPI (mpi4py), made so that no failure can hang training.

Every collective is started non-blocking and then waited on by polling (wait): while it
polls, a rank also reads the two control messages another rank may send it,
- FAULT: "I raised this exception" (fail() sends it before the exception propagates): the
  waiting rank raises RankFailedError naming that rank, at once;
- PING: "are you alive?": answered with PONG.
A wait that makes no progress for `timeout` seconds pings every other rank and names those that
do not answer within a grace period (killed without a word, or hung) in a
CollectiveTimeoutError. Either way the process is then marked broken: its MPI state is not
trustworthy (requests in flight, a peer gone), so at exit it leaves with os._exit(1) instead of
MPI_Finalize, which could wait forever for the dead peer.

Three duplicates of COMM_WORLD keep the traffic apart, as MPI needs each communicator's
collectives to come in the same order on every rank: `grads` for the gradient buckets (started
during the backward pass), `sync` for every other collective (broadcasts, metrics, batch-norm
statistics), `ctrl` for the point-to-point control messages.
"""
import atexit
import os
import pickle
import sys
import time

import numpy as np

from .errors import CollectiveTimeoutError, RankFailedError

__all__ = ["Communicator"]

_FAULT, _PING, _PONG, _EXIT = 7001, 7002, 7003, 7004
_MESSAGE_BYTES = 4096  # a fault message's limit (the exception's type and text, truncated)
_GRACE = 5.0           # seconds a timed-out rank waits for the others' answers to its ping
_EXIT_GRACE = 10.0     # seconds a broken rank waits at exit for the others to reach theirs


class Communicator:
    def __init__(self, timeout):
        from mpi4py import MPI
        self.MPI = MPI
        world = MPI.COMM_WORLD
        self.rank, self.size = world.Get_rank(), world.Get_size()
        local = world.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
        local.Free()
        self.grads, self.sync, self.ctrl = world.Dup(), world.Dup(), world.Dup()
        self.timeout = float(timeout)
        self.broken = False
        self.wait_seconds = 0.0  # time spent waiting on collectives that were not yet done
        self._fault_buffer = bytearray(_MESSAGE_BYTES)
        self._fault = self.ctrl.Irecv([self._fault_buffer, MPI.BYTE], source=MPI.ANY_SOURCE,
                                      tag=_FAULT)
        self._ping_buffer = np.zeros(1, np.int64)
        self._ping = self.ctrl.Irecv(self._ping_buffer, source=MPI.ANY_SOURCE, tag=_PING)
        self._answers = []  # PONG sends in flight (never waited on)
        self._status = MPI.Status()
        # Registered after mpi4py's own MPI_Finalize hook, so it runs before it (atexit is LIFO).
        atexit.register(self._exit_if_broken)

    # ------------------------------------------------------------ waiting
    def wait(self, requests, what):
        """Polls until every request completes; raises RankFailedError or
        CollectiveTimeoutError instead of waiting forever."""
        test_all = self.MPI.Request.Testall
        if test_all(requests):
            return
        start = time.monotonic()
        spins = 0
        try:
            while not test_all(requests):
                self._read_control()
                spins += 1
                if spins > 2000:  # after a few ms of spinning, poll every 50 us
                    time.sleep(5e-5)
                    if time.monotonic() - start > self.timeout:
                        self._timed_out(what)
        finally:
            self.wait_seconds += time.monotonic() - start

    def _read_control(self):
        status = self._status
        if self._fault.Test(status):
            rank = status.Get_source()
            message = bytes(self._fault_buffer[:status.Get_count(self.MPI.BYTE)]).decode(
                "utf-8", "replace")
            self.broken = True
            raise RankFailedError(rank, message)
        if self._ping.Test(status):
            self._answers.append(self.ctrl.Isend(np.zeros(1, np.int64),
                                                 dest=status.Get_source(), tag=_PONG))
            self._ping = self.ctrl.Irecv(self._ping_buffer, source=self.MPI.ANY_SOURCE,
                                         tag=_PING)

    def _timed_out(self, what):
        """Pings every other rank; those that do not answer within the grace period are named."""
        self.broken = True
        others = [r for r in range(self.size) if r != self.rank]
        pings = [self.ctrl.Isend(np.zeros(1, np.int64), dest=r, tag=_PING) for r in others]
        buffers = {r: np.zeros(1, np.int64) for r in others}
        answers = {r: self.ctrl.Irecv(buffers[r], source=r, tag=_PONG) for r in others}
        end = time.monotonic() + min(_GRACE, self.timeout)
        silent = set(others)
        while silent and time.monotonic() < end:
            self._read_control()
            silent = {r for r in silent if not answers[r].Test()}
            time.sleep(1e-3)
        del pings  # never waited on: a dead peer would never take them
        raise CollectiveTimeoutError(what, self.timeout, sorted(silent))

    # ------------------------------------------------------------ faults
    def fail(self, error):
        """Tells every other rank that this one failed with `error` (before it propagates)."""
        if self.broken:  # a consequence of another rank's failure: that one has told them
            return
        self.broken = True
        text = f"{type(error).__name__}: {error}".encode("utf-8", "replace")[:_MESSAGE_BYTES]
        sends = [self.ctrl.Isend([text, self.MPI.BYTE], dest=r, tag=_FAULT)
                 for r in range(self.size) if r != self.rank]
        end = time.monotonic() + _GRACE
        while not self.MPI.Request.Testall(sends) and time.monotonic() < end:
            time.sleep(1e-3)

    def _exit_if_broken(self):
        if self.broken:
            self._meet_at_exit()
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os._exit(1)
        # A clean exit: the control receives still posted are cancelled before MPI_Finalize
        for request in (self._fault, self._ping):
            request.Cancel()
            request.Wait()
        self.MPI.Request.Waitall(self._answers)

    def _meet_at_exit(self):
        """Waits (up to _EXIT_GRACE s) until every other rank is at its exit too: the launcher
        ends the job when the first process leaves, and each rank's error (printed before
        the exit hooks run) should be out by then. A dead or hung rank is not waited for."""
        others = [r for r in range(self.size) if r != self.rank]
        for r in others:
            self.ctrl.Isend(np.zeros(1, np.int64), dest=r, tag=_EXIT)
        buffers = {r: np.zeros(1, np.int64) for r in others}
        waiting = {r: self.ctrl.Irecv(buffers[r], source=r, tag=_EXIT) for r in others}
        end = time.monotonic() + min(_EXIT_GRACE, self.timeout)
        while waiting and time.monotonic() < end:
            waiting = {r: q for r, q in waiting.items() if not q.Test()}
            time.sleep(1e-3)
        # The launcher forwards each rank's output through pipes; when the first rank leaves
        # it tears the job down, and what the others printed last may still be in transit.
        time.sleep(0.5)

    # ------------------------------------------------------------ collectives
    def allreduce(self, array, what, op="sum", comm=None):
        """array (a contiguous NumPy array) summed (or maxed) over the ranks, in place."""
        mpi_op = {"sum": self.MPI.SUM, "max": self.MPI.MAX, "min": self.MPI.MIN}[op]
        comm = comm or self.sync
        self.wait([comm.Iallreduce(self.MPI.IN_PLACE, array, op=mpi_op)], what)
        return array

    def start_allreduce(self, array):
        """A gradient bucket's sum, started (on the gradient communicator); wait on it later."""
        return self.grads.Iallreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM)

    def broadcast(self, array, what, root=0):
        self.wait([self.sync.Ibcast(array, root=root)], what)
        return array

    def broadcast_object(self, value, what, root=0):
        data = pickle.dumps(value) if self.rank == root else b""
        length = np.array([len(data)], np.int64)
        self.broadcast(length, what, root)
        buffer = np.frombuffer(data, np.uint8).copy() if self.rank == root else \
            np.empty(int(length[0]), np.uint8)
        self.broadcast(buffer, what, root)
        return value if self.rank == root else pickle.loads(buffer.tobytes())

    def allgather_object(self, value, what):
        """[value of rank 0, value of rank 1, ...] on every rank."""
        data = np.frombuffer(pickle.dumps(value), np.uint8)
        lengths = np.zeros(self.size, np.int64)
        lengths[self.rank] = len(data)
        self.allreduce(lengths, what)
        out = np.empty(int(lengths.sum()), np.uint8)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self.wait([self.sync.Iallgatherv(data, [out, (lengths, offsets), self.MPI.BYTE])], what)
        return [pickle.loads(out[o:o + n].tobytes()) for o, n in zip(offsets, lengths)]

    def barrier(self, what):
        self.wait([self.sync.Ibarrier()], what)

"""Data-parallel training across processes and nodes: the ranks are started by torchrun (PyTorch's own
elastic launcher, through its Python entry so the exit code of every rank comes back), Lightning's DDP
strategy trains them, and a SIGTERM to any one rank stops all of them at the same step.

Where the ranks, nodes and master come from is trainer/environment.py's `topology` (torchrun, SageMaker
resourceconfig.json / SM_HOSTS, Vertex AI CLUSTER_SPEC). The global batch is the preset's: each rank
trains on its slice of every batch (trainer/data/batches.py), so N processes run the same optimizer steps
and LR schedule as one, and time to target accuracy can be compared across device counts."""
from __future__ import annotations

import signal
import sys
from typing import Optional

from trainer.environment import Topology

EXIT_PREEMPTED = 143
# `torchrun --standalone` (single node) or the static rendezvous at the first node (several nodes)
# https://docs.pytorch.org/docs/stable/elastic/run.html


def torchrun_args(trainer_argv: list[str], nproc: int, topo: Topology, log_dir: Optional[str] = None) -> list[str]:
    """torchrun's own command-line arguments for `python -m trainer train TRAINER_ARGV` on this node."""
    if topo.nodes > 1:
        where = ["--nnodes", str(topo.nodes), "--node-rank", str(topo.node_rank),
                 "--master-addr", topo.master_addr, "--master-port", str(topo.master_port)]
    else:
        where = ["--standalone", "--nnodes", "1"]
    logs = ["--redirects", "3", "--log-dir", log_dir] if log_dir else []
    # no restarts: a failed or preempted rank ends the run; the platform (or the user) starts it again and
    # it resumes from the last epoch-end checkpoint, exactly as a single process does
    return [*where, "--nproc-per-node", str(nproc), "--max-restarts", "0", *logs, "-m", "trainer", "train",
            *trainer_argv]


def command_line(trainer_argv: list[str], nproc: int, topo: Topology) -> str:
    import shlex

    return shlex.join(["torchrun", *torchrun_args(trainer_argv, nproc, topo)])


def launch_ranks(trainer_argv: list[str], nproc: int, topo: Topology, log_dir: Optional[str] = None) -> int:
    """Run the ranks of this node under torchrun and wait. 0 finished; 143 preempted (every failed rank
    checkpoint-stopped on SIGTERM, or this process got SIGTERM and passed it on); 130 Ctrl-C; 1 failed."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    # torchrun's agent installs handlers for these and does not put them back
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)}
    try:
        run(parse_args(torchrun_args(trainer_argv, nproc, topo, log_dir)))
        return 0
    except ChildFailedError as exc:
        codes = {f.exitcode for f in exc.failures.values()}
        if codes <= {EXIT_PREEMPTED, -signal.SIGTERM}:
            return EXIT_PREEMPTED
        print(f"error: rank(s) {sorted(exc.failures)} failed with exit code(s) {sorted(codes)}"
              + (f"; torchrun logs in {log_dir}" if log_dir else ""), file=sys.stderr)
        return 1
    except SignalException as exc:  # the agent itself was signalled: it passed the signal on to every rank
        return EXIT_PREEMPTED if exc.sigval == signal.SIGTERM else 128 + int(exc.sigval)
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def all_reduce_sum(*tensors) -> None:
    """Sum in place across ranks (nothing when not distributed)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        for t in tensors:
            dist.all_reduce(t)


def any_rank_sigterm_callback():
    """A Lightning callback: SIGTERM to any rank stops every rank after the same step.

    Lightning's own handler acts on rank 0's flag only (it broadcasts it from rank 0 each step) and runs a
    collective inside the signal handler; a signal to another rank would leave that rank alone at the
    epoch end. Here the handler only sets a flag; after each training step the ranks all-reduce it, and
    all of them set Lightning's sigterm flag together, so Lightning raises SIGTERMException on all ranks at
    the next step and the run ends exactly like a preempted single process (last epoch-end checkpoint)."""
    import lightning as L
    import torch

    class AnyRankSigterm(L.Callback):
        def __init__(self):
            self.flag = False
            self.flag_tensor = None

        def _handler(self, signum, frame) -> None:
            self.flag = True

        def on_train_start(self, trainer, module) -> None:
            # after Lightning registered its own handlers (trainer._run): ours replaces them for SIGTERM
            signal.signal(signal.SIGTERM, self._handler)
            self.flag_tensor = torch.zeros(1, dtype=torch.int32, device=module.device)

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            self.flag_tensor.fill_(1 if self.flag else 0)
            all_reduce_sum(self.flag_tensor)
            if int(self.flag_tensor.item()):
                trainer._signal_connector.received_sigterm = True

    return AnyRankSigterm()

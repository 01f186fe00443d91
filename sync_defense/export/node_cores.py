"""The Python models' instances for the cores of the node that serves them (the engine-build step).

    python -m sync_defense.export.node_cores --repository /models [--cores N]

The image carries a GPU-profile repository written when the image was built, for
``model_repository.DEFAULT_GPU_CORES`` cores: 3 ``preprocess`` instances, whatever the node. On a GPU
node the cores are what bounds throughput (the graphs run on the GPU; an upload's preprocessing
takes about 2 CPU-seconds, ``docs/performance.md``), so a 16-core node served by that repository
would prepare 3 uploads at once and leave most of its cores idle. Before Triton starts,
``deploy/bin/sync-defense-engine-build`` runs this over the repository it just copied: the Python
models' ``config.pbtxt`` are written again, by the generator, for the cores this container may use
(``preprocess`` on all but one, ``phones`` following it), so they are exactly what ``python -m
sync_defense.export.model_repository --profile gpu --cores N`` writes.

The cores are ``--cores``, else ``SYNC_DEFENSE_CORES`` (the Kubernetes Deployment sets it from the
Triton container's CPU request), else the CPUs this process may run on, capped by its cgroup's CPU
quota (a container started with ``--cpus``).

More instances need more ``/dev/shm``: each Python-backend instance exchanges tensors through a
shared-memory region that grows to its largest request and does not shrink, and ``preprocess``
receives the upload itself (a 200-MiB upload grew its region from 16 to 224 MiB). ``--check-shm``
(``deploy/bin/sync-defense-serve`` runs it before Triton starts) warns when ``/dev/shm`` is smaller
than the repository's ``shm_bound``, so an operator raises ``shm_size`` or the pod's ``dshm``
rather than meeting failed large uploads later.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from sync_defense import contract as c
from sync_defense.preprocessing.config import DEFAULT_CONFIG

from .model_repository import python_configs, python_instances
from .tensorrt_engines import read_config

CORES_ENV = "SYNC_DEFENSE_CORES"
CGROUP = Path("/sys/fs/cgroup")
MIB = 1024 * 1024
# A region's growth past its largest tensors (16-MiB steps) and what an instance holds without an upload in it: the
# regions of the CPU repository's stubs were 16 and 48 MiB after 10-s uploads.
REGION_SLACK = 64 * MIB


def cgroup_cpu_quota(root: Path = CGROUP) -> float | None:
    """The cgroup's CPU quota in CPUs (cgroup v2 ``cpu.max``, else v1 ``cpu.cfs_quota_us``), None without one."""
    v2 = root / "cpu.max"
    if v2.is_file():
        quota, period = v2.read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    v1 = root / "cpu"
    if (v1 / "cpu.cfs_quota_us").is_file():
        quota_us = int((v1 / "cpu.cfs_quota_us").read_text())
        return None if quota_us < 0 else quota_us / int((v1 / "cpu.cfs_period_us").read_text())
    return None


def available_cores(root: Path = CGROUP) -> int:
    """The CPUs this process may run on, capped by its cgroup's quota (rounded up: 2.5 CPUs keep 3 busy in turn)."""
    cores = len(os.sched_getaffinity(0))
    quota = cgroup_cpu_quota(root)
    return cores if quota is None else max(1, min(cores, math.ceil(quota)))


def node_cores(explicit: int | None = None) -> int:
    """``explicit``, else ``SYNC_DEFENSE_CORES``, else ``available_cores()``."""
    value = explicit if explicit is not None else os.environ.get(CORES_ENV) or available_cores()
    try:
        cores = int(value)
    except ValueError:
        raise ValueError(f"{CORES_ENV} must be a whole number of cores, not {value!r}") from None
    if cores < 1:
        raise ValueError(f"the node's cores must be at least 1, not {cores}")
    return cores


def fit_to_node(repository: Path, cores: int) -> dict[str, int]:
    """Rewrite the Python models' configs of the GPU-profile ``repository`` for ``cores``; their instance counts."""
    if (repository / c.VISUAL_ENCODER / str(c.MODEL_VERSION) / "model.py").exists():
        raise ValueError(f"{repository} is a CPU-profile repository: its instances do not follow the node's cores")
    face_models = read_config(repository / c.PREPROCESS / "config.pbtxt").parameters["face_models"].string_value
    for name, text in python_configs("gpu", cores=cores, face_models=face_models).items():
        (repository / name / "config.pbtxt").write_text(text)
    return python_instances("gpu", cores)


def repository_instances(repository: Path) -> dict[str, int]:
    """The instance count of each Python-backend model, read from the repository's configs."""
    return {name: sum(group.count for group in read_config(repository / name / "config.pbtxt").instance_group)
            for name in c.python_specs(DEFAULT_CONFIG)}


def shm_bound(instances: dict[str, int]) -> int:
    """Bytes of ``/dev/shm`` that Python-backend models with these instance counts may come to hold: each
    region at its slack, and each ``preprocess`` region also holding the largest upload the server takes."""
    return sum(n * (REGION_SLACK + (c.MAX_UPLOAD_BYTES if name == c.PREPROCESS else 0)) for name, n in instances.items())


def shm_size(shm: Path = Path("/dev/shm")) -> int:
    """The size of the tmpfs at ``shm`` (its limit, not what is in use), in bytes."""
    stat = os.statvfs(shm)
    return stat.f_blocks * stat.f_frsize


def shm_warning(repository: Path, size: int) -> str | None:
    """A warning when a ``/dev/shm`` of ``size`` bytes is smaller than the repository's ``shm_bound``, else None."""
    bound = shm_bound(repository_instances(repository))
    if size >= bound:
        return None
    return (f"/dev/shm holds {size / 1024**3:.1f} GiB, but the Python models of {repository} may need {bound / 1024**3:.1f} GiB "
            f"(each preprocess instance up to a {c.MAX_UPLOAD_BYTES // MIB}-MiB upload): large uploads may fail. "
            f"Raise shm_size (SYNC_DEFENSE_SHM_SIZE in docker-compose.yml) or the pod's dshm, or lower {CORES_ENV}.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, required=True, help="a GPU-profile repository, rewritten in place")
    parser.add_argument("--cores", type=int, help=f"default: ${CORES_ENV}, else the CPUs this container may use")
    parser.add_argument("--check-shm", action="store_true", help="only warn when /dev/shm is smaller than the repository needs")
    args = parser.parse_args(argv)
    if args.check_shm:
        warning = shm_warning(args.repository, shm_size())
        print(f"node_cores: warning: {warning}" if warning else f"node_cores: /dev/shm fits {args.repository}",
              file=sys.stderr if warning else sys.stdout)
        return
    cores = node_cores(args.cores)
    instances = fit_to_node(args.repository, cores)
    print(f"node_cores: {cores} cores: " + ", ".join(f"{name} x{n}" for name, n in instances.items())
          + f"; /dev/shm up to {shm_bound(instances) / 1024**3:.1f} GiB")


if __name__ == "__main__":
    main()

"""``ray start`` for a node that stays on 127.0.0.1 (test helper, runs as its own process).

Ray 2.60 on Linux rewrites a loopback ``--node-ip-address``/``--address`` to the
machine's primary interface address (``ray._private.services.resolve_ip_for_localhost``),
which would expose the test cluster on the network. Ray's own switch for
loopback clusters is ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``: every Ray process
then uses 127.0.0.1 (the fixture sets it for the whole cluster, so agents, job
supervisors, drivers and workers all stay on loopback). That same switch makes
``ray start`` refuse to start a *worker* node ("multi-node clusters are not
supported"), so this wrapper flips the check back on for the ``ray start`` process
only and keeps its address as given.

``ray.cluster_utils.Cluster`` is not used because it writes its address to the
shared ``/tmp/ray/ray_current_cluster``, where any plain ``ray.init()`` on the
machine (the suite's own local session) would find and join it.

Private API: re-check on every Ray upgrade (ray 2.60.0). Remove when ``ray start``
honours an explicit loopback ``--node-ip-address``.
"""

from __future__ import annotations

import sys

import ray._private.ray_constants as ray_constants
import ray._private.services as services

ray_constants.ENABLE_RAY_CLUSTER = True  # allow `ray start --address` (worker nodes)
services.resolve_ip_for_localhost = lambda host: host  # keep 127.0.0.1 as given

from ray.scripts.scripts import main  # noqa: E402  (after the patches, on purpose)

if __name__ == "__main__":
    sys.exit(main())

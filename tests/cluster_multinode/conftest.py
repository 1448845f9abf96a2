"""Fixtures for tests that need a real multi-node Ray cluster (separate processes).

``multinode_cluster`` (module scope) starts a head and two worker nodes on
127.0.0.1 with token auth, independent of the suite's in-process Ray session:
never call ``ray.init``/``ray.shutdown`` for it, talk to it over HTTP only
(``JobSubmissionClient(cluster.address, headers=cluster.headers)`` or
``harvest submit ... --address cluster.address`` with ``RAY_AUTH_TOKEN_PATH`` set
to ``cluster.token_path``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster_multinode._cluster import LocalRayCluster


@pytest.fixture(scope="module")
def multinode_cluster() -> Iterator[LocalRayCluster]:
    """Head + 2 workers, 1 CPU each, token auth on; yields address, token, env."""
    with LocalRayCluster(workers=2, cpus_per_node=1) as cluster:
        yield cluster

"""Peak memory is the runner's own, not inherited from the process that started it."""

from __future__ import annotations

import resource

import edgesdk


def test_local_peak_rss_is_the_runners_own(devices_file, int8_artifact, minilm_graph, tmp_path):
    # This test process holds torch and the float MiniLM graph; ru_maxrss survives fork, so a runner
    # measured that way would report at least this process's peak.
    host_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = edgesdk.profile(int8_artifact.path, device="local", runs=3, warmup=1, devices=devices_file, runs_dir=tmp_path)
    assert host_peak_mb > 500, "precondition: the test process is big"
    # an ORT session of a 23 MB int8 model and numpy: tens of MB, far below the host process
    assert 20 < result.peak_rss_mb < host_peak_mb / 2, (result.peak_rss_mb, host_peak_mb)

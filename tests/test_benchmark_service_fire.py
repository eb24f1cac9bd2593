"""The ``service_fire`` benchmark on a tiny run, with tiny settings (the figures themselves come from
``python -m benchmarks.run --only service_fire`` on the CLINC150 run)."""

from __future__ import annotations

import pytest

from benchmarks.fire.common import Options
from benchmarks.service_fire import bench_service_fire, parse, rows


def test_overload_fuzz_and_faults_run_end_to_end_on_a_tiny_run(served_run):
    opts = Options(
        seconds=2, clients=8, max_queue=2, fuzz=50, fuzz_bytes=20, fuzz_clients=4, workers_clients=4, fault_rate=0.3
    )
    record = bench_service_fire(served_run, opts, ["overload", "fuzz", "faults"])
    load = record["overload"]
    assert load["requests"] > 0 and load["statuses"].get("200", 0) > 0
    assert set(load["statuses"]) <= {"200", "503"}, load["statuses"]  # nothing but served or shed
    assert load["503_without_retry_after"] == 0
    assert 0 < load["p50_ms"] <= load["p99_ms"] and load["served_per_s"] > 0
    assert load["rss_start_mb"] > 0 and load["rss_growth_mb"] >= 0
    assert set(load["checks"]) == {
        "only_200_and_503",
        "every_503_has_retry_after",
        "p99_le_2s",
        "rss_growth_le_200mb",
        "load_was_shed",
    }
    fuzz = record["fuzz"]
    assert fuzz["schema"]["requests"] == 50 and fuzz["bytes"]["requests"] == 20
    assert sum(fuzz["schema"]["statuses"].values()) == 50
    assert fuzz["server_errors"] == 0 and fuzz["checks"] == {"no_5xx": True, "still_serving": True}, fuzz
    assert any(s.startswith("4") for s in fuzz["schema"]["statuses"])  # broken bodies were refused
    faults = record["faults"]  # 30% of forward passes raise in the served process: isolated, and it keeps serving
    assert faults["injected_faults"] > 0 and set(faults["statuses"]) <= {"200", "500"}, faults
    assert faults["statuses"].get("200", 0) > 0 and faults["after"] == 200
    assert faults["500_without_request_id"] == 0
    assert faults["statuses"].get("500", 0) <= faults["inputs_in_failed_passes"]
    assert record["skipped"] == [] and len(rows(record)) == 3
    assert record["all_checks_pass"] == all(
        ok for name in ("overload", "fuzz", "faults") for ok in record[name]["checks"].values()
    )


def test_the_command_line_names_its_scenarios(served_run, capsys):
    run_dir, opts, only, out = parse([str(served_run), "--only", "fuzz,sigterm", "--seconds", "3", "--grace", "4"])
    assert (run_dir, only, out) == (served_run, ["fuzz", "sigterm"], None)
    assert opts.seconds == 3.0 and opts.grace_s == 4.0 and opts.clients == 256
    with pytest.raises(SystemExit):
        parse([str(served_run), "--only", "nosuch"])
    assert "unknown scenario 'nosuch'" in capsys.readouterr().err


def test_cpu_seconds_count_the_worker_processes_too():
    import subprocess
    import sys
    import time

    from benchmarks.fire.common import cpu_seconds

    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass\ntime.sleep(30)"
    spawn = f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {burn!r}])\ntime.sleep(30)"
    parent = subprocess.Popen([sys.executable, "-c", spawn])  # like caveat serve --workers N: the work is a child's
    try:
        deadline = time.monotonic() + 20
        while cpu_seconds(parent.pid) < 0.4 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert cpu_seconds(parent.pid) >= 0.4  # the child's 0.6 s of work, read in clock ticks
        times = __import__("psutil").Process(parent.pid).cpu_times()
        assert times.user + times.system < 0.3  # the parent alone: its interpreter's start
    finally:
        for child in __import__("psutil").Process(parent.pid).children(recursive=True):
            child.kill()
        parent.kill()

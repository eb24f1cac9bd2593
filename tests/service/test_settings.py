"""ServiceSettings: flags over CAVEAT_* variables over defaults; bad values name their source."""

from __future__ import annotations

import pytest

from caveat.errors import ConfigError
from caveat.service import ServiceSettings


def test_flags_win_over_the_environment_and_defaults_fill_the_rest(tmp_path):
    env = {
        "CAVEAT_PORT": "9001",
        "CAVEAT_MAX_BATCH_SIZE": "8",
        "CAVEAT_ALLOW_UNCALIBRATED": "true",
        "CAVEAT_API_KEY": "s3cret",
        "CAVEAT_DATA": "/not/a/setting",
    }
    s = ServiceSettings.from_env(env, run_dir=tmp_path, port=9002, host=None)
    assert (s.port, s.max_batch_size, s.allow_uncalibrated, s.host) == (9002, 8, True, "127.0.0.1")
    assert s.api_key.get_secret_value() == "s3cret" and "s3cret" not in repr(s)


def test_an_empty_api_key_means_no_key(tmp_path):
    assert ServiceSettings.from_env({"CAVEAT_API_KEY": "  "}, run_dir=tmp_path).api_key is None


def test_the_environment_is_read_when_asked_not_at_import(tmp_path, monkeypatch):
    monkeypatch.setenv("CAVEAT_MAX_WAIT_MS", "12.5")
    assert ServiceSettings.from_env(run_dir=tmp_path).max_wait_ms == 12.5


@pytest.mark.parametrize(
    "env, flags, match",
    [
        ({"CAVEAT_MAX_WAIT_MS": "soon"}, {}, "environment variable CAVEAT_MAX_WAIT_MS: .*valid number.*'soon'"),
        ({}, {"max_batch_size": 0}, "--max-batch-size: .*greater than or equal to 1"),
        ({}, {"drift_min_inputs": 50, "drift_window": 20}, r"drift_min_inputs \(50\) must be <= drift_window \(20\)"),
        ({"CAVEAT_LOG_LEVEL": "loud"}, {}, "log_level must be one of"),
    ],
)
def test_bad_values_name_their_source_and_the_fix(tmp_path, env, flags, match):
    with pytest.raises(ConfigError, match=match):
        ServiceSettings.from_env(env, run_dir=tmp_path, **flags)


def test_a_bad_api_key_value_is_never_echoed(tmp_path):
    with pytest.raises(ConfigError) as err:
        ServiceSettings.from_env({"CAVEAT_API_KEY": "x", "CAVEAT_PORT": "-1"}, run_dir=tmp_path)
    assert "'x'" not in str(err.value)


def test_generation_settings_come_from_the_environment_too(tmp_path):
    env = {"CAVEAT_LM": "default", "CAVEAT_GENERATION_POLICY": str(tmp_path / "policy.json")}
    s = ServiceSettings.from_env(env, run_dir=tmp_path)
    assert (s.lm, s.generation_policy, s.max_generate_samples) == ("default", tmp_path / "policy.json", 32)
    assert ServiceSettings.from_env({"CAVEAT_LM": " "}, run_dir=tmp_path).lm is None  # empty: no /v1/generate


def test_the_input_log_comes_from_flags_or_the_environment(tmp_path):
    s = ServiceSettings.from_env({}, run_dir=tmp_path)
    assert (s.log_inputs, s.log_max_bytes, s.log_backups) == (None, 50_000_000, 5)  # off unless asked
    env = {"CAVEAT_LOG_INPUTS": str(tmp_path / "in.jsonl"), "CAVEAT_LOG_MAX_BYTES": "1000", "CAVEAT_LOG_BACKUPS": "2"}
    s = ServiceSettings.from_env(env, run_dir=tmp_path, log_backups=3)
    assert (s.log_inputs, s.log_max_bytes, s.log_backups) == (tmp_path / "in.jsonl", 1000, 3)
    assert ServiceSettings.from_env({"CAVEAT_LOG_INPUTS": " "}, run_dir=tmp_path).log_inputs is None
    with pytest.raises(ConfigError, match="--log-backups: .*greater than or equal to 1"):
        ServiceSettings.from_env({}, run_dir=tmp_path, log_backups=0)
    with pytest.raises(ConfigError, match="environment variable CAVEAT_LOG_MAX_BYTES: .*greater than or equal to 1"):
        ServiceSettings.from_env({"CAVEAT_LOG_MAX_BYTES": "0"}, run_dir=tmp_path)


def test_several_api_keys_and_cors_origins_come_comma_separated(tmp_path):
    s = ServiceSettings.from_env(
        {"CAVEAT_API_KEY": "old, new,", "CAVEAT_CORS_ORIGINS": "https://a.example, "}, run_dir=tmp_path
    )
    assert s.api_keys == (b"old", b"new") and "old" not in repr(s)
    assert s.cors_origins == ("https://a.example",)
    assert ServiceSettings.from_env({}, run_dir=tmp_path, api_key=["k1", "k2"]).api_keys == (b"k1", b"k2")
    assert ServiceSettings.from_env({"CAVEAT_API_KEY": " , "}, run_dir=tmp_path).api_key is None
    plain = ServiceSettings.from_env({}, run_dir=tmp_path)
    assert (plain.api_keys, plain.cors_origins, plain.docs) == ((), (), True)


def test_the_queue_bound_follows_the_batch_size_unless_set(tmp_path):
    assert ServiceSettings.from_env({"CAVEAT_MAX_BATCH_SIZE": "4"}, run_dir=tmp_path).queue_limit == 32
    assert ServiceSettings.from_env({"CAVEAT_MAX_QUEUE": "5"}, run_dir=tmp_path).queue_limit == 5
    s = ServiceSettings.from_env({}, run_dir=tmp_path)
    assert (s.request_timeout_s, s.shutdown_delay_s, s.shutdown_grace_s) == (60.0, 0.0, 10.0)
    with pytest.raises(ConfigError, match="environment variable CAVEAT_REQUEST_TIMEOUT_S: .*greater than 0"):
        ServiceSettings.from_env({"CAVEAT_REQUEST_TIMEOUT_S": "0"}, run_dir=tmp_path)

"""Settings: environment and flags, validated at start-up with actionable messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.gpu import gpu_count
from runtime.settings import Settings, SettingsError

KEY = "k" * 20


def test_defaults_env_and_flags():
    s = Settings.load({"JOINTSPACE_MAX_BATCH": "16", "JOINTSPACE_CORS_ORIGINS": "https://a, https://b",
                       "JOINTSPACE_DEMO": "false"}, port=9000)  # fmt: skip
    assert (s.model, s.max_batch, s.port, s.demo) == ("house", 16, 9000, False)
    assert s.cors_origins == ["https://a", "https://b"]
    assert s.data_dir == Path("data")
    assert Settings.load({"JOINTSPACE_PORT": "1"}, port=None).port == 1


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JOINTSPACE_READ_ONLY_KEYS": KEY}, "read-only keys need at least one full-access key "
         "too: set JOINTSPACE_API_KEYS or JOINTSPACE_KEYS_FILE (or drop JOINTSPACE_READ_ONLY_KEYS)"),
        ({"JOINTSPACE_HOST": "0.0.0.0"}, "refusing to listen on 0.0.0.0 without API keys: set "
         "JOINTSPACE_API_KEYS or JOINTSPACE_KEYS_FILE, or bind to 127.0.0.1"),
        ({"JOINTSPACE_API_KEYS": "short"}, "API keys must be at least 16 characters long"),
        ({"JOINTSPACE_API_KEYS": KEY, "JOINTSPACE_CORS_ORIGINS": "*"}, "CORS origin '*' with API "
         "keys would let any web page use a visitor's key: list the allowed origins in "
         "JOINTSPACE_CORS_ORIGINS"),
        ({"JOINTSPACE_MAX_BATCH": "0"}, "max_batch (JOINTSPACE_MAX_BATCH): Input should be "
         "greater than or equal to 1"),
        ({"JOINTSPACE_PORT": "http"}, "port (JOINTSPACE_PORT): Input should be a valid integer, "
         "unable to parse string as an integer"),
        ({"JOINTSPACE_INDEX_BACKEND": "milvus:data/m"}, "index_backend (JOINTSPACE_INDEX_BACKEND): "
         "index_backend must be faiss, milvus:PATH.db (milvus-lite) or milvus:http://HOST:19530 "
         "(a Milvus server), not 'milvus:data/m'"),
    ],
)  # fmt: skip
def test_bad_settings(env, message):
    with pytest.raises(SettingsError) as e:
        Settings.load(env)
    assert str(e.value) == message


def test_public_host_with_keys_is_fine():
    s = Settings.load({"JOINTSPACE_HOST": "0.0.0.0", "JOINTSPACE_API_KEYS": KEY})
    assert s.api_keys == [KEY]


@pytest.mark.skipif(gpu_count() > 0, reason="faiss sees a GPU here")
def test_index_device_gpu_without_faiss_gpu_stops_start_up():
    assert Settings.load({}).index_device == "auto"
    with pytest.raises(SettingsError) as e:
        Settings.load({"JOINTSPACE_INDEX_DEVICE": "gpu"})
    assert str(e.value) == (
        "index_device (JOINTSPACE_INDEX_DEVICE): search device 'gpu' is not available: this faiss "
        "is a CPU build (replace faiss-cpu with faiss-gpu: make gpu)"
    )
    with pytest.raises(SettingsError, match=r"^index_device \(JOINTSPACE_INDEX_DEVICE\): Input "):
        Settings.load({}, index_device="cuda")

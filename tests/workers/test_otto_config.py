"""workers.yaml's Ottoscaler settings: `api.plaintext_listen` only on loopback unless
`api.plaintext_allow_remote` says otherwise (the refusal names the field and the way out), and
`otto_handler:` (host:port, TLS or plaintext, the token from the environment, never shown)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from devtrip_scale.core.errors import ConfigError
from devtrip_scale.workers.config import OttoHandlerModel, load_workers_config


def _config(tmp_path: Path, **doc: object) -> Path:
    (tmp_path / "api.pem").write_text("x")
    (tmp_path / "api.key").write_text("x")
    path = tmp_path / "workers.yaml"
    base = {"worker": {"image": "busybox", "resources": {
        "requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "10m", "memory": "16Mi"}}}}
    path.write_text(yaml.safe_dump({**base, **doc}))
    return path


@pytest.mark.parametrize(("listen", "allow", "ok"), [
    pytest.param("127.0.0.1:50052", False, True, id="loopback-v4"),
    pytest.param("127.0.0.2:0", False, True, id="loopback-net"),
    pytest.param("localhost:50052", False, True, id="localhost"),
    pytest.param("[::1]:50052", False, True, id="loopback-v6"),
    pytest.param("0.0.0.0:50052", False, False, id="all-v4"),
    pytest.param("[::]:50052", False, False, id="all-v6"),
    pytest.param("10.1.2.3:50052", False, False, id="pod-ip"),
    pytest.param("otto.example:50052", False, False, id="a-name"),
    pytest.param("0.0.0.0:50052", True, True, id="all-allowed"),
])
def test_plaintext_listen_is_loopback_unless_allowed(tmp_path: Path, listen: str, allow: bool,
                                                     ok: bool) -> None:
    path = _config(tmp_path, api={"enabled": True, "tls": {"cert_file": "api.pem",
                                                           "key_file": "api.key"},
                                  "plaintext_listen": listen,
                                  "plaintext_allow_remote": allow})
    if ok:
        assert load_workers_config(path, env={}).api.plaintext_listen == listen
        return
    with pytest.raises(ConfigError) as e:
        load_workers_config(path, env={})
    text = str(e.value)
    assert "workers.yaml" in text and "plaintext_listen" in text
    assert "is not a loopback address" in text and "plaintext_allow_remote: true" in text


def test_remote_plaintext_needs_a_token(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    path = _config(tmp_path, api={"enabled": True, "auth": "mtls", "tls": {
        "cert_file": "api.pem", "key_file": "api.key", "client_ca_file": "ca.pem"},
        "plaintext_listen": "0.0.0.0:50052", "plaintext_allow_remote": True})
    with pytest.raises(ConfigError, match="plaintext_allow_remote needs auth: token or both"):
        load_workers_config(path, env={})


def test_otto_handler_settings(tmp_path: Path) -> None:
    path = _config(tmp_path, otto_handler={"address": "otto-handler.ci:50051",
                                           "plaintext": True, "token_env": "OTTO_TOKEN"})
    otto = load_workers_config(path, env={}).otto_handler
    assert otto is not None and (otto.address, otto.plaintext, otto.queue_limit) == (
        "otto-handler.ci:50051", True, 100_000)
    assert otto.token({"OTTO_TOKEN": " s3cret "}) == "s3cret"
    with pytest.raises(ConfigError) as e:
        otto.token({})
    assert "$OTTO_TOKEN" in str(e.value)


@pytest.mark.parametrize(("doc", "says"), [
    pytest.param({"address": "otto-handler"}, "is not host:port", id="no-port"),
    pytest.param({"address": "h:1", "plaintext": True, "ca_file": "ca.pem"},
                 "plaintext and ca_file contradict", id="both"),
    pytest.param({"address": "h:1", "token_env": "1BAD"}, "not an environment variable",
                 id="token-env"),
    pytest.param({"address": "h:1", "queue_limit": 1}, "queue_limit", id="tiny-queue"),
])
def test_bad_otto_handler_settings_are_named(tmp_path: Path, doc: dict[str, object],
                                             says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        load_workers_config(_config(tmp_path, otto_handler=doc), env={})
    with pytest.raises(ValueError):
        OttoHandlerModel.model_validate(doc)

"""workers.yaml: the example in config/ loads; mistakes are refused with file:line and field,
through the same loader as devscale.yaml (duplicate keys, YAML errors); the Redis password
never shows in a URL."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from devtrip_scale.core.errors import ConfigError
from devtrip_scale.workers.config import RedisModel, example, load_workers_config
from tests.conftest import ROOT


def test_the_example_config_loads() -> None:
    settings = load_workers_config(ROOT / "config" / "workers.yaml", env={})
    assert settings.limits.max_workers == 100 and settings.worker.resources.limits["cpu"] == "1"
    assert settings.redis.socket_timeout_seconds > settings.redis.block_seconds


def test_namespace_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(example()))
    assert load_workers_config(path, env={"NAMESPACE": "ci"}).namespace == "ci"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "workers.yaml"
    path.write_text(text)
    return path


WORKER = """worker:
  image: w:1
  resources:
    requests: {cpu: 100m, memory: 64Mi}
    limits: {cpu: 200m, memory: 128Mi}
"""


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("namespace: x\n", "workers.yaml:1: worker: Field required", id="no-worker"),
    pytest.param(WORKER.replace("    limits: {cpu: 200m, memory: 128Mi}\n", ""),
                 "workers.yaml:3: worker.resources.limits: Field required",
                 id="limits-required"),
    pytest.param(WORKER.replace("limits: {cpu: 200m, memory: 128Mi}", "limits: {cpu: 200m}"),
                 "limits must give memory", id="memory-limit-required"),
    pytest.param(WORKER.replace("cpu: 200m", "cpu: lots"), "'lots' is not a quantity",
                 id="bad-quantity"),
    pytest.param(WORKER + "redis:\n  block_seconds: 30\n  socket_timeout_seconds: 10\n",
                 "workers.yaml:6: redis: socket_timeout_seconds (10) must be at least "
                 "block_seconds + 5", id="socket-timeout-below-block"),
    pytest.param(WORKER + "redis:\n  url: http://redis:6379\n",
                 "workers.yaml:7: redis.url: not a redis://", id="not-redis-url"),
    pytest.param(WORKER + "limits:\n  max_workers: 0\n",
                 "workers.yaml:7: limits.max_workers", id="zero-cap"),
    pytest.param(WORKER + "retry:\n  max_retires: 1\n",
                 "workers.yaml:7: retry.max_retires: unknown key", id="misspelt-key"),
    pytest.param(WORKER + "namespace: a\nnamespace: b\n", "duplicate key 'namespace'",
                 id="duplicate-key"),
    pytest.param(WORKER.replace("image: w:1", "image: w:1\n  env: {1BAD: x}"),
                 "'1BAD' is not an environment variable name", id="bad-env-name"),
])
def test_mistakes_name_file_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_workers_config(_write(tmp_path, text), env={})
    assert message in str(e.value)


def _resources(requests: str, limits: str) -> str:
    return (f"worker:\n  image: w:1\n  resources:\n    requests: {{{requests}}}\n"
            f"    limits: {{{limits}}}\n")


@pytest.mark.parametrize(("requests", "limits"), [
    pytest.param("cpu: 100m, memory: 64Mi", "cpu: 1, memory: 2Pi", id="peta-binary"),
    pytest.param("cpu: 0.5, memory: 1e3", "cpu: 1, memory: 1Ki", id="plain-numbers"),
    pytest.param("cpu: 250m, memory: 1e6", "cpu: 500m, memory: 1M", id="exponent-equals-mega"),
    pytest.param("cpu: 100m, memory: 64Mi, nvidia.com/gpu: 1",
                 "cpu: 100m, memory: 64Mi, nvidia.com/gpu: 1", id="extended-resource"),
    pytest.param("cpu: '.5', memory: 128974848", "cpu: '2', memory: 129e6", id="quoted"),
])
def test_resources_take_every_quantity_kubernetes_takes(tmp_path: Path, requests: str,
                                                        limits: str) -> None:
    settings = load_workers_config(_write(tmp_path, _resources(requests, limits)), env={})
    assert set(settings.worker.resources.requests) >= {"cpu", "memory"}
    assert all(isinstance(v, str) for v in settings.worker.resources.limits.values())


@pytest.mark.parametrize(("requests", "limits", "message"), [
    pytest.param("cpu: '2', memory: 64Mi", "cpu: '1', memory: 64Mi",
                 "workers.yaml:3: worker.resources: requests.cpu (2) is above limits.cpu (1)",
                 id="cpu-request-above-limit"),
    pytest.param("cpu: 2, memory: 64Mi", "cpu: 1, memory: 64Mi",
                 "workers.yaml:3: worker.resources: requests.cpu (2) is above limits.cpu (1)",
                 id="unquoted-cpu-request-above-limit"),
    pytest.param("cpu: 100m, memory: 1Gi", "cpu: 1, memory: 1000Mi",
                 "workers.yaml:3: worker.resources: requests.memory (1Gi) is above "
                 "limits.memory (1000Mi)", id="memory-request-above-limit"),
    pytest.param("cpu: -100m, memory: 64Mi", "cpu: 1, memory: 64Mi",
                 "workers.yaml:4: worker.resources.requests.cpu: -100m is negative",
                 id="negative-request"),
    pytest.param("cpu: 100m, memory: 64Mi", "cpu: 1, memory: -1Gi",
                 "workers.yaml:5: worker.resources.limits.memory: -1Gi is negative",
                 id="negative-limit"),
    pytest.param("cpu: 100m, memory: 64Mi", "cpu: 1, memory: 64mi",
                 "workers.yaml:5: worker.resources.limits.memory: '64mi' is not a quantity",
                 id="lower-case-binary-suffix"),
    pytest.param("cpu: 100m, memory: 64 Mi", "cpu: 1, memory: 64Mi",
                 "workers.yaml:4: worker.resources.requests.memory: '64 Mi' is not a quantity",
                 id="space-in-quantity"),
    pytest.param("cpu: true, memory: 64Mi", "cpu: 1, memory: 64Mi",
                 "workers.yaml:4: worker.resources.requests.cpu: True is not a quantity",
                 id="boolean"),
    # kube-apiserver v1.34 answers 400 to these: one suffix, an exponent or an SI one, not both
    pytest.param("cpu: 1e3m, memory: 64Mi", "cpu: 1, memory: 64Mi",
                 "workers.yaml:4: worker.resources.requests.cpu: '1e3m' is not a quantity",
                 id="exponent-and-suffix"),
    pytest.param("cpu: 100m, memory: 1e3k", "cpu: 1, memory: 64Mi",
                 "workers.yaml:4: worker.resources.requests.memory: '1e3k' is not a quantity",
                 id="exponent-and-kilo"),
])
def test_resources_are_compared_as_quantities(tmp_path: Path, requests: str, limits: str,
                                              message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_workers_config(_write(tmp_path, _resources(requests, limits)), env={})
    assert message in str(e.value)


def test_password_env_must_be_set_and_never_shows(tmp_path: Path) -> None:
    path = _write(tmp_path, WORKER + "redis:\n  password_env: REDIS_PASSWORD\n")
    settings = load_workers_config(path, env={})
    with pytest.raises(ConfigError, match=r"\$REDIS_PASSWORD, which is not set"):
        settings.redis_password(env={})
    assert settings.redis_password(env={"REDIS_PASSWORD": "s3cr3t"}) == "s3cr3t"
    masked = RedisModel(url="redis://user:s3cr3t@redis:6379/0").safe_url()
    assert masked == "redis://user:***@redis:6379/0"


# ---------------------------------------------------------------- api:

def _api(tmp_path: Path, body: str) -> Path:
    for name in ("cert.pem", "key.pem", "ca.pem"):
        (tmp_path / name).write_text("x")
    return _write(tmp_path, WORKER + "api:\n" + body)


@pytest.mark.parametrize(("body", "message"), [
    pytest.param("  enabled: true\n", "workers.yaml:6: api: the API needs tls", id="tls-required"),
    pytest.param("  enabled: true\n  tls: {cert_file: cert.pem, key_file: nokey.pem}\n",
                 "workers.yaml:8: api.tls.key_file: nokey.pem: no such file",
                 id="missing-key-file"),
    pytest.param("  tls:\n    cert_file: none.pem\n    key_file: key.pem\n",
                 "workers.yaml:8: api.tls.cert_file: none.pem: no such file",
                 id="missing-cert-file"),
    pytest.param("  tls: {cert_file: cert.pem, key_file: key.pem, client_ca_file: no.pem}\n",
                 "api.tls.client_ca_file: no.pem: no such file", id="missing-ca-file"),
    pytest.param("  auth: mtls\n  tls: {cert_file: cert.pem, key_file: key.pem}\n",
                 "workers.yaml:6: api: auth: mtls needs tls.client_ca_file", id="mtls-needs-ca"),
    pytest.param("  auth: password\n", "api.auth", id="unknown-auth"),
    pytest.param("  listen: localhost\n", "api.listen: 'localhost' is not host:port",
                 id="bad-listen"),
    pytest.param("  token_env: 'MY-TOKEN'\n", "'MY-TOKEN' is not an environment variable",
                 id="bad-token-env"),
])
def test_api_mistakes_name_file_line_and_field(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_workers_config(_api(tmp_path, body), env={})
    assert message in str(e.value)


def test_api_defaults_off_and_tls_files_resolve_beside_the_config(tmp_path: Path) -> None:
    off = load_workers_config(_write(tmp_path, WORKER), env={}).api
    assert (off.enabled, off.listen, off.auth, off.token_env) == (
        False, "0.0.0.0:50051", "token", "DEVSCALE_API_TOKEN")
    api = load_workers_config(_api(tmp_path, "  enabled: true\n  auth: both\n  tls: {cert_file: "
                                   "cert.pem, key_file: key.pem, client_ca_file: ca.pem}\n"),
                              env={}).api
    assert api.tls is not None and api.tls.cert_file == str(tmp_path / "cert.pem")
    assert api.needs_token and api.needs_client_cert


def test_api_tokens_come_from_the_env_and_never_show(tmp_path: Path) -> None:
    api = load_workers_config(_api(tmp_path, "  token_env: API_TOKENS\n"), env={}).api
    with pytest.raises(ConfigError, match=r"\$API_TOKENS, which is not set") as e:
        api.tokens(env={})
    assert api.tokens(env={"API_TOKENS": "tok-1, tok-2,"}) == ("tok-1", "tok-2")
    with pytest.raises(ConfigError, match="is empty") as e:
        api.tokens(env={"API_TOKENS": " , "})
    assert "tok-1" not in str(e.value)
    mtls = load_workers_config(_api(tmp_path, "  auth: mtls\n  tls: {cert_file: cert.pem, "
                                    "key_file: key.pem, client_ca_file: ca.pem}\n"), env={}).api
    assert mtls.tokens(env={}) == ()


def test_a_sentinel_url_is_parsed_and_its_password_masked() -> None:
    from devtrip_scale.workers.config import RedisModel, SentinelUrl, sentinel_parts

    url = "redis+sentinel://:s3cret@s1:26379,s2:26380/devscale/2"
    assert sentinel_parts(url) == SentinelUrl((("s1", 26379), ("s2", 26380)), "devscale", 2,
                                              "s3cret")
    assert sentinel_parts("redis+sentinel://s1:26379/main").db == 0
    model = RedisModel(url=url)
    assert model.safe_url() == "redis+sentinel://:***@s1:26379,s2:26380/devscale/2"
    for bad, why in (("redis+sentinel://s1/main", "not host:port"),
                     ("redis+sentinel://s1:26379", "service name"),
                     ("redis+sentinel://s1:26379/main/x", "not a number")):
        with pytest.raises(ValueError, match=why):
            RedisModel(url=bad)

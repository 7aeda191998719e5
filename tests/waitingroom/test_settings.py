import pytest

from fairq.config import ConfigError
from fairq.health import HealthSettings
from fairq.tasks import DEFAULT_DRAIN_S
from waitingroom.settings import AdmitterSettings

ENV = {"REDIS_URL": "redis://127.0.0.1:1", "KAFKA_BOOTSTRAP": "127.0.0.1:2"}


def test_defaults() -> None:
    s = AdmitterSettings.from_env(ENV)
    assert (s.tick_s, s.leader_ttl_s, s.group_id) == (0.1, 3.0, "fairq-admitter")
    assert s.session_timeout_ms == 10_000
    assert s.connections.redis_url == "redis://127.0.0.1:1"
    assert s.instance_id != AdmitterSettings.from_env(ENV).instance_id
    assert (s.health, s.shutdown_drain_s) == (HealthSettings(), DEFAULT_DRAIN_S)


def test_from_env() -> None:
    env = ENV | {
        "FAIRQ_ADMIT_TICK_S": "0.25",
        "FAIRQ_LEADER_TTL_S": "5",
        "FAIRQ_INSTANCE_ID": "a1",
        "FAIRQ_ADMITTER_GROUP": "g1",
        "FAIRQ_ADMITTER_SESSION_TIMEOUT_MS": "2500",
        "FAIRQ_HEALTH_HOST": "0.0.0.0",
        "FAIRQ_HEALTH_PORT": "9102",
        "FAIRQ_SHUTDOWN_DRAIN_S": "2.5",
    }
    s = AdmitterSettings.from_env(env)
    assert (s.health, s.shutdown_drain_s) == (HealthSettings("0.0.0.0", 9102), 2.5)
    assert (s.tick_s, s.leader_ttl_s, s.instance_id, s.group_id) == (0.25, 5.0, "a1", "g1")
    assert s.session_timeout_ms == 2500


@pytest.mark.parametrize("bad", ["999", "soon", "-1"])
def test_a_bad_session_timeout_is_named(bad: str) -> None:
    with pytest.raises(ConfigError, match="FAIRQ_ADMITTER_SESSION_TIMEOUT_MS"):
        AdmitterSettings.from_env(ENV | {"FAIRQ_ADMITTER_SESSION_TIMEOUT_MS": bad})


@pytest.mark.parametrize(
    "bad",
    [
        {"FAIRQ_ADMIT_TICK_S": "0"},
        {"FAIRQ_ADMIT_TICK_S": "fast"},
        {"FAIRQ_ADMIT_TICK_S": "1", "FAIRQ_LEADER_TTL_S": "2"},
    ],
)
def test_bad_values_are_named(bad: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"tick|FAIRQ_ADMIT_TICK_S"):
        AdmitterSettings.from_env(ENV | bad)

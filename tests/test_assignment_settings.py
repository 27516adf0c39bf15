"""``[crmkit.assignment]`` and ``[crmkit.pool]`` in crmkit.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

import crmkit
from crmkit.assignment.config import ClaimLimits, CollisionPolicy, HandoverFallback
from crmkit.settings import Settings

CONFIG = """
[crmkit]
database_url = "sqlite:///crm.db"

[crmkit.assignment]
handover_without_rule = "pool"
collision = { default = "warn", account = "block" }

[[crmkit.assignment.rules]]
entity = "lead"
name = "web leads"
strategy = "round_robin"
members = ["alice", "team:East"]
when = { source_channel = "web" }
capacity = { alice = 30 }

[crmkit.pool]
release_interval_seconds = 600
limits = { default = { claims_per_day = 5 }, account = { claims_per_day = 2, max_owned = 9 } }

[[crmkit.pool.policies]]
entity = "account"
name = "30 days"
days = 30
when = { value_tier__in = ["b", "c"] }
"""


def test_assignment_settings_are_read_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "crmkit.toml"
    path.write_text(CONFIG, encoding="utf-8")
    settings = Settings.load(path).assignment
    assert settings.handover_without_rule is HandoverFallback.POOL
    assert settings.collision_policy("account") is CollisionPolicy.BLOCK
    assert settings.collision_policy("lead") is CollisionPolicy.WARN
    [rule] = settings.rules
    assert (rule.name, rule.members, dict(rule.capacity)) == (
        "web leads",
        ("alice", "team:East"),
        {"alice": 30},
    )
    assert settings.limits("account") == ClaimLimits(claims_per_day=2, max_owned=9)
    assert settings.limits("lead") == ClaimLimits(claims_per_day=5)
    assert settings.release_interval_seconds == 600
    assert settings.pool_policies[0].days == 30


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"assignment": {"colour": 1}}, "unknown setting crmkit.assignment.colour"),
        ({"pool": {"limit": 1}}, "unknown setting crmkit.pool.limit"),
        (
            {"assignment": {"collision": {"lead": "shout"}}},
            "crmkit.assignment.collision.lead must be one of block, warn, allow_and_notify",
        ),
        ({"assignment": {"handover_without_rule": "boss"}}, "must be one of manager, pool"),
        ({"assignment": {"rules": [{"entity": "lead", "name": "x"}]}}, "strategy"),
        (
            {"pool": {"policies": [{"entity": "account", "name": "p", "days": 0}]}},
            "needs days of at least 1",
        ),
        (
            {
                "assignment": {
                    "rules": [
                        {"entity": "lead", "name": "x", "strategy": "fixed", "members": ["a"]},
                        {"entity": "lead", "name": "x", "strategy": "fixed", "members": ["b"]},
                    ]
                }
            },
            "defined twice",
        ),
    ],
)
def test_bad_assignment_settings_are_config_errors(data: dict, message: str) -> None:
    with pytest.raises(crmkit.ConfigError, match=message):
        Settings.from_mapping({"crmkit": data})

"""Per-agent policy: the file, the identities, and what needs a human or is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from reversa import ConfigError
from reversa.mcp import AgentPolicy, Policy, Refused, load_policy, token_digest

GOOD = f"""
[agents.payments-bot]
token_sha256 = "{token_digest('s3cret-token')}"
workflows = ["pay"]
max_value = {{ GBP = 250000 }}
approval_above = {{ GBP = 150000 }}
max_rollback_cost = {{ GBP = 500, gas = 1000000 }}
may_request_rollback = true

[agents.reader]
workflows = ["*"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agents.toml"
    path.write_text(text)
    return path


def test_a_policy_file_loads(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, GOOD))
    bot = policy.agent("payments-bot")
    assert bot.identity == "agent:payments-bot"
    assert bot.allows("pay") and not bot.allows("other")
    assert policy.agent("reader").allows("anything")
    assert not policy.agent("reader").may_request_rollback  # off unless granted


def test_tokens_name_agents(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, GOOD))
    found = policy.by_token("s3cret-token")
    assert found is not None and found.name == "payments-bot"
    assert policy.by_token("s3cret-tokeN") is None
    assert policy.by_token("") is None  # the reader has no token: nothing matches empty


@pytest.mark.parametrize(("text", "message"), [
    ("[agents.a]\nworkflows = ['x']\ncolour = 'red'",
     "[agents.a] colour: not an accepted argument"),
    ("[agents.a]\ntoken_sha256 = 'abc'", "[agents.a] token_sha256: String should match pattern"),
    ("[agents.a]\nmax_value = { GBP = -1 }", "limits must be non-negative numbers (GBP)"),
    ("[agent.a]\nworkflows = []", "unknown top-level key(s) agent"),
    ("", "no agents; add an [agents.<name>] table"),
    ("[agents.a\n", "is not valid TOML"),
    (f"[agents.a]\ntoken_sha256 = '{token_digest('t')}'\n"
     f"[agents.b]\ntoken_sha256 = '{token_digest('t')}'", "two agents share a token"),
])
def test_a_bad_policy_file_is_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_policy(write(tmp_path, text))
    assert message in caught.value.message
    assert "\n" not in caught.value.message


def test_a_missing_policy_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist; write one"):
        load_policy(tmp_path / "nope.toml")


def test_start_conditions() -> None:
    bot = AgentPolicy(name="bot", workflows=("pay",), max_value={"GBP": 1000},
                      approval_above={"GBP": 500}, max_rollback_cost={"GBP": 20})
    assert bot.start_conditions("pay", (500.0, "GBP"), {"GBP": 20.0}) == []
    assert bot.start_conditions("pay", (500.01, "GBP"), {}) == [
        "value 500.01 GBP is above agent bot's approval threshold of 500.00 GBP"]
    assert bot.start_conditions("pay", None, {"GBP": 21.0, "gas": 1e9}) == [
        "estimated rollback cost 21.00 GBP is above agent bot's limit of 20.00 GBP"]
    with pytest.raises(Refused, match=r"above agent bot's limit of 1,000\.00 GBP per saga"):
        bot.start_conditions("pay", (1000.5, "GBP"), {})
    with pytest.raises(Refused, match="has no max_value for EUR"):
        bot.start_conditions("pay", (1.0, "EUR"), {})  # deny by default
    with pytest.raises(Refused, match="may not use workflow 'other'"):
        bot.start_conditions("other", None, {})


def test_agents_are_unique() -> None:
    with pytest.raises(ConfigError, match="agent 'a' is defined twice"):
        Policy([AgentPolicy(name="a"), AgentPolicy(name="a")])
    with pytest.raises(ConfigError, match=r"defines no agent 'b' \(agents: a\)"):
        Policy([AgentPolicy(name="a")]).agent("b")

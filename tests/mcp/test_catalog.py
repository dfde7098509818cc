"""Catalogs: workflows, their input schemas, the value at stake; and the pinned exports."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import BaseModel, ConfigDict

import reversa.mcp
from reversa import ConfigError, Registry, Saga, Step
from reversa.mcp import Catalog, Value, Workflow


def saga(workflow: str = "move") -> Saga:
    reg = Registry()
    reg.action("move")(lambda ctx: None)
    return Saga(workflow=workflow, steps=[Step(
        name="move", action="move", compensation="back",
        params={"amount": "$input.amount", "to": "$input.target.account",
                "chain": "$input.chain", "fixed": "literal", "esc": "$$input.not_a_ref"})])


def test_exports_are_pinned() -> None:
    assert set(reversa.mcp.__all__) == {"Catalog", "Workflow", "Value", "PreviewCost", "Policy",
                                        "AgentPolicy", "Refused", "load_policy",
                                        "token_digest"}


def test_without_a_model_the_input_schema_comes_from_the_plan() -> None:
    wf = Workflow(saga(), "Move funds.", fixed_input={"chain": "mainnet"})
    schema = wf.input_schema()
    assert sorted(schema["required"]) == ["amount", "target"]  # chain is fixed, $$ is literal
    assert schema["additionalProperties"] is False
    assert wf.parse_input({"amount": 5, "target": {"account": "x"}}) == {
        "amount": 5, "target": {"account": "x"}, "chain": "mainnet"}
    with pytest.raises(ConfigError) as caught:
        wf.parse_input({"amount": 5, "chain": "testnet"})
    assert caught.value.message == (
        "input for move: target: Field required; chain: not an accepted argument; see "
        "describe_workflow 'move' for the schema")


def test_a_model_shapes_the_input() -> None:
    class Input(BaseModel):
        model_config = ConfigDict(extra="forbid")
        amount: Decimal
        target: dict[str, str]
        chain: str = "mainnet"

    wf = Workflow(saga(), "Move funds.", input_model=Input)
    assert wf.parse_input({"amount": "1.50", "target": {"account": "x"}}) == {
        "amount": "1.50", "target": {"account": "x"}, "chain": "mainnet"}


def test_values() -> None:
    assert Value("amount", unit="GBP").read({"amount": "100.25"}) == (100.25, "GBP")
    assert Value("wei", unit="TKA", scale=1e-18).read({"wei": 2 * 10**18}) == (2.0, "TKA")
    # Exact at a limit's boundary: in floats 15,000 TKA came out a hair above 15,000.
    for whole in (1000, 15_000, 20_000):
        assert Value("wei", unit="TKA", scale=1e-18).read({"wei": whole * 10**18}) == (
            float(whole), "TKA")
    assert Value("amount", unit_field="ccy").read({"amount": 3, "ccy": "EUR"}) == (3.0, "EUR")
    with pytest.raises(ConfigError, match="must be a number"):
        Value("amount", unit="GBP").read({"amount": "lots"})
    with pytest.raises(ConfigError, match="non-negative"):
        Value("amount", unit="GBP").read({"amount": "-1"})
    with pytest.raises(ConfigError, match="exactly one of unit="):
        Value("amount")


def test_catalog_names_are_unique_and_lookups_say_what_exists() -> None:
    wf = Workflow(saga(), "Move funds.")
    with pytest.raises(ConfigError, match="'move' is in the catalog twice"):
        Catalog(Registry(), [wf, wf])
    catalog = Catalog(Registry(), [wf, Workflow(saga("zap"), "Zap.")])
    assert catalog.names == ["move", "zap"]
    with pytest.raises(ConfigError, match="no workflow 'other'; list_workflows names"):
        catalog.get("other")


def test_demo_input_refuses_bad_payments() -> None:
    pytest.importorskip("ccxt")
    from reversa.mcp.demo import CrossBorderInput

    wf = Workflow(saga(), "x", input_model=CrossBorderInput)
    with pytest.raises(ConfigError, match="amount: Decimal input should have no more than 2 "
                                          "decimal places"):
        wf.parse_input({"sender": "cust:bob", "amount": "1.001", "beneficiary": "B",
                        "reference": "R"})

"""Every alarm links its runbook, and every linked runbook exists and says what to do."""

from __future__ import annotations

import re

from infra.runbooks import RUNBOOKS
from tests.infra.conftest import REPO, Synthesized
from tests.infra.test_stacks import resources

LINK = re.compile(r"Runbook: " + re.escape(RUNBOOKS) + r"#([a-z0-9-]+)$")


def _sections() -> dict[str, str]:
    text = (REPO / RUNBOOKS).read_text()
    parts = re.split(r"^## ", text, flags=re.M)[1:]
    return {part.split("\n", 1)[0].strip(): part for part in parts}


def test_every_alarm_ends_with_a_link_to_an_existing_runbook(synthesized: Synthesized) -> None:
    sections = _sections()
    linked = set()
    alarms = [
        (stack, logical_id, alarm["Properties"])
        for stack in synthesized.stacks
        for logical_id, alarm in resources(synthesized, stack, "AWS::CloudWatch::Alarm").items()
    ]
    assert len(alarms) >= 13
    for stack, logical_id, alarm in alarms:
        description = alarm.get("AlarmDescription", "")
        match = LINK.search(description)
        assert match, (stack, logical_id, description)
        assert match.group(1) in sections, (stack, logical_id, match.group(1))
        assert len(description) <= 1024  # CloudWatch's limit
        linked.add(match.group(1))
    assert linked == set(sections), set(sections) - linked


def test_each_runbook_says_what_the_alarm_means_three_first_checks_and_how_to_recover() -> None:
    for name, body in _sections().items():
        assert "**Means**" in body, name
        assert re.search(r"^1\. .*\n(.*\n)*?2\. .*\n(.*\n)*?3\. ", body, flags=re.M), name
        assert "**Recover**" in body, name

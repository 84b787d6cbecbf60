"""Where events and asynchronous invocations go when they cannot be delivered: a queue, alarmed.

Every EventBridge target and every asynchronously invoked Lambda of the app has one, so a missed
approval event or an undeliverable batch notification is never silent.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import lifecycle
from infra.nag import Nag
from infra.runbooks import with_runbook


class DeadLetters(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, purpose: str) -> None:
        super().__init__(scope, construct_id)
        self.purpose = purpose
        # SSE-SQS: EventBridge and Lambda can write to it without a key policy to maintain.
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            removal_policy=lifecycle.OPERATIONAL.policy,
        )
        for rule in ("AwsSolutions-SQS3", "Serverless-SQSRedrivePolicy"):
            Nag(self.queue).acknowledge(
                id=rule,
                reason="This queue is itself a dead-letter queue (of EventBridge targets and "
                "asynchronous Lambda invocations); it is alarmed, not redriven automatically.",
            )

    def alarm_to(self, topic: sns.ITopic) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            "NotEmpty",
            alarm_description=with_runbook(
                f"Undelivered: {self.purpose}. Inspect the dead-letter queue's messages (they "
                "hold the event and the error), fix the cause, then redrive.",
                "dead-letters",
            ),
            metric=self.queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum"
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(actions.SnsAction(topic))
        return alarm

"""CloudWatch: one dashboard for the API and the pipeline, and the alarms that page someone."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contracts.names import (
    PRICE_SHIFT_METRIC,
    PRODUCTION_ERROR_ON_BATCH_METRIC,
    PRODUCTION_VERSION_METRIC,
    StageNames,
)
from contracts.settings import GatePolicy, VerdictPolicy
from infra.runbooks import with_runbook

# Production's error on a new labelled batch above this (percent) means the market or the
# data moved away from what production learned: the gate's own MAPE floor.
BATCH_ERROR_ALARM_PERCENT = GatePolicy().max_mape * 100
RUNBOOK_SECTIONS = {
    "Api5xx": "api-5xx",
    "ApiLatencyP99": "api-latency",
    "ServingErrors": "serving-errors",
    "ProductionErrorOnNewBatch": "new-batch-error",
    "PriceShift": "price-shift",
    "ServingThrottles": "serving-throttles",
}


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: StageNames,
        api: apigateway.RestApi,
        serving_function: lambda_.IFunction,
        state_machine: sfn.IStateMachine,
        alarm_topic: sns.ITopic,
        api_latency_alarm_ms: int,
        api_5xx_alarm: int,
    ) -> None:
        super().__init__(scope, construct_id)
        period = Duration.minutes(5)
        latency = [
            api.metric_latency(statistic=s, period=period, label=f"API latency {s}")
            for s in ("p50", "p99")
        ]
        errors = [
            api.metric_client_error(period=period, label="4xx"),
            api.metric_server_error(period=period, label="5xx"),
        ]
        production = cloudwatch.Metric(
            namespace=names.metric_namespace,
            metric_name=PRODUCTION_VERSION_METRIC,
            statistic="Maximum",
            period=Duration.hours(1),
            label="production model version",
        )
        batch_error = cloudwatch.Metric(
            namespace=names.metric_namespace,
            metric_name=PRODUCTION_ERROR_ON_BATCH_METRIC,
            statistic="Maximum",
            period=Duration.days(1),
            label="production MAPE on the newest batch (%)",
        )
        price_shift = cloudwatch.Metric(
            namespace=names.metric_namespace,
            metric_name=PRICE_SHIFT_METRIC,
            statistic="Average",
            period=Duration.days(1),
            label="price level of new batches vs production (%)",
        )
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=names.dashboard)
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Price API latency (ms)", left=latency, width=8),
            cloudwatch.GraphWidget(title="Price API errors", left=errors, width=8),
            cloudwatch.GraphWidget(
                title="Requests",
                left=[
                    api.metric_count(period=period),
                    serving_function.metric_invocations(period=period),
                ],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Pipeline runs",
                left=[
                    state_machine.metric_started(period=Duration.hours(1)),
                    state_machine.metric_succeeded(period=Duration.hours(1)),
                    state_machine.metric_failed(period=Duration.hours(1)),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Serving Lambda",
                left=[
                    serving_function.metric_errors(period=period),
                    serving_function.metric_throttles(period=period),
                ],
                right=[serving_function.metric_duration(statistic="p99", period=period)],
                width=8,
            ),
            cloudwatch.SingleValueWidget(
                title="Production model version", metrics=[production], width=8
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="New labelled batches against production",
                left=[batch_error],
                right=[price_shift],
                width=12,
            ),
        )
        thresholds: list[tuple[str, str, cloudwatch.IMetric, float, int]] = [
            (
                "Api5xx",
                "The price API returns server errors.",
                api.metric_server_error(period=period, statistic="Sum"),
                api_5xx_alarm,
                1,
            ),
            (
                "ApiLatencyP99",
                f"p99 latency of the price API is above {api_latency_alarm_ms} ms.",
                api.metric_latency(statistic="p99", period=period),
                api_latency_alarm_ms,
                3,
            ),
            (
                "ServingErrors",
                "The serving Lambda fails.",
                serving_function.metric_errors(period=period, statistic="Sum"),
                1,
                1,
            ),
            (
                "ProductionErrorOnNewBatch",
                f"Production's MAPE on a newly arrived labelled batch is above "
                f"{BATCH_ERROR_ALARM_PERCENT:.0f} % (the gate's floor): the market or the data "
                "moved; see the run report's verdict.",
                batch_error,
                BATCH_ERROR_ALARM_PERCENT,
                1,
            ),
            (
                "PriceShift",
                f"New batches are priced more than {VerdictPolicy().shift_threshold:.0%} away "
                "from production (either way): a market shift; a candidate may wait for approval.",
                cloudwatch.MathExpression(
                    expression="ABS(shift)",
                    using_metrics={"shift": price_shift},
                    label="|price shift| (%)",
                    period=Duration.days(1),
                ),
                VerdictPolicy().shift_threshold * 100,
                1,
            ),
            (
                "ServingThrottles",
                "The serving Lambda is throttled (reserved concurrency reached).",
                serving_function.metric_throttles(period=period, statistic="Sum"),
                1,
                2,
            ),
        ]
        self.alarms = [
            cloudwatch.Alarm(
                self,
                alarm_id,
                alarm_description=with_runbook(description, RUNBOOK_SECTIONS[alarm_id]),
                metric=metric,
                threshold=threshold,
                evaluation_periods=periods,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            for alarm_id, description, metric, threshold, periods in thresholds
        ]
        for alarm in self.alarms:
            alarm.add_alarm_action(actions.SnsAction(alarm_topic))


class MonitoringStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: StageNames,
        api: apigateway.RestApi,
        serving_function: lambda_.IFunction,
        state_machine: sfn.IStateMachine,
        alarm_topic: sns.ITopic,
        api_latency_alarm_ms: int,
        api_5xx_alarm: int,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            names=names,
            api=api,
            serving_function=serving_function,
            state_machine=state_machine,
            alarm_topic=alarm_topic,
            api_latency_alarm_ms=api_latency_alarm_ms,
            api_5xx_alarm=api_5xx_alarm,
        )

"""The training container: SageMaker's scikit-learn framework image, running our source tarball.

The image URI comes from the SageMaker Python SDK's offline lookup (sagemaker-core's image_uris),
never from a hand-copied table. For an environment-agnostic synth the region is a token, so the
SDK is asked for every region it knows and CloudFormation picks the entry for AWS::Region.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Aws, CfnMapping, Stack, Token
from constructs import Construct

FRAMEWORK: Final = "sklearn"
# The Python 3.12 build of the scikit-learn container: our code needs Python >= 3.11.
FRAMEWORK_VERSION: Final = "1.4-2-py312"
TRAINING_INSTANCE_TYPE: Final = "ml.m5.large"
_MAPPING_ID: Final = "SklearnTrainingImage"


def _retrieve(region: str) -> str:
    from sagemaker.core import image_uris

    return str(
        image_uris.retrieve(
            FRAMEWORK,
            region=region,
            version=FRAMEWORK_VERSION,
            instance_type=TRAINING_INSTANCE_TYPE,
            image_scope="training",
        )
    )


def known_regions() -> list[str]:
    from sagemaker.core import image_uris

    config = image_uris.config_for_framework(FRAMEWORK)["training"]["versions"][FRAMEWORK_VERSION]
    return sorted(config["registries"])


def training_image_uri(scope: Construct) -> str:
    stack = Stack.of(scope)
    if not Token.is_unresolved(stack.region):
        return _retrieve(stack.region)
    mapping = stack.node.try_find_child(_MAPPING_ID)
    if mapping is None:
        mapping = CfnMapping(
            stack,
            _MAPPING_ID,
            mapping={region: {"uri": _retrieve(region)} for region in known_regions()},
        )
    assert isinstance(mapping, CfnMapping)
    return mapping.find_in_map(Aws.REGION, "uri")

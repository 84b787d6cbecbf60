from __future__ import annotations

import numpy as np
import pandas as pd

from contracts.schema import CLARITY, COLOR, CUT
from training.features import Encoding, FeatureTransform

ROWS = pd.DataFrame(
    {
        "carat": [0.3, 1.0, 2.0],
        "cut": ["Fair", "Ideal", "Good"],
        "color": ["J", "D", "G"],
        "clarity": ["I1", "IF", "VS2"],
        "depth": [60.0, 62.0, 61.0],
        "table": [55.0, 57.0, 58.0],
        "x": [4.0, 6.0, 8.0],
        "y": [4.0, 6.0, 8.0],
        "z": [2.5, 3.7, 4.9],
    }
)


def test_transform_clips_to_training_range() -> None:
    transform = FeatureTransform.fit(ROWS, encoding=Encoding.ORDINAL)
    far = ROWS.assign(carat=[9.0, 0.01, 1.0])
    assert transform.transform(far)[:, 0].tolist() == [2.0, 0.3, 1.0]


def test_transform_ordinal_codes_follow_grade_order() -> None:
    matrix = FeatureTransform.fit(ROWS, encoding=Encoding.ORDINAL).transform(ROWS)
    assert matrix[:, 1].tolist() == [CUT.code("Fair"), CUT.code("Ideal"), CUT.code("Good")]
    assert matrix[:, 2].tolist() == [COLOR.code("J"), COLOR.code("D"), COLOR.code("G")]
    assert matrix[:, 3].tolist() == [CLARITY.code("I1"), CLARITY.code("IF"), CLARITY.code("VS2")]


def test_transform_one_hot_drops_the_first_level() -> None:
    transform = FeatureTransform.fit(ROWS, encoding=Encoding.ONE_HOT)
    matrix = transform.transform(ROWS)
    cut_columns = [i for i, owner in enumerate(transform.column_features) if owner == "cut"]
    assert len(cut_columns) == len(CUT.levels) - 1
    assert matrix[0, cut_columns].sum() == 0  # Fair is the reference level
    assert matrix[1, cut_columns].sum() == 1


def test_transform_round_trips_through_its_dict() -> None:
    transform = FeatureTransform.fit(
        ROWS, encoding=Encoding.ONE_HOT, log_features=("carat",), standardize=True
    )
    again = FeatureTransform.from_dict(transform.to_dict())
    assert np.array_equal(again.transform(ROWS), transform.transform(ROWS))


def test_transform_accepts_plain_lists() -> None:
    transform = FeatureTransform.fit(ROWS, encoding=Encoding.ORDINAL)
    as_lists = {name: ROWS[name].tolist() for name in ROWS}
    assert np.array_equal(transform.transform(as_lists), transform.transform(ROWS))


def test_shape_features_come_from_clipped_dimensions() -> None:
    transform = FeatureTransform.fit(
        ROWS, encoding=Encoding.ORDINAL, derived=("x_over_y", "z_over_mean_xy")
    )
    matrix = transform.transform(ROWS.assign(x=[4.0, 60.0, 8.0]))  # 60 mm clipped to 8
    assert transform.column_names[-2:] == ("x_over_y", "z_over_mean_xy")
    assert transform.column_features[-2:] == ("x|y", "x|y|z")
    assert np.allclose(matrix[:, -2], [1.0, 8.0 / 6.0, 1.0])
    assert np.allclose(matrix[:, -1], [2.5 / 4.0, 3.7 / 7.0, 4.9 / 8.0])
    assert FeatureTransform.from_dict(transform.to_dict()) == transform

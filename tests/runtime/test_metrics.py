import math

import numpy as np
import pytest

from anymodal.runtime.errors import InputError
from anymodal.runtime.metrics import emotion_metrics, pearson, sentiment_metrics, weighted_f1


def test_emotion_metrics_by_hand():
    y = [0, 0, 0, 1, 1, 2]
    p = [0, 0, 1, 1, 2, 2]
    m = emotion_metrics(y, p)
    assert m["wa"] == pytest.approx(4 / 6)
    # recalls: class0 2/3, class1 1/2, class2 1/1
    assert m["ua"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    # F1: c0 p=1 r=2/3 -> 0.8; c1 p=1/2 r=1/2 -> 0.5; c2 p=1/2 r=1 -> 2/3; weights 3,2,1
    assert m["f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * (2 / 3)) / 6)


def test_weighted_f1_ignores_predicted_classes_absent_from_truth_in_weights():
    assert weighted_f1([1, 1], [1, 0]) == pytest.approx(2 / 3)  # class 1: p=1, r=1/2


def test_sentiment_has0_vs_non0_by_hand():
    y = np.array([0.0, 1.2, -0.4, 2.6, -2.9, 0.5])
    p = np.array([-0.2, 0.8, 0.3, 2.4, -3.5, -0.1])
    m = sentiment_metrics(y, p)
    # has0: y>=0 -> [T,T,F,T,F,T]; p>=0 -> [F,T,T,T,F,F]; agree at 1,3,4 -> 3/6
    assert m["acc2_has0"] == pytest.approx(3 / 6)
    # non0 drops the y==0 sample: y>0 [T,F,T,F,T]; p>0 [T,T,T,F,F]; agree 3/5
    assert m["acc2_non0"] == pytest.approx(3 / 5)
    assert m["mae"] == pytest.approx(np.mean(np.abs(y - p)))
    assert m["corr"] == pytest.approx(np.corrcoef(y, p)[0, 1])


def test_acc5_acc7_clip_then_round_half_to_even():
    # Acc-5 clips to [-2, 2]: 2.6 -> 2 and 2.4 -> 2 agree; -2.9/-3.5 -> -2 agree.
    # np.round: 0.5 -> 0 and -0.5 -> -0 (half to even), 1.5 -> 2.
    y = np.array([2.6, -2.9, 0.5, 1.5, -0.5])
    p = np.array([2.4, -3.5, 0.4, 2.4, 0.2])
    m = sentiment_metrics(y, p)
    # rounded Acc-5: y [2,-2,0,2,-0] p [2,-2,0,2,0] -> 5/5
    assert m["acc5"] == pytest.approx(1.0)
    # Acc-7 clips to [-3, 3]: y [3,-3,0,2,-0], p [2,-3,0,2,0] -> 4/5
    assert m["acc7"] == pytest.approx(4 / 5)


def test_undefined_correlation_is_nan_not_guessed():
    assert math.isnan(pearson([1, 2, 3], [0.5, 0.5, 0.5]))


def test_bad_metric_inputs_are_typed_errors():
    with pytest.raises(InputError, match="NaN"):
        sentiment_metrics([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(InputError, match="samples"):
        sentiment_metrics([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(InputError, match="no samples"):
        emotion_metrics([], [])

"""The shipped generators are judged on digits they never saw, whatever the course seed."""

import pytest
import torch

from advlab import derive_seed
from advlab.data import load_images
from advlab.gan.pretrained import TRAINING_COURSE_SEED, shipped_split


def _rows(images):
    return {bytes(x.numpy().tobytes()) for x in images}


def test_derive_seed_under_a_named_course_seed(monkeypatch):
    monkeypatch.setenv("ADVLAB_SEED", "3")
    under_three = derive_seed(7)
    assert derive_seed(7, course=3) == under_three
    monkeypatch.setenv("ADVLAB_SEED", "0")
    assert derive_seed(7, course=3) == under_three != derive_seed(7) == 7


@pytest.mark.parametrize(("course", "error"), [(-1, ValueError), (2**32, ValueError),
                                               (1.0, TypeError), (True, TypeError)])
def test_derive_seed_refuses_a_bad_course_seed(course, error):
    with pytest.raises(error, match="course"):
        derive_seed(0, course=course)


@pytest.mark.parametrize("name", ["mnist", "digits"])
def test_load_images_draws_the_split_of_a_named_course_seed(monkeypatch, name):
    reference = load_images(name, "test", profile="quick")  # course seed 0 (the default)
    monkeypatch.setenv("ADVLAB_SEED", "2")
    moved = load_images(name, "test", profile="quick")
    named = load_images(name, "test", profile="quick", course_seed=0)
    assert not torch.equal(moved.images, reference.images)
    assert torch.equal(named.images, reference.images) and torch.equal(named.labels, reference.labels)


@pytest.mark.parametrize(("value", "error"), [(-1, ValueError), (2**32, ValueError),
                                              ("0", TypeError), (False, TypeError)])
def test_load_images_refuses_a_bad_course_seed(value, error):
    with pytest.raises(error, match="course_seed"):
        load_images("mnist", "test", profile="quick", course_seed=value)


def test_shipped_split_is_held_out_from_the_shipped_training_digits_under_any_course_seed(
        monkeypatch):
    monkeypatch.setenv("ADVLAB_SEED", "1")
    train, test = shipped_split("train"), shipped_split("test")
    assert (len(train), len(test)) == (4000, 1000)
    assert not _rows(train.images) & _rows(test.images), "the reference digits were trained on"
    # the course's own test split under seed 1 is mostly the shipped runs' training digits
    # (each of its 1,000 digits is one of the 4,000 of 5,000 with probability 0.8)
    course_test = load_images("mnist", "test", profile="quick")
    overlap = len(_rows(course_test.images) & _rows(train.images))
    assert 700 < overlap < 900, overlap
    monkeypatch.setenv("ADVLAB_SEED", str(TRAINING_COURSE_SEED))
    assert torch.equal(load_images("mnist", "test", profile="quick").images, test.images)


def test_shipped_split_refuses_an_unknown_split():
    with pytest.raises(ValueError, match="split"):
        shipped_split("validation")

"""Layer search and replacement helpers, and get_layer_by_name on torchvision resnet18."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import resnet18

from pytorch_grad_cam.utils.find_layers import (
    find_layer_predicate_recursive,
    find_layer_types_recursive,
    get_layer_by_name,
    replace_all_layer_type_recursive,
    replace_layer_recursive,
)


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    return resnet18(weights=None)


def _small() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU()), nn.Linear(2, 1))


def test_get_layer_by_name(resnet: nn.Module) -> None:
    assert get_layer_by_name(resnet, "layer4.1.conv2") is resnet.layer4[1].conv2
    assert get_layer_by_name(resnet, "layer4.-1") is resnet.layer4[-1]
    assert get_layer_by_name(resnet, "layer4.-2.bn1") is resnet.layer4[0].bn1
    assert get_layer_by_name(resnet, "fc") is resnet.fc
    assert get_layer_by_name(resnet, "") is resnet
    small = _small()
    assert get_layer_by_name(small, "-1") is small[3]
    assert get_layer_by_name(small, "2.-1") is small[2][1]


def test_get_layer_by_name_unknown_path_lists_close_matches(resnet: nn.Module) -> None:
    with pytest.raises(ValueError, match=r"layer4.1 has no 'conv3'; did you mean 'layer4.1.conv2', 'layer4.1.conv1'"):
        get_layer_by_name(resnet, "layer4.1.conv3")
    with pytest.raises(ValueError, match=r"the model has no 'layer5'; did you mean 'layer4'"):
        get_layer_by_name(resnet, "layer5")
    with pytest.raises(ValueError, match=r"layer4 has no '2'"):
        get_layer_by_name(resnet, "layer4.2")  # index out of range
    with pytest.raises(ValueError, match=r"has no 'zzz'; see model.named_modules\(\)"):
        get_layer_by_name(resnet, "zzz")
    with pytest.raises(TypeError, match=r"dotted_path must be a string .* got int"):
        get_layer_by_name(resnet, 4)
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module; got str"):
        get_layer_by_name("resnet", "layer4")


def test_find_layer_types_and_predicate(resnet: nn.Module) -> None:
    convs = find_layer_types_recursive(resnet, [nn.Conv2d])
    assert len(convs) == 20  # stem + 16 in the blocks + 3 downsample convs
    assert convs[0] is resnet.conv1 and convs[-1] is resnet.layer4[1].conv2
    small = _small()
    found = find_layer_predicate_recursive(small, lambda layer: isinstance(layer, (nn.ReLU, nn.Sequential)))
    assert found == [small[1], small[2], small[2][1]]  # depth-first, pre-order, the root excluded


def test_replace_layer_recursive() -> None:
    small = _small()
    inner = small[2][0]
    replacement = nn.Identity()
    assert replace_layer_recursive(small, inner, replacement) is True
    assert small[2][0] is replacement
    assert replace_layer_recursive(small, inner, nn.Identity()) is False


def test_replace_all_layer_type_recursive() -> None:
    small = _small()
    replace_all_layer_type_recursive(small, nn.ReLU, nn.Tanh())
    assert find_layer_types_recursive(small, [nn.ReLU]) == []
    assert isinstance(small[1], nn.Tanh) and small[1] is small[2][1]
    assert small[1](torch.tensor(-2.0)).item() == pytest.approx(-0.9640275800758169)

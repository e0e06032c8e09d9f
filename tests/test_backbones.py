"""Tests for finetune.networks.backbones: specs, layer groups, inputs, and loading weights offline.

Weights go through layerwise's real loading path: a randomly initialised state
dict is saved in a temporary ``TORCH_HOME/hub/checkpoints`` under the name
torchvision gives a file (its sha256 prefix, see ``hub_fixtures.publish``),
and downloads are made to fail as they do without a network.
"""
import os

import numpy as np
import pytest
import torch
import torchvision
from hub_fixtures import hub_folder, offline, publish, torch_home  # noqa: F401 (fixtures)
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

from finetune.networks.backbones import BackboneSpec, backbone_nodes, build_model, image_value_range, supported_models
from finetune.networks.body import torchvision_body
from finetune.networks.backbones.groups import GROUPERS, family, layer_groups
from pretrain.core.errors import LayerwiseError

RESNET18_FILE = "resnet18-f37072fd.pth"  # the file name in ResNet18_Weights.IMAGENET1K_V1.url


@pytest.fixture
def cached_resnet18(torch_home, offline, monkeypatch):
    """Random resnet18 weights cached where torchvision looks for the ImageNet ones."""
    torch.manual_seed(1)
    state = torchvision.models.resnet18().state_dict()
    torch.save(state, hub_folder(torch_home) / "resnet18.pth")
    published = publish(monkeypatch, torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
                        hub_folder(torch_home) / "resnet18.pth")
    assert published.name == os.path.basename(torchvision.models.ResNet18_Weights.DEFAULT.url)
    return state


def rgb_images(n=4, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def run_groups(body, raw):
    """The output of every group of ``body`` on ``raw`` images, in eval mode."""
    x, outputs = body.preprocess(raw), []
    with torch.no_grad():
        for group in body.eval().groups:
            x = group(x)
            outputs.append(x)
    return outputs


def reference_features(model, raw, size, node=None):
    """Features torchvision itself computes: the weights' transforms, the model up to ``node``, average pooling."""
    transform = torchvision.models.ResNet18_Weights.DEFAULT.transforms(crop_size=size, resize_size=size)
    x = transform(torch.from_numpy(raw).permute(0, 3, 1, 2) / 255.0)  # float: resized without rounding to uint8
    model.fc = nn.Identity()
    with torch.no_grad():
        if node is None:
            return model.eval()(x)
        return create_feature_extractor(model.eval(), {node: "out"})(x)["out"].mean(dim=(2, 3))


def test_spec_reads_name_weights_and_node():
    assert BackboneSpec.parse("resnet18") == BackboneSpec("resnet18", "DEFAULT", None)
    assert BackboneSpec.parse("resnet18@none:layer3") == BackboneSpec("resnet18", "none", "layer3")
    assert BackboneSpec.parse("vgg16:features.9") == BackboneSpec("vgg16", "DEFAULT", "features.9")
    assert BackboneSpec.parse("resnet18@/w/r18.pth") == BackboneSpec("resnet18", "/w/r18.pth", None)
    assert BackboneSpec.parse("resnet18@/w/r18.pth:layer2.1") == BackboneSpec("resnet18", "/w/r18.pth", "layer2.1")


@pytest.mark.parametrize("spec, fix", [
    ("resnet19", "did you mean resnet18"),
    ("vit_b_16", "convolutional"),
    ("resnet18@IMAGENET9K", "IMAGENET1K_V1"),
    ("resnet18@", r"NAME\[@WEIGHTS\]\[:NODE\]"),
    ("resnet18@none:layer9", "--list-backbones resnet18"),
    ("resnet18@/no/such/weights.pth", "not found"),
])
def test_bad_specs_name_the_fix(spec, fix):
    with pytest.raises(LayerwiseError, match=fix):
        torchvision_body(spec, (32, 32, 3), input_size=32)


@pytest.mark.parametrize("image_shape, adapt, fix", [
    (None, False, "needs images; DATA is tabular"),
    ((32, 32, 4), False, "grayscale or RGB"),
    ((32, 32, 3), True, "for grayscale images"),
])
def test_images_that_do_not_fit_are_refused(image_shape, adapt, fix):
    with pytest.raises(LayerwiseError, match=fix):
        torchvision_body("resnet18@none", image_shape, input_size=32, adapt_first_conv=adapt)


@pytest.mark.parametrize("spec, names, channels, sizes", [
    ("resnet18@none", ["stem", "layer1", "layer2", "layer3", "layer4"], [64, 64, 128, 256, 512], [16, 16, 8, 4, 2]),
    ("vgg11@none", [f"block{i}" for i in range(1, 6)], [64, 128, 256, 512, 512], [32, 16, 8, 4, 2]),
    ("mobilenet_v3_small@none", ["stem", "stage1", "stage2", "stage3"], [16, 24, 48, 576], [16, 8, 4, 2]),
])
def test_backbones_split_into_groups_by_stage(spec, names, channels, sizes):
    body = torchvision_body(spec, (32, 32, 3), input_size=64)
    outputs = run_groups(body, rgb_images())
    assert body.group_names == names
    assert body.group_features == channels == [x.shape[1] for x in outputs]
    assert [x.shape[-1] for x in outputs] == sizes  # each group after the stem halves the feature map
    assert body.eval()(body.preprocess(rgb_images())).shape == (4, channels[-1])
    assert sum(p.numel() for p in body.parameters()) == sum(p.numel() for g in body.groups for p in g.parameters())
    if spec.startswith("vgg"):
        assert all(isinstance(list(group.modules())[-1], nn.MaxPool2d) for group in body.groups)


def test_every_supported_family_has_its_grouper():
    families = {name: family(name) for name in supported_models()}
    assert None not in families.values(), [name for name, key in families.items() if key is None]
    assert families["wide_resnet50_2"] == "wide_resnet" and families["resnext50_32x4d"] == "resnext"
    assert set(families.values()) == set(GROUPERS)  # no entry of the table is dead


@pytest.mark.parametrize("name, first, last, finish", [
    ("alexnet", ["block1", ["0", "1", "2"]], ["block3", ["6", "7", "8", "9", "10", "11", "12"]], []),
    ("squeezenet1_1", ["block1", ["0", "1", "2"]], ["block4", ["9", "10", "11", "12"]], []),
    ("wide_resnet50_2", ["stem", ["conv1", "bn1", "relu", "maxpool"]], ["layer4", ["layer4"]], []),
    ("regnet_x_400mf", ["stem", ["stem"]], ["block4", ["block4"]], []),
    ("densenet121", ["stem", ["conv0", "norm0", "relu0", "pool0", "denseblock1"]],
     ["stage3", ["transition3", "denseblock4", "norm5"]], ["head_relu"]),
    ("convnext_tiny", ["stem", ["0", "1"]], ["stage3", ["6", "7"]], ["head_pool", "head_norm"]),
    ("mnasnet0_5", ["stem", [str(i) for i in range(9)]], ["stage3", [str(i) for i in range(12, 17)]], []),
    ("shufflenet_v2_x0_5", ["stem", ["conv1", "maxpool"]], ["stage3", ["stage4", "conv5"]], []),
    ("inception_v3", ["stem", ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                               "Conv2d_4a_3x3"]], ["stage3", ["Mixed_7a", "Mixed_7b", "Mixed_7c"]], []),
])
def test_each_family_groups_by_its_own_rule(name, first, last, finish):
    plans = layer_groups(name, build_model(name))
    assert [plans[0].name, list(plans[0].children)] == first
    assert [plans[-1].name, list(plans[-1].children)] == last and list(plans[-1].finish) == finish
    assert len(plans) == {"alexnet": 3, "regnet_x_400mf": 5, "wide_resnet50_2": 5}.get(name, 4)


def test_drop_top_removes_the_top_groups():
    body = torchvision_body("resnet18@none", (32, 32, 3), input_size=32).drop_top(2)
    assert body.group_names == ["stem", "layer1", "layer2"]
    assert body.eval()(body.preprocess(rgb_images())).shape == (4, body.out_features) == (4, 128)


def test_cached_weights_load_offline_and_match_torchvision(cached_resnet18, offline):
    body = torchvision_body("resnet18", (32, 32, 3), input_size=64)
    assert offline == []  # served from the cache, no download tried
    assert body.info["weights"] == "IMAGENET1K_V1"
    assert torch.equal(body.groups[0].group.conv1.weight, cached_resnet18["conv1.weight"])
    assert torch.equal(body.groups[4].layer4[1].bn2.running_var, cached_resnet18["layer4.1.bn2.running_var"])
    model = torchvision.models.resnet18()
    model.load_state_dict(cached_resnet18)
    raw = rgb_images()
    with torch.no_grad():
        features = body.eval()(body.preprocess(raw))
    torch.testing.assert_close(features, reference_features(model, raw, 64), atol=1e-4, rtol=1e-4)


def test_node_cuts_where_torchvision_feature_extraction_does(cached_resnet18):
    body = torchvision_body("resnet18:layer3.0.relu", (32, 32, 3), input_size=64)
    assert body.group_names == ["stem", "layer1", "layer2", "layer3"]
    model = torchvision.models.resnet18()
    model.load_state_dict(cached_resnet18)
    raw = rgb_images()
    with torch.no_grad():
        features = body.eval()(body.preprocess(raw))
    assert features.shape == (4, body.out_features) == (4, 256)
    torch.testing.assert_close(features, reference_features(model, raw, 64, "layer3.0.relu"), atol=1e-4, rtol=1e-4)


def test_missing_weights_without_network_name_the_file_and_folder(torch_home, offline):
    with pytest.raises(LayerwiseError) as error:
        torchvision_body("resnet18@IMAGENET1K_V1", (32, 32, 3), input_size=32)
    message = str(error.value)
    assert offline == [torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url]
    assert RESNET18_FILE == os.path.basename(offline[0])
    assert "\n" not in message
    assert f"put {RESNET18_FILE}" in message and str(torch_home / "hub" / "checkpoints") in message
    assert "torchvision:resnet18@none" in message


def test_rebuilding_without_weights_reads_nothing(torch_home, offline):
    body = torchvision_body("resnet18@/elsewhere/r18.pth:layer3", (28, 28, 1), input_size=32, load_weights=False)
    assert offline == []
    recipe = body.info["recipe"]
    assert recipe == {"kind": "torchvision", "spec": "resnet18@/elsewhere/r18.pth:layer3", "image_shape": [28, 28, 1],
                      "input_size": 32, "adapt_first_conv": False, "value_range": None}
    again = torchvision_body(recipe["spec"], tuple(recipe["image_shape"]), recipe["input_size"],
                             recipe["adapt_first_conv"], load_weights=False)
    again.load_state_dict(body.state_dict())  # same modules, same keys: a saved classifier loads back
    raw = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(again.preprocess(raw)), body.eval()(body.preprocess(raw)))


def test_local_weights_file(tmp_path):
    torch.manual_seed(2)
    state = torchvision.models.mobilenet_v3_small().state_dict()
    torch.save(state, tmp_path / "mine.pth")
    body = torchvision_body(f"mobilenet_v3_small@{tmp_path / 'mine.pth'}:features.6", (32, 32, 3), input_size=32)
    assert body.info["weights"] == str(tmp_path / "mine.pth")
    assert torch.equal(body.groups[0].group[0][0].weight, state["features.0.0.weight"])
    assert body.group_names == ["stem", "stage1", "stage2"] and body.out_features == 40
    torch.save(torchvision.models.squeezenet1_1().state_dict(), tmp_path / "other.pth")
    with pytest.raises(LayerwiseError, match="do not fit torchvision's mobilenet_v3_small"):
        torchvision_body(f"mobilenet_v3_small@{tmp_path / 'other.pth'}", (32, 32, 3), input_size=32)


def test_adapt_first_conv_sums_the_rgb_filters(cached_resnet18):
    body = torchvision_body("resnet18", (28, 28, 1), input_size=32, adapt_first_conv=True)
    conv = body.groups[0].group.conv1
    assert conv.in_channels == 1
    torch.testing.assert_close(conv.weight, cached_resnet18["conv1.weight"].sum(dim=1, keepdim=True))
    gray = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    x = body.preprocess(gray)
    assert x.shape == (3, 1, 28, 28)
    assert body.eval()(x).shape == (3, 512)


def test_gray_images_are_resized_repeated_and_normalised():
    body = torchvision_body("resnet18@none", (8, 8, 1), input_size=48)
    x = body.preprocess(np.full((2, 8, 8), 0.25))  # float images in [0, 1] are taken as they are
    adapted = body.groups[0].adapt_input(x)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    assert adapted.shape == (2, 3, 48, 48)
    torch.testing.assert_close(adapted[0, :, 20, 30], (0.25 - mean) / std)


def test_float_images_take_the_range_of_the_data():
    digits_like = np.random.default_rng(0).uniform(0, 16, (5, 8, 8))
    with pytest.raises(LayerwiseError, match="image_value_range"):
        torchvision_body("resnet18@none", (8, 8, 1), input_size=32).preprocess(digits_like)
    value_range = image_value_range(digits_like)
    body = torchvision_body("resnet18@none", (8, 8, 1), input_size=32, value_range=value_range)
    x = body.preprocess(digits_like)
    assert float(x.min()) == 0 and float(x.max()) == pytest.approx(1)
    assert body.info["recipe"]["value_range"] == value_range
    assert image_value_range(digits_like.astype(np.uint8)) is None


def test_backbone_nodes_are_the_usable_cut_points():
    nodes = backbone_nodes("resnet18")
    assert nodes[0] == "conv1" and nodes[-1] == "layer4.1.relu_1"
    assert "layer3.0.relu" in nodes and not {"x", "avgpool", "flatten", "fc"} & set(nodes)
    for node in backbone_nodes("mobilenet_v3_small")[10::30]:
        body = torchvision_body(f"mobilenet_v3_small@none:{node}", (32, 32, 3), input_size=32)
        assert body.eval()(body.preprocess(rgb_images(2))).shape == (2, body.out_features)

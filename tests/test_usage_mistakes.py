"""Options that do not go together, or values no run can use, are usage mistakes (issue 30, items 6, 7, 15, 16):
exit 2, click's usage line and one error line naming the fix, nothing written; none is ignored or found out late."""
import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.datasets import load_digits

from cli_checks import assert_usage_error
from finetune.cli import main as finetune_main
from pretrain.cli import main as pretrain_main
from pretrain.core.errors import UsageMistake
from pretrain.training.greedy import pretrain_stack


def pretrain(*args):
    return CliRunner().invoke(pretrain_main, [str(a) for a in args])


def finetune(*args):
    return CliRunner().invoke(finetune_main, [str(a) for a in args])


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("mistakes-dbn")
    pretrain_stack("digits", ["rbm:8"], out=out, epochs=1, progress=False)
    return str(out)


@pytest.fixture
def flat_data(tmp_path):
    """The digits as rows of 64 features in an npz file: data that is not images."""
    x, y = load_digits(return_X_y=True)
    np.savez(tmp_path / "rows.npz", x=x[:200].astype(np.float32), y=y[:200])
    return f"npz:{tmp_path / 'rows.npz'}"


@pytest.mark.parametrize("layer, message", [
    ("cae:0", "bad layer spec 'cae:0': the count must be at least 1"),
    ("crbm:-4", "bad layer spec 'crbm:-4': the count must be at least 1"),
    ("rbm:0", "bad layer spec 'rbm:0': the count must be at least 1"),
    ("cae:x", "bad layer spec 'cae:x': write KIND:UNITS[,key=value...], e.g. cae:16"),
    ("cae:4,kernel=3,kernel=5", "bad layer spec 'cae:4,kernel=3,kernel=5': kernel= is given twice; give it once"),
    ("rbm:4,epochs=2,epochs=3", "epochs= is given twice"),
    ("cae:4,noise=mask:1.0", "cae: bad noise='mask:1.0': use none, mask:P (0<P<1"),
    ("ae:4,noise=gauss:inf", "ae: bad noise='gauss:inf': use none, mask:P (0<P<1, e.g. mask:0.3) or gauss:S (S>0 and "
                             "finite"),
    ("cae:4,kernel=4", "cae: kernel=4: use an odd kernel size"),
    ("rbm:4,sparsity_cost=1e300", "rbm: sparsity_cost=1e+300: must be in [0, 100]"),
    ("ae:4,beta=inf", "ae: beta=inf: must be in [0, 100]"),
])
def test_a_layer_spec_no_run_can_use_is_refused_as_it_is_parsed(tmp_path, layer, message):
    assert_usage_error(pretrain("digits", "-l", layer, "-o", tmp_path / "run", "-q"), message)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("layers, message", [
    (["cae:4,kernel=31"], "layer 1 (cae:4,kernel=31) on 1x8x8 inputs: kernel=31 is too wide for its 8x8 input (its "
                          "outer taps would see only the zero padding): use a kernel of at most 15"),
    (["cae:4,stride=2,pool=8"], "layer 1 (cae:4,stride=2,pool=8) on 1x8x8 inputs: pool=8 is larger than its 4x4 maps: "
                                "use a pool of at most 4"),
    (["cae:4", "cae:4", "crbm:4", "rbm:8"], "layer 3 (crbm:4) on 4x2x2 inputs: kernel=5 is too wide for its 2x2 "
                                            "input (its outer taps would see only the zero padding): use a kernel "
                                            "of at most 3"),
    (["cae:4,kernel=3", "cae:4,kernel=3", "crbm:4,kernel=3", "crbm:2"],
     "layer 4 (crbm:2) on 4x1x1 inputs: its input is maps of 1x1, where a convolution is a dense layer: put a dense "
     "layer (rbm, ae) there"),
])
def test_degenerate_maps_are_refused_before_any_layer_trains(tmp_path, layers, message):
    """On the 8x8 digits: the maps followed up the layers from the data's shape alone, before the first layer trains
    (layer 3 or 4 is refused with nothing trained and nothing written)."""
    args = [arg for layer in layers for arg in ("-l", layer)]
    assert_usage_error(pretrain("digits", *args, "-o", tmp_path / "run", "-q"), message)
    assert not (tmp_path / "run").exists()


def test_a_kernel_whose_outer_taps_reach_a_pixel_is_accepted():
    """kernel 5 on 4x4 maps: its outer taps (offset 2) reach a pixel from the positions near the far edge."""
    from pretrain.layers import LayerSpec
    assert LayerSpec.parse("cae:4").build((4, 4, 4), "unit").output_shape == (4, 2, 2)


def test_resume_and_overwrite_together_are_refused(tmp_path):
    result = pretrain("digits", "-l", "rbm:4", "-o", tmp_path / "run", "--resume", "--overwrite", "-q")
    assert_usage_error(result, "--resume continues the run in its folder and --overwrite replaces it: give one of them")
    assert not (tmp_path / "run").exists()
    with pytest.raises(UsageMistake, match="resume=True continues the run"):
        pretrain_stack("digits", ["rbm:4"], out=tmp_path / "api", resume=True, overwrite=True, progress=False)


QUICK = ("--labels-per-class", "2", "--epochs", "1", "-q")


def test_augment_on_data_that_is_not_images_is_a_usage_mistake(tmp_path, flat_data):
    result = finetune(flat_data, "--from", "pixels", "--augment", "shift", *QUICK, "--save", tmp_path / "clf")
    assert_usage_error(result, "--augment shift transforms images, and this data is not images: use --augment none")
    assert not (tmp_path / "clf").exists()


def test_consistency_on_data_that_is_not_images_is_a_usage_mistake(tmp_path, flat_data):
    result = finetune(flat_data, "--from", "pixels", "--semi", "consistency", *QUICK, "--report", tmp_path / "r")
    assert_usage_error(result, "--semi consistency perturbs images, and this data is not images")
    assert not (tmp_path / "r").exists()


def test_reconstruction_under_the_linear_schedule_is_a_usage_mistake(tmp_path, stack_dir):
    result = finetune("digits", "--from", stack_dir, "--schedule", "linear", "--semi", "reconstruction", *QUICK,
                      "--save", tmp_path / "clf")
    assert_usage_error(result, "--semi reconstruction needs a schedule that trains the body: the linear schedule "
                               "trains the head alone; use two-stage, full or gradual")
    assert not (tmp_path / "clf").exists()


@pytest.mark.parametrize("extra, dropped", [(("--from", "pixels"), "--from"), (("--semi", "pseudo-label"), "--semi")])
def test_predict_refuses_the_options_of_training(tmp_path, extra, dropped):
    result = finetune("digits", "--predict", tmp_path / "clf", *extra, "--predictions", tmp_path / "p.csv")
    assert_usage_error(result, f"--predict labels DATA with the classifier saved in {tmp_path / 'clf'} and trains "
                               f"nothing: drop {dropped}")
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("extra, dropped", [(("--semi", "pseudo-label"), "--semi"), (("--augment", "shift"), "--augment")])
def test_advise_refuses_semi_and_augment(tmp_path, extra, dropped):
    result = finetune("digits", "--from", "pixels", "--labels-per-class", "2", "--advise", *extra,
                      "--report", tmp_path / "r")
    assert_usage_error(result, f"--advise measures fine-tuning without unlabeled terms or augmentation: drop {dropped}")
    assert not (tmp_path / "r").exists()


def test_semi_says_in_one_line_that_it_sets_the_length_of_its_stages():
    """Under --semi a stage runs the ramp and the fewest steps after it (900): --epochs 1 is said not to count."""
    args = ("digits", "--from", "pixels", "--schedule", "linear", "--labels-per-class", "2", "--semi", "pseudo-label",
            "-q", "--threads", "1")
    result = finetune(*args, "--epochs", "1")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("Warning: ")]
    assert warnings == ["Warning: under --semi every stage runs at least 900 optimizer steps, in whole epochs (one "
                        "that trains the body that long and no longer), whatever --epochs 1 says"]
    assert warnings == [line for line in result.output.splitlines() if "--epochs" in line]  # once, after the run
    assert "Warning" not in finetune(*args).output  # the default number of epochs was nobody's request
    help_text = " ".join(finetune("--help").output.split())
    assert "under --semi runs its own length" in help_text and "whatever --epochs says" in help_text

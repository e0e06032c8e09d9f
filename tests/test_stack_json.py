"""stack.json against stack.pt (issue 30, item 16): stack.pt is what loads, so an edited copy that disagrees with it
on a field both carry is refused in one line naming the field; reformatting, added notes or no copy at all pass."""
import json

import pytest
from click.testing import CliRunner

import pretrain
from cli_checks import assert_failure
from finetune.cli import main as finetune
from pretrain.core.errors import LayerwiseError
from pretrain.training.stack import load_stack


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stack")
    pretrain.pretrain_stack("digits", ["rbm:8", "ae:4"], folder, epochs=2, progress=False)
    return folder, (folder / "stack.json").read_text()


@pytest.fixture
def stack_dir(trained):
    folder, original = trained
    (folder / "stack.json").write_text(original)
    return folder


def edit(folder, change):
    path = folder / "stack.json"
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record, indent=2))


@pytest.mark.parametrize("change, field, there, here", [
    (lambda r: r["layers"][0].update(n_hidden=16), "layers[0].n_hidden", "16", "8"),
    (lambda r: r.update(data="mnist"), "data", '"mnist"', '"digits"'),
    (lambda r: r["preprocessing"].update(mode="standardize"), "preprocessing.mode", '"standardize"', '"unit"'),
    (lambda r: r["layers"][1]["options"].update(noise="mask:0.5"), "layers[1].options.noise", '"mask:0.5"', None),
    (lambda r: r.update(history=r["history"][:1]), "history", "1 entries", "4"),
])
def test_an_edit_that_disagrees_with_the_weights_is_refused_naming_the_field(stack_dir, change, field, there, here):
    edit(stack_dir, change)
    with pytest.raises(LayerwiseError) as refused:
        load_stack(stack_dir)
    message = str(refused.value)
    assert message.startswith(f"{stack_dir / 'stack.json'} disagrees with stack.pt on {field} ({there} there, ")
    assert here is None or f", {here} in stack.pt): " in message
    assert message.endswith("undo the edit, or delete stack.json (stack.pt loads alone; "
                            "pretrain.load_stack(DIR).save(DIR) writes the copy again)")
    assert "\n" not in message


def test_finetune_refuses_the_stack_in_one_line(stack_dir, tmp_path):
    edit(stack_dir, lambda r: r["layers"][0].update(n_hidden=16))
    result = CliRunner().invoke(finetune, ["digits", "--from", str(stack_dir), "--schedule", "linear",
                                           "--labels-per-class", "2", "--epochs", "1", "-q",
                                           "--save", str(tmp_path / "clf")])
    assert_failure(result, "stack.json disagrees with stack.pt on layers[0].n_hidden (16 there, 8 in stack.pt)")
    assert not (tmp_path / "clf").exists()


def test_reformatting_and_added_notes_pass(stack_dir):
    record = json.loads((stack_dir / "stack.json").read_text())
    (stack_dir / "stack.json").write_text(json.dumps({"note": "my best run", **record}, sort_keys=True))
    assert load_stack(stack_dir).layers[0].n_hidden == 8


def test_without_a_copy_the_weights_load_and_saving_writes_it_again(stack_dir, trained):
    (stack_dir / "stack.json").unlink()
    load_stack(stack_dir).save(stack_dir)
    assert json.loads((stack_dir / "stack.json").read_text()) == json.loads(trained[1])
    load_stack(stack_dir)


def test_an_unreadable_copy_is_one_line(stack_dir):
    (stack_dir / "stack.json").write_text("{")
    with pytest.raises(LayerwiseError, match=r"stack.json cannot be read \(Expecting .*\): stack.json is a copy "):
        load_stack(stack_dir)
